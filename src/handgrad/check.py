"""gradcheck: compare a hand-written backward with torch.autograd and with finite differences.

This file is a reference tool, like the tests: it is the one place in the package allowed to
call torch.autograd (DESIGN.md: the oracle may use it; the compute path may not).

It works on handgrad modules and losses and on any object with ``forward``/``backward``:
- a module's ``backward(dy)`` returns dL/dx (or sets ``self.dinputs``, the nnfs convention);
- a loss's ``backward()`` (no required argument) returns dL/dpred;
- parameter gradients are read from ``param.grad``, or from an attribute ``d<name>``
  (``dweights`` for ``weights``).
The check runs on a float64 copy; the object passed in is not changed.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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

    def __str__(self) -> str:
        verdict = "ok  " if self.ok else "FAIL"
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
    """All comparisons for one object; truthy when every gradient agrees."""

    target: str
    comparisons: list[GradComparison] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.comparisons) and all(c.ok for c in self.comparisons)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def failures(self) -> list[GradComparison]:
        return [c for c in self.comparisons if not c.ok]

    def __str__(self) -> str:
        lines = [f"gradcheck {self.target}: {'PASS' if self.ok else 'FAIL'}"]
        lines += [str(c) for c in self.comparisons]
        return "\n".join(lines)


def _is_loss(obj: Any) -> bool:
    """A loss's backward needs no argument; a module's takes the output gradient."""
    try:
        params = inspect.signature(obj.backward).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [
        p
        for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return not required


def _tensor_attributes(obj: Any, names: Sequence[str] | None) -> list[str]:
    """Names of the parameters to check: given, declared, or the object's float tensors."""
    if names is not None:
        return list(names)
    if callable(getattr(obj, "named_parameters", None)):
        return [n for n, _ in obj.named_parameters()]
    return [n for n, v in vars(obj).items() if isinstance(v, Tensor) and v.is_floating_point()]


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def _set(obj: Any, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    owner = _get(obj, ".".join(path)) if path else obj
    setattr(owner, last, value)


def _float64_copy(obj: Any, names: list[str]) -> Any:
    work = copy.deepcopy(obj)
    for n in names:
        _set(work, n, _get(work, n).detach().to(torch.float64))
    return work


def _run_forward(obj: Any, inputs: Sequence[Any], seed: int) -> Tensor:
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the same dropout mask on every call
        return obj.forward(*inputs)


def _objective(out: Tensor, g: Tensor | None) -> Tensor:
    return out.sum() if g is None else (out * g).sum()


def _hand_gradients(
    work: Any, inputs: list[Any], names: list[str], seed: int, is_loss: bool
) -> tuple[Tensor | None, Tensor | None, dict[str, Tensor | None]]:
    """Run the object's own forward and backward; returns (upstream g, dL/dinput0, param grads)."""
    for n in names:
        _get(work, n).grad = None
    out = _run_forward(work, inputs, seed)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: forward returned {type(out).__name__}, not a tensor")
    g = None
    if is_loss:
        dx = work.backward()
    else:
        gen = torch.Generator(device="cpu").manual_seed(seed + 1)
        g = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.device)
        dx = work.backward(g)
    if dx is None:
        dx = next(
            (getattr(work, a) for a in ("dinputs", "dx", "grad_input") if hasattr(work, a)), None
        )
    grads: dict[str, Tensor | None] = {}
    for n in names:
        p = _get(work, n)
        *path, last = n.split(".")
        owner = _get(work, ".".join(path)) if path else work
        grads[n] = p.grad if p.grad is not None else getattr(owner, "d" + last, None)
    return g, dx, grads


def _autograd_gradients(
    work: Any, inputs: list[Any], names: list[str], g: Tensor | None, seed: int
) -> list[Tensor | None]:
    """torch.autograd's gradient of sum(g ⊙ forward(...)) for input 0 and each parameter."""
    leaves = [inputs[0].detach().clone().requires_grad_(True)]
    for n in names:
        t = _get(work, n).detach().clone().requires_grad_(True)
        _set(work, n, t)
        leaves.append(t)
    out = _run_forward(work, [leaves[0], *inputs[1:]], seed)
    grads = torch.autograd.grad(_objective(out, g), leaves, allow_unused=True)
    return [None if gr is None else gr.detach() for gr in grads]


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
    return torch.tensor(idx), est


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
    if hand is None:
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
        return GradComparison(name, reference, True)
    worst = int(torch.argmax(err - (atol + rtol * e.abs())))
    ok = bool((err <= atol + rtol * e.abs()).all())
    flat_pos = int(index[worst]) if index is not None else worst
    where = (
        tuple(int(i) for i in torch.unravel_index(torch.tensor(flat_pos), shape)) if shape else ()
    )
    return GradComparison(
        name, reference, ok, float(err.max()), where, float(h[worst]), float(e[worst])
    )


def gradcheck(
    obj: Any,
    *inputs: Any,
    params: Sequence[str] | None = None,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    eps: float = 1e-6,
    finite_differences: bool = True,
    max_fd_elements: int = 200,
    seed: int = 0,
) -> GradcheckReport:
    """Check obj's backward (input 0 and every parameter) in float64 against autograd and FD.

    Args:
        obj: a handgrad Module or Loss, or any object with forward/backward.
        inputs: forward's arguments (a loss takes (pred, target)); float ones become float64.
        params: attribute names of the parameters, when they cannot be discovered.
        max_fd_elements: finite differences probe at most this many elements per tensor.
    Finite differences are wrong at kinks (ReLU at 0); keep inputs away from them.
    """
    if not callable(getattr(obj, "forward", None)) or not callable(getattr(obj, "backward", None)):
        raise TypeError(f"gradcheck: {type(obj).__name__} has no forward/backward methods")
    if not inputs or not isinstance(inputs[0], Tensor) or not inputs[0].is_floating_point():
        raise TypeError("gradcheck: the first input must be a floating-point tensor")
    names = _tensor_attributes(obj, params)
    is_loss = _is_loss(obj)
    work = _float64_copy(obj, names)
    xs = [
        x.detach().to(torch.float64) if isinstance(x, Tensor) and x.is_floating_point() else x
        for x in inputs
    ]
    report = GradcheckReport(
        repr(obj) if type(obj).__repr__ is not object.__repr__ else type(obj).__name__
    )
    g, dx, hand = _hand_gradients(work, xs, names, seed, is_loss)
    checked = [("input 0", dx, xs[0])] + [(n, hand[n], _get(work, n)) for n in names]

    try:
        auto = _autograd_gradients(_float64_copy(obj, names), xs, names, g, seed)
    except Exception as exc:  # the object's forward may not be autograd-friendly
        report.comparisons.append(
            GradComparison("all", "autograd", True, note=f"skipped: autograd failed ({exc})")
        )
    else:
        for (name, h, t), a in zip(checked, auto):
            ref = torch.zeros_like(t) if a is None else a
            report.comparisons.append(_compare(name, "autograd", h, ref, atol, rtol))

    if finite_differences:
        fd_work = _float64_copy(obj, names)
        fd_inputs = [x.clone() if isinstance(x, Tensor) else x for x in xs]

        def f() -> float:
            return float(_objective(_run_forward(fd_work, fd_inputs, seed), g))

        targets = [("input 0", dx, fd_inputs[0])] + [(n, hand[n], _get(fd_work, n)) for n in names]
        for name, h, t in targets:
            idx, est = _finite_difference(f, t, eps, max_fd_elements)
            report.comparisons.append(
                _compare(name, "finite differences", h, est, atol, rtol, index=idx, shape=t.shape)
            )
    return report
