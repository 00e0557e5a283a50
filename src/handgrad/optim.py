"""Optimizers, in order of increasing complexity. Each step reads p.grad and updates p in place.

Update rules follow torch.optim's documented algorithms, so the same weights and gradients
give the same trajectory.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor


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
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def step(self) -> None:
        raise NotImplementedError

    def _hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr}

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-parameter state (cloned), in parameter order."""
        return {
            "hyperparameters": self._hyperparameters(),
            "state": [{k: v.clone() for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = state_dict.get("state")
        if not isinstance(state, list) or len(state) != len(self.params):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: expected state for {len(self.params)} "
                f"parameters, got {len(state) if isinstance(state, list) else type(state).__name__}"
            )
        for k, v in state_dict.get("hyperparameters", {}).items():
            setattr(self, k, v)
        self.state = [
            {k: v.to(device=p.device, dtype=p.dtype).clone() for k, v in s.items()}
            for s, p in zip(state, self.params)
        ]

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self._hyperparameters().items())
        return f"{type(self).__name__}({hp})"


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
        if momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"SGD: momentum and weight_decay must be >= 0, got {momentum}, {weight_decay}"
            )
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
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay:
                g = g.add(p, alpha=self.weight_decay)
            if self.momentum:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.clone()
                else:
                    buf.mul_(self.momentum).add_(g, alpha=1 - self.dampening)
                g = g.add(buf, alpha=self.momentum) if self.nesterov else buf
            p.add_(g, alpha=-self.lr)
