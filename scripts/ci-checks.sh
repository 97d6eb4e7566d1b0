#!/usr/bin/env bash
# The checks CI runs after the Release test suite (README's test command): the test-file mutants
# (scripts/mutate-tests.sh), the whole test suite under
# ASan + UBSan + LSan, then every libFuzzer harness for a bounded time. One clang build (build-asan) serves both:
# the sanitized library also carries the fuzzers' coverage instrumentation (CMakeLists.txt, VERIDL_FUZZ with
# VERIDL_SANITIZE). The IREE export tests already ran in the Release suite and are not repeated here.
#   bash scripts/ci-checks.sh
# Env: FUZZ_SECONDS (default 12 per harness, a smoke run inside CI's time budget; the earlier 20 s ran 140,000 to
# 580,000 inputs per harness on a 2-core AMD EPYC; longer runs: fuzz/README.md), JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/mutate-tests.sh
CXX=clang++ SANITIZE_CMAKE_ARGS="-DVERIDL_FUZZ=ON -DVERIDL_IREE_TESTS=OFF" bash scripts/sanitize.sh
BUILD_DIR=build-asan FUZZ_CONFIGURE=0 FUZZ_SECONDS="${FUZZ_SECONDS:-12}" bash scripts/fuzz.sh
echo "CI CHECKS OK: sanitizers and fuzzers clean ($((SECONDS - start))s)"
