"""What every probe shares: how a case's output is recorded, and the hidden inputs' draws.

A case that raises is recorded as Raised(its class and message), so that a catalogued variant
that raises the same way is recognised. NotImplementedError anywhere means "not attempted".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Raised:
    """A case whose call raised."""

    kind: str
    message: str


class NotAttempted(Exception):
    """The task still raises NotImplementedError (or its file is missing)."""


def plain(value: Any) -> Any:
    """Tensors to detached float64 copies; tuples, lists and dicts element by element."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64).clone()
    if isinstance(value, (tuple, list)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (int, float)):
        return float(value)
    return value


def cases(cases: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, case in cases.items():
        try:
            out[name] = plain(case())
        except NotImplementedError as exc:
            raise NotAttempted(name) from exc
        except Exception as exc:  # noqa: BLE001 - the student's error is a result
            out[name] = Raised(
                type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else ""
            )
    return out


def gen(seed: int, task: str) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1000 + sum(map(ord, task)))


def randn(g: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=g) * scale


def int_(g: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=g))


def pair(g: torch.Generator, low: int, high: int) -> tuple[int, int]:
    """Two different sizes, so that a missing transpose cannot go unnoticed."""
    a = int_(g, low, high)
    b = int_(g, low, high - 1)
    return a, b + 1 if b >= a else b
