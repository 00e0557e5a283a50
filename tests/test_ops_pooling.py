"""ops/pooling.py and ops/resize.py: max, average and adaptive pooling, interpolation and
constant padding; forward vs torch.nn.functional in float64, backward vs autograd, returned
indices vs torch's, gradcheck on every pair."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import VALUE_KINDS, assert_close, check_pair, make_values, pair, r

from handgrad import ops
from handgrad.check import gradcheck


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small tensors: torch's thread pool costs more than it gives on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


POOLS = [  # x shape, kernel, stride, symmetric padding (one per spatial dim)
    ((2, 3, 9), (3,), (2,), (1,)),
    ((2, 3, 8), (2,), (1,), (0,)),
    ((2, 3, 8, 7), (2, 2), (2, 2), (0, 0)),
    ((1, 2, 7, 9), (3, 2), (2, 1), (1, 1)),
]
POOL_REFERENCES = {
    ("max_pool", 1): F.max_pool1d,
    ("max_pool", 2): F.max_pool2d,
    ("avg_pool", 1): F.avg_pool1d,
    ("avg_pool", 2): F.avg_pool2d,
}


@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("x_shape,kernel,stride,padding", POOLS)
@pytest.mark.parametrize("op", ["max_pool", "avg_pool"])
def test_pool(op, x_shape, kernel, stride, padding, kind):
    forward, backward = pair(op)
    reference = POOL_REFERENCES[op, len(kernel)]
    pads = [(p, p) for p in padding]
    check_pair(
        lambda x: forward(x, kernel, stride, pads),
        backward,
        lambda x: reference(x, kernel, stride, padding),
        [make_values(x_shape, kind)],
    )


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("dilation", [1, 2])
def test_max_pool_dilation_ceil_mode_and_indices(dilation, ceil_mode):
    x = torch.randint(-2, 3, (2, 2, 8, 7)).double()  # many ties: the first maximum wins
    y, cache = ops.max_pool_forward(x, (3, 2), (2, 2), [(1, 1), (1, 1)], (dilation, 1), ceil_mode)
    y_ref, indices = F.max_pool2d(x, (3, 2), 2, 1, (dilation, 1), ceil_mode, return_indices=True)
    assert torch.equal(y, y_ref)
    assert torch.equal(cache[0], indices)
    check_pair(
        lambda t: ops.max_pool_forward(
            t, (3, 2), (2, 2), [(1, 1), (1, 1)], (dilation, 1), ceil_mode
        ),
        ops.max_pool_backward,
        lambda t: F.max_pool2d(t, (3, 2), 2, 1, (dilation, 1), ceil_mode),
        [x],
    )


def test_max_pool_nan_and_minus_inf_as_torch():
    """NaN propagates and its index is the window's last NaN (torch's scan); a window whose
    elements are all -inf points at its first element inside the input, never the padding."""
    nan, inf = float("nan"), float("inf")
    x = torch.tensor([[[1.0, nan, 3.0, nan, 2.0, 2.0, -inf, -inf]]], dtype=torch.float64)
    y, (indices, _) = ops.max_pool_forward(x, (3,), (1,), [(1, 1)])
    y_ref, i_ref = F.max_pool1d(x, 3, 1, 1, return_indices=True)
    assert_close(y, y_ref, equal_nan=True)
    assert torch.equal(indices, i_ref)
    x = torch.full((1, 1, 5), -inf, dtype=torch.float64)
    y, (indices, _) = ops.max_pool_forward(x, (2,), (2,), [(1, 1)], None, True)
    assert torch.equal(indices, F.max_pool1d(x, 2, 2, 1, ceil_mode=True, return_indices=True)[1])


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("divisor_override", [None, 5])
def test_avg_pool_divisors(ceil_mode, count_include_pad, divisor_override):
    x = r(2, 2, 7, 8)
    args = ((3, 2), (2, 3), [(1, 1), (1, 1)], ceil_mode, count_include_pad, divisor_override)
    check_pair(
        lambda t: ops.avg_pool_forward(t, *args),
        ops.avg_pool_backward,
        lambda t: F.avg_pool2d(
            t, (3, 2), (2, 3), 1, ceil_mode, count_include_pad, divisor_override
        ),
        [x],
    )


@pytest.mark.parametrize("size,out", [(7, 3), (5, 5), (3, 7), (8, 1), (1, 4), (10, 4)])
def test_adaptive_bounds_as_torch(size, out):
    starts, ends = ops.adaptive_bounds(size, out)
    x = torch.zeros(1, 1, size)
    x[0, 0] = torch.arange(size, dtype=torch.float32) + 1
    assert [x[0, 0, s:e].max().item() for s, e in zip(starts, ends)] == F.adaptive_max_pool1d(
        x, out
    ).flatten().tolist()


@pytest.mark.parametrize("output_size", [(1, 1), (3, 2), (4, 5), (9, 11)])
def test_adaptive_pools(output_size):
    x = torch.randint(-2, 3, (2, 3, 7, 6)).double()
    check_pair(
        lambda t: ops.adaptive_avg_pool_forward(t, output_size),
        ops.adaptive_avg_pool_backward,
        lambda t: F.adaptive_avg_pool2d(t, output_size),
        [x],
    )
    check_pair(
        lambda t: ops.adaptive_max_pool_forward(t, output_size),
        ops.adaptive_max_pool_backward,
        lambda t: F.adaptive_max_pool2d(t, output_size),
        [x],
    )
    _, (indices, _) = ops.adaptive_max_pool_forward(x, output_size)
    assert torch.equal(indices, F.adaptive_max_pool2d(x, output_size, return_indices=True)[1])


INTERPOLATIONS = [  # input shape, output size, mode, align_corners, scales given to torch
    ((2, 3, 5), (9,), "nearest", False, None),
    ((2, 3, 7), (11,), "nearest", False, (1.7,)),
    ((2, 3, 7), (4,), "nearest-exact", False, (0.6,)),
    ((2, 3, 5), (8,), "linear", False, None),
    ((2, 3, 5), (8,), "linear", True, None),
    ((2, 3, 7), (11,), "linear", False, (1.7,)),
    ((1, 2, 4, 5), (7, 3), "linear", False, None),
    ((1, 2, 4, 5), (7, 3), "linear", True, None),
    ((1, 2, 4, 5), (6, 8), "nearest", False, (1.5, 1.7)),
    ((1, 2, 3, 4, 2), (5, 2, 3), "linear", False, None),
    ((1, 2, 4, 5), (7, 3), "cubic", False, None),
    ((1, 2, 4, 5), (6, 8), "cubic", True, None),
    ((1, 2, 4, 5), (6, 8), "cubic", False, (1.5, 1.7)),
]
TORCH_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


@pytest.mark.parametrize("shape,size,mode,align_corners,scales", INTERPOLATIONS)
def test_interpolate(shape, size, mode, align_corners, scales):
    torch_mode = {"linear": TORCH_MODE[len(size)], "cubic": "bicubic"}.get(mode, mode)
    corners = align_corners if mode in ("linear", "cubic") else None

    def reference(t):
        if scales is None:
            return F.interpolate(t, size=size, mode=torch_mode, align_corners=corners)
        return F.interpolate(t, scale_factor=scales, mode=torch_mode, align_corners=corners)

    check_pair(
        lambda t: ops.interpolate_forward(t, size, mode, align_corners, scales),
        ops.interpolate_backward,
        reference,
        [r(*shape)],
    )


def test_nearest_follows_torchs_backward_shortcut():
    """torch's 'nearest' backward copies an output of the input's size, whatever the scale,
    while its 1-D forward reads floor(i / 1.3): handgrad gives torch's numbers both ways."""
    x = r(1, 1, 2)
    check_pair(
        lambda t: ops.interpolate_forward(t, (2,), "nearest", False, (1.3,)),
        ops.interpolate_backward,
        lambda t: F.interpolate(t, scale_factor=1.3),
        [x],
    )


