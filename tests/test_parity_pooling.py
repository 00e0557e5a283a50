"""Conformance sweep: every option combination of the pooling, resizing and padding modules
against torch.nn in float64 (forward, returned indices, dL/dx against autograd, from_torch and
to_torch), on batched, unbatched and empty inputs, with ties, -inf and constant inputs."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from parity import assert_matches_torch

import handgrad as hg

F64 = torch.float64
INF = float("inf")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small tensors: torch's thread pool costs more than it gives on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def values(shape: tuple[int, ...], kind: str = "normal", seed: int = 0) -> torch.Tensor:
    """normal; ties (small integers: many equal maxima); -inf (some elements -inf, one window
    all -inf); constant (every element equal)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=F64)
    if kind == "ties":
        return torch.randint(-2, 3, shape, generator=g).to(F64)
    if kind == "-inf":
        x[..., :3] = -INF
        x.view(-1)[::5] = -INF
        return x
    if kind == "constant":
        return torch.full(shape, 0.5, dtype=F64)
    return x


def torch_accepts(module: nn.Module, x: torch.Tensor) -> bool:
    try:
        module(x)
    except RuntimeError:
        return False
    return True


def ids(value: object) -> str:
    return "-".join(map(str, value)) if isinstance(value, tuple) else str(value)


# ---- MaxPool1d / MaxPool2d: every option combination --------------------------------------------
MAX_OPTIONS = list(
    itertools.product(
        [2, 3],  # kernel_size
        [None, 1, 2],  # stride
        [0, 1],  # padding
        [1, 2],  # dilation
        [False, True],  # return_indices
        [False, True],  # ceil_mode
    )
)


@pytest.mark.parametrize("options", MAX_OPTIONS, ids=ids)
@pytest.mark.parametrize("cls,shape", [(nn.MaxPool1d, (2, 3, 8)), (nn.MaxPool2d, (2, 2, 7, 6))])
def test_max_pool_every_option(cls, shape, options):
    x = values(shape, "ties")
    if torch_accepts(cls(*options), x):
        assert_matches_torch(cls(*options), [x], hg_module=getattr(hg, cls.__name__)(*options))


@pytest.mark.parametrize(
    "args",
    [
        ((2, 3), (1, 2), (1, 0), (2, 1), True, True),
        ((3, 2), (2, 1), (0, 1), (1, 2), False, True),
        ((3, 3), 2, 1, 1, True, False),
        ((1,), (1,), (0,), (1,), False, False),
    ],
    ids=str,
)
def test_max_pool2d_tuples(args):
    x = values((2, 2, 7, 8), "ties")
    assert_matches_torch(nn.MaxPool2d(*args), [x], hg_module=hg.MaxPool2d(*args))


@pytest.mark.parametrize("kind", ["normal", "ties", "-inf", "constant"])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize(
    "cls,shape",
    [
        (nn.MaxPool1d, (2, 3, 9)),
        (nn.MaxPool1d, (3, 9)),  # unbatched
        (nn.MaxPool1d, (0, 3, 9)),  # empty batch
        (nn.MaxPool2d, (2, 2, 7, 7)),
        (nn.MaxPool2d, (3, 7, 7)),
        (nn.MaxPool2d, (0, 2, 7, 7)),
    ],
)
def test_max_pool_inputs(cls, shape, ceil_mode, kind):
    assert_matches_torch(cls(3, 2, 1, 1, True, ceil_mode), [values(shape, kind)])


# ---- AvgPool1d / AvgPool2d ---------------------------------------------------------------------
AVG_OPTIONS = list(
    itertools.product(
        [2, 3],  # kernel_size
        [None, 1, 2],  # stride
        [0, 1],  # padding
        [False, True],  # ceil_mode
        [False, True],  # count_include_pad
    )
)


@pytest.mark.parametrize("options", AVG_OPTIONS, ids=ids)
def test_avg_pool1d_every_option(options):
    x = values((2, 3, 8))
    assert_matches_torch(nn.AvgPool1d(*options), [x], hg_module=hg.AvgPool1d(*options))


@pytest.mark.parametrize("options", AVG_OPTIONS, ids=ids)
def test_avg_pool2d_every_option(options):
    x = values((2, 2, 7, 6))
    assert_matches_torch(nn.AvgPool2d(*options), [x], hg_module=hg.AvgPool2d(*options))


