#!/usr/bin/env bash
# A/B of the fused train step of two commits on this machine: builds bench_kernels at each commit (git
# worktrees under ${TMPDIR:-/tmp}, Release), then alternates `bench_kernels --net SPEC` runs of the two,
# ROUNDS times, so that the host's slow and fast phases fall on both; prints every run's median step time
# and the median over rounds of the per-round ratio OLD/NEW (> 1: NEW is faster).
#
#   [BATCH=N] bash bench/ab_step.sh OLD_REV [NEW_REV] [SPEC] [ROUNDS] [SECONDS]
#   defaults: NEW_REV=HEAD, SPEC=specs/mnist_mlp.json (relative to the repo, or an absolute path: a derived spec
#   such as ConvNeXt-T at 32x32), ROUNDS=5, SECONDS=3 per run, BATCH: bench_kernels' default
#
# Run it on an idle machine (no build running: both cores are in every step). OpenMP waits as `veridl train` waits
# (OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=3000, tools/veridl/main.cpp) unless the caller sets either variable; before
# session 27 this script set OMP_WAIT_POLICY=PASSIVE alone (no spin), under which the MLP's step took 2.65-2.75 ms
# against 1.66-1.76 with the spin (Intel Xeon): small steps' A/B ratios from then include that wake-up cost.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
old="${1:?usage: bash bench/ab_step.sh OLD_REV [NEW_REV] [SPEC] [ROUNDS] [SECONDS]}"
new="${2:-HEAD}"
spec="${3:-specs/mnist_mlp.json}"
rounds="${4:-5}"
seconds="${5:-3}"
[[ "$spec" = /* ]] || spec="$repo/$spec"
[[ -f "$spec" ]] || { echo "ab_step.sh: no spec file '$spec'" >&2; exit 2; }

build() {  # rev -> prints the path of its bench_kernels
  local rev sha dir
  rev="$1"
  sha="$(git -C "$repo" rev-parse --verify --quiet "$rev^{commit}")" || { echo "ab_step.sh: unknown revision '$rev'" >&2; exit 2; }
  dir="${TMPDIR:-/tmp}/veridl-ab-${sha:0:12}"
  if [[ ! -x "$dir/build/bench_kernels" ]]; then
    [[ -d "$dir" ]] || git -C "$repo" worktree add --detach --force "$dir" "$sha" >&2
    cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DVERIDL_TESTS=OFF >/dev/null
    cmake --build "$dir/build" --target bench_kernels -j2 >&2
  fi
  echo "$dir/build/bench_kernels"
}

a="$(build "$old")"
b="$(build "$new")"
step_ms() {  # binary -> the median step time in ms
  if [[ -n "${OMP_WAIT_POLICY:-}${GOMP_SPINCOUNT:-}" ]]; then set -- "$1"; else set -- "$1" OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=3000; fi
  env "${@:2}" "$1" --net "$spec" ${BATCH:+--batch "$BATCH"} --seconds "$seconds" | sed -n 's/.*train step median \([0-9.]*\) ms.*/\1/p'
}
ratios=()
for ((r = 1; r <= rounds; r++)); do
  ta="$(step_ms "$a")"
  tb="$(step_ms "$b")"
  ratio="$(awk -v x="$ta" -v y="$tb" 'BEGIN { printf "%.3f", x / y }')"
  ratios+=("$ratio")
  echo "round $r: $old ${ta} ms, $new ${tb} ms, ratio $ratio"
done
median="$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
echo "median ratio $old/$new step time over $rounds rounds: $median ($spec)"
