"""Embedding: a table of learned vectors, looked up by integer ids (torch.nn.Embedding).
The op pair is in handgrad.ops.embedding; math in docs/math.md#embedding."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, InputError, NotSupportedError, ShapeError
from handgrad.mode import _mode
from handgrad.module import Module
from handgrad.validate import positive_int


class Embedding(Module):
    """y = W[idx].  W: (num_embeddings, embedding_dim), init N(0, 1) as torch, the padding
    row zeroed.  idx: any shape of int64/int32 ids -> y (*idx.shape, embedding_dim).

    Backward is a scatter-add: row v of dL/dW sums dy over every position holding v
    (docs/math.md#embedding); the `padding_idx` row gets no gradient; `scale_grad_by_freq`
    divides each use by its id's count in the batch; `max_norm` renormalizes the looked-up
    rows in place before the lookup, as torch does. `_weight` is used as the table itself,
    `_freeze=True` leaves it untrained. sparse=True (sparse gradients) is refused.
    """

    parameter_names = ("weight",)
    torch_name = "Embedding"

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Tensor | None = None,
        _freeze: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.num_embeddings = positive_int("Embedding", "num_embeddings", num_embeddings)
        self.embedding_dim = positive_int("Embedding", "embedding_dim", embedding_dim)
        if padding_idx is not None:
            if not isinstance(padding_idx, int) or isinstance(padding_idx, bool):
                raise ArgumentTypeError(
                    f"Embedding: padding_idx must be an int, got {padding_idx!r}"
                )
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise InputError(
                    f"Embedding: padding_idx must be within num_embeddings ({num_embeddings}), "
                    f"got {padding_idx}"
                )
            padding_idx %= num_embeddings  # a negative index counts from the end, as torch
        if max_norm is not None and not max_norm >= 0:
            raise InputError(f"Embedding: max_norm must be >= 0, got {max_norm!r}")
        if sparse:
            raise NotSupportedError("Embedding", "sparse=True", "handgrad's gradients are dense")
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, float(norm_type)
        self.scale_grad_by_freq, self.sparse = bool(scale_grad_by_freq), False
        if _weight is None:
            self.weight = torch.empty(num_embeddings, embedding_dim, device=device, dtype=dtype)
            self.weight.normal_()  # N(0, 1): torch's draw after the same seed
            if padding_idx is not None:
                self.weight[padding_idx] = 0.0
        else:
            if not isinstance(_weight, Tensor) or tuple(_weight.shape) != (
                num_embeddings,
                embedding_dim,
            ):
                raise ShapeError(
                    "Embedding: Shape of weight does not match num_embeddings and embedding_dim: "
                    f"expected ({num_embeddings}, {embedding_dim}), got "
                    f"{tuple(getattr(_weight, 'shape', ())) or type(_weight).__name__}"
                )
            self.weight = _weight  # the given tensor itself, as torch's Parameter(_weight)
        self.frozen = bool(_freeze)

    @classmethod
    def from_pretrained(
        cls,
        embeddings: Tensor,
        freeze: bool = True,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
    ) -> Embedding:
        """An Embedding whose table is `embeddings` (V, D) itself, frozen unless freeze=False."""
        if not isinstance(embeddings, Tensor) or embeddings.dim() != 2:
            raise ShapeError(
                "Embedding.from_pretrained: Embeddings parameter is expected to be 2-dimensional, "
                f"got shape {tuple(getattr(embeddings, 'shape', ()))}"
            )
        rows, cols = embeddings.shape
        return cls(
            rows,
            cols,
            padding_idx,
            max_norm,
            norm_type,
            scale_grad_by_freq,
            sparse,
            _weight=embeddings,
            _freeze=freeze,
        )

    def config(self) -> dict[str, Any]:
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "padding_idx": self.padding_idx,
            "max_norm": self.max_norm,
            "norm_type": self.norm_type,
            "scale_grad_by_freq": self.scale_grad_by_freq,
            "sparse": self.sparse,
            "_freeze": self.frozen,
        }

    def extra_repr(self) -> str:
        keep = ("num_embeddings", "embedding_dim", "padding_idx", "max_norm")
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k in keep)

    def forward(self, idx: Tensor) -> Tensor:
        if not isinstance(idx, Tensor):
            raise ArgumentTypeError(
                f"{self._short_name()}: expected a tensor of int64 or int32 ids, "
                f"got {type(idx).__name__}"
            )
        if idx.dtype not in (torch.int64, torch.int32):
            raise ShapeError(
                f"{self._short_name()}: expected int64 or int32 ids (Long, Int), got {idx.dtype}"
            )
        in_range = not _mode.host_reads or not idx.numel()  # capture_safe(): no host read
        if not in_range and (int(idx.min()) < 0 or int(idx.max()) >= self.num_embeddings):
            raise InputError(
                f"{self._short_name()}: index out of range: ids must be in "
                f"[0, {self.num_embeddings}), got min {int(idx.min())}, max {int(idx.max())}"
            )
        y, cache = ops.embedding_forward(
            idx.to(self.weight.device),
            self.weight,
            self.padding_idx,
            self.max_norm,
            self.norm_type,
            self.scale_grad_by_freq,
        )
        self.push_cache((cache, y.shape))
        return y

    def backward(self, dy: Tensor) -> None:
        """Adds dL/dW; returns None: integer ids have no gradient."""
        cache, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        _, dW = ops.embedding_backward(dy, cache)
        self.add_grad(self.weight, dW)
        return None
