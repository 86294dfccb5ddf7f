"""The channel between protocol worker processes and the model process (``ServiceAPI`` calls)."""
