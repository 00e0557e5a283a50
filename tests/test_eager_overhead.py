"""The eager step's lighter paths (issue 22's eager goal) keep every check and every number:
the saved-tensor check of one tensor and of an inference tensor, SGD over a group where a
parameter has no .grad, zero_grad over several groups, the class-index check by aminmax, a
Linear's one-test input check, and the eager guard's single host read."""

from __future__ import annotations

import math

import pytest
import torch

import handgrad as hg
from handgrad.errors import ShapeError, TargetIndexError, UsageError
from handgrad.nn.activation import _versions
from handgrad.training.step import HostGuard, NonFiniteLossError


def test_versions_of_one_tensor_a_tuple_and_an_inference_tensor():
    x, y = torch.randn(3), torch.randn(3)
    assert _versions(x) == [x._version]
    assert _versions((x, (y, 2.0), None)) == [x._version, y._version]
    with torch.inference_mode():
        z = torch.randn(3)
    assert _versions(z) == [None]
    assert _versions((x, z)) == [x._version, None]


def test_relu_still_refuses_a_saved_output_changed_in_place():
    relu = hg.ReLU()
    y = relu(torch.randn(4, 3))
    y.mul_(2)  # what an inplace=True layer after it would do
    with pytest.raises(UsageError, match="changed in place"):
        relu.backward(torch.ones(4, 3))


def test_relu_on_an_inference_tensor_runs_its_backward():
    relu = hg.ReLU()
    with torch.inference_mode():
        x = torch.randn(4, 3)
    y = relu(x)
    assert torch.equal(relu.backward(torch.ones(4, 3)), (y > 0).float())


def test_sgd_skips_a_parameter_without_grad_and_matches_torch():
    torch.manual_seed(0)
    a, b = torch.randn(3, 2), torch.randn(2)
    ta, tb = a.clone().requires_grad_(), b.clone().requires_grad_()
    a.grad = torch.randn(3, 2)
    ta.grad = a.grad.clone()
    for momentum in (0.0, 0.9):
        opt = hg.optim.SGD([a, b], lr=0.1, momentum=momentum)
        ref = torch.optim.SGD([ta, tb], lr=0.1, momentum=momentum)
        for _ in range(2):
            opt.step()
            ref.step()
        assert torch.equal(a, ta.detach()) and torch.equal(b, tb.detach())
        assert (b in opt.state) == (tb in ref.state)


def test_zero_grad_clears_every_group():
    p, q = torch.randn(2), torch.randn(2)
    opt = hg.optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
    p.grad, q.grad = torch.ones(2), torch.ones(2)
    opt.zero_grad(set_to_none=False)
    assert torch.equal(p.grad, torch.zeros(2)) and torch.equal(q.grad, torch.zeros(2))
    opt.zero_grad()
    assert p.grad is None and q.grad is None


def test_class_index_check_by_aminmax():
    loss = hg.CrossEntropyLoss()
    z = torch.randn(4, 3)
    assert torch.isfinite(loss(z, torch.tensor([0, 1, 2, 1])))
    assert loss(torch.randn(0, 3), torch.zeros(0, dtype=torch.long)).isnan()  # empty: as torch
    for bad in (3, -1):
        with pytest.raises(TargetIndexError, match=rf"got {bad} "):
            loss(z, torch.tensor([0, bad, 1, 1]))
    ignored = hg.CrossEntropyLoss(ignore_index=-1)
    expect = torch.nn.CrossEntropyLoss(ignore_index=-1)(z, torch.tensor([0, -1, 2, 1]))
    assert torch.allclose(ignored(z, torch.tensor([0, -1, 2, 1])), expect)


def test_linear_input_check_names_each_fault():
    layer = hg.Linear(3, 2)
    assert layer(torch.randn(5, 3)).shape == (5, 2)
    cases = [
        (torch.randn(5, 4), "expected input with 3 features"),
        (torch.randn(5, 3, dtype=torch.float64), "input is torch.float64"),
        (torch.ones(5, 3, dtype=torch.long), "expected a floating-point input"),
        (torch.tensor(1.0), "at least 1 dimension"),
    ]
    for x, message in cases:
        with pytest.raises(ShapeError, match=message):
            layer(x)


def test_host_guard_reads_loss_and_norm_once_in_their_dtypes():
    p = torch.randn(3, dtype=torch.float64)
    p.grad = torch.tensor([1.0, -4.0, 2.0], dtype=torch.float64)
    guard = HostGuard([p], "fit", "a hint")
    guard.check(torch.tensor(0.25, dtype=torch.bfloat16), None)
    assert guard.value == 0.25
    p.grad[1] = math.inf
    guard.where = "epoch 1, batch 2"
    with pytest.raises(NonFiniteLossError, match="a gradient became inf or NaN at epoch 1"):
        guard.check(torch.tensor(0.5), None)
    assert guard.value == 0.25
