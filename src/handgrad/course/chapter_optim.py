"""Chapter 5 of the course, optimizers: the reference, the hidden inputs and the mistakes of
5.1 (SGD with momentum) and 5.2 (Adam), registered in probes.PROBES, reference.CLASSES and
catalogue.MISTAKES.

The course's contract: `SGDMomentum(lr, momentum)` and `Adam(lr=1e-3, betas=(0.9, 0.999),
eps=1e-8)` each have `step(params, grads)`, which updates every tensor of `params` in place
(as torch.optim.SGD(momentum=...) and torch.optim.Adam do) from the matching tensor of `grads`.
The reference steps with handgrad's own updates (optim/sgd.py's sgd_update, optim/adam.py's
adam_update); tests/test_course_chapters_a.py checks both against torch's optimizers.
"""

from __future__ import annotations

from typing import Any

import torch

from handgrad.course.hidden import cases, gen, int_, randn
from handgrad.optim.adam import AdamHyperparameters, adam_update
from handgrad.optim.sgd import SGDHyperparameters, sgd_update


class SGDMomentum51:
    """5.1: b₁ = g, bₜ = μ bₜ₋₁ + gₜ;  p ← p − lr·bₜ (torch's heavy ball, no dampening)."""

    def __init__(self, lr: float, momentum: float = 0.9):
        self.lr, self.momentum = lr, momentum
        self.buffers: dict[int, dict[str, Any]] = {}

    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        h = SGDHyperparameters(self.lr, self.momentum, 0.0, 0.0, False, False)
        for i, (p, g) in enumerate(zip(params, grads)):
            sgd_update(p, g, self.buffers.setdefault(i, {}), h)


