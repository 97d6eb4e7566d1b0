#!/bin/bash
# Run Debian's /usr/bin/python3 (PyTorch 1.13, package python3-torch) in the
# environment that gave PyTorch its fastest training of the MNIST linear model
# on the 2-core AVX2 reference machine.  See docs/bench-pytorch.md for the
# measurements behind every line.
#
#   bash bench/pytorch_env.sh bench/pytorch_linear.py --data DIR --threads 1 ...
#
# What it does, without touching any system setting (the libblas.so.3
# alternative stays as it is):
#   * drops every OPENBLAS_* / GOTO_* / OMP_* / KMP_* / MKL_* variable inherited
#     from the caller (OPENBLAS_CORETYPE=SkylakeX kills the process with SIGILL
#     on this AVX2-only CPU; CORETYPE/L2_SIZE overrides only ever lost time here);
#   * loads the OpenMP build of OpenBLAS 0.3.21 (package libopenblas0-openmp)
#     through LD_LIBRARY_PATH, so OpenBLAS shares libgomp's thread pool with
#     PyTorch instead of running its own pthread pool next to it;
#   * OMP_NUM_THREADS=1 (pass --threads 1 to pytorch_linear.py as well);
#     PYTORCH_BENCH_OMP_THREADS=N changes it (bench/nets_vs_pytorch.py uses 2), and
#     PYTORCH_BENCH_OMP_WAIT_POLICY=passive|active and PYTORCH_BENCH_GOMP_SPINCOUNT=N,
#     if set, are passed on as OMP_WAIT_POLICY and GOMP_SPINCOUNT (both unset by
#     default: libgomp's spin-then-sleep);
#   * LD_PRELOADs jemalloc (package libjemalloc2).
#
# Needs: python3-torch libopenblas0-openmp libjemalloc2 (Debian 12).
set -euo pipefail

LIBDIR=/usr/lib/x86_64-linux-gnu
OPENBLAS_DIR=${PYTORCH_BENCH_OPENBLAS_DIR:-$LIBDIR/openblas-openmp}
ALLOCATOR=${PYTORCH_BENCH_ALLOCATOR-$LIBDIR/libjemalloc.so.2}
OMP_THREADS=${PYTORCH_BENCH_OMP_THREADS:-1}
WAIT_POLICY=${PYTORCH_BENCH_OMP_WAIT_POLICY:-}
SPINCOUNT=${PYTORCH_BENCH_GOMP_SPINCOUNT:-}

missing=()
[ -x /usr/bin/python3 ] || missing+=("/usr/bin/python3 (python3)")
for f in "$OPENBLAS_DIR/libblas.so.3" "$OPENBLAS_DIR/liblapack.so.3" "$OPENBLAS_DIR/libopenblas.so.0"; do
  [ -e "$f" ] || missing+=("$f (libopenblas0-openmp)")
done
if [ -n "$ALLOCATOR" ] && [ ! -e "$ALLOCATOR" ]; then missing+=("$ALLOCATOR (libjemalloc2)"); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "pytorch_env.sh: missing: ${missing[*]}" >&2
  echo "pytorch_env.sh: install them with: bash scripts/install-deps.sh --bench (or apt-get install python3-torch libopenblas0-openmp libjemalloc2)" >&2
  exit 3
fi

unset_args=()
while IFS='=' read -r name _; do
  case "$name" in
    OPENBLAS_*|GOTO_*|OMP_*|KMP_*|MKL_*|GOMP_*) unset_args+=(-u "$name") ;;
  esac
done < <(env)

exec env "${unset_args[@]}" -u LD_PRELOAD -u LD_LIBRARY_PATH \
  LD_LIBRARY_PATH="$OPENBLAS_DIR" \
  ${ALLOCATOR:+LD_PRELOAD="$ALLOCATOR"} \
  OMP_NUM_THREADS="$OMP_THREADS" \
  ${WAIT_POLICY:+OMP_WAIT_POLICY="$WAIT_POLICY"} \
  ${SPINCOUNT:+GOMP_SPINCOUNT="$SPINCOUNT"} \
  /usr/bin/python3 "$@"
