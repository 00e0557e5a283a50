"""Optimizers, in order of increasing complexity. Each step reads p.grad and updates p in place.

Constructors, defaults, parameter groups and update rules are torch.optim's (its single-tensor
path, line for line), so the same weights and gradients give the same trajectory. Per group:
g = ∇ (or -∇ with maximize=True), plus weight_decay·p where the algorithm folds decay into g.
The base class (optimizer.py) keeps the groups, the state and the state_dict.

torch's implementation switches are accepted at their defaults: foreach (True too: the same
update, computed tensor by tensor; in graph mode every optimizer here takes foreach.py's
multi-tensor update whatever the switch says) and fused=None/False. fused=True, capturable=True and
differentiable=True are refused (NotSupportedError): handgrad runs one reference update and has
no autograd to differentiate it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from handgrad.errors import InputError, NotSupportedError
from handgrad.optim import foreach
from handgrad.optim.optimizer import (
    Optimizer,
    addcdiv,
    axpy,
    check_lr,
    check_nonnegative,
    value,
)

Params = Iterable[Any]  # tensors, (name, tensor) pairs, or dicts {'params': [...], 'lr': ...}


def _refuse_switches(owner: str, group: dict[str, Any]) -> None:
    """torch's implementation switches that change how it computes, not what."""
    if group.get("fused"):
        raise NotSupportedError(owner, "fused=True", "torch's fused kernels")
    if group.get("capturable"):
        raise NotSupportedError(owner, "capturable=True", "CUDA-graph capture of the step")
    if group.get("differentiable"):
        raise NotSupportedError(owner, "differentiable=True", "handgrad has no autograd")


def _real(t: Tensor) -> Tensor:
    """A complex tensor as its (..., 2) real view, as torch.optim steps complex parameters."""
    return torch.view_as_real(t) if torch.is_complex(t) else t


def _gradient(p: Tensor, group: dict[str, Any]) -> Tensor:
    """g = ∇ (maximize: -∇), with coupled weight decay g + weight_decay·p."""
    assert p.grad is not None
    g = -p.grad if group["maximize"] else p.grad
    if group["weight_decay"] != 0:
        g = g.add(p, alpha=value(group["weight_decay"]))
    return g


class SGD(Optimizer):
    """p ← p - lr·v with v = g (plain), or b ← momentum·b + (1 - dampening)·g (b₁ = g) and
    v = b (heavy ball) or v = g + momentum·b (Nesterov).  Math: docs/math.md#sgd.
    """

    positional = ("lr", "momentum", "dampening", "weight_decay", "nesterov")

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
        _refuse_switches("SGD", group)

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        return {"lr": group["lr"], "momentum": group["momentum"]}

    def _step_group(self, group: dict[str, Any], h: dict[str, Tensor] | None) -> None:
        if h is not None and foreach.applies(group):
            foreach.sgd(self, group, h)  # graph mode: the same update, listwise
            return
        dampening = group["dampening"]
        lr = value(group["lr"]) if h is None else h["lr"]
        momentum = group["momentum"] if h is None else h["momentum"]
        for p in group["params"]:
            if p.grad is None:
                continue
            g = _gradient(p, group)
            if group["momentum"] != 0:
                state = self.state[p]
                b = state.get("momentum_buffer")
                if b is None:
                    b = state["momentum_buffer"] = g.clone()
                else:
                    b.mul_(momentum).add_(g, alpha=1 - dampening)
                g = axpy(g.clone(), momentum, b) if group["nesterov"] else b  # g + μb
            axpy(p, -lr, g)  # p ← p - lr·v


