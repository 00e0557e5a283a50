"""Comparing a student's outputs with the reference's, and with a wrong variant's.

Gradients are compared on values: a (1, in) weight's gradient of shape (in,) is not wrong, so
two tensors with as many elements are compared element by element in the reference's shape.
"""

from __future__ import annotations

from typing import Any

import torch

from handgrad.course.hidden import Raised

RTOL = 1e-4  # float32 arithmetic in another order than the reference's stays well inside
ATOL = 1e-5  # scaled by the largest expected magnitude (at least 1)
TRAIN_RTOL = 1e-3  # a trajectory accumulates the reordering over its steps


def _as_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64)
    if isinstance(value, float):
        return torch.tensor(value, dtype=torch.float64)
    return None


def _describe(value: Any) -> str:
    if isinstance(value, Raised):
        return f"{value.kind}: {value.message}" if value.message else value.kind
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _tensor_wrong(got: Any, exp: torch.Tensor, path: str, rtol: float) -> list[dict[str, Any]]:
    g = _as_tensor(got)
    if g is None or g.numel() != exp.numel():
        return [{"case": path, "index": None, "expected": _describe(exp), "got": _describe(got)}]
    g = g.reshape(exp.shape)
    atol = ATOL * max(1.0, float(exp.abs().max()) if exp.numel() else 1.0)
    close = torch.isclose(g, exp, rtol=rtol, atol=atol) & torch.isfinite(g)
    if bool(close.all()):
        return []
    flat = int((~close).reshape(-1).nonzero()[0])
    index = list(torch.unravel_index(torch.tensor(flat), exp.shape)) if exp.dim() else []
    return [
        {
            "case": path,
            "index": [int(i) for i in index],
            "expected": float(exp.reshape(-1)[flat]),
            "got": float(g.reshape(-1)[flat]),
        }
    ]


def wrong(got: Any, exp: Any, path: str = "", rtol: float = RTOL) -> list[dict[str, Any]]:
    """Every place where `got` differs from the reference `exp`, first one first: each a dict
    case (where), index (in the reference's shape), expected, got."""
    if isinstance(exp, dict):
        if not isinstance(got, dict):
            return [{"case": path, "index": None, "expected": "a result", "got": _describe(got)}]
        found = []
        for key, value in exp.items():
            sub = f"{path}.{key}" if path else key
            found += wrong(got.get(key, Raised("missing", key)), value, sub, rtol)
        return found
    if isinstance(exp, (tuple, list)) and not isinstance(exp, torch.Tensor):
        if not isinstance(got, (tuple, list)) or len(got) != len(exp):
            n = len(exp)
            return [{"case": path, "index": None, "expected": f"{n} values", "got": _describe(got)}]
        found = []
        for i, (g, e) in enumerate(zip(got, exp)):
            found += wrong(g, e, f"{path}[{i}]", rtol)
        return found
    tensor = _as_tensor(exp)
    assert tensor is not None, f"the reference gave {exp!r} at {path}"
    return _tensor_wrong(got, tensor, path, rtol)


def same(a: Any, b: Any) -> bool:
    """Whether two outputs agree (a student's and a wrong variant's): the same values, nan
    where the other has nan, or the same kind of exception."""
    if isinstance(a, Raised) or isinstance(b, Raised):
        return isinstance(a, Raised) and isinstance(b, Raised) and a.kind == b.kind
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(same(a[k], b[k]) for k in a)
        )
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return (
            isinstance(a, (tuple, list))
            and isinstance(b, (tuple, list))
            and len(a) == len(b)
            and all(same(x, y) for x, y in zip(a, b))
        )
    ta, tb = _as_tensor(a), _as_tensor(b)
    if ta is None or tb is None or ta.numel() != tb.numel():
        return False
    ta, tb = ta.reshape(-1), tb.reshape(-1)
    atol = ATOL * max(1.0, float(tb.nan_to_num(0, 0, 0).abs().max()) if tb.numel() else 1.0)
    return bool(torch.isclose(ta, tb, rtol=TRAIN_RTOL, atol=atol, equal_nan=True).all())
