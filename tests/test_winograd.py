"""Winograd F(4x4, 3x3): the Toom-Cook matrices, and Conv2d's Winograd path against
torch.nn.functional.conv2d (forward) and autograd (backward) in float64, float32 accuracy,
when "auto" takes it, and its errors."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close, autograd_grads, make_values, upstream

import handgrad as hg
from handgrad.check import gradcheck
from handgrad.errors import NotSupportedError
from handgrad.kernels.winograd import F4x4_3x3, Winograd, Winograd3x3, _copy_rows, toom_cook


def test_toom_cook_gives_lavins_published_f4x4_3x3_matrices():
    AT, G, BT = toom_cook(4, 3, [0, 1, -1, 2, -2])  # Lavin & Gray (2016), section 4.2
    assert torch.equal(
        BT,
        torch.tensor(
            [
                [4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1],
            ],
            dtype=torch.float64,
        ),
    )
    assert torch.equal(
        AT,
        torch.tensor(
            [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
            dtype=torch.float64,
        ),
    )
    sixth, twelfth, quarter = 1 / 6, 1 / 12, 1 / 4
    expected_G = [
        [quarter, 0, 0],
        [-sixth, -sixth, -sixth],
        [-sixth, sixth, -sixth],
        [1 / 24, twelfth, sixth],
        [1 / 24, -twelfth, sixth],
        [0, 0, 1],
    ]
    assert_close(G, torch.tensor(expected_G, dtype=torch.float64), rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "m,r,points",
    [
        (2, 3, [0, 1, -1]),
        (4, 3, [0, 1, -1, 2, Fraction(-1, 2)]),
        (3, 2, [0, 1, -1]),
        (6, 3, [0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)]),
    ],
)
def test_toom_cook_computes_the_correlation(m, r, points):
    AT, G, BT = toom_cook(m, r, points)
    g = torch.Generator().manual_seed(m)
    d = torch.randn(m + r - 1, generator=g, dtype=torch.float64)
    w = torch.randn(r, generator=g, dtype=torch.float64)
    direct = torch.stack([(d[i : i + r] * w).sum() for i in range(m)])
    assert_close(AT @ ((G @ w) * (BT @ d)), direct, rtol=0, atol=1e-12)


def test_toom_cook_rejects_wrong_points():
    with pytest.raises(ValueError, match="5 distinct points"):
        toom_cook(4, 3, [0, 1, -1, 2])
    with pytest.raises(ValueError, match="5 distinct points"):
        toom_cook(4, 3, [0, 1, 1, 2, -2])
    with pytest.raises(ValueError, match="include 1"):
        Winograd3x3(points=(0, -1, 2, -2, 3))


CASES = [  # input shape, padding: whole 4x4 blocks, overhanging blocks, unbatched, asymmetric
    ((2, 3, 10, 6), 1),
    ((2, 3, 9, 11), 1),
    ((1, 2, 4, 4), 0),
    ((1, 1, 3, 3), 0),
    ((3, 7, 7), "same"),
    ((2, 3, 5, 13), (2, 0)),
    ((2, 4, 6, 6), 3),
]


def _check_against_autograd(
    x_shape, padding, bias, kind="normal", params_only=False, algorithm="winograd"
):
    x = make_values(x_shape, kind)
    layer = hg.Conv2d(x_shape[-3], 5, 3, padding=padding, bias=bias, algorithm=algorithm)
    layer.to(dtype=torch.float64)
    y = layer(x)
    assert layer.last_algorithm == "winograd"  # the Winograd path ran
    params = [layer.weight] + ([layer.bias] if bias else [])

    def ref(x_, w, b=None):
        return F.conv2d(x_, w, b, padding=padding)

    expected, grads = autograd_grads(ref, [x, *params], upstream(y.shape))
    assert_close(y, expected)
    if params_only:
        layer.backward_params(upstream(y.shape))
    else:
        assert_close(layer.backward(upstream(y.shape)), grads[0])
    assert_close(layer.weight.grad, grads[1])
    if bias:
        assert_close(layer.bias.grad, grads[2])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape,padding", CASES, ids=str)
def test_winograd_conv2d_equals_autograd_float64(x_shape, padding, bias):
    _check_against_autograd(x_shape, padding, bias)


@pytest.mark.parametrize("kind", ["large", "zeros", "negative"])
def test_winograd_conv2d_awkward_values(kind):
    _check_against_autograd((2, 3, 9, 11), 1, True, kind)


def test_winograd_backward_params_only():
    _check_against_autograd((2, 3, 9, 11), 1, True, params_only=True)


def test_winograd_float32_accuracy_against_float64():
    """Errors of a few 1e-6 on outputs of order 1 (docs/math.md#winograd)."""
    torch.manual_seed(3)
    layer = hg.Conv2d(32, 64, 3, padding=1, algorithm="winograd")
    x = torch.randn(8, 32, 28, 28)
    y = layer(x)
    dy = torch.randn_like(y)
    dx = layer.backward(dy)
    x64, w64, b64 = (t.double() for t in (x, layer.weight, layer.bias))
    y64, (dx64, dw64, db64) = autograd_grads(
        lambda a, w, b: F.conv2d(a, w, b, padding=1), [x64, w64, b64], dy.double()
    )
    assert_close(y.double(), y64, rtol=1.3e-6, atol=1e-5)
    assert (y.double() - y64).abs().mean() < 1e-6
    assert_close(dx.double(), dx64, rtol=1.3e-6, atol=1e-5)
    scale = dw64.abs().max()  # dL/dW sums over every position of the batch
    assert_close(layer.weight.grad.double() / scale, dw64 / scale, rtol=0, atol=1e-5)
    assert_close(layer.bias.grad.double(), db64, rtol=1e-5, atol=1e-3)


def test_winograd_gradcheck():
    layer = hg.Conv2d(2, 3, 3, padding=1, algorithm="winograd")
    # finite differences only: autograd cannot trace the kernel's out= products
    assert gradcheck(layer, torch.randn(2, 2, 5, 6), autograd=False).ok


def test_same_layer_with_changing_shapes_and_noncontiguous_grad():
    """The work buffers are reused between calls (the padded input keeps a zero border) and
    remade when the shape changes; dy may be any strided tensor."""
    layer = hg.Conv2d(3, 4, 3, padding=1, algorithm="winograd").to(dtype=torch.float64)
    for shape in [(2, 3, 8, 8), (2, 3, 8, 8), (5, 3, 6, 9), (2, 3, 8, 8)]:
        layer.zero_grad()
        x = torch.randn(shape, dtype=torch.float64)
        y = layer(x)
        dy = torch.randn(y.shape[::-1], dtype=torch.float64).permute(3, 2, 1, 0)  # strided
        expected, grads = autograd_grads(
            lambda a, w, b: F.conv2d(a, w, b, padding=1), [x, layer.weight, layer.bias], dy
        )
        assert_close(y, expected)
        assert_close(layer.backward(dy), grads[0])
        assert_close(layer.weight.grad, grads[1])


def test_im2col_and_winograd_agree():
    x = torch.randn(4, 16, 12, 12, dtype=torch.float64)
    a = hg.Conv2d(16, 8, 3, padding=1, algorithm="im2col").to(dtype=torch.float64)
    b = hg.Conv2d(16, 8, 3, padding=1, algorithm="winograd").to(dtype=torch.float64)
    b.load_state_dict(a.state_dict())
    assert_close(a(x), b(x))
    dy = torch.randn(4, 8, 12, 12, dtype=torch.float64)
    assert_close(a.backward(dy), b.backward(dy))
    assert_close(a.weight.grad, b.weight.grad)
    assert_close(a.bias.grad, b.bias.grad)


@pytest.fixture
def float32_precision_high():
    """torch.set_float32_matmul_precision("high") for one test: speed over float32 precision."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    yield
    torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize(
    "make,x,winograd",
    [
        (lambda: hg.Conv2d(32, 64, 3, padding=1), torch.randn(8, 32, 16, 16), True),
        (lambda: hg.Conv2d(32, 64, 3, padding=1), torch.randn(8, 32, 16, 16).double(), False),
        (lambda: hg.Conv2d(3, 8, 3, padding=1), torch.randn(8, 3, 16, 16), False),  # few channels
        (lambda: hg.Conv2d(32, 8, 3, padding=1), torch.randn(1, 32, 8, 8), False),  # few tiles
        (lambda: hg.Conv2d(32, 8, 3, stride=2), torch.randn(8, 32, 16, 16), False),
        (lambda: hg.Conv2d(32, 8, 3, dilation=2), torch.randn(8, 32, 16, 16), False),
        (lambda: hg.Conv2d(32, 8, 5, padding=2), torch.randn(8, 32, 16, 16), False),
        (lambda: hg.Conv2d(32, 8, 3, algorithm="im2col"), torch.randn(8, 32, 16, 16), False),
    ],
)
def test_auto_takes_winograd_where_allowed_and_it_pays(make, x, winograd, float32_precision_high):
    layer = make().to(dtype=x.dtype)
    layer(x)
    assert layer.last_algorithm == ("winograd" if winograd else "im2col")


def test_auto_is_im2col_at_torchs_default_float32_precision():
    assert torch.get_float32_matmul_precision() == "highest"  # PyTorch's default
    layer = hg.Conv2d(32, 64, 3, padding=1)
    layer(torch.randn(8, 32, 16, 16))
    assert layer.last_algorithm == "im2col"


def test_auto_keeps_im2col_for_bfloat16(float32_precision_high):
    layer = hg.Conv2d(32, 8, 3, padding=1).to(dtype=torch.bfloat16)
    layer(torch.randn(8, 32, 16, 16, dtype=torch.bfloat16))
    assert layer.last_algorithm == "im2col"


def test_bad_algorithm_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"Conv2d.*algorithm must be one of"):
        hg.Conv2d(3, 4, 3, algorithm="fft")
    with pytest.raises(NotSupportedError, match=r"Conv2d.*not supported.*3x3 kernel, stride 1"):
        hg.Conv2d(3, 4, 5, algorithm="winograd")
    with pytest.raises(ValueError, match=r"Conv2d.*stride=\(2, 2\)"):
        hg.Conv2d(3, 4, 3, stride=2, algorithm="winograd")
    with pytest.raises(ValueError, match=r"Conv1d.*needs a Conv2d"):
        hg.Conv1d(3, 4, 3, algorithm="winograd")
    with pytest.raises(NotSupportedError, match=r"Conv2d.*algorithm='winograd'.*groups=2"):
        hg.Conv2d(4, 4, 3, groups=2, algorithm="winograd")
    layer = hg.Conv2d(3, 4, 3, algorithm="winograd").to(dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"Conv2d.*float32 or float64.*bfloat16"):
        layer(torch.randn(1, 3, 8, 8, dtype=torch.bfloat16))
    layer = hg.Conv2d(3, 4, 3)
    layer.algorithm = "direct"  # set after construction: caught at the next forward
    with pytest.raises(ValueError, match="algorithm must be one of"):
        layer(torch.randn(1, 3, 8, 8))


def test_backward_without_forward_and_twice():
    layer = hg.Conv2d(3, 4, 3, padding=1, algorithm="winograd")
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(torch.randn(1, 4, 8, 8))
    y = layer(torch.randn(1, 3, 8, 8))
    layer.backward(torch.ones_like(y))
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(torch.ones_like(y))
    layer(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="gradient of the output's shape"):
        layer.backward(torch.ones(1, 4, 7, 8))


def test_copy_rows_moves_bits_exactly():
    bits = torch.randint(-(2**31), 2**31 - 1, (3, 5, 8), dtype=torch.int32)
    src = bits.view(torch.float32)  # every pattern: NaNs with payloads, infinities, subnormals
    dst = torch.empty(5, 3, 8)
    _copy_rows(dst, src.transpose(0, 1))
    assert torch.equal(dst.view(torch.int32), bits.transpose(0, 1))
    odd = torch.empty(5 * 3 * 8 + 1)[1:].view(5, 3, 8)  # not 16-byte aligned: the plain copy
    _copy_rows(odd, src.transpose(0, 1))
    assert torch.equal(odd.view(torch.int32), bits.transpose(0, 1))


def test_matrices_follow_dtype():
    assert F4x4_3x3.matrices(torch.ones(1, dtype=torch.float32))[0].dtype == torch.float32
    assert F4x4_3x3.matrices(torch.ones(1, dtype=torch.float64))[0].dtype == torch.float64


@pytest.mark.parametrize("images_per_chunk", [1, 2])
@pytest.mark.parametrize("x_shape,padding", [((5, 3, 9, 11), 1), ((3, 3, 8, 8), 1)], ids=str)
def test_batch_in_chunks_equals_autograd(images_per_chunk, x_shape, padding):
    """The batch goes through in chunks of images (the last one shorter); the result is the
    same as in one piece."""
    Ho, Wo = (s + 2 * padding - 2 for s in x_shape[2:])
    per_image = 36 * 5 * -(-Ho // 4) * -(-Wo // 4) * 8  # t² · max(C, O) · tiles · float64
    chunked = Winograd(chunk_bytes=images_per_chunk * per_image)
    tiles = per_image // (36 * 5 * 8)
    assert F4x4_3x3._chunks(x_shape[0], 3, 5, tiles, 8, chunked.chunk_bytes)[0] == (
        0,
        images_per_chunk,
    )
    _check_against_autograd(x_shape, padding, True, algorithm=chunked)
    _check_against_autograd(x_shape, padding, False, params_only=True, algorithm=chunked)


def test_same_tile_grid_for_different_image_sizes():
    """7×7, 8×8 and 6×6 images all make 2×2 tiles of 4×4 outputs (padding 1): the padding
    of the reused work buffers must be zero again for each size, in forward and backward."""
    layer = hg.Conv2d(3, 4, 3, padding=1, algorithm="winograd").to(dtype=torch.float64)
    for size in [8, 7, 8, 6, 5, 7]:
        layer.zero_grad()
        x = torch.randn(2, 3, size, size, dtype=torch.float64)
        y = layer(x)
        dy = torch.randn(y.shape, dtype=torch.float64)
        expected, grads = autograd_grads(
            lambda a, w, b: F.conv2d(a, w, b, padding=1), [x, layer.weight, layer.bias], dy
        )
        assert_close(y, expected)
        assert_close(layer.backward(dy), grads[0])
        assert_close(layer.weight.grad, grads[1])
        assert_close(layer.bias.grad, grads[2])
