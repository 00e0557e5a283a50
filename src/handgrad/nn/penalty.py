"""Weight penalties added to a loss: penalty() is the value R, backward() adds dR/dw to each
weight's .grad. Math: docs/math.md#penalties."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from handgrad.errors import ArgumentTypeError, InputError
from handgrad.module import accumulate_grad


class _Penalty:
    """Base for weight penalties: penalty() is the value, backward() adds its gradient to .grad."""

    def __init__(self, lambda_: float, params: Iterable[Tensor]) -> None:
        if lambda_ < 0:
            raise InputError(f"{type(self).__name__}: lambda_ must be >= 0, got {lambda_}")
        self.lambda_ = float(lambda_)
        self.params = list(params)
        if not all(isinstance(p, Tensor) for p in self.params):
            raise ArgumentTypeError(f"{type(self).__name__}: params must be tensors")

    def __call__(self) -> Tensor:
        return self.penalty()

    def penalty(self) -> Tensor:
        raise NotImplementedError


class L2(_Penalty):
    """R = λ Σ w²;  dR/dw = 2λw.

    Math: docs/math.md#penalties.
    """

    def penalty(self) -> Tensor:
        return self.lambda_ * sum((p * p).sum() for p in self.params)  # type: ignore[return-value]

    def backward(self) -> None:
        for p in self.params:
            accumulate_grad(p, 2 * self.lambda_ * p)


class L1Penalty(_Penalty):
    """R = λ Σ |w|;  dR/dw = λ sign(w).

    Math: docs/math.md#penalties.
    """

    def penalty(self) -> Tensor:
        return self.lambda_ * sum(p.abs().sum() for p in self.params)  # type: ignore[return-value]

    def backward(self) -> None:
        for p in self.params:
            accumulate_grad(p, self.lambda_ * torch.sign(p))
