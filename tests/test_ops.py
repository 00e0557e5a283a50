"""Op pairs of handgrad.ops: gradcheck on every pair; activations, dropout and linear
forward vs torch in float64 and backward vs autograd. Conv, losses and tensor ops: test_ops_*.py."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    SHAPES,
    VALUE_KINDS,
    assert_close,
    away_from_zero,
    check_pair,
    make_values,
    pair,
    r,
    seeded,
    upstream,
)

from handgrad import ops
from handgrad.check import gradcheck

F64 = torch.float64


# values at least 0.2 from every kink (0, ±1, ±3, 6), for finite differences
KINKLESS = torch.tensor(
    [-7.3, -4.1, -2.5, -0.7, -0.2, 0.3, 0.8, 1.7, 2.6, 4.2, 6.5, 8.1], dtype=F64
)


# ---- gradcheck on every pair ------------------------------------------------------------------
def _gradcheck_cases():
    idx = torch.tensor([0, 4, 2, 1])
    probs = torch.softmax(r(4, 5, seed=1), 1)
    unit = torch.rand(4, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    causal = torch.ones(3, 4, dtype=torch.bool).triu(1)
    return [  # (id, op, inputs)
        ("relu", "relu", (away_from_zero(3, 4),)),
        ("leaky_relu", "leaky_relu", (away_from_zero(3, 4), 0.1)),
        ("elu", "elu", (away_from_zero(3, 4), 1.3)),
        ("sigmoid", "sigmoid", (r(3, 4),)),
        ("tanh", "tanh", (r(3, 4),)),
        ("silu", "silu", (r(3, 4),)),
        ("softplus", "softplus", (r(3, 4) * 5, 2.0, 5.0)),
        ("gelu", "gelu", (r(3, 4),)),
        ("gelu-tanh", "gelu", (r(3, 4), "tanh")),
        ("hardtanh", "hardtanh", (KINKLESS * 0.3, -0.5, 1.2)),
        ("relu6", "relu6", (KINKLESS,)),
        ("hardsigmoid", "hardsigmoid", (KINKLESS,)),
        ("hardswish", "hardswish", (KINKLESS,)),
        ("mish", "mish", (r(3, 4) * 3,)),
        ("log_sigmoid", "log_sigmoid", (r(3, 4) * 3,)),
        ("prelu", "prelu", (KINKLESS.reshape(2, 3, 2), r(3, seed=1))),
        ("prelu-one", "prelu", (KINKLESS, r(1, seed=1))),
        ("softmax", "softmax", (r(2, 3, 4), 1)),
        ("log_softmax", "log_softmax", (r(2, 3, 4), 0)),
        ("conv1d", "conv", (r(2, 3, 7), r(4, 3, 3, seed=1), r(4), (2,), ((1, 2),), (1,))),
        (
            "conv2d",
            "conv",
            (r(1, 2, 5, 6), r(3, 2, 2, 3, seed=1), None, (1, 2), ((1, 0), (1, 1)), (2, 1)),
        ),
        ("max_pool", "max_pool", (r(1, 2, 4, 5), (2, 2), (2, 1), ((1, 1), (0, 1)))),
        ("avg_pool", "avg_pool", (r(2, 3, 7), (3,), (2,), ((1, 1),))),
        ("dropout", "dropout", (r(5, 4), 0.3)),
        ("feature_dropout", "feature_dropout", (r(3, 4, 2), 0.3)),
        ("linear", "linear", (r(5, 4), r(3, 4, seed=1), r(3, seed=2))),
        ("linear-3d-no-bias", "linear", (r(2, 5, 4), r(3, 4, seed=1))),
        ("mse_loss", "mse_loss", (r(4, 3), r(4, 3, seed=1))),
        ("l1_loss", "l1_loss", (r(4, 3), r(4, 3, seed=1), "sum")),
        ("huber_loss", "huber_loss", (r(4, 3) * 2, r(4, 3, seed=1), "none", 0.5)),
        ("bce_loss", "bce_loss", (torch.sigmoid(r(4, 3)), unit)),
        ("bce_with_logits", "bce_with_logits", (r(4, 3), unit, "none")),
        ("cross_entropy", "cross_entropy", (r(4, 5), idx)),
        ("cross_entropy-probs", "cross_entropy", (r(4, 5), probs, "sum")),
        ("nll_loss", "nll_loss", (torch.log_softmax(r(4, 5), 1), idx)),
        ("categorical_ce", "categorical_cross_entropy", (probs, torch.softmax(r(4, 5), 1))),
        ("batch_norm", "batch_norm", (r(6, 3), r(3, seed=1), r(3, seed=2), r(3), r(3).exp())),
        (
            "batch_norm-eval",
            "batch_norm",
            (r(6, 3, 2), r(3, seed=1), r(3, seed=2), r(3), r(3).exp(), False),
        ),
        ("layer_norm", "layer_norm", (r(3, 4), (4,), r(4, seed=1), r(4, seed=2))),
        ("add", "add", (r(3, 1, 4), r(5, 4))),
        ("mul", "mul", (r(3, 1, 4), r(5, 4))),
        ("matmul", "matmul", (r(2, 3, 4), r(4, 5))),
        ("concat", "concat", ([r(2, 3), r(4, 3)], 0)),
        ("split", "split", (r(5, 4), (1, 3, 1), 0)),
        ("masked_fill", "masked_fill", (r(2, 3, 4), causal, -2.0)),
        ("reshape", "reshape", (r(2, 6), (3, 4))),
        ("transpose", "transpose", (r(2, 3, 4), 0, 2)),
        ("flatten", "flatten", (r(2, 3, 4),)),
        ("unflatten", "unflatten", (r(2, 6), 1, (2, 3))),
    ]


GRADCHECK = _gradcheck_cases()


@pytest.mark.parametrize(
    "op,inputs", [pytest.param(op, inputs, id=i) for i, op, inputs in GRADCHECK]
)
def test_gradcheck_every_pair(op, inputs):
    report = gradcheck(pair(op), *inputs)
    assert report.ok, str(report)
    assert {c.reference for c in report.comparisons} == {"autograd", "finite differences"}
    assert not any(c.note.startswith("skipped") for c in report.comparisons), str(report)


def test_gradcheck_dropout_with_its_mask_fixed():
    forward = seeded(ops.dropout_forward)
    report = gradcheck((forward, ops.dropout_backward), r(5, 4), 0.3)
    assert report.ok, str(report)


def test_gradcheck_takes_sections_as_a_list():
    report = gradcheck(pair("split"), r(5, 4), [1, 3, 1], 0)
    assert report.ok, str(report)


def test_every_public_pair_is_gradchecked():
    """The pairs of the files this test mirrors; test_ops_conv.py, test_ops_loss.py,
    test_ops_pooling.py and test_ops_tensor.py keep the same list for theirs."""
    files = [ops.activation, ops.dropout, ops.linear, ops.normalization]
    names = [n for f in files for n in f.__all__]
    forwards = {n.removesuffix("_forward") for n in names if n.endswith("_forward")}
    backwards = {n.removesuffix("_backward") for n in names if n.endswith("_backward")}
    assert forwards == backwards
    assert forwards <= {op for _, op, _ in GRADCHECK}, forwards - {op for _, op, _ in GRADCHECK}


# ---- activations ---------------------------------------------------------------------------------
ACTIVATIONS = [  # (op, extra forward arguments, torch reference)
    ("relu", (), F.relu),
    ("leaky_relu", (0.2,), lambda x: F.leaky_relu(x, 0.2)),
    ("elu", (1.409,), lambda x: F.elu(x, 1.409)),
    ("sigmoid", (), torch.sigmoid),
    ("tanh", (), torch.tanh),
    ("silu", (), F.silu),
    ("softplus", (), F.softplus),
    ("softplus", (2.0, 5.0), lambda x: F.softplus(x, 2.0, 5.0)),
    ("gelu", (), F.gelu),
    ("gelu", ("tanh",), lambda x: F.gelu(x, approximate="tanh")),
    ("hardtanh", (), F.hardtanh),
    ("hardtanh", (-0.5, 2.0), lambda x: F.hardtanh(x, -0.5, 2.0)),
    ("relu6", (), F.relu6),
    ("hardsigmoid", (), F.hardsigmoid),
    ("hardswish", (), F.hardswish),
    ("mish", (), F.mish),
    ("log_sigmoid", (), F.logsigmoid),
]


@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "op,args,reference", ACTIVATIONS, ids=[f"{c[0]}{c[1]}" for c in ACTIVATIONS]
)
def test_activation(op, args, reference, shape, kind):
    forward, backward = pair(op)
    check_pair(lambda x: forward(x, *args), backward, reference, [make_values(shape, kind)])


@pytest.mark.parametrize("kind", ["normal", "large", "zeros"])
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize("op,reference", [("softmax", F.softmax), ("log_softmax", F.log_softmax)])
def test_softmax_along_a_dim(op, reference, dim, kind):
    forward, backward = pair(op)
    x = make_values((2, 3, 4), kind)
    check_pair(lambda t: forward(t, dim), backward, lambda t: reference(t, dim), [x])


# ---- dropout and linear --------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("shape", SHAPES)
def test_dropout_draws_torchs_mask(shape, p):
    check_pair(
        seeded(lambda x: ops.dropout_forward(x, p)),
        ops.dropout_backward,
        seeded(lambda x: F.dropout(x, p)),
        [r(*shape) + 2],  # no zeros in x: a kept zero and a dropped one would look alike
    )
    y, _ = seeded(ops.dropout_forward)(r(100, 100), p)
    assert 0 < (y == 0).double().mean() < 1


@pytest.mark.parametrize("p,training", [(0.5, False), (0.0, True)])
def test_dropout_off_is_the_identity(p, training):
    x, g = r(4, 3), upstream((4, 3))
    y, cache = ops.dropout_forward(x, p, training)
    assert torch.equal(y, F.dropout(x, p, training))
    assert torch.equal(y, x)
    assert torch.equal(ops.dropout_backward(g, cache), g)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape", [(4,), (5, 4), (2, 3, 4)])
@pytest.mark.parametrize("kind", VALUE_KINDS)
def test_linear(kind, x_shape, bias):
    tensors = [make_values(x_shape, kind), r(3, 4, seed=1)] + ([r(3, seed=2)] if bias else [])
    check_pair(ops.linear_forward, ops.linear_backward, F.linear, tensors)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_backward_without_dx(bias):
    x, W, b = r(2, 5, 4), r(3, 4, seed=1), r(3, seed=2) if bias else None
    y, cache = ops.linear_forward(x, W, b)
    g = upstream(y.shape)
    dx, dW, db = ops.linear_backward(g, cache, need_dx=False)
    _, dW_full, db_full = ops.linear_backward(g, cache)
    assert dx is None
    assert_close(dW, dW_full)
    assert (db is None) == (not bias)
    if bias:
        assert_close(db, db_full)


# every kink, exactly: torch's derivative there (0 at both ends of ReLU6/Hardtanh, Hardswish
# 0 at -3 and 1 at 3, ReLU 0 at 0, LeakyReLU/ELU/PReLU the negative side's at 0)
KINKS = torch.tensor([-1e300, -7, -6, -3, -1, 0, 1, 3, 6, 7, 1e300, -0.0], dtype=F64)
AT_KINKS = [
    ("relu", (), F.relu),
    ("leaky_relu", (0.2,), lambda x: F.leaky_relu(x, 0.2)),
    ("elu", (1.3,), lambda x: F.elu(x, 1.3)),
    ("hardtanh", (), F.hardtanh),
    ("hardtanh", (-3.0, 6.0), lambda x: F.hardtanh(x, -3.0, 6.0)),
    ("relu6", (), F.relu6),
    ("hardsigmoid", (), F.hardsigmoid),
    ("hardswish", (), F.hardswish),
    ("mish", (), F.mish),
    ("log_sigmoid", (), F.logsigmoid),
    ("softplus", (1.0, 3.0), lambda x: F.softplus(x, 1.0, 3.0)),
    ("silu", (), F.silu),
]


@pytest.mark.parametrize("op,args,reference", AT_KINKS, ids=[f"{c[0]}{c[1]}" for c in AT_KINKS])
def test_activation_at_its_kinks_and_at_huge_values(op, args, reference):
    forward, backward = pair(op)
    check_pair(lambda x: forward(x, *args), backward, reference, [KINKS])


INPLACE = [  # (op, extra forward arguments): the pairs that take inplace=
    ("relu", ()),
    ("leaky_relu", (0.2,)),
    ("leaky_relu", (-0.5,)),  # a negative slope: the mask, not the output's sign
    ("elu", (1.3,)),
    ("elu", (-0.7,)),
    ("silu", ()),
    ("hardtanh", (-1.0, 1.0)),
    ("relu6", ()),
    ("hardsigmoid", ()),
    ("hardswish", ()),
    ("mish", ()),
]


@pytest.mark.parametrize("op,args", INPLACE, ids=[f"{c[0]}{c[1]}" for c in INPLACE])
def test_inplace_writes_into_x_and_keeps_the_same_gradient(op, args):
    forward, backward = pair(op)
    x = torch.cat([KINKS, r(12)])
    y_ref, cache_ref = forward(x, *args)
    x_in = x.clone()
    y, cache = forward(x_in, *args, True)
    assert y is x_in
    assert torch.equal(y, y_ref)
    g = upstream(x.shape)
    assert_close(backward(g, cache), backward(g, cache_ref))


@pytest.mark.parametrize("x_shape,channels", [((2, 3, 4), 3), ((2, 3), 3), ((5,), 1), ((), 1)])
def test_prelu_per_channel(x_shape, channels):
    x, a = make_values(x_shape, "zeros"), r(channels, seed=1)
    check_pair(ops.prelu_forward, ops.prelu_backward, F.prelu, [x, a])


@pytest.mark.parametrize("p", [0.2, 0.7])
@pytest.mark.parametrize(
    "shape,reference",
    [((3, 4, 5), F.dropout1d), ((2, 3, 4, 5), F.dropout2d), ((3, 4), F.dropout2d)],
)
def test_feature_dropout_draws_torchs_mask(shape, reference, p):
    with pytest.warns(UserWarning) if len(shape) == 2 else contextlib.nullcontext():
        check_pair(
            seeded(lambda x: ops.feature_dropout_forward(x, p)),
            ops.feature_dropout_backward,
            seeded(lambda x: reference(x, p)),
            [r(*shape) + 5],
        )


def test_feature_dropout_zeroes_whole_channels_and_scales_the_rest():
    x = r(40, 30, 6) + 5  # no zeros in x
    y, scale = ops.feature_dropout_forward(x, 0.4)
    kept = y != 0
    assert (kept.all(2) | (~kept).all(2)).all()  # each channel all kept or all dropped
    assert 0.25 < (~kept[:, :, 0]).double().mean() < 0.55
    assert_close(y[kept], x[kept] / 0.6)
    assert scale.shape == (40, 30, 1)
    assert_close(ops.feature_dropout_backward(torch.ones_like(x), scale), y / x)


@pytest.mark.parametrize("op", ["dropout", "feature_dropout"])
def test_dropout_p_one_drops_everything_and_an_empty_input_passes(op):
    forward, backward = pair(op)
    x = r(3, 4, 2)
    y, cache = forward(x, 1.0)
    assert torch.equal(y, torch.zeros_like(x))
    assert torch.equal(backward(upstream(x.shape), cache), torch.zeros_like(x))
    empty = r(0, 4, 2)
    y, cache = forward(empty, 0.5)
    assert y is empty and cache is None


@pytest.mark.parametrize("op", ["dropout", "feature_dropout"])
def test_dropout_inplace_writes_into_x(op):
    forward, backward = pair(op)
    x = r(3, 4, 2) + 5
    torch.manual_seed(2)
    y_ref, scale_ref = forward(x, 0.5)
    torch.manual_seed(2)
    x_in = x.clone()
    y, scale = forward(x_in, 0.5, True, True)
    assert y is x_in and torch.equal(y, y_ref) and torch.equal(scale, scale_ref)
