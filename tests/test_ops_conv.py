"""ops/conv.py: convolution by im2col, forward vs torch.nn.functional in float64,
backward vs autograd; the window helpers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import (
    assert_close,
    autograd_grads,
    check_pair,
    pair,
    r,
    upstream,
)

from handgrad import ops
from handgrad.check import gradcheck

F64 = torch.float64


# ---- convolution ---------------------------------------------------------------------------------
def _per_dim(v, nd):
    return (v,) * nd if isinstance(v, int) else tuple(v)


CONVS = [  # x shape, W shape, stride, symmetric padding, dilation (an int or one per dim)
    ((2, 3, 9), (4, 3, 3), 1, 0, 1),
    ((2, 3, 10), (4, 3, 4), 2, 1, 2),
    ((1, 2, 12), (3, 2, 2), 3, 2, 3),
    ((2, 3, 7, 8), (4, 3, 3, 3), 1, 1, 1),
    ((1, 2, 9, 7), (3, 2, 3, 2), (2, 1), (2, 1), (1, 2)),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation", CONVS)
def test_conv(x_shape, w_shape, stride, padding, dilation, bias):
    nd = len(w_shape) - 2
    s, d = _per_dim(stride, nd), _per_dim(dilation, nd)
    pads = [(p, p) for p in _per_dim(padding, nd)]
    conv = F.conv1d if nd == 1 else F.conv2d
    tensors = [r(*x_shape), r(*w_shape, seed=1)] + ([r(w_shape[0], seed=2)] if bias else [])
    check_pair(
        lambda x, W, b=None: ops.conv_forward(x, W, b, s, pads, d),
        ops.conv_backward,
        lambda x, W, b=None: conv(x, W, b, s, _per_dim(padding, nd), d),
        tensors,
    )


@pytest.mark.parametrize(
    "x_shape,w_shape,pads,torch_pad",  # torch_pad: F.pad's order, last dim first
    [
        ((2, 3, 9), (4, 3, 3), ((2, 0),), (2, 0)),
        ((1, 2, 6, 7), (3, 2, 3, 2), ((1, 2), (0, 1)), (0, 1, 1, 2)),
    ],
)
def test_conv_with_asymmetric_padding(x_shape, w_shape, pads, torch_pad):
    nd = len(w_shape) - 2
    conv = F.conv1d if nd == 1 else F.conv2d
    check_pair(
        lambda x, W, b: ops.conv_forward(x, W, b, (1,) * nd, pads, (1,) * nd),
        ops.conv_backward,
        lambda x, W, b: conv(F.pad(x, torch_pad), W, b),
        [r(*x_shape), r(*w_shape, seed=1), r(w_shape[0], seed=2)],
    )


@pytest.mark.parametrize(
    "x_shape,w_shape,groups",  # W: (O, C/G, *k); groups == C is depthwise
    [((2, 4, 9), (6, 2, 3), 2), ((2, 4, 6, 5), (8, 1, 3, 2), 4), ((0, 6, 5, 5), (3, 2, 2, 2), 3)],
)
def test_grouped_conv(x_shape, w_shape, groups):
    nd = len(w_shape) - 2
    conv = F.conv1d if nd == 1 else F.conv2d
    check_pair(
        lambda x, W, b: ops.conv_forward(x, W, b, (2,) * nd, ((1, 1),) * nd, (1,) * nd, groups),
        ops.conv_backward,
        lambda x, W, b: conv(x, W, b, 2, 1, 1, groups),
        [r(*x_shape), r(*w_shape, seed=1), r(w_shape[0], seed=2)],
    )


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize(
    "x_shape,pads,torch_pad",  # torch_pad: F.pad's order, last dim first
    [((2, 3, 5), ((2, 3),), (2, 3)), ((2, 3, 4, 5), ((3, 1), (0, 4)), (0, 4, 3, 1))],
)
def test_edge_pad(mode, x_shape, pads, torch_pad):
    check_pair(
        lambda x: ops.edge_pad_forward(x, pads, mode),
        ops.edge_pad_backward,
        lambda x: F.pad(x, torch_pad, mode=mode),
        [r(*x_shape)],
    )


TRANSPOSED = [  # x shape, W shape (C, O/G, *k), stride, padding, output_padding, dilation, groups
    ((2, 4, 5), (4, 3, 3), 2, 1, 1, 1, 1),
    ((2, 4, 5), (4, 1, 2), 3, 0, 2, 2, 2),
    ((2, 4, 4, 3), (4, 2, 3, 2), (2, 1), (1, 0), (1, 0), (1, 2), 2),
    ((0, 2, 3, 3), (2, 3, 3, 3), 1, 1, 0, 2, 1),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    "x_shape,w_shape,stride,padding,output_padding,dilation,groups", TRANSPOSED
)
def test_conv_transpose(x_shape, w_shape, stride, padding, output_padding, dilation, groups, bias):
    nd = len(w_shape) - 2
    geometry = [_per_dim(v, nd) for v in (stride, padding, output_padding, dilation)]
    conv_t = F.conv_transpose1d if nd == 1 else F.conv_transpose2d
    s, p, op, d = geometry
    out = w_shape[1] * groups
    tensors = [r(*x_shape), r(*w_shape, seed=1)] + ([r(out, seed=2)] if bias else [])
    check_pair(
        lambda x, W, b=None: ops.conv_transpose_forward(x, W, b, *geometry, groups),
        ops.conv_transpose_backward,
        lambda x, W, b=None: conv_t(x, W, b, s, p, op, groups, d),
        tensors,
    )


def test_conv_transpose_is_the_convs_input_gradient():
    x, W = r(2, 3, 7, 6), r(4, 3, 3, 3, seed=1)
    geometry = ((2, 2), ((1, 1), (1, 1)), (1, 1))
    y, cache = ops.conv_forward(x, W, None, *geometry)
    g = upstream(y.shape)
    dx, _, _ = ops.conv_backward(g, cache)
    yt, _ = ops.conv_transpose_forward(g, W, None, (2, 2), (1, 1), (0, 1), (1, 1))
    assert_close(yt, dx)  # output_padding (0, 1) gives back x's width 6


def test_conv_backward_without_dx():
    x, W, b = r(2, 3, 6, 5), r(4, 3, 2, 2, seed=1), r(4, seed=2)
    y, cache = ops.conv_forward(x, W, b, (1, 2), ((1, 0), (0, 1)), (1, 1))
    g = upstream(y.shape)
    dx, dW, db = ops.conv_backward(g, cache, need_dx=False)
    _, dW_full, db_full = ops.conv_backward(g, cache)
    assert dx is None
    assert_close(dW, dW_full)
    assert_close(db, db_full)


def test_window_helpers():
    x = r(2, 3, 5, 6)
    pads = ((1, 2), (0, 3))
    xp = ops.pad(x, pads, value=-1.0)
    assert_close(xp, F.pad(x, (0, 3, 1, 2), value=-1.0))
    assert_close(ops.crop(xp, pads), x)
    win = ops.windows(xp, (2, 3), (2, 1), (1, 2))  # kernel (2, 3), stride (2, 1), dilation (1, 2)
    assert win.shape == (2, 3, 4, 5, 2, 3)  # (N, C, *out, *kernel)
    assert_close(win[:, :, 1, 2], xp[:, :, 2:4, 2:7:2])  # window (1, 2) starts at (2·1, 1·2)
    g = upstream(win.shape)  # col2im is the adjoint of windows: <windows(x), g> = <x, col2im(g)>
    assert_close((win * g).sum(), (xp * ops.col2im(g, xp.shape, (2, 1), (1, 2))).sum())


@pytest.mark.parametrize(
    "shape,to", [((2, 3, 4), (3, 1)), ((5, 4), (4,)), ((2, 3), ()), ((3,), (3,))]
)
def test_sum_to_is_the_adjoint_of_broadcasting(shape, to):
    g = r(*shape)
    _, (expected,) = autograd_grads(lambda t: t.expand(shape), [torch.zeros(to, dtype=F64)], g)
    assert_close(ops.sum_to(g, torch.Size(to)), expected)


# ---- gradcheck of every pair (autograd and finite differences) ----------------------------------
@pytest.mark.parametrize(
    "op,inputs",
    [
        ("conv", (r(2, 4, 6, 5), r(4, 2, 3, 2), r(4), (1, 2), ((1, 1), (0, 1)), (1, 1), 2)),
        ("edge_pad", (r(2, 3, 5, 4), ((2, 1), (1, 3)), "reflect")),
        ("edge_pad", (r(2, 3, 5), ((3, 2),), "circular")),
        ("edge_pad", (r(1, 2, 3, 3), ((1, 2), (2, 0)), "replicate")),
        ("conv_transpose", (r(2, 4, 3, 4), r(4, 3, 3, 2), r(6), (2, 1), (1, 0), (1, 0), (1, 2), 2)),
        ("conv_transpose", (r(1, 2, 5), r(2, 3, 3), None, (3,), (1,), (2,), (1,), 1)),
    ],
)
def test_gradcheck(op, inputs):
    report = gradcheck(pair(op), *inputs)
    assert report.ok, str(report)
    assert {c.reference for c in report.comparisons} == {"autograd", "finite differences"}
