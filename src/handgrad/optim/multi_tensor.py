"""The multi-tensor kernels of the optimizers' updates: each runs one update over lists of
tensors with ``torch._foreach_*`` ops, one launch for all the parameters of a (device, dtype),
as torch's ``_multi_tensor_sgd`` and ``_multi_tensor_adam`` (capturable branch) do.

Speed, not teaching: the math is the per-parameter update beside each class (``sgd`` ↔
optim/sgd.py's ``sgd_update``, ``adagrad`` ↔ ``adagrad_update``, ``rmsprop`` ↔
``rmsprop_update``, ``adam`` ↔ ``adam_update``, AdamW included). An optimizer runs these with
foreach=True, and always in graph mode (``Optimizer.device_scalars``, fit's device step and
its CUDA graph): there lr, momentum and the betas are 0-d device tensors, so a per-tensor
``lr * g`` would be a launch of its own per parameter. Each kernel takes the same
hyperparameters as its reference (numbers or 0-d tensors, computed once per list), keeps its
state in the same tensors under the same names, reads nothing on the host, and gives the
reference's numbers to float rounding (tests/test_foreach.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from handgrad.optim.optimizer import Scalar, real

if TYPE_CHECKING:
    from handgrad.optim.adagrad import AdagradHyperparameters
    from handgrad.optim.adam import AdamHyperparameters
    from handgrad.optim.rmsprop import RMSpropHyperparameters
    from handgrad.optim.sgd import SGDHyperparameters

States = list[dict[str, Any]]


def _buckets(
    params: list[Tensor], grads: list[Tensor], states: States
) -> list[tuple[list[Tensor], list[Tensor], States]]:
    """The lists split by (device, dtype): one foreach call each."""
    by: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, p in enumerate(params):
        by.setdefault((p.device, p.dtype), []).append(i)
    return [
        ([params[i] for i in idx], [grads[i] for i in idx], [states[i] for i in idx])
        for idx in by.values()
    ]


def _like(x: Scalar, p: Tensor) -> Scalar:
    """A 0-d tensor in the parameters' dtype (what the per-tensor ``p * x`` computes in; and
    torch's fast multi-tensor kernels take a scalar tensor of the list's dtype); a number as
    it is."""
    return x.to(dtype=p.dtype) if isinstance(x, Tensor) else x


def _real(tensors: list[Tensor]) -> list[Tensor]:
    return [real(t) for t in tensors]


def _gradients(
    params: list[Tensor], grads: list[Tensor], maximize: bool, weight_decay: Scalar
) -> list[Tensor]:
    """g = ∇ (maximize: -∇), plus λp when λ is not 0. The .grad tensors are never written."""
    g = list(torch._foreach_neg(grads)) if maximize else grads
    if weight_decay != 0:
        g = list(torch._foreach_add(g, params, alpha=weight_decay))  # g + λp
    return g


def sgd(
    params: list[Tensor],
    grads: list[Tensor],
    states: States,
    h: SGDHyperparameters,
    *,
    with_momentum: bool,
) -> None:
    """sgd_update over lists: b ← μb + (1 - τ)g;  v = b or g + μb;  p ← p - lr·v.
    with_momentum: the group's momentum is not 0 (read on the host: h.momentum may be a
    device tensor)."""
    for x, grad, st in _buckets(params, grads, states):
        lr = _like(h.lr, x[0])
        g = _gradients(x, grad, h.maximize, h.weight_decay)
        if with_momentum:
            momentum = _like(h.momentum, x[0])
            if all(s.get("momentum_buffer") is not None for s in st):
                b = [s["momentum_buffer"] for s in st]
                torch._foreach_mul_(b, momentum)  # b ← μb
                torch._foreach_add_(b, g, alpha=1 - h.dampening)  # ... + (1 - τ)g
            else:  # the first step: b₁ = g (per tensor, as torch's foreach path)
                for s, gi in zip(st, g):
                    if s.get("momentum_buffer") is None:
                        s["momentum_buffer"] = gi.clone()
                    else:
                        s["momentum_buffer"].mul_(momentum).add_(gi, alpha=1 - h.dampening)
                b = [s["momentum_buffer"] for s in st]
            if h.nesterov:
                g = list(torch._foreach_add(g, torch._foreach_mul(b, momentum)))  # g + μb
            else:
                g = b
        torch._foreach_sub_(x, torch._foreach_mul(g, lr))  # p ← p - lr·v


def adagrad(
    params: list[Tensor], grads: list[Tensor], states: States, t: Scalar, h: AdagradHyperparameters
) -> None:
    """adagrad_update over lists of parameters at the same step t: s ← s + g²;
    p ← p - lr_t·g/(√s + eps), lr_t = lr / (1 + (t - 1)·lr_decay)."""
    if isinstance(t, Tensor):
        t = t.to(torch.float64)  # the device's count, in the scalars' dtype
    for x, grad, st in _buckets(params, grads, states):
        lr_t = _like(h.lr / (1 + (t - 1) * h.lr_decay), real(x[0]))
        g = _real(_gradients(x, grad, h.maximize, h.weight_decay))
        s = _real([state["sum"] for state in st])
        torch._foreach_addcmul_(s, g, g)  # s ← s + g²
        denom = torch._foreach_sqrt(s)  # √s + eps
        torch._foreach_add_(denom, h.eps)
        step = torch._foreach_mul(g, lr_t)
        torch._foreach_div_(step, denom)
        torch._foreach_sub_(_real(x), step)  # p ← p - lr_t·g/(√s + eps)


def rmsprop(
    params: list[Tensor],
    grads: list[Tensor],
    states: States,
    h: RMSpropHyperparameters,
    *,
    with_momentum: bool,
) -> None:
    """rmsprop_update over lists: v ← αv + (1 - α)g²;  p ← p - lr·g/(√v + eps) (centered:
    √(v - ḡ²); momentum: b ← μb + g/(√v + eps), p ← p - lr·b). with_momentum: the group's
    momentum is > 0 (read on the host)."""
    for x, grad, st in _buckets(params, grads, states):
        x0 = real(x[0])
        lr = _like(h.lr, x0)
        g = _real(_gradients(x, grad, h.maximize, h.weight_decay))
        v = _real([s["square_avg"] for s in st])
        torch._foreach_mul_(v, h.alpha)  # v ← αv + (1 - α)g²
        torch._foreach_addcmul_(v, g, g, value=1 - h.alpha)
        if h.centered:
            g_avg = _real([s["grad_avg"] for s in st])
            torch._foreach_lerp_(g_avg, g, 1 - h.alpha)  # ḡ ← αḡ + (1 - α)g
            avg = list(torch._foreach_addcmul(v, g_avg, g_avg, value=-1))  # √(v - ḡ²)
            torch._foreach_sqrt_(avg)
        else:
            avg = list(torch._foreach_sqrt(v))
        torch._foreach_add_(avg, h.eps)
        if with_momentum:
            b = _real([s["momentum_buffer"] for s in st])
            torch._foreach_mul_(b, _like(h.momentum, x0))  # b ← μb + g/(√v + eps)
            torch._foreach_addcdiv_(b, g, avg)
            torch._foreach_sub_(_real(x), torch._foreach_mul(b, lr))  # p ← p - lr·b
        else:
            step = torch._foreach_mul(g, lr)
            torch._foreach_div_(step, avg)
            torch._foreach_sub_(_real(x), step)  # p ← p - lr·g/(√v + eps)


def adam(
    params: list[Tensor], grads: list[Tensor], states: States, t: Scalar, h: AdamHyperparameters
) -> None:
    """adam_update over lists of parameters at the same step t (AdamW: decoupled decay):
    torch's capturable ``_multi_tensor_adam``."""
    for x, grad, st in _buckets(params, grads, states):
        _adam(x, grad, st, t, h)


