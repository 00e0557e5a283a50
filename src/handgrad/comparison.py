"""What gradcheck reports: one GradComparison per gradient and reference, gathered in a
GradcheckReport; and how one gradient is compared with its reference (the worst element
named) or estimated by central differences."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class GradComparison:
    """One gradient checked against one reference."""

    name: str  # "input 0", "weight", ...
    reference: str  # "autograd" or "finite differences"
    ok: bool
    max_abs_error: float = 0.0
    worst_index: tuple[int, ...] | None = None
    hand: float | None = None
    expected: float | None = None
    note: str = ""
    compared: int = 0  # how many elements were compared
    error: bool = False  # the comparison could not run (autograd failed, ...)

    def __str__(self) -> str:
        verdict = "ok  " if self.ok else "ERROR" if self.error else "FAIL"
        head = f"  {verdict}  {self.name:<14} vs {self.reference:<19}"
        if self.note:
            return f"{head} {self.note}"
        if self.ok:
            return f"{head} max |error| {self.max_abs_error:.2e}"
        return (
            f"{head} worst at {list(self.worst_index or ())}: hand {self.hand:.6g}, "
            f"{self.reference} {self.expected:.6g} (|error| {self.max_abs_error:.3g})"
        )


@dataclass
class GradcheckReport:
    """All comparisons for one object. PASS (truthy) only when every comparison ran and agreed
    and at least one element was compared: a check that could not run never passes."""

    target: str
    comparisons: list[GradComparison] = field(default_factory=list)

    @property
    def compared(self) -> int:
        """The number of gradient elements compared, over all references."""
        return sum(c.compared for c in self.comparisons)

    @property
    def ok(self) -> bool:
        return self.compared > 0 and all(c.ok for c in self.comparisons)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def failures(self) -> list[GradComparison]:
        return [c for c in self.comparisons if not c.ok]

    def __str__(self) -> str:
        verdict = (
            "PASS" if self.ok else "ERROR" if any(c.error for c in self.comparisons) else "FAIL"
        )
        references = sorted({c.reference for c in self.comparisons if c.compared})
        lines = [
            f"gradcheck {self.target}: {verdict} ({len(self.comparisons)} comparisons, "
            f"{self.compared} elements compared"
            + (f" against {' and '.join(references)})" if references else ")")
        ]
        if self.compared == 0:
            lines.append("  FAIL  nothing was compared (no floating input got a gradient)")
        lines += [str(c) for c in self.comparisons]
        return "\n".join(lines)


def _sample_indices(numel: int, limit: int) -> list[int]:
    if numel <= limit:
        return list(range(numel))
    step = numel / limit
    return sorted({int(i * step) for i in range(limit)})


def _finite_difference(
    f: Callable[[], float], t: Tensor, eps: float, limit: int
) -> tuple[Tensor, Tensor]:
    """Central differences (f(t+h) - f(t-h)) / 2h at up to `limit` elements of t.

    t is perturbed in place and restored.
    """
    flat = t.view(-1)
    idx = _sample_indices(flat.numel(), limit)
    est = torch.empty(len(idx), dtype=torch.float64)
    for k, i in enumerate(idx):
        old = flat[i].item()
        flat[i] = old + eps
        f_plus = f()
        flat[i] = old - eps
        f_minus = f()
        flat[i] = old
        est[k] = (f_plus - f_minus) / (2 * eps)
    return torch.tensor(idx, dtype=torch.long), est


def _compare(
    name: str,
    reference: str,
    hand: Tensor | None,
    expected: Tensor,
    atol: float,
    rtol: float,
    index: Tensor | None = None,
    shape: torch.Size | None = None,
) -> GradComparison:
    shape = expected.shape if shape is None else shape
    if hand is None:  # right only where the gradient is zero
        if bool((expected.abs() <= atol).all()):
            return GradComparison(
                name,
                reference,
                True,
                note="no gradient, and none expected",
                compared=expected.numel(),
            )
        return GradComparison(
            name,
            reference,
            False,
            note="no gradient found (backward returned "
            "None and no .grad or d<name> attribute was set)",
        )
    if not isinstance(hand, Tensor) or hand.shape != shape:
        got = tuple(hand.shape) if isinstance(hand, Tensor) else type(hand).__name__
        return GradComparison(
            name, reference, False, note=f"gradient has shape {got}, expected {tuple(shape)}"
        )
    h = hand.detach().to(torch.float64).cpu().reshape(-1)
    if index is not None:
        h = h[index]
    e = expected.detach().to(torch.float64).cpu().reshape(-1)
    err = (h - e).abs()
    err = torch.where(torch.isnan(err), torch.full_like(err, float("inf")), err)
    if err.numel() == 0:
        return GradComparison(name, reference, True, note="empty: nothing to compare")
    worst = int(torch.argmax(err - (atol + rtol * e.abs())))
    ok = bool((err <= atol + rtol * e.abs()).all())
    flat_pos = int(index[worst]) if index is not None else worst
    where = (
        tuple(int(i) for i in torch.unravel_index(torch.tensor(flat_pos), shape)) if shape else ()
    )
    return GradComparison(
        name,
        reference,
        ok,
        float(err.max()),
        where,
        float(h[worst]),
        float(e[worst]),
        compared=err.numel(),
    )
