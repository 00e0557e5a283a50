"""Conformance sweep of every loss against torch.nn in float64: each option combination, every
reduction (also the deprecated size_average/reduce), weights, ignore_index, label smoothing,
shapes (C,), (N, C), (N, C, d1, d2) and empty batches; forward and dL/dinput (tests/parity.py),
built both by from_torch and by the same positional arguments (the signature)."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
import torch.nn as nn
from parity import assert_matches_torch

import handgrad as hg
from handgrad.interop import _same

F64 = torch.float64
REDUCTIONS = ["mean", "sum", "none"]
TOL = {"rtol": 1e-8, "atol": 1e-12}  # float64: tighter than the default, to see float32 slips


def _id(value):
    """Test ids that show a shape as (4, 3) and None as None (pytest numbers them otherwise)."""
    return str(value) if value is None or isinstance(value, tuple) else None


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(shape, generator=_gen(seed), dtype=F64) * scale


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=_gen(seed), dtype=F64)


def _check_none(ref, mine, inputs, differentiate):
    """What assert_matches_torch checks, for a loss that returns its terms: parity.py feeds a
    loss no upstream gradient, so here a random one weighs each term."""
    ref = ref.double()
    mine = hg.from_torch(ref) if mine is None else mine.to(dtype=F64)
    if mine is not None and mine.state_dict():
        mine.load_state_dict({k: v.clone() for k, v in ref.state_dict().items()})
    xs = [x.to(F64) if x.is_floating_point() else x for x in inputs]
    leaves = [x.clone().requires_grad_(True) if i in differentiate else x for i, x in enumerate(xs)]
    expected = ref(*leaves)
    got = mine(*[x.clone() for x in xs])
    torch.testing.assert_close(got, expected.detach(), equal_nan=True, **TOL)
    g = randn(*expected.shape, seed=5)
    wanted = [leaves[i] for i in differentiate]
    if expected.requires_grad:
        auto = torch.autograd.grad((expected * g).sum(), wanted, materialize_grads=True)
    else:
        auto = tuple(torch.zeros_like(w) for w in wanted)
    hand = mine.backward(g)
    hand = hand if isinstance(hand, tuple) else (hand,)
    for i, a in zip(differentiate, auto):
        torch.testing.assert_close(hand[i], a, equal_nan=True, **TOL)
    twin = hg.to_torch(mine)
    assert type(twin) is type(ref)
    for key, value in vars(ref).items():
        if not key.startswith("_"):
            assert _same(getattr(twin, key, None), value), f"to_torch: {key}"


def check(cls_name, args, kwargs, inputs, differentiate=(0,)):
    """nn.<cls_name>(*args, **kwargs) against handgrad's, twice: the twin from from_torch, and
    hg.<cls_name>(*args, **kwargs) built by hand."""
    for by_hand in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # size_average/reduce, KLDivLoss's 'mean'
            ref = getattr(nn, cls_name)(*args, **kwargs)
            mine = getattr(hg, cls_name)(*args, **kwargs) if by_hand else None
            if ref.reduction == "none":
                _check_none(ref, mine, inputs, list(differentiate))
            else:
                assert_matches_torch(
                    ref, inputs, hg_module=mine, differentiate=differentiate, equal_nan=True, **TOL
                )


def _class_inputs(shape, target_kind, ignore_index, seed=0):
    """Logits of `shape`; class indices (some equal to ignore_index when it is a class) or
    class probabilities."""
    z = randn(*shape, seed=seed, scale=2.0)
    C = shape[0] if len(shape) == 1 else shape[1]
    if target_kind == "probabilities":
        return z, torch.softmax(randn(*shape, seed=seed + 1), 0 if len(shape) == 1 else 1)
    index_shape = shape[:0] if len(shape) == 1 else shape[:1] + shape[2:]
    y = torch.randint(0, C, index_shape, generator=_gen(seed + 2))
    if ignore_index >= 0 and y.numel() > 1:
        y.view(-1)[::3] = ignore_index
    return z, y


CLASS_SHAPES = [(5,), (4, 3), (2, 3, 4), (2, 3, 2, 2), (0, 3, 2)]
W3 = torch.tensor([0.3, 2.0, 1.1], dtype=F64)
W5 = torch.tensor([0.3, 2.0, 1.1, 0.7, 1.6], dtype=F64)


def _class_weight(shape, weighted):
    C = shape[0] if len(shape) == 1 else shape[1]
    return None if not weighted else (W5 if C == 5 else W3)


@pytest.mark.parametrize(
    "shape,target_kind,weighted,ignore_index,label_smoothing,reduction",
    list(
        itertools.product(
            CLASS_SHAPES,
            ["indices", "probabilities"],
            [False, True],
            [-100, 1],
            [0.0, 0.25],
            REDUCTIONS,
        )
    ),
    ids=_id,
)
def test_cross_entropy(shape, target_kind, weighted, ignore_index, label_smoothing, reduction):
    z, t = _class_inputs(shape, target_kind, ignore_index)
    w = _class_weight(shape, weighted)
    args = (w, None, ignore_index, None, reduction, label_smoothing)
    if target_kind == "probabilities" and ignore_index >= 0:  # torch refuses the combination
        with pytest.raises(RuntimeError, match="ignore_index"):
            nn.CrossEntropyLoss(*args)(z, t)
        with pytest.raises(RuntimeError, match="ignore_index"):
            hg.CrossEntropyLoss(*args)(z, t)
        return
    check("CrossEntropyLoss", args, {}, [z, t])


@pytest.mark.parametrize(
    "shape,weighted,ignore_index,reduction",
    list(itertools.product(CLASS_SHAPES, [False, True], [-100, 1, -1], REDUCTIONS)),
    ids=_id,
)
def test_nll_loss(shape, weighted, ignore_index, reduction):
    z, y = _class_inputs(shape, "indices", max(ignore_index, 0) if ignore_index != -100 else -1)
    if ignore_index == -1 and y.numel() > 1:
        y.view(-1)[::2] = -1  # a negative ignore_index is not a class: it is only skipped
    x = torch.log_softmax(z, 0 if len(shape) == 1 else 1)
    check(
        "NLLLoss", (_class_weight(shape, weighted), None, ignore_index, None, reduction), {}, [x, y]
    )


@pytest.mark.parametrize(
    "cls_name,weighted,label_smoothing,reduction",
    [
        (c, w, s, r)
        for c, w, s, r in itertools.product(
            ["CrossEntropyLoss", "NLLLoss"], [False, True], [0.0, 0.3], REDUCTIONS
        )
        if not (c == "NLLLoss" and s)
    ],
    ids=_id,
)
def test_every_target_ignored(cls_name, weighted, label_smoothing, reduction):
    """torch's mean of nothing: nan (the summed weight is 0), with zero gradients."""
    z = randn(4, 3, seed=3)
    y = torch.full((4,), 2)
    extra = {"label_smoothing": label_smoothing} if label_smoothing else {}
    args = (W3 if weighted else None, None, 2, None, reduction)
    check(cls_name, args, extra, [z, y])
    if reduction == "mean":
        assert torch.isnan(getattr(hg, cls_name)(*args, **extra)(z, y))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target_kind", ["indices", "probabilities"])
