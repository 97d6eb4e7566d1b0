#!/usr/bin/env python3
"""JAX reference trainer for VeriDL's small chain NetSpecs (speed and accuracy comparisons).

The JAX counterpart of bench/pytorch_nets.py for the chain networks made of flatten, dense,
conv2d, convBn and maxPool (specs/mnist_linear.json, specs/mnist_mlp.json,
specs/mnist_cnn_bn.json): the NetSpec is turned into a pure function written by hand with
jax.numpy / jax.lax (no flax, no optax), trained with the spec's recipe, and one JSON line
with pytorch_nets.py's keys is printed on stdout (progress goes to stderr).  Any other layer,
activation or recipe feature is refused with a one-line error (exit 2).

Semantics (the NetSpec, docs/netspec.md; the same as pytorch_nets.py's docstring):
  * images C x H x W, held NHWC on the device (XLA CPU's native convolution layout); flatten
    transposes back to C, H, W order first, so a dense after a conv reads its features in
    the NetSpec's (PyTorch's) order.
  * flatten; dense (fanIn, fanOut, activation identity (default) or relu), weight
    [fanIn, fanOut]; conv2d (ic, oc, k, stride 1, padding "same" (default) / "valid",
    bias true, activation relu (default) or identity); convBn = conv2d without bias +
    BatchNorm (eps 1e-5, momentum 0.1; training normalises with the batch mean and biased
    variance, the running variance is fed the unbiased one as torch does; on the first global
    step the momentum is 1.0, so the running stats start as the first batch's) + the layer's
    activation, else the net's convBnActivation (relu); maxPool (size, stride default size;
    "same" when size > stride, else "valid"; padded cells are -inf; the gradient goes to the
    first maximum of each window, as torch's).  "same" pads as pytorch_nets.conv_pads:
    padStyle "xlaSame" (default) or "symmetric".
  * init: weights He normal, std sqrt(2 / fan_in) (fan_in = fanIn or ic*k*k), biases 0,
    BatchNorm gamma 1 / beta 0, running mean 0 / var 1 (numpy's default_rng(seed), so not
    the same values as PyTorch's or VeriDL's streams; the same distribution).
  * recipe (spec "recipe", then the command-line overrides; pytorch_nets.RECIPE_DEFAULTS):
    sgd (torch.optim.SGD: coupled L2 decay, optional momentum, no dampening / Nesterov),
    adam (coupled L2) or adamw (torch.optim.AdamW's order: p *= 1 - lr wd, then the Adam
    step); betas 0.9 / 0.999, eps 1e-8; weight decay only on tensors of rank >= 2 (kernels);
    optional global-norm clipping (torch.nn.utils.clip_grad_norm_); the per-step learning
    rate is pytorch_nets.lr_at (linear warmup over warmupEpochs, then cosine), computed on
    the host in double and passed to the compiled step as a traced float32 scalar.
  * loss: softmax cross-entropy with label smoothing (target (1 - e) onehot + e / K), batch
    mean.  The batch from the recipe, the ragged last batch of every epoch dropped, a new
    random permutation every epoch (numpy's default_rng(seed)); pixels p / 255 (then the
    recipe's "normalize", if any, as pytorch_nets.normalize_images).
  * evaluation after the last epoch: the whole test set in chunks of max(batch, 128) (the
    last chunk padded and the padding not counted), BatchNorm on its running statistics.

Checked against pytorch_nets.py (its build_model, make_optimizer, lr_at and training-loop
arithmetic) in float64 with the same weights and batches: losses, parameters, BN running
statistics and eval logits agree to ~1e-13 for sgd (+ momentum, L2), adam, adamw, cosine with
warmup, label smoothing and clipping on the three specs.

Speed: the training set is on the device as float32 before the clock starts; one jitted step
(gather of the batch by index, forward, grad, optimizer, BN running stats, loss
accumulation on the device) with the parameters, optimizer state, BN state and loss
accumulator donated; the step index and learning rate are traced scalar arguments (no
recompilation).  It is compiled ahead of time (jit(...).lower(...).compile(), with the eval
function; the time is "compile_seconds", not part of train_seconds).  The loss is read once
per epoch.  Each epoch's time (time.perf_counter) includes the permutation and ends after
jax.block_until_ready.  Non-overlapping max pools are a reshape + max with a custom VJP:
XLA CPU's select_and_scatter (lax.reduce_window's gradient) was ~20x slower.
--loop scan runs each epoch as one lax.scan over the same step (one dispatch per epoch; the
same numbers): a little faster for the dense nets, but jaxlib 0.10.2's CPU backend runs the
conv nets' step ~20x slower inside the loop, so the default is one call per step.
XLA CPU lowers the convolutions to YNNPACK fusions by default;
XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type= (its Eigen convolutions) was ~20% faster
for MNIST-CNN-BN on this machine (an experimental flag: not set here; the JSON records
XLA_FLAGS).

Threads: XLA CPU sizes its thread pool from the process's CPU affinity mask.  --threads N
restricts the affinity to N CPUs (sched_setaffinity before jax is imported) and, for N = 1,
also sets XLA_FLAGS --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1.

Install: .venv-bench/bin/pip install "jax[cpu]==0.10.2" (the newest JAX for the venv's
Python 3.11; 0.11+ needs 3.12); numpy only, no torch, flax or optax needed.

  .venv-bench/bin/python bench/jax_nets.py --spec specs/mnist_mlp.json \\
      --data /usr/share/datasets/fashion-mnist --seed 1 [--epochs N] [--batch B] [--max-train N]
      [--threads N] [--loop step|scan] [--lr --optimizer --momentum --weight-decay
      --label-smoothing --warmup-epochs --clip-norm --cosine/--no-cosine]
"""

