"""The grader's reference answer for every task of the seed lab (reference side: torch is the
oracle here, tests/test_grader.py checks each backward against torch autograd in float64).

`namespace(task)` gives what a student's task file defines, as the grader's probes call it:
one class per name, and `train` built from the namespace's own names (the course contract), so
that a mistake variant (catalogue.py) can replace one method and keep the rest.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from handgrad.course import (
    chapter_attention,
    chapter_conv,
    chapter_gru,
    chapter_layernorm,
    chapter_optim,
)

EPS = 1e-7  # 3.2 clips probabilities to [EPS, 1 - EPS] before the log


class Neuron11:
    """1.1: y = Σᵢ xᵢ wᵢ + b."""

    def __init__(self, weights: torch.Tensor, bias: torch.Tensor):
        self.weights = weights
        self.bias = bias

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.sum(inputs * self.weights) + self.bias


class Linear12:
    """1.2 and 1.3: y = x Wᵀ + b, W of shape (out, in); x of shape (in,) or (N, in)."""

    def __init__(self, weights: torch.Tensor, biases: torch.Tensor):
        self.weights = weights
        self.biases = biases

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs @ self.weights.T + self.biases


class Linear14:
    """1.4: weights ~ randn(out, in) drawn first, then biases ~ randn(out)."""

    def __init__(self, in_features: int, out_features: int):
        self.in_features = in_features
        self.out_features = out_features
        self.weights = torch.randn(out_features, in_features)
        self.biases = torch.randn(out_features)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs @ self.weights.T + self.biases


class NeuralNet15:
    """1.5: Linear(4, 3) then Linear(3, 7)."""

    def __init__(self) -> None:
        self.input = Linear14(4, 3)
        self.output = Linear14(3, 7)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.output.forward(self.input.forward(inputs))


class ReLU21:
    """2.1: max(0, x)."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.clamp(inputs, min=0)


class Softmax22:
    """2.2: exp(z - max z) / Σ exp(z - max z) along dim (each row by default)."""

    def __init__(self, dim: int = -1):
        self.dim = dim

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        shifted = inputs - inputs.amax(dim=self.dim, keepdim=True)
        e = torch.exp(shifted)
        return e / e.sum(dim=self.dim, keepdim=True)


class ELU23:
    """2.3: x where x > 0, α(eˣ − 1) elsewhere."""

    def __init__(self, alpha: float = 1):
        self.alpha = alpha

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.where(inputs > 0, inputs, self.alpha * (torch.exp(inputs) - 1))


class MSELoss31:
    """3.1: mean of (y − ŷ)²."""

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return torch.mean((y_true - y_pred) ** 2)


class CrossEntropy32:
    """3.2: per row, −Σⱼ yⱼ log(clip(ŷⱼ, EPS, 1 − EPS))."""

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return -torch.sum(y_true * torch.log(y_pred.clamp(EPS, 1 - EPS)), dim=-1)