def test_cross_entropy_full_label_smoothing(target_kind, reduction):
    z, t = _class_inputs((4, 3), target_kind, 1)
    ignore_index = 1 if target_kind == "indices" else -100
    check("CrossEntropyLoss", (W3, None, ignore_index, None, reduction, 1.0), {}, [z, t])


def test_cross_entropy_zero_weight_classes_and_huge_logits():
    z = torch.tensor([[1000.0, 0.0, -1000.0], [2.0, 1.0, 0.5], [0.0, 0.0, 0.0]], dtype=F64)
    y = torch.tensor([2, 0, 1])
    w = torch.tensor([0.0, 1.0, 3.0], dtype=F64)
    for reduction, ls in itertools.product(REDUCTIONS, [0.0, 0.1]):
        check("CrossEntropyLoss", (w,), {"reduction": reduction, "label_smoothing": ls}, [z, y])


# ---- binary and multi-label --------------------------------------------------------------------
ELEMENT_SHAPES = [(5,), (4, 3), (2, 3, 4), (0, 3), ()]


def _weights(shape, kind, seed):
    if kind is None or len(shape) == 0:
        return None
    if kind == "class":  # one per entry of the last dim, broadcast over the rest
        return rand(shape[-1], seed=seed) + 0.5
    return rand(*shape, seed=seed) + 0.5  # one per element


@pytest.mark.parametrize(
    "shape,weight,reduction",
    list(itertools.product(ELEMENT_SHAPES, [None, "class", "full"], REDUCTIONS)),
    ids=_id,
)
def test_bce(shape, weight, reduction):
    p = rand(*shape, seed=1) * 0.98 + 0.01
    t = rand(*shape, seed=2)
    if p.numel() > 2:
        p.view(-1)[:2] = torch.tensor([0.0, 1.0], dtype=F64)  # the clamped logs
        t.view(-1)[:2] = torch.tensor([0.0, 1.0], dtype=F64)
    check("BCELoss", (_weights(shape, weight, 3), None, None, reduction), {}, [p, t])


