"""Optimizers, in order of increasing complexity. Each step reads p.grad and updates p in place.

Update rules follow torch.optim's documented algorithms, so the same weights and gradients
give the same trajectory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

from handgrad.module import zero_grads


class Optimizer:
    """Holds the parameter list and the learning rate; subclasses write ``step``."""

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not all(isinstance(p, Tensor) for p in self.params):
            raise TypeError(f"{type(self).__name__}: params must be tensors (model.parameters())")
        if not isinstance(lr, (int, float)) or lr < 0:
            raise ValueError(f"{type(self).__name__}: invalid learning rate {lr!r} (must be >= 0)")
        self.lr = float(lr)
        self.state: list[dict[str, Tensor]] = [{} for _ in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's .grad (to None by default, as torch.optim does)."""
        zero_grads(self.params, set_to_none)

    def step(self) -> None:
        raise NotImplementedError

    def _with_grads(self) -> Iterator[tuple[Tensor, Tensor, dict[str, Tensor]]]:
        """(parameter, its gradient, its state) for every parameter that has a gradient;
        step skips the others, as torch.optim does."""
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                yield p, p.grad, state

    def _hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-parameter state (cloned), in parameter order."""
        return {
            "hyperparameters": self._hyperparameters(),
            "state": [{k: v.clone() for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by state_dict() (a resumed run continues
        on the same trajectory)."""
        state = state_dict.get("state")
        if not isinstance(state, list) or len(state) != len(self.params):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: expected state for {len(self.params)} "
                f"parameters, got {len(state) if isinstance(state, list) else type(state).__name__}"
            )
        for k, v in state_dict.get("hyperparameters", {}).items():
            setattr(self, k, tuple(v) if isinstance(v, list) else v)
        self.state = [
            {k: v.to(device=p.device, dtype=p.dtype).clone() for k, v in s.items()}
            for s, p in zip(state, self.params)
        ]

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self._hyperparameters().items())
        return f"{type(self).__name__}({hp})"


def _with_weight_decay(p: Tensor, g: Tensor, weight_decay: float) -> Tensor:
    """g + weight_decay·p: L2 regularisation folded into the gradient (coupled decay)."""
    return g.add(p, alpha=weight_decay) if weight_decay else g


def _check_nonnegative(owner: str, **values: float) -> None:
    for name, v in values.items():
        if v < 0:
            raise ValueError(f"{owner}: invalid {name} {v!r} (must be >= 0)")


class SGD(Optimizer):
    """p ← p - lr·v, with g = ∇ + weight_decay·p and v = g (plain), or
    v = b ← momentum·b + (1 - dampening)·g (heavy ball), or g + momentum·b (Nesterov).
    Math: docs/math.md#sgd.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        _check_nonnegative("SGD", momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), nesterov

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "dampening": self.dampening,
            "weight_decay": self.weight_decay,
            "nesterov": self.nesterov,
        }

    def step(self) -> None:
        for p, grad, state in self._with_grads():
            g = _with_weight_decay(p, grad, self.weight_decay)
            if self.momentum:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.clone()
                else:
                    buf.mul_(self.momentum).add_(g, alpha=1 - self.dampening)
                g = g.add(buf, alpha=self.momentum) if self.nesterov else buf
            p.add_(g, alpha=-self.lr)


class Adagrad(Optimizer):
    """s ← s + g²;  p ← p - lr_t · g / (√s + eps),  lr_t = lr / (1 + (t - 1)·lr_decay).

    Math: docs/math.md#adagrad-rmsprop-adam-adamw.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 0.01,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(params, lr)
        _check_nonnegative(
            "Adagrad",
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            eps=eps,
            initial_accumulator_value=initial_accumulator_value,
        )
        self.lr_decay, self.weight_decay = float(lr_decay), float(weight_decay)
        self.initial_accumulator_value, self.eps = float(initial_accumulator_value), float(eps)

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "lr_decay": self.lr_decay,
            "weight_decay": self.weight_decay,
            "initial_accumulator_value": self.initial_accumulator_value,
            "eps": self.eps,
        }

    def step(self) -> None:
        for p, grad, state in self._with_grads():
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float64)
                state["sum"] = torch.full_like(p, self.initial_accumulator_value)
            state["step"] += 1
            g = _with_weight_decay(p, grad, self.weight_decay)
            clr = self.lr / (1 + (float(state["step"]) - 1) * self.lr_decay)
            state["sum"].addcmul_(g, g, value=1)
            p.addcdiv_(g, state["sum"].sqrt().add_(self.eps), value=-clr)


class RMSprop(Optimizer):
    """v ← αv + (1 - α)g²;  p ← p - lr · g / (√v + eps)  (centered: √(v - ḡ²); with momentum
    b ← μb + g/(…), p ← p - lr·b).  Math: docs/math.md#adagrad-rmsprop-adam-adamw.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(params, lr)
        _check_nonnegative(
            "RMSprop", alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum
        )
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.momentum, self.centered = float(momentum), centered

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "alpha": self.alpha,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "centered": self.centered,
        }

    def step(self) -> None:
        for p, grad, state in self._with_grads():
            if not state:
                state["square_avg"] = torch.zeros_like(p)
                if self.momentum:
                    state["momentum_buffer"] = torch.zeros_like(p)
                if self.centered:
                    state["grad_avg"] = torch.zeros_like(p)
            g = _with_weight_decay(p, grad, self.weight_decay)
            v = state["square_avg"].mul_(self.alpha).addcmul_(g, g, value=1 - self.alpha)
            if self.centered:
                g_avg = state["grad_avg"].lerp_(g, 1 - self.alpha)
                avg = v.addcmul(g_avg, g_avg, value=-1).sqrt_().add_(self.eps)
            else:
                avg = v.sqrt().add_(self.eps)
            if self.momentum:
                buf = state["momentum_buffer"].mul_(self.momentum).addcdiv_(g, avg)
                p.add_(buf, alpha=-self.lr)
            else:
                p.addcdiv_(g, avg, value=-self.lr)


class Adam(Optimizer):
    """m ← β₁m + (1 - β₁)g,  v ← β₂v + (1 - β₂)g²;
    p ← p - lr/(1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + eps).
    Math: docs/math.md#adagrad-rmsprop-adam-adamw.
    """

    decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr)
        name = type(self).__name__
        if not all(0.0 <= b < 1.0 for b in betas) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas!r}")
        _check_nonnegative(name, eps=eps, weight_decay=weight_decay)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps, self.weight_decay, self.amsgrad = float(eps), float(weight_decay), amsgrad

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "betas": self.betas,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "amsgrad": self.amsgrad,
        }

    def step(self) -> None:
        beta1, beta2 = self.betas
        for p, grad, state in self._with_grads():
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float64)
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
                if self.amsgrad:
                    state["max_exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            t = float(state["step"])
            g = grad
            if self.decoupled_weight_decay:
                p.mul_(1 - self.lr * self.weight_decay)  # AdamW: decay the weights directly
            else:
                g = _with_weight_decay(p, g, self.weight_decay)
            m = state["exp_avg"].lerp_(g, 1 - beta1)
            v = state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
            if self.amsgrad:
                v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            step_size = self.lr / (1 - beta1**t)
            denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(self.eps)
            p.addcdiv_(m, denom, value=-step_size)


class AdamW(Adam):
    """Adam with decoupled weight decay: p ← p(1 - lr·weight_decay) before the Adam step."""

    decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
}
