"""Linear, Dropout, Flatten, BatchNorm1d against torch.nn and autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import VALUE_KINDS, assert_close, autograd_grads, make_values, upstream
from hypothesis import given, settings
from hypothesis import strategies as st

import handgrad as hg


# ---- Linear ---------------------------------------------------------------------------------
@pytest.mark.parametrize("in_f,out_f", [(1, 1), (4, 3), (64, 10), (3, 128)])
def test_default_init_equals_torch_after_same_seed(in_f, out_f):
    torch.manual_seed(123)
    mine = hg.Linear(in_f, out_f)
    torch.manual_seed(123)
    ref = nn.Linear(in_f, out_f)
    assert torch.equal(mine.weight, ref.weight.detach())
    assert torch.equal(mine.bias, ref.bias.detach())


def test_normal_init_draws_as_the_lab():
    torch.manual_seed(0)
    layer = hg.Linear(4, 3, init="normal")
    torch.manual_seed(0)
    assert torch.equal(layer.weight, torch.randn(3, 4))
    assert torch.equal(layer.bias, torch.randn(3))


@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("lead", [(), (5,), (2, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_and_backward(lead, kind, bias):
    layer = hg.Linear(4, 3, bias=bias).to(torch.float64)
    x = make_values((*lead, 4), kind)
    g = upstream((*lead, 3))
    params = [layer.weight] + ([layer.bias] if bias else [])
    y = layer(x)
    expected, grads = autograd_grads(lambda x_, *p: F.linear(x_, *p), [x, *params], g)
    assert_close(y, expected)
    assert_close(layer.backward(g), grads[0])
    assert_close(layer.weight.grad, grads[1])
    if bias:
        assert_close(layer.bias.grad, grads[2])
    else:
        assert layer.bias is None


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), i=st.integers(1, 6), o=st.integers(1, 6))
def test_linear_any_shape(n, i, o):
    layer = hg.Linear(i, o).to(torch.float64)
    x = torch.randn(n, i, dtype=torch.float64)
    g = torch.randn(n, o, dtype=torch.float64)
    layer(x)
    _, grads = autograd_grads(F.linear, [x, layer.weight, layer.bias], g)
    assert_close(layer.backward(g), grads[0])
    assert_close(layer.weight.grad, grads[1])
    assert_close(layer.bias.grad, grads[2])


def test_from_weights_uses_given_tensors():
    W, b = torch.randn(3, 4), torch.randn(3)
    layer = hg.Linear.from_weights(W, b)
    x = torch.randn(2, 4)
    assert_close(layer(x), F.linear(x, W, b))
    assert layer.weight is W


@pytest.mark.parametrize(
    "bad,match",
    [
        (
            lambda: hg.Linear(4, 3)(torch.randn(5, 7)),
            r"Linear\(in_features=4.*expected input with 4 features.*\(5, 7\)",
        ),
        (
            lambda: hg.Linear(4, 3)(torch.ones(2, 4, dtype=torch.long)),
            "floating-point input, got torch.int64",
        ),
        (
            lambda: hg.Linear(4, 3)(torch.ones(2, 4, dtype=torch.float64)),
            "input is torch.float64.*layer is torch.float32",
        ),
        (lambda: hg.Linear(0, 3), "in_features must be a positive int, got 0"),
        (lambda: hg.Linear(4, -1), "out_features must be a positive int, got -1"),
        (lambda: hg.Linear(4, 3, init="glorot"), "unknown init 'glorot'"),
        (
            lambda: hg.Linear.from_weights(torch.randn(3, 4), torch.randn(4)),
            r"bias must have shape \(3,\), got \(4,\)",
        ),
        (lambda: hg.Linear.from_weights(torch.randn(4), None), "expected a floating weight"),
    ],
)
def test_linear_bad_input(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bad()


def test_linear_backward_misuse():
    layer = hg.Linear(4, 3)
    with pytest.raises(
        RuntimeError, match=r"Linear\(.*\)\.backward\(\) called more often than forward"
    ):
        layer.backward(torch.ones(2, 3))
    layer(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"gradient of the output's shape \(2, 3\), got \(2, 4\)"):
        layer.backward(torch.ones(2, 4))
    assert layer.weight.grad is None  # nothing was touched


def test_linear_gradients_add_up_over_backwards_and_shared_weights():
    """The second backward adds dL/dW into the existing .grad inside its GEMM (the speed path):
    still `+=`, as autograd accumulates; a weight shared by two layers gets both products."""
    torch.manual_seed(0)
    first = hg.Linear(4, 3).to(dtype=torch.float64)
    second = hg.Linear.from_weights(first.weight, first.bias)  # shares W and b
    x1, x2 = torch.randn(5, 4, dtype=torch.float64), torch.randn(2, 7, 4, dtype=torch.float64)
    W = first.weight.detach().clone().requires_grad_()
    b = first.bias.detach().clone().requires_grad_()
    for x in (x1, x2, x1):
        for layer in (first, second):
            dy = torch.randn(*x.shape[:-1], 3, dtype=torch.float64)
            layer(x)
            dx = layer.backward(dy)
            ref_x = x.clone().requires_grad_()
            F.linear(ref_x, W, b).backward(dy)
            assert_close(dx, ref_x.grad)
    assert_close(first.weight.grad, W.grad)
    assert_close(first.bias.grad, b.grad)
    assert first.weight.grad is second.weight.grad


def test_linear_frozen_layer_adds_nothing_to_an_existing_grad():
    layer = hg.Linear(4, 3)
    layer.weight.grad = torch.ones(3, 4)
    layer.freeze()
    layer(torch.randn(2, 4))
    layer.backward(torch.ones(2, 3))
    assert torch.equal(layer.weight.grad, torch.ones(3, 4)) and layer.bias.grad is None


# ---- Dropout --------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
def test_dropout_matches_torch_mask(p):
    x = torch.randn(64, 32) + 3
    torch.manual_seed(5)
    mine = hg.Dropout(p)(x)
    torch.manual_seed(5)
    ref = F.dropout(x, p, training=True)
    assert_close(mine, ref)


def test_dropout_backward_uses_the_mask_and_eval_is_identity():
    x = make_values((50, 20), "normal") + 5.0
    layer = hg.Dropout(0.3)
    torch.manual_seed(1)
    y = layer(x)
    g = upstream(x.shape)
    torch.manual_seed(1)
    _, (dx,) = autograd_grads(lambda t: F.dropout(t, 0.3, training=True), [x], g)
    assert_close(layer.backward(g), dx)
    assert 0.5 < (y == 0).double().mean().item() / 0.3 < 1.5
    layer.eval()
    assert layer(x) is x and layer.backward(g) is g


@pytest.mark.parametrize("p", [-0.1, 1.01, 1.5])
def test_dropout_p_out_of_range(p):
    with pytest.raises(
        ValueError, match=r"^Dropout: dropout probability has to be between 0 and 1, but got"
    ):
        hg.Dropout(p)


# ---- Flatten --------------------------------------------------------------------------------
@pytest.mark.parametrize("start,end", [(1, -1), (0, -1), (1, 2), (-2, -1)])
def test_flatten(start, end):
    x = make_values((2, 3, 4, 5), "normal")
    layer = hg.Flatten(start, end)
    y = layer(x)
    assert_close(y, nn.Flatten(start, end)(x))
    g = upstream(y.shape)
    assert_close(layer.backward(g), g.reshape(x.shape))


def test_flatten_bad_dim():
    with pytest.raises(ValueError, match=r"Flatten\(start_dim=3.*out of range.*\(2, 3\)"):
        hg.Flatten(3)(torch.zeros(2, 3))


# ---- BatchNorm1d ----------------------------------------------------------------------------
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
def test_batchnorm_training_matches_torch(shape, affine):
    x = make_values(shape, "large")
    mine = hg.BatchNorm1d(3, affine=affine).to(torch.float64)
    ref = nn.BatchNorm1d(3, affine=affine).double()
    if affine:
        mine.weight.uniform_(0.5, 1.5)
        mine.bias.uniform_(-1, 1)
        ref.load_state_dict(mine.state_dict())
    g = upstream(shape)
    y = mine(x)
    leaves = [x] + ([ref.weight, ref.bias] if affine else [])
    expected, grads = autograd_grads(
        lambda x_, *p: F.batch_norm(
            x_, torch.zeros(3, dtype=x.dtype), torch.ones(3, dtype=x.dtype), *p, training=True
        ),
        leaves,
        g,
    )
    assert_close(y, expected)
    assert_close(mine.backward(g), grads[0])
    if affine:
        assert_close(mine.weight.grad, grads[1])
        assert_close(mine.bias.grad, grads[2])
    ref(x)
    assert_close(mine.running_mean, ref.running_mean)
    assert_close(mine.running_var, ref.running_var)
    assert int(mine.num_batches_tracked) == int(ref.num_batches_tracked)


def test_batchnorm_eval_uses_running_statistics():
    mine = hg.BatchNorm1d(4).to(torch.float64)
    ref = nn.BatchNorm1d(4).double()
    for _ in range(3):
        x = make_values((6, 4), "normal") * 3 + 1
        mine(x)
        ref(x)
    mine.eval()
    ref.eval()
    x = make_values((5, 4), "negative")
    g = upstream(x.shape)
    expected, (dx, dw, db) = autograd_grads(
        lambda x_, w, b: F.batch_norm(x_, ref.running_mean, ref.running_var, w, b, training=False),
        [x, ref.weight, ref.bias],
        g,
    )
    assert_close(mine(x), expected)
    assert_close(mine.backward(g), dx)
    assert_close(mine.weight.grad, dw)
    assert_close(mine.bias.grad, db)


def test_batchnorm_bad_input():
    with pytest.raises(
        ValueError, match=r"BatchNorm1d\(num_features=3.*expected input \(N, C\).* C = 3 channels"
    ):
        hg.BatchNorm1d(3)(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        hg.BatchNorm1d(3)(torch.zeros(1, 3))


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: hg.BatchNorm1d(3, eps=-1.0), ValueError, r"^BatchNorm1d: eps must be >= 0"),
        (lambda: hg.BatchNorm2d(3, momentum="a"), TypeError, "^BatchNorm2d: momentum must be"),
        (lambda: hg.BatchNorm2d(0), ValueError, "^BatchNorm2d: num_features must be a positive"),
        (lambda: hg.BatchNorm1d(2.0), TypeError, "^BatchNorm1d: num_features must be a positive"),
        (lambda: hg.Dropout("a"), TypeError, "^Dropout: p must be a number"),
        (lambda: hg.Dropout2d(0.5, "no"), TypeError, "^Dropout2d: inplace must be a bool"),
        (lambda: hg.Flatten(1.0), TypeError, "^Flatten: start_dim must be an int"),
        (lambda: hg.Unflatten("a", (2, 2)), TypeError, "^Unflatten: not supported: dim='a'"),
    ],
)
def test_bad_settings_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_batchnorm_factory_kwargs():
    bn = hg.BatchNorm2d(3, device="cpu", dtype=torch.float64)
    assert bn.weight.dtype == bn.running_var.dtype == torch.float64
    assert bn.num_batches_tracked.dtype == torch.long