@pytest.mark.parametrize(
    "options", list(itertools.product([0, 1], [False, True], [False, True], [3, -2])), ids=ids
)
def test_avg_pool2d_divisor_override(options):
    padding, ceil_mode, count_include_pad, divisor_override = options
    args = (3, 2, padding, ceil_mode, count_include_pad, divisor_override)
    assert_matches_torch(nn.AvgPool2d(*args), [values((2, 2, 8, 7))], hg_module=hg.AvgPool2d(*args))


@pytest.mark.parametrize(
    "args",
    [((2, 3), (1, 2), (1, 0), True, False, None), ((3, 1), (2, 1), (1, 0), True, True, 2)],
    ids=str,
)
def test_avg_pool2d_tuples(args):
    assert_matches_torch(nn.AvgPool2d(*args), [values((2, 2, 7, 8))])


@pytest.mark.parametrize("ceil_mode,count_include_pad", [(False, True), (True, False)])
@pytest.mark.parametrize(
    "cls,shape",
    [
        (nn.AvgPool1d, (3, 9)),
        (nn.AvgPool1d, (0, 3, 9)),
        (nn.AvgPool2d, (3, 7, 7)),
        (nn.AvgPool2d, (0, 2, 7, 7)),
    ],
)
def test_avg_pool_unbatched_and_empty(cls, shape, ceil_mode, count_include_pad):
    assert_matches_torch(cls(3, 2, 1, ceil_mode, count_include_pad), [values(shape)])


# ---- MaxPool3d / AvgPool3d ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "options", list(itertools.product([2, 3], [None, 2], [0, 1], [1, 2], [True], [False, True]))
)
def test_max_pool3d(options):
    x = values((1, 2, 5, 6, 5), "ties")
    if torch_accepts(nn.MaxPool3d(*options), x):
        assert_matches_torch(nn.MaxPool3d(*options), [x], hg_module=hg.MaxPool3d(*options))


@pytest.mark.parametrize(
    "options", list(itertools.product([2, 3], [0, 1], [False, True], [False, True], [None, -2]))
)
def test_avg_pool3d(options):
    kernel_size, padding, ceil_mode, count_include_pad, divisor_override = options
    args = (kernel_size, 2, padding, ceil_mode, count_include_pad, divisor_override)
    x = values((1, 2, 5, 6, 5))
    assert_matches_torch(nn.AvgPool3d(*args), [x], hg_module=hg.AvgPool3d(*args))


@pytest.mark.parametrize("shape", [(1, 2, 5, 6, 5), (2, 5, 6, 5), (0, 2, 5, 6, 5)], ids=str)
@pytest.mark.parametrize("cls", [nn.MaxPool3d, nn.AvgPool3d])
def test_pool3d_unbatched_and_empty(cls, shape):
    assert_matches_torch(cls(3, 2, 1, ceil_mode=True), [values(shape)])


# ---- adaptive pooling --------------------------------------------------------------------------
SHAPES_1D = [(2, 3, 7), (3, 8), (0, 2, 5)]
SHAPES_2D = [(2, 3, 7, 6), (3, 5, 8), (0, 2, 5, 5)]


@pytest.mark.parametrize("shape", SHAPES_1D, ids=str)
@pytest.mark.parametrize("output_size", [1, 2, 3, 5, 7, 10, (4,)], ids=str)
def test_adaptive_pool1d(output_size, shape):
    x = values(shape, "ties")
    assert_matches_torch(nn.AdaptiveAvgPool1d(output_size), [x])
    for return_indices in (False, True):
        assert_matches_torch(nn.AdaptiveMaxPool1d(output_size, return_indices), [x])


@pytest.mark.parametrize("shape", SHAPES_2D, ids=str)
@pytest.mark.parametrize(
    "output_size", [1, 2, 3, 4, (2, None), (None, 3), (4, 1), (None, None), (9, 5)], ids=str
)
def test_adaptive_pool2d(output_size, shape):
    x = values(shape, "ties")
    assert_matches_torch(nn.AdaptiveAvgPool2d(output_size), [x])
    for return_indices in (False, True):
        assert_matches_torch(nn.AdaptiveMaxPool2d(output_size, return_indices), [x])


@pytest.mark.parametrize("shape", [(1, 2, 5, 6, 4), (2, 5, 6, 4), (0, 2, 5, 6, 4)], ids=str)
@pytest.mark.parametrize("output_size", [2, (3, None, 5), (1, 4, 3)], ids=str)
def test_adaptive_pool3d(output_size, shape):
    x = values(shape, "ties")
    assert_matches_torch(nn.AdaptiveAvgPool3d(output_size), [x])
    assert_matches_torch(nn.AdaptiveMaxPool3d(output_size, True), [x])


