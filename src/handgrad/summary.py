"""Module.summary: each child's output shape and parameter count, as Keras prints them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from handgrad.mode import no_cache, record_calls

if TYPE_CHECKING:
    from handgrad.module import Module


def summary(model: Module, input_shape: tuple[int, ...], batch_size: int = 2) -> str:
    """Run a batch of zeros through model (eval mode, no cache) and tabulate its children in
    the order they ran (or, where only a container holds them, the container's children); a
    model without children is one row. Prints and returns the table."""
    p = next(iter(model.parameters()), None)
    x = torch.zeros(
        (batch_size, *input_shape),
        dtype=p.dtype if p is not None else None,
        device=p.device if p is not None else None,
    )
    was_training = model.training
    model.eval()
    try:
        with no_cache(), record_calls() as calls:
            out = model(x)
    finally:
        model.train(was_training)
    names = _rows(model, {id(m) for m, _ in calls})
    ran = [(m, y) for m, y in calls if id(m) in names] or [(model, out)]
    rows = [("layer", "output shape", "params")]
    for m, y in ran:
        count = sum(t.numel() for t in m.parameters())
        label = f"{names[id(m)]}: {m._short_name()}" if id(m) in names else m._short_name()
        rows.append((label, _shape(y), f"{count:,}"))
    total = sum(t.numel() for t in model.parameters())
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    line = "-" * (w[0] + w[1] + w[2] + 4)
    table = [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}" for a, b, c in rows]
    text = "\n".join([line, table[0], line, *table[1:], line, f"total parameters: {total:,}", line])
    print(text)
    return text


def _rows(model: Module, called: set[int]) -> dict[int, str]:
    """The children that ran, by name; where none did (an Ensemble's ModuleList only holds
    its members), the first level below that has some: "members.0", "members.1", ..."""
    level = model.children()
    while level and not any(id(m) in called for _, m in level):
        level = [(f"{name}.{n}", c) for name, m in level for n, c in m.children()]
    return {id(m): name for name, m in level}


def _shape(y: object) -> str:
    """(None, *shape) with the batch as None; a tuple of outputs gives one per output."""
    if isinstance(y, tuple):
        return ", ".join(_shape(t) for t in y)
    assert isinstance(y, torch.Tensor)
    return str((None, *y.shape[1:]))
