"""python -m gnv ARGS: the gnv command line (the same code as the `gnv` executable)."""
import sys

from . import cli

if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