import argparse
import functools
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

BN_EPS = 1e-5
BN_MOMENTUM = 0.1
# net::Recipe defaults, as bench/pytorch_nets.py's RECIPE_DEFAULTS
RECIPE_DEFAULTS = {"optimizer": "sgd", "lr": 0.1, "batch": 128, "epochs": 12, "momentum": 0.0,
                   "labelSmoothing": 0.0, "weightDecay": 0.0, "cosine": False, "warmupEpochs": 0.0,
                   "clipNorm": 0.0, "augmentCropPad": 0, "augmentFlip": False, "augmentResizedCrop": False,
                   "normalize": "none", "adamwDecay": "after", "colorJitterBrightness": 0.0,
                   "colorJitterContrast": 0.0, "colorJitterSaturation": 0.0, "dataset": ""}
NORMALIZE_PRESETS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                     "mnist": ((0.1307,), (0.3081,)),
                     "fashion-mnist": ((0.2860,), (0.3530,)),
                     "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}
LAYER_TYPES = ("flatten", "dense", "conv2d", "convBn", "maxPool")
ACTS = ("relu", "identity")


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- spec

def conv_pads(n, k, stride, same, style):
    """(lo, hi) pads of one dimension (pytorch_nets.conv_pads, ops::conv_pads)."""
    if not same:
        return 0, 0
    if style == "symmetric":
        return (k - 1) // 2, (k - 1) // 2
    out = (n + stride - 1) // stride
    need = (out - 1) * stride + k
    total = need - n if need > n else 0
    return total // 2, total - total // 2


def out_extent(n, lo, hi, k, stride):
    return 0 if n + lo + hi < k else (n + lo + hi - k) // stride + 1


def _int(l, key, default, where):
    v = l.get(key, default)
    if v is None:
        die(f"{where}: field {key!r} is required")
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        die(f"{where}: field {key!r} must be a positive integer, got {v!r}")
    return v


def _act(l, default, where):
    a = l.get("activation", default)
    if a not in ACTS:
        die(f"{where}: activation {a!r} is not supported by jax_nets.py (relu, identity)")
    return a


