#!/usr/bin/python3
"""The machine's float32 GEMM ceiling: OpenBLAS sgemm (through PyTorch's torch.mm, run by
bench/pytorch_env.sh: the OpenMP OpenBLAS build) on large square matrices, 1 and 2 threads.

The figure the MLP's training GFLOP/s is compared against in docs/results-history.md. Prints the best
GFLOP/s over several repetitions per size (2 n^3 flops per product).

  bash bench/pytorch_env.sh bench/gemm_ceiling.py            # sizes 1024 2048, threads 1 2
  bash bench/pytorch_env.sh bench/gemm_ceiling.py --sizes 3072 --threads 2
"""
import argparse
import time

import torch


def best_gflops(n, reps):
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)  # warm up (thread pool, pages)
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        dt = time.perf_counter() - t0
        best = max(best, 2.0 * n ** 3 / dt / 1e9)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    for t in args.threads:
        torch.set_num_threads(t)
        for n in args.sizes:
            print(f"sgemm {n}x{n}x{n}, {t} thread(s): {best_gflops(n, args.reps):.1f} GFLOP/s (best of {args.reps})",
                  flush=True)


if __name__ == "__main__":
    main()
