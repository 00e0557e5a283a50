"""fit's argument checks at entry: a handgrad model, loss and optimizer, and an optimizer that
holds only the model's (or the loss's) tensors, so that a step moves what the loss reads."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from handgrad.errors import ArgumentTypeError, InputError
from handgrad.module import require_module
from handgrad.optim.optimizer import Optimizer


def check_clip(who: str, clip_grad_norm: object) -> None:
    """clip_grad_norm: None (no clipping) or a number > 0."""
    if clip_grad_norm is not None and not (
        isinstance(clip_grad_norm, (int, float)) and clip_grad_norm > 0
    ):
        raise InputError(f"{who}: clip_grad_norm must be a number > 0, got {clip_grad_norm!r}")


def check_fit(model: Any, loss: Any, optimizer: Any, who: str = "fit") -> None:
    """Refuse a torch.nn model or loss, a torch.optim optimizer, and an optimizer holding a
    tensor of neither the model nor the loss (a subset, for fine-tuning, is fine)."""
    require_module(who, "model", model)
    require_module(who, "loss", loss)
    kind = type(optimizer)
    if kind.__module__.startswith("torch.optim"):
        raise ArgumentTypeError(
            f"{who}: optimizer is torch.optim's {kind.__name__}, which steps with autograd's "
            f"tensors; pass handgrad's: hg.optim.{kind.__name__} takes the same arguments"
        )
    if not isinstance(optimizer, Optimizer):
        raise ArgumentTypeError(
            f"{who}: optimizer must be a handgrad optimizer (hg.optim.SGD, Adam, ...), "
            f"got {kind.__module__}.{kind.__qualname__}"
        )
    own = {id(p) for p in model.parameters()} | {id(p) for p in loss.parameters()}
    for g, group in enumerate(optimizer.param_groups):
        for i, p in enumerate(group["params"]):
            if id(p) not in own:
                raise InputError(
                    f"{who}: the optimizer holds {_describe(group, g, i, p)}, which is a "
                    "parameter of neither the model nor the loss: a step would not move the "
                    "model; build the optimizer on model.parameters()"
                )


def _describe(group: dict[str, Any], g: int, i: int, p: Tensor) -> str:
    """The i-th tensor of group g: by its name when the optimizer has names."""
    names = group.get("param_names")
    where = repr(names[i]) if names else f"tensor {i} of param group {g}"
    return f"{where} (shape {tuple(p.shape)}, {p.dtype})"