@pytest.mark.parametrize(
    "shape,weight,pos_weight,reduction",
    list(itertools.product(ELEMENT_SHAPES, [None, "class"], [None, "class", "full"], REDUCTIONS)),
    ids=_id,
)
def test_bce_with_logits(shape, weight, pos_weight, reduction):
    z = randn(*shape, seed=1, scale=3.0)
    if z.numel() > 2:
        z.view(-1)[:2] = torch.tensor([800.0, -800.0], dtype=F64)
    t = rand(*shape, seed=2)
    w, pw = _weights(shape, weight, 3), _weights(shape, pos_weight, 4)
    check("BCEWithLogitsLoss", (w, None, None, reduction, pw), {}, [z, t])


@pytest.mark.parametrize(
    "shape,weighted,reduction",
    list(itertools.product([(5,), (4, 3), (2, 3, 4), (0, 3)], [False, True], REDUCTIONS)),
    ids=_id,
)
def test_multilabel_soft_margin(shape, weighted, reduction):
    x = randn(*shape, seed=1, scale=2.0)
    y = (rand(*shape, seed=2) > 0.5).to(F64)
    w = rand(shape[-1], seed=3) + 0.5 if weighted else None
    check("MultiLabelSoftMarginLoss", (w, None, None, reduction), {}, [x, y])


# ---- elementwise -------------------------------------------------------------------------------
def _regression_inputs(shape, kind):
    p, t = randn(*shape, seed=1), randn(*shape, seed=2)
    if kind == "large":
        p = p * 100
    elif kind == "ties" and p.numel():
        p.view(-1)[::2] = t.view(-1)[::2]  # d = 0: sign(0) = 0
        if p.numel() > 1:
            p.view(-1)[1] = t.view(-1)[1] + 1.0  # |d| exactly at δ = β = 1
    return p, t


KINDS = ["large", "ties"]  # "ties" is normal values with some d = 0 and one |d| = 1


@pytest.mark.parametrize(
    "cls_name,shape,kind,reduction",
    list(itertools.product(["MSELoss", "L1Loss"], ELEMENT_SHAPES, KINDS, REDUCTIONS)),
    ids=_id,
)
def test_mse_l1(cls_name, shape, kind, reduction):
    check(cls_name, (None, None, reduction), {}, list(_regression_inputs(shape, kind)))


@pytest.mark.parametrize(
    "shape,kind,reduction,delta",
    list(itertools.product(ELEMENT_SHAPES[1:], KINDS, REDUCTIONS, [1.0, 0.3, 2])),
    ids=_id,
)
def test_huber(shape, kind, reduction, delta):
    check("HuberLoss", (reduction, delta), {}, list(_regression_inputs(shape, kind)))


@pytest.mark.parametrize(
    "shape,kind,reduction,beta",
    list(itertools.product(ELEMENT_SHAPES[1:], KINDS, REDUCTIONS, [1.0, 0.0, 0.5])),
    ids=_id,
)
def test_smooth_l1(shape, kind, reduction, beta):
    check("SmoothL1Loss", (None, None, reduction, beta), {}, list(_regression_inputs(shape, kind)))


@pytest.mark.parametrize(
    "shape,kind,reduction", list(itertools.product(ELEMENT_SHAPES, KINDS, REDUCTIONS)), ids=_id
)
def test_soft_margin(shape, kind, reduction):
    x = _regression_inputs(shape, kind)[0]
    y = torch.where(rand(*shape, seed=3) > 0.5, 1.0, -1.0).to(F64)
    check("SoftMarginLoss", (None, None, reduction), {}, [x, y])


@pytest.mark.parametrize(
    "shape,log_target,reduction",
    list(itertools.product(ELEMENT_SHAPES, [False, True], [*REDUCTIONS, "batchmean"])),
    ids=_id,
)
def test_kl_div(shape, log_target, reduction):
    x = torch.log_softmax(randn(*shape, seed=1), -1) if shape else randn(seed=1) - 1
    t = torch.softmax(randn(*shape, seed=2), -1) if shape else rand(seed=2)
    if t.numel() > 1 and not log_target:
        t.view(-1)[0] = 0.0  # 0 log 0 = 0
    if log_target:
        t = torch.log(t)
    check("KLDivLoss", (None, None, reduction, log_target), {}, [x, t])


# ---- two inputs --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,margin,reduction",
    list(itertools.product([(6,), (), (0,), (2, 3)], [0.0, 0.5, -0.5], REDUCTIONS)),
    ids=_id,
)
def test_margin_ranking(shape, margin, reduction):
    x1, x2 = randn(*shape, seed=1), randn(*shape, seed=2)
    y = torch.where(rand(*shape, seed=3) > 0.5, 1.0, -1.0).to(F64)
    if x1.numel() > 2:
        x2.view(-1)[:2] = x1.view(-1)[:2]  # ties: the hinge sits exactly at margin
        y.view(-1)[:2] = torch.tensor([1.0, -1.0], dtype=F64)
    check("MarginRankingLoss", (margin, None, None, reduction), {}, [x1, x2, y], (0, 1))