@pytest.mark.parametrize("kind", ["-inf", "constant"])
def test_adaptive_max_pool_awkward_values(kind):
    assert_matches_torch(nn.AdaptiveMaxPool2d((3, 2), True), [values((2, 2, 7, 5), kind)])


# ---- Upsample ----------------------------------------------------------------------------------
MODES = [  # mode, align_corners, spatial dims
    ("nearest", None, 1),
    ("nearest", None, 2),
    ("nearest", None, 3),
    ("nearest-exact", None, 1),
    ("nearest-exact", None, 2),
    ("area", None, 2),
    ("linear", False, 1),
    ("linear", True, 1),
    ("bilinear", False, 2),
    ("bilinear", True, 2),
    ("trilinear", False, 3),
    ("trilinear", True, 3),
    ("bicubic", False, 2),
    ("bicubic", True, 2),
]
SIZES = [1, 4, 7, (2, 5, 3), (9, 6, 5)]
SCALES = [0.6, 1.7, 2.5, (2, 1.3, 1)]


def _size(value, nd):
    return value[:nd] if isinstance(value, tuple) else value


@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("mode,align_corners,nd", MODES, ids=ids)
def test_upsample_size(mode, align_corners, nd, size):
    x = values((2, 2, *(3, 4, 2)[:nd]))
    m = nn.Upsample(_size(size, nd), None, mode, align_corners)
    assert_matches_torch(m, [x], hg_module=hg.Upsample(_size(size, nd), None, mode, align_corners))


@pytest.mark.parametrize("recompute", [None, True])
@pytest.mark.parametrize("scale", SCALES, ids=str)
@pytest.mark.parametrize("mode,align_corners,nd", MODES, ids=ids)
def test_upsample_scale_factor(mode, align_corners, nd, scale, recompute):
    x = values((2, 2, *(3, 5, 2)[:nd]))
    args = (None, _size(scale, nd), mode, align_corners, recompute)
    if torch_accepts(nn.Upsample(*args), x):
        assert_matches_torch(nn.Upsample(*args), [x])


@pytest.mark.parametrize("mode,align_corners,nd", MODES, ids=ids)
def test_upsample_empty_batch_and_recompute_false(mode, align_corners, nd):
    x = values((2, 2, *(3, 5, 2)[:nd]))
    assert_matches_torch(nn.Upsample(None, 1.7, mode, align_corners, False), [x])
    x = values((0, 2, *(3, 4, 2)[:nd]))  # an empty batch
    assert_matches_torch(nn.Upsample(scale_factor=1.5, mode=mode, align_corners=align_corners), [x])


@pytest.mark.parametrize("size,scale_factor", [(5, None), ((3, 7), None), (None, 2), (None, 1.5)])
def test_upsampling_nearest_and_bilinear_2d(size, scale_factor):
    x = values((2, 2, 3, 4))
    assert_matches_torch(nn.UpsamplingNearest2d(size, scale_factor), [x])
    assert_matches_torch(nn.UpsamplingBilinear2d(size, scale_factor), [x])


# ---- ZeroPad / ConstantPad ---------------------------------------------------------------------
PADS = [0, 2, -1, (1, -1, 2, 0, 0, 3), (-2, 1, 0, -1, 1, 1), (3, -3, 1, 1, -1, 0)]
PAD_SHAPES = [(2, 3, 4, 5, 4), (3, 4, 5), (4, 5), (0, 2, 4, 4, 4)]


@pytest.mark.parametrize("shape", PAD_SHAPES, ids=str)
@pytest.mark.parametrize("padding", PADS, ids=str)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_padding(nd, padding, shape):
    pad = padding[: 2 * nd] if isinstance(padding, tuple) else padding
    if len(shape) < nd:
        return
    x = values(shape)
    zero, const = getattr(nn, f"ZeroPad{nd}d")(pad), getattr(nn, f"ConstantPad{nd}d")(pad, -1.5)
    if torch_accepts(zero, x):
        assert_matches_torch(zero, [x], hg_module=getattr(hg, f"ZeroPad{nd}d")(pad))
        assert_matches_torch(const, [x], hg_module=getattr(hg, f"ConstantPad{nd}d")(pad, -1.5))


# ---- ReflectionPad / ReplicationPad / CircularPad ------------------------------------------------
EDGE_PADS = [1, 3, -1, (2, -3, 1, 0, 0, 1), (-3, 2, 0, 1, 1, 0), (0, 4, -1, -1, 1, 0)]


