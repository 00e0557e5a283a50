"""Adam and AdamW: the update of one parameter (the math), then the classes (constructor,
checks, state, and which update runs).

The update is torch.optim's single-tensor rule, line for line, so the same weights and
gradients give torch's numbers exactly (a tensor lr too). With foreach=True, and always in
graph mode, the classes run optim/multi_tensor.py's ``adam`` instead: the same update over
lists, held equal to this one by tests/test_optim.py and tests/test_foreach.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from handgrad.errors import InputError
from handgrad.optim import multi_tensor
from handgrad.optim.checks import check_lr, check_nonnegative, refuse_switches
from handgrad.optim.optimizer import Optimizer, Params, Scalar, real


@dataclass
class AdamHyperparameters:
    """One group's numbers for one step; lr and the betas are 0-d device tensors in graph
    mode, and lr may be a tensor anywhere (torch's tensor lr)."""

    lr: Scalar
    beta1: Scalar
    beta2: Scalar
    eps: float
    weight_decay: float
    amsgrad: bool
    maximize: bool
    decoupled_weight_decay: bool


def adam_update(
    p: Tensor, grad: Tensor, state: dict[str, Any], t: Scalar, h: AdamHyperparameters
) -> None:
    """m ← β₁m + (1 - β₁)g,  v ← β₂v + (1 - β₂)g²  (amsgrad: v̂ = max of the v's so far);
    p ← p - lr/(1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + eps) at step t, p updated in place."""
    g = -grad if h.maximize else grad  # maximize climbs: g = -∇
    if h.weight_decay != 0 and h.decoupled_weight_decay:
        p.mul_(1 - h.lr * h.weight_decay)  # p ← p(1 - lr·λ): decay the weights (AdamW)
    elif h.weight_decay != 0:
        g = g.add(p, alpha=h.weight_decay)  # g ← g + λp: L2 folded into the gradient
    g, x = real(g), real(p)  # a complex p steps as its (..., 2) real view
    m, v = real(state["exp_avg"]), real(state["exp_avg_sq"])
    m.lerp_(g, 1 - h.beta1)  # m ← β₁m + (1 - β₁)g
    v.mul_(h.beta2).addcmul_(g, g, value=1 - h.beta2)  # v ← β₂v + (1 - β₂)g²
    if h.amsgrad:
        v_max = real(state["max_exp_avg_sq"])
        v = torch.maximum(v_max, v, out=v_max)  # v̂ ← max(v̂, v)
    step_size = h.lr / (1 - h.beta1**t)  # lr / (1 - β₁ᵗ): m's bias correction
    denom = (v.sqrt() / (1 - h.beta2**t) ** 0.5).add_(h.eps)  # √v / √(1 - β₂ᵗ) + eps
    x.addcdiv_(m, denom, value=-step_size)  # p ← p - step_size · m / denom


class Adam(Optimizer):
    """m ← β₁m + (1 - β₁)g,  v ← β₂v + (1 - β₂)g²  (amsgrad: v̂ = max of the v's so far);
    p ← p - lr/(1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + eps).  With decoupled_weight_decay the
    decay is p ← p(1 - lr·weight_decay) before the step (AdamW) instead of g + weight_decay·p.
    Math: docs/math.md#adagrad-rmsprop-adam-adamw.
    """

    positional = ("lr", "betas", "eps", "weight_decay", "amsgrad")
    setstate_defaults = {
        "amsgrad": False,
        "maximize": False,
        "foreach": None,
        "capturable": False,
        "differentiable": False,
        "decoupled_weight_decay": False,
        "fused": None,
    }  # torch's __setstate__

    def __init__(
        self,
        params: Params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": tuple(betas) if isinstance(betas, (list, tuple)) else betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        name, lr, betas = self._name, group["lr"], group["betas"]
        if isinstance(lr, Tensor) and group["foreach"] and not group["capturable"]:
            raise InputError(
                f"{name}: lr as a Tensor is not supported for capturable=False and foreach=True"
            )
        check_lr(name, lr)
        check_nonnegative(name, eps=group["eps"])
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise InputError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            if not 0.0 <= float(beta) < 1.0:
                raise InputError(f"{name}: Invalid beta parameter at index {i}: {beta}")
        check_nonnegative(name, weight_decay=group["weight_decay"])
        if not all(isinstance(b, float) for b in betas) and not all(
            isinstance(b, Tensor) for b in betas
        ):
            raise InputError(f"{name}: betas must be either both floats or both Tensors")
        refuse_switches(name, group)

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return {"lr": group["lr"], "beta1": beta1, "beta2": beta2}

    def _state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """p's state, made on its first step: the count and the moments m, v (and v̂)."""
        state = self.state[p]
        if not state:
            state["step"] = self._new_step(p)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
        return state

    def _step_group(self, group: dict[str, Any], scalars: dict[str, Any]) -> None:
        h = AdamHyperparameters(
            lr=scalars["lr"],
            beta1=scalars["beta1"],
            beta2=scalars["beta2"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            amsgrad=group["amsgrad"],
            maximize=group["maximize"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )
        params, grads = self._with_grad(group)
        states = [self._state(p, group) for p in params]
        if self._multi_tensor(group):
            for run, run_grads, run_states, t in self._runs(params, grads, states):
                multi_tensor.adam(run, run_grads, run_states, t, h)
        else:
            for p, g, state in zip(params, grads, states):
                adam_update(p, g, state, self._count(p, state), h)


class AdamW(Adam):
    """Adam with decoupled weight decay: p ← p(1 - lr·weight_decay) before the Adam step."""

    def __init__(
        self,
        params: Params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As Adam's; the groups keep decoupled_weight_decay=True, as torch's AdamW does."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
