"""nn/pooling.py, nn/adaptive_pooling.py, nn/upsample.py, nn/padding.py: the modules' own
behaviour beside the conformance sweep (tests/test_parity_pooling.py): indices and their
backward, NaN, errors as torch raises them, save/load, gradcheck, the cache stack."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from conftest import assert_close, upstream
from parity import assert_matches_torch

import handgrad as hg
from handgrad.check import gradcheck
from handgrad.errors import ArgumentTypeError, InputError, NotSupportedError, ShapeError

F64 = torch.float64
NAN = float("nan")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small tensors: torch's thread pool costs more than it gives on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_max_pool_return_indices_and_backward_takes_dy_and_none():
    x = torch.randint(-2, 3, (2, 3, 7, 6)).to(F64)
    pool = hg.MaxPool2d(3, 2, 1, return_indices=True, ceil_mode=True)
    y, indices = pool(x)
    y_ref, i_ref = nn.MaxPool2d(3, 2, 1, return_indices=True, ceil_mode=True)(x)
    assert indices.dtype == torch.int64 and torch.equal(indices, i_ref)
    assert torch.equal(y, y_ref)
    dx = pool.backward(torch.ones_like(y), None)
    assert torch.equal(
        dx,
        torch.zeros_like(x)
        .view(2, 3, -1)
        .scatter_add(-1, i_ref.view(2, 3, -1), torch.ones(2, 3, 16, dtype=F64))
        .view_as(x),
    )


@pytest.mark.parametrize(
    "torch_module",
    [
        nn.MaxPool1d(3, 1, 1, return_indices=True),
        nn.MaxPool2d(2, 1, ceil_mode=True, return_indices=True),
        nn.AdaptiveMaxPool1d(3, return_indices=True),
        nn.AdaptiveMaxPool2d((2, 3), return_indices=True),
    ],
    ids=repr,
)
def test_nan_propagates_and_its_index_is_torchs(torch_module):
    x = torch.randn(2, 2, 6, 6, dtype=F64)
    x[0, 0, 1, 2] = x[1, 1, 3, 3] = x[1, 1, 3, 4] = NAN
    x = x if isinstance(torch_module, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)) else x[:, :, 1]
    assert_matches_torch(torch_module, [x], equal_nan=True)


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: hg.MaxPool2d(3, 2, 1, 2, ceil_mode=True), (1, 2, 5, 5)),
        (lambda: hg.AvgPool1d(3, 2, 1, True, False), (2, 3, 8)),
        (lambda: hg.AvgPool2d(3, 2, 1, True, True, 5), (2, 2, 7, 6)),
        (lambda: hg.AdaptiveAvgPool2d((3, None)), (2, 2, 7, 5)),
        (lambda: hg.AdaptiveMaxPool1d(4), (1, 2, 7)),
        (lambda: hg.Upsample(scale_factor=1.7, mode="bilinear"), (1, 2, 3, 4)),
        (lambda: hg.Upsample((5, 2, 3), mode="trilinear", align_corners=True), (1, 2, 3, 4, 2)),
        (lambda: hg.ConstantPad2d((1, -1, 2, 0), 3.0), (2, 3, 4)),
    ],
)
def test_gradcheck_passes(make, shape):
    report = gradcheck(make(), torch.randn(shape))
    assert report.ok, str(report)


@pytest.mark.parametrize(
    "module",
    [
        hg.MaxPool2d(3, 2, 1, 2, True, True),
        hg.AvgPool2d((3, 2), (1, 2), (1, 0), True, False, 3),
        hg.AdaptiveAvgPool2d((None, 3)),
        hg.AdaptiveMaxPool1d(4, True),
        hg.Upsample(scale_factor=(1.5, 2.0), mode="bilinear", align_corners=True),
        hg.UpsamplingBilinear2d(scale_factor=2),
        hg.ZeroPad2d((1, 2, -1, 0)),
        hg.ConstantPad1d(2, -0.5),
        hg.ReflectionPad2d((1, 0, 2, 1)),
        hg.MaxUnpool2d(3, 2, 1),
        hg.LPPool2d(2.5, (2, 3), None, True),
        hg.PixelShuffle(3),
        hg.ChannelShuffle(2),
    ],
    ids=repr,
)
def test_save_load_and_torch_twin(module, tmp_path):
    model = hg.Sequential(module)
    loaded = hg.load(hg.save(model, tmp_path / "m.safetensors"))
    assert loaded[0].config() == module.config()
    assert repr(hg.from_torch(hg.to_torch(model))[0]) == repr(module)


def test_a_module_called_twice_is_backpropagated_in_reverse():
    pool = hg.MaxPool1d(2, return_indices=True)
    a, b = torch.randn(1, 2, 6, dtype=F64), torch.randn(1, 2, 8, dtype=F64)
    pool(a)
    pool(b)
    assert pool.backward(upstream((1, 2, 4)), None).shape == b.shape
    assert pool.backward(upstream((1, 2, 3)), None).shape == a.shape
    with pytest.raises(RuntimeError, match="more often than forward"):
        pool.backward(upstream((1, 2, 3)))


@pytest.mark.parametrize("scale", [0.6, 1.3, 1.7, 2.2, 1 / 3])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic"])
def test_upsample_in_float32_picks_torchs_elements(mode, scale):
    """torch computes the source index in float32 for float32 input: the same elements."""
    x = torch.randn(2, 3, 7, 10)
    ref = nn.Upsample(scale_factor=scale, mode=mode)
    mine = hg.Upsample(scale_factor=scale, mode=mode)
    if mode.startswith("nearest"):
        assert torch.equal(mine(x), ref(x))
    else:
        assert_close(mine(x), ref(x), rtol=1e-5, atol=1e-5)  # the sums in another order


def test_integer_inputs_where_torch_takes_them():
    x = torch.randint(-9, 9, (2, 3, 7, 6))
    for dtype in (torch.int8, torch.int32, torch.int64):
        assert torch.equal(hg.MaxPool2d(3, 2, 1)(x.to(dtype)), nn.MaxPool2d(3, 2, 1)(x.to(dtype)))
    for m in (nn.AvgPool2d(3, 2, 1, True, False), nn.AvgPool2d(2, divisor_override=-3)):
        assert torch.equal(hg.from_torch(m)(x), m(x))
    assert torch.equal(hg.AvgPool1d(3, 2)(x[0]), nn.AvgPool1d(3, 2)(x[0]))
    assert torch.equal(hg.ConstantPad1d((2, -1), 7)(x), nn.ConstantPad1d((2, -1), 7)(x))
    with pytest.raises(ArgumentTypeError, match="floating-point"):
        hg.MaxPool1d(2)(x[0])  # torch's max_pool1d takes no integers


def test_stride_none_is_the_kernel_and_config_keeps_the_arguments():
    assert hg.MaxPool2d(3).config()["stride"] == 3
    assert hg.AvgPool1d(2).stride == (2,)
    assert hg.MaxPool2d((2, 3), padding=[1]).config()["padding"] == (1,)
    y = hg.AvgPool2d(2, padding=1)(torch.ones(1, 1, 2, 2))
    assert_close(y, torch.full((1, 1, 2, 2), 0.25))


BAD = [  # (constructor or call, error class, message)
    (lambda: hg.MaxPool2d(2, padding=2), InputError, "at most half the kernel size"),
    (lambda: hg.MaxPool1d(3, padding=2, dilation=2), InputError, "at most half"),
    (lambda: hg.AvgPool2d(3, padding=2), InputError, "at most half"),
    (lambda: hg.MaxPool2d(0), InputError, "kernel_size must be >= 1"),
    (lambda: hg.MaxPool2d(2, stride=0), InputError, "stride must be >= 1"),
    (lambda: hg.MaxPool2d(2, dilation=0), InputError, "dilation must be >= 1"),
    (lambda: hg.AvgPool1d(2, padding=-1), InputError, "padding must be >= 0"),
    (lambda: hg.MaxPool2d((2, 2, 2)), ArgumentTypeError, "kernel_size must be an int or 2"),
    (lambda: hg.AvgPool1d((2, 2)), ArgumentTypeError, "kernel_size must be an int or 1"),
    (lambda: hg.MaxPool1d(2.0), ArgumentTypeError, "kernel_size"),
    (lambda: hg.AvgPool2d(2, divisor_override=0), InputError, "must not be zero"),
    (lambda: hg.AvgPool2d(2, divisor_override=1.5), ArgumentTypeError, "divisor_override"),
    (lambda: hg.MaxPool2d(6)(torch.randn(2, 3, 5, 5)), ShapeError, "too small"),
    (lambda: hg.AvgPool1d(6)(torch.randn(2, 3, 5)), ShapeError, "too small"),
    (
        lambda: hg.MaxPool2d(2)(torch.randn(2, 0, 4, 4)),
        ShapeError,
        r"expected input \(N, C, H, W\)",
    ),
    (lambda: hg.MaxPool2d(2)(torch.randn(4, 4)), ShapeError, r"got shape \(4, 4\)"),
    (lambda: hg.MaxPool1d(2)(torch.randn(1, 1, 4, 4)), ShapeError, r"\(N, C, L\) or \(C, L\)"),
    (
        lambda: hg.AvgPool2d(2)(torch.ones(1, 1, 4, 4, dtype=torch.int32)),
        ArgumentTypeError,
        "float",
    ),
    (lambda: hg.MaxPool2d(2)([[1.0]]), ArgumentTypeError, "expected a torch.Tensor"),
    (lambda: hg.AdaptiveAvgPool1d(None), ArgumentTypeError, "output_size must be an int"),
    (lambda: hg.AdaptiveAvgPool1d((2, 2)), ArgumentTypeError, "output_size"),
    (lambda: hg.AdaptiveAvgPool2d(None), ArgumentTypeError, "output_size"),
    (lambda: hg.AdaptiveMaxPool2d((2,)), ArgumentTypeError, "a tuple of 2 ints or Nones"),
    (lambda: hg.AdaptiveMaxPool2d((2, 2, 2)), ArgumentTypeError, "output_size"),
    (lambda: hg.AdaptiveAvgPool2d(-1), InputError, "output_size must be >= 0"),
    (lambda: hg.AdaptiveAvgPool2d(2)(torch.randn(1, 1, 0, 3)), ShapeError, "non-empty"),
    (lambda: hg.AdaptiveMaxPool2d(2)(torch.randn(2, 0, 5, 5)), ShapeError, "non-empty"),
    (lambda: hg.AdaptiveAvgPool2d(2)(torch.randn(3, 3)), ShapeError, r"got shape \(3, 3\)"),
    (lambda: hg.Upsample(), InputError, "exactly one of size and scale_factor"),
    (lambda: hg.Upsample(2, 2.0), InputError, "exactly one of size and scale_factor"),
    (lambda: hg.Upsample(scale_factor=0), InputError, "exactly one"),
    (lambda: hg.Upsample(2, mode="foo"), InputError, "mode must be one of"),
    (lambda: hg.Upsample(2, mode="lanczos"), InputError, "needs antialias=True"),
    (lambda: hg.Upsample(2, mode="bicubic")(torch.randn(1, 2, 3)), ShapeError, "4-D input"),
    (lambda: hg.Upsample(2, align_corners=True), InputError, "align_corners can only be set"),
    (lambda: hg.Upsample(3, recompute_scale_factor=True), InputError, "not meaningful"),
    (lambda: hg.Upsample(2.5), ArgumentTypeError, "size must be an int"),
    (lambda: hg.Upsample(2, mode="linear")(torch.randn(1, 2, 4, 5)), ShapeError, "3-D input"),
    (lambda: hg.Upsample(2, mode="bilinear")(torch.randn(2, 4, 5)), ShapeError, "4-D input"),
    (lambda: hg.Upsample(2)(torch.randn(4, 5)), ShapeError, "needs a 3-D or 4-D or 5-D"),
    (lambda: hg.Upsample((2, 3, 4))(torch.randn(1, 2, 4, 5)), ShapeError, "size"),
    (lambda: hg.Upsample(scale_factor=0.1)(torch.randn(1, 2, 4, 5)), ShapeError, "> 0"),
    (lambda: hg.Upsample(scale_factor=-1.0)(torch.randn(1, 2, 4, 5)), ShapeError, "> 0"),
    (lambda: hg.Upsample(3)(torch.randn(1, 0, 3, 3)), ShapeError, "non-empty"),
    (lambda: hg.Upsample(3)(torch.ones(1, 1, 2, 2, dtype=torch.long)), ArgumentTypeError, "float"),
    (lambda: hg.ZeroPad2d((1, 2, 3)), ArgumentTypeError, "padding must be an int or 4 ints"),
    (lambda: hg.ZeroPad1d(1.5), ArgumentTypeError, "padding"),
    (lambda: hg.ConstantPad1d(1, "a"), ArgumentTypeError, "value must be a number"),
    (lambda: hg.ZeroPad2d(1)(torch.randn(4)), ShapeError, "at least 2 dims"),
    (lambda: hg.ZeroPad1d((-3, -2))(torch.randn(2, 3, 4)), ShapeError, "crops more than"),
    (lambda: hg.ReflectionPad1d(4)(torch.randn(2, 3, 4)), ShapeError, "smaller than the input"),
    (lambda: hg.ReflectionPad2d(1)(torch.randn(4, 4)), ShapeError, r"\(N, C, \*S\) or \(C, \*S\)"),
    (lambda: hg.ReplicationPad1d((-2, -2))(torch.randn(1, 3, 4)), ShapeError, "leaves no element"),
    (lambda: hg.ReplicationPad1d(1)(torch.randn(2, 0, 4)), ShapeError, "non-empty"),
    (lambda: hg.CircularPad1d(5)(torch.randn(2, 3, 4)), ShapeError, "wraps around once"),
    (lambda: hg.CircularPad2d((1, 2, 3))(torch.randn(2, 3, 4)), ArgumentTypeError, "4 ints"),
    (
        lambda: hg.MaxUnpool2d(2)(torch.randn(1, 2, 2, 2), torch.zeros(1, 2, 2, 2)),
        ArgumentTypeError,
        "int64",
    ),
    (
        lambda: hg.MaxUnpool2d(2)(torch.randn(1, 2, 2, 2), torch.zeros(1, 1, 2, 2).long()),
        ShapeError,
        "shape",
    ),
    (
        lambda: hg.MaxUnpool2d(2)(torch.randn(1, 2, 2, 2), torch.full((1, 2, 2, 2), 16)),
        ShapeError,
        "outside",
    ),
    (
        lambda: hg.MaxUnpool2d(2)(torch.randn(1, 2, 2, 2), torch.zeros(1, 2, 2, 2).long(), (6, 6)),
        InputError,
        "invalid output_size",
    ),
    (lambda: hg.LPPool2d(0, 2), InputError, "norm_type must not be 0"),
    (lambda: hg.LPPool1d(2, 3)(torch.randn(1, 2, 2)), ShapeError, "too small"),
    (lambda: hg.PixelShuffle(0), InputError, "upscale_factor must be positive"),
    (lambda: hg.PixelShuffle(2)(torch.randn(2, 6, 3, 3)), ShapeError, r"\(\*, C·4, H, W\)"),
    (lambda: hg.PixelUnshuffle(2)(torch.randn(2, 2, 5, 6)), ShapeError, "H·2"),
    (lambda: hg.ChannelShuffle(3)(torch.randn(2, 4, 3)), ShapeError, "divisible by 3"),
    (lambda: hg.ChannelShuffle(2)(torch.randn(2, 4)), ShapeError, r"\(N, C, \*\)"),
]


@pytest.mark.parametrize("bad,error,match", BAD)
def test_bad_arguments_and_inputs(bad, error, match):
    with pytest.raises(error, match=match):
        bad()


@pytest.mark.parametrize(
    "torch_module",
    [nn.Upsample(scale_factor=2, mode="lanczos"), nn.MaxPool2d(3, padding=2)],
    ids=repr,
)
def test_from_torch_refuses_what_handgrad_cannot_build(torch_module):
    with pytest.raises(NotSupportedError, match="not supported"):
        hg.from_torch(torch_module)


def test_backward_checks_the_gradient_shape():
    pool = hg.AdaptiveAvgPool2d(2)
    pool(torch.randn(1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"output's shape \(1, 2, 2, 2\)"):
        pool.backward(torch.ones(1, 2, 3, 3))
