"""ops/normalization.py and ops/tensor.py: batch and layer norm, broadcasting ops, matmul,
concat/split, masked_fill and the relabelling ops, vs torch in float64 and autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    VALUE_KINDS,
    assert_close,
    assert_grads,
    autograd_grads,
    check_pair,
    make_values,
    pair,
    r,
    upstream,
)

from handgrad import ops

F64 = torch.float64


# ---- normalization -------------------------------------------------------------------------------
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
@pytest.mark.parametrize("kind", VALUE_KINDS)
def test_batch_norm(kind, shape, training, affine):
    x, C = make_values(shape, kind), shape[1]
    params = [r(C, seed=1), r(C, seed=2)] if affine else []
    mean, var = r(C, seed=3), r(C, seed=4).exp()
    mine, theirs = (mean.clone(), var.clone()), (mean.clone(), var.clone())
    check_pair(
        lambda x_, w=None, b=None: ops.batch_norm_forward(x_, w, b, *mine, training, 0.3, 1e-5),
        ops.batch_norm_backward,
        lambda x_, w=None, b=None: F.batch_norm(x_, *theirs, w, b, training, 0.3, 1e-5),
        [x, *params],
    )
    assert_close(mine, theirs)  # the running statistics moved as torch's did, or stayed put
    moved = not torch.equal(mine[0], mean) and not torch.equal(mine[1], var)
    assert moved == training  # training moves them; evaluation only reads them


@pytest.mark.parametrize("weight,bias", [(True, False), (False, True)])
def test_batch_norm_with_one_of_weight_and_bias(weight, bias):
    def affine(w, b):
        return (w if weight else None), (b if bias else None)

    mean, var = torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)
    check_pair(
        lambda x, w, b: ops.batch_norm_forward(x, *affine(w, b), mean.clone(), var.clone()),
        ops.batch_norm_backward,
        lambda x, w, b: F.batch_norm(x, mean.clone(), var.clone(), *affine(w, b), training=True),
        [r(6, 3), r(3, seed=1), r(3, seed=2)],
    )


@pytest.mark.parametrize(
    "weight,bias", [(True, True), (True, False), (False, True), (False, False)]
)
@pytest.mark.parametrize(
    "x_shape,normalized_shape",
    [((5, 4), (4,)), ((2, 3, 4), (4,)), ((2, 3, 4), (3, 4)), ((4,), (4,))],
)
@pytest.mark.parametrize("kind", VALUE_KINDS)
def test_layer_norm(kind, x_shape, normalized_shape, weight, bias):
    def affine(w, b):  # the parameters this case uses; autograd gives the others None
        return (w if weight else None), (b if bias else None)

    x, w, b = make_values(x_shape, kind), r(*normalized_shape, seed=1), r(*normalized_shape, seed=2)
    y, cache = ops.layer_norm_forward(x, normalized_shape, *affine(w, b))
    g = upstream(y.shape)
    expected, grads = autograd_grads(
        lambda x_, w_, b_: F.layer_norm(x_, normalized_shape, *affine(w_, b_)), [x, w, b], g
    )
    assert_close(y, expected)
    dx, dshape, dw, db = ops.layer_norm_backward(g, cache)  # one per input of the forward
    assert dshape is None  # normalized_shape is not differentiated
    assert_grads([dx, dw, db], grads)


# ---- tensor ops ----------------------------------------------------------------------------------
BROADCAST = [
    ((3, 1, 4), (5, 4)),
    ((5, 4), (3, 1, 4)),
    ((2, 3), (2, 3)),
    ((4,), (2, 3, 4)),
    ((2, 1), (1, 3)),
    ((), (3,)),
]


@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("a_shape,b_shape", BROADCAST)
@pytest.mark.parametrize("op,reference", [("add", torch.add), ("mul", torch.mul)])
def test_broadcasting_op(op, reference, a_shape, b_shape, kind):
    a, b = make_values(a_shape, kind), make_values(b_shape, kind, seed=1)
    check_pair(*pair(op), reference, [a, b])


MATMULS = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),  # batch dims (2, 1) and (5,) broadcast to (2, 5)
    ((4,), (2, 4, 3)),
    ((2, 3, 4), (4,)),
    ((4,), (4, 3)),
    ((4,), (4,)),  # a dot product: y is 0-d
]


@pytest.mark.parametrize("kind", ["normal", "large", "zeros"])
@pytest.mark.parametrize("a_shape,b_shape", MATMULS)
def test_matmul(a_shape, b_shape, kind):
    a, b = make_values(a_shape, kind), make_values(b_shape, kind, seed=1)
    check_pair(*pair("matmul"), torch.matmul, [a, b])


@pytest.mark.parametrize(
    "shapes,dim",
    [([(2, 3), (4, 3)], 0), ([(2, 1, 4), (2, 3, 4), (2, 2, 4)], 1), ([(3, 2), (3, 5)], -1)],
)
def test_concat(shapes, dim):
    check_pair(
        lambda *xs: ops.concat_forward(xs, dim),
        ops.concat_backward,
        lambda *xs: torch.cat(xs, dim),
        [r(*s, seed=i) for i, s in enumerate(shapes)],
    )


@pytest.mark.parametrize("used", ["all", "first", "not the middle", "none"])
@pytest.mark.parametrize(
    "shape,sections,dim", [((6, 4), [1, 3, 2], 0), ((5, 7), 3, 1), ((2, 3, 5), [2, 2, 1], -1)]
)
def test_split(shape, sections, dim, used):
    x = r(*shape)
    ys, cache = ops.split_forward(x, sections, dim)
    expected = x.split(sections, dim)
    assert len(ys) == len(expected) == 3
    for y, e in zip(ys, expected):
        assert_close(y, e)
    keep = {"all": [0, 1, 2], "first": [0], "not the middle": [0, 2], "none": []}[used]
    dys = [upstream(y.shape, seed=i) if i in keep else None for i, y in enumerate(ys)]

    def used_pieces(t):  # Σ dy ⊙ y over the pieces that get an upstream gradient
        pieces = zip(t.split(sections, dim), dys)
        return sum(((y * dy).sum() for y, dy in pieces if dy is not None), 0 * t.sum())

    _, (dx,) = autograd_grads(used_pieces, [x])
    assert_close(ops.split_backward(tuple(dys), cache), dx)


@pytest.mark.parametrize("value", [float("-inf"), 2.5])
@pytest.mark.parametrize(
    "shape,mask",
    [
        ((2, 3, 4, 4), torch.ones(4, 4, dtype=torch.bool).triu(1)),  # causal attention mask
        ((3, 5), torch.tensor([[True], [False], [True]])),
        ((2, 3, 4), torch.tensor([False, True, True, False])),
    ],
)
def test_masked_fill(shape, mask, value):
    check_pair(
        lambda x: ops.masked_fill_forward(x, mask, value),
        ops.masked_fill_backward,
        lambda x: x.masked_fill(mask, value),
        [r(*shape)],
    )


RELABELS = [  # op (a torch.Tensor method of the same name), x shape, its arguments
    ("reshape", (2, 3, 4), ((4, -1),)),
    ("reshape", (6,), ((2, 1, 3),)),
    ("transpose", (2, 3, 4), (0, 2)),
    ("transpose", (2, 3, 4), (-1, 1)),
    ("flatten", (2, 3, 4, 5), (1,)),
    ("flatten", (2, 3, 4, 5), (0, 2)),
    ("unflatten", (2, 12), (1, (3, 4))),
    ("unflatten", (6, 5), (0, (2, -1))),
]


@pytest.mark.parametrize("op,shape,args", RELABELS)
def test_relabelling_op(op, shape, args):
    forward, backward = pair(op)
    check_pair(
        lambda x: forward(x, *args),
        backward,
        lambda x: getattr(x, op)(*args),
        [r(*shape)],
    )
