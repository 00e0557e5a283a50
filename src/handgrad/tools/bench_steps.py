"""The benchmark's steps: one training step (or a conv layer's forward and backward) of each
case in handgrad, in torch eager (nn + autograd + optim) and in a NumPy baseline.

This is the reference side (like lab.py): it uses torch.nn and torch.optim as the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

import handgrad as hg

Step = Callable[[], Any]


@dataclass
class Case:
    """One benchmark: an MLP, GRU or GPT training step, or a conv layer's forward+backward."""

    name: str
    kind: str  # "mlp", "conv1d", "conv2d", "gru" or "gpt"
    sizes: tuple[int, ...] = ()  # mlp: widths from input to output
    batch: int = 64
    loss: str = "ce"  # mlp: "ce" (classes) or "mse"
    conv: dict[str, Any] = field(default_factory=dict)  # conv: in/out channels, kernel, shape
    seq: dict[str, Any] = field(default_factory=dict)  # gru, gpt: the model's sizes


# ---- the three implementations of one MLP training step -------------------------------------
def mlp_data(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(case.batch, case.sizes[0], generator=g)
    if case.loss == "mse":
        return X, torch.randn(case.batch, case.sizes[-1], generator=g)
    return X, torch.randint(0, case.sizes[-1], (case.batch,), generator=g)


def handgrad_mlp(case: Case, lr: float = 0.01) -> tuple[hg.Module, Any, Any]:
    """The handgrad MLP of a case, its loss and its optimizer (SGD)."""
    layers: list[hg.Module] = []
    for i, (a, b) in enumerate(zip(case.sizes, case.sizes[1:])):
        layers += [hg.Linear(a, b)] + ([hg.ReLU()] if i < len(case.sizes) - 2 else [])
    model = hg.Sequential(*layers)
    loss = hg.MSELoss() if case.loss == "mse" else hg.CrossEntropyLoss()
    return model, loss, hg.optim.SGD(model.parameters(), lr=lr)


def handgrad_step(case: Case, lr: float = 0.01) -> Step:
    model, loss, opt = handgrad_mlp(case, lr)
    X, y = mlp_data(case)

    def step() -> None:  # as fit does it: no gradient for the data, as in torch
        opt.zero_grad()
        loss(model(X), y)
        model.backward_params(loss.backward())
        opt.step()

    def forget() -> None:  # drop gradients and every cached forward tensor (for step_memory)
        opt.zero_grad()
        model.clear_cache()
        loss.clear_cache()

    step.forget = forget  # type: ignore[attr-defined]
    step.model = model  # type: ignore[attr-defined]
    return step


def torch_mlp(case: Case, lr: float = 0.01) -> tuple[nn.Module, Any, Any]:
    """The same MLP, loss and SGD in torch.nn and torch.optim."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(case.sizes, case.sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(case.sizes) - 2 else [])
    model = nn.Sequential(*layers)
    loss = nn.MSELoss() if case.loss == "mse" else nn.CrossEntropyLoss()
    return model, loss, torch.optim.SGD(model.parameters(), lr=lr)


def torch_step(case: Case, lr: float = 0.01) -> Step:
    model, loss, opt = torch_mlp(case, lr)
    X, y = mlp_data(case)

    def step() -> None:
        opt.zero_grad()
        loss(model(X), y).backward()
        opt.step()

    step.forget = opt.zero_grad  # type: ignore[attr-defined]
    return step


class NumpyMLP:
    """A from-scratch MLP in NumPy, float32, the way the from-scratch books write it."""

    def __init__(self, sizes: tuple[int, ...], loss: str, lr: float, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.W = [
            rng.uniform(-1 / math.sqrt(a), 1 / math.sqrt(a), (a, b)).astype(np.float32)
            for a, b in zip(sizes, sizes[1:])
        ]
        self.b = [np.zeros(b, np.float32) for b in sizes[1:]]
        self.loss, self.lr = loss, lr

    def step(self, X: np.ndarray, y: np.ndarray) -> float:
        acts = [X]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = acts[-1] @ W + b
            acts.append(np.maximum(z, 0) if i < len(self.W) - 1 else z)
        out, N = acts[-1], X.shape[0]
        if self.loss == "mse":
            diff = out - y
            value = float((diff**2).mean())
            d = 2 * diff / diff.size
        else:
            shifted = out - out.max(1, keepdims=True)
            p = np.exp(shifted)
            p /= p.sum(1, keepdims=True)
            value = float(-np.log(p[np.arange(N), y] + 1e-12).mean())
            p[np.arange(N), y] -= 1
            d = p / N
        for i in range(len(self.W) - 1, -1, -1):
            dW, db = acts[i].T @ d, d.sum(0)
            if i > 0:
                d = (d @ self.W[i].T) * (acts[i] > 0)
            self.W[i] -= self.lr * dW
            self.b[i] -= self.lr * db
        return value


def numpy_step(case: Case, lr: float = 0.01) -> Step:
    X, y = mlp_data(case)
    mlp, Xn, yn = NumpyMLP(case.sizes, case.loss, lr), X.numpy(), y.numpy()
    return lambda: mlp.step(Xn, yn)


# ---- conv layers: forward + backward ------------------------------------------------------------
def conv_input(case: Case) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(case.batch, case.conv["cin"], *case.conv["size"], generator=g)


def handgrad_conv_step(case: Case) -> Step:
    c = case.conv
    layer = (hg.Conv1d if case.kind == "conv1d" else hg.Conv2d)(
        c["cin"],
        c["cout"],
        c["k"],
        stride=c["stride"],
        padding=c["padding"],
        algorithm=c.get("algorithm", "auto"),
    )
    x = conv_input(case)
    dy = torch.ones_like(layer(x))

    def step() -> None:
        layer.zero_grad()
        layer(x)
        layer.backward(dy)

    return step


def torch_conv_step(case: Case) -> Step:
    c = case.conv
    layer = (nn.Conv1d if case.kind == "conv1d" else nn.Conv2d)(
        c["cin"], c["cout"], c["k"], stride=c["stride"], padding=c["padding"]
    )
    x = conv_input(case).requires_grad_(True)
    dy = torch.ones_like(layer(x))

    def step() -> None:
        layer.zero_grad()
        x.grad = None
        layer(x).backward(dy)

    return step


# ---- sequence models: a whole training step (forward, loss, backward, optimizer) -------------
# Both implementations run on one thread: a recurrence is a chain of small products that a
# second thread barely helps (examples/mnist1d_gru.py and fit's "auto" run it on one), and on
# a shared 2-core machine two OpenMP threads per process measured 10-60x slower than one.
SEQUENCE_THREADS = 1


def sequence_data(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    g, c = torch.Generator().manual_seed(0), case.seq
    if case.kind == "gpt":
        ids = torch.randint(0, c["vocab"], (case.batch, c["context"] + 1), generator=g)
        return ids[:, :-1], ids[:, 1:]
    X = torch.randn(case.batch, c["steps"], c["input_size"], generator=g)
    return X, torch.randint(0, c["classes"], (case.batch,), generator=g)


def handgrad_sequence(case: Case) -> tuple[Any, Any, Any]:
    """hg.RecurrentClassifier with Adam, or hg.GPT with AdamW, as `handgrad train` runs them;
    the loss (cross-entropy)."""
    c = case.seq
    if case.kind == "gpt":
        model: Any = hg.GPT(c["vocab"], c["context"], c["layers"], c["heads"], c["width"])
        opt: Any = hg.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        return model, hg.CrossEntropyLoss(), opt
    model = hg.RecurrentClassifier(
        "gru",
        c["input_size"],
        c["hidden"],
        c["steps"],
        c["classes"],
        bidirectional=c["bidirectional"],
    )
    return model, hg.CrossEntropyLoss(), hg.optim.Adam(model.parameters(), lr=1e-2)


def handgrad_sequence_step(case: Case) -> Step:
    model, loss, opt = handgrad_sequence(case)
    X, y = sequence_data(case)

    def step() -> None:  # as fit does it: no gradient for the data
        opt.zero_grad()
        out = model(X)  # a GPT's: (B, T, V), one row per position
        loss(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        grad = loss.backward().reshape(out.shape)
        model.backward(grad) if case.kind == "gpt" else model.backward_params(grad)
        opt.step()

    step.threads = SEQUENCE_THREADS  # type: ignore[attr-defined]
    return step


class TorchGPT(nn.Module):
    """hg.GPT written with torch.nn modules (the same keys), as examples/gpt.py has it."""

    def __init__(self, vocab: int, context: int, layers: int, heads: int, width: int) -> None:
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.drop = nn.Dropout(0.0)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width, heads, 4 * width, 0.0, "gelu", batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )
        self.ln_f, self.head = nn.LayerNorm(width), nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tok_emb.weight  # tied, as hg.GPT's default

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device)))
        mask = torch.ones(T, T, dtype=torch.bool, device=idx.device).triu(1)
        for block in self.blocks:
            x = block(x, mask, None, True)
        return self.head(self.ln_f(x))


class TorchGRUClassifier(nn.Module):
    def __init__(self, input_size: int, hidden: int, steps: int, classes: int, bi: bool) -> None:
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden, batch_first=True, bidirectional=bi)
        self.linear = nn.Linear(steps * hidden * (2 if bi else 1), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return self.linear(h.flatten(1))


def torch_sequence(case: Case) -> tuple[nn.Module, Any]:
    """The same model in torch.nn and its optimizer (torch.optim)."""
    c = case.seq
    if case.kind == "gpt":
        model: nn.Module = TorchGPT(c["vocab"], c["context"], c["layers"], c["heads"], c["width"])
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    model = TorchGRUClassifier(
        c["input_size"], c["hidden"], c["steps"], c["classes"], c["bidirectional"]
    )
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def torch_sequence_step(case: Case) -> Step:
    model, opt = torch_sequence(case)
    X, y = sequence_data(case)

    def step() -> None:
        opt.zero_grad()
        out = model(X)
        nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)).backward()
        opt.step()

    step.threads = SEQUENCE_THREADS  # type: ignore[attr-defined]
    return step
