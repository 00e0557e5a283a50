"""Conv1d/2d and pooling: forward vs torch.nn.functional, backward vs autograd in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import assert_close, autograd_grads, upstream

import handgrad as hg
from handgrad.check import gradcheck
from handgrad.kernels import Im2col

CONV_ARGS = [
    dict(kernel_size=3),
    dict(kernel_size=5, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=2, dilation=2),
    dict(kernel_size=2, stride=3),
    dict(kernel_size=4, padding="same"),
    dict(kernel_size=3, padding="valid", dilation=3),
]


ALGORITHMS = {
    "reference": "reference",
    "auto": "auto",
    "im2col, one product": Im2col(per_image_from=10**9),
    "im2col, per image": Im2col(per_image_from=1),
    "im2col, per image, one image a chunk": Im2col(per_image_from=1, chunk_bytes=1),
}


@pytest.fixture(params=list(ALGORITHMS))
def algorithm(request):
    """Every path a convolution can take, through Conv's public `algorithm` argument: the
    reference ops, and the tuned im2col's two ways to multiply (one product over the whole
    batch, or one per image with dL/dx in chunks of images)."""
    return ALGORITHMS[request.param]


def _conv_case(cls, ref_fn, x_shape, args, bias, algorithm="auto"):
    x = torch.randn(x_shape, dtype=torch.float64)
    nd = 1 if cls is hg.Conv1d else 2
    cin = x_shape[-nd - 1]  # (N, C, *S) or unbatched (C, *S)
    layer = cls(cin, 4, bias=bias, algorithm=algorithm, **args).to(torch.float64)
    y = layer(x)
    g = upstream(y.shape)
    params = [layer.weight] + ([layer.bias] if bias else [])
    stride, padding, dilation = (
        args.get("stride", 1),
        args.get("padding", 0),
        args.get("dilation", 1),
    )

    def ref(x_, w, b=None):
        return ref_fn(x_, w, b, stride=stride, padding=padding, dilation=dilation)

    expected, grads = autograd_grads(ref, [x, *params], g)
    assert_close(y, expected)
    assert_close(layer.backward(g), grads[0])
    assert_close(layer.weight.grad, grads[1])
    if bias:
        assert_close(layer.bias.grad, grads[2])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("args", CONV_ARGS, ids=str)
@pytest.mark.parametrize("x_shape", [(2, 3, 17), (1, 3, 9), (3, 12)])
def test_conv1d(x_shape, args, bias, algorithm):
    _conv_case(hg.Conv1d, F.conv1d, x_shape, args, bias, algorithm)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("args", CONV_ARGS, ids=str)
@pytest.mark.parametrize("x_shape", [(2, 3, 9, 11), (1, 3, 8, 8), (3, 10, 7)])
def test_conv2d(x_shape, args, bias, algorithm):
    _conv_case(hg.Conv2d, F.conv2d, x_shape, args, bias, algorithm)


def test_conv2d_rectangular_kernel_and_per_dim_settings(algorithm):
    args = dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 0), dilation=(2, 1))
    _conv_case(hg.Conv2d, F.conv2d, (2, 3, 9, 11), args, True, algorithm)


@pytest.mark.parametrize("cls,ref", [(hg.Conv1d, nn.Conv1d), (hg.Conv2d, nn.Conv2d)])
def test_default_init_and_state_dict_equal_torch(cls, ref):
    torch.manual_seed(4)
    mine = cls(3, 6, 3)
    torch.manual_seed(4)
    theirs = ref(3, 6, 3)
    assert torch.equal(mine.weight, theirs.weight.detach())
    assert torch.equal(mine.bias, theirs.bias.detach())
    assert list(mine.state_dict()) == list(theirs.state_dict())


POOL_ARGS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=1),
]


@pytest.mark.parametrize("args", POOL_ARGS, ids=str)
@pytest.mark.parametrize(
    "cls,ref,x_shape",
    [
        (hg.MaxPool1d, F.max_pool1d, (2, 3, 15)),
        (hg.AvgPool1d, F.avg_pool1d, (2, 3, 15)),
        (hg.MaxPool2d, F.max_pool2d, (2, 3, 9, 8)),
        (hg.AvgPool2d, F.avg_pool2d, (2, 3, 9, 8)),
        (hg.MaxPool2d, F.max_pool2d, (3, 7, 7)),
    ],
)
def test_pooling(cls, ref, x_shape, args):
    x = torch.randn(x_shape, dtype=torch.float64)
    pool = cls(**args)
    y = pool(x)
    g = upstream(y.shape)
    expected, (dx,) = autograd_grads(lambda t: ref(t, **args), [x], g)
    assert_close(y, expected)
    assert_close(pool.backward(g), dx)


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = torch.zeros(1, 1, 4, dtype=torch.float64)
    pool = hg.MaxPool1d(2)
    pool(x)
    _, (dx,) = autograd_grads(
        lambda t: F.max_pool1d(t, 2), [x], torch.ones(1, 1, 2, dtype=torch.float64)
    )
    assert_close(pool.backward(torch.ones(1, 1, 2, dtype=torch.float64)), dx)


def test_unflatten():
    layer = hg.Unflatten(1, (2, 3))
    x = torch.randn(4, 6)
    y = layer(x)
    assert_close(y, nn.Unflatten(1, (2, 3))(x))
    assert_close(layer.backward(torch.ones(4, 2, 3)), torch.ones(4, 6))
    with pytest.raises(ValueError, match=r"cannot unflatten dim 1 of shape \(4, 5\)"):
        layer(torch.randn(4, 5))


@pytest.mark.parametrize(
    "make,shape",
    [
        # the reference path: autograd can trace it (the tuned kernels write into out=)
        (lambda: hg.Conv1d(2, 3, 3, stride=2, padding=1, algorithm="reference"), (2, 2, 9)),
        (
            lambda: hg.Conv2d(2, 3, (2, 3), dilation=(2, 1), padding=1, algorithm="reference"),
            (2, 2, 6, 5),
        ),
        (
            lambda: hg.Conv2d(2, 2, 3, 1, 1, 1, 2, False, "reflect", algorithm="reference"),
            (1, 2, 4, 4),
        ),
        (lambda: hg.ConvTranspose2d(4, 2, 3, 2, 1, 1, 2), (2, 4, 3, 3)),
        (lambda: hg.MaxPool2d(2), (2, 2, 6, 6)),
        (lambda: hg.AvgPool1d(3, stride=2, padding=1), (2, 3, 8)),
        (lambda: hg.Unflatten(1, (1, 8)), (3, 8)),
    ],
)
def test_gradcheck_passes(make, shape):
    report = gradcheck(make(), torch.randn(shape))
    assert report.ok, str(report)


def test_a_cnn_gets_every_gradient_right():
    torch.manual_seed(0)
    mine = hg.Sequential(
        hg.Conv1d(1, 4, 5, stride=2, padding=1),
        hg.ReLU(),
        hg.MaxPool1d(2),
        hg.Conv1d(4, 4, 3, padding=1),
        hg.Tanh(),
        hg.Flatten(),
        hg.Linear(16, 3),
    )
    mine.to(torch.float64)
    ref = hg.to_torch(mine)
    x = torch.randn(5, 1, 20, dtype=torch.float64)
    g = upstream((5, 3))
    xr = x.clone().requires_grad_(True)
    (ref(xr) * g).sum().backward()
    mine(x)
    assert_close(mine.backward(g), xr.grad)
    named = dict(ref.named_parameters())
    for name, p in mine.named_parameters():
        assert_close(p.grad, named[name].grad)


@pytest.mark.parametrize(
    "bad,match",
    [
        (
            lambda: hg.Conv2d(3, 4, 3)(torch.randn(2, 1, 8, 8)),
            r"Conv2d\(in_channels=3.*expected input \(N, 3, H, W\).*\(2, 1, 8, 8\)",
        ),
        (lambda: hg.Conv1d(1, 4, 3)(torch.randn(2, 1, 4, 4)), r"expected input \(N, 1, L\)"),
        (
            lambda: hg.Conv1d(1, 4, 7)(torch.randn(2, 1, 5)),
            r"kernel spans \(7,\), more than the padded input \(5,\)",
        ),
        (lambda: hg.Conv2d(1, 4, 3, stride=0), "stride must be an int >= 1"),
        (lambda: hg.Conv2d(1, 4, 3, stride=-1), "stride must be an int >= 1"),
        (lambda: hg.Conv2d(0, 4, 3), "in_channels must be a positive int"),
        (
            lambda: hg.Conv2d(1, 4, 3, padding="same", stride=2),
            "padding='same' is not supported for strided convolutions",
        ),
        (lambda: hg.MaxPool2d(2, padding=2), "at most half the kernel size"),
        (lambda: hg.Conv1d(1, 2, 3)(torch.ones(2, 1, 8, dtype=torch.long)), "floating-point"),
    ],
)
def test_bad_input(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bad()


def test_backward_checks():
    layer = hg.Conv1d(1, 2, 3)
    with pytest.raises(RuntimeError, match="more often than forward"):
        layer.backward(torch.ones(1, 2, 3))
    layer(torch.randn(2, 1, 8))
    with pytest.raises(ValueError, match=r"output's shape \(2, 2, 6\)"):
        layer.backward(torch.ones(2, 2, 5))


def test_save_load_and_torch_interop_know_the_conv_layers(tmp_path):
    torch.manual_seed(0)
    model = hg.Sequential(
        hg.Unflatten(1, (1, 40)),
        hg.Conv1d(1, 6, 5, stride=2, padding=1),
        hg.ReLU(),
        hg.MaxPool1d(2),
        hg.AvgPool1d(3, 1, 1),
        hg.Flatten(),
        hg.Linear(54, 10),
    ).eval()
    x = torch.randn(4, 40)
    loaded = hg.load(hg.save(model, tmp_path / "cnn.safetensors"))
    assert torch.equal(loaded(x), model(x))
    ref = hg.to_torch(model)
    assert isinstance(ref[1], nn.Conv1d)
    torch.testing.assert_close(ref(x), model(x))
    torch.testing.assert_close(hg.from_torch(ref)(x), model(x))
    image = hg.Sequential(
        hg.Conv2d(1, 4, 3, padding="same"),
        hg.ReLU(),
        hg.MaxPool2d(2),
        hg.AvgPool2d(2),
        hg.Flatten(),
        hg.Linear(16, 3),
    )
    x2 = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(hg.to_torch(image)(x2), image(x2))
    grouped = nn.Conv2d(4, 4, 3, 1, 0, 1, 2, False, "circular")  # groups and padding_mode
    torch.testing.assert_close(
        hg.from_torch(grouped)(x2.expand(2, 4, 8, 8)), grouped(x2.expand(2, 4, 8, 8))
    )


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: hg.Conv1d(3, 4, 3, padding=1), (0, 3, 8)),
        (lambda: hg.Conv1d(3, 4, 3, padding=1, algorithm="reference"), (0, 3, 8)),
        (lambda: hg.Conv2d(3, 4, 3, padding=1, algorithm="reference"), (0, 3, 8, 8)),
        (lambda: hg.Conv2d(3, 4, 3, padding=1, algorithm="im2col"), (0, 3, 8, 8)),
        (lambda: hg.Conv2d(3, 4, 3, padding=1, algorithm=Im2col(per_image_from=1)), (0, 3, 8, 8)),
        (lambda: hg.Conv2d(3, 4, 3, padding=1, algorithm="winograd"), (0, 3, 8, 8)),
    ],
)
def test_empty_batch_as_torch(make, shape):
    """A batch of zero images gives an empty output, an empty dL/dx and zero gradients."""
    layer = make()
    ref = (nn.Conv1d if len(shape) == 3 else nn.Conv2d)(3, 4, 3, padding=1)
    x = torch.randn(shape)
    y = layer(x)
    assert y.shape == ref(x).shape
    assert layer.backward(torch.ones(y.shape)).shape == x.shape
    assert torch.equal(layer.weight.grad, torch.zeros_like(layer.weight))
    assert torch.equal(layer.bias.grad, torch.zeros(4))


@pytest.mark.parametrize(
    "algorithm",
    ["reference", "im2col", Im2col(per_image_from=10**9), "winograd"],
    ids=["reference", "im2col", "im2col one product", "winograd"],
)
def test_backward_params_equals_backward_without_dx(algorithm):
    x = torch.randn(3, 4, 12, 12, dtype=torch.float64)
    a = hg.Conv2d(4, 5, 3, padding=1, algorithm=algorithm).to(dtype=torch.float64)
    b = hg.Conv2d(4, 5, 3, padding=1, algorithm=algorithm).to(dtype=torch.float64)
    b.load_state_dict(a.state_dict())
    dy = torch.randn(3, 5, 12, 12, dtype=torch.float64)
    a(x)
    a.backward(dy)
    b(x)
    b.backward_params(dy)
    assert_close(b.weight.grad, a.weight.grad)
    assert_close(b.bias.grad, a.bias.grad)


@pytest.mark.parametrize(
    "make,ref",
    [
        (lambda: hg.Conv2d(3, 4, 3, padding=1, algorithm="im2col"), None),
        (lambda: hg.MaxPool2d(3, stride=1, padding=1), lambda x: F.max_pool2d(x, 3, 1, 1)),
        (lambda: hg.AvgPool1d(3, stride=2, padding=1), lambda x: F.avg_pool1d(x, 3, 2, 1)),
    ],
)
def test_padding_is_redone_for_every_input(make, ref):
    """The padded input lives in a reused work tensor; inputs of other sizes and values
    through the same layer must each see only their own padding."""
    layer = make()
    if ref is None:
        layer.to(dtype=torch.float64)

        def ref(x):
            return F.conv2d(x, layer.weight, layer.bias, padding=1)

    nd = 1 if isinstance(layer, hg.AvgPool1d) else 2
    for size in [8, 7, 8, 5]:
        x = torch.randn(2, 3, *[size] * nd, dtype=torch.float64) * 10
        assert_close(layer(x), ref(x))
