#!/usr/bin/env bash
# A/B of VeriDL's OpenMP waiting settings on the Fashion-MNIST linear model: the median epoch time (ms) of a
# 6-epoch run for each setting, on the machine as it is ("idle") and with one core kept busy by `yes`
# ("one core busy"), alternating settings so that drift hits all of them alike.
#   bash bench/omp_wait_policy.sh [VERIDL_BINARY] [REPS]
# Needs Fashion-MNIST (apt-get install dataset-fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."
veridl=${1:-build/veridl}
reps=${2:-2}
# "default": nothing set, VeriDL's own choice (tools/veridl/main.cpp: PASSIVE after GOMP_SPINCOUNT=3000 spins);
# SPINCOUNT=0 is purely passive waiting (VeriDL's default before), 30000 a ten times longer spin.
settings=("OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=0" "default" "OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=30000")
median_epoch_ms() {
  local s=$1
  [[ "$s" == default ]] && s=""
  env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT $s "$veridl" train --spec specs/mnist_linear.json --data fashion-mnist --epochs 6 --threads 2 --no-progress 2>&1 |
    sed -n 's/^Epoch .*(\([0-9]*\)ms)$/\1/p' | sort -n | sed -n 3p
}
busy=""
trap '[[ -n "$busy" ]] && kill "$busy" 2>/dev/null || true' EXIT
for mode in idle "one core busy"; do
  if [[ "$mode" != idle ]]; then yes >/dev/null & busy=$!; fi
  for ((r = 1; r <= reps; r++)); do
    line="$mode, rep $r:"
    for s in "${settings[@]}"; do line+="  [$s] $(median_epoch_ms "$s") ms"; done
    echo "$line"
  done
done
