"""The seed lab ("building a neural network without ready-made solutions"), tasks 1.1 to 4.4.

Each ``task_X_Y()`` does the task with handgrad, does it again with PyTorch (torch.nn,
torch.nn.functional, autograd, torch.optim — the reference side, allowed here as in tests),
and returns a TaskResult holding both and whether they agree. ``run_all()`` runs every task.
Sections 1 to 3 (neurons, activations, losses) are here; section 4 (backpropagation) is in
lab_backprop.py, and the TaskResult and its comparison in lab_result.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

import handgrad as hg
from handgrad.tools.lab_backprop import regression_data as regression_data
from handgrad.tools.lab_backprop import task_4_1, task_4_2, task_4_3, task_4_4
from handgrad.tools.lab_result import TaskResult, result, torch_linear

# The lab's inputs.
VECTOR = torch.tensor([1.0, 2.0, 3.0, 4.0])
BATCH = torch.tensor([[1, 2, 3, 2.5], [2, 5, -1, 2], [-1.5, 2.7, 3.3, -0.8]])
WEIGHTS = torch.tensor(
    [[-0.2, 0.3, -0.5, 0.7], [0.5, -0.91, 0.26, -0.5], [-0.26, -0.27, 0.17, 0.87]]
)
BIASES = torch.tensor([3.14, 2.71, 7.2])
Y_INT = torch.tensor([2, 3, 4]).unsqueeze(1)  # integer targets of shape (3, 1), as the lab's


# ---- 1. neurons and fully connected layers ---------------------------------------------------
def task_1_1() -> TaskResult:
    """A neuron with given weights and bias on the vector [1, 2, 3, 4]."""
    w = torch.tensor([-0.2, 0.3, -0.5, 0.7])
    neuron = hg.Neuron.from_weights(w, torch.tensor(3.14))
    return result(
        "1.1",
        "Neuron, given weights, bias 3.14",
        [("neuron(inputs)  vs  F.linear", neuron(VECTOR), F.linear(VECTOR, w, torch.tensor(3.14)))],
    )


def task_1_2() -> TaskResult:
    """A layer of 3 neurons with given weights and biases on a vector."""
    layer = hg.Linear.from_weights(WEIGHTS, BIASES)
    return result(
        "1.2",
        "Linear with given weights, one vector",
        [("layer(inputs)  vs  F.linear", layer(VECTOR), F.linear(VECTOR, WEIGHTS, BIASES))],
    )


def task_1_3() -> TaskResult:
    """The same layer on a 3×4 batch: output (batch_size, n_neurons)."""
    layer = hg.Linear.from_weights(WEIGHTS, BIASES)
    return result(
        "1.3",
        "Linear with given weights, a 3×4 batch",
        [("layer(batch)  vs  F.linear", layer(BATCH), F.linear(BATCH, WEIGHTS, BIASES))],
    )


def task_1_4() -> TaskResult:
    """Linear(4, 3) with weights randn(3, 4) then biases randn(3) after manual_seed(0)."""
    torch.manual_seed(0)
    layer = hg.Linear(4, 3, init="normal")
    torch.manual_seed(0)
    ref = torch_linear(torch.randn(3, 4), torch.randn(3))
    return result(
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
    ref = nn.Sequential(torch_linear(*draws[:2]), torch_linear(*draws[2:]))
    return result(
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
    return result("2.1", "ReLU", [("ReLU  vs  nn.ReLU", hg.ReLU()(x), nn.ReLU()(x))])


def task_2_2() -> TaskResult:
    """Softmax over each row (dim=1): rows are one classifier's scores for 4 examples."""
    x = _randn_4x3()
    return result(
        "2.2",
        "Softmax(dim=1)",
        [("Softmax  vs  nn.Softmax", hg.Softmax(dim=1)(x), nn.Softmax(dim=1)(x))],
    )


def task_2_3() -> TaskResult:
    """ELU with alpha = 1.409."""
    x = _randn_4x3()
    return result(
        "2.3",
        "ELU(alpha=1.409)",
        [("ELU  vs  nn.ELU", hg.ELU(alpha=1.409)(x), nn.ELU(alpha=1.409)(x))],
    )


# ---- 3. losses ------------------------------------------------------------------------------
def _seeded_layer(out_features: int) -> tuple[hg.Linear, nn.Linear]:
    torch.manual_seed(0)
    mine = hg.Linear(4, out_features, init="normal")
    return mine, torch_linear(mine.weight, mine.bias)


def task_3_1() -> TaskResult:
    """MSE of Linear(4, 1) on the batch against y = [2, 3, 4]."""
    mine, ref = _seeded_layer(1)
    return result(
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
    return result(
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
    return result(
        "3.3",
        "MSELoss(sum) + L2(1.409, weights)",
        [("loss + penalty  vs  nn.MSELoss + 1.409 * (w ** 2).sum()", value, ref_value)],
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
