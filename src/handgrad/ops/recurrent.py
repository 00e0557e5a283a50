"""Recurrent cells and whole sequences: the Elman RNN, the GRU and the LSTM, forward and
backward through time (BPTT) by hand. Math: docs/math.md#recurrent-networks-and-bptt.

Weights are torch's: W_ih (G·H, H_in), W_hh (G·H, H_hid), b_ih and b_hh (G·H,), with the G
gates stacked in torch's order (GRU: r, z, n; LSTM: i, f, g, o) and W_hr (H_out, H) for an
LSTM with projections. Each step splits into the input's part gᵢ = x W_ihᵀ + b_ih, which a
sequence computes for every step in one product, and the recurrent part, which the
``_*_step`` functions below compute one step at a time. Their ``_*_step_backward`` twins
hold the gate derivatives; the weight gradients are summed over the steps in one product
at the end: dW_ih = Σₜ dgᵢₜᵀ xₜ, dW_hh = Σₜ dgₕₜᵀ hₜ₋₁.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "rnn_cell_forward",
    "rnn_cell_backward",
    "gru_cell_forward",
    "gru_cell_backward",
    "lstm_cell_forward",
    "lstm_cell_backward",
    "rnn_sequence_forward",
    "rnn_sequence_backward",
    "gru_sequence_forward",
    "gru_sequence_backward",
    "lstm_sequence_forward",
    "lstm_sequence_backward",
]


def _affine(x: Tensor, W: Tensor, b: Tensor | None) -> Tensor:
    """x Wᵀ + b over the last dim."""
    return (
        x @ W.T
        if b is None
        else torch.addmm(b, x.reshape(-1, x.shape[-1]), W.T).view(*x.shape[:-1], W.shape[0])
    )


# ---- the steps: one time step's recurrent part and its gate derivatives -----------------------
def _rnn_step(gi: Tensor, h: Tensor, W_hh: Tensor, b_hh: Tensor | None, relu: bool) -> Tensor:
    """h' = act(gᵢ + h W_hhᵀ + b_hh), act = tanh or relu.  gi, h' (N, H)."""
    a = gi + _affine(h, W_hh, b_hh)  # (N, H) the pre-activation
    return a.clamp(min=0) if relu else torch.tanh(a)


def _rnn_step_backward(dh_new: Tensor, h_new: Tensor, relu: bool) -> Tensor:
    """dL/da from dL/dh' (N, H): the pre-activation's gradient, both gᵢ's and gₕ's."""
    if relu:
        return dh_new * (h_new > 0).to(dh_new.dtype)  # relu′(a) = [a > 0] = [h' > 0]
    return dh_new * (1 - h_new * h_new)  # tanh′(a) = 1 - tanh²(a) = 1 - h'²


def _gru_step(
    gi: Tensor, h: Tensor, W_hh: Tensor, b_hh: Tensor | None
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """torch's GRU step.  gi (N, 3H) = x W_ihᵀ + b_ih, h (N, H):
    r = σ(gᵢᵣ + gₕᵣ),  z = σ(gᵢ_z + gₕ_z),  n = tanh(gᵢₙ + r ⊙ gₕₙ),
    h' = (1 - z) ⊙ n + z ⊙ h,   gₕ = h W_hhᵀ + b_hh (N, 3H)."""
    gh = _affine(h, W_hh, b_hh)  # (N, 3H)
    gi_r, gi_z, gi_n = gi.chunk(3, -1)
    gh_r, gh_z, gh_n = gh.chunk(3, -1)
    r = torch.sigmoid(gi_r + gh_r)  # reset gate  (N, H)
    z = torch.sigmoid(gi_z + gh_z)  # update gate (N, H)
    n = torch.tanh(gi_n + r * gh_n)  # candidate   (N, H)
    h_new = n + z * (h - n)  # (1 - z) n + z h
    return h_new, (h, r, z, n, gh_n)


