"""Each activation: forward vs torch.nn.functional, backward vs autograd in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import SHAPES, VALUE_KINDS, assert_close, autograd_grads, make_values, upstream

import handgrad as hg
from handgrad.check import gradcheck

CASES = [
    ("ReLU", hg.ReLU, F.relu),
    ("LeakyReLU", lambda: hg.LeakyReLU(0.1), lambda x: F.leaky_relu(x, 0.1)),
    ("ELU", lambda: hg.ELU(1.409), lambda x: F.elu(x, 1.409)),
    ("Sigmoid", hg.Sigmoid, torch.sigmoid),
    ("Tanh", hg.Tanh, torch.tanh),
    ("SiLU", hg.SiLU, F.silu),
    ("Softplus", hg.Softplus, F.softplus),
    (
        "Softplus(beta=2, threshold=5)",
        lambda: hg.Softplus(2.0, 5.0),
        lambda x: F.softplus(x, 2.0, 5.0),
    ),
    ("GELU", hg.GELU, F.gelu),
    ("GELU(tanh)", lambda: hg.GELU("tanh"), lambda x: F.gelu(x, approximate="tanh")),
    ("Identity", hg.Identity, lambda x: x * 1),
    ("Softmax(-1)", lambda: hg.Softmax(-1), lambda x: F.softmax(x, -1)),
    ("Softmax(0)", lambda: hg.Softmax(0), lambda x: F.softmax(x, 0)),
    ("LogSoftmax(-1)", lambda: hg.LogSoftmax(-1), lambda x: F.log_softmax(x, -1)),
    ("LogSoftmax(0)", lambda: hg.LogSoftmax(0), lambda x: F.log_softmax(x, 0)),
    ("Hardtanh", hg.Hardtanh, F.hardtanh),
    ("Hardtanh(-0.5, 2)", lambda: hg.Hardtanh(-0.5, 2.0), lambda x: F.hardtanh(x, -0.5, 2.0)),
    ("ReLU6", hg.ReLU6, F.relu6),
    ("Mish", hg.Mish, F.mish),
    ("Hardswish", hg.Hardswish, F.hardswish),
    ("Hardsigmoid", hg.Hardsigmoid, F.hardsigmoid),
    ("LogSigmoid", hg.LogSigmoid, F.logsigmoid),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name,make,reference", CASES, ids=IDS)
def test_forward_matches_torch_float32(name, make, reference, shape, kind):
    x = make_values(shape, kind).float()
    assert_close(make()(x), reference(x))


@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name,make,reference", CASES, ids=IDS)
def test_backward_matches_autograd_float64(name, make, reference, shape, kind):
    x = make_values(shape, kind)
    g = upstream(x.shape)
    act = make()
    y = act(x)
    expected_y, (expected_dx,) = autograd_grads(reference, [x], g)
    assert_close(y, expected_y)
    assert_close(act.backward(g), expected_dx)


@pytest.mark.parametrize("cls", [hg.Softmax, hg.LogSoftmax])
def test_softmax_is_finite_and_exact_for_huge_logits(cls):
    x = torch.tensor([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]], dtype=torch.float64)
    ref = F.softmax if cls is hg.Softmax else F.log_softmax
    m = cls(dim=1)
    y = m(x)
    assert torch.isfinite(y).all()
    assert_close(y, ref(x, 1))
    g = upstream(x.shape)
    _, (dx,) = autograd_grads(lambda t: ref(t, 1), [x], g)
    assert_close(m.backward(g), dx)


def test_lab_elu_figure():
    torch.manual_seed(0)
    x = torch.randn(4, 3)
    expected = torch.tensor(
        [
            [1.5410, -0.3583, -1.2495],
            [0.5684, -0.9327, -1.0611],
            [0.4033, 0.8380, -0.7227],
            [-0.4677, -0.6331, 0.1820],
        ]
    )
    assert_close(hg.ELU(alpha=1.409)(x), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name,make,reference", CASES, ids=IDS)
def test_backward_before_forward_is_refused(name, make, reference):
    with pytest.raises(RuntimeError, match="more often than forward"):
        make().backward(torch.ones(3))


@pytest.mark.parametrize("name,make,reference", CASES, ids=IDS)
def test_gradient_of_wrong_shape_is_refused(name, make, reference):
    act = make()
    act(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"expected a gradient of the output's shape \(4, 3\)"):
        act.backward(torch.ones(3, 4))


@pytest.mark.parametrize("name,make,reference", CASES, ids=IDS)
def test_integer_input_is_refused(name, make, reference):
    with pytest.raises(RuntimeError, match="floating-point"):
        make()(torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("cls", [hg.Softmax, hg.LogSoftmax])
def test_invalid_dim_is_refused(cls):
    with pytest.raises(ValueError, match=r"Softmax\(dim=2\): dim 2 is out of range.*\(4, 3\)"):
        cls(dim=2)(torch.randn(4, 3))


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: hg.GELU("fast"), ValueError, r"^GELU: approximate must be 'none' or 'tanh'"),
        (lambda: hg.Softplus(beta=0), ValueError, "^Softplus: beta must be nonzero"),
        (
            lambda: hg.Hardtanh(1.0, 1.0),
            ValueError,
            r"max_val \(1.0\) must be greater than min_val",
        ),
        (
            lambda: hg.Hardtanh(2, 1),
            ValueError,
            r"max_val \(1\) must be greater than min_val \(2\)",
        ),
        (lambda: hg.PReLU(0), ValueError, "^PReLU: num_parameters must be positive, got 0"),
        (lambda: hg.PReLU(2.5), TypeError, "^PReLU: num_parameters must be an int"),
        (lambda: hg.PReLU(2, "a"), TypeError, "^PReLU: init must be a number"),
        (lambda: hg.ReLU("yes"), TypeError, "^ReLU: inplace must be a bool, got 'yes'"),
        (lambda: hg.LeakyReLU("a"), TypeError, "^LeakyReLU: negative_slope must be a number"),
        (lambda: hg.ELU(1.0, 2), TypeError, "^ELU: inplace must be a bool, got 2"),
        (lambda: hg.Softmax(1.5), TypeError, r"^Softmax: dim must be an int or None, got 1\.5"),
        (lambda: hg.LogSoftmax("1"), TypeError, "^LogSoftmax: dim must be an int or None"),
    ],
)
def test_invalid_settings_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_identity_takes_and_ignores_any_arguments_as_torch():
    x = torch.randn(3)
    assert hg.Identity(54, unused_argument1=0.1)(x) is x
    assert hg.Identity().config() == {}


@pytest.mark.parametrize("cls", [hg.ReLU, hg.Hardtanh, hg.Hardswish, hg.SiLU, hg.LeakyReLU])
def test_inplace_writes_into_the_input_and_backward_is_unchanged(cls):
    x = make_values((4, 3), "zeros")
    out_of_place, inplace = cls(), cls(inplace=True)
    y_ref = out_of_place(x)
    x_in = x.clone()
    y = inplace(x_in)
    assert y is x_in and torch.equal(y, y_ref)
    g = upstream(x.shape)
    assert_close(inplace.backward(g), out_of_place.backward(g))


def test_bfloat16_runs():
    x = torch.randn(4, 3, dtype=torch.bfloat16)
    act = hg.GELU()
    assert act(x).dtype == torch.bfloat16
    assert act.backward(torch.ones_like(x)).dtype == torch.bfloat16


@pytest.mark.parametrize(
    "cls",
    [
        hg.ReLU,
        hg.LeakyReLU,
        hg.ELU,
        hg.SiLU,
        hg.Mish,
        hg.Hardtanh,
        hg.ReLU6,
        hg.Hardsigmoid,
        hg.Hardswish,
    ],
)
def test_gradcheck_of_an_inplace_activation_after_a_layer(cls):
    model = hg.Sequential(hg.Linear(3, 4), cls(inplace=True)).to(torch.float64)
    report = gradcheck(model, make_values((5, 3), "normal"))
    assert report.ok, str(report)
