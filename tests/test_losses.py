"""Each loss: forward vs torch.nn.functional, dL/dpred vs autograd in float64, edge values."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from conftest import SHAPES, VALUE_KINDS, assert_close, autograd_grads, make_values, upstream

import handgrad as hg
from handgrad.errors import ArgumentTypeError, InputError, ShapeError, TargetIndexError
from handgrad.mode import capture_safe

REDUCTIONS = ["mean", "sum", "none"]

ELEMENTWISE = [
    ("MSELoss", hg.MSELoss, F.mse_loss),
    ("L1Loss", hg.L1Loss, F.l1_loss),
    ("HuberLoss", lambda reduction: hg.HuberLoss(reduction, 1.0), F.huber_loss),
    (
        "HuberLoss(0.3)",
        lambda reduction: hg.HuberLoss(reduction, 0.3),
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
    _check_loss(hg.BCELoss(reduction=reduction), F.binary_cross_entropy, p, t, reduction)


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
    _check_loss(
        hg.BCEWithLogitsLoss(reduction="none"), F.binary_cross_entropy_with_logits, z, t, "none"
    )
    assert_close(
        hg.BCEWithLogitsLoss(reduction="none")(z, t)[:4],
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
    loss = hg.CrossEntropyLoss(reduction=reduction)
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
    loss = hg.CrossEntropyLoss(reduction=reduction)
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
    loss = hg.NLLLoss(reduction=reduction)
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


def test_integer_one_hot_target_is_read_as_one_hot():
    p = torch.softmax(torch.randn(4, 3), 1)
    onehot = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    loss = hg.CategoricalCrossEntropy
    assert_close(loss()(p, onehot), loss()(p, torch.tensor([0, 1, 2, 0])))


def test_cross_entropy_refuses_an_integer_target_of_the_prediction_shape():
    """torch reads a target of the logits' shape as probabilities, which must be floating."""
    onehot = torch.tensor([[1, 0, 0], [0, 1, 0]])
    with pytest.raises(RuntimeError, match="Expected floating point type"):
        torch.nn.CrossEntropyLoss()(torch.zeros(2, 3), onehot)
    with pytest.raises(ShapeError, match=r"class probabilities and must be floating"):
        hg.CrossEntropyLoss()(torch.zeros(2, 3), onehot)


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


# ---- penalties -----------------------------------------------------------------------------------
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


# ---- bad input -----------------------------------------------------------------------------------
# Each error is a handgrad error and also the builtin class torch raises in the same place.
def test_no_silent_broadcasting():
    with pytest.raises(ShapeError, match=r"MSELoss.*\(4, 1\).*\(4,\).*same shape"):
        hg.MSELoss()(torch.zeros(4, 1), torch.zeros(4))


@pytest.mark.parametrize("target", [torch.tensor([0, 3]), torch.tensor([-1, 0])])
@pytest.mark.parametrize("cls", [hg.CrossEntropyLoss, hg.NLLLoss, hg.CategoricalCrossEntropy])
def test_class_index_out_of_range(cls, target):
    pred = torch.full((2, 3), 1 / 3)
    with pytest.raises(TargetIndexError, match=r"class indices must be in \[0, 2\]"):
        cls()(pred, target)
    with pytest.raises(IndexError):  # torch's type
        cls()(pred, target)


@pytest.mark.parametrize("cls", [hg.CrossEntropyLoss, hg.NLLLoss])
def test_ignore_index_may_lie_outside_the_classes(cls):
    pred = torch.log_softmax(torch.randn(3, 4, dtype=torch.float64), 1)
    for ignore in (7, -1):
        y = torch.tensor([ignore, 1, ignore])
        expected = getattr(torch.nn, cls.__name__)(ignore_index=ignore)(pred, y)
        assert_close(cls(ignore_index=ignore)(pred, y), expected)
    with pytest.raises(IndexError, match="out of bounds"):
        cls(ignore_index=7)(pred, torch.tensor([7, 4, 0]))


