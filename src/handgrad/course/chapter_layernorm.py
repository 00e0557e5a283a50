"""Chapter 9 of the course, LayerNorm: the reference, the hidden inputs and the mistakes of
9.1 (forward and backward over the last dim), registered in probes.PROBES, reference.CLASSES
and catalogue.MISTAKES.

The course's contract: `LayerNorm(normalized_shape, eps=1e-5)` holds `weight` (γ, ones) and
`bias` (β, zeros) of shape (D,); `forward(x)` takes x of shape (..., D) and returns
y = γ x̂ + β with x̂ = (x − μ)/√(σ² + eps), μ and the biased σ² over the last dim;
`backward(dy)` returns (dL/dx, dL/dγ, dL/dβ) for the last forward's input. The reference is
handgrad's ops.layer_norm_forward/backward; tests/test_course_chapters_a.py checks it
against torch autograd.
"""

from __future__ import annotations

from typing import Any

import torch

from handgrad.course.hidden import cases, gen, int_, randn
from handgrad.ops.normalization import layer_norm_backward, layer_norm_forward


class LayerNorm91:
    """9.1: y = γ (x − μ)/√(σ² + eps) + β over the last dim;
    dL/dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂ x̂))/√(σ² + eps) with dx̂ = dy γ,
    dL/dγ = Σ dy x̂ and dL/dβ = Σ dy, summed over every dim but the last."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5):
        self.eps = eps
        self.weight = torch.ones(normalized_shape)
        self.bias = torch.zeros(normalized_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, self.cache = layer_norm_forward(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        return y

    def backward(self, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dx, _, dweight, dbias = layer_norm_backward(dy, self.cache)
        assert dweight is not None and dbias is not None  # γ and β are always given
        return dx, dweight, dbias


CLASSES: dict[str, dict[str, Any]] = {"9.1": {"LayerNorm": LayerNorm91}}


def _pass(ns: Any, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, **kw: Any) -> Any:
    """One forward and one backward of the student's LayerNorm with γ and β set."""
    ln = ns.LayerNorm(x.shape[-1], **kw)
    ln.weight, ln.bias = gamma.clone(), beta.clone()
    y = ln.forward(x.clone())
    dy = torch.linspace(-1.5, 2.0, y.numel()).reshape(y.shape).flip(-1) * (1 + x.abs().mean())
    dx, dgamma, dbeta = ln.backward(dy)
    return {"y": y, "dx": dx, "dgamma": dgamma, "dbeta": dbeta}


def probe_9_1(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "9.1")
    n, t, d = int_(g, 2, 5), int_(g, 2, 4), int_(g, 3, 7)
    x = randn(g, n, t, d, scale=2) + 1
    gamma, beta = randn(g, d), randn(g, d)
    x2 = randn(g, n, d)
    x2[0] = 3.0  # a row of equal values: σ² = 0, eps alone keeps 1/σ finite
    big = randn(g, n, d) * 1e3 + 1e4
    return cases(
        {
            "last_dim": lambda: _pass(ns, x, gamma, beta),
            "defaults": lambda: _pass(ns, x2, torch.ones(d), torch.zeros(d)),
            "equal_row": lambda: _pass(ns, x2, gamma, beta, eps=1e-3),
            "large_values": lambda: _pass(ns, big, gamma, beta),
            "batch_of_one": lambda: _pass(ns, x2[1:2], gamma, beta),
        }
    )


PROBES = {"9.1": probe_9_1}


def _wrong(
    unbiased: bool = False, eps_outside: bool = False, mean_terms: bool = True, summed: bool = True
) -> dict[str, Any]:
    """A LayerNorm's forward and backward with one thing wrong (self-contained: they keep
    their own cache, so a planted variant does not depend on the student's attributes)."""

    def forward(self: Any, x: torch.Tensor) -> torch.Tensor:
        xc = x - x.mean(-1, keepdim=True)
        var = x.var(-1, unbiased=unbiased, keepdim=True)
        rstd = 1 / (var.sqrt() + self.eps) if eps_outside else 1 / torch.sqrt(var + self.eps)
        self._wrong_cache = (xc * rstd, rstd)
        return self.weight * xc * rstd + self.bias

    def backward(self: Any, dy: torch.Tensor) -> tuple[torch.Tensor, ...]:
        xhat, rstd = self._wrong_cache
        dxhat = dy * self.weight
        if mean_terms:
            mean_xhat = (dxhat * xhat).mean(-1, keepdim=True)
            dx = rstd * (dxhat - dxhat.mean(-1, keepdim=True) - xhat * mean_xhat)
        else:
            dx = rstd * dxhat
        lead = tuple(range(dy.dim() - 1))
        dgamma, dbeta = (dy * xhat).sum(lead), dy.sum(lead)
        return (dx, dgamma, dbeta) if summed else (dx, dy * xhat, dy)

    return {"forward": forward, "backward": backward}


# (id, task, class, methods, ru, en): catalogue.py makes each row a Mistake
MISTAKES = (
    (
        "layernorm-unbiased-variance",
        "9.1",
        "LayerNorm",
        _wrong(unbiased=True),
        "дисперсия с делением на D − 1: LayerNorm делит на D (смещённая оценка)",
        "the variance divides by D − 1: LayerNorm divides by D (the biased estimate)",
    ),
    (
        "layernorm-eps-outside-sqrt",
        "9.1",
        "LayerNorm",
        _wrong(eps_outside=True),
        "eps вне корня: x̂ = (x − μ)/√(σ² + eps)",
        "eps outside the square root: x̂ = (x − μ)/√(σ² + eps)",
    ),
    (
        "layernorm-backward-no-mean-terms",
        "9.1",
        "LayerNorm",
        _wrong(mean_terms=False),
        "dL/dx без членов со средними: μ и σ зависят от x, dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))/σ",
        "dL/dx misses the mean terms: μ and σ depend on x, dx = (dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))/σ",
    ),
    (
        "layernorm-dgamma-not-summed",
        "9.1",
        "LayerNorm",
        _wrong(summed=False),
        "dγ и dβ не просуммированы по батчу: их форма — (D,)",
        "dγ and dβ are not summed over the batch: their shape is (D,)",
    ),
)
