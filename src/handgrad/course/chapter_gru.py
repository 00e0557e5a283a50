"""Chapter 7 of the course, a GRU cell and backpropagation through time: the reference
(handgrad's ops/recurrent.py), the hidden inputs and the catalogued mistakes of tasks 7.1
(the cell) and 7.2 (a sequence).

torch's GRU, gates stacked in the order r, z, n in W_ih (3H, H_in), W_hh (3H, H), b_ih, b_hh:

    r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr),   z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
    n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn)),   h' = (1 − z) ⊙ n + z ⊙ h

BPTT: dL/dhₜ = dL/dyₜ + (what step t+1 sends back to hₜ); the weight gradients are summed
over the steps. The mistakes' backwards are autograd's on their own (wrong) forward.
"""

from __future__ import annotations

from typing import Any

import torch

from handgrad.course.hidden import cases, gen, int_, randn
from handgrad.ops import recurrent as rec


class GRUCell71:
    """7.1: forward(x, h) -> h'; backward(dh') -> (dx, dh, dW_ih, dW_hh, db_ih, db_hh)."""

    def __init__(self, W_ih: Any, W_hh: Any, b_ih: Any, b_hh: Any):
        self.W_ih, self.W_hh, self.b_ih, self.b_hh = W_ih, W_hh, b_ih, b_hh

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        h_new, self.cache = rec.gru_cell_forward(x, h, self.W_ih, self.W_hh, self.b_ih, self.b_hh)
        return h_new

    def backward(self, dh_new: torch.Tensor) -> tuple[Any, ...]:
        return tuple(rec.gru_cell_backward(dh_new, self.cache))


class GRU72:
    """7.2: forward(x, h0) -> (y, h_n) over x (L, N, H_in); backward(dy, dh_n) ->
    (dx, dh0, dW_ih, dW_hh, db_ih, db_hh), the weight gradients summed over time."""

    def __init__(self, W_ih: Any, W_hh: Any, b_ih: Any, b_hh: Any):
        self.W_ih, self.W_hh, self.b_ih, self.b_hh = W_ih, W_hh, b_ih, b_hh

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[Any, ...]:
        (y, h_n), self.cache = rec.gru_sequence_forward(
            x, h0, self.W_ih, self.W_hh, self.b_ih, self.b_hh
        )
        return y, h_n

    def backward(self, dy: torch.Tensor, dh_n: torch.Tensor) -> tuple[Any, ...]:
        return tuple(rec.gru_sequence_backward((dy, dh_n), self.cache)[:6])


CLASSES: dict[str, dict[str, Any]] = {
    "7.1": {"GRUCell": GRUCell71},
    "7.2": {"GRUCell": GRUCell71, "GRU": GRU72},
}


# ---- the hidden inputs ------------------------------------------------------------------------
def _weights(g: torch.Generator, h_in: int, h: int) -> tuple[torch.Tensor, ...]:
    return randn(g, 3 * h, h_in), randn(g, 3 * h, h), randn(g, 3 * h), randn(g, 3 * h)


def _cell(ns: Any, weights: tuple, x: Any, h: Any, dh: Any) -> dict[str, Any]:
    cell = ns.GRUCell(*weights)
    return {"forward": cell.forward(x, h), "backward": cell.backward(dh)}


def probe_7_1(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "7.1")
    n, h_in, h = int_(g, 2, 4), int_(g, 2, 5), int_(g, 2, 4)
    weights = _weights(g, h_in, h)
    x, h0, dh = randn(g, n, h_in), randn(g, n, h), randn(g, n, h)
    return cases(
        {
            "cell": lambda: _cell(ns, weights, x, h0, dh),
            "zero_state": lambda: _cell(ns, weights, x, torch.zeros_like(h0), dh),
            "batch_of_one": lambda: _cell(ns, weights, x[:1], h0[:1], dh[:1]),
        }
    )


def _sequence(ns: Any, weights: tuple, x: Any, h0: Any, dy: Any, dh_n: Any) -> dict[str, Any]:
    gru = ns.GRU(*weights)
    y, h_n = gru.forward(x, h0)
    return {"y": y, "h_n": h_n, "backward": gru.backward(dy, dh_n)}


def probe_7_2(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "7.2")
    L, n, h_in, h = int_(g, 3, 5), int_(g, 2, 3), int_(g, 2, 4), int_(g, 2, 4)
    weights = _weights(g, h_in, h)
    x, h0, dy, dh_n = randn(g, L, n, h_in), randn(g, n, h), randn(g, L, n, h), randn(g, n, h)
    return cases(
        {
            "sequence": lambda: _sequence(ns, weights, x, h0, dy, dh_n),
            "no_final_gradient": lambda: _sequence(ns, weights, x, h0, dy, torch.zeros_like(dh_n)),
            "length_1": lambda: _sequence(ns, weights, x[:1], h0, dy[:1], dh_n),
        }
    )


PROBES = {"7.1": probe_7_1, "7.2": probe_7_2}