@pytest.mark.parametrize(
    "ignore,capture,masks",
    [  # the ignore_index the op gets for targets with no ignored index, then with some
        (-100, False, [None, -100]),  # -100 cannot be a class: a mask only when a target is it
        (1, False, [1, 1]),  # a class: always the mask
        (-100, True, [None]),  # capture_safe: fit checked every label is in [0, C)
        (1, True, [1, 1]),
    ],
)
def test_cross_entropy_masks_only_when_a_target_may_be_ignored(ignore, capture, masks, monkeypatch):
    """The op's mask is skipped (ignore_index=None) only when no target can equal ignore_index."""
    seen = []
    forward = hg.ops.cross_entropy_forward

    def spy(*args, **kw):
        seen.append(kw["ignore_index"])
        return forward(*args, **kw)

    monkeypatch.setattr(hg.CrossEntropyLoss, "op_pair", (spy, hg.ops.cross_entropy_backward))
    z = torch.randn(6, 4, dtype=torch.float64)
    targets = [torch.tensor([0, 2, 3, 2, 0, 3]), torch.tensor([ignore, 1, 3, 2, ignore, 3])]
    loss = hg.CrossEntropyLoss(ignore_index=ignore)
    ref = torch.nn.CrossEntropyLoss(ignore_index=ignore)
    with capture_safe() if capture else contextlib.nullcontext():
        for y in targets[: len(masks)]:
            assert_close(loss(z, y), ref(z, y))
            zt = z.clone().requires_grad_()
            ref(zt, y).backward()
            assert_close(loss.backward(), zt.grad)
    assert seen == masks


@pytest.mark.parametrize(
    "pred,target,error,match",
    [
        ((4, 3), torch.zeros(4, 1, dtype=torch.long), ShapeError, r"indices of shape \(4,\)"),
        ((4, 3), torch.zeros(3, dtype=torch.long), ValueError, r"indices of shape \(4,\)"),
        ((2, 3, 5), torch.zeros(2, 4, dtype=torch.long), RuntimeError, r"shape \(2, 5\)"),
        ((4, 3), torch.zeros(4), RuntimeError, "expected integer class indices"),
        ((4, 3), torch.zeros(4, dtype=torch.bool), RuntimeError, "integer class indices"),
        ((), torch.tensor(0), RuntimeError, r"shape \(C,\) or \(N, C, ...\)"),
    ],
)
def test_cross_entropy_bad_targets(pred, target, error, match):
    with pytest.raises(error, match=match):
        hg.CrossEntropyLoss()(torch.zeros(pred), target)


def test_class_weight_of_wrong_size():
    for cls in (hg.CrossEntropyLoss, hg.NLLLoss):
        with pytest.raises(RuntimeError, match="for all 4 classes"):
            cls(weight=torch.ones(3))(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="for all 4 classes"):
        hg.CrossEntropyLoss(weight=torch.ones(3))(torch.zeros(2, 4), torch.rand(2, 4))


def test_probability_target_refuses_ignore_index():
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        hg.CrossEntropyLoss(ignore_index=0)(torch.zeros(2, 3), torch.rand(2, 3))


@pytest.mark.parametrize("cls", [hg.BCELoss, hg.CategoricalCrossEntropy])
def test_probabilities_outside_unit_interval(cls):
    with pytest.raises(RuntimeError, match=r"probabilities in \[0, 1\]"):
        cls()(torch.tensor([[0.5, 1.5]]), torch.tensor([[0.0, 1.0]]))


def test_bce_target_outside_unit_interval():
    with pytest.raises(RuntimeError, match=r"target probabilities in \[0, 1\]"):
        hg.BCELoss()(torch.tensor([0.5, 0.5]), torch.tensor([0.0, 2.0]))


