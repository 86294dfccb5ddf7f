"""tensorserve: a drop-in, pip-installable replacement for TensorFlow Serving."""

__version__ = "0.1.0"