# ---- the catalogued mistakes ------------------------------------------------------------------
def _step(s: Any, x: Any, h: Any, order: tuple[int, int, int], kind: str) -> torch.Tensor:
    """A GRU step with the gates read in `order` from the stacked weights; kind "reset-before"
    puts r on h before W_hn, "swapped" mixes h' = z ⊙ n + (1 − z) ⊙ h."""
    gi = (x @ s.W_ih.T + s.b_ih).chunk(3, -1)
    gh = (h @ s.W_hh.T + s.b_hh).chunk(3, -1)
    i_r, i_z, i_n = (gi[k] for k in order)
    h_r, h_z, h_n = (gh[k] for k in order)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    if kind == "reset-before":
        H = h.shape[-1]
        W_hn, b_hn = s.W_hh[2 * H :], s.b_hh[2 * H :]
        n = torch.tanh(i_n + (r * h) @ W_hn.T + b_hn)
    else:
        n = torch.tanh(i_n + r * h_n)
    return z * n + (1 - z) * h if kind == "swapped" else (1 - z) * n + z * h


def _wrong_cell(order: tuple[int, int, int], kind: str) -> dict[str, Any]:
    """forward and backward of a wrong cell; its backward is autograd's of that forward."""

    def forward(s: Any, x: Any, h: Any) -> torch.Tensor:
        s.inputs = [t.detach().clone().requires_grad_(True) for t in (x, h)]
        s.params = [
            t.detach().clone().requires_grad_(True) for t in (s.W_ih, s.W_hh, s.b_ih, s.b_hh)
        ]
        plain = type("W", (), dict(zip(("W_ih", "W_hh", "b_ih", "b_hh"), s.params)))
        s.out = _step(plain, s.inputs[0], s.inputs[1], order, kind)
        return s.out.detach()

    def backward(s: Any, dh_new: Any) -> tuple[Any, ...]:
        return torch.autograd.grad(s.out, [*s.inputs, *s.params], dh_new)

    return {"forward": forward, "backward": backward}


def _stepwise_forward(s: Any, x: torch.Tensor, h0: torch.Tensor) -> tuple[Any, ...]:
    s.cells, h, ys = [], h0, []
    for t in range(x.shape[0]):
        cell = GRUCell71(s.W_ih, s.W_hh, s.b_ih, s.b_hh)
        h = cell.forward(x[t], h)
        s.cells.append(cell)
        ys.append(h)
    return torch.stack(ys), h


def _bptt(carry: bool, final: bool, summed: bool) -> Any:
    """A BPTT with one part left out: the carried dh, the final state's gradient, or the sum
    of the weight gradients over the steps (then the earliest step's alone remain)."""

    def backward(s: Any, dy: torch.Tensor, dh_n: torch.Tensor) -> tuple[Any, ...]:
        dh = dh_n if final else torch.zeros_like(dh_n)
        dxs: list[torch.Tensor] = []
        total: list[torch.Tensor] = []
        for t in reversed(range(len(s.cells))):
            dx, dh_prev, *grads = s.cells[t].backward(dy[t] + dh)
            dh = dh_prev if carry else torch.zeros_like(dh_prev)
            dxs.append(dx)
            total = [a + b for a, b in zip(total, grads)] if total and summed else grads
            last_dh = dh_prev
        return (torch.stack(dxs[::-1]), last_dh, *total)

    return backward


def _seq(backward: Any) -> dict[str, Any]:
    return {"forward": _stepwise_forward, "backward": backward}


R, Z, N = 0, 1, 2
MISTAKES: tuple[tuple[Any, ...], ...] = (
    (
        "gru-gate-order",
        "7.1",
        "GRUCell",
        _wrong_cell((Z, R, N), "torch"),
        "гейты взяты в порядке z, r, n: в torch строки W_ih и W_hh идут в порядке r, z, n",
        "the gates are read in the order z, r, n: torch stacks the rows of W_ih and W_hh as r, z, n",
    ),
    (
        "gru-update-swapped",
        "7.1",
        "GRUCell",
        _wrong_cell((R, Z, N), "swapped"),
        "h' = z ⊙ n + (1 − z) ⊙ h: в torch z сохраняет старое состояние, h' = (1 − z) ⊙ n + z ⊙ h",
        "h' = z ⊙ n + (1 − z) ⊙ h: in torch z keeps the old state, h' = (1 − z) ⊙ n + z ⊙ h",
    ),
    (
        "gru-reset-before-matmul",
        "7.1",
        "GRUCell",
        _wrong_cell((R, Z, N), "reset-before"),
        "r умножает h до W_hn: в torch r ⊙ (h W_hnᵀ + b_hn)",
        "r multiplies h before W_hn: torch takes r ⊙ (h W_hnᵀ + b_hn)",
    ),
    (
        "bptt-no-carry",
        "7.2",
        "GRU",
        _seq(_bptt(carry=False, final=True, summed=True)),
        "dh не передаётся на предыдущий шаг: dL/dhₜ₋₁ из шага t прибавляется к dL/dyₜ₋₁",
        "dh is not carried to the previous step: step t's dL/dhₜ₋₁ adds to dL/dyₜ₋₁",
    ),
    (
        "bptt-final-gradient-ignored",
        "7.2",
        "GRU",
        _seq(_bptt(carry=True, final=False, summed=True)),
        "градиент по последнему состоянию dh_n не учтён: с него начинается dh",
        "the gradient of the final state dh_n is ignored: dh starts from it",
    ),
    (
        "bptt-weights-not-summed",
        "7.2",
        "GRU",
        _seq(_bptt(carry=True, final=True, summed=False)),
        "градиенты весов не суммируются по времени: каждый шаг затирает предыдущий",
        "the weight gradients are not summed over time: each step overwrites the last",
    ),
)
