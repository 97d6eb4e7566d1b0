#!/usr/bin/env bash
# Builds VeriDL and its tests with AddressSanitizer + UndefinedBehaviorSanitizer (VERIDL_SANITIZE=ON, in build-asan)
# and runs the whole ctest suite with leak detection. Exits non-zero on any build or test failure and on any
# sanitizer report, including reports from processes the tests spawn (the veridl CLI).
#   bash scripts/sanitize.sh
# Env: BUILD_DIR (default build-asan), JOBS (default 2), CXX (default: CMake's choice, g++),
#      SANITIZE_FLAGS (default "-O1 -g1": assertions stay on, line tables for symbolized stack traces),
#      SANITIZE_CMAKE_ARGS (more configure arguments; scripts/ci-checks.sh adds the fuzzers to this build).
# ASan/LSan reports are written to $BUILD_DIR/sanitizer-logs/ (so a CLI run inside a test cannot hide one) and
# printed at the end. UBSan aborts at the first report (-fno-sanitize-recover) and prints to stderr (GCC's libubsan
# ignores log_path next to libasan), which ctest shows for the failing test; the full ctest log is scanned as well.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD_DIR:-build-asan}
JOBS=${JOBS:-2}
FLAGS=${SANITIZE_FLAGS:-"-O1 -g1"}
start=$SECONDS
compiler=()
[[ -n "${CXX:-}" ]] && compiler=(-DCMAKE_CXX_COMPILER="$CXX")

mkdir -p "$BUILD"
logs="$(cd "$BUILD" && pwd)/sanitizer-logs"
# Test discovery runs the test binary at build time, so the options are in force for the build too.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
if ! command -v llvm-symbolizer >/dev/null && [[ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

read -r -a extra <<<"${SANITIZE_CMAKE_ARGS:-}"
cmake -S . -B "$BUILD" -G Ninja "${compiler[@]}" -DVERIDL_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$FLAGS" "${extra[@]}" >/dev/null
rm -rf "$logs" "$BUILD/Testing/Temporary/LastTest.log"
mkdir -p "$logs"
build_rc=0
cmake --build "$BUILD" -j"$JOBS" || build_rc=$?
build_time=$((SECONDS - start))
test_rc=0
if ((build_rc == 0)); then
  ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" || test_rc=$?
fi
total=$((SECONDS - start))

reports=$(find "$logs" -type f -size +0 | sort)
for f in $reports; do
  echo "== sanitizer report $f:"
  cut -c1-240 "$f" | head -n 60 | sed 's/^/   /'
done
nreports=$(echo -n "$reports" | grep -c . || true)
ubsan=0
if [[ -f "$BUILD/Testing/Temporary/LastTest.log" ]]; then
  ubsan=$(grep -c -E 'runtime error:|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer' "$BUILD/Testing/Temporary/LastTest.log" || true)
  if ((ubsan)); then
    echo "== sanitizer reports in the ctest output ($BUILD/Testing/Temporary/LastTest.log):"
    grep -E 'runtime error:|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer' "$BUILD/Testing/Temporary/LastTest.log" |
      cut -c1-240 | sort | uniq -c | head -n 20 | sed 's/^/   /'
  fi
fi
if ((build_rc != 0)); then
  echo "SANITIZE FAILED: the build failed (exit $build_rc) after ${build_time}s"
  exit 1
fi
if ((test_rc != 0 || nreports != 0 || ubsan != 0)); then
  echo "SANITIZE FAILED: ctest exit $test_rc, $nreports ASan/LSan report file(s) in $logs, $ubsan sanitizer line(s) in the ctest log (build ${build_time}s, total ${total}s)"
  exit 1
fi
echo "SANITIZE OK: all tests pass under ASan+UBSan+LSan with no sanitizer report (build ${build_time}s, total ${total}s)"
