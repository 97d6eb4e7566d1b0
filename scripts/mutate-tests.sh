#!/usr/bin/env bash
# Mutation tests of test files that check code outside the contract registry (whose mutants are
# `veridl verify --mutants`): each mutant plants a bug in a copy of a header, compiles the test file
# against that copy (the copy's directory first on the include path), and the test must fail. A mutant's tests stop at
# their first failure (--gtest_fail_fast: one failure is the verdict; a surviving mutant still runs every case).
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
# plant DIR HEADER SED_EXPRESSION DESCRIPTION: writes the mutated copy of src/HEADER under DIR; fails (with the
# verdict written) when the expression no longer changes the header.
plant() {
  local dir=$1 header=$2 expr=$3 what=$4
  mkdir -p "$dir/$(dirname "$header")"
  sed "$expr" "src/$header" > "$dir/$header"
  if cmp -s "src/$header" "$dir/$header"; then
    echo "MUTANT NOT PLANTED (the sed expression no longer matches): $what" > "$dir/verdict"; return 1
  fi
}
mutant() {
  local test=$1 header=$2 expr=$3 what=$4 dir="$tmp/m$n"
  n=$((n + 1))
  plant "$dir" "$header" "$expr" "$what" || return 0
  (
    if ! "$cxx" -std=c++20 -O1 -fopenmp -I"$dir" -Isrc "$test" -lgtest -lgtest_main -lpthread -o "$dir/t" 2> "$dir/build.log"; then
      echo "MUTANT NOT BUILT: $what ($(head -c 300 "$dir/build.log"))"
    elif bash -c '"$0" --gtest_fail_fast > "$1" 2>&1' "$dir/t" "$dir/log" 2>/dev/null; then  # a crash counts as caught
      echo "MUTANT SURVIVED: $what ($test passes with it)"
    else
      echo "mutant caught: $what"
    fi > "$dir/verdict"
  ) &
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
}