class MSELossL2_33:
    """3.3: Σ (y − ŷ)² + λ Σ w²."""

    def __init__(self, lambda_: float, weights: torch.Tensor):
        self.lambda_ = lambda_
        self.weights = weights

    def data_loss(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return torch.sum((y_true - y_pred) ** 2)

    def reg_loss(self) -> torch.Tensor:
        return self.lambda_ * torch.sum(self.weights**2)

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return self.data_loss(y_pred, y_true) + self.reg_loss()


class MSELoss41:
    """4.1.1: L = (ŷ − y)² for one example; dL/dŷ = 2(ŷ − y)."""

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return (y_pred - y_true) ** 2

    def backward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return 2 * (y_pred - y_true)


class Neuron41:
    """4.1.2: one example; dL/dw = g x, dL/db = g for g = dL/dŷ."""

    def __init__(self, in_features: int):
        self.in_features = in_features
        self.weights = torch.randn(in_features)
        self.bias = torch.randn(1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.sum(inputs * self.weights) + self.bias

    def backward(self, dvalue: torch.Tensor, inputs: torch.Tensor) -> tuple[Any, ...]:
        return dvalue * inputs, dvalue


class MSELoss42:
    """4.2.1: L = mean (ŷ − y)²; backward 2(ŷ − y) per example (the layer averages)."""

    def forward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return torch.mean((y_pred - y_true) ** 2)

    def backward(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        return 2 * (y_pred - y_true)


class Neuron42:
    """4.2.2: a batch; dL/dw = (1/N) Σₙ gₙ xₙ, dL/db = (1/N) Σₙ gₙ."""

    def __init__(self, in_features: int):
        self.in_features = in_features
        self.weights = torch.randn(1, in_features)
        self.bias = torch.randn(1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs @ self.weights.T + self.bias

    def backward(self, dvalue: torch.Tensor, inputs: torch.Tensor) -> tuple[Any, ...]:
        return torch.mean(dvalue * inputs, dim=0), torch.mean(dvalue)


class Linear43(Linear14):
    """4.3.1: dW = (1/N) gᵀ X of shape (out, in), db = (1/N) Σₙ gₙ of shape (out,)."""

    def backward(self, dvalue: torch.Tensor, inputs: torch.Tensor) -> tuple[Any, ...]:
        n = inputs.shape[0]
        return dvalue.T @ inputs / n, dvalue.sum(dim=0) / n


class ActivationReLU44:
    """4.4: forward max(0, x); backward keeps the gradient where x > 0, in self.dinputs."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.inputs = inputs
        return torch.clamp(inputs, min=0)

    def backward(self, dvalues: torch.Tensor) -> None:
        self.dinputs = torch.where(self.inputs > 0, dvalues, torch.zeros_like(dvalues))


class Linear44(Linear43):
    """4.4: backward also gives dL/dX = g W."""

    def backward(self, dvalue: torch.Tensor, inputs: torch.Tensor) -> tuple[Any, ...]:
        n = inputs.shape[0]
        return dvalue.T @ inputs / n, dvalue.sum(dim=0) / n, dvalue @ self.weights


class SoftmaxCrossEntropy45:
    """4.5: L = −(1/N) Σₙ log softmax(z)[n, yₙ]; dL/dz = (softmax(z) − onehot(y)) / N."""

    def forward(self, z: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        shifted = z - z.amax(dim=-1, keepdim=True)
        log_p = shifted - torch.log(torch.exp(shifted).sum(dim=-1, keepdim=True))
        return -log_p[torch.arange(z.shape[0]), y_true].mean()

    def backward(self, z: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        p = Softmax22().forward(z)
        onehot = torch.zeros_like(p)
        onehot[torch.arange(z.shape[0]), y_true] = 1
        return (p - onehot) / z.shape[0]


def train_sgd(ns: Any, X: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> Any:
    """4.1.3: one SGD step per example; an epoch's loss is the mean of the losses before each
    step."""
    y_true = y.unsqueeze(1)
    neuron, loss = ns.Neuron(X.shape[1]), ns.MSELoss()
    losses = []
    for _ in range(epochs):
        total = 0.0
        for x_example, y_example in zip(X, y_true):
            y_pred = neuron.forward(x_example)
            total += float(loss.forward(y_pred, y_example).sum())
            dw, db = neuron.backward(loss.backward(y_pred, y_example), x_example)
            neuron.weights = neuron.weights - lr * dw.reshape(neuron.weights.shape)
            neuron.bias = neuron.bias - lr * db.reshape(neuron.bias.shape)
        losses.append(total / len(X))
    return neuron, losses


def train_batch(ns: Any, X: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> Any:
    """4.2.3 and 4.3.2: one full-batch step per epoch on the model `ns.Neuron` or
    `ns.Linear(in, 1)`."""
    y_true = y.unsqueeze(1)
    model = ns.Neuron(X.shape[1]) if hasattr(ns, "Neuron") else ns.Linear(X.shape[1], 1)
    loss = ns.MSELoss()
    names = ("weights", "bias") if hasattr(model, "bias") else ("weights", "biases")
    losses = []
    for _ in range(epochs):
        y_pred = model.forward(X)
        losses.append(float(loss.forward(y_pred, y_true)))
        grads = model.backward(loss.backward(y_pred, y_true), X)
        for name, grad in zip(names, grads):
            value = getattr(model, name)
            setattr(model, name, value - lr * grad.reshape(value.shape))
    return model, losses


def train_net(ns: Any, X: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> Any:
    """4.4.3: Linear(in, 10) → ReLU → Linear(10, 1), MSE, one full-batch step per epoch."""
    fc1, relu1, fc2 = ns.Linear(X.shape[1], 10), ns.Activation_ReLU(), ns.Linear(10, 1)
    loss = ns.MSELoss()
    losses = []
    for _ in range(epochs):
        h = relu1.forward(fc1.forward(X))
        out = fc2.forward(h)
        losses.append(float(loss.forward(out, y)))
        dw2, db2, dh = fc2.backward(loss.backward(out, y), h)
        relu1.backward(dh)
        dw1, db1, _ = fc1.backward(relu1.dinputs, X)
        for layer, dw, db in ((fc1, dw1, db1), (fc2, dw2, db2)):
            layer.weights = layer.weights - lr * dw.reshape(layer.weights.shape)
            layer.biases = layer.biases - lr * db.reshape(layer.biases.shape)
    return (fc1, relu1, fc2), losses


CLASSES: dict[str, dict[str, Any]] = {
    "1.1": {"Neuron": Neuron11},
    "1.2": {"Linear": Linear12},
    "1.3": {"Linear": Linear12},
    "1.4": {"Linear": Linear14},
    "1.5": {"NeuralNet": NeuralNet15, "Linear": Linear14},
    "2.1": {"ReLU": ReLU21},
    "2.2": {"Softmax": Softmax22},
    "2.3": {"ELU": ELU23},
    "3.1": {"MSELoss": MSELoss31},
    "3.2": {"CategoricalCrossEntropyLoss": CrossEntropy32},
    "3.3": {"MSELossL2": MSELossL2_33},
    "4.1": {"MSELoss": MSELoss41, "Neuron": Neuron41},
    "4.2": {"MSELoss": MSELoss42, "Neuron": Neuron42},
    "4.3": {"MSELoss": MSELoss42, "Linear": Linear43},
    "4.4": {"MSELoss": MSELoss42, "Activation_ReLU": ActivationReLU44, "Linear": Linear44},
    "4.5": {"SoftmaxCrossEntropyLoss": SoftmaxCrossEntropy45},
    **chapter_optim.CLASSES,
    **chapter_conv.CLASSES,
    **chapter_gru.CLASSES,
    **chapter_attention.CLASSES,
    **chapter_layernorm.CLASSES,
}
TRAINS = {"4.1": train_sgd, "4.2": train_batch, "4.3": train_batch, "4.4": train_net}


def file_task(task: str) -> str:
    """The task whose file defines `task`: "4.2.3" -> "4.2"."""
    return ".".join(task.split(".")[:2])


def reference_class(task: str, name: str) -> Any:
    """The reference class `name` of the file of `task` (what a substitution puts in)."""
    return CLASSES[file_task(task)][name]


def namespace(task: str, **replace: Any) -> SimpleNamespace:
    """The reference file of `task` as a namespace, with `replace`'s names put in; its `train`
    uses the namespace's own classes."""
    ns = SimpleNamespace(**CLASSES[file_task(task)])
    for name, value in replace.items():
        setattr(ns, name, value)
    trainer = TRAINS.get(file_task(task))
    if trainer is not None and "train" not in replace:
        ns.train = lambda X, y, epochs, lr: trainer(ns, X, y, epochs, lr)
    return ns
