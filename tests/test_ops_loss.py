"""ops/loss.py: every loss pair vs torch.nn.functional in float64, backward vs autograd,
for each reduction and upstream."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    SHAPES,
    VALUE_KINDS,
    check_pair,
    make_values,
    pair,
    r,
)

from handgrad import ops
from handgrad.check import gradcheck

F64 = torch.float64


# ---- losses --------------------------------------------------------------------------------------
DLOSS = [  # reduction, dL/dloss: a float or a 0-d tensor for a scalar loss, one per term for none
    ("mean", 0.7),
    ("mean", torch.tensor(0.7, dtype=F64)),
    ("sum", -1.3),
    ("sum", torch.tensor(-1.3, dtype=F64)),
    ("none", None),
]
DLOSS_IDS = ["mean-float", "mean-tensor", "sum-float", "sum-tensor", "none"]
ELEMENTWISE = [  # (op, extra forward arguments, torch reference)
    ("mse_loss", (), F.mse_loss),
    ("l1_loss", (), F.l1_loss),
    ("huber_loss", (), F.huber_loss),
    ("huber_loss", (0.3,), lambda p, t, reduction: F.huber_loss(p, t, reduction, delta=0.3)),
    ("bce_loss", (), F.binary_cross_entropy),
    ("bce_with_logits", (), F.binary_cross_entropy_with_logits),
]


def _pred_and_target(op, shape, kind):
    pred = make_values(shape, kind)
    if op == "bce_loss":  # probabilities; "large" saturates some to exactly 0 or 1
        pred = torch.sigmoid(pred)
    if op.startswith("bce"):
        return pred, torch.rand(shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    if kind == "zeros":  # pred == target at the zeros: the kink of L1 and sign(0) = 0
        return pred, make_values(shape, "zeros", seed=7)
    return pred, make_values(shape, "normal", seed=7)


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "op,args,reference", ELEMENTWISE, ids=[f"{c[0]}{c[1]}" for c in ELEMENTWISE]
)
def test_elementwise_loss(op, args, reference, shape, kind, reduction, g):
    forward, backward = pair(op)
    check_pair(
        lambda p, t: forward(p, t, reduction, *args),
        backward,
        lambda p, t: reference(p, t, reduction=reduction),
        list(_pred_and_target(op, shape, kind)),
        g,
    )


CLASS_SHAPES = [((5,), ()), ((4, 3), (4,)), ((2, 5, 3), (2, 3))]  # (scores, index target)


def _indices(shape, index_shape, seed=1):
    C = shape[0] if len(shape) == 1 else shape[1]
    return torch.randint(0, C, index_shape, generator=torch.Generator().manual_seed(seed))


def _class_probabilities(shape, seed):
    return torch.softmax(make_values(shape, "normal", seed), 0 if len(shape) == 1 else 1)


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("target_kind", ["indices", "probabilities"])
@pytest.mark.parametrize("kind", ["normal", "large", "negative"])
@pytest.mark.parametrize("shape,index_shape", CLASS_SHAPES)
def test_cross_entropy(shape, index_shape, kind, target_kind, reduction, g):
    z = make_values(shape, kind)
    if target_kind == "indices":
        t = _indices(shape, index_shape)
    else:
        t = _class_probabilities(shape, seed=5)
    check_pair(
        lambda z_: ops.cross_entropy_forward(z_, t, reduction),
        ops.cross_entropy_backward,
        lambda z_: F.cross_entropy(z_, t, reduction=reduction),
        [z],
        g,
    )


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("kind", ["normal", "large", "negative"])
@pytest.mark.parametrize("shape,index_shape", CLASS_SHAPES)
def test_cross_entropy_with_nothing_ignored(shape, index_shape, kind, reduction, g):
    """ignore_index=None (no target can be ignored): the plain path, -log p_y, against torch."""
    z, y = make_values(shape, kind), _indices(shape, index_shape)
    check_pair(
        lambda z_: ops.cross_entropy_forward(z_, y, reduction, ignore_index=None),
        ops.cross_entropy_backward,
        lambda z_: F.cross_entropy(z_, y, reduction=reduction),
        [z],
        g,
    )


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("shape,index_shape", CLASS_SHAPES)
def test_cross_entropy_plain_path_has_the_general_paths_numbers(
    shape, index_shape, dtype, reduction, g
):
    """The plain path (nothing ignored) and the general one (ignore_index=-100, nothing equal to
    it) give the same bits: the loss and dL/dz."""
    z, y = make_values(shape, "normal").to(dtype), _indices(shape, index_shape)
    results = []
    for ignore_index in (None, -100):
        loss, cache = ops.cross_entropy_forward(z, y, reduction, ignore_index=ignore_index)
        up = torch.linspace(-1, 1, loss.numel(), dtype=dtype).view(loss.shape) if g is None else g
        up = up.to(dtype) if isinstance(up, torch.Tensor) else up
        results.append((loss, ops.cross_entropy_backward(up, cache)))
    (loss, dz), (loss_ref, dz_ref) = results
    torch.testing.assert_close(loss, loss_ref, rtol=0, atol=0)
    torch.testing.assert_close(dz, dz_ref, rtol=0, atol=0)


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("shape,index_shape", CLASS_SHAPES)
def test_nll_loss(shape, index_shape, reduction, g):
    logp = torch.log(_class_probabilities(shape, seed=0))
    y = _indices(shape, index_shape, seed=2)
    check_pair(
        lambda x: ops.nll_loss_forward(x, y, reduction),
        ops.nll_loss_backward,
        lambda x: F.nll_loss(x, y, reduction=reduction),
        [logp],
        g,
    )


def _categorical_cross_entropy(p, t, reduction):
    terms = -(t * torch.log(p)).sum(0 if p.dim() == 1 else 1)
    return {"mean": terms.mean(), "sum": terms.sum(), "none": terms}[reduction]


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("target_kind", ["one-hot", "indices", "probabilities"])
@pytest.mark.parametrize("shape,index_shape", CLASS_SHAPES)
def test_categorical_cross_entropy(shape, index_shape, target_kind, reduction, g):
    dim = 0 if len(shape) == 1 else 1
    idx = _indices(shape, index_shape, seed=4)
    onehot = F.one_hot(idx, shape[dim]).to(F64).movedim(-1, dim)
    t = {"one-hot": onehot, "indices": idx, "probabilities": _class_probabilities(shape, 9)}
    dense = onehot if target_kind == "indices" else t[target_kind]
    check_pair(
        lambda p: ops.categorical_cross_entropy_forward(p, t[target_kind], reduction),
        ops.categorical_cross_entropy_backward,
        lambda p: _categorical_cross_entropy(p, dense, reduction),
        [_class_probabilities(shape, seed=0)],
        g,
    )


# ---- options: weights, ignore_index, label smoothing, pos_weight ---------------------------------
W3 = torch.tensor([0.5, 2.0, 1.5], dtype=F64)


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore_index", [-100, 1])
@pytest.mark.parametrize("weight", [None, W3], ids=["unweighted", "weighted"])
def test_cross_entropy_options(weight, ignore_index, label_smoothing, reduction, g):
    z = make_values((2, 3, 4), "normal")
    y = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1]])
    kw = {"weight": weight, "ignore_index": ignore_index, "label_smoothing": label_smoothing}
    check_pair(
        lambda z_: ops.cross_entropy_forward(z_, y, reduction, **kw),
        ops.cross_entropy_backward,
        lambda z_: F.cross_entropy(z_, y, reduction=reduction, **kw),
        [z],
        g,
    )


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weight", [None, W3], ids=["unweighted", "weighted"])
def test_cross_entropy_probabilities_with_options(weight, label_smoothing, reduction, g):
    z, t = make_values((4, 3), "large"), _class_probabilities((4, 3), seed=5)
    kw = {"weight": weight, "label_smoothing": label_smoothing}
    check_pair(
        lambda z_: ops.cross_entropy_forward(z_, t, reduction, **kw),
        ops.cross_entropy_backward,
        lambda z_: F.cross_entropy(z_, t, reduction=reduction, **kw),
        [z],
        g,
    )


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("weight", [None, W3], ids=["unweighted", "weighted"])
def test_nll_loss_options(weight, ignore_index, reduction, g):
    x = torch.log(_class_probabilities((5, 3), seed=0))
    y = torch.tensor([0, 2, 1, 2, 0])
    kw = {"weight": weight, "ignore_index": ignore_index}
    check_pair(
        lambda x_: ops.nll_loss_forward(x_, y, reduction, **kw),
        ops.nll_loss_backward,
        lambda x_: F.nll_loss(x_, y, reduction=reduction, **kw),
        [x],
        g,
    )


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("pos_weight", [None, "class"])
@pytest.mark.parametrize("weight", [None, "class", "full"])
def test_bce_weights(weight, pos_weight, reduction, g):
    z = make_values((4, 3), "large")
    t = torch.rand((4, 3), generator=torch.Generator().manual_seed(3), dtype=F64)
    ws = {None: None, "class": W3, "full": make_values((4, 3), "normal", seed=8).abs()}
    w, pw = ws[weight], ws[pos_weight]
    check_pair(
        lambda z_: ops.bce_with_logits_forward(z_, t, reduction, w, pw),
        ops.bce_with_logits_backward,
        lambda z_: F.binary_cross_entropy_with_logits(
            z_, t, weight=w, pos_weight=pw, reduction=reduction
        ),
        [z],
        g,
    )
    check_pair(
        lambda p: ops.bce_loss_forward(p, t, reduction, w),
        ops.bce_loss_backward,
        lambda p: F.binary_cross_entropy(p, t, weight=w, reduction=reduction),
        [torch.sigmoid(make_values((4, 3), "normal"))],
        g,
    )


# ---- the new losses ------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("kind", VALUE_KINDS)
def test_smooth_l1_loss(kind, beta, reduction, g):
    pred, target = _pred_and_target("smooth_l1_loss", (4, 3), kind)
    check_pair(
        lambda p, t: ops.smooth_l1_loss_forward(p, t, reduction, beta),
        ops.smooth_l1_loss_backward,
        lambda p, t: F.smooth_l1_loss(p, t, reduction=reduction, beta=beta),
        [pred, target],
        g,
    )


@pytest.mark.parametrize("reduction,g", [*DLOSS, ("batchmean", 0.7)], ids=[*DLOSS_IDS, "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(log_target, reduction, g):
    x = torch.log(_class_probabilities((4, 3), seed=0))
    t = _class_probabilities((4, 3), seed=1)
    if log_target:
        t = torch.log(t)
    else:
        t[0, 0] = 0.0  # 0 log 0 = 0
    check_pair(
        lambda x_: ops.kl_div_forward(x_, t, reduction, log_target),
        ops.kl_div_backward,
        quiet_kl_div(F.kl_div, t, reduction, log_target),
        [x],
        g,
    )


def quiet_kl_div(kl_div, t, reduction, log_target):
    def reference(x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reduction="mean"'s advice
            return kl_div(x, t, reduction=reduction, log_target=log_target)

    return reference


def _signs(*shape, seed=3):
    gen = torch.Generator().manual_seed(seed)
    return torch.where(torch.rand(shape, generator=gen) > 0.5, 1.0, -1.0).to(F64)


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("kind", VALUE_KINDS)
def test_soft_margin_loss(kind, reduction, g):
    y = _signs(4, 3)
    check_pair(
        lambda x: ops.soft_margin_loss_forward(x, y, reduction),
        ops.soft_margin_loss_backward,
        lambda x: F.soft_margin_loss(x, y, reduction=reduction),
        [make_values((4, 3), kind)],
        g,
    )


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("weight", [None, W3], ids=["unweighted", "weighted"])
def test_multilabel_soft_margin_loss(weight, reduction, g):
    y = (_signs(4, 3) > 0).to(F64)
    check_pair(
        lambda x: ops.multilabel_soft_margin_loss_forward(x, y, reduction, weight),
        ops.multilabel_soft_margin_loss_backward,
        lambda x: F.multilabel_soft_margin_loss(x, y, weight=weight, reduction=reduction),
        [make_values((4, 3), "large")],
        g,
    )


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("margin", [0.0, 0.4])
def test_margin_ranking_loss(margin, reduction, g):
    y = _signs(6)
    x1, x2 = make_values((6,), "normal", seed=1), make_values((6,), "normal", seed=2)
    check_pair(
        lambda a, b: ops.margin_ranking_loss_forward(a, b, y, reduction, margin),
        ops.margin_ranking_loss_backward,
        lambda a, b: F.margin_ranking_loss(a, b, y, margin=margin, reduction=reduction),
        [x1, x2],
        g,
    )


@pytest.mark.parametrize("reduction,g", DLOSS, ids=DLOSS_IDS)
@pytest.mark.parametrize("margin", [0.0, 0.3])
@pytest.mark.parametrize("unbatched", [False, True])
def test_cosine_embedding_loss(unbatched, margin, reduction, g):
    shape, y = ((4,), torch.tensor(-1.0, dtype=F64)) if unbatched else ((5, 3), _signs(5))
    x1, x2 = make_values(shape, "normal", seed=1), make_values(shape, "normal", seed=2)
    check_pair(
        lambda a, b: ops.cosine_embedding_loss_forward(a, b, y, reduction, margin),
        ops.cosine_embedding_loss_backward,
        lambda a, b: F.cosine_embedding_loss(a, b, y, margin=margin, reduction=reduction),
        [x1, x2],
        g,
    )


# ---- gradcheck: each new pair against autograd and finite differences --------------------------
def _gradcheck_cases():
    unit = torch.rand(4, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    W5 = torch.tensor([0.5, 2.0, 1.5, 0.7, 1.2], dtype=F64)
    x1 = torch.tensor([0.3, -1.2, 2.0, 0.5, -0.4, 1.1], dtype=F64)  # |x1 - x2| ± margin ≥ 0.2
    x2 = torch.tensor([-0.9, 0.4, 1.1, 1.6, 0.8, 1.0], dtype=F64)
    return [  # (id, op, inputs)
        ("smooth_l1", "smooth_l1_loss", (r(4, 3) * 2, r(4, 3, seed=1), "none", 0.5)),
        ("kl_div", "kl_div", (torch.log(unit), torch.softmax(r(4, 3), 1), "batchmean")),
        ("kl_div-log", "kl_div", (torch.log(unit), r(4, 3) - 2, "sum", True)),
        ("soft_margin", "soft_margin_loss", (r(4, 3) * 3, _signs(4, 3))),
        ("multilabel", "multilabel_soft_margin_loss", (r(4, 3), unit.round(), "sum", W3)),
        ("margin_ranking", "margin_ranking_loss", (x1, x2, _signs(6), "mean", 0.1)),
        ("cosine_embedding", "cosine_embedding_loss", (r(5, 3), r(5, 3, seed=1), _signs(5))),
        (
            "ce-options",
            "cross_entropy",
            (r(5, 5), torch.tensor([0, 4, 1, 1, 2]), "mean", W5, 1, 0.2),
        ),
        ("ce-probs-options", "cross_entropy", (r(4, 3), unit, "sum", W3, -100, 0.3)),
        ("nll-options", "nll_loss", (r(5, 5), torch.tensor([0, 4, 1, 1, 2]), "mean", W5, 4)),
        ("bce-weight", "bce_loss", (torch.sigmoid(r(4, 3)), unit, "sum", W3)),
        ("bce_with_logits-pos", "bce_with_logits", (r(4, 3) * 3, unit, "mean", unit, W3)),
    ]


@pytest.mark.parametrize(
    "op,inputs", [pytest.param(op, inputs, id=i) for i, op, inputs in _gradcheck_cases()]
)
def test_gradcheck_new_pairs(op, inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning from inside a pair
        report = gradcheck(pair(op), *inputs)
    assert report.ok, str(report)
    assert {c.reference for c in report.comparisons} == {"autograd", "finite differences"}
