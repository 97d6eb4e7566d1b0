#!/usr/bin/python3
"""Parameter counts of the chapter 6-7 specs against torchvision's models.

For ResNet-18, ResNet-34, ResNet-50 and MobileNetV2 (torchvision.models.<name>(num_classes=10),
random weights, nothing downloaded) this compares torchvision's parameter count with

  (a) the count of the model bench/pytorch_nets.py builds from specs/<spec>.json, and
  (b) the count `veridl info --spec specs/<spec>.json` prints in its first line
      ("NAME: N params, ...").

It prints a table and exits 1 on any mismatch (2 on bad usage or a failed veridl run).
Without torchvision (Debian: apt-get install python3-torchvision) it prints one line saying
so and exits 0.

--forward also checks that the builder computes torchvision's function: torchvision's
parameters and BatchNorm buffers are copied into the builder's model in registration order
(both register conv1, bn1, conv2, bn2, (conv3, bn3,) downsample per block; expand, depthwise,
project per inverted residual), then both run in eval mode on the same random batch and the
largest absolute difference of the logits is printed (it must stay below 1e-5 of the
largest logit; the two run the same ops, so it is normally exactly 0).  BatchNorm gamma,
beta and running statistics are set to the same random values in both first, so that a
relu / relu6 mix-up or a padding difference shows.  A few seconds per network on one thread.

  /usr/bin/python3 bench/torchvision_counts.py [--veridl build/veridl] [--forward]
"""

import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# (torchvision builder, spec file, the count docs/netspec.md pins)
NETS = (("resnet18", "specs/resnet18.json", 11_181_642),
        ("resnet34", "specs/resnet34.json", 21_289_802),
        ("resnet50", "specs/resnet50.json", 23_528_522),
        ("mobilenet_v2", "specs/mobilenetv2.json", 2_236_682))


def veridl_count(veridl, spec):
    r = subprocess.run([veridl, "info", "--spec", spec], capture_output=True, text=True, cwd=REPO)
    if r.returncode != 0:
        raise RuntimeError(f"{veridl} info --spec {spec}: exit {r.returncode}: {r.stderr.strip()}")
    first = r.stdout.splitlines()[0] if r.stdout else ""
    m = re.match(r"^.*?: (\d+) params\b", first)
    if not m:
        raise RuntimeError(f"{veridl} info --spec {spec}: unexpected first line {first!r}")
    return int(m.group(1))


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def forward_diff(torch, tv_model, model, spec):
    """Copy tv_model's parameters and BN buffers into model (registration order), give the
    BatchNorms of both the same random gamma, beta and running statistics (so that every
    BN, every activation and every ReLU6 clip matters), run both in eval mode on one random
    batch; returns (max |difference|, max |logit|)."""
    nn = torch.nn
    tv_p, my_p = list(tv_model.parameters()), list(model.parameters())
    tv_b = [b for n, b in tv_model.named_buffers() if not n.endswith("num_batches_tracked")]
    my_b = [b for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")]
    if len(tv_p) != len(my_p) or len(tv_b) != len(my_b):
        raise RuntimeError(f"tensor counts differ: torchvision {len(tv_p)} params / {len(tv_b)} "
                           f"buffers, builder {len(my_p)} / {len(my_b)}")
    tv_bn = [m for m in tv_model.modules() if isinstance(m, nn.BatchNorm2d)]
    my_bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if len(tv_bn) != len(my_bn):
        raise RuntimeError(f"BatchNorm counts differ: torchvision {len(tv_bn)}, builder {len(my_bn)}")
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for a, b in zip(tv_p + tv_b, my_p + my_b):
            if a.shape != b.shape:
                raise RuntimeError(f"shape {tuple(a.shape)} (torchvision) vs {tuple(b.shape)} (builder)")
            b.copy_(a)
        for a, b in zip(tv_bn, my_bn):
            c = a.num_features
            for name, v in (("weight", torch.rand(c, generator=g) * 1.5 + 0.5),
                            ("bias", torch.randn(c, generator=g) * 0.5),
                            ("running_mean", torch.randn(c, generator=g) * 0.1),
                            ("running_var", torch.rand(c, generator=g) * 0.5 + 0.75)):
                getattr(a, name).copy_(v)
                getattr(b, name).copy_(v)
        tv_model.eval()
        model.eval()
        x = torch.randn(2, spec.get("channels", 1), spec["imageH"], spec["imageW"], generator=g)
        ya, yb = tv_model(x), model(x)
    if ya.shape != yb.shape:
        raise RuntimeError(f"output {tuple(ya.shape)} (torchvision) vs {tuple(yb.shape)} (builder)")
    return float((ya - yb).abs().max()), float(ya.abs().max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--veridl", default=os.path.join(REPO, "build", "veridl"),
                    help="veridl binary (default: build/veridl in the repo)")
    ap.add_argument("--forward", action="store_true",
                    help="also compare eval-mode logits with torchvision's weights copied in")
    args = ap.parse_args()

    try:
        import torchvision
    except ImportError:
        print("torchvision_counts: skipped: torchvision is not importable "
              "(Debian: apt-get install python3-torchvision)")
        return 0
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, HERE)
    import pytorch_nets  # noqa: E402

    if not os.access(args.veridl, os.X_OK):
        print(f"error: veridl binary {args.veridl} not found or not executable", file=sys.stderr)
        return 2

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, veridl {args.veridl}")
    hdr = "| torchvision | spec | torchvision | pytorch_nets.py | veridl info | pinned |"
    ncol = 6
    if args.forward:
        hdr += " max abs logit difference (max abs logit) |"
        ncol += 1
    print(hdr)
    print("|---" * ncol + "|")
    bad = []
    for tv_name, spec_rel, pinned in NETS:
        spec_path = os.path.join(REPO, spec_rel)
        torch.manual_seed(0)
        tv_model = getattr(torchvision.models, tv_name)(weights=None, num_classes=10)
        spec = pytorch_nets.load_spec(spec_path)
        model, _ = pytorch_nets.build_model(spec)
        n_tv, n_b = n_params(tv_model), n_params(model)
        try:
            n_v = veridl_count(args.veridl, spec_rel)
        except (RuntimeError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        row = f"| {tv_name} | {spec_rel} | {n_tv:,} | {n_b:,} | {n_v:,} | {pinned:,} |"
        if not n_tv == n_b == n_v == pinned:
            bad.append(tv_name)
        if args.forward:
            try:
                d, scale = forward_diff(torch, tv_model, model, spec)
                row += f" {d:.3g} ({scale:.3g}) |"
                if not d <= 1e-5 * scale:
                    bad.append(f"{tv_name} (forward)")
            except RuntimeError as e:
                row += f" FAILED: {e} |"
                bad.append(f"{tv_name} (forward)")
        print(row, flush=True)
        del tv_model, model
    if bad:
        print(f"MISMATCH: {', '.join(bad)}")
        return 1
    print("all counts agree" + (" and the forwards match" if args.forward else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
