#!/usr/bin/python3
"""Parameter counts of the chapter 6-9 specs against torchvision's models.

For ResNet-18, ResNet-34, ResNet-50, MobileNetV2, EfficientNet-B0 and ConvNeXt-T
(torchvision.models.<name>(num_classes=10), random weights, nothing downloaded; ConvNeXt-T
against specs/convnext_tiny_torchvision.json) this compares torchvision's parameter count
with

  (a) the count of the model bench/pytorch_nets.py builds from specs/<spec>.json,
  (b) the count `veridl info --spec specs/<spec>.json` prints in its first line
      ("NAME: N params, ..."), and
  (c) the pinned count (docs/netspec.md's; the spec's description for the chapter 8-9 nets).

The specs without a torchvision twin (SPEC_ONLY: efficientnet_b0_original_layout,
convnext_tiny, convnext_tiny_train, pinned at 7,155,658, 27,826,282 and 27,826,186; the
small efficientnet_b0_small and convnext_small28, not pinned) are rows with "-" for
torchvision: (a) must equal (b) and the pinned count where there is one.

It prints a table and exits 1 on any mismatch (2 on bad usage or a failed veridl run).
Without torchvision (Debian: apt-get install python3-torchvision) it prints one line saying
so and exits 0.

--forward also checks that the builder computes torchvision's function: torchvision's
BatchNorm gamma, beta and running statistics, LayerNorm (LayerNorm2d included) gamma and
beta, and ConvNeXt layer-scale gammas are first set to random values (so that a relu /
relu6 / swish / GELU-form mix-up, a padding difference, the blocks' LayerNorm eps or a
missing layer scale shows; the head LayerNorm's eps, 1e-5 for 1e-6, moves the logits by
only about 1e-5 of the largest, which the tolerance below does not catch), then its
parameters and BatchNorm buffers are copied into the builder's model in registration
order (both register conv1, bn1, conv2, bn2, (conv3, bn3,) downsample per block; expand,
depthwise, project per inverted residual; expand, depthwise, SE fc1 (weight, bias), fc2,
project per MBConv), except that a CNBlock's layer_scale,
which torchvision registers first, is taken after its block (the builder's dw, ln, pw1,
pw2, ls order); a pair may differ in shape only by trailing 1s (torchvision's SE 1x1 convs
[o, i, 1, 1] into the builder's dense [o, i]; CNBlock's nn.Linear [o, i] into 1x1 convs;
layer_scale [c, 1, 1] into gamma [c]).  Then both run in eval mode on the same random
batch and the largest absolute difference of the logits is printed (it must stay below
1e-5 of the largest logit; the ResNets and MobileNetV2 run the same ops, so it is normally
exactly 0; EfficientNet's SE and ConvNeXt's pointwise layers are Linear in one and a 1x1
conv in the other, a rounding-level difference).  The SPEC_ONLY rows run the builder's
He-initialised model alone on a random batch and check the logits' shape and that they are
finite.  A few seconds per network on one thread.

  /usr/bin/python3 bench/torchvision_counts.py [--veridl build/veridl] [--forward]
"""

import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# (torchvision builder, spec file, the pinned count: docs/netspec.md's for the chapter 6-7
# nets, the spec's description for EfficientNet-B0 and ConvNeXt-T)
NETS = (("resnet18", "specs/resnet18.json", 11_181_642),
        ("resnet34", "specs/resnet34.json", 21_289_802),
        ("resnet50", "specs/resnet50.json", 23_528_522),
        ("mobilenet_v2", "specs/mobilenetv2.json", 2_236_682),
        ("efficientnet_b0", "specs/efficientnet_b0.json", 4_020_358),
        ("convnext_tiny", "specs/convnext_tiny_torchvision.json", 27_827_818))

# specs without a torchvision twin: (spec file, pinned count, or None for "the builder's
# count must equal veridl info's")
SPEC_ONLY = (("specs/efficientnet_b0_original_layout.json", 7_155_658),
             ("specs/convnext_tiny.json", 27_826_282),
             ("specs/convnext_tiny_train.json", 27_826_186),
             ("specs/efficientnet_b0_small.json", None),
             ("specs/convnext_small28.json", None))


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


def tv_tensors_in_builder_order(module):
    """torchvision's parameters in the builder's order: registration order (a module's own
    parameters, then its children's), except that a ConvNeXt CNBlock registers its
    layer_scale before its block, where the builder's <layer>.<j>.ls follows .pw2."""
    if type(module).__name__ == "CNBlock":
        return list(module.block.parameters()) + [module.layer_scale]
    own = list(module.parameters(recurse=False))
    return own + [p for c in module.children() for p in tv_tensors_in_builder_order(c)]


def _strip_ones(shape):
    """The shape without its trailing 1s: [c, 1, 1] -> [c], [o, i, 1, 1] -> [o, i]."""
    shape = list(shape)
    while shape and shape[-1] == 1:
        shape.pop()
    return shape


