"""ops/loss.py: every loss pair vs torch.nn.functional in float64, backward vs autograd,
for each reduction and upstream."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    SHAPES,
    VALUE_KINDS,
    check_pair,
    make_values,
    pair,
)

from handgrad import ops

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
