"""Dropout, Dropout1d and Dropout2d. The op pairs are in handgrad.ops.dropout; math in
docs/math.md#dropout."""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, InputError, ShapeError
from handgrad.module import Module


class Dropout(Module):
    """Inverted dropout: y = x · m / (1 - p), m ~ Bernoulli(1 - p) per element; identity in
    eval(). p = 1 drops everything; inplace=True writes y into x, as torch."""

    torch_name = "Dropout"

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        owner = type(self).__name__
        if not isinstance(p, (int, float)):
            raise ArgumentTypeError(f"{owner}: p must be a number, got {p!r}")
        if not 0.0 <= p <= 1.0:
            raise InputError(f"{owner}: dropout probability has to be between 0 and 1, but got {p}")
        if not isinstance(inplace, int) or inplace not in (0, 1):  # a bool (or 0/1)
            raise ArgumentTypeError(f"{owner}: inplace must be a bool, got {inplace!r}")
        self.p, self.inplace = float(p), bool(inplace)

    def config(self) -> dict[str, Any]:
        return {"p": self.p, "inplace": self.inplace}

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        y, mask = ops.dropout_forward(x, self.p, self.training, self.inplace)
        self.push_cache((mask, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        mask, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        return ops.dropout_backward(dy, mask)


class _FeatureDropout(Dropout):
    """Base of Dropout1d/2d: whole channels x[n, c] kept or zeroed together."""

    def _feature_forward(self, x: Tensor, batched: bool) -> Tensor:
        xb = x if batched else x.unsqueeze(0)  # an unbatched (C, *) input as one example
        if self.training and 0.0 < self.p < 1.0 and x.numel() and xb.dim() < 2:
            raise ShapeError(
                f"{self._short_name()}: Feature dropout requires at least 2 dimensions in the "
                f"input, got shape {tuple(x.shape)}"
            )
        yb, mask = ops.feature_dropout_forward(xb, self.p, self.training, self.inplace)
        if yb is xb or self.inplace:  # the identity, or y written into x (through the view xb)
            y = x
        else:
            y = yb if batched else yb.squeeze(0)
        if mask is not None and not batched:
            mask = mask.squeeze(0)
        self.push_cache((mask, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        mask, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        return ops.feature_dropout_backward(dy, mask)


class Dropout1d(_FeatureDropout):
    """Channel dropout for (N, C, L) or unbatched (C, L): each x[n, c] is kept (scaled by
    1/(1 - p)) or zeroed as a whole, with probability 1 - p; identity in eval()."""

    torch_name = "Dropout1d"

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        if x.dim() not in (2, 3):
            raise ShapeError(
                f"{self._short_name()}: expected input (N, C, L) or (C, L), got shape "
                f"{tuple(x.shape)}"
            )
        return self._feature_forward(x, batched=x.dim() == 3)


class Dropout2d(_FeatureDropout):
    """Channel dropout for (N, C, H, W): each x[n, c] is kept (scaled by 1/(1 - p)) or zeroed
    as a whole; identity in eval(). As torch: a 3-D input is read as (N, C, L) with its
    warning, and other ranks as (N, C, *) with its deprecation warning."""

    torch_name = "Dropout2d"

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        if x.dim() not in (3, 4):
            warnings.warn(
                f"dropout2d: Received a {x.dim()}-D input to dropout2d, which is deprecated "
                "and will result in an error in a future release. To retain the behavior "
                "and silence this warning, please use dropout instead. Note that dropout2d "
                "exists to provide channel-wise dropout on inputs with 2 spatial dimensions, "
                "a channel dimension, and an optional batch dimension (i.e. 3D or 4D inputs).",
                UserWarning,
                stacklevel=3,
            )
        if x.dim() == 3:
            warnings.warn(
                "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
                "1D dropout behavior is desired - input is interpreted as shape (N, C, L), "
                "where C is the channel dim. This behavior will change in a future release to "
                "interpret the input as one without a batch dimension, i.e. shape (C, H, W). "
                "To maintain the 1D channel-wise dropout behavior, please switch to using "
                "dropout1d instead.",
                UserWarning,
                stacklevel=3,
            )
        return self._feature_forward(x, batched=True)