@pytest.mark.parametrize(
    "padding", [(1, 2), (-1, 2), (0, -3), (2, 1, -1, 0), (-1, -1, 1, 1, 0, 2)], ids=str
)
def test_constant_pad(padding):
    check_pair(
        lambda t: ops.constant_pad_forward(t, padding, 0.5),
        ops.constant_pad_backward,
        lambda t: F.pad(t, padding, value=0.5),
        [r(2, 3, 4, 5)],
    )


def test_max_unpool_puts_values_back_at_the_indices():
    y, indices = F.max_pool2d(r(2, 3, 6, 5), 2, return_indices=True)
    check_pair(
        lambda t: ops.max_unpool_forward(t, indices, (6, 5)),
        ops.max_unpool_backward,
        lambda t: F.max_unpool2d(t, indices, 2, output_size=(6, 5)),
        [y],
    )


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_lp_pool(norm_type, ceil_mode):
    x = r(2, 3, 7, 6).abs() + 0.1
    check_pair(
        lambda t: ops.lp_pool_forward(t, norm_type, (3, 2), (2, 2), ceil_mode),
        ops.lp_pool_backward,
        lambda t: F.lp_pool2d(t, norm_type, (3, 2), 2, ceil_mode),
        [x],
    )


def test_pixel_and_channel_shuffles():
    x = r(2, 3, 8, 4, 5)
    check_pair(
        lambda t: ops.pixel_shuffle_forward(t, 2),
        ops.pixel_shuffle_backward,
        lambda t: F.pixel_shuffle(t, 2),
        [x],
    )
    x = r(2, 3, 8, 4, 6)
    check_pair(
        lambda t: ops.pixel_unshuffle_forward(t, 2),
        ops.pixel_unshuffle_backward,
        lambda t: F.pixel_unshuffle(t, 2),
        [x],
    )
    x = r(2, 6, 4, 5)
    check_pair(
        lambda t: ops.channel_shuffle_forward(t, 3),
        ops.channel_shuffle_backward,
        lambda t: F.channel_shuffle(t, 3),
        [x],
    )


