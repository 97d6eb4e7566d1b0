"""Training on IREE devices: `veridl train --device iree:<driver>` and `Network.fit(device="iree:<driver>")`.

This module only drives IREE. The library (veridl._core; src/veridl/train/external_step.hpp) exports the train step
(with its logits) and the eval forward as StableHLO, runs the whole training loop — data, shuffle, augmentation,
learning rate, BatchNorm running statistics, evaluation's scoring, progress, metrics, checkpoints — and calls the
device object made here for each step and each evaluation chunk:

    load(params, state)       upload the parameters (one array per tensor, plan order) and the optimizer state
    step(x, labels, lr, t)    one train step on the device; returns (loss, [batch mean, batch var per BatchNorm], logits)
    fetch()                   download (params, state)
    forward(running, x)       the eval forward of the device's parameters; returns the logits

The parameters and optimizer state stay on the device between steps. Compiled modules are cached in a directory
(--iree-cache, $VERIDL_IREE_CACHE, else $XDG_CACHE_HOME/veridl/iree or ~/.cache/veridl/iree), one file per
sha256 of (module text, iree-compile flags, compiler version): a second run of the same spec, batch, optimizer and
target starts without compiling. Every failure before training is one line (a veridl.Error): the runtime or compiler
missing, the driver or device unavailable, the compiler refusing the target, a module whose signature is not the
one the run needs (compiled for another batch or network).
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from . import _core
from ._core import Error

__all__ = ["make_device", "cache_dir", "cli_main", "compiler_version"]


def _runtime():
    try:
        import iree.runtime as rt  # noqa: F401
    except ImportError as e:
        raise Error(f"IREE devices need IREE's Python runtime, which {sys.executable} cannot import ({e}): "
                    "pip install iree-base-runtime==3.13.0 iree-base-compiler==3.13.0") from None
    return rt


def _compiler_tool() -> str:
    try:
        from iree.compiler.tools import binaries
    except ImportError as e:
        raise Error(f"IREE devices need IREE's compiler, which {sys.executable} cannot import ({e}): "
                    "pip install iree-base-compiler==3.13.0") from None
    return binaries.find_tool("iree-compile")


def compiler_version() -> str:
    """The iree-compile version line (part of the cache key)."""
    from iree.compiler import version
    return f"iree-base-compiler {version.VERSION}"


def cache_dir(given: str = "") -> str:
    """The module cache: `given`, else $VERIDL_IREE_CACHE, else $XDG_CACHE_HOME/veridl/iree, else ~/.cache/veridl/iree."""
    if given:
        return given
    if os.environ.get("VERIDL_IREE_CACHE"):
        return os.environ["VERIDL_IREE_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "veridl", "iree")


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "error:" in line:
            return line[line.index("error:") + len("error:"):].strip()
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[0] if lines else "no message"


def _compile(mlir: str, flags: Sequence[str], cache: str, what: str, verbose: bool) -> str:
    """The .vmfb of `mlir` for `flags`, from the cache or compiled into it (atomically). Returns its path."""
    tool = _compiler_tool()
    key = hashlib.sha256("\0".join([mlir, *flags, compiler_version()]).encode()).hexdigest()
    path = os.path.join(cache, f"{key}.vmfb")
    if os.path.isfile(path):
        if verbose:
            print(f"  IREE {what}: cached {path}", flush=True)
        return path
    try:
        os.makedirs(cache, exist_ok=True)
        fd, src = tempfile.mkstemp(suffix=".mlir", dir=cache)
    except OSError as e:
        raise Error(f"--iree-cache: cannot write to '{cache}': {e.strerror}") from None
    tmp = path + f".tmp.{os.getpid()}"
    try:
        with os.fdopen(fd, "w") as f:
            f.write(mlir)
        t0 = time.time()
        r = subprocess.run([tool, *flags, src, "-o", tmp], capture_output=True, text=True)
        if r.returncode != 0:
            raise Error(f"iree-compile rejected the {what} for {' '.join(flags)}: {_first_error(r.stderr)} "
                        "(docs/gpu.md lists the targets IREE 3.13 compiles)")
        os.replace(tmp, path)
        if verbose:
            print(f"  IREE {what}: compiled in {time.time() - t0:.1f}s, cached as {path}", flush=True)
    finally:
        for p in (src, tmp):
            if os.path.exists(p):
                os.remove(p)
    return path


_TYPES = re.compile(r"tensor<([^>]*)>")


def _declared(fn) -> Tuple[List[str], List[str]]:
    """The input and result types (e.g. "8x784xf32", "i32") a loaded function declares."""
    decl = fn.vm_function.reflection.get("iree.abi.declaration", "")
    ins, _, outs = decl.partition("->")
    return _TYPES.findall(ins), _TYPES.findall(outs)


def _expected(sig) -> List[str]:
    return ["x".join([*(str(d) for d in shape), dtype]) if shape else dtype for _, shape, dtype in sig]


def _check_signature(fn, ins, outs, what: str, path: str, name: str) -> None:
    got_in, got_out = _declared(fn)
    want_in, want_out = _expected(ins), _expected(outs)
    if got_in == want_in and got_out == want_out:
        return
    for label, got, want, sig in (("input", got_in, want_in, ins), ("result", got_out, want_out, outs)):
        if len(got) != len(want):
            raise Error(f"{path}: this {what} module has {len(got)} {label}s, {name}'s run needs {len(want)}: it was "
                        "compiled for another network or optimizer (delete it from the cache)")
        for k, (g, w) in enumerate(zip(got, want)):
            if g != w:
                raise Error(f"{path}: {label} {k} ({sig[k][0]}) of this {what} module is tensor<{g}>, {name}'s run needs "
                            f"tensor<{w}>: it was compiled for another batch or network (delete it from the cache)")


class IreeDevice:
    """The compiled train step and eval forward of one run, loaded on an IREE device (see the module docstring)."""

    def __init__(self, driver: str, target: str, flags: Sequence[str], cache: str, train_mlir: str, eval_mlir: str,
                 train_sig, train_results, eval_sig, eval_results, name: str, verbose: bool = True):
        rt = _runtime()
        cache = cache_dir(cache)
        if verbose:
            print(f"IREE device {driver} (target {target}; {compiler_version()}, module cache {cache})", flush=True)
        if driver not in rt.query_available_drivers():
            raise Error(f"--device iree:{driver}: this IREE runtime has no {driver} driver (it has: "
                        f"{', '.join(rt.query_available_drivers())})")
        try:  # the device first: a machine without one learns it before any compiling
            self._config = rt.Config(device=rt.get_device(driver, cache=True))
        except Exception as e:  # RuntimeError: no device of that kind here, or no driver library
            msg = " ".join(str(e).split())
            raise Error(f"--device iree:{driver}: IREE cannot open a {driver} device: {msg}") from None
        train_path = _compile(train_mlir, flags, cache, "train step", verbose)
        eval_path = _compile(eval_mlir, flags, cache, "eval forward", verbose)
        self._ctx = rt.SystemContext(config=self._config)
        for path, want in ((train_path, "veridl_train_step"), (eval_path, "veridl_eval")):
            try:
                module = rt.VmModule.mmap(self._ctx.instance, path)
            except Exception as e:
                raise Error(f"{path}: not a module IREE can load: {' '.join(str(e).split())} (delete it from the "
                            "cache)") from None
            if module.name != want:
                raise Error(f"{path}: this module is '{module.name}', the run needs its '{want}': it was compiled for "
                            "something else (delete it from the cache)")
            self._ctx.add_vm_module(module)
        self._train = self._ctx.modules.veridl_train_step.main
        self._eval = self._ctx.modules.veridl_eval.main
        _check_signature(self._train, train_sig, train_results, "train step", train_path, name)
        _check_signature(self._eval, eval_sig, eval_results, "eval forward", eval_path, name)
        self._params: List[Any] = []
        self._state: List[List[Any]] = []

    def _put(self, a: np.ndarray):
        from iree.runtime import asdevicearray
        return asdevicearray(self._config.device, a)

    def load(self, params: List[np.ndarray], state: List[List[np.ndarray]]) -> None:
        self._params = [self._put(p) for p in params]
        self._state = [[self._put(t) for t in slot] for slot in state]

    def step(self, x: np.ndarray, labels: np.ndarray, lr: float, t: int):
        P = len(self._params)
        flat_state = [t_ for slot in self._state for t_ in slot]
        out = self._train(*self._params, *flat_state, x, labels, np.float32(lr), np.int32(t))
        S = len(flat_state)
        self._params = list(out[:P])
        new_state = list(out[P:P + S])
        self._state = [new_state[k * P:(k + 1) * P] for k in range(len(self._state))]
        loss = float(out[P + S].to_host())
        stats = [o.to_host() for o in out[P + S + 1:len(out) - 1]]
        return loss, stats, out[-1].to_host()

    def fetch(self):
        return [p.to_host() for p in self._params], [[t.to_host() for t in slot] for slot in self._state]

    def forward(self, running: List[np.ndarray], x: np.ndarray) -> np.ndarray:
        return self._eval(*self._params, *running, x).to_host()


def make_device(**kw) -> IreeDevice:
    """What the library calls to make the device of a run (python/src/module.cpp python_engine)."""
    return IreeDevice(**kw)


def device_maker():
    """make_device, once the IREE runtime and compiler are known to import (else a one-line veridl.Error)."""
    _runtime()
    _compiler_tool()
    return make_device


def cli_main(argv: Sequence[str]) -> int:
    """`veridl <argv>` with IREE devices: what `veridl train --device iree:...` hands over to."""
    try:
        _runtime()
        _compiler_tool()
    except Error as e:
        cmd = argv[0] if argv else "train"
        print(f"veridl {cmd}: error: {e}", file=sys.stderr)
        return 2
    return _core.run_cli(["veridl", *argv], make_device)