def _gru_step_backward(dh_new: Tensor, saved: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """(dL/dgᵢ (N, 3H), dL/dgₕ (N, 3H), the direct part of dL/dh (N, H)) from dL/dh'."""
    h, r, z, n, gh_n = saved
    dn = dh_new * (1 - z)  # ∂h'/∂n = 1 - z
    dz = dh_new * (h - n)  # ∂h'/∂z = h - n
    dh_direct = dh_new * z  # ∂h'/∂h = z (through the gates as well: dgₕ W_hh, added by the caller)
    da_n = dn * (1 - n * n)  # tanh′ = 1 - n²: dL/d(gᵢₙ + r ⊙ gₕₙ)
    da_r = da_n * gh_n * r * (1 - r)  # ∂/∂r = gₕₙ, σ′ = r(1 - r)
    da_z = dz * z * (1 - z)  # σ′ = z(1 - z)
    dgi = torch.cat([da_r, da_z, da_n], -1)  # (N, 3H)
    dgh = torch.cat([da_r, da_z, da_n * r], -1)  # (N, 3H): gₕₙ enters scaled by r
    return dgi, dgh, dh_direct


def _lstm_step(
    gi: Tensor, h: Tensor, c: Tensor, W_hh: Tensor, b_hh: Tensor | None, W_hr: Tensor | None
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """torch's LSTM step.  gi (N, 4H), h (N, H_out), c (N, H):
    i, f, g, o = σ, σ, tanh, σ of gᵢ + h W_hhᵀ + b_hh,
    c' = f ⊙ c + i ⊙ g,   h' = (o ⊙ tanh c') W_hrᵀ  (W_hr only with proj_size)."""
    a = gi + _affine(h, W_hh, b_hh)  # (N, 4H)
    a_i, a_f, a_g, a_o = a.chunk(4, -1)
    i, f, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.sigmoid(a_o)  # the gates (N, H)
    g = torch.tanh(a_g)  # the cell input (N, H)
    c_new = f * c + i * g  # (N, H)
    tc = torch.tanh(c_new)
    h_full = o * tc  # (N, H)
    h_new = h_full if W_hr is None else h_full @ W_hr.T  # (N, H_out)
    return h_new, c_new, (c, i, f, g, o, tc, h_full)


def _lstm_step_backward(
    dh_new: Tensor, dc_new: Tensor, saved: tuple[Tensor, ...], W_hr: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(dL/da (N, 4H), dL/dc (N, H), dL/dW_hr's term) from dL/dh' and dL/dc'."""
    c, i, f, g, o, tc, h_full = saved
    dW_hr = None if W_hr is None else dh_new.T @ h_full  # dL/dW_hr = dh'ᵀ h_full  (H_out, H)
    dh_full = dh_new if W_hr is None else dh_new @ W_hr  # (N, H)
    do = dh_full * tc  # ∂h/∂o = tanh c'
    dc = dc_new + dh_full * o * (1 - tc * tc)  # c' feeds c'' and h: ∂h/∂c' = o (1 - tanh² c')
    di = dc * g  # ∂c'/∂i = g
    df = dc * c  # ∂c'/∂f = c
    dg = dc * i  # ∂c'/∂g = i
    dc_prev = dc * f  # ∂c'/∂c = f
    da = torch.cat(
        [di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], -1
    )  # σ′ = s(1 - s), tanh′ = 1 - g²  (N, 4H)
    return da, dc_prev, dW_hr


# ---- the cells: one step with its input --------------------------------------------------------
def rnn_cell_forward(
    x: Tensor,
    h: Tensor,
    W_ih: Tensor,
    W_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
) -> tuple[Tensor, tuple]:
    """h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh).  x (N, H_in), h (N, H)."""
    relu = nonlinearity == "relu"
    h_new = _rnn_step(_affine(x, W_ih, b_ih), h, W_hh, b_hh, relu)
    return h_new, (x, h, W_ih, W_hh, b_ih is not None, b_hh is not None, h_new, relu)


def rnn_cell_backward(dh_new: Tensor, cache: tuple) -> tuple:
    """(dL/dx, dL/dh, dL/dW_ih, dL/dW_hh, dL/db_ih, dL/db_hh, None for nonlinearity)."""
    x, h, W_ih, W_hh, has_b_ih, has_b_hh, h_new, relu = cache
    da = _rnn_step_backward(dh_new, h_new, relu)  # (N, H)
    return _cell_grads(da, da, x, h, W_ih, W_hh, has_b_ih, has_b_hh) + (None,)


def _cell_grads(
    dgi: Tensor,
    dgh: Tensor,
    x: Tensor,
    h: Tensor,
    W_ih: Tensor,
    W_hh: Tensor,
    has_b_ih: bool,
    has_b_hh: bool,
) -> tuple:
    """From dL/dgᵢ and dL/dgₕ (N, G): (dx, dh through W_hh, dW_ih, dW_hh, db_ih, db_hh)."""
    dx = dgi @ W_ih  # dL/dx = dgᵢ W_ih      (N, H_in)
    dh = dgh @ W_hh  # dL/dh = dgₕ W_hh      (N, H)
    dW_ih = dgi.T @ x  # dL/dW_ih = dgᵢᵀ x   (G, H_in)
    dW_hh = dgh.T @ h  # dL/dW_hh = dgₕᵀ h   (G, H)
    db_ih = dgi.sum(0) if has_b_ih else None  # (G,)
    db_hh = dgh.sum(0) if has_b_hh else None  # (G,)
    return dx, dh, dW_ih, dW_hh, db_ih, db_hh


def gru_cell_forward(
    x: Tensor,
    h: Tensor,
    W_ih: Tensor,
    W_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> tuple[Tensor, tuple]:
    """One GRU step (see _gru_step).  x (N, H_in), h (N, H) -> h' (N, H)."""
    h_new, saved = _gru_step(_affine(x, W_ih, b_ih), h, W_hh, b_hh)
    return h_new, (x, W_ih, W_hh, b_ih is not None, b_hh is not None, saved)


def gru_cell_backward(dh_new: Tensor, cache: tuple) -> tuple:
    """(dL/dx, dL/dh, dL/dW_ih, dL/dW_hh, dL/db_ih, dL/db_hh)."""
    x, W_ih, W_hh, has_b_ih, has_b_hh, saved = cache
    dgi, dgh, dh_direct = _gru_step_backward(dh_new, saved)
    dx, dh, *grads = _cell_grads(dgi, dgh, x, saved[0], W_ih, W_hh, has_b_ih, has_b_hh)
    return (dx, dh + dh_direct, *grads)


def lstm_cell_forward(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    W_ih: Tensor,
    W_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> tuple[tuple[Tensor, Tensor], tuple]:
    """One LSTM step (see _lstm_step): (h', c').  x (N, H_in), h and c (N, H)."""
    h_new, c_new, saved = _lstm_step(_affine(x, W_ih, b_ih), h, c, W_hh, b_hh, None)
    return (h_new, c_new), (x, h, W_ih, W_hh, b_ih is not None, b_hh is not None, saved)


def lstm_cell_backward(dys: Sequence[Tensor | None], cache: tuple) -> tuple:
    """From (dL/dh', dL/dc') (None for an unused one):
    (dL/dx, dL/dh, dL/dc, dL/dW_ih, dL/dW_hh, dL/db_ih, dL/db_hh)."""
    x, h, W_ih, W_hh, has_b_ih, has_b_hh, saved = cache
    dh_new = _or_zeros(dys[0], saved[0])
    dc_new = _or_zeros(dys[1], saved[0])
    da, dc, _ = _lstm_step_backward(dh_new, dc_new, saved, None)
    dx, dh, *grads = _cell_grads(da, da, x, h, W_ih, W_hh, has_b_ih, has_b_hh)
    return (dx, dh, dc, *grads)


def _or_zeros(g: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if g is None else g


# ---- whole sequences: one layer, one direction ---------------------------------------------------
def _time_order(L: int, reverse: bool) -> range:
    return range(L - 1, -1, -1) if reverse else range(L)


def _stacked(steps: list[Tensor], ran_backwards: bool, empty: Tensor) -> Tensor:
    """Per-step tensors, listed in the order the steps ran, as one (L, ...) tensor in time
    order (`empty` for L = 0)."""
    if not steps:
        return empty
    return torch.stack(steps[::-1] if ran_backwards else steps)


def _sequence_grads(
    dGI: Tensor,
    dGH: Tensor,
    x: Tensor,
    H_prev: Tensor,
    W_ih: Tensor,
    has_b_ih: bool,
    has_b_hh: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """The weight gradients summed over time in one product each.  dGI, dGH (L, N, G),
    x (L, N, H_in), H_prev (L, N, H): the state each step read."""
    G = dGI.shape[-1]
    dGI2, dGH2 = dGI.reshape(-1, G), dGH.reshape(-1, G)  # (L·N, G)
    dx = dGI @ W_ih  # dL/dxₜ = dgᵢₜ W_ih              (L, N, H_in)
    dW_ih = dGI2.T @ x.reshape(-1, x.shape[-1])  # Σₜ dgᵢₜᵀ xₜ  (G, H_in)
    dW_hh = dGH2.T @ H_prev.reshape(-1, H_prev.shape[-1])  # Σₜ dgₕₜᵀ hₜ₋₁  (G, H)
    db_ih = dGI2.sum(0) if has_b_ih else None  # Σₜ Σₙ dgᵢ  (G,)
    db_hh = dGH2.sum(0) if has_b_hh else None  # Σₜ Σₙ dgₕ  (G,)
    return dx, dW_ih, dW_hh, db_ih, db_hh


def rnn_sequence_forward(
    x: Tensor,
    h0: Tensor,
    W_ih: Tensor,
    W_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
    reverse: bool = False,
) -> tuple[tuple[Tensor, Tensor], tuple]:
    """One layer, one direction of an Elman RNN: ((y, h_n), cache).  x (L, N, H_in),
    h0 (N, H) -> y (L, N, H), hₜ = act(xₜ W_ihᵀ + b_ih + hₜ₋₁ W_hhᵀ + b_hh); reverse=True
    runs t = L-1 … 0 (y stays in input order)."""
    relu = nonlinearity == "relu"
    GI = _affine(x, W_ih, b_ih)  # (L, N, H) every step's input part, one product
    hs, h_prevs, h = [], [], h0
    for t in _time_order(x.shape[0], reverse):
        h_prevs.append(h)  # the state step t reads
        h = _rnn_step(GI[t], h, W_hh, b_hh, relu)
        hs.append(h)
    empty = h0.new_empty(0, *h0.shape)
    y, H_prev = _stacked(hs, reverse, empty), _stacked(h_prevs, reverse, empty)  # (L, N, H)
    has_b = (b_ih is not None, b_hh is not None)
    return (y, h), (x, h0, H_prev, y, W_ih, W_hh, *has_b, relu, reverse)


def rnn_sequence_backward(dys: Sequence[Tensor | None], cache: tuple) -> tuple:
    """BPTT from (dL/dy, dL/dh_n) (None for an unused one): (dL/dx, dL/dh0, dL/dW_ih,
    dL/dW_hh, dL/db_ih, dL/db_hh, None, None)."""
    x, h0, H_prev, y, W_ih, W_hh, has_b_ih, has_b_hh, relu, reverse = cache
    dy = _or_zeros(dys[0], y)
    dh = _or_zeros(dys[1], h0)  # dL/dh flowing back in time, from h_n
    dAs = []  # dL/da per step, last step first
    for t in reversed(_time_order(x.shape[0], reverse)):
        da = _rnn_step_backward(dy[t] + dh, y[t], relu)  # hₜ feeds yₜ and step t+1
        dh = da @ W_hh  # dL/dhₜ₋₁ = daₜ W_hh
        dAs.append(da)
    dA = _stacked(dAs, not reverse, torch.zeros_like(y))  # (L, N, H)
    dx, dW_ih, dW_hh, db_ih, db_hh = _sequence_grads(dA, dA, x, H_prev, W_ih, has_b_ih, has_b_hh)
    return dx, dh, dW_ih, dW_hh, db_ih, db_hh, None, None


def gru_sequence_forward(
    x: Tensor,
    h0: Tensor,
    W_ih: Tensor,
    W_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    reverse: bool = False,
) -> tuple[tuple[Tensor, Tensor], tuple]:
    """One layer, one direction of a GRU: ((y, h_n), cache).  x (L, N, H_in), h0 (N, H)."""
    GI = _affine(x, W_ih, b_ih)  # (L, N, 3H)
    hs, saved, h = [], [], h0
    for t in _time_order(x.shape[0], reverse):
        h, saved_t = _gru_step(GI[t], h, W_hh, b_hh)
        hs.append(h)
        saved.append(saved_t)
    y = _stacked(hs, reverse, h0.new_empty(0, *h0.shape))  # (L, N, H)
    saved = saved[::-1] if reverse else saved  # in time order
    return (y, h), (x, h0, saved, W_ih, W_hh, b_ih is not None, b_hh is not None, reverse)


def gru_sequence_backward(dys: Sequence[Tensor | None], cache: tuple) -> tuple:
    """BPTT from (dL/dy, dL/dh_n): (dL/dx, dL/dh0, dL/dW_ih, dL/dW_hh, dL/db_ih, dL/db_hh,
    None)."""
    x, h0, saved, W_ih, W_hh, has_b_ih, has_b_hh, reverse = cache
    L, N, H = x.shape[0], h0.shape[0], h0.shape[1]
    dy = dys[0] if dys[0] is not None else h0.new_zeros(L, N, H)
    dh = _or_zeros(dys[1], h0)
    dGIs, dGHs = [], []  # per step, last step first
    for t in reversed(_time_order(L, reverse)):
        dgi, dgh, dh_direct = _gru_step_backward(dy[t] + dh, saved[t])
        dh = dh_direct + dgh @ W_hh  # dL/dhₜ₋₁: through z ⊙ h and through the gates
        dGIs.append(dgi)
        dGHs.append(dgh)
    empty = h0.new_empty(0, N, 3 * H)
    dGI, dGH = _stacked(dGIs, not reverse, empty), _stacked(dGHs, not reverse, empty)
    H_prev = torch.stack([s[0] for s in saved]) if L else h0.new_empty(0, N, H)
    dx, dW_ih, dW_hh, db_ih, db_hh = _sequence_grads(dGI, dGH, x, H_prev, W_ih, has_b_ih, has_b_hh)
    return dx, dh, dW_ih, dW_hh, db_ih, db_hh, None


def lstm_sequence_forward(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    W_ih: Tensor,
    W_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    W_hr: Tensor | None = None,
    reverse: bool = False,
) -> tuple[tuple[Tensor, Tensor, Tensor], tuple]:
    """One layer, one direction of an LSTM: ((y, h_n, c_n), cache).  x (L, N, H_in),
    h0 (N, H_out), c0 (N, H) -> y (L, N, H_out); H_out = proj_size with W_hr, else H."""
    GI = _affine(x, W_ih, b_ih)  # (L, N, 4H)
    hs, h_prevs, saved, h, c = [], [], [], h0, c0
    for t in _time_order(x.shape[0], reverse):
        h_prevs.append(h)  # the state step t reads
        h, c, saved_t = _lstm_step(GI[t], h, c, W_hh, b_hh, W_hr)
        hs.append(h)
        saved.append(saved_t)
    empty = h0.new_empty(0, *h0.shape)
    y, H_prev = _stacked(hs, reverse, empty), _stacked(h_prevs, reverse, empty)  # (L, N, H_out)
    saved = saved[::-1] if reverse else saved  # in time order
    cache = (x, h0, c0, H_prev, saved, W_ih, W_hh, W_hr, b_ih is not None, b_hh is not None)
    return (y, h, c), (*cache, reverse)


def lstm_sequence_backward(dys: Sequence[Tensor | None], cache: tuple) -> tuple:
    """BPTT from (dL/dy, dL/dh_n, dL/dc_n): (dL/dx, dL/dh0, dL/dc0, dL/dW_ih, dL/dW_hh,
    dL/db_ih, dL/db_hh, dL/dW_hr, None)."""
    x, h0, c0, H_prev, saved, W_ih, W_hh, W_hr, has_b_ih, has_b_hh, reverse = cache
    L = x.shape[0]
    dy = dys[0] if dys[0] is not None else torch.zeros_like(H_prev)
    dh, dc = _or_zeros(dys[1], h0), _or_zeros(dys[2], c0)
    dAs: list[Tensor] = []  # dL/da per step, last step first
    dW_hrs: list[Tensor] = []  # dL/dW_hr's terms, with projections
    for t in reversed(_time_order(L, reverse)):
        da, dc, dW_hr_t = _lstm_step_backward(dy[t] + dh, dc, saved[t], W_hr)
        dh = da @ W_hh  # dL/dhₜ₋₁ = daₜ W_hh
        dAs.append(da)
        if dW_hr_t is not None:
            dW_hrs.append(dW_hr_t)
    dA = _stacked(dAs, not reverse, c0.new_empty(0, c0.shape[0], 4 * c0.shape[1]))  # (L, N, 4H)
    dW_hr = None if W_hr is None else sum(dW_hrs, torch.zeros_like(W_hr))  # Σₜ dhₜᵀ h_fullₜ
    dx, dW_ih, dW_hh, db_ih, db_hh = _sequence_grads(dA, dA, x, H_prev, W_ih, has_b_ih, has_b_hh)
    return dx, dh, dc, dW_ih, dW_hh, db_ih, db_hh, dW_hr, None
