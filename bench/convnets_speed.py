#!/usr/bin/python3
"""Training speed and peak memory of ResNet-18/34, MobileNetV2, EfficientNet-B0, ConvNeXt-T and ViT: VeriDL against PyTorch 2.x.

For every (network, image size) configuration this alternates rounds of

  (a) VeriDL: `bench_kernels --net SPEC --batch B` (build/bench_kernels; OMP_NUM_THREADS=2): the whole
      fused train step of the NetSpec (forward, softmax-CE with the recipe's label smoothing, backward,
      the recipe's optimizer) on one fixed random batch; it prints the median time per step, and
      images/s = B / that median. Its own process; peak RSS = ru_maxrss of that process (os.wait4);
  (b) PyTorch 2.x from the bench venv (.venv-bench, made by bench/setup-bench-venv.sh): the same network
      written independently in plain torch.nn from the papers / torchvision's definitions (BasicBlock,
      Bottleneck v1.5, MobileNetV2's InvertedResidual, EfficientNet-B0's MBConv with squeeze-excitation,
      ConvNeXt's CNBlock; not built from the NetSpec; their parameter counts are printed next to VeriDL's
      and a difference is flagged), 10 classes, train
      mode, F.cross_entropy with the same label smoothing, the same optimizer as the spec's recipe (Adam
      with coupled L2 decay for the 224x224 ResNets and MobileNetV2, AdamW for the others; decay on
      kernels only) and its gradient clipping (clipNorm: ConvNeXt-T),
      random data, torch.set_num_threads(2) and OMP_NUM_THREADS=2, --warmup steps then the median over
      --steps timed steps. Its own process; peak RSS = ru_maxrss of that process.

Rounds alternate which framework goes first. Both get OMP_WAIT_POLICY=PASSIVE (--omp-wait-policy to change) and
nothing else from the caller's OMP_*/GOMP_*/KMP_*/MKL_* environment: purely passive waiting, as every row of
docs/results.md was measured. (`veridl train` itself waits passively after a bounded spin, GOMP_SPINCOUNT=3000, which
bench_kernels does not set by itself; at these nets' step times of 0.1-2 s the difference is small.)

Configurations (net x size):
  224: specs/resnet18.json, specs/resnet34.json, specs/mobilenetv2.json, specs/efficientnet_b0.json,
       specs/convnext_tiny_torchvision.json (torchvision's convnext_tiny: erf GELU, LayerNorm before the
       head), batch 16
   32: specs/resnet18_cifar.json, specs/mobilenetv2_cifar.json, batch 128, and ResNet-34 at 32x32,
       which has no spec in specs/: derived here from specs/resnet34.json as specs/resnet18_cifar.json
       is from specs/resnet18.json (3x3 stride-1 stem, no max-pool, 32x32 input, resnet18_cifar's
       recipe) into a temporary file. EfficientNet-B0 and ConvNeXt-T have no 32x32 variant: their 224x224
       specs run at a 32x32 input (same layers; the strides reach 1x1 before the global pool), also derived
       into a temporary file.
  ViT: specs/vit_tiny.json at 224 (batch 16) and, with --sizes 28, specs/vit_small28.json (28x28 grey,
       batch 128). PyTorch's ViT is written here from the paper / timm's VisionTransformer (patch conv, CLS
       token, position embedding, pre-norm blocks with a fused qkv Linear and F.scaled_dot_product_attention,
       GELU MLP, final LayerNorm, the CLS row; DropPath with the spec's dropPath ramp; cls and pos not
       weight-decayed), zero-initialised cls and pos, He-initialised Linear and conv weights.

Printed per configuration: images/s of each (median over rounds), the ratio VeriDL / PyTorch (of the
medians, and per round), peak RSS of each, the PyTorch version, the CPU model (lscpu), the foreign load
(CPU other processes used during each run, from /proc/stat minus the run's own rusage) and the load
average; then one JSON line (prefix "JSON ") per configuration.

  /usr/bin/python3 bench/convnets_speed.py --quick
  /usr/bin/python3 bench/convnets_speed.py                                  # everything, 3 rounds
  /usr/bin/python3 bench/convnets_speed.py --nets resnet18 mobilenetv2 --sizes 32 --rounds 2 --steps 5

The same file is the PyTorch worker (`--worker`, run with the venv's python); it needs only torch.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

NETS = ("resnet18", "resnet34", "mobilenetv2", "efficientnet_b0", "convnext_t", "vit")
SIZES = (224, 32, 28)
DEFAULT_BATCH = {224: 16, 32: 128, 28: 128}
SPEC_FILES = {
    ("resnet18", 224): "specs/resnet18.json",
    ("resnet34", 224): "specs/resnet34.json",
    ("mobilenetv2", 224): "specs/mobilenetv2.json",
    ("resnet18", 32): "specs/resnet18_cifar.json",
    ("resnet34", 32): None,  # derived: see derive_resnet34_cifar
    ("mobilenetv2", 32): "specs/mobilenetv2_cifar.json",
    ("efficientnet_b0", 224): "specs/efficientnet_b0.json",
    ("efficientnet_b0", 32): None,  # derived: the 224x224 spec at 32x32 (derive_at_32)
    ("convnext_t", 224): "specs/convnext_tiny_torchvision.json",
    ("convnext_t", 32): None,  # derived: the 224x224 spec at 32x32
    ("vit", 224): "specs/vit_tiny.json",
    ("vit", 28): "specs/vit_small28.json",  # 28x28 grey
}
# The ViTs of the PyTorch side (worker): (image channels, patch, dim, depth, heads, mlp) per size.
VIT_CONFIGS = {224: (3, 16, 192, 12, 3, 768), 28: (1, 7, 64, 6, 4, 128)}


# ============================================================================ PyTorch worker (venv python)

def worker_main(argv):
    ap = argparse.ArgumentParser(prog="convnets_speed.py --worker")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--net", required=True, choices=NETS + ("resnet50",))
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--optimizer", default="adam", choices=("sgd", "adam", "adamw"))
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--momentum", type=float, default=0.0)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--drop-path", type=float, default=0.0, help="the ViT's stochastic depth (the spec's dropPath)")
    ap.add_argument("--clip-norm", type=float, default=0.0, help="the recipe's clipNorm (global gradient norm)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--profile", action="store_true",
                    help="after the timed steps, one more step under torch.profiler: its operators by self CPU time")
    a = ap.parse_args(argv)

    rss_start = _vm_kib("VmRSS")
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    rss_import = _vm_kib("VmRSS")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    def conv_bn(ic, oc, k, stride=1, groups=1, act=None):
        layers = [nn.Conv2d(ic, oc, k, stride, padding=(k - 1) // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(oc)]
        if act is not None:
            layers.append(act())
        return nn.Sequential(*layers)

    class BasicBlock(nn.Module):  # He et al. 2016, torchvision.models.resnet.BasicBlock
        expansion = 1

        def __init__(self, ic, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(ic, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.down = None
            if stride != 1 or ic != planes:
                self.down = nn.Sequential(nn.Conv2d(ic, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + (x if self.down is None else self.down(x)))

    class Bottleneck(nn.Module):  # ResNet v1.5 (stride on the 3x3), torchvision's Bottleneck
        expansion = 4

        def __init__(self, ic, planes, stride):
            super().__init__()
            oc = planes * 4
            self.conv1 = nn.Conv2d(ic, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, oc, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(oc)
            self.down = None
            if stride != 1 or ic != oc:
                self.down = nn.Sequential(nn.Conv2d(ic, oc, 1, stride, bias=False), nn.BatchNorm2d(oc))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = F.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return F.relu(out + (x if self.down is None else self.down(x)))

    class ResNet(nn.Module):
        def __init__(self, block, counts, small_input, classes=10):
            super().__init__()
            if small_input:  # the CIFAR stem: 3x3 stride 1, no max-pool
                self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
            else:
                self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                          nn.MaxPool2d(3, 2, 1))
            stages, ic = [], 64
            for i, n in enumerate(counts):
                planes = 64 * 2 ** i
                blocks = []
                for j in range(n):
                    blocks.append(block(ic, planes, 2 if (j == 0 and i > 0) else 1))
                    ic = planes * block.expansion
                stages.append(nn.Sequential(*blocks))
            self.stages = nn.Sequential(*stages)
            self.fc = nn.Linear(ic, classes)

        def forward(self, x):
            x = self.stages(self.stem(x))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    class InvertedResidual(nn.Module):  # Sandler et al. 2018, torchvision's InvertedResidual
        def __init__(self, ic, oc, stride, expand):
            super().__init__()
            mid = ic * expand
            layers = []
            if expand != 1:
                layers.append(conv_bn(ic, mid, 1, act=nn.ReLU6))
            layers += [conv_bn(mid, mid, 3, stride, groups=mid, act=nn.ReLU6), conv_bn(mid, oc, 1)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and ic == oc

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    class MobileNetV2(nn.Module):
        # (t, c, n, s) of the paper's Table 2; the 32x32 variant (as specs/mobilenetv2_cifar.json) has a
        # stride-1 stem and a stride-1 second stage. No dropout before the classifier (the NetSpec has none).
        def __init__(self, small_input, classes=10):
            super().__init__()
            cfg = [(1, 16, 1, 1), (6, 24, 2, 1 if small_input else 2), (6, 32, 3, 2), (6, 64, 4, 2),
                   (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
            layers, ic = [conv_bn(3, 32, 3, 1 if small_input else 2, act=nn.ReLU6)], 32
            for t, c, n, s in cfg:
                for j in range(n):
                    layers.append(InvertedResidual(ic, c, s if j == 0 else 1, t))
                    ic = c
            layers.append(conv_bn(ic, 1280, 1, act=nn.ReLU6))
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(1280, classes)

        def forward(self, x):
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))

    class MBConv(nn.Module):  # Tan & Le 2019, torchvision's MBConv: expand, depthwise, squeeze-excitation, project
        def __init__(self, ic, oc, expand, k, stride):
            super().__init__()
            mid = ic * expand
            layers = [conv_bn(ic, mid, 1, act=nn.SiLU)] if expand != 1 else []
            layers.append(conv_bn(mid, mid, k, stride, groups=mid, act=nn.SiLU))
            self.body = nn.Sequential(*layers)
            sq = max(1, ic // 4)  # torchvision: squeeze channels from the block's input, not the expanded width
            self.se_reduce = nn.Conv2d(mid, sq, 1)
            self.se_expand = nn.Conv2d(sq, mid, 1)
            self.project = conv_bn(mid, oc, 1)
            self.residual = stride == 1 and ic == oc

        def forward(self, x):
            h = self.body(x)
            s = torch.sigmoid(self.se_expand(F.silu(self.se_reduce(F.adaptive_avg_pool2d(h, 1)))))
            h = self.project(h * s)
            return x + h if self.residual else h

    class EfficientNetB0(nn.Module):
        # (expand, k, stride, channels, blocks) of the paper's Table 1; no dropout and no stochastic depth (the
        # NetSpec has neither), so the same computation as specs/efficientnet_b0.json.
        def __init__(self, classes=10):
            super().__init__()
            cfg = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                   (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
            layers, ic = [conv_bn(3, 32, 3, 2, act=nn.SiLU)], 32
            for e, k, st, c, n in cfg:
                for j in range(n):
                    layers.append(MBConv(ic, c, e, k, st if j == 0 else 1))
                    ic = c
            layers.append(conv_bn(ic, 1280, 1, act=nn.SiLU))
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(1280, classes)

        def forward(self, x):
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))

    def norm2d(x, ln):  # channels-first LayerNorm (torchvision's LayerNorm2d): over C at every position
        return ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    class CNBlock(nn.Module):  # Liu et al. 2022, torchvision's CNBlock (no stochastic depth: the spec has none)
        def __init__(self, dim):
            super().__init__()
            self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
            self.norm = nn.LayerNorm(dim, eps=1e-6)
            self.fc1 = nn.Linear(dim, 4 * dim)
            self.fc2 = nn.Linear(4 * dim, dim)
            self.gamma = nn.Parameter(torch.full((dim,), 1e-6))  # layer scale, on the channels-last tensor

        def forward(self, x):
            h = self.norm(self.dw(x).permute(0, 2, 3, 1))
            h = self.gamma * self.fc2(F.gelu(self.fc1(h)))
            return x + h.permute(0, 3, 1, 2)

    class ConvNeXtT(nn.Module):  # torchvision's convnext_tiny: depths 3 3 9 3, widths 96-768, LayerNorm2d before the head
        def __init__(self, classes=10):
            super().__init__()
            dims, depths = (96, 192, 384, 768), (3, 3, 9, 3)
            self.stem = nn.Conv2d(3, 96, 4, 4)
            self.stem_norm = nn.LayerNorm(96, eps=1e-6)
            self.stages = nn.ModuleList(nn.Sequential(*[CNBlock(d) for _ in range(n)]) for d, n in zip(dims, depths))
            self.down_norms = nn.ModuleList(nn.LayerNorm(d, eps=1e-6) for d in dims[:3])
            self.downs = nn.ModuleList(nn.Conv2d(d, e, 2, 2) for d, e in zip(dims[:3], dims[1:]))
            self.norm = nn.LayerNorm(768, eps=1e-6)
            self.fc = nn.Linear(768, classes)

        def forward(self, x):
            x = norm2d(self.stem(x), self.stem_norm)
            for i, stage in enumerate(self.stages):
                x = stage(x)
                if i < 3:
                    x = self.downs[i](norm2d(x, self.down_norms[i]))
            return self.fc(self.norm(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))

    class DropPath(nn.Module):  # stochastic depth (Huang et al. 2016; timm's DropPath): one decision per example
        def __init__(self, rate):
            super().__init__()
            self.rate = rate

        def forward(self, x):
            if not self.training or self.rate == 0.0:
                return x
            keep = 1.0 - self.rate
            mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype).bernoulli_(keep)
            return x * mask / keep

    class ViTBlock(nn.Module):  # Dosovitskiy et al. 2021 / timm's Block: pre-norm, fused qkv, SDPA, GELU MLP
        def __init__(self, dim, heads, mlp, drop):
            super().__init__()
            self.heads = heads
            self.norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
            self.fc1 = nn.Linear(dim, mlp)
            self.fc2 = nn.Linear(mlp, dim)
            self.drop = DropPath(drop)

        def forward(self, x):
            B, T, D = x.shape
            qkv = self.qkv(self.norm1(x)).reshape(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
            o = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
            x = x + self.drop(self.proj(o.transpose(1, 2).reshape(B, T, D)))
            return x + self.drop(self.fc2(F.gelu(self.fc1(self.norm2(x)))))

    class ViT(nn.Module):
        def __init__(self, size, chans, patch, dim, depth, heads, mlp, drop_path, classes=10):
            super().__init__()
            n = (size // patch) ** 2
            self.patch = nn.Conv2d(chans, dim, patch, patch)
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(torch.zeros(1, n + 1, dim))
            self.blocks = nn.Sequential(*[ViTBlock(dim, heads, mlp, drop_path * i / max(1, depth - 1))
                                          for i in range(depth)])
            self.norm = nn.LayerNorm(dim, eps=1e-6)
            self.head = nn.Linear(dim, classes)

        def forward(self, x):
            t = self.patch(x).flatten(2).transpose(1, 2)
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1) + self.pos
            return self.head(self.norm(self.blocks(t))[:, 0])

    small = a.size < 64
    chans = 3
    if a.net == "vit":
        chans, patch, dim, depth, heads, mlp = VIT_CONFIGS[a.size]
        model = ViT(a.size, chans, patch, dim, depth, heads, mlp, a.drop_path)
    elif a.net == "resnet18":
        model = ResNet(BasicBlock, [2, 2, 2, 2], small)
    elif a.net == "resnet34":
        model = ResNet(BasicBlock, [3, 4, 6, 3], small)
    elif a.net == "resnet50":
        model = ResNet(Bottleneck, [3, 4, 6, 3], small)
    elif a.net == "efficientnet_b0":
        model = EfficientNetB0()
    elif a.net == "convnext_t":
        model = ConvNeXtT()
    else:
        model = MobileNetV2(small)
    for m in model.modules():  # He normal (fan_in) as VeriDL; BN gamma 1 beta 0 and zero biases are the defaults
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    n_params = sum(p.numel() for p in model.parameters())
    model.train()

    embeddings = {id(model.pos), id(model.cls)} if a.net == "vit" else set()  # timm's no_weight_decay
    decay = [p for p in model.parameters() if p.dim() >= 2 and id(p) not in embeddings]
    no_decay = [p for p in model.parameters() if p.dim() < 2 or id(p) in embeddings]
    groups = [{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if a.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=a.lr, momentum=a.momentum)
    elif a.optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

    g = torch.Generator().manual_seed(21)
    x = torch.rand(a.batch, chans, a.size, a.size, generator=g)
    y = torch.arange(a.batch, dtype=torch.int64) * 7 % 10
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y, label_smoothing=a.label_smoothing)
        loss.backward()
        if a.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip_norm)
        opt.step()
        return loss.item()

    t_warm = time.perf_counter()
    for _ in range(a.warmup):
        step()
    t_warm = time.perf_counter() - t_warm
    times, loss = [], float("nan")
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    if a.profile:  # the operators of one more step (table on stderr; the JSON line stays the last on stdout)
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    print(json.dumps({
        "framework": "pytorch", "torch_version": torch.__version__,
        "mkldnn": bool(torch.backends.mkldnn.is_available()), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(), "net": a.net, "size": a.size, "batch": a.batch, "params": n_params,
        "optimizer": a.optimizer, "channels_last": a.channels_last, "warmup": a.warmup, "warmup_seconds": t_warm,
        "step_seconds": times, "median_step_seconds": med, "min_step_seconds": min(times),
        "images_per_second": a.batch / med, "final_loss": loss,
        "rss_start_kib": rss_start, "rss_after_import_kib": rss_import, "vm_hwm_kib": _vm_kib("VmHWM")}))
    return 0


def _vm_kib(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


# ============================================================================ driver (stdlib only)

def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        m = re.search(r"^Model name:\s*(.+)$", out, re.M)
        if m:
            return m.group(1).strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def derive_resnet34_cifar(tmpdir):
    """specs/resnet34.json turned into its 32x32 variant the way specs/resnet18_cifar.json differs from
    specs/resnet18.json: 32x32 input, the stem a 3x3 stride-1 convBn, no max-pool, resnet18_cifar's recipe."""
    with open(os.path.join(REPO, "specs/resnet34.json")) as f:
        spec = json.load(f)
    with open(os.path.join(REPO, "specs/resnet18_cifar.json")) as f:
        r18c = json.load(f)
    spec["name"] = "ResNet-34-CIFAR (derived by bench/convnets_speed.py)"
    spec["description"] = ("ResNet-34 for 32x32 images, derived from specs/resnet34.json as resnet18_cifar.json "
                           "is from resnet18.json: 3x3 stride-1 stem, no max-pool.")
    spec["imageH"] = spec["imageW"] = 32
    layers = []
    for layer in spec["layers"]:
        if layer.get("type") == "maxPool":
            continue
        if layer.get("name") == "stem":
            layer = dict(layer, k=3)
            layer.pop("stride", None)
        layers.append(layer)
    spec["layers"] = layers
    spec["recipe"] = r18c["recipe"]
    path = os.path.join(tmpdir, "resnet34_cifar.json")
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)
    return path


