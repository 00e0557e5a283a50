"""The hidden inputs of each task and what the grader reads back: one probe per (sub-)task.

A probe takes the student's file as a module (or the reference as a namespace, or one of the
catalogue's wrong variants) and a seed, calls the task's classes on inputs drawn from that
seed (other shapes, seeds and values than the lab's, plus edge cases) and returns their raw
outputs as {case: value}. This file holds chapters 1-3 and the registry; probes_backprop.py
holds chapter 4. runner.py runs a probe on a student's file in the sandbox's child.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from handgrad.course import (
    chapter_attention,
    chapter_conv,
    chapter_gru,
    chapter_layernorm,
    chapter_optim,
)
from handgrad.course import probes_backprop as bp
from handgrad.course.hidden import NotAttempted, Raised, cases, gen, int_, pair, randn

__all__ = ["NotAttempted", "Raised", "PROBES", "TASKS", "probe", "tiny_target_accepted"]

Probe = Callable[[Any, int], dict[str, Any]]


def probe_1_1(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "1.1")
    n = int_(g, 3, 7)
    w, b, x, x2 = randn(g, n), randn(g, 1).squeeze(), randn(g, n, scale=2), randn(g, n)
    return cases(
        {
            "forward": lambda: ns.Neuron(w, b).forward(x),
            "other": lambda: ns.Neuron(w, b + 2).forward(x2),
        }
    )


def probe_1_2(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "1.2")
    n_out, n_in = pair(g, 2, 6)
    W, b, x = randn(g, n_out, n_in), randn(g, n_out), randn(g, n_in)
    Wsq, bsq, xsq = randn(g, n_in, n_in), randn(g, n_in), randn(g, n_in)
    return cases(
        {
            "forward": lambda: ns.Linear(W, b).forward(x),
            "square": lambda: ns.Linear(Wsq, bsq).forward(xsq),
        }
    )


def probe_1_3(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "1.3")
    n_out, n_in = pair(g, 2, 6)
    n = int_(g, 2, 7)
    W, b, X = randn(g, n_out, n_in), randn(g, n_out), randn(g, n, n_in)
    Wsq, bsq, Xsq = randn(g, n_in, n_in), randn(g, n_in), randn(g, n_in, n_in)
    return cases(
        {
            "batch": lambda: ns.Linear(W, b).forward(X),
            "batch_of_one": lambda: ns.Linear(W, b).forward(X[:1]),
            "square": lambda: ns.Linear(Wsq, bsq).forward(Xsq),
        }
    )


def _layer_draws(ns: Any, seed: int, n_in: int, n_out: int, X: torch.Tensor) -> dict[str, Any]:
    torch.manual_seed(seed)
    m = ns.Linear(n_in, n_out)
    return {"weights": m.weights, "biases": m.biases, "forward": m.forward(X)}


def probe_1_4(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "1.4")
    n_out, n_in = pair(g, 2, 6)
    X = randn(g, int_(g, 2, 6), n_in)
    return cases({"layer": lambda: _layer_draws(ns, seed, n_in, n_out, X)})


def _net(ns: Any, seed: int, X: torch.Tensor) -> dict[str, Any]:
    torch.manual_seed(seed)
    net = ns.NeuralNet()
    out = net.forward(X)
    first, second = net.input, net.output
    composed = (X @ first.weights.T + first.biases) @ second.weights.T + second.biases
    return {"shape": [float(s) for s in out.shape], "output_minus_composed": out - composed}


def probe_1_5(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "1.5")
    X = randn(g, int_(g, 2, 6), 4)
    return cases({"net": lambda: _net(ns, seed, X), "batch_of_one": lambda: _net(ns, seed, X[:1])})


def probe_2_1(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "2.1")
    x = randn(g, int_(g, 2, 6), int_(g, 2, 6), scale=2)
    x[0, 0] = 0.0
    return cases(
        {"forward": lambda: ns.ReLU().forward(x), "batch_of_one": lambda: ns.ReLU().forward(x[:1])}
    )


def probe_2_2(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "2.2")
    n, c = pair(g, 2, 6)
    z = randn(g, n, c, scale=2)
    big = randn(g, n, c, scale=3) + 1000 * torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)[:, None]
    return cases(
        {
            "no_argument": lambda: ns.Softmax().forward(z),
            "dim_1": lambda: ns.Softmax(dim=1).forward(z),
            "logits_1000": lambda: ns.Softmax(dim=1).forward(big),
            "batch_of_one": lambda: ns.Softmax().forward(z[:1]),
        }
    )


def probe_2_3(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "2.3")
    x = randn(g, int_(g, 2, 6), int_(g, 2, 6), scale=2)
    alpha = 0.5 + float(torch.rand(1, generator=g)) * 1.5
    return cases(
        {"alpha": lambda: ns.ELU(alpha=alpha).forward(x), "default": lambda: ns.ELU().forward(x)}
    )


def probe_3_1(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "3.1")
    n = int_(g, 2, 8)
    p, t = randn(g, n, 1, scale=3), randn(g, n, 1, scale=3)
    t_int = torch.randint(-5, 6, (n, 1), generator=g)
    return cases(
        {
            "forward": lambda: ns.MSELoss().forward(p, t),
            "integer_targets": lambda: ns.MSELoss().forward(p, t_int),
            "batch_of_one": lambda: ns.MSELoss().forward(p[:1], t[:1]),
        }
    )


def _onehot(labels: torch.Tensor, c: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, c).to(torch.float32)


def probe_3_2(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "3.2")
    n, c = int_(g, 2, 6), int_(g, 3, 5)
    p = torch.softmax(randn(g, n, c, scale=2), dim=1)
    labels = torch.randint(0, c, (n,), generator=g)
    y = _onehot(labels, c)
    zero = p.clone()
    other = (labels + 1) % c
    zero[torch.arange(n), other] = 0.0  # a probability of 0 on a class that is not the target
    tiny = torch.full((1, c), (1 - 1e-10) / (c - 1))
    tiny[0, labels[0]] = 1e-10  # the target's probability underflows the clip
    return cases(
        {
            "forward": lambda: ns.CategoricalCrossEntropyLoss().forward(p, y),
            "zero_probability": lambda: ns.CategoricalCrossEntropyLoss().forward(zero, y),
            "tiny_target": lambda: ns.CategoricalCrossEntropyLoss().forward(tiny, y[:1]),
            "batch_of_one": lambda: ns.CategoricalCrossEntropyLoss().forward(p[:1], y[:1]),
        }
    )


def tiny_target_accepted(got: Any) -> bool:
    """3.2's target with probability 1e-10: any finite loss of at least −log(1e-7)."""
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        return False
    value = float(got.reshape(-1)[0])
    return math.isfinite(value) and value >= -math.log(1e-7) * (1 - 1e-5)


