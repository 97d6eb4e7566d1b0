#!/usr/bin/env bash
# Mutation tests of test files that check code outside the contract registry (whose mutants are
# `veridl verify --mutants`): each mutant plants a bug in a copy of a header, compiles the test file
# against that copy (the copy's directory first on the include path), and the test must fail.
#   bash scripts/mutate-tests.sh
# Env: CXX (default g++), JOBS (mutants built and run at once; default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cxx=${CXX:-g++}
jobs_max=${JOBS:-2}
n=0

# mutant TEST_FILE HEADER (relative to src/) SED_EXPRESSION DESCRIPTION: plants the mutant, then builds and runs
# the test against it in the background (at most JOBS at once); its verdict goes to $tmp/m<k>/verdict.
mutant() {
  local test=$1 header=$2 expr=$3 what=$4 dir="$tmp/m$n"
  n=$((n + 1))
  mkdir -p "$dir/$(dirname "$header")"
  sed "$expr" "src/$header" > "$dir/$header"
  if cmp -s "src/$header" "$dir/$header"; then
    echo "MUTANT NOT PLANTED (the sed expression no longer matches): $what" > "$dir/verdict"; return
  fi
  (
    if ! "$cxx" -std=c++20 -O1 -fopenmp -I"$dir" -Isrc "$test" -lgtest -lgtest_main -lpthread -o "$dir/t" 2> "$dir/build.log"; then
      echo "MUTANT NOT BUILT: $what ($(head -c 300 "$dir/build.log"))"
    elif bash -c '"$0" > "$1" 2>&1' "$dir/t" "$dir/log" 2>/dev/null; then  # a crash counts as caught
      echo "MUTANT SURVIVED: $what ($test passes with it)"
    else
      echo "mutant caught: $what"
    fi > "$dir/verdict"
  ) &
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
}

t=tests/test_exact_backend.cpp
mutant $t veridl/prims/conv2d/reference.hpp 's|(n - 1 + pad - k) / stride + 1)|(n - 1 + pad - k) / stride)|' \
  "exact conv loops: the last valid output position dropped"
mutant $t veridl/prims/conv2d/reference.hpp 's|if (pad > k) r.lo = (pad - k + stride - 1) / stride;|if (pad > k) r.lo = (pad - k) / stride;|' \
  "exact conv loops: the first valid output position rounded down (reads the padding)"
mutant $t veridl/prims/conv2d/reference.hpp 's|ar\[j \* s.stride + kw - s.pad_left\].add_mul(w, dr\[j\])|ar[j * s.stride + kw - s.pad_left].add_mul(w, dr[j - sj.lo])|' \
  "exact conv input grad: dy read from the wrong column"
mutant $t veridl/calculus/dot.hpp 's|Zp<P>::from_raw(hi) \* r128;|Zp<P>::from_raw(hi);|' \
  "lazy dot: the overflow count weighted 1 instead of 2^128"
mutant $t veridl/calculus/dot.hpp 's|    d.add_mul(a.v, b.d);|    d.add_mul(a.v, b.v);|' \
  "lazy dual dot: the product rule's second term wrong"

wait
fails=0
for ((k = 0; k < n; k++)); do
  cat "$tmp/m$k/verdict"
  grep -q '^mutant caught' "$tmp/m$k/verdict" || fails=$((fails + 1))
done
if ((fails)); then
  echo "scripts/mutate-tests.sh: $fails mutant(s) not caught"
  exit 1
fi
echo "MUTATION TESTS OK"
