"""RMSprop: the update of one parameter (the math), then the class (constructor, checks,
state, and which update runs).

The update is torch.optim's single-tensor rule, line for line, so the same weights and
gradients give torch's numbers exactly (a tensor lr too). With foreach=True, and always in
graph mode, the class runs optim/multi_tensor.py's ``rmsprop`` instead: the same update over
lists, held equal to this one by tests/test_optim.py and tests/test_foreach.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from handgrad.optim import multi_tensor
from handgrad.optim.checks import check_lr, check_nonnegative, refuse_switches
from handgrad.optim.optimizer import Optimizer, Params, Scalar, real


@dataclass
class RMSpropHyperparameters:
    """One group's numbers for one step; lr and momentum are 0-d device tensors in graph mode."""

    lr: Scalar
    alpha: float
    eps: float
    weight_decay: float
    momentum: Scalar
    centered: bool
    maximize: bool


def rmsprop_update(
    p: Tensor, grad: Tensor, state: dict[str, Any], h: RMSpropHyperparameters
) -> None:
    """v ← αv + (1 - α)g²;  p ← p - lr·g/(√v + eps) (centered: √(v - ḡ²); with momentum:
    b ← μb + g/(√v + eps), p ← p - lr·b)."""
    g = -grad if h.maximize else grad  # maximize climbs: g = -∇
    if h.weight_decay != 0:
        g = g.add(p, alpha=h.weight_decay)  # g ← g + λp
    g, x = real(g), real(p)  # a complex p steps as its real view
    v = real(state["square_avg"]).mul_(h.alpha).addcmul_(g, g, value=1 - h.alpha)  # αv + (1-α)g²
    if h.centered:
        g_avg = real(state["grad_avg"]).lerp_(g, 1 - h.alpha)  # ḡ ← αḡ + (1 - α)g
        avg = v.addcmul(g_avg, g_avg, value=-1).sqrt_()  # √(v - ḡ²)
    else:
        avg = v.sqrt()  # √v
    avg = avg.add_(h.eps)
    if h.momentum > 0:
        b = real(state["momentum_buffer"]).mul_(h.momentum).addcdiv_(g, avg)  # μb + g/(√v + eps)
        x.add_(b, alpha=-h.lr)  # p ← p - lr·b
    else:
        x.addcdiv_(g, avg, value=-h.lr)  # p ← p - lr·g/(√v + eps)


class RMSprop(Optimizer):
    """v ← αv + (1 - α)g²;  p ← p - lr · g / (√v + eps)  (centered: √(v - ḡ²) with
    ḡ ← αḡ + (1 - α)g; with momentum b ← μb + g/(√v + eps), p ← p - lr·b).
    Math: docs/math.md#adagrad-rmsprop-adam-adamw.
    """

    positional = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    setstate_defaults = {
        "momentum": 0,
        "centered": False,
        "foreach": None,
        "maximize": False,
        "differentiable": False,
        "capturable": False,
    }  # torch's __setstate__

    def __init__(
        self,
        params: Params,
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        check_lr("RMSprop", group["lr"])
        check_nonnegative(
            "RMSprop",
            eps=group["eps"],
            momentum=group["momentum"],
            weight_decay=group["weight_decay"],
            alpha=group["alpha"],
        )
        refuse_switches("RMSprop", group)

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        return {"lr": group["lr"], "momentum": group["momentum"]}

    def _state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """p's state, made on its first step: v (and the momentum buffer, ḡ) and the count."""
        state = self.state[p]
        if "square_avg" not in state:
            state["square_avg"] = torch.zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = torch.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
        if "step" not in state:  # also a state saved before handgrad counted the steps
            state["step"] = self._new_step(p)
        return state

    def _step_group(self, group: dict[str, Any], scalars: dict[str, Any]) -> None:
        h = RMSpropHyperparameters(
            lr=scalars["lr"],
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=scalars["momentum"],
            centered=group["centered"],
            maximize=group["maximize"],
        )
        params, grads = self._with_grad(group)
        states = [self._state(p, group) for p in params]
        if self._multi_tensor(group):
            self._runs(params, grads, states)  # the counts (RMSprop's math does not read them)
            with_momentum = self._momentum_on(group, states)
            multi_tensor.rmsprop(params, grads, states, h, with_momentum=with_momentum)
        else:
            for p, g, state in zip(params, grads, states):
                self._count(p, state)
                rmsprop_update(p, g, state, h)
