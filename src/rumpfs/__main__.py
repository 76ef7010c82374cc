"""``python -m rumpfs``: the ``rumpfs`` command (see :mod:`rumpfs.frontends.cli`)."""

import sys

from rumpfs.frontends.cli import main

if __name__ == "__main__":
    sys.exit(main())