def forward_diff(torch, tv_model, model, spec):
    """Give torchvision's BatchNorms random gamma, beta and running statistics, its
    LayerNorms random gamma and beta and its ConvNeXt layer scales random gammas (so that
    every normalisation, every activation and every ReLU6 clip matters), copy its parameters
    (tv_tensors_in_builder_order) and BN buffers (registration order) into model, run both
    in eval mode on one random batch; returns (max |difference|, max |logit|).  A pair of
    tensors may differ in shape only by trailing 1s (a 1x1 conv's [o, i, 1, 1] against a
    Linear's [o, i], CNBlock's layer_scale [c, 1, 1] against the builder's gamma [c])."""
    nn = torch.nn
    tv_p, my_p = tv_tensors_in_builder_order(tv_model), list(model.parameters())
    if len(tv_p) != len(list(tv_model.parameters())):
        raise RuntimeError("tv_tensors_in_builder_order lost or repeated a torchvision parameter")
    tv_b = [b for n, b in tv_model.named_buffers() if not n.endswith("num_batches_tracked")]
    my_b = [b for n, b in model.named_buffers() if not n.endswith("num_batches_tracked")]
    if len(tv_p) != len(my_p) or len(tv_b) != len(my_b):
        raise RuntimeError(f"tensor counts differ: torchvision {len(tv_p)} params / {len(tv_b)} "
                           f"buffers, builder {len(my_p)} / {len(my_b)}")
    for kind, name in ((nn.BatchNorm2d, "BatchNorm"), (nn.LayerNorm, "LayerNorm")):
        n_tv = sum(isinstance(m, kind) for m in tv_model.modules())
        n_my = sum(isinstance(m, kind) for m in model.modules())
        if n_tv != n_my:
            raise RuntimeError(f"{name} counts differ: torchvision {n_tv}, builder {n_my}")
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in tv_model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            elif isinstance(m, nn.LayerNorm):  # LayerNorm2d too (a subclass)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 1.5 + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)
        for n, p in tv_model.named_parameters():
            if n.endswith("layer_scale"):  # 1e-6 would hide the blocks
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.25)
        for a, b in zip(tv_p + tv_b, my_p + my_b):
            if _strip_ones(a.shape) != _strip_ones(b.shape):
                raise RuntimeError(f"shape {tuple(a.shape)} (torchvision) vs {tuple(b.shape)} (builder)")
            b.copy_(a.reshape(b.shape))
        tv_model.eval()
        model.eval()
        x = torch.randn(2, spec.get("channels", 1), spec["imageH"], spec["imageW"], generator=g)
        ya, yb = tv_model(x), model(x)
    if ya.shape != yb.shape:
        raise RuntimeError(f"output {tuple(ya.shape)} (torchvision) vs {tuple(yb.shape)} (builder)")
    return float((ya - yb).abs().max()), float(ya.abs().max())


def builder_forward(torch, model, spec):
    """A spec without a torchvision twin: the builder's model alone, He-initialised, eval
    mode, on one random batch of 2; returns max |logit| (RuntimeError unless the logits are
    [2, classes] and finite)."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        model.eval()
        x = torch.randn(2, spec.get("channels", 1), spec["imageH"], spec["imageW"], generator=g)
        y = model(x)
    classes = spec["layers"][-1].get("fanOut")
    if tuple(y.shape) != (2, classes) or not bool(torch.isfinite(y).all()):
        raise RuntimeError(f"output {tuple(y.shape)}, finite {bool(torch.isfinite(y).all())}")
    return float(y.abs().max())


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
    for tv_name, spec_rel, pinned in NETS + tuple((None,) + e for e in SPEC_ONLY):
        spec_path = os.path.join(REPO, spec_rel)
        torch.manual_seed(0)
        tv_model = None
        if tv_name is not None:
            tv_model = getattr(torchvision.models, tv_name)(weights=None, num_classes=10)
        spec = pytorch_nets.load_spec(spec_path)
        model, he = pytorch_nets.build_model(spec)
        n_b = n_params(model)
        try:
            n_v = veridl_count(args.veridl, spec_rel)
        except (RuntimeError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        label = tv_name or "-"
        if tv_model is not None:
            n_tv = n_params(tv_model)
            ok = n_tv == n_b == n_v == pinned
            row = f"| {label} | {spec_rel} | {n_tv:,} | {n_b:,} | {n_v:,} | {pinned:,} |"
        else:  # no torchvision twin: the builder against veridl (and the pinned count)
            ok = n_b == n_v and (pinned is None or n_b == pinned)
            pin = "-" if pinned is None else f"{pinned:,}"
            row = f"| {label} | {spec_rel} | - | {n_b:,} | {n_v:,} | {pin} |"
        if not ok:
            bad.append(tv_name or spec_rel)
        if args.forward:
            try:
                if tv_model is not None:
                    d, scale = forward_diff(torch, tv_model, model, spec)
                    row += f" {d:.3g} ({scale:.3g}) |"
                    if not d <= 1e-5 * scale:
                        bad.append(f"{tv_name} (forward)")
                else:
                    pytorch_nets.he_init(model, he)
                    scale = builder_forward(torch, model, spec)
                    row += f" builder only: finite ({scale:.3g}) |"
            except RuntimeError as e:
                row += f" FAILED: {e} |"
                bad.append(f"{tv_name or spec_rel} (forward)")
        print(row, flush=True)
        del tv_model, model
    if bad:
        print(f"MISMATCH: {', '.join(bad)}")
        return 1
    print("all counts agree" + (" and the forwards match" if args.forward else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
