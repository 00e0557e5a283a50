"""Neuron: the lab's first building block, one weighted sum plus a bias."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from handgrad.module import Module, accumulate_grad


class Neuron(Module):
    """y = x · w + b.  w: (in,), b: (1,); x (in,) gives (1,), x (N, in) gives (N, 1).

    Init as the lab: w = randn(in) then b = randn(1). Backward math: docs/math.md#neuron.
    """

    def __init__(
        self,
        in_features: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not isinstance(in_features, int) or in_features <= 0:
            raise ValueError(f"Neuron: in_features must be a positive int, got {in_features!r}")
        self.in_features = in_features
        self.weight = torch.randn(in_features, device=device, dtype=dtype)
        self.bias = torch.randn(1, device=device, dtype=dtype)
        self.x: Tensor | None = None

    @classmethod
    def from_weights(cls, weights: Tensor, bias: Tensor | float) -> Neuron:
        """A neuron with the given weights (in,) and bias (a scalar or one element)."""
        weights = torch.as_tensor(weights)
        if weights.dim() != 1 or weights.numel() == 0 or not weights.is_floating_point():
            raise ValueError(
                "Neuron.from_weights: expected floating weights of shape (in_features,), "
                f"got {weights.dtype} of shape {tuple(weights.shape)}"
            )
        bias = torch.as_tensor(bias, dtype=weights.dtype, device=weights.device)
        if bias.numel() != 1:
            raise ValueError(
                "Neuron.from_weights: expected a bias with one element, "
                f"got shape {tuple(bias.shape)}"
            )
        neuron = cls.__new__(cls)
        neuron.in_features = weights.shape[0]
        neuron.weight, neuron.bias, neuron.x = weights, bias.reshape(1), None
        return neuron

    def _parameter_names(self) -> tuple[str, ...]:
        return ("weight", "bias")

    def config(self) -> dict[str, Any]:
        return {"in_features": self.in_features}

    def forward(self, x: Tensor) -> Tensor:
        self._check_features(x, self.in_features, self.weight)
        self.x = x
        z = x.reshape(-1, self.in_features) @ self.weight  # (N,)
        return z.reshape(*x.shape[:-1], 1) + self.bias  # (..., 1)

    def backward(self, dy: Tensor) -> Tensor:  # dy: (..., 1)
        x = self._saved(self.x)
        self.x = None  # released: one backward per forward
        self._check_grad_output(dy, torch.Size((*x.shape[:-1], 1)))
        dy_flat = dy.reshape(-1)  # (N,)
        accumulate_grad(self.weight, dy_flat @ x.reshape(-1, self.in_features))  # dL/dw = Σₙ dyₙ xₙ
        accumulate_grad(self.bias, dy_flat.sum(0, keepdim=True))  # dL/db = Σₙ dyₙ  (1,)
        return dy * self.weight  # dL/dx = dy w   (..., in)
