"""``python -m spikecvx``: the command line (also what ``torchrun -m spikecvx`` starts on every rank)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
