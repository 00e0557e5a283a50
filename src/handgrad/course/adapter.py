"""The student's classes as handgrad modules, and the quick check that decides whether to use them.

A student's 4.4/4.5 classes follow the course contract (COURSE_CONTRACT.md), not handgrad's
protocol: ``Linear.backward(dvalue, inputs) -> (dW, db, dinputs)`` averages over the batch,
``MSELoss.backward(p, t) = 2(p - t)`` (no 1/N), ``Activation_ReLU.backward(dvalues)`` sets
``self.dinputs``, ``SoftmaxCrossEntropyLoss.backward(z, y) = (softmax(z) - onehot)/N``. The
adapters below wrap them so that ``hg.fit`` trains them: each forward pushes what the student's
backward needs, each backward adds dW, db into ``.grad`` and returns dL/dinput.

Batch conventions. Gradients flow between handgrad modules as the true dL/d·. A student class
may carry its own power of the batch size N: the loss returns N^q · dL/dpred (q = 1 for the
seed's MSE, 0 for 4.5's cross-entropy), the Linear gives dW = N^-p · dvalueᵀx (p = 1: it
averages). ``_StudentLoss`` divides by N^q and ``_StudentLinear`` feeds the student
dvalue = N^p · dy and returns dinputs / N^p, so the step is the true gradient's exactly when the
powers are the ones the adapter assumes. The parabola assumes the contract's powers (the update
the student's own 4.4 loop makes, a missing 1/N included); digits, which has no student loop,
assumes the measured ones (each class's convention normalised).

Run these only inside the sandbox: they call the student's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from handgrad.module import Module
from handgrad.nn.loss import Loss

__all__ = ["Verdict", "check_linear", "check_loss", "check_relu", "wrap_layer", "wrap_loss"]


@dataclass
class Verdict:
    """A class's quick check: "ok", "scaled" (right up to a power of N), "wrong" or "missing"."""

    status: str
    reason: str = ""  # why it is not "ok" (one line, English: the report translates the frame)
    power: int = 0  # the measured power of N (see the module docstring)


# ---- the adapters ------------------------------------------------------------------------------
def _tensor(value: Any, like: Tensor) -> Tensor:
    """A student's return value as a tensor of `like`'s dtype and shape (values compared, not
    shapes: a (1, in) gradient given as (in,) is fine)."""
    t = torch.as_tensor(value, dtype=like.dtype)
    return t.reshape(like.shape)


class _StudentLinear(Module):
    """y = student.forward(x); dW, db from student.backward(N^p · dy, x); dL/dx = dinputs / N^p.

    The weight and bias ARE the student's ``weights`` (out, in) and ``biases`` (out,) tensors,
    so handgrad's optimizer steps them in place."""

    parameter_names = ("weight", "bias")

    def __init__(self, student: Any, power: int) -> None:
        self.student, self.power = student, power
        self.weight: Tensor = student.weights
        self.bias: Tensor = student.biases

    def forward(self, x: Tensor) -> Tensor:  # x: (N, in)
        y = _tensor(self.student.forward(x), x.new_empty(x.shape[0], self.weight.shape[0]))
        self.push_cache(x)
        return y  # (N, out)

    def backward(self, dy: Tensor) -> Tensor:  # dy: (N, out), the true dL/dy
        x = self.pop_cache()
        scale = float(x.shape[0]) ** self.power
        dW, db, dx = self.student.backward(dy * scale, x)  # in the student's convention
        self.add_grad(self.weight, _tensor(dW, self.weight))  # dL/dW, its own batch factor
        self.add_grad(self.bias, _tensor(db, self.bias))  # dL/db
        return _tensor(dx, x) / scale  # dL/dx = dy W


class _StudentReLU(Module):
    """y = student.forward(x); dL/dx = the student's ``dinputs`` (linear in dy: no N factor)."""

    def __init__(self, student: Any) -> None:
        self.student = student

    def forward(self, x: Tensor) -> Tensor:
        y = _tensor(self.student.forward(x), x)
        self.push_cache(x)
        return y

    def backward(self, dy: Tensor) -> Tensor:
        x = self.pop_cache()
        return _tensor(_relu_dinputs(self.student, dy), x)  # dL/dx = dy · [x > 0]


def _relu_dinputs(student: Any, dy: Tensor) -> Any:
    """The contract's ``backward(dvalues)`` sets ``self.dinputs``; a returned tensor is taken
    when it sets none."""
    returned = student.backward(dy)
    return getattr(student, "dinputs", None) if returned is None else returned


class _StudentLoss(Loss):
    """L = student.forward(pred, target); dL/dpred = student.backward(pred, target) / N^q."""

    def __init__(self, student: Any, power: int) -> None:
        super().__init__()
        self.student, self.power = student, power

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        loss = torch.as_tensor(self.student.forward(pred, target), dtype=pred.dtype).reshape(())
        self.push_cache((pred, target))
        return loss

    def backward(self, grad: Tensor | float | None = None) -> Tensor:
        pred, target = self.pop_cache()
        g = 1.0 if grad is None else grad
        raw = _tensor(self.student.backward(pred, target), pred)
        return raw * g / float(pred.shape[0]) ** self.power  # the true dL/dpred


def wrap_layer(kind: str, student: Any, power: int) -> Module:
    """The adapter for a student's "Linear" (its batch power `power`) or "ReLU" object."""
    return _StudentLinear(student, power) if kind == "Linear" else _StudentReLU(student)


def wrap_loss(student: Any, power: int) -> Loss:
    """The adapter for a student's loss object whose backward is N^power · dL/dpred."""
    return _StudentLoss(student, power)


