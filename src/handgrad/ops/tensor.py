"""Ops on whole tensors, several inputs or outputs: what attention and sequence models are
written with. Broadcasting ops sum each gradient back to its input's shape (``sum_to``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "sum_to",
    "add_forward",
    "add_backward",
    "mul_forward",
    "mul_backward",
    "matmul_forward",
    "matmul_backward",
    "concat_forward",
    "concat_backward",
    "split_forward",
    "split_backward",
    "masked_fill_forward",
    "masked_fill_backward",
    "reshape_forward",
    "reshape_backward",
    "transpose_forward",
    "transpose_backward",
    "flatten_forward",
    "flatten_backward",
    "unflatten_forward",
    "unflatten_backward",
]


def sum_to(g: Tensor, shape: torch.Size) -> Tensor:
    """g summed over the dims that broadcasting added or stretched, down to `shape`: the
    adjoint of broadcasting (an input used at many places gets the sum of their gradients)."""
    lead = g.dim() - len(shape)
    stretched = [lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1]
    dims = [*range(lead), *stretched]
    if not dims:  # (sum over no dims would sum over all of them)
        return g
    return g.sum(dims, keepdim=True).reshape(shape)


def add_forward(a: Tensor, b: Tensor) -> tuple[Tensor, tuple]:
    """y = a + b (broadcasting)."""
    return a + b, (a.shape, b.shape)


def add_backward(dy: Tensor, cache: tuple) -> tuple[Tensor, Tensor]:
    a_shape, b_shape = cache
    return sum_to(dy, a_shape), sum_to(dy, b_shape)  # ∂y/∂a = ∂y/∂b = 1


def mul_forward(a: Tensor, b: Tensor) -> tuple[Tensor, tuple]:
    """y = a ⊙ b (broadcasting)."""
    return a * b, (a, b)


def mul_backward(dy: Tensor, cache: tuple) -> tuple[Tensor, Tensor]:
    a, b = cache
    return sum_to(dy * b, a.shape), sum_to(dy * a, b.shape)  # dL/da = dy ⊙ b, dL/db = dy ⊙ a


def matmul_forward(a: Tensor, b: Tensor) -> tuple[Tensor, tuple]:
    """y = a @ b, as torch.matmul: (…, n, k) @ (…, k, m) -> (…, n, m), batch dims broadcast;
    a 1-D a is a row (1, k) and a 1-D b a column (k, 1), their unit dim dropped from y."""
    return a @ b, (a, b)


def matmul_backward(dy: Tensor, cache: tuple) -> tuple[Tensor, Tensor]:
    a, b = cache
    a2 = a.unsqueeze(0) if a.dim() == 1 else a  # (…, n, k): a 1-D a as one row
    b2 = b.unsqueeze(-1) if b.dim() == 1 else b  # (…, k, m): a 1-D b as one column
    batch = torch.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    dy2 = dy.reshape(*batch, a2.shape[-2], b2.shape[-1])  # the dropped unit dims back
    da = dy2 @ b2.transpose(-1, -2)  # dL/da = dy bᵀ    (…, n, k)
    db = a2.transpose(-1, -2) @ dy2  # dL/db = aᵀ dy    (…, k, m)
    return sum_to(da, a2.shape).reshape(a.shape), sum_to(db, b2.shape).reshape(b.shape)


def concat_forward(xs: Sequence[Tensor], dim: int = 0) -> tuple[Tensor, tuple]:
    """y = torch.cat(xs, dim)."""
    return torch.cat(list(xs), dim), ([x.shape[dim] for x in xs], dim)


def concat_backward(dy: Tensor, cache: tuple) -> list[Tensor]:
    """One gradient per tensor of xs, as a list like xs."""
    sizes, dim = cache
    return list(dy.split(sizes, dim))  # each input gets its own slice of dy back


def split_forward(
    x: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0
) -> tuple[tuple[Tensor, ...], tuple]:
    """ys = x.split(split_size_or_sections, dim): several outputs."""
    ys = x.split(split_size_or_sections, dim)
    return ys, (x, [y.shape[dim] for y in ys], dim)


def split_backward(dys: Sequence[Tensor | None], cache: tuple) -> Tensor:
    x, sizes, dim = cache
    parts = []
    for dy, n in zip(dys, sizes):
        shape = [n if d == dim % x.dim() else size for d, size in enumerate(x.shape)]
        parts.append(x.new_zeros(shape) if dy is None else dy)  # an unused piece: zero gradient
    return torch.cat(parts, dim)  # dL/dx: the pieces' gradients side by side


def masked_fill_forward(x: Tensor, mask: Tensor, value: float) -> tuple[Tensor, Tensor]:
    """y = x with `value` where mask is True (mask broadcasts to x), e.g. -inf for attention
    to future positions."""
    return x.masked_fill(mask, value), mask


def masked_fill_backward(dy: Tensor, mask: Tensor) -> Tensor:
    return dy.masked_fill(mask, 0.0)  # a filled element no longer depends on x: gradient 0


def reshape_forward(x: Tensor, shape: Sequence[int]) -> tuple[Tensor, torch.Size]:
    """y = x.reshape(shape): the same elements, relabelled."""
    return x.reshape(tuple(shape)), x.shape


def reshape_backward(dy: Tensor, x_shape: torch.Size) -> Tensor:
    return dy.reshape(x_shape)  # the same elements, back in x's shape


def flatten_forward(x: Tensor, start_dim: int = 1, end_dim: int = -1) -> tuple[Tensor, torch.Size]:
    """y = x.flatten(start_dim, end_dim)."""
    return x.flatten(start_dim, end_dim), x.shape


def unflatten_forward(x: Tensor, dim: int, sizes: Sequence[int]) -> tuple[Tensor, torch.Size]:
    """y = x.unflatten(dim, sizes), e.g. (N, 40) -> (N, 1, 40)."""
    return x.unflatten(dim, tuple(sizes)), x.shape


flatten_backward = unflatten_backward = reshape_backward  # relabelling back is all it takes


def transpose_forward(x: Tensor, dim0: int, dim1: int) -> tuple[Tensor, tuple[int, int]]:
    """y = x.transpose(dim0, dim1)."""
    return x.transpose(dim0, dim1), (dim0, dim1)


def transpose_backward(dy: Tensor, dims: tuple[int, int]) -> Tensor:
    return dy.transpose(*dims)  # swapping the same two dims back
