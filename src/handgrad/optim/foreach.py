"""The speed path of the optimizers in graph mode: one multi-tensor update per parameter group.

In graph mode (``Optimizer.device_scalars``, what fit's device step and its CUDA graph use) the
per-tensor updates of optimizers.py pay a handful of small kernels per parameter: the scalars
(lr·mask, momentum, betas, bias corrections) are 0-d device tensors, so every ``lr * g`` is a
launch of its own. Here the same updates run on lists of tensors with ``torch._foreach_*`` ops,
one launch for all the parameters of a (device, dtype), as torch's ``_multi_tensor_sgd`` and
``_multi_tensor_adam`` (capturable branch) do. The scalars are computed once per group.

This file is not where the math is taught: each function mirrors one per-tensor
``_step_group`` of optimizers.py (``sgd`` ↔ ``SGD``, ``adam`` ↔ ``Adam`` and ``AdamW``,
``adagrad`` ↔ ``Adagrad``, ``rmsprop`` ↔ ``RMSprop``), gives its numbers to float rounding
(tests/test_foreach.py), keeps its state in the same tensors under the same names (torch's
state_dict format), and reads nothing on the host. Complex parameters keep the per-tensor
path (``applies``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import Tensor

from handgrad.optim.optimizer import Optimizer, value


def applies(group: dict[str, Any]) -> bool:
    """Whether the group can take the multi-tensor update: real, dense parameters."""
    return not any(torch.is_complex(p) or p.is_sparse for p in group["params"])


def buckets(group: dict[str, Any]) -> list[list[Tensor]]:
    """The group's parameters that have a .grad, by (device, dtype): one foreach call each."""
    out: defaultdict[tuple[torch.device, torch.dtype], list[Tensor]] = defaultdict(list)
    for p in group["params"]:
        if p.grad is not None:
            out[(p.device, p.dtype)].append(p)
    return list(out.values())


def _like(x: Tensor, p: Tensor) -> Tensor:
    """A 0-d scalar in the parameters' dtype (what the per-tensor ``p * x`` computes in; and
    torch's fast multi-tensor kernels take a scalar tensor of the list's dtype)."""
    return x.to(dtype=p.dtype)


def _gradients(params: list[Tensor], group: dict[str, Any], wd: float) -> list[Tensor]:
    """g = ∇ (maximize: -∇), plus wd·p when wd is not 0 (optimizers._gradient, listwise).
    The .grad tensors themselves are never written."""
    grads = [p.grad for p in params if p.grad is not None]
    g = list(torch._foreach_neg(grads)) if group["maximize"] else grads
    if wd != 0:
        g = list(torch._foreach_add(g, params, alpha=wd))  # g + λp
    return g


def sgd(opt: Optimizer, group: dict[str, Any], h: dict[str, Tensor]) -> None:
    """SGD._step_group on lists: b ← μb + (1 - τ)g;  v = b or g + μb;  p ← p - lr·v."""
    dampening, wd = group["dampening"], value(group["weight_decay"])
    for params in buckets(group):
        lr = _like(h["lr"], params[0])
        g = _gradients(params, group, wd)
        if group["momentum"] != 0:
            momentum = _like(h["momentum"], params[0])
            states = [opt.state[p] for p in params]
            if all(s.get("momentum_buffer") is not None for s in states):
                b = [s["momentum_buffer"] for s in states]
                torch._foreach_mul_(b, momentum)  # b ← μb
                torch._foreach_add_(b, g, alpha=1 - dampening)  # ... + (1 - τ)g
            else:  # the first step: b₁ = g (per tensor, as torch's foreach path)
                for s, gi in zip(states, g):
                    if s.get("momentum_buffer") is None:
                        s["momentum_buffer"] = gi.clone()
                    else:
                        s["momentum_buffer"].mul_(momentum).add_(gi, alpha=1 - dampening)
                b = [s["momentum_buffer"] for s in states]
            if group["nesterov"]:
                g = list(torch._foreach_add(g, torch._foreach_mul(b, momentum)))  # g + μb
            else:
                g = b
        torch._foreach_sub_(params, torch._foreach_mul(g, lr))  # p ← p - lr·v


def runs(opt: Optimizer, params: list[Tensor]) -> list[tuple[list[Tensor], list[dict[str, Any]]]]:
    """Count a step for every parameter (state["step"] += 1, in one call), then split them
    into runs of equal counts: each run shares one set of step-dependent scalars (one run in
    practice; a parameter that missed steps makes another)."""
    states = [opt.state[p] for p in params]
    by_count: defaultdict[int, list[int]] = defaultdict(list)
    for i, n in enumerate(opt._count_all(params, states)):
        by_count[n].append(i)
    return [([params[i] for i in run], [states[i] for i in run]) for run in by_count.values()]


def adam(opt: Optimizer, group: dict[str, Any], h: dict[str, Tensor]) -> None:
    """Adam._step_group on lists (AdamW: decoupled_weight_decay); torch's capturable
    ``_multi_tensor_adam`` with one step count per run of equal counts."""
    eps, wd = group["eps"], value(group["weight_decay"])
    for params in buckets(group):
        for p in params:
            opt._state(p, group)  # Adam._state: made on first use
        for run, states in runs(opt, params):
            _adam_run(run, states, group, h, eps, wd)


