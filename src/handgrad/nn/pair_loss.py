"""Losses of two inputs and a target: MarginRankingLoss, CosineEmbeddingLoss. ``forward(x1, x2,
y)`` returns the loss, ``backward(grad=None)`` returns (dL/dx1, dL/dx2). Op pairs:
handgrad.ops.loss; math: docs/math.md#marginrankingloss-and-cosineembeddingloss.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from handgrad import ops
from handgrad.errors import ShapeError
from handgrad.nn.loss import Loss, check_device, check_tensor
from handgrad.validate import check_number


class _PairLoss(Loss):
    """A loss of two inputs and a target y: forward(x1, x2, y); backward returns (dx1, dx2)."""

    def __init__(
        self,
        margin: float = 0.0,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = check_number(type(self).__name__, "margin", margin)

    def config(self) -> dict[str, Any]:
        return {"margin": self.margin, "reduction": self.reduction}

    def forward(self, x1: Tensor, x2: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        for what, t in (("first input", x1), ("second input", x2), ("target", target)):
            check_tensor(self, what, t)
        if not (x1.is_floating_point() and x2.is_floating_point()):
            raise ShapeError(f"{self!r}: expected floating inputs, got {x1.dtype}, {x2.dtype}")
        if x1.shape != x2.shape:
            raise ShapeError(
                f"{self!r}: the two inputs must have the same shape, got {tuple(x1.shape)} and "
                f"{tuple(x2.shape)}"
            )
        check_device(self, x1, x2)
        check_device(self, x1, target)
        self._check_target(x1, target)
        y = target.to(x1.dtype)
        loss, cache = self.op_pair[0](
            x1, x2.to(x1.dtype), y, reduction=self._reduction, margin=float(self.margin)
        )
        self.push_cache((cache, loss.shape))
        return loss

    def _check_target(self, x: Tensor, target: Tensor) -> None:
        raise NotImplementedError


class MarginRankingLoss(_PairLoss):
    """ℓ = max(0, -y (x1 - x2) + margin), y = ±1;  dℓ/dx1 = -y, dℓ/dx2 = y where that is ≥ 0
    (torch passes the gradient at exactly 0).  x1, x2, y of one shape, (N,) or ()."""

    torch_name = "MarginRankingLoss"
    op_pair = (ops.margin_ranking_loss_forward, ops.margin_ranking_loss_backward)

    def _check_target(self, x: Tensor, target: Tensor) -> None:
        if target.shape != x.shape:
            raise ShapeError(
                f"{self!r}: inputs {tuple(x.shape)} need a target of the same shape, got "
                f"{tuple(target.shape)}"
            )


class CosineEmbeddingLoss(_PairLoss):
    """cos = x1·x2 / √((|x1|² + ε)(|x2|² + ε)), ε = 1e-12, over D of (N, D) or (D,).
    ℓ = 1 - cos where y = 1, max(0, cos - margin) where y = -1 (0 for other y);
    dℓ/dx1 = ∓(x2/√(AB) - cos x1/A), A = |x1|² + ε; likewise for x2."""

    torch_name = "CosineEmbeddingLoss"
    op_pair = (ops.cosine_embedding_loss_forward, ops.cosine_embedding_loss_backward)

    def _check_target(self, x: Tensor, target: Tensor) -> None:
        if x.dim() not in (1, 2) or target.shape != x.shape[:-1]:
            raise ShapeError(
                f"{self!r}: expected inputs (N, D) with a target (N,), or (D,) with a 0-d "
                f"target, got inputs {tuple(x.shape)} and target {tuple(target.shape)}"
            )