def derive_at_32(net, spec224, tmpdir):
    """A 224x224 spec with no 32x32 variant of its own (EfficientNet-B0, ConvNeXt-T) at a 32x32 input: the same
    layers and recipe (their strides take 32x32 down to 1x1 before the global pool), into a temporary file."""
    with open(os.path.join(REPO, spec224)) as f:
        spec = json.load(f)
    spec["name"] = f"{spec['name']}-32 (derived by bench/convnets_speed.py)"
    spec["imageH"] = spec["imageW"] = 32
    path = os.path.join(tmpdir, f"{net}_32.json")
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)
    return path


def clean_env(threads, wait_policy):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_")) and k not in ("LD_PRELOAD",)}
    env["OMP_NUM_THREADS"] = str(threads)
    if wait_policy != "unset":
        env["OMP_WAIT_POLICY"] = wait_policy.upper()
    return env


VERIDL_LINE = re.compile(r"^(?P<name>.+), batch (?P<batch>\d+), (?P<opt>\w+), (?P<params>\d+) parameters, "
                         r"(?P<threads>\d+) threads: train step median (?P<med>[\d.]+) ms \(min (?P<min>[\d.]+)\), "
                         r"(?P<ips>\d+) images/s$", re.M)
VERIDL_OPT = re.compile(r"of which the \w+ update: median (?P<med>[\d.]+) ms \((?P<pct>\d+)% of the step\)")