# ---- the quick checks --------------------------------------------------------------------------
N = 5  # the check's batch: the powers of N it tells apart are 5x apart


def _close(got: Any, want: Tensor) -> bool:
    try:
        t = torch.as_tensor(got, dtype=want.dtype)
    except (TypeError, ValueError, RuntimeError):
        return False
    if t.numel() != want.numel():
        return False
    return bool(torch.allclose(t.reshape(want.shape), want, rtol=1e-4, atol=1e-5))


def _first_wrong(got: Any, want: Tensor) -> str:
    """Where `got` first differs from `want`: the shape, or (index, expected, got)."""
    try:
        t = torch.as_tensor(got, dtype=want.dtype)
    except (TypeError, ValueError, RuntimeError):
        return f"got {type(got).__name__}, expected a tensor of shape {tuple(want.shape)}"
    if t.numel() != want.numel():
        return f"shape {tuple(t.shape)}, expected {tuple(want.shape)}"
    t = t.reshape(want.shape)
    bad = (~torch.isclose(t, want, rtol=1e-4, atol=1e-5)).nonzero()[0].tolist()
    expected, got = float(want[tuple(bad)]) + 0.0, float(t[tuple(bad)]) + 0.0  # no "-0"
    return f"at {tuple(bad)} expected {expected:.5g}, got {got:.5g}"


def _powered(got: Any, true: Tensor, powers: tuple[int, ...]) -> int | None:
    """The power p (from `powers`) with got == N^p · true, or None."""
    return next((p for p in powers if _close(got, true * float(N) ** p)), None)


def check_linear(cls: Any) -> Verdict:
    """Linear(3, 4) given W, b: forward x Wᵀ + b; backward (dW, db, dinputs) with dinputs = dvalue W
    and dW = dvalueᵀx / N (p = 1, the contract) or dvalueᵀx (p = 0: it sums over the batch)."""
    g = torch.Generator().manual_seed(1)
    x, W, b, dv = (torch.randn(*s, generator=g) for s in ((N, 3), (4, 3), (4,), (N, 4)))
    lin = cls(3, 4)
    lin.weights, lin.biases = W.clone(), b.clone()
    if not _close(lin.forward(x), x @ W.T + b):
        return Verdict("wrong", "forward: " + _first_wrong(lin.forward(x), x @ W.T + b))
    out = lin.backward(dv, x)
    if not (isinstance(out, tuple) and len(out) == 3):
        return Verdict("wrong", "backward must return (dW, db, dinputs)")
    dW, db, dx = out
    if not _close(dx, dv @ W):
        return Verdict("wrong", "dinputs = dvalue W: " + _first_wrong(dx, dv @ W))
    p = _powered(dW, dv.T @ x, (-1, 0))  # dW = N^p · dvalueᵀx
    if p is None:
        return Verdict("wrong", "dW = dvalueᵀ x / N: " + _first_wrong(dW, dv.T @ x / N))
    if not _close(db, dv.sum(0) * float(N) ** p):
        return Verdict("wrong", "db = Σ dvalue / N: " + _first_wrong(db, dv.sum(0) * float(N) ** p))
    if p == 0:
        return Verdict("scaled", "dW, db sum over the batch where the contract averages", 0)
    return Verdict("ok", power=1)


def check_relu(cls: Any) -> Verdict:
    """forward max(x, 0); backward(dvalues) sets dinputs = dvalues · [x > 0]."""
    g = torch.Generator().manual_seed(2)
    x, dv = torch.randn(N, 4, generator=g), torch.randn(N, 4, generator=g)
    relu = cls()
    if not _close(relu.forward(x), x.clamp(min=0)):
        return Verdict("wrong", "forward: " + _first_wrong(relu.forward(x), x.clamp(min=0)))
    relu.forward(x)
    got = _relu_dinputs(relu, dv)
    want = dv * (x > 0)
    if not _close(got, want):
        return Verdict("wrong", "dinputs = dvalues where x > 0, else 0: " + _first_wrong(got, want))
    return Verdict("ok")


def check_loss(cls: Any, kind: str) -> Verdict:
    """MSE: forward mean (p - t)², backward 2(p - t) (q = 1, the seed) or 2(p - t)/N (q = 0).
    CE: forward mean -log softmax(z)[y] (logits up to ±100: max-shifted), backward
    (softmax(z) - onehot)/N (q = 0, 4.5) or without the 1/N (q = 1)."""
    g = torch.Generator().manual_seed(3)
    if kind == "MSE":
        p, t = torch.randn(N, 1, generator=g), torch.randn(N, 1, generator=g)
        value, true, contract = ((p - t) ** 2).mean(), 2 * (p - t) / N, 1
    else:
        p = torch.randn(N, 4, generator=g) * 3
        p[0, 1] = 100.0  # overflows exp in float32 without the max shift
        t = torch.tensor([1, 0, 3, 2, 1])
        logp = p - p.logsumexp(1, keepdim=True)
        value, contract = -logp[torch.arange(N), t].mean(), 0
        true = (logp.exp() - torch.eye(4)[t]) / N
    loss = cls()
    if not _close(loss.forward(p, t), value):
        return Verdict("wrong", "forward: " + _first_wrong(loss.forward(p, t), value))
    got = loss.backward(p, t)
    q = _powered(got, true, (contract, 1 - contract))
    if q is None:
        return Verdict("wrong", "backward: " + _first_wrong(got, true * float(N) ** contract))
    if q != contract:
        side = "without the 1/N" if q == 1 else "with a 1/N the contract leaves to the layer"
        return Verdict("scaled", f"backward {side}", q)
    return Verdict("ok", power=q)