def plan_layers(spec):
    """The spec's layers as a list of plain dicts (kind + static shapes), and the image shape (C, H, W)."""
    style = spec.get("padStyle", "xlaSame")
    if style not in ("xlaSame", "symmetric"):
        die(f"padStyle {style!r} is not supported (xlaSame, symmetric)")
    cba = spec.get("convBnActivation", "relu")
    if cba not in ACTS:
        die(f"convBnActivation {cba!r} is not supported by jax_nets.py (relu, identity)")
    C, H, W = spec.get("channels", 1), spec.get("imageH", 28), spec.get("imageW", 28)
    image = (C, H, W)
    spatial = True
    plan = []
    layers = spec["layers"]
    for i, l in enumerate(layers):
        t = l.get("type") if isinstance(l, dict) else None
        where = f"layer {i} ({t})"
        if t not in LAYER_TYPES:
            die(f"{where}: layer type {t!r} is not supported by jax_nets.py ({', '.join(LAYER_TYPES)})")
        if "inputs" in l:
            die(f"{where}: graph-form specs (named 'inputs') are not supported by jax_nets.py (chains only)")
        if t == "flatten":
            plan.append({"kind": "flatten", "spatial": spatial})
            C, H, W, spatial = C * H * W, 1, 1, False
        elif t == "dense":
            fi, fo = _int(l, "fanIn", None, where), _int(l, "fanOut", None, where)
            if spatial:
                die(f"{where}: dense on an image input (put a flatten first)")
            if fi != C:
                die(f"{where}: fanIn {fi} but the input has {C} features")
            plan.append({"kind": "dense", "fanIn": fi, "fanOut": fo, "act": _act(l, "identity", where)})
            C = fo
        else:
            if not spatial:
                die(f"{where}: needs an image input")
            if t == "maxPool":
                k = _int(l, "size", None, where)
                s = _int(l, "stride", k, where)
                same = k > s
            else:
                ic, oc, k = _int(l, "ic", None, where), _int(l, "oc", None, where), _int(l, "k", None, where)
                s = _int(l, "stride", 1, where)
                if l.get("groups", 1) != 1:
                    die(f"{where}: groups {l.get('groups')!r} is not supported by jax_nets.py (1 only)")
                if ic != C:
                    die(f"{where}: ic {ic} but the input has {C} channels")
                pad = l.get("padding", "same")
                if pad not in ("same", "valid"):
                    die(f"{where}: padding {pad!r} is not supported (same, valid)")
                same = pad == "same"
            pt, pb = conv_pads(H, k, s, same, style)
            pl, pr = conv_pads(W, k, s, same, style)
            H, W = out_extent(H, pt, pb, k, s), out_extent(W, pl, pr, k, s)
            pads = ((pt, pb), (pl, pr))
            if t == "maxPool":
                plan.append({"kind": "maxPool", "k": k, "s": s, "pads": pads})
            else:
                bn = t == "convBn"
                plan.append({"kind": t, "ic": ic, "oc": oc, "k": k, "s": s, "pads": pads,
                             "bias": (not bn) and bool(l.get("bias", True)),
                             "act": _act(l, cba if bn else "relu", where)})
                C = oc
            if H <= 0 or W <= 0:
                die(f"{where}: empty output")
    if not layers or plan[-1]["kind"] != "dense":
        die("the last layer must be dense")
    return plan, image


# ----------------------------------------------------------------------------- recipe

def resolve_recipe(spec, args):
    r = dict(RECIPE_DEFAULTS)
    r.update(spec.get("recipe") or {})
    for key, val in (("epochs", args.epochs), ("batch", args.batch), ("lr", args.lr),
                     ("optimizer", args.optimizer), ("momentum", args.momentum),
                     ("weightDecay", args.weight_decay), ("labelSmoothing", args.label_smoothing),
                     ("warmupEpochs", args.warmup_epochs), ("cosine", args.cosine),
                     ("clipNorm", args.clip_norm)):
        if val is not None:
            r[key] = val
    unknown = set(r) - set(RECIPE_DEFAULTS)
    if unknown:
        die(f"recipe: unknown field(s) {', '.join(sorted(unknown))}")
    if (r["augmentCropPad"] or r["augmentFlip"] or r["augmentResizedCrop"] or r["colorJitterBrightness"]
            or r["colorJitterContrast"] or r["colorJitterSaturation"]):
        die("recipe: augmentation (augmentCropPad / augmentFlip / augmentResizedCrop / colorJitter*) "
            "is not supported by jax_nets.py")
    if r["optimizer"] not in ("sgd", "adam", "adamw"):
        die(f"recipe: optimizer {r['optimizer']!r} is not supported (sgd, adam, adamw)")
    n = r["normalize"]
    if not ((isinstance(n, dict) and set(n) == {"mean", "std"}) or n == "none" or n in NORMALIZE_PRESETS):
        die(f"recipe: normalize {n!r} is not supported (none, {', '.join(NORMALIZE_PRESETS)}, or {{mean, std}})")
    if int(r["batch"]) < 1 or int(r["epochs"]) < 1:
        die("recipe: batch and epochs must be positive")
    return r