def run_veridl(bench, spec, batch, seconds, env, timeout):
    import benchutil
    cmd = [bench, "--net", spec, "--batch", str(batch), "--seconds", f"{seconds:.4f}"]
    r, st = benchutil.run_measured(cmd, env=env, timeout=timeout, cwd=REPO)
    if r is None:
        raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}")
    if r.returncode != 0:
        raise RuntimeError(f"exit {r.returncode}: {' '.join(cmd)}\n{(r.stderr or r.stdout).strip()[-2000:]}")
    m = VERIDL_LINE.search(r.stdout)
    if not m:
        raise RuntimeError(f"unexpected bench_kernels output:\n{r.stdout[-2000:]}")
    med = float(m["med"]) * 1e-3
    res = {"framework": "veridl", "name": m["name"], "params": int(m["params"]), "optimizer": m["opt"],
           "threads": int(m["threads"]), "median_step_seconds": med, "min_step_seconds": float(m["min"]) * 1e-3,
           "images_per_second": batch / med, "stdout": r.stdout.strip()}
    o = VERIDL_OPT.search(r.stdout)
    if o:
        res["optimizer_update_seconds"] = float(o["med"]) * 1e-3
    return res, st, cmd


def run_pytorch(python, net, size, batch, recipe, args, env, timeout):
    import benchutil
    opt = recipe.get("optimizer", "adam")
    cmd = [python, os.path.abspath(__file__), "--worker", "--net", net, "--size", str(size), "--batch", str(batch),
           "--optimizer", opt, "--lr", str(recipe.get("lr", 1e-3) * 0.01),
           "--weight-decay", str(recipe.get("weightDecay", 0.0)), "--momentum", str(recipe.get("momentum", 0.0)),
           "--label-smoothing", str(recipe.get("labelSmoothing", 0.0)), "--threads", str(args.threads),
           "--drop-path", str(recipe.get("dropPath", 0.0)), "--clip-norm", str(recipe.get("clipNorm", 0.0)),
           "--warmup", str(args.warmup), "--steps", str(args.steps)]
    if args.channels_last:
        cmd.append("--channels-last")
    r, st = benchutil.run_measured(cmd, env=env, timeout=timeout, cwd=REPO)
    if r is None:
        raise RuntimeError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}")
    if r.returncode != 0:
        raise RuntimeError(f"exit {r.returncode}: {' '.join(cmd)}\n{r.stderr.strip()[-2000:]}")
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"no JSON from the PyTorch worker:\n{r.stdout[-1000:]}\n{r.stderr[-1000:]}")
    return json.loads(lines[-1]), st, cmd


