"""A seed-lab task's result: handgrad's values beside torch's, whether they agree, and how
the lab prints it; with the comparison every task uses. The reference side (torch.nn)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor


@dataclass
class TaskResult:
    """One task: rows of (what, handgrad's value, torch's value), whether all agree, a note."""

    task: str
    title: str
    rows: list[tuple[str, Any, Any]]
    agree: bool
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"── {self.task}  {self.title}"]
        for label, mine, ref in self.rows:
            lines.append(f"   {label}")
            lines.append("     handgrad: " + _fmt(mine).replace("\n", "\n               "))
            lines.append("     torch:    " + _fmt(ref).replace("\n", "\n               "))
        lines.append(f"   agree: {'yes' if self.agree else 'NO'}")
        if self.note:
            lines.append(f"   note: {self.note}")
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, Tensor):
        v = v.detach()
        return str(v.item()) if v.numel() == 1 else str(v)
    return str(v)


def close(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    a, b = torch.as_tensor(a).detach().double(), torch.as_tensor(b).detach().double()
    return a.numel() == b.numel() and torch.allclose(a.reshape(-1), b.reshape(-1), rtol, atol)


def result(
    task: str,
    title: str,
    rows: list[tuple[str, Any, Any]],
    note: str = "",
    atol: float = 1e-5,
    rtol: float = 1e-4,
    **extra: Any,
) -> TaskResult:
    agree = all(close(m, r, atol, rtol) for _, m, r in rows)
    return TaskResult(task, title, rows, agree, note, extra)


def torch_linear(weight: Tensor, bias: Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    layer.weight = nn.Parameter(weight.clone())
    layer.bias = nn.Parameter(bias.clone())
    return layer