def _adam_run(
    params: list[Tensor],
    states: list[dict[str, Any]],
    group: dict[str, Any],
    h: dict[str, Tensor],
    eps: float,
    wd: float,
) -> None:
    """The Adam update of parameters that have made the same number of steps t."""
    p0 = params[0]
    lr, beta1, beta2 = h["lr"], h["beta1"], h["beta2"]
    decoupled = wd != 0 and group["decoupled_weight_decay"]
    g = _gradients(params, group, 0 if decoupled else wd)  # coupled: g + λp
    if decoupled:
        torch._foreach_mul_(params, _like(1 - lr * wd, p0))  # p ← p(1 - lr·λ)
    m = [s["exp_avg"] for s in states]
    v = [s["exp_avg_sq"] for s in states]
    d = torch._foreach_sub(g, m)  # m ← m + (1 - β₁)(g - m) = β₁m + (1 - β₁)g
    torch._foreach_mul_(d, _like(1 - beta1, p0))
    torch._foreach_add_(m, d)
    torch._foreach_mul_(v, _like(beta2, p0))  # v ← β₂v + (1 - β₂)g²
    torch._foreach_addcmul_(v, torch._foreach_mul(g, _like(1 - beta2, p0)), g)
    if group["amsgrad"]:
        v_max = [s["max_exp_avg_sq"] for s in states]
        torch._foreach_maximum_(v_max, v)  # v̂ ← max(v̂, v)
        v = v_max
    t = states[0]["step"]  # the device's count, the same for the whole run
    step_size = lr / (1 - beta1**t)  # lr / (1 - β₁ᵗ)
    bias2_sqrt = (1 - beta2**t) ** 0.5  # √(1 - β₂ᵗ)
    denom = torch._foreach_sqrt(v)  # √v / √(1 - β₂ᵗ) + eps
    torch._foreach_div_(denom, _like(bias2_sqrt, p0))
    torch._foreach_add_(denom, eps)
    torch._foreach_div_(denom, _like(step_size, p0))  # torch's order: m / (denom / step_size)
    torch._foreach_addcdiv_(params, m, denom, value=-1)  # p ← p - step_size·m/denom


def adagrad(opt: Optimizer, group: dict[str, Any], h: dict[str, Tensor]) -> None:
    """Adagrad._step_group on lists: s ← s + g²;  p ← p - lr_t·g/(√s + eps),
    lr_t = lr / (1 + (t - 1)·lr_decay)."""
    eps, lr_decay, wd = group["eps"], group["lr_decay"], value(group["weight_decay"])
    for params in buckets(group):
        for p in params:
            if not opt.state[p]:  # a group added after construction
                opt._init_state(p, group["initial_accumulator_value"])  # Adagrad._init_state
        for run, states in runs(opt, params):
            t = states[0]["step"].to(h["lr"].dtype)  # the same count for the whole run
            lr_t = _like(h["lr"] / (1 + (t - 1) * lr_decay), run[0])
            g = _gradients(run, group, wd)
            s = [st["sum"] for st in states]
            torch._foreach_addcmul_(s, g, g)  # s ← s + g²
            denom = torch._foreach_sqrt(s)  # √s + eps
            torch._foreach_add_(denom, eps)
            step = torch._foreach_mul(g, lr_t)
            torch._foreach_div_(step, denom)
            torch._foreach_sub_(run, step)  # p ← p - lr_t·g/(√s + eps)


def rmsprop(opt: Optimizer, group: dict[str, Any], h: dict[str, Tensor]) -> None:
    """RMSprop._step_group on lists: v ← αv + (1 - α)g²;  p ← p - lr·g/(√v + eps) (centered:
    √(v - ḡ²); momentum: b ← μb + g/(√v + eps), p ← p - lr·b)."""
    alpha, eps, wd = group["alpha"], group["eps"], value(group["weight_decay"])
    for params in buckets(group):
        states = [opt._state(p, group) for p in params]  # RMSprop._state: made on first use
        opt._count_all(params, states)  # RMSprop's math does not read the count
        lr = _like(h["lr"], params[0])
        g = _gradients(params, group, wd)
        v = [s["square_avg"] for s in states]
        torch._foreach_mul_(v, alpha)  # v ← αv + (1 - α)g²
        torch._foreach_addcmul_(v, g, g, value=1 - alpha)
        if group["centered"]:
            g_avg = [s["grad_avg"] for s in states]
            torch._foreach_lerp_(g_avg, g, 1 - alpha)  # ḡ ← αḡ + (1 - α)g
            avg = list(torch._foreach_addcmul(v, g_avg, g_avg, value=-1))  # √(v - ḡ²)
            torch._foreach_sqrt_(avg)
        else:
            avg = list(torch._foreach_sqrt(v))
        torch._foreach_add_(avg, eps)
        if group["momentum"] > 0:
            b = [s["momentum_buffer"] for s in states]
            torch._foreach_mul_(b, _like(h["momentum"], params[0]))  # b ← μb + g/(√v + eps)
            torch._foreach_addcdiv_(b, g, avg)
            torch._foreach_sub_(params, torch._foreach_mul(b, lr))  # p ← p - lr·b
        else:
            step = torch._foreach_mul(g, lr)
            torch._foreach_div_(step, avg)
            torch._foreach_sub_(params, step)  # p ← p - lr·g/(√v + eps)
