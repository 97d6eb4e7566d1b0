#!/usr/bin/python3
"""A model of data-parallel scaling to 8-64 nodes on a 100 Gb/s network (docs/distributed.md), from measured figures.

Inputs (measured on this machine; the commands are in docs/distributed.md):
  --step-ms      one node's train-step time at its per-node batch (forward, backward, optimizer): bench_kernels --net
  --params       the parameter count (veridl info --spec): the gradient is 4 x params bytes
  --buckets-mb   the bucket size (veridl train --bucket-mb, default 4)
Assumptions (stated, not measured here): the network's usable bandwidth (--gbps, default 100 Gb/s line rate at
--efficiency 0.8), a per-message latency --latency-us (default 5 us, MPI over RDMA or a tuned TCP stack), the backward is
--bwd-frac (default 2/3) of the step (its GEMMs are twice the forward's), and a bucket's communication can overlap the
rest of the backward once the bucket is posted.

Model per step, N nodes, gradient G bytes in k buckets of about G/k:
  communication  T_c = 2 (N-1)/N G / BW + 2 (N-1) k alpha          (reduce-scatter + all-gather, as dist.cpp does:
                                                                    an all-to-all and an all-gather per bucket)
  hidden         the part of T_c that runs during the backward after the first bucket is posted:
                 at most T_bwd (k-1)/k (the last bucket is posted when the backward ends, so it is always exposed)
  exposed        T_x = max(T_c / k, T_c - T_bwd (k - 1) / k)
  efficiency     T_step / (T_step + T_x)    (weak scaling: the per-node batch fixed; throughput N x per-node rate x eff)
"""
import argparse


def model(step_ms, params, n, gbps, eff, latency_us, bwd_frac, bucket_mb):
    G = 4.0 * params
    k = max(1, round(G / (bucket_mb * 1048576)))
    bw = gbps * 1e9 / 8 * eff
    tc = 2 * (n - 1) / n * G / bw * 1e3 + 2 * (n - 1) * k * latency_us * 1e-3
    tb = bwd_frac * step_ms
    tx = max(tc / k, tc - tb * (k - 1) / k)
    return k, tc, tx, step_ms / (step_ms + tx)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--step-ms", type=float, required=True)
    ap.add_argument("--batch", type=int, required=True, help="the per-node batch the step was measured at")
    ap.add_argument("--params", type=int, required=True)
    ap.add_argument("--gbps", type=float, default=100)
    ap.add_argument("--efficiency", type=float, default=0.8)
    ap.add_argument("--latency-us", type=float, default=5)
    ap.add_argument("--bwd-frac", type=float, default=2 / 3)
    ap.add_argument("--buckets-mb", type=float, default=4)
    ap.add_argument("--speedup", type=float, nargs="*", default=[1, 16],
                    help="node speeds relative to this machine (1: a node like this 2-core VM)")
    a = ap.parse_args()
    print(f"{a.name}: {a.params:,} params ({4 * a.params / 1e6:.1f} MB of gradients), measured step {a.step_ms:.0f} ms at "
          f"batch {a.batch} per node; {a.gbps:g} Gb/s x {a.efficiency:g}, {a.latency_us:g} us per message, "
          f"{a.buckets_mb:g} MB buckets")
    print("| node speed | nodes | step (ms) | all-reduce (ms) | exposed (ms) | efficiency | images/s |")
    print("|---|---|---|---|---|---|---|")
    for s in a.speedup:
        step = a.step_ms / s
        for n in (8, 16, 32, 64):
            k, tc, tx, e = model(step, a.params, n, a.gbps, a.efficiency, a.latency_us, a.bwd_frac, a.buckets_mb)
            print(f"| {s:g}x this machine | {n} | {step:.1f} | {tc:.1f} | {tx:.2f} | {e:.1%} | "
                  f"{n * a.batch / (step + tx) * 1e3:,.0f} |")


if __name__ == "__main__":
    main()
