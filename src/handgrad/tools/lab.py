"""The seed lab ("building a neural network without ready-made solutions"), tasks 1.1 to 4.4.

Each ``task_X_Y()`` does the task with handgrad, does it again with PyTorch (torch.nn,
torch.nn.functional, autograd, torch.optim — the reference side, allowed here as in tests),
and returns a TaskResult holding both and whether they agree. ``run_all()`` runs every task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

import handgrad as hg
from handgrad.plot import fit_snapshots

# The lab's inputs.
VECTOR = torch.tensor([1.0, 2.0, 3.0, 4.0])
BATCH = torch.tensor([[1, 2, 3, 2.5], [2, 5, -1, 2], [-1.5, 2.7, 3.3, -0.8]])
WEIGHTS = torch.tensor(
    [[-0.2, 0.3, -0.5, 0.7], [0.5, -0.91, 0.26, -0.5], [-0.26, -0.27, 0.17, 0.87]]
)
BIASES = torch.tensor([3.14, 2.71, 7.2])
Y_INT = torch.tensor([2, 3, 4]).unsqueeze(1)  # integer targets of shape (3, 1), as the lab's


@dataclass
class TaskResult:
    """One task: rows of (what, handgrad's value, torch's value), whether all agree, a note."""

    task: str
    title: str
    rows: list[tuple[str, Any, Any]]
    agree: bool
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"── {self.task}  {self.title}"]
        for label, mine, ref in self.rows:
            lines.append(f"   {label}")
            lines.append("     handgrad: " + _fmt(mine).replace("\n", "\n               "))
            lines.append("     torch:    " + _fmt(ref).replace("\n", "\n               "))
        lines.append(f"   agree: {'yes' if self.agree else 'NO'}")
        if self.note:
            lines.append(f"   note: {self.note}")
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, Tensor):
        v = v.detach()
        return str(v.item()) if v.numel() == 1 else str(v)
    return str(v)


def _close(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    a, b = torch.as_tensor(a).detach().double(), torch.as_tensor(b).detach().double()
    return a.numel() == b.numel() and torch.allclose(a.reshape(-1), b.reshape(-1), rtol, atol)


def _result(
    task: str,
    title: str,
    rows: list[tuple[str, Any, Any]],
    note: str = "",
    atol: float = 1e-5,
    rtol: float = 1e-4,
    **extra: Any,
) -> TaskResult:
    agree = all(_close(m, r, atol, rtol) for _, m, r in rows)
    return TaskResult(task, title, rows, agree, note, extra)


def _torch_linear(weight: Tensor, bias: Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    layer.weight = nn.Parameter(weight.clone())
    layer.bias = nn.Parameter(bias.clone())
    return layer


# ---- 1. neurons and fully connected layers ---------------------------------------------------
def task_1_1() -> TaskResult:
    """A neuron with given weights and bias on the vector [1, 2, 3, 4]."""
    w = torch.tensor([-0.2, 0.3, -0.5, 0.7])
    neuron = hg.Neuron.from_weights(w, torch.tensor(3.14))
    return _result(
        "1.1",
        "Neuron, given weights, bias 3.14",
        [("neuron(inputs)  vs  F.linear", neuron(VECTOR), F.linear(VECTOR, w, torch.tensor(3.14)))],
    )


def task_1_2() -> TaskResult:
    """A layer of 3 neurons with given weights and biases on a vector."""
    layer = hg.Linear.from_weights(WEIGHTS, BIASES)
    return _result(
        "1.2",
        "Linear with given weights, one vector",
        [("layer(inputs)  vs  F.linear", layer(VECTOR), F.linear(VECTOR, WEIGHTS, BIASES))],
    )


def task_1_3() -> TaskResult:
    """The same layer on a 3×4 batch: output (batch_size, n_neurons)."""
    layer = hg.Linear.from_weights(WEIGHTS, BIASES)
    return _result(
        "1.3",
        "Linear with given weights, a 3×4 batch",
        [("layer(batch)  vs  F.linear", layer(BATCH), F.linear(BATCH, WEIGHTS, BIASES))],
    )


def task_1_4() -> TaskResult:
    """Linear(4, 3) with weights randn(3, 4) then biases randn(3) after manual_seed(0)."""
    torch.manual_seed(0)
    layer = hg.Linear(4, 3, init="normal")
    torch.manual_seed(0)
    ref = _torch_linear(torch.randn(3, 4), torch.randn(3))
    return _result(
        "1.4",
        "Linear(4, 3), normal init, manual_seed(0)",
        [("layer(batch)  vs  nn.Linear with the same draws", layer(BATCH), ref(BATCH))],
    )


def task_1_5() -> TaskResult:
    """Linear(4, 3) then Linear(3, 7): a (3, 7) output."""
    torch.manual_seed(0)
    net = hg.Sequential(hg.Linear(4, 3, init="normal"), hg.Linear(3, 7, init="normal"))
    torch.manual_seed(0)
    draws = [torch.randn(3, 4), torch.randn(3), torch.randn(7, 3), torch.randn(7)]
    ref = nn.Sequential(_torch_linear(*draws[:2]), _torch_linear(*draws[2:]))
    return _result(
        "1.5",
        "Linear(4, 3) -> Linear(3, 7), manual_seed(0)",
        [("net(batch)  vs  nn.Sequential", net(BATCH), ref(BATCH))],
    )


# ---- 2. activations -------------------------------------------------------------------------
def _randn_4x3() -> Tensor:
    torch.manual_seed(0)
    return torch.randn(4, 3)


def task_2_1() -> TaskResult:
    """ReLU on randn(4, 3) after manual_seed(0)."""
    x = _randn_4x3()
    return _result("2.1", "ReLU", [("ReLU  vs  nn.ReLU", hg.ReLU()(x), nn.ReLU()(x))])


def task_2_2() -> TaskResult:
    """Softmax over each row (dim=1): rows are one classifier's scores for 4 examples."""
    x = _randn_4x3()
    return _result(
        "2.2",
        "Softmax(dim=1)",
        [("Softmax  vs  nn.Softmax", hg.Softmax(dim=1)(x), nn.Softmax(dim=1)(x))],
    )


