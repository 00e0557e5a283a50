"""Chapter 8 of the course, scaled dot-product attention: the reference (handgrad's
ops/attention.py), the hidden inputs and the catalogued mistakes of task 8.1.

    S = q kᵀ / √d + mask,   P = softmax(S) over each row,   y = P v
    dv = Pᵀ dy,   dP = dy vᵀ,   dS = P ⊙ (dP − Σⱼ dPⱼ Pⱼ),   dq = dS k / √d,   dk = dSᵀ q / √d

The causal mask is −∞ above the diagonal (query i sees keys j ≤ i), added before the softmax.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from handgrad.course.hidden import cases, gen, int_, randn
from handgrad.ops import attention as att


class Attention81:
    """8.1: forward(q, k, v) -> y (B, L, d_v); backward(dy) -> (dq, dk, dv)."""

    def __init__(self, causal: bool = False):
        self.causal = causal

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        mask = att.causal_mask(q.shape[-2], k.shape[-2], q) if self.causal else None
        (y, _), self.cache = att.attention_forward(q, k, v, mask)
        return y

    def backward(self, dy: torch.Tensor) -> tuple[Any, ...]:
        dq, dk, dv, *_ = att.attention_backward((dy, None), self.cache)
        return dq, dk, dv


CLASSES: dict[str, dict[str, Any]] = {"8.1": {"Attention": Attention81}}


# ---- the hidden inputs ------------------------------------------------------------------------
def _attend(ns: Any, causal: bool, q: Any, k: Any, v: Any, dy: Any) -> dict[str, Any]:
    layer = ns.Attention(causal=causal)
    return {"forward": layer.forward(q, k, v), "backward": layer.backward(dy)}


def probe_8_1(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "8.1")
    b, L, S, d, dv = int_(g, 2, 3), int_(g, 2, 5), int_(g, 3, 6), int_(g, 2, 6), int_(g, 2, 4)
    q, k, v, dy = randn(g, b, L, d), randn(g, b, S, d), randn(g, b, S, dv), randn(g, b, L, dv)
    k_sq, v_sq = randn(g, b, L, d), randn(g, b, L, dv)
    big = q * 40  # scores of some hundreds: exp without the max shift overflows
    return cases(
        {
            "plain": lambda: _attend(ns, False, q, k, v, dy),
            "causal": lambda: _attend(ns, True, q, k_sq, v_sq, dy),
            "large_scores": lambda: _attend(ns, False, big, k * 40, v, dy),
            "batch_of_one": lambda: _attend(ns, True, q[:1], k_sq[:1], v_sq[:1], dy[:1]),
        }
    )


PROBES = {"8.1": probe_8_1}


# ---- the catalogued mistakes ------------------------------------------------------------------
def _wrong(scale: bool = True, shift: bool = True, mask_after: bool = False, sum_term: bool = True):
    """An attention with one part wrong, forward and backward written out."""

    def forward(s: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        c = 1 / math.sqrt(q.shape[-1]) if scale else 1.0
        scores = q @ k.transpose(-2, -1) * c
        allowed = torch.ones(q.shape[-2], k.shape[-2]).tril().bool() if s.causal else None
        if allowed is not None and not mask_after:
            scores = scores.masked_fill(~allowed, -math.inf)
        if shift:
            scores = scores - scores.amax(-1, keepdim=True)
        e = torch.exp(scores)
        P = e / e.sum(-1, keepdim=True)
        if allowed is not None and mask_after:
            P = P.masked_fill(~allowed, 0.0)  # the rows no longer sum to 1
        s.saved = (q, k, v, P, c)
        return P @ v

    def backward(s: Any, dy: torch.Tensor) -> tuple[Any, ...]:
        q, k, v, P, c = s.saved
        dP = dy @ v.transpose(-2, -1)
        dS = P * (dP - (dP * P).sum(-1, keepdim=True)) if sum_term else P * dP
        return dS @ k * c, dS.transpose(-2, -1) @ q * c, P.transpose(-2, -1) @ dy

    return {"forward": forward, "backward": backward}


MISTAKES: tuple[tuple[Any, ...], ...] = (
    (
        "attention-no-scale",
        "8.1",
        "Attention",
        _wrong(scale=False),
        "нет масштаба 1/√d: оценки q kᵀ делятся на √d (d — размер q)",
        "the 1/√d scale is missing: the scores q kᵀ are divided by √d (d is q's size)",
    ),
    (
        "attention-no-max-shift",
        "8.1",
        "Attention",
        _wrong(shift=False),
        "exp без вычитания максимума строки: при больших оценках получается inf и nan",
        "exp without subtracting each row's maximum: large scores give inf and nan",
    ),
    (
        "attention-mask-after-softmax",
        "8.1",
        "Attention",
        _wrong(mask_after=True),
        "маска применена после softmax: −∞ прибавляется к оценкам до softmax, иначе строки не суммируются в 1",
        "the mask is applied after the softmax: −∞ is added to the scores before it, or the rows do not sum to 1",
    ),
    (
        "softmax-backward-no-sum",
        "8.1",
        "Attention",
        _wrong(sum_term=False),
        "обратный проход softmax без суммы: dS = P ⊙ (dP − Σⱼ dPⱼ Pⱼ), а не P ⊙ dP",
        "the softmax backward lacks its sum: dS = P ⊙ (dP − Σⱼ dPⱼ Pⱼ), not P ⊙ dP",
    ),
)
