"""The `veridl` command of the installed package: runs the CLI binary installed beside the module (veridl/bin/veridl,
the same target as the build's ./build/veridl), with the bundled digits found under the package (VERIDL_DATA_ROOT)."""
import os
import sys


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    exe = os.path.join(here, "bin", "veridl")
    env = dict(os.environ)
    env.setdefault("VERIDL_DATA_ROOT", here)
    os.execve(exe, ["veridl"] + sys.argv[1:], env)


if __name__ == "__main__":
    main()