_, POOLED_INDICES = F.max_pool2d(r(1, 2, 4, 4), 2, return_indices=True)
GRADCHECK = [  # (op, inputs)
    ("max_pool", (r(1, 1, 5, 6), (2, 3), (2, 1), [(1, 1), (0, 1)], (2, 1), True)),
    ("avg_pool", (r(2, 2, 7), (3,), (2,), [(1, 1)], True, False)),
    ("avg_pool", (r(1, 2, 5, 5), (2, 2), (2, 2), [(1, 1), (1, 1)], True, True, 3)),
    ("adaptive_avg_pool", (r(1, 2, 5, 4), (3, 3))),
    ("adaptive_max_pool", (r(1, 1, 5, 4), (3, 3))),
    ("interpolate", (r(1, 2, 3, 4), (5, 7), "linear", False)),
    ("interpolate", (r(1, 2, 4), (7,), "nearest", False, (1.8,))),
    ("interpolate", (r(1, 2, 4, 3), (7, 2), "cubic", True)),
    ("constant_pad", (r(2, 3, 4), (1, -1, 2, 0), 0.5)),
    ("max_unpool", (r(1, 2, 2, 2), POOLED_INDICES, (4, 4))),
    ("lp_pool", (r(1, 2, 5, 4).abs() + 0.1, 2.5, (2, 2), (2, 1), True)),
    ("pixel_shuffle", (r(1, 8, 2, 3), 2)),
    ("pixel_unshuffle", (r(1, 2, 4, 6), 2)),
    ("channel_shuffle", (r(2, 6, 3), 2)),
]


@pytest.mark.parametrize("op,inputs", GRADCHECK, ids=[op for op, _ in GRADCHECK])
def test_gradcheck_every_pair(op, inputs):
    report = gradcheck(pair(op), *inputs)
    assert report.ok, str(report)


def test_every_public_pair_is_gradchecked():
    names = [*ops.pooling.__all__, *ops.resize.__all__]
    forwards = {n.removesuffix("_forward") for n in names if n.endswith("_forward")}
    backwards = {n.removesuffix("_backward") for n in names if n.endswith("_backward")}
    assert forwards == backwards
    assert forwards == {op for op, _ in GRADCHECK}