def task_2_3() -> TaskResult:
    """ELU with alpha = 1.409."""
    x = _randn_4x3()
    return _result(
        "2.3",
        "ELU(alpha=1.409)",
        [("ELU  vs  nn.ELU", hg.ELU(alpha=1.409)(x), nn.ELU(alpha=1.409)(x))],
    )


# ---- 3. losses ------------------------------------------------------------------------------
def _seeded_layer(out_features: int) -> tuple[hg.Linear, nn.Linear]:
    torch.manual_seed(0)
    mine = hg.Linear(4, out_features, init="normal")
    return mine, _torch_linear(mine.weight, mine.bias)


def task_3_1() -> TaskResult:
    """MSE of Linear(4, 1) on the batch against y = [2, 3, 4]."""
    mine, ref = _seeded_layer(1)
    return _result(
        "3.1",
        "MSELoss of Linear(4, 1)",
        [
            (
                "MSELoss  vs  nn.MSELoss",
                hg.MSELoss()(mine(BATCH), Y_INT),
                nn.MSELoss()(ref(BATCH), Y_INT.float()),
            )
        ],
    )


def task_3_2() -> TaskResult:
    """Categorical cross-entropy per row of softmax(Linear(4, 3)), softmax over dim=0 as the lab."""
    mine, ref = _seeded_layer(3)
    target = torch.tensor([1.0, 0.0, 0.0]).expand(3, 3)  # y = [1, 0, 0] for every row
    p = hg.Softmax(dim=0)(mine(BATCH))
    loss = hg.CategoricalCrossEntropy(reduction="none")(p, target)
    ref_loss = -(target * torch.log(F.softmax(ref(BATCH), dim=0))).sum(dim=1)
    rows_loss = hg.CategoricalCrossEntropy(reduction="none")(hg.Softmax(dim=1)(mine(BATCH)), target)
    note = (
        "the lab's Softmax() defaults to dim=0, normalising each class down the batch; "
        "per-example class probabilities need dim=1 (each row sums to 1), which gives "
        f"losses {[round(v, 4) for v in rows_loss.tolist()]}"
    )
    return _result(
        "3.2",
        "CategoricalCrossEntropy, softmax over dim=0, per-row loss",
        [("CCE(reduction='none')  vs  -(y * log F.softmax(z, 0)).sum(1)", loss, ref_loss)],
        note=note,
        atol=1e-6,
    )