def probe_3_3(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "3.3")
    n, k = int_(g, 2, 6), int_(g, 2, 6)
    p, t, w = randn(g, n, 1, scale=2), randn(g, n, 1, scale=2), randn(g, 1, k)
    lam = 0.1 + float(torch.rand(1, generator=g)) * 2
    return cases(
        {
            "data_loss": lambda: ns.MSELossL2(lambda_=lam, weights=w).data_loss(p, t),
            "reg_loss": lambda: ns.MSELossL2(lambda_=lam, weights=w).reg_loss(),
            "forward": lambda: ns.MSELossL2(lambda_=lam, weights=w).forward(p, t),
        }
    )


PROBES: dict[str, Probe] = {
    "1.1": probe_1_1,
    "1.2": probe_1_2,
    "1.3": probe_1_3,
    "1.4": probe_1_4,
    "1.5": probe_1_5,
    "2.1": probe_2_1,
    "2.2": probe_2_2,
    "2.3": probe_2_3,
    "3.1": probe_3_1,
    "3.2": probe_3_2,
    "3.3": probe_3_3,
    "4.1.1": bp.probe_4_1_1,
    "4.1.2": bp.probe_4_1_2,
    "4.1.3": bp.probe_4_1_3,
    "4.2.1": bp.probe_4_2_1,
    "4.2.2": bp.probe_4_2_2,
    "4.2.3": bp.probe_4_2_3,
    "4.3.1": bp.probe_4_3_1,
    "4.3.2": bp.probe_4_3_2,
    "4.4.1": bp.probe_4_4_1,
    "4.4.2": bp.probe_4_4_2,
    "4.4.3": bp.probe_4_4_3,
    "4.5": bp.probe_4_5,
    **chapter_optim.PROBES,
    **chapter_conv.PROBES,
    **chapter_gru.PROBES,
    **chapter_attention.PROBES,
    **chapter_layernorm.PROBES,
}
TASKS = tuple(PROBES)


def probe(task: str, ns: Any, seed: int) -> dict[str, Any]:
    """Runs `task`'s probe (or "4.1.chain" / "4.2.chain") on `ns`."""
    if task.endswith(".chain"):
        return bp.probe_chain(ns, seed, task[: -len(".chain")])
    return PROBES[task](ns, seed)