class Adam52:
    """5.2: m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,  m̂ = m/(1 − β₁ᵗ),  v̂ = v/(1 − β₂ᵗ);
    p ← p − lr·m̂/(√v̂ + eps), t counting steps from 1."""

    def __init__(
        self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.t = 0
        self.state: dict[int, dict[str, Any]] = {}

    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        self.t += 1
        h = AdamHyperparameters(self.lr, *self.betas, self.eps, 0.0, False, False, False)
        for i, (p, g) in enumerate(zip(params, grads)):
            state = self.state.setdefault(
                i, {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
            )
            adam_update(p, g, state, self.t, h)


CLASSES: dict[str, dict[str, Any]] = {
    "5.1": {"SGDMomentum": SGDMomentum51},
    "5.2": {"Adam": Adam52},
}


def _run(opt: Any, params: list[torch.Tensor], grads: list[list[torch.Tensor]]) -> list[Any]:
    """Steps `opt` once per entry of `grads`; the parameters after each step. The probe keeps
    its own references to the tensors, so a step that rebinds instead of updating in place
    leaves them unchanged."""
    params = [p.clone() for p in params]
    kept = list(params)
    after = []
    for step_grads in grads:
        opt.step(params, [g.clone() for g in step_grads])
        after.append([p.clone() for p in kept])
    return after


def _draws(g: torch.Generator, steps: int, scale: float = 1.0) -> tuple[list, list]:
    """Two parameters of different shapes and `steps` gradients for each."""
    n, m = int_(g, 2, 5), int_(g, 2, 5)
    params = [randn(g, n, m), randn(g, m)]
    grads = [[randn(g, n, m, scale=scale), randn(g, m, scale=scale)] for _ in range(steps)]
    return params, grads


def probe_5_1(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "5.1")
    params, grads = _draws(g, 5)
    lr, mu = (
        0.05 + float(torch.rand(1, generator=g)) * 0.2,
        0.5 + float(torch.rand(1, generator=g)) * 0.4,
    )
    zero = [[torch.zeros_like(t) for t in grads[0]]] * 2 + grads[:2]
    big_p, big_g = _draws(g, 3, scale=1e4)
    return cases(
        {
            "steps": lambda: _run(ns.SGDMomentum(lr, mu), params, grads),
            "default_momentum": lambda: _run(ns.SGDMomentum(lr), params, grads[:3]),
            "zero_gradient": lambda: _run(ns.SGDMomentum(lr, mu), params, zero),
            "large_gradients": lambda: _run(ns.SGDMomentum(lr, mu), big_p, big_g),
        }
    )


def probe_5_2(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "5.2")
    params, grads = _draws(g, 6)
    lr = 0.01 + float(torch.rand(1, generator=g)) * 0.1
    zero = [[torch.zeros_like(t) for t in grads[0]]] + grads[:2]
    small_p, small_g = _draws(g, 4, scale=1e-6)
    big_p, big_g = _draws(g, 3, scale=1e4)
    return cases(
        {
            "defaults": lambda: _run(ns.Adam(), params, grads),
            "first_step": lambda: _run(ns.Adam(lr=lr), params, grads[:1]),
            "betas": lambda: _run(ns.Adam(lr=lr, betas=(0.8, 0.99), eps=1e-6), params, grads),
            "zero_gradient": lambda: _run(ns.Adam(lr=lr), params, zero),
            "small_gradients": lambda: _run(ns.Adam(lr=lr), small_p, small_g),
            "large_gradients": lambda: _run(ns.Adam(lr=lr), big_p, big_g),
        }
    )


PROBES = {"5.1": probe_5_1, "5.2": probe_5_2}


def _sgd_momentum_after_step(self: Any, params: list, grads: list) -> None:
    """p ← p − lr·bₜ₋₁ first, then bₜ = μbₜ₋₁ + gₜ: the step uses the old velocity."""
    for i, (p, g) in enumerate(zip(params, grads)):
        b = self.buffers.setdefault(i, {}).get("b", torch.zeros_like(p))
        p -= self.lr * b
        self.buffers[i]["b"] = self.momentum * b + g


def _sgd_dampened(self: Any, params: list, grads: list) -> None:
    """bₜ = μbₜ₋₁ + (1 − μ)gₜ: an average, not torch's sum of the gradients."""
    for i, (p, g) in enumerate(zip(params, grads)):
        state = self.buffers.setdefault(i, {})
        state["b"] = self.momentum * state.get("b", torch.zeros_like(p)) + (1 - self.momentum) * g
        p -= self.lr * state["b"]


def _sgd_not_in_place(self: Any, params: list, grads: list) -> None:
    """p = p − lr·b rebinds a name; the caller's tensors never change."""
    for i, (p, g) in enumerate(zip(params, grads)):
        state = self.buffers.setdefault(i, {})
        state["b"] = self.momentum * state["b"] + g if "b" in state else g.clone()
        p = p - self.lr * state["b"]  # noqa: PLW2901 - the mistake itself


def _adam(correct: bool = True, eps_inside: bool = False, advance: bool = True) -> Any:
    """Adam's step with one thing wrong: no bias correction, eps under the square root, or
    the step count t kept at 1."""

    def step(self: Any, params: list, grads: list) -> None:
        self.t = self.t + 1 if advance or self.t == 0 else self.t
        b1, b2 = self.betas
        for i, (p, g) in enumerate(zip(params, grads)):
            s = self.state.setdefault(i, {"m": torch.zeros_like(p), "v": torch.zeros_like(p)})
            s["m"] = b1 * s["m"] + (1 - b1) * g
            s["v"] = b2 * s["v"] + (1 - b2) * g * g
            m_hat = s["m"] / (1 - b1**self.t) if correct else s["m"]
            v_hat = s["v"] / (1 - b2**self.t) if correct else s["v"]
            denom = torch.sqrt(v_hat + self.eps) if eps_inside else torch.sqrt(v_hat) + self.eps
            p -= self.lr * m_hat / denom

    return step


# (id, task, class, methods, ru, en): catalogue.py makes each row a Mistake
MISTAKES = (
    (
        "sgd-momentum-after-step",
        "5.1",
        "SGDMomentum",
        {"step": _sgd_momentum_after_step},
        "шаг сделан со старой скоростью: сначала b ← μb + g, затем p ← p − lr·b",
        "the step uses the old velocity: first b ← μb + g, then p ← p − lr·b",
    ),
    (
        "sgd-momentum-dampened",
        "5.1",
        "SGDMomentum",
        {"step": _sgd_dampened},
        "b ← μb + (1 − μ)g — это среднее; в torch.optim.SGD b ← μb + g",
        "b ← μb + (1 − μ)g is an average; torch.optim.SGD takes b ← μb + g",
    ),
    (
        "sgd-not-in-place",
        "5.1",
        "SGDMomentum",
        {"step": _sgd_not_in_place},
        "p = p − lr·b лишь переназначает имя: веса надо менять на месте (p -= …)",
        "p = p − lr·b only rebinds a name: update the weights in place (p -= ...)",
    ),
    (
        "adam-no-bias-correction",
        "5.2",
        "Adam",
        {"step": _adam(correct=False)},
        "нет поправки смещения: m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ)",
        "no bias correction: m̂ = m/(1 − β₁ᵗ), v̂ = v/(1 − β₂ᵗ)",
    ),
    (
        "adam-eps-inside-sqrt",
        "5.2",
        "Adam",
        {"step": _adam(eps_inside=True)},
        "eps под корнем: знаменатель — √v̂ + eps",
        "eps inside the square root: the denominator is √v̂ + eps",
    ),
    (
        "adam-step-count-fixed",
        "5.2",
        "Adam",
        {"step": _adam(advance=False)},
        "счётчик шагов t не растёт: поправка смещения берёт t = 1, 2, 3, …",
        "the step count t does not advance: the bias correction takes t = 1, 2, 3, ...",
    ),
)