@pytest.mark.parametrize("shape", [(2, 2, 4, 3, 4), (2, 4, 3, 4)], ids=str)
@pytest.mark.parametrize("padding", EDGE_PADS, ids=str)
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("kind", ["Reflection", "Replication", "Circular"])
def test_edge_padding(kind, nd, padding, shape):
    pad = padding[: 2 * nd] if isinstance(padding, tuple) else padding
    shape = shape[: len(shape) - 3 + nd]
    name = f"{kind}Pad{nd}d"
    x = values(shape)
    try:
        getattr(hg, name)(pad)(x)
    except hg.errors.ShapeError:  # what torch refuses, or fills with unset memory (circular)
        assert not torch_accepts(getattr(nn, name)(pad), x) or kind == "Circular"
        return
    assert_matches_torch(getattr(nn, name)(pad), [x], hg_module=getattr(hg, name)(pad))
    if padding == 1:  # an empty batch
        assert_matches_torch(getattr(nn, name)(pad), [values((0, *shape[-nd - 1 :]))])


# ---- MaxUnpool, LPPool, PixelShuffle/Unshuffle, ChannelShuffle ----------------------------------
@pytest.mark.parametrize("output_size", [None, "larger"])
@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), (3, 3, 1)], ids=ids)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_unpool(nd, k, s, p, output_size):
    shape = (2, 2, *(7, 6, 5)[:nd])
    y, indices = getattr(F, f"max_pool{nd}d")(values(shape), k, s, p, return_indices=True)
    size = None if output_size is None else [d + 1 for d in shape[2:]]
    unpool, mine = getattr(nn, f"MaxUnpool{nd}d"), getattr(hg, f"MaxUnpool{nd}d")
    args = [y, indices] if size is None else [y, indices, size]
    try:
        unpool(k, s, p)(*args)
    except (RuntimeError, ValueError):  # an index past the output, an output_size too far
        with pytest.raises(hg.errors.HandgradError):
            mine(k, s, p)(*args)
        return
    assert_matches_torch(unpool(k, s, p), args, hg_module=mine(k, s, p))
    assert_matches_torch(unpool(k, s, p), [y[0], indices[0]])  # unbatched


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("stride", [None, 1, 2])
@pytest.mark.parametrize("norm_type", [1, 2, 3.5])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_lp_pool(nd, norm_type, stride, ceil_mode):
    x = values((2, 2, *(7, 6, 5)[:nd])).abs() + 0.1
    args = (norm_type, 3, stride, ceil_mode)
    cls = getattr(nn, f"LPPool{nd}d")
    assert_matches_torch(cls(*args), [x], hg_module=getattr(hg, f"LPPool{nd}d")(*args))
    assert_matches_torch(cls(*args), [x[0]])  # unbatched


@pytest.mark.parametrize("r", [1, 2, 3])
@pytest.mark.parametrize("lead", [(2,), (), (2, 3)], ids=str)
def test_pixel_shuffle_and_unshuffle(r, lead):
    x = values((*lead, 2 * r * r, 3, 2))
    assert_matches_torch(nn.PixelShuffle(r), [x], hg_module=hg.PixelShuffle(r))
    x = values((*lead, 2, 3 * r, 2 * r))
    assert_matches_torch(nn.PixelUnshuffle(r), [x], hg_module=hg.PixelUnshuffle(r))


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
@pytest.mark.parametrize("shape", [(2, 6, 3, 4), (2, 6, 5), (0, 6, 2, 2), (1, 6, 2, 2, 2)], ids=str)
def test_channel_shuffle(groups, shape):
    assert_matches_torch(
        nn.ChannelShuffle(groups), [values(shape)], hg_module=hg.ChannelShuffle(groups)
    )


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (2, 2, 3, 4)], ids=str)
@pytest.mark.parametrize("padding", [(1, 1), (1, 0, 0, 1, 1, 1), ()], ids=str)
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("kind", ["Zero", "Constant", "Reflection", "Replication", "Circular"])
def test_a_padding_tuple_pads_its_own_number_of_dims(kind, nd, padding, shape):
    """torch keeps a tuple as given: ZeroPad2d((1, 1)) pads the last dim only, and the input
    dims each mode takes follow from the tuple's length."""
    name, x = f"{kind}Pad{nd}d", values(shape)
    args = (padding,) if kind != "Constant" else (padding, 1.5)
    try:
        getattr(nn, name)(*args)(x)
    except (RuntimeError, ValueError, NotImplementedError):
        with pytest.raises(hg.errors.HandgradError):
            getattr(hg, name)(*args)(x)
        return
    assert_matches_torch(getattr(nn, name)(*args), [x], hg_module=getattr(hg, name)(*args))
