"""The hidden inputs of chapter 4 (backpropagation): each class's backward on its own, the
loss's backward fed to the neuron's (4.1 and 4.2's conventions), and the training loops."""

from __future__ import annotations

from typing import Any

import torch

from handgrad.course.hidden import cases, gen, int_, pair, randn


def _losscases(ns: Any, p: torch.Tensor, t: torch.Tensor) -> dict[str, Any]:
    return cases(
        {
            "forward": lambda: ns.MSELoss().forward(p, t),
            "backward": lambda: ns.MSELoss().backward(p, t),
        }
    )


def probe_4_1_1(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "4.1.1")
    return _losscases(ns, randn(g, 1, scale=3), randn(g, 1, scale=3))


def probe_4_2_1(ns: Any, seed: int) -> dict[str, Any]:
    g = gen(seed, "4.2.1")
    n = int_(g, 2, 8)
    return _losscases(ns, randn(g, n, 1, scale=3), randn(g, n, 1, scale=3))


def _unit(
    ns: Any, cls: str, seed: int, args: tuple, X: torch.Tensor, g: torch.Tensor
) -> dict[str, Any]:
    torch.manual_seed(seed)
    m = getattr(ns, cls)(*args)
    bias = m.bias if hasattr(m, "bias") else m.biases
    return {
        "weights": m.weights,
        "bias": bias,
        "forward": m.forward(X),
        "backward": m.backward(g, X),
    }


def probe_4_1_2(ns: Any, seed: int) -> dict[str, Any]:
    rng = gen(seed, "4.1.2")
    k = int_(rng, 2, 6)
    x, g = randn(rng, k), randn(rng, 1, scale=3)
    return cases({"neuron": lambda: _unit(ns, "Neuron", seed, (k,), x, g)})


def probe_4_2_2(ns: Any, seed: int) -> dict[str, Any]:
    rng = gen(seed, "4.2.2")
    k, n = pair(rng, 2, 7)
    X, g = randn(rng, n, k), randn(rng, n, 1, scale=3)
    return cases(
        {
            "neuron": lambda: _unit(ns, "Neuron", seed, (k,), X, g),
            "batch_of_one": lambda: _unit(ns, "Neuron", seed, (k,), X[:1], g[:1]),
        }
    )


def _chain(ns: Any, seed: int, X: torch.Tensor, t: torch.Tensor) -> Any:
    torch.manual_seed(seed)
    neuron, loss = ns.Neuron(X.shape[-1]), ns.MSELoss()
    p = neuron.forward(X)
    return neuron.backward(loss.backward(p, t), X)


def probe_chain(ns: Any, seed: int, task: str) -> dict[str, Any]:
    """4.1 and 4.2: the loss's backward fed to the neuron's, both the student's own."""
    rng = gen(seed, task + ".chain")
    k, n = pair(rng, 2, 7)
    X = randn(rng, k) if task == "4.1" else randn(rng, n, k)
    t = randn(rng, 1, scale=3) if task == "4.1" else randn(rng, n, 1, scale=3)
    return cases({"chain": lambda: _chain(ns, seed, X, t)})


def probe_4_3_1(ns: Any, seed: int) -> dict[str, Any]:
    rng = gen(seed, "4.3.1")
    k, out = pair(rng, 2, 6)
    n = int_(rng, 2, 7)
    X, g, g1 = randn(rng, n, k), randn(rng, n, out), randn(rng, n, 1)
    return cases(
        {
            "one_output": lambda: _unit(ns, "Linear", seed, (k, 1), X, g1),
            "outputs": lambda: _unit(ns, "Linear", seed, (k, out), X, g),
            "batch_of_one": lambda: _unit(ns, "Linear", seed, (k, out), X[:1], g[:1]),
        }
    )


def _relu(ns: Any, x: torch.Tensor, g: torch.Tensor) -> dict[str, Any]:
    relu = ns.Activation_ReLU()
    out = relu.forward(x)
    relu.backward(g)
    return {"forward": out, "dinputs": relu.dinputs}


def probe_4_4_1(ns: Any, seed: int) -> dict[str, Any]:
    rng = gen(seed, "4.4.1")
    n, k = int_(rng, 2, 6), int_(rng, 2, 6)
    x, g = randn(rng, n, k, scale=2), randn(rng, n, k)
    x[0, 0] = 0.0
    return cases({"relu": lambda: _relu(ns, x, g), "batch_of_one": lambda: _relu(ns, x[:1], g[:1])})


def probe_4_4_2(ns: Any, seed: int) -> dict[str, Any]:
    rng = gen(seed, "4.4.2")
    k, out = pair(rng, 2, 6)
    n = int_(rng, 2, 7)
    X, g = randn(rng, n, k), randn(rng, n, out)
    return cases(
        {
            "outputs": lambda: _unit(ns, "Linear", seed, (k, out), X, g),
            "batch_of_one": lambda: _unit(ns, "Linear", seed, (k, out), X[:1], g[:1]),
        }
    )


def _trained(ns: Any, seed: int, X: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> Any:
    torch.manual_seed(seed)
    model, losses = ns.train(X, y, epochs, lr)
    layers = model if isinstance(model, tuple) else (model,)
    params = []
    for layer in layers:
        for name in ("weights", "bias", "biases"):
            if hasattr(layer, name):
                params.append(getattr(layer, name))
    return {"losses": torch.tensor([float(v) for v in losses]), "parameters": params}


def _regression(seed: int, task: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = gen(seed, task)
    k = int_(rng, 2, 5)
    X = randn(rng, n, k)
    y = X @ randn(rng, k, scale=5) + 0.5 + randn(rng, n, scale=0.1)
    return X, y


def probe_4_1_3(ns: Any, seed: int) -> dict[str, Any]:
    X, y = _regression(seed, "4.1.3", 12)
    return cases({"train": lambda: _trained(ns, seed, X, y, 4, 0.05)})


def probe_4_2_3(ns: Any, seed: int) -> dict[str, Any]:
    X, y = _regression(seed, "4.2.3", 20)
    return cases({"train": lambda: _trained(ns, seed, X, y, 8, 0.1)})


def probe_4_3_2(ns: Any, seed: int) -> dict[str, Any]:
    X, y = _regression(seed, "4.3.2", 20)
    return cases({"train": lambda: _trained(ns, seed, X, y, 8, 0.1)})


def probe_4_4_3(ns: Any, seed: int) -> dict[str, Any]:
    rng = gen(seed, "4.4.3")
    X = torch.linspace(-1, 1, 40).view(-1, 1)
    y = X.pow(2) + 0.2 * torch.rand(X.shape, generator=rng)
    return cases({"train": lambda: _trained(ns, seed, X, y, 25, 0.05)})


def probe_4_5(ns: Any, seed: int) -> dict[str, Any]:
    rng = gen(seed, "4.5")
    n, c = pair(rng, 2, 6)
    z = randn(rng, n, c, scale=2)
    big = z + 1000 * torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)[:, None]
    y = torch.randint(0, c, (n,), generator=rng)
    loss = ns.SoftmaxCrossEntropyLoss
    return cases(
        {
            "forward": lambda: loss().forward(z, y),
            "backward": lambda: loss().backward(z, y),
            "logits_1000": lambda: (loss().forward(big, y), loss().backward(big, y)),
            "batch_of_one": lambda: (loss().forward(z[:1], y[:1]), loss().backward(z[:1], y[:1])),
        }
    )