@pytest.mark.parametrize(
    "make",
    [
        lambda: hg.BCELoss(weight=torch.ones(4)),
        lambda: hg.BCELoss(weight=torch.ones(2, 4, 3)),
        lambda: hg.BCEWithLogitsLoss(pos_weight=torch.ones(2)),
        lambda: hg.BCEWithLogitsLoss(weight=torch.ones(5, 4, 3)),
        lambda: hg.MultiLabelSoftMarginLoss(weight=torch.ones(2)),
    ],
)
def test_weights_that_do_not_broadcast(make):
    with pytest.raises(RuntimeError, match="does not broadcast"):
        make()(torch.rand(4, 3), torch.rand(4, 3))


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: hg.MSELoss(reduction="avg"), ValueError, "reduction must be one of"),
        (lambda: hg.MSELoss(reduction="batchmean"), ValueError, "reduction must be one of"),
        (lambda: hg.MSELoss("sum"), TypeError, r"size_average must be a bool.*reduction='sum'"),
        (lambda: hg.CrossEntropyLoss("sum"), TypeError, "weight must be a tensor or None"),
        (lambda: hg.CrossEntropyLoss(ignore_index=1.5), TypeError, "ignore_index must be an int"),
        (lambda: hg.CrossEntropyLoss(label_smoothing=1.5), RuntimeError, "between 0.0 and 1.0"),
        (lambda: hg.CrossEntropyLoss(label_smoothing=-0.1), ValueError, "between 0.0 and 1.0"),
        (lambda: hg.HuberLoss(delta=0.0), RuntimeError, "delta must be positive"),
        (lambda: hg.HuberLoss(delta="1"), TypeError, "delta must be a float or int"),
        (lambda: hg.HuberLoss(1.0), ValueError, "reduction must be one of"),
        (lambda: hg.SmoothL1Loss(beta=-1.0), RuntimeError, "beta must be >= 0"),
        (lambda: hg.BCEWithLogitsLoss(pos_weight=[1.0]), TypeError, "pos_weight must be a tensor"),
        (lambda: hg.MarginRankingLoss(margin="0"), TypeError, "margin must be a float"),
    ],
)
def test_bad_constructor_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "loss,inputs,error,match",
    [
        (
            hg.MarginRankingLoss(),
            (torch.zeros(3), torch.zeros(3), torch.ones(3, 1)),
            RuntimeError,
            "target of the same shape",
        ),
        (
            hg.MarginRankingLoss(),
            (torch.zeros(3), torch.zeros(2), torch.ones(3)),
            ValueError,
            "same shape",
        ),
        (
            hg.CosineEmbeddingLoss(),
            (torch.zeros(3, 2), torch.zeros(3, 2), torch.tensor(1.0)),
            RuntimeError,
            r"inputs \(N, D\) with a target \(N,\)",
        ),
        (
            hg.CosineEmbeddingLoss(),
            (torch.zeros(2), torch.zeros(2), torch.ones(2)),
            RuntimeError,
            "or \\(D,\\) with a 0-d target",
        ),
        (
            hg.CosineEmbeddingLoss(),
            ([1.0], torch.zeros(2), torch.ones(2)),
            TypeError,
            "first input as a tensor",
        ),
        (hg.MSELoss(), ([1.0], torch.zeros(1)), TypeError, "prediction as a tensor"),
        (hg.KLDivLoss(), (torch.zeros(2, 3), torch.zeros(3)), ValueError, "same shape"),
        (
            hg.MultiLabelSoftMarginLoss(),
            (torch.tensor(1.0), torch.tensor(1.0)),
            RuntimeError,
            "0-d",
        ),
    ],
)
def test_bad_inputs(loss, inputs, error, match):
    with pytest.raises(error, match=match):
        loss(*inputs)


def test_bad_settings_and_calls():
    with pytest.raises(RuntimeError, match="more often than forward"):
        hg.MSELoss().backward()
    loss = hg.MSELoss(reduction="none")
    loss(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match=r"gradient of shape \(3,\)"):
        loss.backward(torch.ones(4))
    with pytest.raises(ValueError, match="lambda_"):
        hg.L2(-1.0, [torch.zeros(2)])
    with pytest.raises(RuntimeError, match="floating-point prediction"):
        hg.MSELoss()(torch.tensor([1, 2]), torch.tensor([1, 2]))


# ---- weights as buffers, interop, the calling convention -----------------------------------------
def test_weights_are_buffers_only_when_given():
    assert list(hg.CrossEntropyLoss().state_dict()) == []
    w, pw = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 1.0, 4.0])
    assert list(hg.CrossEntropyLoss(w).state_dict()) == ["weight"]
    assert list(hg.BCEWithLogitsLoss(pos_weight=pw).state_dict()) == ["pos_weight"]
    loss = hg.BCEWithLogitsLoss(w.clone(), pos_weight=pw.clone())  # kept, not copied, as torch
    assert list(loss.state_dict()) == list(
        torch.nn.BCEWithLogitsLoss(w, pos_weight=pw).state_dict()
    )
    loss.load_state_dict({"weight": w * 2, "pos_weight": pw * 3})
    assert_close(loss.weight, w * 2)
    assert_close(loss.pos_weight, pw * 3)
    loss.to(torch.float64)
    assert loss.weight.dtype == loss.pos_weight.dtype == torch.float64
    with pytest.raises(KeyError, match="unexpected"):
        hg.CrossEntropyLoss().load_state_dict({"weight": w})