# kernel_mutant FILE SED_EXPRESSION DESCRIPTION [PRIMITIVE FILTER]: a mutant of a file of a primitive's fast kernels
# (PRIMITIVE conv2d, the default, maxPool, batchNorm or dense: its kernel.cpp or a header it includes), compiled into
# the AVX2 variant of prims/PRIMITIVE/kernel.cpp and linked with the unmutated objects of every other variant and
# primitive, kernels/isa.cpp, tests/test_conv_kernels.cpp, tests/test_relu_bn_kernels.cpp and tests/test_kernels.cpp
# (built once, below); the tests' cases matching FILTER (default *Winograd*) run under VERIDL_ISA=avx2 and must fail.
# Skipped (said) on a CPU without AVX2.
kbase="$tmp/kernels"
kernel_objects() {
  [[ -d "$kbase" ]] && return
  mkdir -p "$kbase"
  local f=(-std=c++20 -O1 -fopenmp -Wno-psabi -Isrc)
  for l in 0 1 2; do  # conv2d's kernels call dense's (1x1 planes); tests/test_kernels.cpp calls softmaxCE's
    for p in maxPool conv2d dense batchNorm relu softmaxCE; do
      "$cxx" "${f[@]}" -DVERIDL_ISA_LEVEL=$l -c src/veridl/prims/$p/kernel.cpp -o "$kbase/$p$l.o" &
      while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
    done
  done
  "$cxx" "${f[@]}" -c src/veridl/kernels/isa.cpp -o "$kbase/isa.o" &
  "$cxx" "${f[@]}" -Itests -c tests/test_conv_kernels.cpp -o "$kbase/test.o" &
  "$cxx" "${f[@]}" -Itests -c tests/test_relu_bn_kernels.cpp -o "$kbase/test_bn.o" &
  "$cxx" "${f[@]}" -Itests -c tests/test_kernels.cpp -o "$kbase/test_dense.o" &
  wait
}
kernel_mutant() {
  local file=$1 expr=$2 what=$3 prim=${4:-conv2d} filter=${5:-*Winograd*} dir="$tmp/m$n"
  n=$((n + 1))
  plant "$dir" "$file" "$expr" "$what" || return 0
  if ! grep -qw avx2 /proc/cpuinfo; then
    echo "mutant caught: $what (skipped: this CPU has no AVX2, so runs no AVX2 kernel)" > "$dir/verdict"; return
  fi
  local src=src/veridl/prims/$prim/kernel.cpp
  [[ "$file" == "veridl/prims/$prim/kernel.cpp" ]] && src="$dir/$file"
  local others=()
  for o in "$kbase"/*.o; do [[ "$o" == "$kbase/${prim}1.o" ]] || others+=("$o"); done
  (
    if ! "$cxx" -std=c++20 -O1 -fopenmp -DVERIDL_ISA_LEVEL=1 -I"$dir" -Isrc -c "$src" -o "$dir/k1.o" 2> "$dir/build.log" ||
      ! "$cxx" -fopenmp "$dir/k1.o" "${others[@]}" -lgtest -lgtest_main -lfmt -lpthread -o "$dir/t" 2>> "$dir/build.log"; then
      echo "MUTANT NOT BUILT: $what ($(head -c 300 "$dir/build.log"))"
    elif VERIDL_ISA=avx2 bash -c '"$0" --gtest_filter="$2" --gtest_fail_fast > "$1" 2>&1' "$dir/t" "$dir/log" "$filter" 2>/dev/null; then
      echo "MUTANT SURVIVED: $what (the kernel tests' $filter cases pass with it)"
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

kernel_objects
w=veridl/prims/conv2d/winograd.hpp
kernel_mutant $w 's|o\[0\] = ((d\[0\] - k(2.0f) \* d\[2\]) + d\[4\]) + k(1.5f)|o[0] = ((d[0] - k(2.0f) * d[2]) + d[4]) + k(1.0f)|' \
  "Winograd: a wrong coefficient in B^T's first row"
kernel_mutant $w 's|Vec::store(buf + (i \* nw + 4 \* tx + j) \* Op + o0, o\[j\] + bv);|Vec::store(buf + (i * nw + 4 * tx + j) * Op + o0, o[j]);|' \
  "Winograd: the bias dropped from the output transform"
kernel_mutant $w 's|2 - static_cast<ptrdiff_t>(s.pad_top)|1 - static_cast<ptrdiff_t>(s.pad_top)|' \
  "Winograd input gradient: dy padded by 1 - pad instead of 2 - pad at the top"
kernel_mutant $w 's|for (size_t e = 0; e < 9; ++e) g\[e\]\[l\] = w\[flip ? 8 - e : e\];|for (size_t e = 0; e < 9; ++e) g[e][l] = w[e];|' \
  "Winograd input gradient: the kernel not flipped"
kernel_mutant $w 's|r0 == 0 ? Init::Zero : Init::C|Init::Zero|' \
  "Winograd weight gradient: each group of tiles overwrites the sums of the groups before it"
kernel_mutant $w 's|for (size_t i = r8; i < rows; ++i)|for (size_t i = rows; i < rows; ++i)|' \
  "Winograd: the channel-minor transpose drops the rows past the last multiple of 8 (channels, or output columns)"
kernel_mutant $w 's|std::fill(d, d + a \* Cp, 0.0f);|(void)a;|' \
  "Winograd: the strip's columns left of the plane (the left padding) not zeroed"
kernel_mutant $w 's|std::fill(d, d + nc \* Cp, 0.0f);|(void)d;|' \
  "Winograd: the strip's rows outside the plane (top and bottom padding) not zeroed"
c=veridl/prims/conv2d/kernel.cpp
kernel_mutant $c 's|dense_backward_weight(ops::DenseShape{s.B, s.O, g.K}, dy, x, dW)|dense_backward_weight(ops::DenseShape{s.B, g.K, s.O}, x, dy, dW)|' \
  "conv2d weight gradient on 1x1 planes: the dense kernel's roles not swapped (dW transposed)" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|    for (size_t t = 1; t < nparts; ++t) acc += parts\[t \* stride + i\];|    for (size_t t = 1; t < nparts; ++t) acc += parts[(nparts - t) * stride + i];|' \
  "conv2d weight gradient with x transposed: the partials added in another order (other bits)" conv2d "*Pointwise*"
kernel_mutant $c 's|        std::fill(dW + o0 \* g.K, dW + o1 \* g.K, 0.0f);|        (void)o1;|' \
  "conv2d weight gradient of a large pointwise weight with x transposed: dW's rows not zeroed first" conv2d "*Pointwise*"
kernel_mutant $c 's|gemm(Gemm{o1 - o0, g.K, np, dy + (bi \* s.O + o0) \* g.P + p0,|gemm(Gemm{o1 - o0, g.K, np, dy + bi * s.O * g.P + p0,|' \
  "conv2d weight gradient of a large pointwise weight with x transposed: every thread reads dy's first rows" conv2d "*Pointwise*"
kernel_mutant $c 's|transpose_positions(x + bi \* g.C \* g.H \* g.W + p0, g.P, np, 0, g.K, xT, g.K);|transpose_positions(x + bi * g.C * g.H * g.W + p0, g.P, np, 0, g.K - 1, xT, g.K);|' \
  "conv2d weight gradient with x transposed: its last channel not copied" conv2d "*Conv2dDiff*:*Pointwise*"
kernel_mutant $c 's|im2col(g, x + bi \* g.C \* g.H \* g.W, p0, p0 + np, col + q0, D);|im2col(g, x + bi * g.C * g.H * g.W, p0, p0 + np, col, D);|' \
  "conv2d weight gradient of a large weight: every unit's plane copied to col's first columns" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|std::fill(yu, yu + g.P, s.bias ? b\[c\] : 0.0f);|std::fill(yu, yu + g.P, 0.0f);|' \
  "depthwise on tiny planes: the bias dropped" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|if (iw < 0 \|\| iw >= static_cast<ptrdiff_t>(g.W)) continue;|if (iw < 0) continue;|' \
  "depthwise on tiny planes: taps right of the plane kept (they read the next row)" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|std::fill(dxu, dxu + HW, 0.0f);|(void)dxu;|' \
  "depthwise input gradient on tiny planes: dx not zeroed first" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|for (size_t o = o8; o < o1; ++o) out\[q \* ld + (o - o0)\] = src\[o \* P + q\];|(void)o8;|' \
  "conv2d weight gradient: the dy transpose drops the channels past the last block of 8" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|_mm256_storeu_ps(out + (q0 + j) \* ld + (o - o0), r\[j\]);|_mm256_storeu_ps(out + (q0 + j) * ld + o, r[j]);|' \
  "conv2d weight gradient: the dy transpose's blocks stored at the channel, not its offset in the block of columns" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|case 4: return copy_rows_of<4>(src, lds, dst, ldd, rows);|case 4: return copy_rows_of<2>(src, lds, dst, ldd, rows);|' \
  "conv2d on images side by side: half of each row of a 2x2 plane copied" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|micro::ColSeg{g.P, s.O \* g.P, s.C \* g.P}|micro::ColSeg{g.P, s.O * g.P, s.O * g.P}|' \
  "pointwise input gradient on images side by side: dx's images written dy's plane stride apart" conv2d "*ImageGroupsGive*"
kernel_mutant veridl/kernels/gemm_tile.hpp 's|e = std::min(lanes, a + (seg - c % seg));|e = lanes;|' \
  "segmented product columns: a vector's lanes past a segment's end stored on into that segment" conv2d "*ImageGroupsGive*"
kernel_mutant veridl/kernels/gemm_tile.hpp 's|t.c1 = g.cs.coff(n0 + Vec::kLanes) - g.cs.coff(n0);|t.c1 = Vec::kLanes;|' \
  "segmented product columns: a tile's second vector stored into the first one's image" conv2d "*ImageGroupsGive*"
kernel_mutant $c 's|copy_rows(src + (bi \* rows + r0) \* P, P, out + (bi - b0) \* P, ld, r1 - r0, P);|copy_rows(src + bi * rows * P, P, out + (bi - b0) * P, ld, r1 - r0, P);|' \
  "conv2d weight gradient of small pointwise planes: every thread's rows from the first channels" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|copy_rows(src + (bi \* rows + r0) \* P, P, out + (bi - b0) \* P, ld, r1 - r0, P);|copy_rows(src + (bi * rows + r0) * P, P, out, ld, r1 - r0, P);|' \
  "conv2d weight gradient of small pointwise planes: every image's plane at the group's first columns" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|transpose_positions(tmp, D, D, 0, r1 - r0, out, ld);|transpose_positions(tmp, D, P, 0, r1 - r0, out, ld);|' \
  "conv2d weight gradient of small pointwise planes (2x2, 3x3, 7x7): only the group's first image transposed" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|if (!by_o) for_chunks(O, K \* O \* 4|if (false) for_chunks(O, K * O * 4|' \
  "conv2d weight gradient of small pointwise planes, more input than output channels: dW^T never transposed into dW" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|default: return dw_taps_block<8>(xp, off, wt, KK, bias, yp, q0, tail);|default: return dw_taps_block<7>(xp, off, wt, KK, bias, yp, q0, tail);|' \
  "depthwise padded plane in registers: a remainder of 8 vectors computed as 7" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|for (; t + 8 <= KK; t += 8) dw_weight_taps<8>(xp, off + t, dyp, n, lanes + t \* 8);|for (; t + 8 <= KK; t += 8) dw_weight_taps<8>(xp, off, dyp, n, lanes + t * 8);|' \
  "depthwise weight gradient, taps side by side: every group of 8 taps reads the first group's offsets" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|  if (n8 < n) {|  if (false) {|' \
  "depthwise weight gradient, taps side by side: the positions past the last multiple of 8 dropped" conv2d "*Conv2dDiff*"
kernel_mutant $c 's|    std::fill(xp, xp + (OH + KH - 1) \* (OW + KW - 1) + KW - 1, 0.0f);|    (void)xp;|' \
  "depthwise padded plane: the scratch's padding never zeroed (only the plane's cells written)" conv2d "*Conv2dDiff*"
m=veridl/prims/maxPool/kernel.cpp
kernel_mutant $m 's|_mm256_cmp_ps(v, best, _CMP_GT_OQ)|_mm256_cmp_ps(v, best, _CMP_GE_OQ)|' \
  "max-pool 2x2 vector path: a tie goes to the later cell" maxPool "*MaxPool*"
kernel_mutant $m 's|_mm256_cmp_ps(v, best, _CMP_GT_OQ)|_mm256_cmp_ps(v, best, _CMP_NLE_UQ)|' \
  "max-pool 2x2 vector path: a NaN candidate replaces the best" maxPool "*MaxPool*"
kernel_mutant $m 's|take(best, id, columns<true>(b0, b1), 3);|take(best, id, columns<true>(b0, b1), 2);|' \
  "max-pool 2x2 vector path: the last cell given the third cell's index" maxPool "*MaxPool*"
kernel_mutant $m 's|lane_mask(2 \* r > 8 ? 2 \* r - 8 : 0)|lane_mask(0)|' \
  "max-pool 2x2 vector path: the tail's second vector of inputs not loaded" maxPool "*MaxPool*"
kernel_mutant $m 's|2 \* s.OW() <= s.W;|2 * s.OW() <= s.W + 1;|' \
  "max-pool 2x2 vector path: taken for a window that reaches the padding" maxPool "*MaxPool*"
b=veridl/prims/batchNorm/kernel.cpp
bn="*BatchNormDiff*:*KernelsBatchNorm*:*KernelsReluBn*"
kernel_mutant $b 's|mr\[k\] = static_cast<uint8_t>(on);|mr[k] = 1;|' \
  "fused BatchNorm-ReLU forward: the mask set everywhere" batchNorm "$bn"
kernel_mutant $b 's|yr\[k\] = on ? v : 0.0f;|yr[k] = v;|' \
  "fused BatchNorm-ReLU forward: the ReLU not applied to the output" batchNorm "$bn"
kernel_mutant $b 's|return _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpgt_epi32(on, _mm256_setzero_si256())));|(void)on; return v;|' \
  "fused BatchNorm-ReLU backward: the sums' 8-wide blocks read dy ungated" batchNorm "$bn"
kernel_mutant $b 's|const float gk = kRelu ? gate(g\[k\], m\[k\]) : g\[k\];|const float gk = g[k];|' \
  "fused BatchNorm-ReLU backward: dx from dy ungated" batchNorm "$bn"
kernel_mutant $b 's|u &= 0u - static_cast<uint32_t>(on != 0);|v *= static_cast<float>(on != 0); std::memcpy(\&u, \&v, sizeof u);|' \
  "fused BatchNorm-ReLU backward: the gate a multiplication by the mask (a NaN or infinite dy at a closed gate gives NaN, not +0)" batchNorm "$bn"
kernel_mutant $b 's|y\[off + k\] = relu \&\& !(v > 0.0f) ? 0.0f : v;|y[off + k] = v;|' \
  "fused BatchNorm-ReLU eval forward: the ReLU not applied" batchNorm "$bn"
kernel_mutant $b 's|std::fill_n(w.begin(), n, ChannelWork{});||' \
  "BatchNorm channel groups: the per-channel sums not reset between calls" batchNorm "$bn"
kernel_mutant $b 's|HW, w\[c - c0\].mu, w\[c - c0\].a2)|HW, w[0].mu, w[c - c0].a2)|' \
  "BatchNorm channel groups: every channel's variance about the group's first mean" batchNorm "$bn"
kernel_mutant $b 's|body(s.C \* static_cast<size_t>(g) / groups, |body(s.C * static_cast<size_t>(g) / groups + (g > 0), |' \
  "BatchNorm channel groups: each later group's first channel skipped" batchNorm "$bn"
kernel_mutant $b 's|stats\[s.C + c\] = cw.rc;|stats[s.C + c] = cw.mu;|' \
  "BatchNorm: the forward saves the mean where the backward reads r" batchNorm "$bn"
kernel_mutant $b 's|const double mu = stats\[c\], rc = stats\[s.C + c\];|const double mu = 0.0, rc = stats[s.C + c];|' \
  "BatchNorm backward: dx's xhat recomputed without subtracting the mean" batchNorm "$bn"
d=veridl/prims/dense/kernel.cpp
kernel_mutant $d 's|transpose_cols(I, O, W, Wt, lo \* 8, std::min(O, hi \* 8));|transpose_cols(I, O, W, Wt, lo * 8, std::min(O, hi * 8 - 8));|' \
  "dense's transposed copy of W (the forward's dot products): each chunk's last block of 8 columns left out" dense "*DenseDiff*O10*"
g=veridl/kernels/gemm_tile.hpp
kernel_mutant $g 's|for (size_t k = 0; k < kw; ++k) _mm256_storeu_ps(out + (k0 + k) \* kTileCols + j0, r\[k\]);|for (size_t k = 1; k < kw; ++k) _mm256_storeu_ps(out + (k0 + k) * kTileCols + j0, r[k]);|' \
  "dense input gradient: W's panels packed from its rows (transB) lose each block's first depth" dense "*DenseDiff*"

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