def lr_at(r, step, steps_per_epoch, epochs):
    """VeriDL's train::lr_at (pytorch_nets.lr_at); step is 1-based."""
    if not r["cosine"]:
        return r["lr"]
    W = r["warmupEpochs"] * steps_per_epoch
    T = float(epochs * steps_per_epoch)
    s = float(step)
    if W > 0 and s <= W:
        return r["lr"] * s / W
    prog = 1.0 if T - W <= 0 else (s - W) / (T - W)
    return r["lr"] * 0.5 * (1.0 + math.cos(math.pi * prog))


# ----------------------------------------------------------------------------- data

def load_split(benchutil, data_dir, prefix, limit=None):
    """(pixels [N, H, W] uint8, labels [N] int32) from the IDX files (plain or .gz)."""
    import numpy as np
    images = benchutil.read_idx(benchutil.idx_path(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = benchutil.read_idx(benchutil.idx_path(data_dir, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        die(f"{data_dir}/{prefix}: images {images.shape} vs labels {labels.shape}")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels.astype(np.int32)


def to_nhwc(images, r):
    """uint8 [N, H, W] -> float32 [N, H, W, 1]: p / 255 (pytorch_nets' _PIXEL table), then the recipe's normalize."""
    import numpy as np
    pixel = np.arange(256, dtype=np.float32) / np.float32(255.0)
    x = pixel[images][..., None]
    n = r["normalize"]
    if n != "none":
        mean, std = (n["mean"], n["std"]) if isinstance(n, dict) else NORMALIZE_PRESETS[n]
        if len(mean) != 1 or len(std) != 1:
            die(f"normalize {n!r}: {len(mean)} means, {len(std)} stds for 1 channel")
        x = (x - np.float32(mean[0])) / np.float32(std[0])
    return np.ascontiguousarray(x)


# ----------------------------------------------------------------------------- model

def init_params(plan, seed):
    """(params, bn_state) as lists (one entry per layer) of dicts of float32 numpy arrays: weights He normal
    (dense [fanIn, fanOut], conv HWIO), biases 0, BN gamma 1 / beta 0, running mean 0 / var 1."""
    import numpy as np
    rng = np.random.default_rng(seed)
    params, bn_state = [], []
    for p in plan:
        d, st = {}, {}
        if p["kind"] == "dense":
            d["w"] = rng.standard_normal((p["fanIn"], p["fanOut"]), dtype=np.float32) * np.float32(
                math.sqrt(2.0 / p["fanIn"]))
            d["b"] = np.zeros(p["fanOut"], np.float32)
        elif p["kind"] in ("conv2d", "convBn"):
            fan_in = p["ic"] * p["k"] * p["k"]
            d["w"] = rng.standard_normal((p["k"], p["k"], p["ic"], p["oc"]), dtype=np.float32) * np.float32(
                math.sqrt(2.0 / fan_in))
            if p["bias"]:
                d["b"] = np.zeros(p["oc"], np.float32)
            if p["kind"] == "convBn":
                d["gamma"] = np.ones(p["oc"], np.float32)
                d["beta"] = np.zeros(p["oc"], np.float32)
                st = {"mean": np.zeros(p["oc"], np.float32), "var": np.ones(p["oc"], np.float32)}
        params.append(d)
        bn_state.append(st)
    return params, bn_state


def build(plan, r, batch, steps):
    """The jax functions of a planned net and recipe: a namespace with
      init_opt_state(params)
      train_step(params, opt_state, bn_state, loss_acc, x_train, y_train, perm, i, lr)
                 -> (params, opt_state, bn_state, loss_acc + this batch's loss); batch i of perm
      train_epoch(params, opt_state, bn_state, loss_acc, x_train, y_train, perm, lrs): lax.scan of
                 train_step over i = 0 .. steps - 1 with lrs [steps]
      eval_chunk(params, bn_state, x, y) -> the number of correct predictions (labels -1 never match)
      forward(params, bn_state, x, train, bn_momentum) -> (logits, new bn_state)
    (plain functions, not jitted)."""
    import types
    import jax
    import jax.numpy as jnp
    from jax import lax
    tmap = jax.tree_util.tree_map

    # Max pooling over non-overlapping k x k windows (size == stride, no padding): a reshape and a max, with
    # the gradient routed to the first maximum of each window in row-major order (torch's MaxPool2d rule; the
    # gradient of a plain jnp.max would split ties).  XLA CPU's select_and_scatter, the backward of
    # lax.reduce_window, is ~20x slower for MNIST-CNN-BN's pools; overlapping or padded pools still use it.
    @functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
    def window_max(x, k):
        N, H, W, C = x.shape
        return x.reshape(N, H // k, k, W // k, k, C).max(axis=(2, 4))

    def window_max_fwd(x, k):
        N, H, W, C = x.shape
        win = jnp.transpose(x.reshape(N, H // k, k, W // k, k, C), (0, 1, 3, 5, 2, 4)).reshape(
            N, H // k, W // k, C, k * k)
        arg = jnp.argmax(win, axis=-1).astype(jnp.int32)  # first maximum: kh * k + kw
        return jnp.max(win, axis=-1), arg

    def window_max_bwd(k, arg, g):
        N, Ho, Wo, C = g.shape
        sel = arg[..., None] == jnp.arange(k * k, dtype=jnp.int32)
        dx = jnp.where(sel, g[..., None], jnp.zeros((), g.dtype)).reshape(N, Ho, Wo, C, k, k)
        return (jnp.transpose(dx, (0, 1, 4, 2, 5, 3)).reshape(N, Ho * k, Wo * k, C),)

    window_max.defvjp(window_max_fwd, window_max_bwd)

    def forward(params, bn_state, x, train, bn_momentum=None):
        """Logits [N, K] of NHWC images x, and the new BN running stats (the old ones in eval)."""
        new_bn = []
        for p, prm, st in zip(plan, params, bn_state):
            kind = p["kind"]
            if kind == "flatten":
                if p["spatial"]:
                    x = jnp.transpose(x, (0, 3, 1, 2))  # NHWC -> NCHW: the NetSpec's C, H, W feature order
                x = x.reshape(x.shape[0], -1)
            elif kind == "dense":
                x = jnp.dot(x, prm["w"]) + prm["b"]
            elif kind == "maxPool":
                k, s = p["k"], p["s"]
                if k == s and p["pads"] == ((0, 0), (0, 0)):  # non-overlapping windows ("valid": floor)
                    Ho, Wo = x.shape[1] // k, x.shape[2] // k
                    x = window_max(x[:, :Ho * k, :Wo * k, :], k)
                else:
                    x = lax.reduce_window(x, -jnp.inf, lax.max, (1, k, k, 1), (1, s, s, 1),
                                          ((0, 0),) + p["pads"] + ((0, 0),))
            else:  # conv2d / convBn
                x = lax.conv_general_dilated(x, prm["w"], (p["s"], p["s"]), p["pads"],
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
                if "b" in prm:
                    x = x + prm["b"]
                if kind == "convBn":
                    if train:
                        mean = jnp.mean(x, axis=(0, 1, 2))
                        var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))  # biased: normalises
                        n = x.shape[0] * x.shape[1] * x.shape[2]
                        unbiased = lax.stop_gradient(var) * (n / max(n - 1, 1))  # feeds running_var (torch)
                        m = bn_momentum
                        st = {"mean": st["mean"] + m * (lax.stop_gradient(mean) - st["mean"]),
                              "var": st["var"] + m * (unbiased - st["var"])}
                    else:
                        mean, var = st["mean"], st["var"]
                    x = (x - mean) * (lax.rsqrt(var + BN_EPS) * prm["gamma"]) + prm["beta"]
            if p.get("act") == "relu":
                x = jax.nn.relu(x)
            new_bn.append(st)
        return x, new_bn

    ls = float(r["labelSmoothing"])

    def loss_fn(params, bn_state, xb, yb, bn_momentum):
        """F.cross_entropy(logits, y, label_smoothing=ls): batch mean of (1 - ls) nll + ls mean_k(-log p_k)."""
        logits, new_bn = forward(params, bn_state, xb, True, bn_momentum)
        logp = jax.nn.log_softmax(logits, axis=-1)
        nll = -jnp.take_along_axis(logp, yb[:, None], axis=-1)[:, 0]
        loss = (1.0 - ls) * nll - ls * jnp.mean(logp, axis=-1) if ls > 0 else nll
        return jnp.mean(loss), new_bn

    kind = r["optimizer"]
    wd = float(r["weightDecay"])
    mom = float(r["momentum"])
    clip = float(r["clipNorm"])
    b1, b2, eps = 0.9, 0.999, 1e-8

    def init_opt_state(params):
        state = {"t": jnp.zeros((), jnp.int32)}  # steps taken (Adam's bias correction, BN's first step)
        if kind in ("adam", "adamw"):
            state["m"], state["v"] = tmap(jnp.zeros_like, params), tmap(jnp.zeros_like, params)
        elif mom != 0.0:
            state["buf"] = tmap(jnp.zeros_like, params)
        return state

    def update(params, grads, opt_state, lr):
        """One optimizer step with torch.optim's arithmetic; weight decay on rank >= 2 tensors only."""
        t = opt_state["t"] + 1
        new = {"t": t}
        if clip > 0:  # torch.nn.utils.clip_grad_norm_
            norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree_util.tree_leaves(grads)))
            coef = jnp.minimum(clip / (norm + 1e-6), 1.0)
            grads = tmap(lambda g: g * coef, grads)
        if kind in ("sgd", "adam") and wd != 0.0:  # coupled L2
            grads = tmap(lambda g, p: g + wd * p if p.ndim >= 2 else g, grads, params)
        if kind == "sgd":  # torch.optim.SGD: buf = momentum buf + g (buf = g on the first step), p -= lr buf
            if mom != 0.0:
                grads = new["buf"] = tmap(lambda b, g: mom * b + g, opt_state["buf"], grads)
            return tmap(lambda p, d: p - lr * d, params, grads), new
        if kind == "adamw" and wd != 0.0:  # decoupled, before the Adam step (torch.optim.AdamW)
            params = tmap(lambda p: p * (1.0 - lr * wd) if p.ndim >= 2 else p, params)
        m = tmap(lambda m, g: m + (1.0 - b1) * (g - m), opt_state["m"], grads)  # torch's lerp
        v = tmap(lambda v, g: b2 * v + (1.0 - b2) * g * g, opt_state["v"], grads)
        tf = t.astype(jax.tree_util.tree_leaves(params)[0].dtype)
        step_size = lr / (1.0 - b1 ** tf)
        bc2_sqrt = jnp.sqrt(1.0 - b2 ** tf)
        params = tmap(lambda p, m, v: p - step_size * (m / (jnp.sqrt(v) / bc2_sqrt + eps)), params, m, v)
        new["m"], new["v"] = m, v
        return params, new

    def train_step(params, opt_state, bn_state, loss_acc, x_train, y_train, perm, i, lr):
        idx = lax.dynamic_slice(perm, (i * batch,), (batch,))
        xb = jnp.take(x_train, idx, axis=0, mode="clip")  # perm holds valid indices: no fill masking
        yb = jnp.take(y_train, idx, axis=0, mode="clip")
        # running stats start as the first batch's: momentum 1.0 on the first global step
        bn_momentum = jnp.where(opt_state["t"] == 0, 1.0, BN_MOMENTUM).astype(x_train.dtype)
        (loss, new_bn), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, bn_state, xb, yb, bn_momentum)
        params, opt_state = update(params, grads, opt_state, lr)
        return params, opt_state, new_bn, loss_acc + loss

    def train_epoch(params, opt_state, bn_state, loss_acc, x_train, y_train, perm, lrs):
        def body(carry, xs):
            return train_step(*carry, x_train, y_train, perm, *xs), None
        carry, _ = lax.scan(body, (params, opt_state, bn_state, loss_acc),
                            (jnp.arange(steps, dtype=jnp.int32), lrs))
        return carry

    def eval_chunk(params, bn_state, x, y):
        logits, _ = forward(params, bn_state, x, False)
        return jnp.sum(jnp.argmax(logits, axis=-1) == y)

    return types.SimpleNamespace(forward=forward, loss_fn=loss_fn, init_opt_state=init_opt_state, update=update,
                                 train_step=train_step, train_epoch=train_epoch, eval_chunk=eval_chunk)


# ----------------------------------------------------------------------------- main

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", required=True, help="VeriDL NetSpec JSON")
    ap.add_argument("--data", required=True, help="directory with the four IDX files (plain or .gz)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-train", type=int, default=None, help="train on the first N training images only")
    ap.add_argument("--threads", type=int, default=None,
                    help="restrict XLA to N CPUs (affinity; N = 1 also turns off Eigen's thread pool); "
                         "default: every CPU of the affinity mask")
    ap.add_argument("--loop", choices=("step", "scan"), default="step",
                    help="step: one jitted call per step (default); scan: one jitted lax.scan per epoch "
                         "(slightly faster for dense nets, ~20x slower for conv nets on jaxlib 0.10.2's CPU)")
    g = ap.add_argument_group("recipe overrides (default: the spec's recipe)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--optimizer", choices=("sgd", "adam", "adamw"))
    g.add_argument("--momentum", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--warmup-epochs", type=float)
    g.add_argument("--clip-norm", type=float)
    g.add_argument("--cosine", action="store_true", default=None)
    g.add_argument("--no-cosine", dest="cosine", action="store_false")
    return ap.parse_args(argv)


def load_netspec(path):
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        die(f"{path}: {e}")
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        die(f"{path}: not a NetSpec (no 'layers' list)")
    return spec


def main(argv=None):
    args = parse_args(argv)
    spec = load_netspec(args.spec)
    plan, image = plan_layers(spec)
    r = resolve_recipe(spec, args)
    if image[0] != 1:
        die(f"images with {image[0]} channels: jax_nets.py reads IDX (1-channel) data only")
    if args.max_train is not None and args.max_train < 1:
        die("--max-train must be >= 1")
    if args.loop == "scan" and any(p["kind"] in ("conv2d", "convBn") for p in plan):
        log("warning: --loop scan with convolutions: XLA CPU (jaxlib 0.10.2) ran MNIST-CNN-BN's step ~20x "
            "slower inside lax.scan than as one jitted call per step")

    # Threads: before jax is imported (XLA sizes its thread pools when the CPU client is created).
    if args.threads is not None:
        if args.threads < 1:
            die("--threads must be >= 1")
        cpus = sorted(os.sched_getaffinity(0))
        if args.threads < len(cpus):
            os.sched_setaffinity(0, cpus[:args.threads])
        if args.threads == 1:
            flags = os.environ.get("XLA_FLAGS", "")
            if "xla_cpu_multi_thread_eigen" not in flags:
                os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                           "intra_op_parallelism_threads=1").strip()

    import numpy as np
    import jax
    import jax.numpy as jnp
    import jaxlib
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import benchutil  # stdlib (+ numpy in read_idx); no torch

    # ---------------------------------------------------------------- data, on the device before the clock
    for base in benchutil.IDX_BASES:
        if benchutil.find_idx(args.data, base) is None:
            die(f"data directory {args.data} lacks {base}[.gz]")
    img_tr, y_tr = load_split(benchutil, args.data, "train", args.max_train)
    img_te, y_te = load_split(benchutil, args.data, "t10k")
    if tuple(img_tr.shape[1:]) != image[1:]:
        die(f"images are {tuple(img_tr.shape[1:])}, the spec expects {image[1:]}")
    n_train, n_test = int(img_tr.shape[0]), int(img_te.shape[0])
    batch, epochs = int(r["batch"]), int(r["epochs"])
    steps = n_train // batch  # the ragged last batch dropped
    if steps == 0:
        die(f"{n_train} training images < batch {batch}")
    x_train = jax.device_put(to_nhwc(img_tr, r))
    y_train = jax.device_put(y_tr)
    chunk = max(batch, 128)  # the test set in chunks of max(batch, 128), the last one padded (label -1)
    n_chunks = -(-n_test // chunk)
    pad = n_chunks * chunk - n_test
    x_te = to_nhwc(img_te, r)
    x_te = np.concatenate([x_te, np.zeros((pad,) + x_te.shape[1:], np.float32)])
    y_te = np.concatenate([y_te, np.full(pad, -1, np.int32)])
    x_test = jax.device_put(x_te.reshape((n_chunks, chunk) + x_te.shape[1:]))
    y_test = jax.device_put(y_te.reshape(n_chunks, chunk))

    # ---------------------------------------------------------------- init, compile
    params, bn_state = init_params(plan, args.seed)
    n_params = int(sum(a.size for a in jax.tree_util.tree_leaves(params)))
    params, bn_state = jax.device_put(params), jax.device_put(bn_state)
    fns = build(plan, r, batch, steps)
    opt_state = fns.init_opt_state(params)
    loss_acc = jnp.zeros((), jnp.float32)
    donate = (0, 1, 2, 3)  # params, optimizer state, BN state, loss accumulator
    perm_spec = jax.ShapeDtypeStruct((n_train,), jnp.int32)
    t0 = time.perf_counter()
    if args.loop == "step":
        compiled = jax.jit(fns.train_step, donate_argnums=donate).lower(
            params, opt_state, bn_state, loss_acc, x_train, y_train, perm_spec,
            jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((), jnp.float32)).compile()
    else:
        compiled = jax.jit(fns.train_epoch, donate_argnums=donate).lower(
            params, opt_state, bn_state, loss_acc, x_train, y_train, perm_spec,
            jax.ShapeDtypeStruct((steps,), jnp.float32)).compile()
    eval_compiled = jax.jit(fns.eval_chunk).lower(params, bn_state, x_test[0], y_test[0]).compile()
    compile_seconds = time.perf_counter() - t0
    log(f"jax {jax.__version__} on {jax.default_backend()} ({len(os.sched_getaffinity(0))} CPUs, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}); compiled in {compile_seconds:.2f} s; "
        f"{n_params} params, {steps} steps/epoch")

    # ---------------------------------------------------------------- train (timed)
    perm_rng = np.random.default_rng([args.seed, 1])
    lr_table = np.array([lr_at(r, s, steps, epochs) for s in range(1, epochs * steps + 1)], np.float32)
    lr_args = list(lr_table)            # numpy float32 scalars: traced arguments, no recompilation
    i_args = [np.int32(i) for i in range(steps)]
    epoch_seconds, epoch_loss = [], []
    step = 0
    t_start = time.perf_counter()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        perm = jax.device_put(perm_rng.permutation(n_train).astype(np.int32))
        loss_acc = jnp.zeros((), jnp.float32)
        if args.loop == "step":
            for i in range(steps):
                params, opt_state, bn_state, loss_acc = compiled(
                    params, opt_state, bn_state, loss_acc, x_train, y_train, perm, i_args[i], lr_args[step])
                step += 1
        else:
            lrs = jax.device_put(lr_table[step:step + steps])
            params, opt_state, bn_state, loss_acc = compiled(
                params, opt_state, bn_state, loss_acc, x_train, y_train, perm, lrs)
            step += steps
        jax.block_until_ready((params, opt_state, bn_state, loss_acc))
        epoch_seconds.append(time.perf_counter() - t0)
        epoch_loss.append(float(loss_acc) / steps)
        log(f"epoch {epoch + 1}/{epochs}: loss {epoch_loss[-1]:.4f}, {epoch_seconds[-1]:.3f} s "
            f"({steps * batch / epoch_seconds[-1]:.0f} img/s)")
    train_seconds = time.perf_counter() - t_start

    # ---------------------------------------------------------------- evaluate (BN on running stats)
    correct = sum(int(eval_compiled(params, bn_state, x_test[c], y_test[c])) for c in range(n_chunks))

    result = {
        "framework": "jax",
        "spec": spec.get("name"),
        "params": n_params,
        "train_seconds": train_seconds,
        "epoch_seconds": epoch_seconds,
        "images_per_second": steps * batch * epochs / train_seconds,
        "compile_seconds": compile_seconds,  # ahead-of-time compile (train step + eval), not in train_seconds
        "test_accuracy": 100.0 * correct / n_test,
        "test_correct": correct,
        "test_total": n_test,
        "final_loss": epoch_loss[-1],  # mean training loss over the last epoch
        "epoch_loss": epoch_loss,
        "last_lr": float(lr_table[step - 1]),
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "numpy_version": np.__version__,
        "backend": jax.default_backend(),
        "threads": len(os.sched_getaffinity(0)),  # CPUs XLA may use: its affinity mask
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "loop": args.loop,
        "layout": "NHWC",
        "train_images": n_train,
        "images_per_epoch": steps * batch,
        "steps": step,
        "recipe": r,
        "seed": args.seed,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
