"""``python -m leadml ...``: the same command as ``leadml ...``, with the same exit codes."""

import sys

from leadml.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