def task_3_3() -> TaskResult:
    """Sum of squared errors plus L2 = 1.409 · Σw² (weights only) for Linear(4, 1)."""
    mine, ref = _seeded_layer(1)
    value = hg.MSELoss(reduction="sum")(mine(BATCH), Y_INT) + hg.L2(1.409, [mine.weight]).penalty()
    ref_value = (
        nn.MSELoss(reduction="sum")(ref(BATCH), Y_INT.float()) + 1.409 * (ref.weight**2).sum()
    )
    return _result(
        "3.3",
        "MSELoss(sum) + L2(1.409, weights)",
        [("loss + penalty  vs  nn.MSELoss + 1.409 * (w ** 2).sum()", value, ref_value)],
    )


# ---- 4. backpropagation ---------------------------------------------------------------------
def regression_data() -> tuple[Tensor, Tensor, Tensor]:
    """make_regression(n_features=4, n_informative=4, coef=True, bias=0.5, random_state=0)."""
    from sklearn.datasets import make_regression

    X, y, coef = make_regression(n_features=4, n_informative=4, coef=True, bias=0.5, random_state=0)
    return (
        torch.tensor(X, dtype=torch.float32),
        torch.tensor(y, dtype=torch.float32).unsqueeze(1),
        torch.tensor(coef, dtype=torch.float32),
    )


