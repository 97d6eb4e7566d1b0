"""PyTorch interop: a VeriDL network or checkpoint as the state_dict of the equivalent torch.nn model, and back.

The equivalent model is the one bench/pytorch_nets.py builds from the NetSpec (the independent PyTorch reference of
tests/torch_conformance.py; the package ships it as veridl._pytorch_nets): torch_model(spec) returns it. Its
veridl_tensor_map gives, for each VeriDL tensor, the model's parameter or buffer and whether it is transposed: a
dense weight is VeriDL's [fanIn, fanOut] and nn.Linear's [out, in]; conv kernels are OIHW in both; a BatchNorm's
gamma / beta / running_mean / running_var are its weight / bias / running_mean / running_var, and its
num_batches_tracked is the network's training steps. docs/data.md, "PyTorch state_dicts", has the table.
Needs torch (Debian's python3-torch 1.13 is tested).
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any, Dict, Mapping, Union

import numpy as np


def _nets():
    from . import _pytorch_nets  # bench/pytorch_nets.py, installed with the package
    return _pytorch_nets


def _veridl():
    import veridl
    return veridl


def _to_torch_layout(a: np.ndarray, transposed: bool) -> np.ndarray:
    """A VeriDL tensor in the layout of its torch counterpart: a dense weight [fanIn, fanOut] -> [out, in]."""
    return a.T if transposed else a


def _from_torch_layout(a: np.ndarray, transposed: bool) -> np.ndarray:
    """The inverse of _to_torch_layout."""
    return a.T if transposed else a


def _network(obj: Any):
    veridl = _veridl()
    if isinstance(obj, veridl.Network):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return veridl.Network.load(obj)
    raise veridl.Error(f"expected a veridl.Network or a checkpoint path, got {type(obj).__name__}")


def _spec_dict(spec: Any) -> Dict[str, Any]:
    veridl = _veridl()
    if isinstance(spec, veridl.Network):
        return spec.spec
    return veridl.Network(spec).spec  # parsed and validated by VeriDL: the same normalised form


def torch_model(spec: Any):
    """The torch.nn model equivalent to a NetSpec (a path, JSON text, dict or a veridl.Network): an nn.Sequential
    for a chain of layers, else the reference's GraphNet. Its parameters are torch's defaults until a state_dict from
    to_torch_state_dict is loaded; call .eval() for inference (BatchNorm on its running statistics)."""
    model, _ = _nets().build_model(_spec_dict(spec))
    return model


def _same_up_to_ones(a, b) -> bool:
    return [n for n in a if n != 1] == [n for n in b if n != 1]


def to_torch_state_dict(checkpoint_or_net: Union[str, "os.PathLike[str]", Any]) -> "OrderedDict[str, Any]":
    """The state_dict (torch tensors, in the model's order) of torch_model(spec) holding this network's parameters
    and BatchNorm running statistics. Accepts a veridl.Network or a checkpoint path (the CLI's or save()'s)."""
    import torch

    veridl = _veridl()
    net = _network(checkpoint_or_net)
    spec = net.spec
    model, _ = _nets().build_model(spec)
    tensors = net.tensors()
    key_of = {id(t): k for k, t in model.state_dict(keep_vars=True).items()}
    values: Dict[str, Any] = {}
    for name, dst, transposed in _nets().veridl_tensor_map(model, spec):
        if name not in tensors:
            raise veridl.Error(f"{net.name}: no VeriDL tensor '{name}' for the torch model's {key_of[id(dst)]}")
        a = _to_torch_layout(tensors.pop(name), transposed)
        if not _same_up_to_ones(a.shape, dst.shape):
            raise veridl.Error(f"{net.name}: tensor '{name}' has shape {list(a.shape)} in torch's layout, "
                               f"{key_of[id(dst)]} is {list(dst.shape)}")
        values[key_of[id(dst)]] = torch.from_numpy(np.ascontiguousarray(a).reshape(tuple(dst.shape)))
    if tensors:
        raise veridl.Error(f"{net.name}: tensors without a torch counterpart: {', '.join(sorted(tensors))}")
    out: "OrderedDict[str, Any]" = OrderedDict()
    for key, t in model.state_dict().items():
        if key in values:
            out[key] = values[key]
        elif key.endswith("num_batches_tracked"):  # BatchNorm's step count: VeriDL's training steps
            out[key] = torch.tensor(net.steps, dtype=t.dtype)
        else:
            raise veridl.Error(f"{net.name}: the torch model's {key} has no VeriDL tensor")
    return out


def from_torch_state_dict(state_dict: Mapping[str, Any], spec: Any):
    """A veridl.Network for `spec` (a path, JSON text, dict or a veridl.Network, whose parameters are not changed)
    holding the parameters and BatchNorm running statistics of a state_dict of torch_model(spec). Every key must be
    present with its shape; num_batches_tracked is not carried (VeriDL's BatchNorm momentum is fixed)."""
    veridl = _veridl()
    net = veridl.Network(json.dumps(_spec_dict(spec)))
    model, _ = _nets().build_model(net.spec)
    key_of = {id(t): k for k, t in model.state_dict(keep_vars=True).items()}
    expected = set(model.state_dict().keys())
    missing = sorted(expected - set(state_dict))
    unexpected = sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise veridl.Error(f"state_dict does not match the torch model of {net.name}: "
                           + "; ".join(p for p in (f"missing {', '.join(missing)}" if missing else "",
                                                   f"unexpected {', '.join(unexpected)}" if unexpected else "") if p))
    shapes = {k: v.shape for k, v in net.tensors().items()}
    tensors = {}
    for name, dst, transposed in _nets().veridl_tensor_map(model, net.spec):
        key = key_of[id(dst)]
        t = state_dict[key]
        if not _same_up_to_ones(tuple(t.shape), tuple(dst.shape)):
            raise veridl.Error(f"state_dict['{key}'] has shape {list(t.shape)}, the torch model of {net.name} has "
                               f"{list(dst.shape)}")
        a = _from_torch_layout(t.detach().cpu().to(dtype=dst.dtype).numpy().reshape(tuple(dst.shape)), transposed)
        tensors[name] = np.ascontiguousarray(a, dtype=np.float32).reshape(shapes[name])
    net.set_tensors(tensors)
    return net
