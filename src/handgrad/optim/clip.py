"""Gradient clipping by norm: what torch.nn.utils.clip_grad_norm_ computes, written out.

All the gradients together are one long vector g = (g₁, g₂, ...). Its p-norm is the p-norm
of the per-tensor norms, ‖g‖_p = ‖(‖g₁‖_p, ‖g₂‖_p, ...)‖_p (‖·‖_∞ = the largest |gᵢ|).
When ‖g‖ exceeds max_norm every gradient is scaled by the same factor

    c = min(max_norm / (‖g‖ + 1e-6), 1)

so the step keeps its direction and its length is at most max_norm (the 1e-6 is torch's: it
keeps c finite for a zero gradient and leaves ‖c·g‖ a hair under max_norm). A recurrent
network or a transformer can meet a rare batch whose gradient is many times the usual one
(the "exploding gradient" of backpropagation through time); clipping bounds that one step
without changing the others.

    loss = loss_fn(model(x), y)
    model.backward(loss_fn.backward())
    hg.clip_grad_norm(model.parameters(), 1.0)   # between backward and the optimizer step
    opt.step()

``fit(..., clip_grad_norm=1.0)`` and ``handgrad train --clip-grad-norm 1.0`` do the same.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Iterable
from typing import Union

import torch
from torch import Tensor

from handgrad.errors import ArgumentTypeError, HandgradError, InputError, UsageError

__all__ = ["clip_grad_norm", "total_norm", "NonFiniteNormError"]

Parameters = Union[Tensor, Iterable[Tensor]]  # noqa: UP007 (runtime alias)

# Where torch has foreach kernels (torch.utils._foreach_utils): one call for many tensors.
_FOREACH_DEVICES = ("cpu", "cuda", "xpu", "mtia")


class NonFiniteNormError(HandgradError, RuntimeError):
    """The total gradient norm is inf or NaN and error_if_nonfinite=True (torch's
    RuntimeError)."""


def _foreach(device: torch.device, foreach: bool | None, tensors: list[Tensor]) -> bool:
    """Whether to use torch's foreach kernels for these tensors, as torch decides it."""
    supported = device.type in (*_FOREACH_DEVICES, torch._C._get_privateuse1_backend_name())
    if foreach is None:
        return supported and all(type(t) is Tensor for t in tensors)
    if foreach and not supported:
        raise UsageError(
            f"clip_grad_norm: foreach=True was passed, but can't use the foreach API on "
            f"{device.type} tensors"
        )
    return bool(foreach)


def _by_device_and_dtype(
    tensors: list[Tensor],
) -> dict[tuple[torch.device, torch.dtype], list[Tensor]]:
    """The tensors grouped as torch groups them, groups in order of first appearance."""
    groups: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    return groups


def total_norm(
    tensors: Parameters,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """‖g‖_p of the tensors viewed as one vector: the p-norm of their p-norms
    (torch.nn.utils.get_total_norm). A 0-d tensor on the first tensor's device; 0.0 for none."""
    grads = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    p = float(norm_type)
    if not grads:
        return torch.tensor(0.0)
    first_device = grads[0].device
    norms: list[Tensor] = []
    for (device, _), group in _by_device_and_dtype(grads).items():
        if _foreach(device, foreach, group):
            norms.extend(torch._foreach_norm(group, p))  # ‖gᵢ‖_p, one kernel for the group
        else:
            norms.extend(torch.linalg.vector_norm(g, p) for g in group)  # ‖gᵢ‖_p
    total = torch.linalg.vector_norm(torch.stack([n.to(first_device) for n in norms]), p)
    if error_if_nonfinite and bool(total.isnan() | total.isinf()):
        raise NonFiniteNormError(
            f"clip_grad_norm: the total norm of order {p} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return total


def clip_grad_norm(
    parameters: Parameters,
    max_norm: float,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """Scale every parameter's .grad in place by c = min(max_norm / (‖g‖ + 1e-6), 1), ‖g‖ the
    norm of all the gradients together (`norm_type`: p, or inf / "inf" for the largest
    |element|); returns ‖g‖ as a 0-d tensor, before clipping. torch.nn.utils.clip_grad_norm_'s
    arguments and numbers; parameters without a .grad are skipped. `error_if_nonfinite`:
    an inf or NaN norm raises NonFiniteNormError (else the gradients are scaled by it, as
    torch does). `foreach`: torch's multi-tensor kernels (None: where the device has them).
    """
    if isinstance(parameters, Tensor):
        params = [parameters]
    elif isinstance(parameters, Iterable):
        is_generator = isinstance(parameters, types.GeneratorType)
        params = list(parameters)  # a generator is read once
        if is_generator and not params:
            warnings.warn(
                "`parameters` is an empty generator, no gradient clipping will occur.",
                stacklevel=2,
            )
    else:
        raise ArgumentTypeError(
            f"clip_grad_norm: parameters must be a tensor or an iterable of tensors, got "
            f"{type(parameters).__name__}"
        )
    if not all(isinstance(p, Tensor) for p in params):
        bad = next(p for p in params if not isinstance(p, Tensor))
        raise ArgumentTypeError(
            f"clip_grad_norm: parameters must be tensors, got a {type(bad).__name__}"
        )
    for name, v in (("max_norm", max_norm), ("norm_type", norm_type)):
        if isinstance(v, bool) or not isinstance(v, (int, float, str, Tensor)):
            raise ArgumentTypeError(
                f"clip_grad_norm: {name} must be a number, got {type(v).__name__}"
            )
    try:
        max_norm, p = float(max_norm), float(norm_type)
    except ValueError:
        raise InputError(
            f"clip_grad_norm: max_norm and norm_type must be numbers (norm_type may be 'inf'), "
            f"got {max_norm!r} and {norm_type!r}"
        ) from None
    grads = [q.grad for q in params if q.grad is not None]
    total = total_norm(grads, p, error_if_nonfinite, foreach)
    if not grads:
        return total
    c = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # min(max_norm / (‖g‖ + 1e-6), 1)
    for (device, _), group in _by_device_and_dtype(grads).items():
        if _foreach(device, foreach, group):
            torch._foreach_mul_(group, c.to(device))  # gᵢ ← c·gᵢ, one kernel for the group
        else:
            for g in group:
                g.mul_(c.to(device))  # gᵢ ← c·gᵢ
    return total