def _torch_sgd_trainer(
    weight: Tensor, bias: Tensor, lr: float
) -> tuple[nn.Linear, Callable[[Tensor, Tensor], Tensor]]:
    """nn.Linear(4, 1) from given weights, stepped by autograd + torch.optim.SGD on MSE."""
    layer = _torch_linear(weight.reshape(1, -1), bias.reshape(1))
    opt = torch.optim.SGD(layer.parameters(), lr=lr)

    def step(x: Tensor, y: Tensor) -> Tensor:
        loss = F.mse_loss(layer(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.detach()

    return layer, step


def task_4_1() -> TaskResult:
    """One neuron, SGD with one example per step, lr 0.1, 100 epochs."""
    X, Y, coef = regression_data()
    torch.manual_seed(0)
    neuron, mse = hg.Neuron(4), hg.MSELoss()
    opt = hg.optim.SGD(neuron.parameters(), lr=0.1)
    ref, ref_step = _torch_sgd_trainer(neuron.weight, neuron.bias, lr=0.1)
    first: dict[str, Tensor] = {}
    for _ in range(100):
        for x, y in zip(X, Y):
            loss = mse(neuron(x), y)  # x: (4,), y: (1,)
            opt.zero_grad()
            neuron.backward(mse.backward())
            opt.step()
            ref_loss = ref_step(x.unsqueeze(0), y.unsqueeze(0))
            if not first:
                first = {
                    "loss": loss,
                    "w": neuron.weight.clone(),
                    "b": neuron.bias.clone(),
                    "ref_loss": ref_loss,
                    "ref_w": ref.weight.detach().clone()[0],
                    "ref_b": ref.bias.detach().clone(),
                }
    return _result(
        "4.1",
        "Neuron, SGD one example per step, lr 0.1, 100 epochs",
        [
            ("first step: loss", first["loss"], first["ref_loss"]),
            ("first step: weights", first["w"], first["ref_w"]),
            ("first step: bias", first["b"], first["ref_b"]),
            ("end: weights  vs  nn.Linear + optim.SGD", neuron.weight, ref.weight[0]),
            ("end: weights  vs  make_regression's true coef", neuron.weight, coef),
        ],
        atol=1e-3,
    )


def _full_batch(model: hg.Module, task: str, title: str, note: str = "") -> TaskResult:
    """Full-batch gradient descent on MSE, lr 0.1, 100 epochs, beside nn.Linear + optim.SGD."""
    X, Y, coef = regression_data()
    params = model.parameters()
    ref, ref_step = _torch_sgd_trainer(params[0], params[1], lr=0.1)
    mse, opt = hg.MSELoss(), hg.optim.SGD(params, lr=0.1)
    log: dict[int, tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]] = {}
    for epoch in range(1, 101):
        loss = mse(model(X), Y)
        opt.zero_grad()
        model.backward(mse.backward())
        opt.step()
        ref_loss = ref_step(X, Y)
        if epoch % 10 == 0:
            log[epoch] = (
                loss,
                params[0].clone(),
                params[1].clone(),
                ref_loss,
                ref.weight.detach().clone(),
                ref.bias.detach().clone(),
            )
    loss10, w10, b10, rloss10, rw10, rb10 = log[10]
    rows = [
        ("epoch 10: weights", w10, rw10),
        ("epoch 10: bias", b10, rb10),
        ("epoch 10: loss", loss10, rloss10),
    ]
    rows += [(f"epoch {e}: loss", log[e][0], log[e][3]) for e in (20, 30, 40)]
    rows += [("end: weights  vs  make_regression's true coef", params[0], coef)]
    return _result(task, title, rows, note=note, atol=1e-3)


def task_4_2() -> TaskResult:
    """The same neuron, full-batch gradient descent on mean squared error."""
    torch.manual_seed(0)
    return _full_batch(hg.Neuron(4), "4.2", "Neuron, full-batch gradient descent, lr 0.1")


def task_4_3() -> TaskResult:
    """Linear(4, 1) with its hand-written backward, the same training."""
    torch.manual_seed(0)
    note = (
        "the lab's Linear.backward returned (mean(dvalue * inputs, 0), mean(dvalue)), right "
        "only for one output neuron; in general dL/dW = dyᵀx (out, in), dL/db = Σₙ dy (out,), "
        "and backward must return dL/dx = dy W for the layer below (docs/math.md#linear)"
    )
    return _full_batch(
        hg.Linear(4, 1, init="normal"), "4.3", "Linear(4, 1), hand-written backward", note=note
    )


def task_4_4(
    figure: str | Path | None = "runs/lab/fit_4_4.png", epochs: int = 2001, every: int = 200
) -> TaskResult:
    """Linear(1, 10) -> ReLU -> Linear(10, 1), MSE, lr 0.02, full batch, trained by hand.

    Torch autograd trains a copy from the same initial weights; the loss is compared every
    `every` epochs and the fit at those epochs is drawn to `figure` (None: no figure).
    """
    X, Y = hg.datasets.parabola()  # x = linspace(-1, 1, 100), y = x² + 0.2·rand, seed 0
    torch.manual_seed(0)
    net = hg.Sequential(hg.Linear(1, 10, init="normal"), hg.ReLU(), hg.Linear(10, 1, init="normal"))
    ref = nn.Sequential(nn.Linear(1, 10), nn.ReLU(), nn.Linear(10, 1))
    ref.load_state_dict(net.state_dict())  # same keys, same initial weights
    mse, opt = hg.MSELoss(), hg.optim.SGD(net.parameters(), lr=0.02)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.02)
    logged, snapshots, losses, ref_losses = [], [], [], []
    for epoch in range(epochs):
        out = net(X)
        loss = mse(out, Y)
        ref_loss = F.mse_loss(ref(X), Y)
        if epoch % every == 0:
            logged.append(epoch)
            snapshots.append(out.clone())
            losses.append(loss.item())
            ref_losses.append(ref_loss.item())
        opt.zero_grad()
        net.backward(mse.backward())  # loss > fc2 > relu > fc1
        opt.step()
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
    path = None
    if figure is not None:
        path = fit_snapshots(X, Y, snapshots, logged, losses, path=figure)
    rows = [
        (f"epoch {e}: mean loss", torch.tensor(m), torch.tensor(r))
        for e, m, r in zip(logged, losses, ref_losses)
    ]
    note = f"final loss {losses[-1]:.5f} (goal < 0.01)"
    if path is not None:
        note += f"; figure of the {len(snapshots)} fits: {path}"
    return _result(
        "4.4",
        "Linear(1, 10) -> ReLU -> Linear(10, 1), lr 0.02, trained by hand",
        rows,
        note=note,
        atol=1e-4,
        rtol=0.0,
        figure=path,
        losses=losses,
        ref_losses=ref_losses,
        epochs=logged,
    )


TASKS: dict[str, Callable[[], TaskResult]] = {
    "1.1": task_1_1,
    "1.2": task_1_2,
    "1.3": task_1_3,
    "1.4": task_1_4,
    "1.5": task_1_5,
    "2.1": task_2_1,
    "2.2": task_2_2,
    "2.3": task_2_3,
    "3.1": task_3_1,
    "3.2": task_3_2,
    "3.3": task_3_3,
    "4.1": task_4_1,
    "4.2": task_4_2,
    "4.3": task_4_3,
    "4.4": task_4_4,
}


def run_all(figure: str | Path | None = "runs/lab/fit_4_4.png") -> list[TaskResult]:
    """Every task in order; 4.4 writes its figure to `figure`."""
    return [task_4_4(figure) if name == "4.4" else fn() for name, fn in TASKS.items()]
