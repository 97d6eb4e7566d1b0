#!/usr/bin/env bash
# Builds the libFuzzer harnesses in fuzz/ with clang + ASan + UBSan (build-fuzz) and runs each for a bounded time on
# a scratch COPY of its seed corpus (fuzz/corpus/<name>/ is never modified). Exits non-zero on any crash, uncaught
# non-veridl::Error exception, hang (> 10 s on one input), leak, out-of-memory or sanitizer report, printing the
# reproducer path.
#   bash scripts/fuzz.sh                   all harnesses, FUZZ_SECONDS (default 30) each
#   bash scripts/fuzz.sh idx checkpoint    only these (netspec idx cifar checkpoint)
#   FUZZ_SECONDS=300 bash scripts/fuzz.sh  longer runs
# Env: FUZZ_SECONDS, BUILD_DIR (default build-fuzz), JOBS (build parallelism and harnesses run at once, default 2),
# CXX (default clang++),
# FUZZ_CONFIGURE=0 (use BUILD_DIR as configured, e.g. the sanitizer build of scripts/ci-checks.sh, which has the
# harnesses),
# FUZZ_STACK_KB (default 1024: the harnesses run with a 1 MiB stack so that recursion driven by the input, e.g. JSON
# nesting depth, shows up as a stack overflow within the few-KB inputs the fuzzer tries).
# Reproduce a finding: (ulimit -s 1024; build-fuzz/fuzz_<name> <reproducer file>)
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
FUZZ_STACK_KB=${FUZZ_STACK_KB:-1024}
BUILD=${BUILD_DIR:-build-fuzz}
JOBS=${JOBS:-2}
CXX_COMPILER=${CXX:-clang++}
all=(netspec idx cifar checkpoint image)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown harness '$t' (known: ${all[*]})" >&2; exit 2; }
done
[[ "$FUZZ_SECONDS" =~ ^[0-9]+$ && "$FUZZ_SECONDS" -gt 0 ]] || { echo "fuzz.sh: FUZZ_SECONDS must be a positive integer" >&2; exit 2; }

# Longest input each harness may grow to (CIFAR needs room for a few 3073-byte records).
declare -A max_len=([netspec]=8192 [idx]=8192 [cifar]=16384 [checkpoint]=8192 [image]=16384)

start=$SECONDS
build_rc=0
if [[ "${FUZZ_CONFIGURE:-1}" != 0 ]]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_COMPILER" -DVERIDL_FUZZ=ON -DVERIDL_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null || build_rc=$?
fi
((build_rc)) || cmake --build "$BUILD" -j"$JOBS" --target "${targets[@]/#/fuzz_}" || build_rc=$?
build_time=$((SECONDS - start))
if ((build_rc)); then
  echo "FUZZ FAILED: configuring or building the harnesses failed (exit $build_rc) after ${build_time}s"
  exit 1
fi

# Sanitizer reports abort the process so libFuzzer records the input; leaks are checked per input and at exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1:symbolize=1}
export OMP_NUM_THREADS=1
if ! command -v llvm-symbolizer >/dev/null && [[ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

# The harnesses run JOBS at a time (each single-threaded, FUZZ_SECONDS of wall time), then are reported in order.
fuzz_one() {
  local t=$1 run="$BUILD/fuzz-runs/$1" rc=0
  (
    ulimit -s "$FUZZ_STACK_KB"
    exec "$BUILD/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len="${max_len[$t]}" \
      -dict="fuzz/$t.dict" -artifact_prefix="$run/artifacts/" -print_final_stats=1 "$run/corpus"
  ) >"$run/log" 2>&1 || rc=$?
  echo "$rc" >"$run/rc"
}
for t in "${targets[@]}"; do
  run="$BUILD/fuzz-runs/$t"
  rm -rf "$run"
  mkdir -p "$run/artifacts"
  cp -r "fuzz/corpus/$t" "$run/corpus"
  echo "== fuzz_$t: ${FUZZ_SECONDS}s on a copy of fuzz/corpus/$t ($(ls "fuzz/corpus/$t" | wc -l) seeds)"
  fuzz_one "$t" &
  while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
done
wait

failed=()
for t in "${targets[@]}"; do
  run="$BUILD/fuzz-runs/$t"
  rc=$(cat "$run/rc" 2>/dev/null || echo 125)
  repro=$(find "$run/artifacts" -type f | sort)
  if ((rc != 0)) || [[ -n "$repro" ]]; then
    failed+=("$t")
    echo "!! fuzz_$t FAILED (exit $rc); the report (full log: $run/log):"
    # From the first report line: the message and the top of the stack (lines cut to 240 characters).
    awk '/terminate called|ERROR: |runtime error:|invariant violated|out-of-memory|Timeout after|leak/ {on=1} on && n++ < 40' \
      "$run/log" | cut -c1-240 | sed 's/^/   /'
    grep -E '^SUMMARY' "$run/log" | sed 's/^/   /' || true  # none after a plain signal
    for f in $repro; do
      echo "!! reproducer: $f  (run: (ulimit -s $FUZZ_STACK_KB; $BUILD/fuzz_$t $f))"
      if (($(stat -c %s "$f") <= 4096)); then echo "   base64: $(base64 -w0 "$f")"; fi
    done
  else
    stats=$(grep -E '^stat::(number_of_executed_units|new_units_added)' "$run/log" | tr '\n' ' ')
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$run/log" | tail -n1)
    echo "   fuzz_$t ok: $stats$cov"
  fi
done

total=$((SECONDS - start))
if ((${#failed[@]})); then
  echo "FUZZ FAILED: ${failed[*]} (build ${build_time}s, total ${total}s); reproducers under $BUILD/fuzz-runs/*/artifacts/"
  exit 1
fi
echo "FUZZ OK: ${targets[*]} ran ${FUZZ_SECONDS}s each without findings (build ${build_time}s, total ${total}s)"
