"""One training step, written once: forward → loss → backward → clip → guard → update.

fit's eager epochs, ``handgrad train --arch gpt`` (tools/text_recipe.py) and fit's device step
(training/graph.py's ``Step``: cuda_graph=True, precision="bf16") all call ``train_step``.
They differ only in the guard that stands between the gradients and the update:

- ``HostGuard`` (eager): the loss and the gradient norm are read on the host, in one read a
  step; an inf or NaN raises NonFiniteLossError before the update, so the model keeps its
  weights from before the bad step (nothing is copied).
- the device guard (``Step``, which a CUDA graph can capture): nothing is read on the host. A
  device flag, cleared by the first inf or NaN, zeroes the gradients and every learning rate,
  so the update changes no weight; fit reads the flag once, at the epoch's end, and raises.

One norm a step is the check: with clipping, clip_grad_norm's ‖g‖ from before it scaled the
gradients (inf or NaN when any element is); without, the guard's own max|g|.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from handgrad.errors import HandgradError
from handgrad.module import Module
from handgrad.nn.loss import Loss
from handgrad.optim.clip import clip_grad_norm, total_norm
from handgrad.optim.optimizer import Optimizer

__all__ = ["Guard", "HostGuard", "NonFiniteLossError", "autocast", "train_step"]


class NonFiniteLossError(HandgradError, FloatingPointError):
    """The loss or a gradient became inf or NaN; the model holds its weights from before that
    step."""


def non_finite(who: str, what: str, hint: str) -> NonFiniteLossError:
    """The guards' error: `what` became inf or NaN (and where), and what to try."""
    return NonFiniteLossError(
        f"{who}: {what}; the model keeps its weights from before this step ({hint})"
    )


class Guard(Protocol):
    """What stands between the gradients and the update (HostGuard, or graph.Step's)."""

    params: list[Tensor]  # the parameters whose gradients are clipped and checked

    def zero_grad(self, optimizer: Optimizer) -> None:
        """Clear the gradients before the backward."""

    def check(self, loss: Tensor, norm: Tensor | None) -> None:
        """Keep an inf or NaN `loss` or gradient out of the update; `norm`: clip_grad_norm's
        ‖g‖, or None (no clipping: the guard measures the gradients itself)."""


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """torch.autocast to bf16 on `device` for "bf16" (no cast cache: safe in a graph)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext()


def train_step(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    x: Tensor,
    y: Tensor,
    guard: Guard,
    clip: float | None = None,
    sync: Callable[[Module], None] | None = None,
    precision: str = "float32",
    classes_last: bool = False,
) -> tuple[Tensor, Tensor]:
    """One optimizer step on the batch (x, y); returns the model's output and the loss (0-d).

    Args:
        guard: HostGuard (raise before the update) or graph.Step (mask the update on the
            device); its `params` are the ones clipped and checked.
        clip: scale the gradients to a total 2-norm of at most this (hg.clip_grad_norm).
        sync: average the gradients over processes (training/distributed.py).
        precision: "bf16": forward and backward under autocast, the loss in float32.
        classes_last: (N, T, V) logits against (N, T) ids (a GPT): one row per position.
    """
    with autocast(precision, x.device):
        out = model(x)  # (N, C); (N, T, V) with classes_last
    pred, target = (out.flatten(0, -2), y.flatten()) if classes_last else (out, y)
    loss = loss_fn(pred.float() if precision == "bf16" else pred, target)
    guard.zero_grad(optimizer)
    with autocast(precision, x.device):
        dpred = loss_fn.backward()  # dL/dpred
        model.backward_params(dpred.reshape(out.shape))  # dL/dx of the data is never needed
    if sync is not None:
        sync(model)  # data parallel: every process steps with the averaged gradient
    norm = clip_grad_norm(guard.params, clip) if clip is not None else None  # ‖g‖, then clipped
    guard.check(loss, norm)  # an inf or NaN loss or gradient: no update
    optimizer.step()
    return out, loss


class HostGuard:
    """The eager guard: the loss and the gradient norm, read on the host once a step; an inf
    or NaN raises NonFiniteLossError naming the step before the optimizer updates anything.

    `who` and `hint` frame the message ("fit", "try a smaller learning rate"); the loop sets
    `where` before each step ("epoch 2, batch 5"). `value`: the last good step's loss.
    """

    def __init__(self, params: list[Tensor], who: str, hint: str) -> None:
        self.params, self.who, self.hint = params, who, hint
        self.where = ""
        self.value = math.nan

    def zero_grad(self, optimizer: Optimizer) -> None:
        """Every .grad to None (optimizer.zero_grad): the backward makes new ones."""
        optimizer.zero_grad()

    def check(self, loss: Tensor, norm: Tensor | None) -> None:
        """Read the loss and the norm (one host read); raise if either is inf or NaN."""
        if norm is None:  # max|g|: inf or NaN exactly when an element is
            norm = total_norm([p.grad for p in self.params if p.grad is not None], "inf")
        both = torch.stack([loss.detach(), norm.to(loss.device)])  # (stack promotes the dtype)
        value, size = both.tolist()  # one host read a step, as Python floats
        if not math.isfinite(value):
            what = f"the loss became {value}"
        elif not math.isfinite(size):
            what = "a gradient became inf or NaN"
        else:
            self.value = value
            return
        raise non_finite(self.who, f"{what} at {self.where}", self.hint)
