"""tensorserve: a drop-in, pip-installable replacement for TensorFlow Serving."""

from tensorserve.runtime import tf_env as _tf_env

__version__ = "0.1.0"

# TensorFlow's first import (whichever module triggers it) runs quiet: runtime/tf_env.py.
_tf_env.install()
