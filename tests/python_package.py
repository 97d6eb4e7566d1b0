#!/usr/bin/python3
"""The PythonPackage test (CMakeLists.txt): the package as a user installs it, in a fresh venv.

1. a venv of Debian's python3 with --system-site-packages (its numpy, python3-torch and pytest stay visible);
2. its build tools, scikit-build-core and nanobind, from the wheels scripts/install-deps.sh keeps in .venv/wheelhouse
   (no network);
3. `pip install --no-build-isolation -C build-dir=BUILD SOURCE`: scikit-build-core's real build of the package from
   pyproject.toml, reusing the CMake build directory the test runs in (its configure finds everything built, builds
   the targets _core and veridl, which are up to date, installs the component "python" into the wheel), then pip
   installs the wheel; a from-scratch `pip install .` compiles the library instead (docs/python.md);
4. pytest on tests/python/ with that venv's python, from the source directory (python/veridl is not on its path:
   the installed package is what is imported).
Each phase's time is printed."""
import argparse
import os
import shutil
import subprocess
import sys
import time


def run(cmd, **kw):
    t0 = time.time()
    print("+", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, **kw)
    print(f"  ({time.time() - t0:.1f}s, exit {r.returncode})", flush=True)
    if r.returncode != 0:
        sys.exit(r.returncode)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--python", default="/usr/bin/python3")
    args = ap.parse_args()
    wheelhouse = os.path.join(args.source, ".venv", "wheelhouse")
    if not os.path.isdir(wheelhouse):
        sys.exit(f"{wheelhouse} not found: run scripts/install-deps.sh (it keeps nanobind's and scikit-build-core's "
                 "wheels there)")
    venv = os.path.join(args.build, "python-test-venv")
    shutil.rmtree(venv, ignore_errors=True)
    run([args.python, "-m", "venv", "--system-site-packages", venv])
    py = os.path.join(venv, "bin", "python")
    pip = [py, "-m", "pip", "--disable-pip-version-check", "-q"]
    run(pip + ["install", "--no-index", "--find-links", wheelhouse, "scikit-build-core", "nanobind"])
    # onnxruntime for the ONNX step of the example script; without its dependencies, which only its tools use (numpy
    # is Debian's, visible through --system-site-packages: a PyPI numpy would not match Debian's torch 1.13).
    run(pip + ["install", "--no-index", "--no-deps", "--find-links", wheelhouse, "onnxruntime"])
    # VERIDL_TESTS=ON: the build directory's own configuration (pyproject.toml turns the tests off for a user's
    # install); configuring it otherwise would drop the tests from the directory ctest runs in.
    run(pip + ["install", "--no-index", "--no-build-isolation", f"--config-settings=build-dir={os.path.abspath(args.build)}",
               "--config-settings=cmake.define.VERIDL_TESTS=ON", args.source])
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    env.pop("PYTHONPATH", None)
    run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.join(args.source, "tests", "python")],
        cwd=args.source, env=env)


if __name__ == "__main__":
    main()
