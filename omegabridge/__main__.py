"""``python -m omegabridge``: the omegabridge command line (see ``omegabridge.cli``)."""

import sys

from omegabridge.cli import main

if __name__ == "__main__":
    sys.exit(main())