@pytest.mark.parametrize(
    "ref",
    [
        torch.nn.CrossEntropyLoss(
            torch.tensor([1.0, 2.0, 3.0]), ignore_index=2, label_smoothing=0.1
        ),
        torch.nn.NLLLoss(torch.tensor([1.0, 2.0]), reduction="sum"),
        torch.nn.BCELoss(torch.tensor([0.5, 2.0])),
        torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([3.0, 1.0])),
        torch.nn.MultiLabelSoftMarginLoss(torch.tensor([0.5, 2.0]), reduction="none"),
        torch.nn.KLDivLoss(reduction="batchmean", log_target=True),
        torch.nn.HuberLoss(delta=0.5),
        torch.nn.SmoothL1Loss(beta=0.0),
        torch.nn.MarginRankingLoss(0.2),
        torch.nn.CosineEmbeddingLoss(-0.1, reduction="sum"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_from_torch_and_back_carry_every_option(ref):
    mine = hg.from_torch(ref)
    twin = hg.to_torch(mine)
    assert type(twin) is type(ref)
    assert {k: v for k, v in vars(twin).items() if not k.startswith("_")} == {
        k: v for k, v in vars(ref).items() if not k.startswith("_")
    }
    for (k, a), (k2, b) in zip(ref.state_dict().items(), twin.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    for k, v in ref.state_dict().items():
        assert torch.equal(mine.state_dict()[k], v)
        assert mine.state_dict()[k] is not v  # a copy: the twin shares nothing with ref
        assert twin.state_dict()[k] is not mine.state_dict()[k]  # nor with to_torch's


def test_numpy_scalars_are_taken_as_torch_takes_them():
    np = pytest.importorskip("numpy")
    loss = hg.CrossEntropyLoss(ignore_index=np.int64(1), label_smoothing=np.float64(0.1))
    ref = torch.nn.CrossEntropyLoss(ignore_index=1, label_smoothing=0.1)
    z, y = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 1, 3])
    assert_close(loss(z, y), ref(z, y))
    assert_close(hg.HuberLoss(delta=np.float32(0.5))(z, z + 1), torch.tensor(0.375, dtype=z.dtype))


def test_two_input_losses_return_two_gradients():
    x1, x2, y = torch.randn(5), torch.randn(5), torch.tensor([1.0, -1, 1, -1, 1])
    loss = hg.MarginRankingLoss(0.1)
    loss(x1, x2, y)
    dx1, dx2 = loss.backward()
    assert_close(dx2, -dx1)
    loss = hg.CosineEmbeddingLoss()
    loss(x1, x2, torch.tensor(1.0))
    assert [t.shape for t in loss.backward()] == [x1.shape, x2.shape]


def test_soft_margin_stays_finite_where_torch_overflows():
    """torch computes log(1 + exp(-y x)): inf for y x = -1000 (and a NaN gradient)."""
    x, y = torch.tensor([-1000.0, 1000.0, 0.0]), torch.tensor([1.0, 1.0, -1.0])
    loss = hg.SoftMarginLoss(reduction="none")
    assert_close(loss(x, y), torch.tensor([1000.0, 0.0, 0.6931472]))
    assert_close(loss.backward(), torch.tensor([-1.0, -0.0, 0.5]))


def test_kl_div_mean_warns_as_torch():
    x, t = torch.log_softmax(torch.randn(2, 3), 1), torch.softmax(torch.randn(2, 3), 1)
    with pytest.warns(UserWarning, match="batchmean"):
        hg.KLDivLoss()(x, t)


def test_repr():
    assert repr(hg.MSELoss()) == "MSELoss(reduction='mean')"
    assert repr(hg.HuberLoss(delta=0.5)) == "HuberLoss(reduction='mean', delta=0.5)"
    assert repr(hg.CrossEntropyLoss(torch.ones(3))) == (
        "CrossEntropyLoss(weight=tensor(3,), ignore_index=-100, reduction='mean', "
        "label_smoothing=0.0)"
    )


def test_errors_are_handgrad_errors():
    """Every refusal above is also a handgrad error (the CLI prints it as one line)."""
    assert issubclass(TargetIndexError, InputError) and issubclass(TargetIndexError, IndexError)
    with pytest.raises(ArgumentTypeError):
        hg.NLLLoss(weight=[1.0])


@pytest.mark.parametrize(
    "make",
    [
        lambda: hg.CrossEntropyLoss(torch.tensor([1.0, 2.0, 3.0]), None, 1, None, "sum", 0.1),
        lambda: hg.NLLLoss(torch.tensor([0.5, 1.0, 2.0])),
        lambda: hg.BCEWithLogitsLoss(torch.tensor([1.0, 2.0, 3.0]), pos_weight=torch.tensor([2.0])),
    ],
)
def test_a_loss_with_class_weights_saves_and_loads(make, tmp_path):
    loss = make()
    hg.save(loss, tmp_path / "loss.safetensors")
    back = hg.load(tmp_path / "loss.safetensors")
    assert back.config().keys() == loss.config().keys()
    for k, t in loss.state_dict().items():
        assert torch.equal(back.state_dict()[k], t)
    x = torch.randn(4, 3)
    t = (
        torch.tensor([0, 1, 2, 2])
        if not isinstance(loss, hg.BCEWithLogitsLoss)
        else torch.rand(4, 3)
    )
    assert torch.equal(back(x, t), loss(x, t))
