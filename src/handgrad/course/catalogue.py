"""The mistake catalogue: the classic wrong variants of each task, as data.

One entry per mistake: a stable id, the (sub-)task, the class whose methods it replaces (or
None for the task's `train`), the wrong methods as small functions, and a message in ru and en.
The grader runs each variant on the same hidden inputs as the student's code (probes.py); a
wrong answer that equals a variant's is named by that variant's id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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
from handgrad.course import reference as ref
from handgrad.errors import InvalidKeyError


@dataclass(frozen=True)
class Mistake:
    id: str
    task: str
    cls: str | None  # the class whose methods are replaced; None: the task's train
    methods: dict[str, Callable[..., Any]] = field(repr=False)
    ru: str
    en: str

    def namespace(self) -> SimpleNamespace:
        """The reference file of the task with this mistake in it."""
        if self.cls is None:
            trainer = self.methods["train"]
            ns = ref.namespace(self.task)
            ns.train = lambda X, y, epochs, lr: trainer(ns, X, y, epochs, lr)
            return ns
        base = ref.reference_class(self.task, self.cls)
        return ref.namespace(self.task, **{self.cls: type(self.cls, (base,), dict(self.methods))})


def _softmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def _init_in_out(self: Any, in_features: int, out_features: int) -> None:
    self.in_features, self.out_features = in_features, out_features
    self.weights = torch.randn(in_features, out_features)
    self.biases = torch.randn(out_features)


def _init_biases_first(self: Any, in_features: int, out_features: int) -> None:
    self.in_features, self.out_features = in_features, out_features
    self.biases = torch.randn(out_features)
    self.weights = torch.randn(out_features, in_features)


def _seed_softmax_init(self: Any, dim: int = 0) -> None:
    self.dim = dim


def _relu_leaks(self: Any, dvalues: torch.Tensor) -> None:
    self.dinputs = dvalues.clone()


def _ascent(trainer: Callable[..., Any]) -> Callable[..., Any]:
    return lambda ns, X, y, epochs, lr: trainer(ns, X, y, epochs, -lr)


def _clipped_log(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p.clamp(ref.EPS, 1 - ref.EPS))


def _onehot_like(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    onehot = torch.zeros_like(z)
    onehot[torch.arange(z.shape[0]), y] = 1
    return onehot


M = Mistake
MISTAKES: tuple[Mistake, ...] = (
    M(
        "neuron-no-bias",
        "1.1",
        "Neuron",
        {"forward": lambda s, x: torch.sum(x * s.weights)},
        "нейрон без смещения: забыто + bias",
        "the neuron has no bias: + bias is missing",
    ),
    M(
        "neuron-mean-not-sum",
        "1.1",
        "Neuron",
        {"forward": lambda s, x: torch.mean(x * s.weights) + s.bias},
        "среднее вместо суммы произведений xᵢwᵢ",
        "a mean instead of the sum of the products xᵢwᵢ",
    ),
    M(
        "layer-no-transpose",
        "1.2",
        "Linear",
        {"forward": lambda s, x: x @ s.weights + s.biases},
        "нет транспонирования: x·W вместо x·Wᵀ (W формы (n_neurons, n_features))",
        "no transpose: x W instead of x Wᵀ (W has shape (n_neurons, n_features))",
    ),
    M(
        "layer-bias-summed",
        "1.2",
        "Linear",
        {"forward": lambda s, x: x @ s.weights.T + s.biases.sum()},
        "смещения сложены в одно число: каждому нейрону нужно своё",
        "the biases are summed into one number: each neuron has its own",
    ),
    M(
        "batch-no-transpose",
        "1.3",
        "Linear",
        {"forward": lambda s, x: x @ s.weights + s.biases},
        "нет транспонирования: X·W вместо X·Wᵀ",
        "no transpose: X W instead of X Wᵀ",
    ),
    M(
        "batch-bias-summed",
        "1.3",
        "Linear",
        {"forward": lambda s, x: x @ s.weights.T + s.biases.sum()},
        "смещения сложены в одно число",
        "the biases are summed into one number",
    ),
    M(
        "batch-output-transposed",
        "1.3",
        "Linear",
        {"forward": lambda s, x: s.weights @ x.T + s.biases.unsqueeze(-1)},
        "результат транспонирован: W·Xᵀ даёт (n_neurons, batch_size), нужно (batch_size, n_neurons)",
        "the result is transposed: W Xᵀ gives (n_neurons, batch_size), (batch_size, n_neurons) is wanted",
    ),
    M(
        "init-weights-in-out",
        "1.4",
        "Linear",
        {"__init__": _init_in_out, "forward": lambda s, x: x @ s.weights + s.biases},
        "веса созданы формы (in_features, out_features): нужна (out_features, in_features), как в nn.Linear",
        "the weights are drawn as (in_features, out_features): (out_features, in_features) is wanted, as in nn.Linear",
    ),
    M(
        "init-biases-first",
        "1.4",
        "Linear",
        {"__init__": _init_biases_first},
        "смещения созданы раньше весов: после manual_seed числа не совпадут",
        "the biases are drawn before the weights: after manual_seed the numbers differ",
    ),
    M(
        "relu-min",
        "2.1",
        "ReLU",
        {"forward": lambda s, x: torch.minimum(x, torch.zeros_like(x))},
        "ReLU как min(0, x): нужен max(0, x)",
        "ReLU as min(0, x): max(0, x) is wanted",
    ),
    M(
        "softmax-dim0-default",
        "2.2",
        "Softmax",
        {"__init__": _seed_softmax_init},
        "Softmax() по умолчанию нормирует по dim=0 (по столбцам батча), как в лабораторной: нужна каждая строка (dim=-1)",
        "Softmax() defaults to dim=0 (the columns of the batch), as in the lab: each row (dim=-1) is wanted",
    ),
    M(
        "softmax-wrong-dim",
        "2.2",
        "Softmax",
        {"forward": lambda s, x: _softmax(x, 0 if s.dim in (1, -1) else 1)},
        "softmax по другой оси: сумма должна идти по dim",
        "softmax over the other dimension: the sum must run along dim",
    ),
    M(
        "softmax-no-max-shift",
        "2.2",
        "Softmax",
        {"forward": lambda s, x: torch.exp(x) / torch.exp(x).sum(dim=s.dim, keepdim=True)},
        "exp без вычитания максимума: при логитах ±1000 получается nan",
        "exp without subtracting the maximum: logits of ±1000 give nan",
    ),
    M(
        "softmax-over-all",
        "2.2",
        "Softmax",
        {"forward": lambda s, x: torch.exp(x) / torch.exp(x).sum()},
        "нормировка по всей матрице, а не по строке",
        "normalised over the whole matrix, not each row",
    ),
    M(
        "elu-alpha-positive",
        "2.3",
        "ELU",
        {"forward": lambda s, x: torch.where(x > 0, s.alpha * x, s.alpha * (torch.exp(x) - 1))},
        "α умножает и положительную часть: при x > 0 ELU(x) = x",
        "α also scales the positive side: ELU(x) = x for x > 0",
    ),
    M(
        "elu-no-minus-one",
        "2.3",
        "ELU",
        {"forward": lambda s, x: torch.where(x > 0, x, s.alpha * torch.exp(x))},
        "α·eˣ без −1: нужно α·(eˣ − 1)",
        "α·eˣ without the −1: α·(eˣ − 1) is wanted",
    ),
    M(
        "mse-sum",
        "3.1",
        "MSELoss",
        {"forward": lambda s, p, t: torch.sum((t - p) ** 2)},
        "сумма вместо среднего: MSE делит на n",
        "a sum instead of the mean: MSE divides by n",
    ),
    M(
        "mse-abs",
        "3.1",
        "MSELoss",
        {"forward": lambda s, p, t: torch.mean(torch.abs(t - p))},
        "|ошибка| вместо её квадрата (это MAE)",
        "|error| instead of its square (that is MAE)",
    ),
    M(
        "mse-root",
        "3.1",
        "MSELoss",
        {"forward": lambda s, p, t: torch.sqrt(torch.mean((t - p) ** 2))},
        "взят корень (это RMSE)",
        "a square root is taken (that is RMSE)",
    ),
    M(
        "ce-no-minus",
        "3.2",
        "CategoricalCrossEntropyLoss",
        {"forward": lambda s, p, y: torch.sum(y * _clipped_log(p), dim=-1)},
        "нет минуса: log(p) ≤ 0, потеря должна быть ≥ 0",
        "no minus sign: log(p) ≤ 0, the loss must be ≥ 0",
    ),
    M(
        "ce-log-unclipped",
        "3.2",
        "CategoricalCrossEntropyLoss",
        {"forward": lambda s, p, y: -torch.sum(y * torch.log(p), dim=-1)},
        "log(0) без ограничения: вероятность 0 на другом классе даёт 0·(−inf) = nan; ограничьте p отрезком [1e-7, 1 − 1e-7]",
        "log(0) unclipped: a probability of 0 on another class gives 0·(−inf) = nan; clip p to [1e-7, 1 − 1e-7]",
    ),
    M(
        "ce-mean-not-per-row",
        "3.2",
        "CategoricalCrossEntropyLoss",
        {"forward": lambda s, p, y: -torch.sum(y * _clipped_log(p), dim=-1).mean()},
        "одно среднее число вместо потери для каждой строки",
        "one mean instead of a loss per row",
    ),
    M(
        "l2-no-lambda",
        "3.3",
        "MSELossL2",
        {"reg_loss": lambda s: torch.sum(s.weights**2)},
        "регуляризация без λ",
        "the regularisation term lacks λ",
    ),
    M(
        "l2-abs-weights",
        "3.3",
        "MSELossL2",
        {"reg_loss": lambda s: s.lambda_ * torch.sum(torch.abs(s.weights))},
        "|w| вместо w² (это L1)",
        "|w| instead of w² (that is L1)",
    ),
    M(
        "l2-data-mean",
        "3.3",
        "MSELossL2",
        {"data_loss": lambda s, p, t: torch.mean((t - p) ** 2)},
        "слагаемое данных — среднее, а в задаче сумма квадратов ошибок",
        "the data term is a mean; the task sums the squared errors",
    ),
    M(
        "mse-backward-no-2",
        "4.1.1",
        "MSELoss",
        {"backward": lambda s, p, t: p - t},
        "производная MSE без множителя 2: d(ŷ − y)²/dŷ = 2(ŷ − y)",
        "the MSE derivative lacks its factor 2: d(ŷ − y)²/dŷ = 2(ŷ − y)",
    ),
    M(
        "mse-backward-sign",
        "4.1.1",
        "MSELoss",
        {"backward": lambda s, p, t: 2 * (t - p)},
        "знак производной перевёрнут: 2(ŷ − y), а не 2(y − ŷ)",
        "the derivative's sign is flipped: 2(ŷ − y), not 2(y − ŷ)",
    ),
    M(
        "neuron-dw-without-input",
        "4.1.2",
        "Neuron",
        {"backward": lambda s, g, x: (g * torch.ones_like(x), g)},
        "dL/dw = dL/dŷ · x: забыт множитель x",
        "dL/dw = dL/dŷ · x: the factor x is missing",
    ),
    M(
        "sgd-gradient-ascent",
        "4.1.3",
        None,
        {"train": _ascent(ref.train_sgd)},
        "шаг идёт вверх по градиенту: w ← w − lr·dw",
        "the step climbs the gradient: w ← w − lr·dw",
    ),
    M(
        "mse-backward-no-2",
        "4.2.1",
        "MSELoss",
        {"backward": lambda s, p, t: p - t},
        "производная MSE без множителя 2",
        "the MSE derivative lacks its factor 2",
    ),
    M(
        "neuron-missing-1-over-n",
        "4.2.2",
        "Neuron",
        {"backward": lambda s, g, x: (torch.sum(g * x, dim=0), torch.sum(g))},
        "градиент суммируется по батчу, а не усредняется: не хватает 1/N",
        "the gradient is summed over the batch, not averaged: the 1/N is missing",
    ),
    M(
        "neuron-db-not-summed",
        "4.2.2",
        "Neuron",
        {"backward": lambda s, g, x: (torch.mean(g * x, dim=0), g / x.shape[0])},
        "db не просуммирован по батчу",
        "db is not summed over the batch",
    ),
    M(
        "gd-gradient-ascent",
        "4.2.3",
        None,
        {"train": _ascent(ref.train_batch)},
        "шаг идёт вверх по градиенту: w ← w − lr·dw",
        "the step climbs the gradient: w ← w − lr·dw",
    ),
    M(
        "linear-backward-one-output",
        "4.3.1",
        "Linear",
        {"backward": lambda s, g, x: (torch.mean(g * x, dim=0), torch.mean(g))},
        "backward из лабораторной работает только для одного нейрона: dW = (1/N)·dvalueᵀ·X, db = среднее по батчу для каждого нейрона",
        "the lab's backward handles one output only: dW = (1/N) dvalueᵀ X, db the batch mean for each neuron",
    ),
    M(
        "linear-dw-not-transposed",
        "4.3.1",
        "Linear",
        {"backward": lambda s, g, x: (x.T @ g / x.shape[0], g.sum(dim=0) / x.shape[0])},
        "dW не транспонирован: Xᵀ·dvalue имеет форму (in, out), нужна (out, in)",
        "dW is not transposed: Xᵀ dvalue has shape (in, out), (out, in) is wanted",
    ),
    M(
        "linear-db-not-summed",
        "4.3.1",
        "Linear",
        {"backward": lambda s, g, x: (g.T @ x / x.shape[0], g / x.shape[0])},
        "db не просуммирован по батчу: нужна форма (out_features,)",
        "db is not summed over the batch: shape (out_features,) is wanted",
    ),
    M(
        "linear-missing-1-over-n",
        "4.3.1",
        "Linear",
        {"backward": lambda s, g, x: (g.T @ x, g.sum(dim=0))},
        "градиент суммируется по батчу, а не усредняется: не хватает 1/N",
        "the gradient is summed over the batch, not averaged: the 1/N is missing",
    ),
    M(
        "relu-backward-leaks",
        "4.4.1",
        "Activation_ReLU",
        {"backward": _relu_leaks},
        "градиент проходит и там, где вход ≤ 0: там производная ReLU равна 0",
        "the gradient passes where the input is ≤ 0: ReLU's derivative is 0 there",
    ),
    M(
        "linear-missing-1-over-n",
        "4.4.2",
        "Linear",
        {"backward": lambda s, g, x: (g.T @ x, g.sum(dim=0), g @ s.weights)},
        "градиент суммируется по батчу, а не усредняется: не хватает 1/N",
        "the gradient is summed over the batch, not averaged: the 1/N is missing",
    ),
    M(
        "linear-db-not-summed",
        "4.4.2",
        "Linear",
        {"backward": lambda s, g, x: (g.T @ x / x.shape[0], g / x.shape[0], g @ s.weights)},
        "db не просуммирован по батчу",
        "db is not summed over the batch",
    ),
    M(
        "softmax-ce-missing-1-over-n",
        "4.5",
        "SoftmaxCrossEntropyLoss",
        {"backward": lambda s, z, y: _softmax(z, -1) - _onehot_like(z, y)},
        "dL/dz без деления на N: потеря — среднее по батчу",
        "dL/dz is not divided by N: the loss is a batch mean",
    ),
    M(
        "softmax-ce-no-max-shift",
        "4.5",
        "SoftmaxCrossEntropyLoss",
        {
            "forward": lambda s, z, y: (
                -torch.log(
                    (torch.exp(z) / torch.exp(z).sum(-1, keepdim=True))[torch.arange(z.shape[0]), y]
                ).mean()
            )
        },
        "exp без вычитания максимума: при логитах ±1000 получается nan или inf",
        "exp without subtracting the maximum: logits of ±1000 give nan or inf",
    ),
    *(M(*row) for row in chapter_optim.MISTAKES),
    *(M(*m) for m in chapter_conv.MISTAKES + chapter_gru.MISTAKES + chapter_attention.MISTAKES),
    *(M(*row) for row in chapter_layernorm.MISTAKES),
)

READY_MADE = Mistake(
    "ready-made",
    "",
    None,
    {},
    "готовое решение: torch.nn, torch.nn.functional, torch.softmax, .backward() или autograd в теле задачи — лабораторная строится без них",
    "ready-made code: torch.nn, torch.nn.functional, torch.softmax, .backward() or autograd in a task body; the lab builds without them",
)


def for_task(task: str) -> list[Mistake]:
    """The catalogued mistakes of one (sub-)task."""
    return [m for m in MISTAKES if m.task == task]


def find(task: str, mistake_id: str) -> Mistake:
    """The entry of `mistake_id` at `task`."""
    for m in for_task(task):
        if m.id == mistake_id:
            return m
    raise InvalidKeyError(f"catalogue: task {task} has no mistake {mistake_id!r}")


def plant(module_globals: dict[str, Any], task: str, mistake_id: str) -> None:
    """Puts one catalogued mistake into a module's globals (the tests' planted submissions)."""
    m = find(task, mistake_id)
    if m.cls is None:
        trainer = m.methods["train"]
        module_globals["train"] = lambda X, y, epochs, lr: trainer(
            SimpleNamespace(**module_globals), X, y, epochs, lr
        )
        return
    base = module_globals[m.cls]
    module_globals[m.cls] = type(m.cls, (base,), dict(m.methods))
