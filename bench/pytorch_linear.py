#!/usr/bin/python3
"""PyTorch reference for VeriDL's MNIST linear classifier benchmark.

Model and recipe (must match specs/mnist_linear.json as trained by `veridl train`):
  * one dense layer 784 -> 10, softmax cross-entropy (mean over the batch)
  * W ~ He normal, std = sqrt(2 / 784); bias = 0
  * plain SGD, lr 0.1, no momentum, no weight decay
  * batch 128, the ragged last batch of every epoch is dropped
  * a new random permutation of the training set every epoch
  * pixels p / 255 as float32, no normalisation, no augmentation

Data is read from IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte, plain or .gz)
and preloaded as float32 tensors before the clock starts.  Only the training
loop is timed (data loading and evaluation are excluded).  After the last
epoch the whole test set is evaluated.  One JSON line is printed on stdout.

Run it with Debian's interpreter (/usr/bin/python3, package python3-torch),
normally through bench/pytorch_env.sh, which sets up the tuned environment.
"""

import argparse
import ctypes
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchutil  # noqa: E402


# --------------------------------------------------------------------------- data

def load_split(data_dir, prefix):
    images = benchutil.read_idx(benchutil.idx_path(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = benchutil.read_idx(benchutil.idx_path(data_dir, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{data_dir}/{prefix}: images {images.shape} vs labels {labels.shape}")
    x = torch.from_numpy(images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0))
    y = torch.from_numpy(labels.astype(np.int64))
    return x.contiguous(), y.contiguous()


# ------------------------------------------------------------------ introspection

def _mapped_libraries():
    libs = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and ".so" in parts[5]:
                    p = parts[5].strip()
                    if p not in libs:
                        libs.append(p)
    except OSError:
        pass
    return libs


def blas_info():
    """Describe the BLAS library actually mapped into this process."""
    libs = _mapped_libraries()
    info = {"libraries": [p for p in libs if "blas" in os.path.basename(p).lower()
                          or "lapack" in os.path.basename(p).lower()]}
    openblas = [p for p in libs if os.path.basename(p).startswith("libopenblas")]
    if openblas:
        path = openblas[0]
        info["openblas"] = path
        try:
            lib = ctypes.CDLL(path)  # already loaded: returns the same handle
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            info["config"] = lib.openblas_get_config().decode().strip()
            info["core"] = lib.openblas_get_corename().decode().strip()
            info["parallel"] = {0: "sequential", 1: "pthread", 2: "openmp"}.get(
                lib.openblas_get_parallel(), str(lib.openblas_get_parallel()))
            info["num_threads"] = lib.openblas_get_num_threads()
        except (OSError, AttributeError) as e:  # pragma: no cover - diagnostic only
            info["error"] = str(e)
    allocs = [os.path.basename(p) for p in libs
              if any(k in os.path.basename(p) for k in ("jemalloc", "tcmalloc", "mimalloc"))]
    return info, (allocs[0] if allocs else "glibc")


def set_openblas_threads(n):
    for p in _mapped_libraries():
        if os.path.basename(p).startswith("libopenblas"):
            try:
                ctypes.CDLL(p).openblas_set_num_threads(int(n))
                return True
            except (OSError, AttributeError):
                return False
    return False


# -------------------------------------------------------------------------- train

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="directory with the four IDX files (plain or .gz)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch.set_num_threads (intra-op threads); default 2")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="also call openblas_set_num_threads(N) (default: leave OpenBLAS "
                         "as its environment configured it)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.blas_threads is not None:
        set_openblas_threads(args.blas_threads)
    torch.manual_seed(args.seed)

    x_train, y_train = load_split(args.data, "train")
    x_test, y_test = load_split(args.data, "t10k")
    n_train, n_in = x_train.shape
    n_classes = 10
    steps = n_train // args.batch  # ragged last batch dropped
    if steps == 0:
        sys.exit(f"error: {n_train} training images < batch {args.batch}")

    model = torch.nn.Linear(n_in, n_classes)
    with torch.no_grad():
        model.weight.normal_(0.0, math.sqrt(2.0 / n_in))  # He normal, fan_in = 784
        model.bias.zero_()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    model.train()

    # Warm nothing up on purpose: the first epoch is timed like the others and is
    # reported in epoch_seconds so one can see whether it is slower.
    epoch_seconds = []
    last_epoch_loss = None
    last_batch_loss = None
    t_start = time.perf_counter()
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n_train, generator=gen)
        loss_sum = torch.zeros(())
        for i in range(steps):
            idx = perm[i * args.batch:(i + 1) * args.batch]
            xb = x_train[idx]
            yb = y_train[idx]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
        last_epoch_loss = float(loss_sum) / steps
        last_batch_loss = float(loss)
        epoch_seconds.append(time.perf_counter() - t0)
    train_seconds = time.perf_counter() - t_start

    model.eval()
    with torch.no_grad():
        pred = model(x_test).argmax(dim=1)
        correct = int((pred == y_test).sum())
    n_test = int(y_test.shape[0])

    blas, allocator = blas_info()
    result = {
        "framework": "pytorch",
        "train_seconds": train_seconds,
        "epoch_seconds": epoch_seconds,
        "images_per_second": steps * args.batch * args.epochs / train_seconds,
        "test_accuracy": 100.0 * correct / n_test,
        "test_correct": correct,
        "test_total": n_test,
        "final_loss": last_epoch_loss,   # mean training loss over the last epoch
        "last_batch_loss": last_batch_loss,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "blas": blas,
        "allocator": allocator,
        "train_images": n_train,
        "images_per_epoch": steps * args.batch,
        "epochs": args.epochs,
        "batch": args.batch,
        "lr": args.lr,
        "seed": args.seed,
        "env": {k: os.environ[k] for k in sorted(os.environ)
                if k.startswith(("OPENBLAS", "OMP_", "GOTO", "LD_PRELOAD", "LD_LIBRARY_PATH",
                                 "MALLOC_CONF", "KMP_"))},
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