class Adagrad(Optimizer):
    """s ← s + g²;  p ← p - lr_t · g / (√s + eps),  lr_t = lr / (1 + (t - 1)·lr_decay).

    The sums start at the constructor's initial_accumulator_value for every group, as torch's
    do (a group's own value counts only for a group added later).
    Math: docs/math.md#adagrad-rmsprop-adam-adamw.
    """

    positional = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

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
        _refuse_switches("Adagrad", group)

    def _init_state(self, p: Tensor, s0: float) -> None:
        init = complex(s0, s0) if torch.is_complex(p) else s0
        self.state[p] = {"step": self._new_step(p), "sum": torch.full_like(p, init)}

    def _step_group(self, group: dict[str, Any], h: dict[str, Tensor] | None) -> None:
        if h is not None and foreach.applies(group):
            foreach.adagrad(self, group, h)  # graph mode: the same update, listwise
            return
        eps, lr_decay = group["eps"], group["lr_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:  # a group added after construction
                self._init_state(p, group["initial_accumulator_value"])
                state = self.state[p]
            n = self._count(p, state)
            g, s, x = _real(_gradient(p, group)), _real(state["sum"]), _real(p)
            if h is None:
                lr_t: float | Tensor = value(group["lr"]) / (1 + (n - 1) * lr_decay)
            else:  # the same on the device, from the step tensor
                t = state["step"].to(h["lr"].dtype)  # float64, as the host's numbers
                lr_t = h["lr"] / (1 + (t - 1) * lr_decay)
            s.addcmul_(g, g, value=1)  # s ← s + g²
            addcdiv(x, -lr_t, g, s.sqrt().add_(eps))  # p ← p - lr_t·g/(√s + eps)


class RMSprop(Optimizer):
    """v ← αv + (1 - α)g²;  p ← p - lr · g / (√v + eps)  (centered: √(v - ḡ²) with
    ḡ ← αḡ + (1 - α)g; with momentum b ← μb + g/(√v + eps), p ← p - lr·b).
    Math: docs/math.md#adagrad-rmsprop-adam-adamw.
    """

    positional = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")

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
        _refuse_switches("RMSprop", group)

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

    def _step_group(self, group: dict[str, Any], h: dict[str, Tensor] | None) -> None:
        if h is not None and foreach.applies(group):
            foreach.rmsprop(self, group, h)  # graph mode: the same update, listwise
            return
        alpha, eps = group["alpha"], group["eps"]
        lr = value(group["lr"]) if h is None else h["lr"]
        momentum = group["momentum"] if h is None else h["momentum"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self._state(p, group)
            self._count(p, state)
            g, x = _real(_gradient(p, group)), _real(p)
            v = _real(state["square_avg"]).mul_(alpha).addcmul_(g, g, value=1 - alpha)
            if group["centered"]:
                g_avg = _real(state["grad_avg"]).lerp_(g, 1 - alpha)  # ḡ ← αḡ + (1 - α)g
                avg = v.addcmul(g_avg, g_avg, value=-1).sqrt_()  # √(v - ḡ²)
            else:
                avg = v.sqrt()
            avg = avg.add_(eps)
            if group["momentum"] > 0:
                b = _real(state["momentum_buffer"]).mul_(momentum).addcdiv_(g, avg)
                axpy(x, -lr, b)
            else:
                addcdiv(x, -lr, g, avg)


class Adam(Optimizer):
    """m ← β₁m + (1 - β₁)g,  v ← β₂v + (1 - β₂)g²  (amsgrad: v̂ = max of the v's so far);
    p ← p - lr/(1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + eps).  With decoupled_weight_decay the
    decay is p ← p(1 - lr·weight_decay) before the step (AdamW) instead of g + weight_decay·p.
    Math: docs/math.md#adagrad-rmsprop-adam-adamw.
    """

    positional = ("lr", "betas", "eps", "weight_decay", "amsgrad")

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
        _refuse_switches(name, group)

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

    def _step_group(self, group: dict[str, Any], h: dict[str, Tensor] | None) -> None:
        if h is not None and foreach.applies(group):
            foreach.adam(self, group, h)  # graph mode: the same update, listwise
            return
        eps, wd = group["eps"], value(group["weight_decay"])
        lr: float | Tensor
        beta1: float | Tensor
        beta2: float | Tensor
        if h is None:
            lr = value(group["lr"])
            beta1, beta2 = (value(b) for b in group["betas"])
        else:
            lr, beta1, beta2 = h["lr"], h["beta1"], h["beta2"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self._state(p, group)
            n = self._count(p, state)
            g = -p.grad if group["maximize"] else p.grad
            if wd != 0 and group["decoupled_weight_decay"]:
                p.mul_(1 - lr * wd)  # p ← p(1 - lr·λ): decay the weights directly
            elif wd != 0:
                g = g.add(p, alpha=wd)  # g + λp: L2 folded into the gradient
            g, x = _real(g), _real(p)
            m, v = _real(state["exp_avg"]), _real(state["exp_avg_sq"])
            if h is None:
                m.lerp_(g, 1 - value(beta1))  # m ← β₁m + (1 - β₁)g
                v.mul_(beta2).addcmul_(g, g, value=1 - value(beta2))  # v ← β₂v + (1 - β₂)g²
            else:  # the same with device scalars (lerp's weight in m's dtype)
                m.lerp_(g, (1 - h["beta1"]).to(m.dtype))
                v.mul_(h["beta2"]).addcmul_(g * (1 - h["beta2"]), g)
            if group["amsgrad"]:
                v_max = _real(state["max_exp_avg_sq"])
                v = torch.maximum(v_max, v, out=v_max)  # v̂ ← max(v̂, v)
            t: int | Tensor = n if h is None else state["step"]  # the device's count in graphs
            step_size = lr / (1 - beta1**t)
            denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(eps)  # √v / √(1 - β₂ᵗ) + eps
            addcdiv(x, -step_size, m, denom)


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


OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {  # the classes, by command-line name
    "sgd": SGD,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
}
