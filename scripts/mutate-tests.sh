#!/usr/bin/env bash
# Mutation tests of test files that check code outside the contract registry (whose mutants are
# `veridl verify --mutants`): each mutant plants a bug in a copy of a header, compiles the test file
# against that copy (the copy's directory first on the include path), and the test must fail.
#   bash scripts/mutate-tests.sh
# Env: CXX (default g++).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cxx=${CXX:-g++}
fails=0

# mutant TEST_FILE HEADER (relative to src/) SED_EXPRESSION DESCRIPTION
mutant() {
  local test=$1 header=$2 expr=$3 what=$4 dir="$tmp/m$RANDOM"
  mkdir -p "$dir/$(dirname "$header")"
  sed "$expr" "src/$header" > "$dir/$header"
  if cmp -s "src/$header" "$dir/$header"; then
    echo "MUTANT NOT PLANTED (the sed expression no longer matches): $what"; fails=$((fails + 1)); return
  fi
  "$cxx" -std=c++20 -O1 -fopenmp -I"$dir" -Isrc "$test" -lgtest -lgtest_main -lpthread -o "$dir/t"
  if bash -c '"$0" > "$1" 2>&1' "$dir/t" "$dir/log" 2>/dev/null; then  # a crash counts as caught
    echo "MUTANT SURVIVED: $what ($test passes with it)"; fails=$((fails + 1))
  else
    echo "mutant caught: $what"
  fi
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

if ((fails)); then
  echo "scripts/mutate-tests.sh: $fails mutant(s) not caught"
  exit 1
fi
echo "MUTATION TESTS OK"
