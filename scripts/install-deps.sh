#!/usr/bin/env bash
# Installs what VeriDL needs on Debian 12 (skips apt entirely when everything is already there).
#   bash scripts/install-deps.sh          build + test dependencies (apt), and IREE's compiler and runtime
#                                         from PyPI into .venv (for `veridl export` and its tests), and the Python
#                                         package's build tools (nanobind, scikit-build-core) into .venv
#   bash scripts/install-deps.sh --bench  also Fashion-MNIST and jemalloc for bench/, and the bench venv .venv-bench
#                                         with PyTorch 2.x and JAX from PyPI (bench/setup-bench-venv.sh: several GB);
#                                         Debian's PyTorch and OpenBLAS are installed either way (the conformance
#                                         test's reference)
set -euo pipefail
pkgs=(build-essential cmake ninja-build libgtest-dev libgmock-dev libfmt-dev nlohmann-json3-dev zlib1g-dev libpng-dev libjpeg62-turbo-dev python3
  libonnx-dev libprotobuf-dev  # veridl export --onnx: ONNX's protobuf classes and checker (export/onnx.cpp)
  clang libclang-rt-14-dev libomp-14-dev llvm-14  # clang: the sanitizer + libFuzzer build of scripts/ci-checks.sh
  python3-torch python3-numpy  # Debian's PyTorch 1.13: the independent reference of tests/torch_conformance.py
  libopenblas0-openmp  # the optimized BLAS Debian's PyTorch recommends: without it libblas.so.3 is netlib's reference
                       # BLAS and the conformance tests' float64 references run 1.5-2x slower
  python3-dev python3-venv python3-pytest  # the Python module (python/): built for Debian's python3, tested in a venv of it
  chromium  # headless, renders the run report to a PNG in tests/test_report.cpp
  openmpi-bin libopenmpi-dev)  # data-parallel training: mpirun -np N veridl train (docs/distributed.md)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(dataset-fashion-mnist libjemalloc2)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# IREE's compiler and runtime from PyPI, in a venv at the repository root (.venv, git-ignored): the
# StableHLO export tests (tests/test_export.cpp) compile and run `veridl export` modules with them, and
# docs/gpu.md uses them. Skipped when the pinned version is already there.
IREE_VERSION=3.13.0
venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv"
iree_ok=1
for p in iree-base-compiler iree-base-runtime; do
  compgen -G "$venv/lib/python3*/site-packages/${p//-/_}-$IREE_VERSION.dist-info" >/dev/null || iree_ok=0
done
[[ -x "$venv/bin/iree-compile" && -x "$venv/bin/iree-run-module" ]] || iree_ok=0
if ((!iree_ok)); then
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  echo "installing IREE $IREE_VERSION (iree-base-compiler, iree-base-runtime) into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "iree-base-compiler==$IREE_VERSION" "iree-base-runtime==$IREE_VERSION"
fi
# onnx and onnxruntime, in the same venv: tests/test_onnx.cpp checks every `veridl export --onnx` model with
# onnx.checker (full_check) and runs it with onnxruntime (tests/onnx_run.py). Skipped when the pinned versions are there.
ONNX_VERSION=1.17.0
ORT_VERSION=1.20.1
# onnxruntime's wheel is also kept in .venv/wheelhouse: the PythonPackage test installs it into its fresh venv for the
# example script's ONNX step (python/examples/mnist_mlp.py).
if ! compgen -G "$venv/lib/python3*/site-packages/onnx-$ONNX_VERSION.dist-info" >/dev/null ||
   ! compgen -G "$venv/lib/python3*/site-packages/onnxruntime-$ORT_VERSION.dist-info" >/dev/null ||
   ! compgen -G "$venv/wheelhouse/onnxruntime-$ORT_VERSION-*.whl" >/dev/null; then
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  echo "installing onnx $ONNX_VERSION and onnxruntime $ORT_VERSION into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "onnx==$ONNX_VERSION" "onnxruntime==$ORT_VERSION"
  "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$venv/wheelhouse" "onnxruntime==$ORT_VERSION"
fi
# The Python package's build tools from PyPI (docs/python.md): nanobind (its C++ sources and CMake files: the main
# build compiles the module veridl._core when .venv has it) and scikit-build-core (the build backend of `pip install
# .`). Their wheels are also kept in .venv/wheelhouse, so that the PythonPackage test installs them into its fresh
# venv without the network. Skipped when the pinned versions are there.
NANOBIND_VERSION=2.9.2
SKBUILD_CORE_VERSION=0.11.6
py_ok=1
for p in "nanobind-$NANOBIND_VERSION" "scikit_build_core-$SKBUILD_CORE_VERSION"; do
  compgen -G "$venv/lib/python3*/site-packages/$p.dist-info" >/dev/null || py_ok=0
  compgen -G "$venv/wheelhouse/$p-*.whl" >/dev/null || py_ok=0
done
if ((!py_ok)); then
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  echo "installing nanobind $NANOBIND_VERSION and scikit-build-core $SKBUILD_CORE_VERSION into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "nanobind==$NANOBIND_VERSION" "scikit-build-core==$SKBUILD_CORE_VERSION"
  "$venv/bin/python" -m pip download -q --disable-pip-version-check --only-binary=:all: -d "$venv/wheelhouse" \
    "nanobind==$NANOBIND_VERSION" "scikit-build-core==$SKBUILD_CORE_VERSION"
fi
# --bench: the peers of bench/ from PyPI (PyTorch 2.x and JAX, pinned) in their own venv, .venv-bench
# (bench/setup-bench-venv.sh; idempotent).
if [[ "${1:-}" == "--bench" ]]; then
  bash "$(dirname "${BASH_SOURCE[0]}")/../bench/setup-bench-venv.sh"
fi
