"""The multi-process server: a supervisor, one model process, protocol worker processes."""
