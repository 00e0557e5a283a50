"""The seed lab's section 4, backpropagation: tasks 4.1 to 4.4, each trained with handgrad
and again with torch (autograd, torch.optim: the reference side), step for step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

import handgrad as hg
from handgrad.plot import fit_snapshots
from handgrad.tools.lab_result import TaskResult, result, torch_linear


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
    layer = torch_linear(weight.reshape(1, -1), bias.reshape(1))
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
    return result(
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
    return result(task, title, rows, note=note, atol=1e-3)


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
    return result(
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