@pytest.mark.parametrize(
    "shapes,margin,reduction",
    list(
        itertools.product(
            [((5, 3), (5,)), ((4,), ()), ((0, 3), (0,))], [0.0, 0.3, -0.2], REDUCTIONS
        )
    ),
    ids=_id,
)
def test_cosine_embedding(shapes, margin, reduction):
    x_shape, y_shape = shapes
    x1, x2 = randn(*x_shape, seed=1), randn(*x_shape, seed=2)
    y = torch.where(rand(*y_shape, seed=3) > 0.5, 1.0, -1.0).to(F64)
    if len(y_shape) and y.numel() > 3:
        y[0] = 0.0  # neither 1 nor -1: no loss
        x2[1] = x1[1] * 2  # cos = 1
        x1[2] = 0.0  # |x1| = 0: torch's eps keeps cos finite
    check("CosineEmbeddingLoss", (margin, None, None, reduction), {}, [x1, x2, y], (0, 1))


def test_cosine_embedding_integer_target():
    x1, x2 = randn(3, 4, seed=1), randn(3, 4, seed=2)
    check("CosineEmbeddingLoss", (), {}, [x1, x2, torch.tensor([1, -1, 1])], (0, 1))


# ---- the deprecated size_average / reduce --------------------------------------------------------
LEGACY = list(itertools.product([None, True, False], [None, True, False]))
LEGACY_CASES = {  # class: (positional args before size_average, inputs, differentiate)
    "MSELoss": ((), lambda: [randn(4, 3, seed=1), randn(4, 3, seed=2)], (0,)),
    "L1Loss": ((), lambda: [randn(4, 3, seed=1), randn(4, 3, seed=2)], (0,)),
    "SmoothL1Loss": ((), lambda: [randn(4, 3, seed=1), randn(4, 3, seed=2)], (0,)),
    "SoftMarginLoss": ((), lambda: [randn(4, 3, seed=1), torch.ones(4, 3, dtype=F64)], (0,)),
    "KLDivLoss": ((), lambda: [-rand(4, 3, seed=1), rand(4, 3, seed=2)], (0,)),
    "BCELoss": ((W3,), lambda: [rand(4, 3, seed=1), rand(4, 3, seed=2)], (0,)),
    "BCEWithLogitsLoss": ((W3,), lambda: [randn(4, 3, seed=1), rand(4, 3, seed=2)], (0,)),
    "MultiLabelSoftMarginLoss": ((W3,), lambda: [randn(4, 3, seed=1), rand(4, 3) > 0.5], (0,)),
    "CrossEntropyLoss": ((W3,), lambda: [randn(4, 3, seed=1), torch.tensor([0, 2, 1, 2])], (0,)),
    "NLLLoss": ((W3,), lambda: [-rand(4, 3, seed=1), torch.tensor([0, 2, 1, 2])], (0,)),
    "MarginRankingLoss": (
        (0.1,),
        lambda: [randn(5, seed=1), randn(5, seed=2), torch.ones(5, dtype=F64)],
        (0, 1),
    ),
    "CosineEmbeddingLoss": (
        (0.1,),
        lambda: [randn(3, 4, seed=1), randn(3, 4, seed=2), torch.tensor([1.0, -1.0, -1.0])],
        (0, 1),
    ),
}


@pytest.mark.parametrize("size_average,reduce", LEGACY)
@pytest.mark.parametrize("cls_name", sorted(LEGACY_CASES))
def test_legacy_size_average_and_reduce(cls_name, size_average, reduce):
    head, make_inputs, differentiate = LEGACY_CASES[cls_name]
    inputs = [x.to(F64) if x.dtype == torch.bool else x for x in make_inputs()]
    if cls_name in ("CrossEntropyLoss", "NLLLoss"):  # ignore_index sits between them
        args = (*head, size_average, -100, reduce)
    else:
        args = (*head, size_average, reduce)
    check(cls_name, args, {}, inputs, differentiate)
    if size_average is not None or reduce is not None:
        with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
            mine = getattr(hg, cls_name)(*args)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert mine.reduction == getattr(nn, cls_name)(*args).reduction


@pytest.mark.parametrize("cls_name", sorted(LEGACY_CASES) + ["HuberLoss"])
def test_elementwise_mean_is_mean(cls_name):
    if cls_name == "MultiLabelSoftMarginLoss":  # torch's functional refuses it there
        with pytest.raises(ValueError, match="elementwise_mean"):
            hg.MultiLabelSoftMarginLoss(reduction="elementwise_mean")
        return
    with pytest.warns(UserWarning, match="elementwise_mean"):
        mine = getattr(hg, cls_name)(reduction="elementwise_mean")
    assert mine.reduction == "elementwise_mean" and mine._reduction == "mean"