def mib(kib):
    return kib / 1024.0


def main():
    if "--worker" in sys.argv[1:]:
        return worker_main(sys.argv[1:])
    sys.path.insert(0, HERE)
    import benchutil

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    ap.add_argument("--sizes", nargs="+", type=int, default=[224, 32], choices=SIZES,
                    help="224 and 32 by default; 28: the 28x28 grey ViT (specs/vit_small28.json)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per configuration (default 3)")
    ap.add_argument("--steps", type=int, default=5,
                    help="timed steps per PyTorch run (median); VeriDL's bench_kernels times at least 5 "
                         "(its minimum) and about this many once a first round gave its step time (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="PyTorch warm-up steps (bench_kernels runs 2)")
    ap.add_argument("--batch224", type=int, default=DEFAULT_BATCH[224])
    ap.add_argument("--batch32", type=int, default=DEFAULT_BATCH[32])
    ap.add_argument("--batch28", type=int, default=DEFAULT_BATCH[28], help="the 28x28 ViT's batch")
    ap.add_argument("--threads", type=int, default=2, help="threads for both (OMP_NUM_THREADS, torch.set_num_threads)")
    ap.add_argument("--omp-wait-policy", default="passive", choices=("passive", "active", "unset"),
                    help="OMP_WAIT_POLICY for both (default passive, as `veridl train` sets for itself)")
    ap.add_argument("--channels-last", action="store_true", help="PyTorch in channels_last memory format")
    ap.add_argument("--bench", default=os.path.join(REPO, "build", "bench_kernels"),
                    help="bench_kernels binary (cmake --build build --target bench_kernels)")
    ap.add_argument("--python", default=os.path.join(REPO, ".venv-bench", "bin", "python"),
                    help="the bench venv's python with torch 2.x (bash bench/setup-bench-venv.sh)")
    ap.add_argument("--skip-veridl", action="store_true")
    ap.add_argument("--skip-pytorch", action="store_true")
    ap.add_argument("--quiet-cores", type=float, default=0.0,
                    help="before each run wait (up to --max-wait s) until other processes use less than this "
                         "many cores; 0 (default) disables")
    ap.add_argument("--max-wait", type=float, default=60.0)
    ap.add_argument("--boost", type=int, default=0,
                    help="raise this script's and its children's priority by N nice levels (root; benchutil."
                         "boost_priority). Off by default: it takes CPU from other people's jobs")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per run, seconds")
    ap.add_argument("--json-out", default=None, help="also append the JSON lines to this file")
    ap.add_argument("--quick", action="store_true",
                    help="validation only: 32x32 at batch 32, 1 round, 1 warm-up + 2 steps (not a measurement)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.batch32, args.rounds, args.steps, args.warmup = [32], 32, 1, 2, 1

    if not args.skip_veridl and not os.access(args.bench, os.X_OK):
        benchutil.die(f"error: {args.bench} not found: cmake --build build --target bench_kernels")
    if not args.skip_pytorch and not os.access(args.python, os.X_OK):
        benchutil.die(f"error: {args.python} not found: bash bench/setup-bench-venv.sh")
    boost = benchutil.boost_priority(args.boost)
    env = clean_env(args.threads, args.omp_wait_policy)
    cpu = cpu_model()
    print(f"CPU: {cpu}; nproc {os.cpu_count()}; threads {args.threads} for both; "
          f"OMP_WAIT_POLICY {args.omp_wait_policy}; priority boost: {boost}")
    print(f"rounds {args.rounds}, PyTorch warm-up {args.warmup} + {args.steps} timed steps"
          + ("   [--quick: validation run, not a measurement]" if args.quick else ""))
    torch_version = None
    failed = False
    t_all = time.time()
    with tempfile.TemporaryDirectory(prefix="convnets-speed-") as tmp:
        for size in args.sizes:
            batch = {224: args.batch224, 32: args.batch32, 28: args.batch28}[size]
            for net in args.nets:
                if (net, size) not in SPEC_FILES:
                    continue  # e.g. the ViT at 32x32, the convnets at 28x28
                spec = SPEC_FILES[(net, size)]
                derived = None
                if spec is None and net == "resnet34":
                    spec, derived = derive_resnet34_cifar(tmp), ("derived from specs/resnet34.json (3x3/1 stem, no "
                                                                 "max-pool; temporary file)")
                elif spec is None:
                    spec224 = SPEC_FILES[(net, 224)]
                    spec, derived = derive_at_32(net, spec224, tmp), f"{spec224} at 32x32 (temporary file)"
                else:
                    spec = os.path.join(REPO, spec)
                with open(spec) as f:
                    sj = json.load(f)
                recipe = dict(sj.get("recipe", {}))
                recipe["dropPath"] = sj.get("dropPath", 0.0)
                tag = f"{net} {size}x{size} batch {batch}"
                print(f"\n== {tag}: {derived or os.path.relpath(spec, REPO)}"
                      f"; optimizer {recipe.get('optimizer', 'adam')}, label smoothing {recipe.get('labelSmoothing', 0.0)}",
                      flush=True)
                runs = {"veridl": [], "pytorch": []}
                est = None  # VeriDL's step time from its previous round
                for rnd in range(args.rounds):
                    order = ["veridl", "pytorch"] if rnd % 2 == 0 else ["pytorch", "veridl"]
                    for fw in order:
                        if (fw == "veridl" and args.skip_veridl) or (fw == "pytorch" and args.skip_pytorch):
                            continue
                        waited = benchutil.wait_quiet(args.quiet_cores, max_wait=args.max_wait)
                        la = loadavg()
                        try:
                            if fw == "veridl":
                                secs = args.steps * est if est else 1e-3  # 1e-3: bench_kernels' minimum, 5 steps
                                res, st, cmd = run_veridl(args.bench, spec, batch, secs, env, args.timeout)
                                est = res["median_step_seconds"]
                            else:
                                res, st, cmd = run_pytorch(args.python, net, size, batch, recipe, args, env,
                                                           args.timeout)
                                torch_version = res["torch_version"]
                        except (RuntimeError, OSError, ValueError) as e:
                            print(f"  [{fw} round {rnd + 1}] FAILED: {e}", flush=True)
                            failed = True
                            continue
                        res["loadavg_before"] = la
                        res["waited_for_quiet"] = waited
                        res["process"] = st
                        res["command"] = " ".join(cmd)
                        runs[fw].append(res)
                        print(f"  [{fw:7} round {rnd + 1}] {res['images_per_second']:8.1f} img/s  "
                              f"step {res['median_step_seconds'] * 1e3:9.1f} ms (min {res['min_step_seconds'] * 1e3:.1f})  "
                              f"peak RSS {mib(st['max_rss_kb']):7.0f} MiB  wall {st['wall']:6.1f} s  "
                              f"foreign load {st['foreign_cores']:.2f} cores  loadavg {la}", flush=True)
                line = {"config": tag, "net": net, "size": size, "batch": batch,
                        "spec": f"derived: {derived}" if derived else os.path.relpath(spec, REPO),
                        "cpu": cpu, "nproc": os.cpu_count(), "threads": args.threads,
                        "omp_wait_policy": args.omp_wait_policy, "torch_version": torch_version,
                        "rounds": args.rounds, "quick": args.quick, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
                for fw, rs in runs.items():
                    if not rs:
                        continue
                    line[fw] = {
                        "images_per_second": statistics.median(r["images_per_second"] for r in rs),
                        "median_step_seconds": statistics.median(r["median_step_seconds"] for r in rs),
                        "per_round_images_per_second": [r["images_per_second"] for r in rs],
                        "peak_rss_mib": max(mib(r["process"]["max_rss_kb"]) for r in rs),
                        "params": rs[0]["params"],
                        "foreign_cores": [round(r["process"]["foreign_cores"], 2) for r in rs],
                        "cpu_seconds_per_run": [round(r["process"]["child_cpu"], 1) for r in rs],
                        "loadavg_before": [r["loadavg_before"] for r in rs],
                    }
                    if fw == "veridl" and "optimizer_update_seconds" in rs[0]:
                        line[fw]["optimizer_update_seconds"] = statistics.median(
                            r.get("optimizer_update_seconds", 0.0) for r in rs)
                    if fw == "pytorch":
                        line[fw]["rss_after_import_mib"] = mib(rs[0]["rss_after_import_kib"])
                v, p = line.get("veridl"), line.get("pytorch")
                print(f"  -> {tag}:", end="")
                if v:
                    print(f" VeriDL {v['images_per_second']:.1f} img/s, peak RSS {v['peak_rss_mib']:.0f} MiB"
                          f" ({v['params']:,} params);", end="")
                if p:
                    print(f" PyTorch {torch_version} {p['images_per_second']:.1f} img/s, peak RSS "
                          f"{p['peak_rss_mib']:.0f} MiB (after import torch: {p['rss_after_import_mib']:.0f} MiB;"
                          f" {p['params']:,} params);", end="")
                if v and p:
                    per_round = [a / b for a, b in zip(v["per_round_images_per_second"],
                                                       p["per_round_images_per_second"])]
                    line["ratio_veridl_over_pytorch"] = v["images_per_second"] / p["images_per_second"]
                    line["per_round_ratios"] = per_round
                    line["rss_ratio_veridl_over_pytorch"] = v["peak_rss_mib"] / p["peak_rss_mib"]
                    print(f" ratio VeriDL/PyTorch {line['ratio_veridl_over_pytorch']:.2f}x"
                          f" (rounds: {', '.join(f'{x:.2f}' for x in per_round)}),"
                          f" RSS ratio {line['rss_ratio_veridl_over_pytorch']:.2f}", end="")
                    if v["params"] != p["params"]:
                        print(f"  WARNING: parameter counts differ", end="")
                fl = [x for fw in ("veridl", "pytorch") if fw in line for x in line[fw]["foreign_cores"]]
                if fl:
                    print(f"; foreign load {min(fl):.2f}-{max(fl):.2f} cores", end="")
                print(flush=True)
                print("JSON " + json.dumps(line), flush=True)
                if args.json_out:
                    with open(args.json_out, "a") as f:
                        f.write(json.dumps(line) + "\n")
    print(f"\ntotal wall {time.time() - t_all:.0f} s; PyTorch {torch_version}; CPU {cpu}; loadavg now {loadavg()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
