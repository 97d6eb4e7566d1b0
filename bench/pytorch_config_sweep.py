#!/usr/bin/python3
"""Sweep PyTorch runtime configurations for bench/pytorch_linear.py.

Each configuration is a set of environment variables (which Debian OpenBLAS
build is loaded, its thread count, LD_PRELOAD'ed allocator, OPENBLAS_* knobs)
plus torch.set_num_threads.  Configurations are run in interleaved passes so
that slow drifts of the machine affect all of them alike.  Every run's JSON
line is appended to --out; at the end a table sorted by the median seconds per
epoch is printed (markdown).

The OpenBLAS build is selected per process with LD_LIBRARY_PATH pointing at
/usr/lib/x86_64-linux-gnu/openblas-{pthread,openmp,serial}; the system's
libblas.so.3 alternative is never touched.  Needs the Debian packages
python3-torch, libopenblas0-pthread, libopenblas0-openmp, libopenblas0-serial,
libjemalloc2 and libtcmalloc-minimal4.

  /usr/bin/python3 bench/pytorch_config_sweep.py --data /usr/share/datasets/fashion-mnist
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchutil  # noqa: E402

LIBDIR = "/usr/lib/x86_64-linux-gnu"
ALLOCATORS = {
    "glibc": None,
    "jemalloc": f"{LIBDIR}/libjemalloc.so.2",
    "tcmalloc": f"{LIBDIR}/libtcmalloc_minimal.so.4",
}
SCRUB_PREFIXES = ("OPENBLAS", "GOTO", "OMP_", "KMP_", "MKL_")
SCRUB_NAMES = ("LD_PRELOAD", "LD_LIBRARY_PATH", "MALLOC_CONF")


def base_env():
    return {k: v for k, v in os.environ.items()
            if not k.startswith(SCRUB_PREFIXES) and k not in SCRUB_NAMES}


def make_configs(which):
    cfgs = []
    if which in ("full", "core"):
        allocs = ALLOCATORS if which == "full" else {"glibc": None, "jemalloc": ALLOCATORS["jemalloc"]}
        for alloc in allocs:
            for blas in ("pthread", "openmp", "serial"):
                for tt in (1, 2):
                    blas_threads = [1, 2] if blas == "pthread" else [None]
                    for bt in blas_threads:
                        env = {}
                        if blas != "pthread":  # pthread is the system default alternative
                            env["LD_LIBRARY_PATH"] = f"{LIBDIR}/openblas-{blas}"
                        if bt is not None:
                            env["OPENBLAS_NUM_THREADS"] = str(bt)
                        if ALLOCATORS[alloc]:
                            env["LD_PRELOAD"] = ALLOCATORS[alloc]
                        name = f"{blas} torch{tt}" + (f" blas{bt}" if bt else "") + f" {alloc}"
                        cfgs.append({"name": name, "env": env, "threads": tt})
    if which in ("full", "core", "wrapper"):
        # exactly what bench/mnist_linear_vs_pytorch.py runs
        for tt in (1, 2):
            cfgs.append({"name": f"pytorch_env.sh torch{tt}", "env": {}, "threads": tt,
                         "wrapper": True})
    if which == "knobs":
        # The OPENBLAS_* variables the issue says may be set in the environment.
        for tt in (1, 2):
            for label, env in (
                ("default", {}),
                ("CORETYPE=Haswell", {"OPENBLAS_CORETYPE": "Haswell"}),
                ("CORETYPE=SkylakeX", {"OPENBLAS_CORETYPE": "SkylakeX"}),
                ("CORETYPE=Prescott", {"OPENBLAS_CORETYPE": "Prescott"}),
                ("L2_SIZE=64", {"OPENBLAS_L2_SIZE": "64"}),
                ("L2_SIZE=4096", {"OPENBLAS_L2_SIZE": "4096"}),
            ):
                cfgs.append({"name": f"pthread torch{tt} {label}", "env": env, "threads": tt})
    return cfgs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--set", choices=("full", "core", "knobs", "wrapper"), default="full")
    ap.add_argument("--only", nargs="*", default=None, help="substrings; keep configs matching all")
    ap.add_argument("--names", nargs="*", default=None, help="keep only these exact config names")
    ap.add_argument("--out", default=None, help="append JSON lines here")
    ap.add_argument("--quiet-cores", type=float, default=0.15,
                    help="before each run wait (up to --max-wait s) until the machine uses less "
                         "than this many cores")
    ap.add_argument("--max-wait", type=float, default=60.0)
    ap.add_argument("--accept-foreign", type=float, default=0.15,
                    help="repeat a run if other processes used more than this many cores during it")
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--boost", type=int, default=0,
                    help="raise the runs' CPU priority by N nice levels (root; see benchutil)")
    ap.add_argument("--timeout", type=float, default=180.0)
    args = ap.parse_args()

    if args.boost:
        print(f"priority boost: {benchutil.boost_priority(args.boost)}", file=sys.stderr)
    cfgs = make_configs(args.set)
    if args.only:
        cfgs = [c for c in cfgs if all(s in c["name"] for s in args.only)]
    if args.names:
        unknown = set(args.names) - {c["name"] for c in cfgs}
        if unknown:
            sys.exit(f"unknown config names: {sorted(unknown)}")
        cfgs = [c for c in cfgs if c["name"] in args.names]
    results = {c["name"]: [] for c in cfgs}
    failures = {}
    out = open(args.out, "a") if args.out else None
    for p in range(args.passes):
        for c in cfgs:
            env = base_env()
            env.update(c["env"])
            launcher = (["bash", os.path.join(HERE, "pytorch_env.sh")] if c.get("wrapper")
                        else ["/usr/bin/python3"])
            cmd = launcher + [os.path.join(HERE, "pytorch_linear.py"), "--data", args.data,
                   "--epochs", str(args.epochs), "--seed", str(1 + p), "--threads", str(c["threads"])]
            for attempt in range(args.retries + 1):
                waited = benchutil.wait_quiet(args.quiet_cores, max_wait=args.max_wait)
                r, st = benchutil.run_measured(cmd, env=env, timeout=args.timeout)
                wall, foreign = st["wall"], st["foreign_cores"]
                if foreign <= args.accept_foreign or attempt == args.retries:
                    break
                print(f"[pass {p}] {c['name']}: foreign load {foreign:.2f} cores, repeating",
                      file=sys.stderr, flush=True)
            if r is None or r.returncode != 0:
                msg = "timeout" if r is None else f"exit {r.returncode}: {r.stderr.strip()[-300:]}"
                failures[c["name"]] = msg
                print(f"[pass {p}] {c['name']}: FAILED {msg} (foreign load {foreign:.2f})",
                      file=sys.stderr, flush=True)
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            res["config"] = c
            res.update(st)
            res["nice"] = os.nice(0)
            res["waited_for_quiet"] = waited
            results[c["name"]].append(res)
            if out:
                out.write(json.dumps(res) + "\n")
                out.flush()
            steady = statistics.median(res["epoch_seconds"][1:] or res["epoch_seconds"])
            print(f"[pass {p}] {c['name']:<34} {steady:.4f} s/epoch  acc {res['test_accuracy']:.2f}  "
                  f"core={res['blas'].get('core')} par={res['blas'].get('parallel')} "
                  f"nt={res['blas'].get('num_threads')} alloc={res['allocator']} foreign={foreign:.2f} "
                  f"preempt={st['preemptions']} cpu={st['child_cpu']:.1f}s "
                  f"wall={wall:.1f}s", file=sys.stderr, flush=True)

    rows = []
    for name, runs in results.items():
        if not runs:
            continue
        steady = [statistics.median(r["epoch_seconds"][1:] or r["epoch_seconds"]) for r in runs]
        mean_epoch = [r["train_seconds"] / len(r["epoch_seconds"]) for r in runs]
        rows.append((statistics.median(steady), min(steady), statistics.median(mean_epoch),
                     name, runs[0], [r["test_accuracy"] for r in runs],
                     max(r["foreign_cores"] for r in runs),
                     max(r["preemptions"] for r in runs)))
    rows.sort()
    print(f"| configuration | median s/epoch (epochs 2..{args.epochs}) | best run | "
          f"train_seconds/{args.epochs} (median) | runs | BLAS core / threading / threads | allocator | "
          f"test acc (seeds 1..) | max foreign load (cores) | max preemptions |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for med, best, mean_e, name, r0, accs, fl, pre in rows:
        b = r0["blas"]
        print(f"| {name} | {med:.4f} | {best:.4f} | {mean_e:.4f} | {len(accs)} | "
              f"{b.get('core')} / {b.get('parallel')} / {b.get('num_threads')} | {r0['allocator']} | "
              f"{', '.join(f'{a:.2f}' for a in accs)} | {fl:.2f} | {pre} |")
    for name, msg in failures.items():
        print(f"| {name} | FAILED: {msg[:120]} | | | | | | | | |")


if __name__ == "__main__":
    main()
