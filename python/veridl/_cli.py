"""The `veridl` command of the installed package: runs the CLI binary installed beside the module (veridl/bin/veridl,
the same target as the build's ./build/veridl), with the bundled digits found under the package (VERIDL_DATA_ROOT) and
this interpreter as the one IREE devices run in (VERIDL_PYTHON)."""
import os
import sys


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    exe = os.path.join(here, "bin", "veridl")
    env = dict(os.environ)
    env.setdefault("VERIDL_DATA_ROOT", here)
    # `veridl train --device iree:...` hands the run back to Python (veridl/_iree_cli.py): to this interpreter, whose
    # environment has this package (and, when installed, IREE's runtime and compiler).
    env.setdefault("VERIDL_PYTHON", sys.executable)
    os.execve(exe, ["veridl"] + sys.argv[1:], env)


if __name__ == "__main__":
    main()