def _adam(
    params: list[Tensor], grads: list[Tensor], states: States, t: Scalar, h: AdamHyperparameters
) -> None:
    lr, beta1, beta2, wd = h.lr, h.beta1, h.beta2, h.weight_decay
    decoupled = wd != 0 and h.decoupled_weight_decay
    g = _real(_gradients(params, grads, h.maximize, 0 if decoupled else wd))  # coupled: g + λp
    x = _real(params)
    p0 = x[0]
    if decoupled:
        torch._foreach_mul_(x, _like(1 - lr * wd, p0))  # p ← p(1 - lr·λ)
    m = _real([s["exp_avg"] for s in states])
    v = _real([s["exp_avg_sq"] for s in states])
    d = torch._foreach_sub(g, m)  # m ← m + (1 - β₁)(g - m) = β₁m + (1 - β₁)g
    torch._foreach_mul_(d, _like(1 - beta1, p0))
    torch._foreach_add_(m, d)
    torch._foreach_mul_(v, _like(beta2, p0))  # v ← β₂v + (1 - β₂)g²
    torch._foreach_addcmul_(v, torch._foreach_mul(g, _like(1 - beta2, p0)), g)
    if h.amsgrad:
        v_max = _real([s["max_exp_avg_sq"] for s in states])
        torch._foreach_maximum_(v_max, v)  # v̂ ← max(v̂, v)
        v = v_max
    step_size = lr / (1 - beta1**t)  # lr / (1 - β₁ᵗ)
    bias2_sqrt = (1 - beta2**t) ** 0.5  # √(1 - β₂ᵗ)
    denom = torch._foreach_sqrt(v)  # √v / √(1 - β₂ᵗ) + eps
    torch._foreach_div_(denom, _like(bias2_sqrt, p0))
    torch._foreach_add_(denom, h.eps)
    torch._foreach_div_(denom, _like(step_size, p0))  # torch's order: m / (denom / step_size)
    torch._foreach_addcdiv_(x, m, denom, value=-1)  # p ← p - step_size·m/denom
