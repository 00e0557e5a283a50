"""Neuron against F.linear and autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import VALUE_KINDS, assert_close, autograd_grads, make_values, upstream

import handgrad as hg


def test_init_draws_randn_in_then_randn_1():
    torch.manual_seed(0)
    n = hg.Neuron(4)
    torch.manual_seed(0)
    assert torch.equal(n.weight, torch.randn(4))
    assert torch.equal(n.bias, torch.randn(1))


@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize(
    "shape,out_shape", [((4,), (1,)), ((6, 4), (6, 1)), ((2, 3, 4), (2, 3, 1))]
)
def test_forward_and_backward(shape, out_shape, kind):
    n = hg.Neuron(4).to(torch.float64)
    x = make_values(shape, kind)
    g = upstream(out_shape)
    y = n(x)
    assert y.shape == out_shape
    expected, (dx, dw, db) = autograd_grads(
        lambda x_, w, b: F.linear(x_, w[None], b), [x, n.weight, n.bias], g
    )
    assert_close(y, expected)
    assert_close(n.backward(g), dx)
    assert_close(n.weight.grad, dw)
    assert_close(n.bias.grad, db)


def test_from_weights_lab_figure():
    n = hg.Neuron.from_weights(torch.tensor([-0.2, 0.3, -0.5, 0.7]), torch.tensor(3.14))
    assert_close(n(torch.tensor([1.0, 2.0, 3.0, 4.0])), torch.tensor([4.84]))


def test_bad_input():
    with pytest.raises(
        ValueError, match=r"Neuron\(in_features=4\): expected input with 4 features"
    ):
        hg.Neuron(4)(torch.zeros(3))
    with pytest.raises(RuntimeError, match="input is torch.float64.*layer is torch.float32"):
        hg.Neuron(4)(torch.zeros(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="bias with one element"):
        hg.Neuron.from_weights(torch.zeros(4), torch.zeros(2))
    with pytest.raises(ValueError, match="positive int"):
        hg.Neuron(0)
    n = hg.Neuron(4)
    with pytest.raises(RuntimeError, match="more often than forward"):
        n.backward(torch.ones(1))
    n(torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r"\(5, 1\), got \(5,\)"):
        n.backward(torch.ones(5))
