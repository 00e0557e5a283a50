"""SGD: the update of one parameter (the math), then the class (constructor, checks,
state, and which update runs).

The update is torch.optim's single-tensor rule, line for line, so the same weights and
gradients give torch's numbers exactly (a tensor lr too). With foreach=True, and always in
graph mode, the class runs optim/multi_tensor.py's ``sgd`` instead: the same update over
lists, held equal to this one by tests/test_optim.py and tests/test_foreach.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from handgrad.errors import InputError
from handgrad.optim import multi_tensor
from handgrad.optim.checks import check_lr, check_nonnegative, refuse_switches
from handgrad.optim.optimizer import Optimizer, Params, Scalar


@dataclass
class SGDHyperparameters:
    """One group's numbers for one step; lr and momentum are 0-d device tensors in graph mode."""

    lr: Scalar
    momentum: Scalar
    dampening: float
    weight_decay: Scalar
    nesterov: bool
    maximize: bool


def sgd_update(p: Tensor, grad: Tensor, state: dict[str, Any], h: SGDHyperparameters) -> None:
    """p ← p - lr·v, v = g (plain), b (heavy ball) or g + μb (Nesterov); p updated in place."""
    g = -grad if h.maximize else grad  # maximize climbs: g = -∇
    if h.weight_decay != 0:
        g = g.add(p, alpha=h.weight_decay)  # g ← g + λp
    if h.momentum != 0:
        b = state.get("momentum_buffer")
        if b is None:
            b = state["momentum_buffer"] = g.clone()  # b₁ = g
        else:
            b.mul_(h.momentum).add_(g, alpha=1 - h.dampening)  # b ← μb + (1 - τ)g
        g = g.add(b, alpha=h.momentum) if h.nesterov else b  # v = g + μb, or v = b
    p.add_(g, alpha=-h.lr)  # p ← p - lr·v


class SGD(Optimizer):
    """p ← p - lr·v with v = g (plain), or b ← momentum·b + (1 - dampening)·g (b₁ = g) and
    v = b (heavy ball) or v = g + momentum·b (Nesterov).  Math: docs/math.md#sgd.
    """

    positional = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    setstate_defaults = {
        "nesterov": False,
        "maximize": False,
        "foreach": None,
        "differentiable": False,
        "fused": False,
    }  # torch's __setstate__

    def __init__(
        self,
        params: Params,
        lr: float | Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        check_lr("SGD", group["lr"])
        check_nonnegative("SGD", momentum=group["momentum"], weight_decay=group["weight_decay"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise InputError("SGD: Nesterov momentum requires a momentum and zero dampening")
        refuse_switches("SGD", group)

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        return {"lr": group["lr"], "momentum": group["momentum"]}

    def _step_group(self, group: dict[str, Any], scalars: dict[str, Any]) -> None:
        h = SGDHyperparameters(
            lr=scalars["lr"],
            momentum=scalars["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
        )
        if self._multi_tensor(group):
            params, grads = self._with_grad(group)
            first = [self.state[p] for p in params[:1] if p in self.state]
            with_momentum = self._momentum_on(group, first)  # plain SGD keeps no state
            states = [self.state[p] if with_momentum else {} for p in params]
            multi_tensor.sgd(params, grads, states, h, with_momentum=with_momentum)
            return
        with_momentum = group["momentum"] != 0  # plain SGD keeps no state, as torch's
        for p in group["params"]:
            if p.grad is not None:  # a parameter without a gradient is skipped, as torch's
                sgd_update(p, p.grad, self.state[p] if with_momentum else {}, h)
