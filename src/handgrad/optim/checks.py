"""The optimizers' argument checks (parameters, groups, hyperparameters, switches), with
torch.optim's messages (its ValueError is handgrad's InputError, a ValueError too)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from handgrad.errors import ArgumentTypeError, InputError, NotSupportedError


def check_params(owner: str, params: Any) -> None:
    """An optimizer's params: an iterable (of tensors, (name, tensor) pairs or group dicts)."""
    if isinstance(params, Tensor):
        raise ArgumentTypeError(
            f"{owner}: params argument given to the optimizer should be an iterable "
            f"of Tensors or dicts, but got {torch.typename(params)}"
        )
    if not isinstance(params, Iterable):
        raise ArgumentTypeError(
            f"{owner}: params argument given to the optimizer should be an iterable "
            f"of Tensors or dicts, but got {type(params).__name__}"
        )


def check_param_group(owner: str, param_group: Any) -> dict[str, list[Any]]:
    """A group dict's 'params' (a tensor, or an ordered collection of leaf tensors or of
    (name, tensor) pairs) as {'params': [tensors]}, plus 'param_names' when they are named."""
    if not isinstance(param_group, dict):
        raise ArgumentTypeError(f"{owner}: param_group must be a dict, but got {type(param_group)}")
    if "params" not in param_group:
        raise InputError(f"{owner}: a parameter group needs a 'params' entry")
    params = param_group["params"]
    if isinstance(params, Tensor):
        params = [params]
    elif isinstance(params, set):
        raise ArgumentTypeError(
            f"{owner}: optimizer parameters need to be organized in ordered "
            "collections, but the ordering of tensors in sets will change between runs. "
            "Please use a list instead."
        )
    params = list(params)
    names = [p[0] for p in params if isinstance(p, tuple)]
    out: dict[str, list[Any]] = {"params": [p[1] if isinstance(p, tuple) else p for p in params]}
    if names:
        if len(names) != len(params):
            raise InputError(
                f"{owner}: all optimizer params should be with/without names. "
                "Some param names are missing"
            )
        out["param_names"] = names
    for p in out["params"]:
        if not isinstance(p, Tensor):
            raise ArgumentTypeError(
                f"{owner}: optimizer can only optimize Tensors, but one of the params "
                f"is {torch.typename(p)}"
            )
        if not p.is_leaf:
            raise InputError(f"{owner}: can't optimize a non-leaf Tensor")
    return out


def check_lr(owner: str, lr: Any) -> None:
    """lr: a number >= 0, or a one-element tensor (torch accepts both)."""
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise InputError(f"{owner}: Tensor lr must be 1-element")
    elif not isinstance(lr, (int, float)) or isinstance(lr, bool):
        raise ArgumentTypeError(f"{owner}: lr must be a number, got {type(lr).__name__}")
    if not float(lr) >= 0.0:
        raise InputError(f"{owner}: Invalid learning rate: {lr}")


def check_nonnegative(owner: str, **values: Any) -> None:
    """torch's checks: 'Invalid <what> value: <v>' for a negative (or NaN) hyperparameter."""
    labels = {"eps": "epsilon"}
    for name, v in values.items():
        if not isinstance(v, (int, float, Tensor)) or isinstance(v, bool):
            raise ArgumentTypeError(f"{owner}: {name} must be a number, got {type(v).__name__}")
        if not float(v) >= 0.0:
            raise InputError(f"{owner}: Invalid {labels.get(name, name)} value: {v}")


def refuse_switches(owner: str, group: dict[str, Any]) -> None:
    """torch's implementation switches that change how it computes, not what: handgrad runs
    its own update (foreach=True: the multi-tensor one) and has no autograd to differentiate."""
    if group.get("fused"):
        raise NotSupportedError(owner, "fused=True", "torch's fused kernels")
    if group.get("capturable"):
        raise NotSupportedError(owner, "capturable=True", "CUDA-graph capture of the step")
    if group.get("differentiable"):
        raise NotSupportedError(owner, "differentiable=True", "handgrad has no autograd")
