"""Each loss: forward vs torch.nn.functional, dL/dpred vs autograd in float64, edge values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import SHAPES, VALUE_KINDS, assert_close, autograd_grads, make_values, upstream

import handgrad as hg

REDUCTIONS = ["mean", "sum", "none"]

ELEMENTWISE = [
    ("MSELoss", hg.MSELoss, F.mse_loss),
    ("L1Loss", hg.L1Loss, F.l1_loss),
    ("HuberLoss", lambda reduction: hg.HuberLoss(1.0, reduction), F.huber_loss),
    (
        "HuberLoss(0.3)",
        lambda reduction: hg.HuberLoss(0.3, reduction),
        lambda p, t, reduction: F.huber_loss(p, t, reduction=reduction, delta=0.3),
    ),
    ("BCEWithLogitsLoss", hg.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits),
]


def _target(shape, kind, logits: bool):
    t = make_values(shape, "normal", seed=7)
    if logits:
        return torch.rand(shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    if kind == "zeros":
        return make_values(shape, "zeros")  # pred == target at the zeros: L1/Huber kinks at 0
    return t


def _check_loss(loss, reference, pred, target, reduction):
    value = loss(pred, target)
    g = None if reduction != "none" else upstream(value.shape)
    expected, (dpred, _) = autograd_grads(
        lambda p, t: reference(p, t, reduction=reduction), [pred, target.to(pred.dtype)], g
    )
    assert_close(value, expected)
    assert_close(loss.backward(g), dpred)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name,make,reference", ELEMENTWISE, ids=[c[0] for c in ELEMENTWISE])
def test_elementwise_losses(name, make, reference, shape, kind, reduction):
    pred = make_values(shape, kind)
    target = _target(shape, kind, logits=name == "BCEWithLogitsLoss")
    _check_loss(make(reduction=reduction), reference, pred, target, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_bce(shape, reduction):
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(shape, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    t = torch.rand(shape, generator=gen, dtype=torch.float64)
    _check_loss(hg.BCELoss(reduction), F.binary_cross_entropy, p, t, reduction)


def test_bce_at_zero_and_one_is_large_and_finite():
    p = torch.tensor([0.0, 1.0, 0.0, 1.0])
    t = torch.tensor([1.0, 0.0, 0.0, 1.0])
    loss = hg.BCELoss(reduction="none")
    value = loss(p, t)
    assert_close(value, F.binary_cross_entropy(p, t, reduction="none"))
    assert_close(value, torch.tensor([100.0, 100.0, 0.0, 0.0]))
    assert torch.isfinite(loss.backward()).all()


def test_bce_with_logits_is_exact_for_huge_logits():
    z = torch.tensor([1000.0, -1000.0, 1000.0, -1000.0, 0.0], dtype=torch.float64)
    t = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5], dtype=torch.float64)
    _check_loss(hg.BCEWithLogitsLoss("none"), F.binary_cross_entropy_with_logits, z, t, "none")
    assert_close(
        hg.BCEWithLogitsLoss("none")(z, t)[:4],
        torch.tensor([0.0, 0.0, 1000.0, 1000.0], dtype=torch.float64),
    )


CE_SHAPES = [((5,), ()), ((4, 3), (4,)), ((2, 5, 3), (2, 3))]  # (logits, index target)


@pytest.mark.parametrize("scale", [1.0, 1000.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,index_shape", CE_SHAPES)
def test_cross_entropy_with_indices(shape, index_shape, reduction, scale):
    z = make_values(shape, "normal") * scale
    C = shape[0] if len(shape) == 1 else shape[1]
    y = torch.randint(0, C, index_shape, generator=torch.Generator().manual_seed(1))
    loss = hg.CrossEntropyLoss(reduction)
    value = loss(z, y)
    assert torch.isfinite(value).all()
    g = None if reduction != "none" else upstream(value.shape)
    expected, (dz,) = autograd_grads(lambda t: F.cross_entropy(t, y, reduction=reduction), [z], g)
    assert_close(value, expected)
    assert_close(loss.backward(g), dz)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,index_shape", CE_SHAPES)
def test_cross_entropy_with_probabilities(shape, index_shape, reduction):
    z = make_values(shape, "large")
    dim = 0 if len(shape) == 1 else 1
    t = torch.softmax(make_values(shape, "normal", seed=5), dim)
    loss = hg.CrossEntropyLoss(reduction)
    value = loss(z, t)
    g = None if reduction != "none" else upstream(value.shape)
    expected, (dz, _) = autograd_grads(
        lambda a, b: F.cross_entropy(a, b, reduction=reduction), [z, t], g
    )
    assert_close(value, expected)
    assert_close(loss.backward(g), dz)


def test_fused_cross_entropy_gradient_is_softmax_minus_onehot():
    z = torch.tensor([[1000.0, 0.0, -1000.0], [2.0, 1.0, 0.5]], dtype=torch.float64)
    y = torch.tensor([2, 0])
    loss = hg.CrossEntropyLoss()
    loss(z, y)
    expected = (torch.softmax(z, 1) - F.one_hot(y, 3)) / 2
    assert_close(loss.backward(), expected)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,index_shape", CE_SHAPES)
def test_nll_loss(shape, index_shape, reduction):
    dim = 0 if len(shape) == 1 else 1
    x = torch.log_softmax(make_values(shape, "normal"), dim)
    C = shape[dim]
    y = torch.randint(0, C, index_shape, generator=torch.Generator().manual_seed(2))
    loss = hg.NLLLoss(reduction)
    value = loss(x, y)
    g = None if reduction != "none" else upstream(value.shape)
    expected, (dx,) = autograd_grads(lambda t: F.nll_loss(t, y, reduction=reduction), [x], g)
    assert_close(value, expected)
    assert_close(loss.backward(g), dx)


def _cce_reference(p, t, reduction):
    dim = 0 if p.dim() == 1 else 1
    terms = -(t * torch.log(p)).sum(dim)
    return {"mean": terms.mean(), "sum": terms.sum(), "none": terms}[reduction]


@pytest.mark.parametrize("target_kind", ["one-hot", "indices", "soft"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,index_shape", CE_SHAPES)
def test_categorical_cross_entropy(shape, index_shape, reduction, target_kind):
    dim = 0 if len(shape) == 1 else 1
    p = torch.softmax(make_values(shape, "normal"), dim)
    idx = torch.randint(0, shape[dim], index_shape, generator=torch.Generator().manual_seed(4))
    onehot = F.one_hot(idx, shape[dim]).to(torch.float64).movedim(-1, dim)
    t = {
        "one-hot": onehot,
        "indices": idx,
        "soft": torch.softmax(make_values(shape, "normal", seed=9), dim),
    }[target_kind]
    loss = hg.CategoricalCrossEntropy(reduction)
    value = loss(p, t)
    target = onehot if target_kind == "indices" else t
    g = None if reduction != "none" else upstream(value.shape)
    expected, (dp, _) = autograd_grads(lambda a, b: _cce_reference(a, b, reduction), [p, target], g)
    assert_close(value, expected)
    assert_close(loss.backward(g), dp)


@pytest.mark.parametrize("cls", [hg.CategoricalCrossEntropy, hg.CrossEntropyLoss])
def test_integer_one_hot_target_is_read_as_one_hot(cls):
    p = torch.softmax(torch.randn(4, 3), 1)
    onehot = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    assert_close(cls()(p, onehot), cls()(p, torch.tensor([0, 1, 2, 0])))


def test_categorical_cross_entropy_of_zero_probability_is_large_and_finite():
    p = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = hg.CategoricalCrossEntropy(reduction="none")
    value = loss(p, t)
    assert torch.isfinite(value).all() and value[0] >= 20
    assert torch.isfinite(loss.backward()).all()


def test_lab_cce_figure():
    """EXPECTED.md 3.2: Linear(4, 3) + softmax over dim=0, y = [1, 0, 0] in every row."""
    torch.manual_seed(0)
    layer = hg.Linear(4, 3, init="normal")
    x = torch.tensor([[1, 2, 3, 2.5], [2, 5, -1, 2], [-1.5, 2.7, 3.3, -0.8]])
    p = hg.Softmax(dim=0)(layer(x))
    value = hg.CategoricalCrossEntropy("none")(p, torch.tensor([1.0, 0, 0]).expand(3, 3))
    assert_close(value, torch.tensor([9.0918, 1.1272e-04, 15.679]), atol=1e-6, rtol=1e-4)


# ---- penalties ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cls,reference",
    [
        (hg.L2, lambda lam, ws: lam * sum((w**2).sum() for w in ws)),
        (hg.L1Penalty, lambda lam, ws: lam * sum(w.abs().sum() for w in ws)),
    ],
)
def test_penalties(cls, reference):
    ws = [make_values((3, 4), "zeros"), make_values((4,), "negative")]
    pen = cls(1.409, ws)
    expected, grads = autograd_grads(lambda *t: reference(1.409, t), ws)
    assert_close(pen.penalty(), expected)
    pen.backward()
    for w, g in zip(ws, grads):
        assert_close(w.grad, g)
    pen.backward()  # accumulates, as every backward does
    for w, g in zip(ws, grads):
        assert_close(w.grad, 2 * g)


# ---- bad input ------------------------------------------------------------------------------
def test_no_silent_broadcasting():
    with pytest.raises(ValueError, match=r"MSELoss.*\(4, 1\).*\(4,\).*same shape"):
        hg.MSELoss()(torch.zeros(4, 1), torch.zeros(4))


@pytest.mark.parametrize("target", [torch.tensor([0, 3]), torch.tensor([-1, 0])])
@pytest.mark.parametrize("cls", [hg.CrossEntropyLoss, hg.NLLLoss, hg.CategoricalCrossEntropy])
def test_class_index_out_of_range(cls, target):
    pred = torch.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 2\]"):
        cls()(pred, target)


def test_index_target_of_wrong_shape():
    with pytest.raises(ValueError, match=r"needs class indices of shape \(4,\)"):
        hg.CrossEntropyLoss()(torch.zeros(4, 3), torch.zeros(4, 1, dtype=torch.long))


@pytest.mark.parametrize("cls", [hg.BCELoss, hg.CategoricalCrossEntropy])
def test_probabilities_outside_unit_interval(cls):
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        cls()(torch.tensor([[0.5, 1.5]]), torch.tensor([[0.0, 1.0]]))


def test_bad_settings_and_calls():
    with pytest.raises(ValueError, match="reduction"):
        hg.MSELoss(reduction="avg")
    with pytest.raises(RuntimeError, match="more often than forward"):
        hg.MSELoss().backward()
    loss = hg.MSELoss(reduction="none")
    loss(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\)"):
        loss.backward(torch.ones(4))
    with pytest.raises(ValueError, match="lambda_"):
        hg.L2(-1.0, [torch.zeros(2)])
    with pytest.raises(TypeError, match="floating-point prediction"):
        hg.MSELoss()(torch.tensor([1, 2]), torch.tensor([1, 2]))
