"""`python -m veridl._iree_cli train --device iree:... [options]`: where `veridl train --device iree:...` hands the run
over to (tools/veridl/run.cpp hand_over_to_python): the same command, run by the library in this process, with the
steps on an IREE device (veridl/iree.py)."""
import sys

from veridl import iree

if __name__ == "__main__":
    sys.exit(iree.cli_main(sys.argv[1:]))
