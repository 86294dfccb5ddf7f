"""``python -m tensorserve`` runs the server CLI."""

import sys

from tensorserve.cli import main

if __name__ == "__main__":
    sys.exit(main())
