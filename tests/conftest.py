"""Shared helpers: the same computation in handgrad and in float64 PyTorch autograd."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from handgrad import ops

# The tests' tensors are small: one thread is as fast as two, and never waits for a core that
# another process holds (docs/benchmarks.md#threads). Tests of the thread policy set their own.
torch.set_num_threads(1)

SHAPES = [(5,), (4, 3), (2, 3, 4)]


def make_values(shape: tuple[int, ...], kind: str, seed: int = 0) -> Tensor:
    """Awkward inputs: plain normal, large magnitude, with exact zeros, all negative."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    if kind == "large":
        return x * 100
    if kind == "zeros":
        x.view(-1)[::2] = 0.0
        return x
    if kind == "negative":
        return -x.abs() - 0.1
    return x


VALUE_KINDS = ["normal", "large", "zeros", "negative"]


def autograd_grads(
    fn: Callable[..., Tensor], inputs: list[Tensor], g: Tensor | None = None
) -> tuple[Tensor, list[Tensor | None]]:
    """Output of fn and d(sum(g * fn(*inputs)))/d(input) for each input, by torch.autograd."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves)
    objective = out.sum() if g is None else (out * g).sum()
    grads = torch.autograd.grad(objective, leaves, allow_unused=True)
    return out.detach(), list(grads)


def upstream(shape: torch.Size | tuple[int, ...], seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=g, dtype=torch.float64)


def assert_close(actual: Tensor, expected: Tensor, **kw: float) -> None:
    torch.testing.assert_close(actual, expected, **kw)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---- op pairs (tests/test_ops*.py) -------------------------------------------------------------
def pair(op: str):
    """(ops.<op>_forward, ops.<op>_backward)."""
    return getattr(ops, f"{op}_forward"), getattr(ops, f"{op}_backward")


def r(*shape, seed=0):
    return make_values(shape, "normal", seed)


def away_from_zero(*shape, seed=0):
    """Normal values pushed at least 0.1 from 0, away from the kinks of ReLU and friends."""
    x = r(*shape, seed=seed)
    return x.sign() * (x.abs() + 0.1)


def seeded(fn, seed=3):
    """fn with the same random draws on every call (dropout's mask)."""

    def run(*args):
        torch.manual_seed(seed)
        return fn(*args)

    return run


def check_pair(forward, backward, reference, tensors, g=None):
    """forward(*tensors) against reference(*tensors), and each gradient backward returns
    against autograd's for the same upstream g (drawn for the output's shape if not given)."""
    y, cache = forward(*tensors)
    g = upstream(y.shape) if g is None else g
    expected, grads = autograd_grads(reference, list(tensors), g)
    assert_close(y, expected)
    hand = backward(g, cache)
    assert_grads(hand if isinstance(hand, (tuple, list)) else (hand,), grads)


def assert_grads(hand, auto):
    """Each hand-written gradient equals autograd's, and is None exactly where autograd's is."""
    for h, a in zip(hand, auto):
        assert (h is None) == (a is None)
        if a is not None:
            assert_close(h, a)
