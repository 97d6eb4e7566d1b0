#!/usr/bin/env bash
# Creates the benchmark venv /work/main/.venv-bench (git-ignored) with PyTorch 2.x, JAX (CPU) and NumPy from PyPI,
# for bench/convnets_speed.py, bench/gemm_vs_peers.py and bench/peers.py. Never part of the default set-up
# (scripts/install-deps.sh): the wheels are large.
#
#   bash bench/setup-bench-venv.sh            # idempotent: does nothing but print the versions when done before
#
# Environment:
#   PYTHON           the interpreter the venv is made from (default /usr/bin/python3, Debian's 3.11)
#   VENV             where (default <repo>/.venv-bench)
#   TORCH_VERSION    the pinned torch version (default 2.15.0)
#   JAX_VERSION      the pinned jax and jaxlib version (default 0.10.2)
#   TORCH_INDEX_URL  an extra index to take torch from, e.g. https://download.pytorch.org/whl/cpu for the
#                    CPU-only wheel (about 200 MB instead of several GB). Unset by default: on Linux x86-64
#                    plain PyPI only serves the CUDA build (torch + nvidia-* + triton, several GB), whose CPU
#                    code (oneDNN, MKL, the ATen CPU kernels) is the same as the CPU build's; without a GPU
#                    it runs on the CPU. The PyTorch host is not reachable from the machines this project runs on.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
PYTHON="${PYTHON:-/usr/bin/python3}"
VENV="${VENV:-$repo/.venv-bench}"
TORCH_VERSION="${TORCH_VERSION:-2.15.0}"
JAX_VERSION="${JAX_VERSION:-0.10.2}"
NUMPY_SPEC="${NUMPY_SPEC:-numpy>=1.24,<3}"

report() {
  "$VENV/bin/python" - <<'EOF'
import sys, torch, numpy, jax
print(f"python {sys.version.split()[0]} at {sys.executable}")
print(f"torch.__version__ {torch.__version__}")
print(f"torch.backends.mkldnn.is_available() {torch.backends.mkldnn.is_available()}")
print(f"torch.version.cuda {torch.version.cuda} (cuda available: {torch.cuda.is_available()})")
print(f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}")
print(f"numpy {numpy.__version__}")
print(f"jax {jax.__version__} (backend {jax.default_backend()})")
EOF
}

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "
import sys, torch, numpy, jax
sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' and jax.__version__ == '$JAX_VERSION' else 1)" 2>/dev/null; then
  echo "setup-bench-venv: $VENV already has torch $TORCH_VERSION and jax $JAX_VERSION"
  report
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup-bench-venv: creating $VENV from $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
extra=()
if [[ -n "${TORCH_INDEX_URL:-}" ]]; then extra=(--index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple); fi
echo "setup-bench-venv: pip install torch==$TORCH_VERSION ${extra[*]:-} (from PyPI this is the CUDA build: several GB)"
"$VENV/bin/python" -m pip install --progress-bar off "${extra[@]}" "torch==$TORCH_VERSION" "$NUMPY_SPEC"
echo "setup-bench-venv: pip install jax[cpu]==$JAX_VERSION"
"$VENV/bin/python" -m pip install --progress-bar off "jax[cpu]==$JAX_VERSION" "$NUMPY_SPEC"
report
