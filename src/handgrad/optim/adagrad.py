"""Adagrad: the update of one parameter (the math), then the class (constructor, checks,
state, and which update runs).

The update is torch.optim's single-tensor rule, line for line, so the same weights and
gradients give torch's numbers exactly (a tensor lr too). With foreach=True, and always in
graph mode, the class runs optim/multi_tensor.py's ``adagrad`` instead: the same update over
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
class AdagradHyperparameters:
    """One group's numbers for one step; lr is a 0-d device tensor in graph mode."""

    lr: Scalar
    lr_decay: float
    weight_decay: float
    eps: float
    maximize: bool


def adagrad_update(
    p: Tensor, grad: Tensor, state: dict[str, Any], t: Scalar, h: AdagradHyperparameters
) -> None:
    """s ← s + g²;  p ← p - lr_t·g/(√s + eps), lr_t = lr/(1 + (t - 1)·lr_decay) at step t."""
    g = -grad if h.maximize else grad  # maximize climbs: g = -∇
    if h.weight_decay != 0:
        g = g.add(p, alpha=h.weight_decay)  # g ← g + λp
    lr_t = h.lr / (1 + (t - 1) * h.lr_decay)
    g, s, x = real(g), real(state["sum"]), real(p)  # a complex p steps as its real view
    s.addcmul_(g, g, value=1)  # s ← s + g²
    x.addcdiv_(g, s.sqrt().add_(h.eps), value=-lr_t)  # p ← p - lr_t·g/(√s + eps)


class Adagrad(Optimizer):
    """s ← s + g²;  p ← p - lr_t · g / (√s + eps),  lr_t = lr / (1 + (t - 1)·lr_decay).

    The sums start at the constructor's initial_accumulator_value for every group, as torch's
    do (a group's own value counts only for a group added later).
    Math: docs/math.md#adagrad-rmsprop-adam-adamw.
    """

    positional = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    setstate_defaults = {
        "foreach": None,
        "maximize": False,
        "differentiable": False,
        "fused": None,
    }  # torch's __setstate__

    def __init__(
        self,
        params: Params,
        lr: float | Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)
        for p in self.params:
            self._init_state(p, initial_accumulator_value)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        check_lr("Adagrad", group["lr"])
        check_nonnegative(
            "Adagrad",
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            initial_accumulator_value=group["initial_accumulator_value"],
            eps=group["eps"],
        )
        refuse_switches("Adagrad", group)

    def _init_state(self, p: Tensor, s0: float) -> None:
        init = complex(s0, s0) if torch.is_complex(p) else s0
        self.state[p] = {"step": self._new_step(p), "sum": torch.full_like(p, init)}

    def _state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        if not self.state[p]:  # a group added after construction
            self._init_state(p, group["initial_accumulator_value"])
        return self.state[p]

    def _step_group(self, group: dict[str, Any], scalars: dict[str, Any]) -> None:
        h = AdagradHyperparameters(
            lr=scalars["lr"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
        )
        params, grads = self._with_grad(group)
        states = [self._state(p, group) for p in params]
        if self._multi_tensor(group):
            for run, run_grads, run_states, t in self._runs(params, grads, states):
                multi_tensor.adagrad(run, run_grads, run_states, t, h)
        else:
            for p, g, state in zip(params, grads, states):
                adagrad_update(p, g, state, self._count(p, state), h)
