#!/usr/bin/env python3
"""VeriDL's GEMM-shaped kernels beside PyTorch 2.x's (MKL sgemm for the dense products, oneDNN for conv2d) at the
chapter nets' shapes, same threads, alternating the two across rounds.

VeriDL's side is `bench_kernels --gemm --csv` (bench/kernels_bench.cpp: every kernel variant the CPU runs, with
the FMA peak of each vector width); PyTorch's is this script, in the bench venv (bench/setup-bench-venv.sh):
  dense   forward  torch.addmm(b, x, W)           input grad  dy @ W^T        weight grad  x^T @ dy
  conv2d  forward  F.conv2d(x, W, b, padding)     input / weight grad  aten.convolution_backward with only
                                                  that output requested
Shapes and flop counts are written here from the kernels' definitions (2 flops per multiply-add), not read from
VeriDL. The flops are the direct convolution's for both sides, whatever algorithm runs: VeriDL's 3x3 convolutions
take Winograd F(4x4, 3x3) (a quarter of the multiplies), so their GFLOP/s are effective rates that can exceed
the FMA peak (VERIDL_WINOGRAD=0 in the environment measures the im2col path instead). Each round runs VeriDL once
then PyTorch once (then the other order); the table gives the median GFLOP/s over the rounds, VeriDL's variant
(the best the CPU runs, or --isa), and the ratio VeriDL / PyTorch.

  cmake --build build --target bench_kernels
  .venv-bench/bin/python bench/gemm_vs_peers.py [--rounds 3] [--threads 1 2] [--isa avx512]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

DENSE = [("128x784->512 (MLP)", 128, 784, 512), ("128x512->512 (MLP)", 128, 512, 512),
         ("3152x192->192 (ViT-Tiny b16 q/k/v/proj)", 3152, 192, 192),
         ("3152x192->768 (ViT-Tiny b16 fc1)", 3152, 192, 768), ("3152x768->192 (ViT-Tiny b16 fc2)", 3152, 768, 192)]
# (label, B, C, HW, O, k): stride 1, padding k // 2
CONV = [("3x3 32->32 28x28 b32", 32, 32, 28, 32, 3), ("3x3 64->64 56x56 b8", 8, 64, 56, 64, 3),
        ("3x3 128->128 28x28 b8", 8, 128, 28, 128, 3), ("3x3 256->256 14x14 b8", 8, 256, 14, 256, 3),
        ("3x3 512->512 7x7 b8", 8, 512, 7, 512, 3), ("1x1 64->256 56x56 b8", 8, 64, 56, 256, 1),
        ("1x1 192->32 28x28 b8", 8, 192, 28, 32, 1), ("1x1 384->64 14x14 b8", 8, 384, 14, 64, 1),
        ("1x1 960->160 7x7 b8", 8, 960, 7, 160, 1),
        # ConvNeXt-T at a 32x32 input, batch 128: each stage's two pointwise convolutions (8x8 down to 1x1)
        ("1x1 96->384 8x8 b128 (CNX32)", 128, 96, 8, 384, 1), ("1x1 384->96 8x8 b128 (CNX32)", 128, 384, 8, 96, 1),
        ("1x1 192->768 4x4 b128 (CNX32)", 128, 192, 4, 768, 1), ("1x1 768->192 4x4 b128 (CNX32)", 128, 768, 4, 192, 1),
        ("1x1 384->1536 2x2 b128 (CNX32)", 128, 384, 2, 1536, 1), ("1x1 1536->384 2x2 b128 (CNX32)", 128, 1536, 2, 384, 1),
        ("1x1 768->3072 1x1 b128 (CNX32)", 128, 768, 1, 3072, 1), ("1x1 3072->768 1x1 b128 (CNX32)", 128, 3072, 1, 768, 1)]


def median_time(f, budget=0.25):
    f()
    t0 = time.perf_counter()
    f()
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(50e-6 / once))
    samples = min(max(5, int(budget / (once * inner))), 400)
    ts = []
    for _ in range(samples):
        a = time.perf_counter()
        for _ in range(inner):
            f()
        ts.append((time.perf_counter() - a) / inner)
    return statistics.median(ts)


def torch_round(threads, only=""):
    import torch
    import torch.nn.functional as F
    torch.manual_seed(0)
    out = {}
    with torch.no_grad():
        for th in threads:
            torch.set_num_threads(th)
            for label, B, I, O in [d for d in DENSE if only in d[0]]:
                x, W, b, dy = torch.randn(B, I), torch.randn(I, O), torch.randn(O), torch.randn(B, O)
                y, dx, dW = torch.empty(B, O), torch.empty(B, I), torch.empty(I, O)
                f = 2.0 * B * I * O
                out[("dense_forward", label, th)] = f / median_time(lambda: torch.addmm(b, x, W, out=y)) / 1e9
                Wt = W.t()
                out[("dense_backward_input", label, th)] = f / median_time(lambda: torch.mm(dy, Wt, out=dx)) / 1e9
                xt = x.t()
                out[("dense_backward_weight", label, th)] = f / median_time(lambda: torch.mm(xt, dy, out=dW)) / 1e9
            for label, B, C, HW, O, k in [c for c in CONV if only in c[0]]:
                x, W, b = torch.randn(B, C, HW, HW), torch.randn(O, C, k, k), torch.randn(O)
                dy = torch.randn(B, O, HW, HW)
                p = k // 2
                f = 2.0 * B * O * HW * HW * C * k * k
                cb = torch.ops.aten.convolution_backward
                out[("conv2d_forward", label, th)] = f / median_time(lambda: F.conv2d(x, W, b, padding=p)) / 1e9
                out[("conv2d_backward_input", label, th)] = f / median_time(
                    lambda: cb(dy, x, W, [O], [1, 1], [p, p], [1, 1], False, [0, 0], 1, [True, False, False])) / 1e9
                out[("conv2d_backward_weight", label, th)] = f / median_time(
                    lambda: cb(dy, x, W, [O], [1, 1], [p, p], [1, 1], False, [0, 0], 1, [False, True, False])) / 1e9
    return out


def veridl_round(binary, threads, only=""):
    env = dict(os.environ, OMP_NUM_THREADS=str(max(threads)), OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    r = subprocess.run([binary, "--gemm", "--csv", "--quick"] + (["--only", only] if only else []), check=True,
                       capture_output=True, text=True, env=env)
    out, peak = {}, {}
    for line in r.stdout.splitlines():
        op, shape, isa, th, g, pk = line.split(",")
        out[(op, shape, isa, int(th))] = float(g)
        peak[(isa, int(th))] = float(pk)
    return out, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-kernels", default=os.path.join(REPO, "build", "bench_kernels"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--isa", default=None, help="the VeriDL variant to compare (default: the best the CPU runs)")
    ap.add_argument("--only", default="", help="only the shapes whose label contains this (e.g. CNX32, 3x3)")
    args = ap.parse_args()
    import torch
    vd, pt, peaks = [], [], []
    for r in range(args.rounds):
        order = ["veridl", "torch"] if r % 2 == 0 else ["torch", "veridl"]
        for who in order:
            if who == "veridl":
                o, p = veridl_round(args.bench_kernels, args.threads, args.only)
                vd.append(o)
                peaks.append(p)
            else:
                pt.append(torch_round(args.threads, args.only))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    isas = sorted({k[2] for k in vd[0]}, key=["portable", "avx2", "avx512"].index)
    isa = args.isa or isas[-1]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"cpu: {cpu}; VeriDL variant {isa}; PyTorch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}, "
          f"MKL {torch.backends.mkl.is_available()}, oneDNN {torch.backends.mkldnn.is_available()}); median of "
          f"{args.rounds} alternating rounds")
    for th in args.threads:
        pk = statistics.median(p[(isa, th)] for p in peaks)
        print(f"\n{th} thread(s); {isa} FMA peak {pk:.0f} GFLOP/s")
        print(f"{'op':<23} {'shape':<34} {'VeriDL':>8} {'%peak':>6} {'PyTorch':>8} {'ratio':>6}")
        ratios, missing = [], []
        for op_shape in [(o, s) for (o, s, i, t) in vd[0] if i == isa and t == th]:
            if (op_shape[0], op_shape[1], th) not in pt[0]:
                missing.append(f"{op_shape[0]} {op_shape[1]}")
                continue
            v = statistics.median(o[(op_shape[0], op_shape[1], isa, th)] for o in vd)
            t = statistics.median(o[(op_shape[0], op_shape[1], th)] for o in pt)
            ratios.append(v / t)
            print(f"{op_shape[0]:<23} {op_shape[1]:<34} {v:8.1f} {100 * v / pk:5.0f}% {t:8.1f} {v / t:6.2f}")
        print(f"geometric mean ratio: {statistics.geometric_mean(ratios):.2f}; min {min(ratios):.2f}")
        if missing:
            print(f"not in this script's PyTorch shapes (add them to DENSE / CONV): {'; '.join(missing)}")


if __name__ == "__main__":
    main()
