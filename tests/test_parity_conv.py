"""Conformance of Conv1d/2d and ConvTranspose1d/2d with torch.nn in float64: every option
combination (kernel, stride, padding as ints, tuples, 'same', 'valid', dilation, groups, bias,
padding_mode, output_padding, output_size) on batched, unbatched and empty inputs, on every
algorithm; torch's errors; init and state_dict as torch's."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
from parity import assert_matches_torch

import handgrad as hg
from handgrad.errors import ArgumentTypeError, InputError, NotSupportedError, ShapeError
from handgrad.kernels import Im2col

MODES = ["zeros", "reflect", "replicate", "circular"]


SPATIAL = {1: (7,), 2: (6, 5)}


def _input(nd: int, kind: str, channels: int = 4, seed: int = 0) -> torch.Tensor:
    """A batched (2, C, *S), unbatched (C, *S) or empty (0, C, *S) input."""
    g = torch.Generator().manual_seed(seed)
    shape = {"batched": (2, channels), "unbatched": (channels,), "empty": (0, channels)}[kind]
    return torch.randn(*shape, *SPATIAL[nd], generator=g, dtype=torch.float64)


def _classes(nd: int, transposed: bool = False) -> tuple[type, type]:
    if transposed:
        return (
            (nn.ConvTranspose1d, hg.ConvTranspose1d)
            if nd == 1
            else (nn.ConvTranspose2d, hg.ConvTranspose2d)
        )
    return (nn.Conv1d, hg.Conv1d) if nd == 1 else (nn.Conv2d, hg.Conv2d)


# ---- Conv1d/Conv2d: every geometry × groups × bias × padding_mode -----------------------------
KERNELS = {1: 3, 2: (2, 3)}  # an even kernel size: 'same' pads the end more
STRIDES = {1: [1, 2], 2: [1, (2, 1)]}
PADDINGS = {1: [0, 1, (2,), "same", "valid"], 2: [0, 1, (1, 2), "same", "valid"]}
CONV_CASES = [
    (nd, KERNELS[nd], s, p, d, g, bias, mode)
    for nd in (1, 2)
    for s, p, d, g, bias, mode in itertools.product(
        STRIDES[nd], PADDINGS[nd], [1, 2], [1, 2], [True, False], MODES
    )
    if not (p == "same" and s != 1)
]


@pytest.mark.parametrize("nd,kernel,stride,padding,dilation,groups,bias,mode", CONV_CASES)
def test_conv_matches_torch(nd, kernel, stride, padding, dilation, groups, bias, mode):
    ref_cls, cls = _classes(nd)
    args = (4, 4, kernel, stride, padding, dilation, groups, bias, mode)  # torch's positions
    assert_matches_torch(ref_cls(*args), [_input(nd, "batched")])  # from_torch: "auto"
    for kind in ("unbatched", "empty"):  # the reference path, built by hand
        mine = cls(*args, algorithm="reference")
        assert_matches_torch(ref_cls(*args), [_input(nd, kind)], hg_module=mine)


# ---- every algorithm on every option it can take (the tuned kernels' own branches) -----------
ALGORITHMS = {  # "reference" and "auto" run on every case above
    "im2col": "im2col",
    "im2col per image": Im2col(per_image_from=1),
    "im2col per image, chunks of one": Im2col(per_image_from=1, chunk_bytes=1),
    "winograd": "winograd",
}
ALGORITHM_CASES = list(
    itertools.product(ALGORITHMS, [1, 2, 4], [1, "same", (2, 1)], MODES, [True, False])
)


@pytest.mark.parametrize("algorithm,groups,padding,mode,bias", ALGORITHM_CASES)
def test_conv2d_every_algorithm(algorithm, groups, padding, mode, bias):
    args = (4, 8, 3, 1, padding, 1, groups, bias, mode)  # groups=4: depthwise, 2 outputs each
    if algorithm == "winograd" and groups > 1:
        with pytest.raises(NotSupportedError, match=r"Conv2d.*not supported: algorithm='winograd'"):
            hg.Conv2d(*args, algorithm=ALGORITHMS[algorithm])
        return
    for kind in ("batched", "unbatched", "empty"):
        mine = hg.Conv2d(*args, algorithm=ALGORITHMS[algorithm])
        assert_matches_torch(nn.Conv2d(*args), [_input(2, kind)], hg_module=mine)
        assert mine.last_algorithm == ("winograd" if algorithm == "winograd" else "im2col")


@pytest.mark.parametrize("algorithm", ["auto", "im2col", Im2col(per_image_from=1)])
@pytest.mark.parametrize("groups,mode", list(itertools.product([1, 3], MODES)))
def test_conv1d_tuned_paths(algorithm, groups, mode):
    args = (3, 6, 3, 2, 2, 2, groups, True, mode)
    for kind in ("batched", "unbatched", "empty"):
        mine = hg.Conv1d(*args, algorithm=algorithm)
        assert_matches_torch(nn.Conv1d(*args), [_input(1, kind, channels=3)], hg_module=mine)


def test_auto_picks_a_path_that_can_do_groups():
    torch.set_float32_matmul_precision("high")  # would let "auto" take Winograd for groups=1
    try:
        layer = hg.Conv2d(32, 32, 3, padding=1, groups=2)
        layer(torch.randn(4, 32, 16, 16))
        assert layer.last_algorithm == "im2col"
    finally:
        torch.set_float32_matmul_precision("highest")


@pytest.mark.parametrize("kind", ["large", "zeros"])
@pytest.mark.parametrize("mode", MODES)
def test_awkward_values(kind, mode):
    x = _input(2, "batched")
    x = x * 1e4 if kind == "large" else torch.where(x > 0, x, torch.zeros_like(x))
    assert_matches_torch(nn.Conv2d(4, 4, 3, 1, 1, 2, 2, True, mode), [x])


def test_same_padding_with_an_even_kernel_pads_the_end_more():
    for mode in MODES:
        ref = nn.Conv2d(2, 3, (4, 2), padding="same", dilation=(1, 3), padding_mode=mode)
        assert_matches_torch(ref, [torch.randn(2, 2, 7, 8)])


def test_init_and_state_dict_as_torch():
    for args in [(4, 6, 3, 1, 0, 1, 2), (4, 8, (2, 3), 1, 1, 1, 4, False, "reflect")]:
        torch.manual_seed(3)
        ref = nn.Conv2d(*args)
        torch.manual_seed(3)
        mine = hg.Conv2d(*args)
        assert list(mine.state_dict()) == list(ref.state_dict())
        for key, value in ref.state_dict().items():
            assert torch.equal(mine.state_dict()[key], value)
    layer = hg.Conv1d(4, 6, 3, groups=2, device="cpu", dtype=torch.float64)
    assert layer.weight.shape == (6, 2, 3) and layer.weight.dtype == torch.float64


def test_the_seventh_positional_argument_is_groups():
    layer = hg.Conv2d(4, 4, 3, 1, 0, 1, 2)  # torch's groups=2, not bias
    assert layer.groups == 2 and layer.bias is not None and layer.weight.shape == (4, 2, 3, 3)
    assert_matches_torch(nn.Conv2d(4, 4, 3, 1, 0, 1, 2), [torch.randn(2, 4, 5, 5)], hg_module=layer)
    with pytest.raises(TypeError):
        hg.Conv2d(4, 4, 3, 1, 0, 1, 1, True, "zeros", None, None, "im2col")  # keyword-only


def test_save_load_keeps_groups_and_padding_mode(tmp_path):
    model = hg.Sequential(
        hg.Conv2d(2, 4, 3, padding="same", groups=2, padding_mode="circular"),
        hg.ConvTranspose2d(4, 2, 3, stride=2, output_padding=1, groups=2, dilation=2),
    )
    x = torch.randn(2, 2, 5, 5)
    loaded = hg.load(hg.save(model, tmp_path / "m.safetensors"))
    assert loaded[0].config() == model[0].config() and loaded[1].config() == model[1].config()
    torch.testing.assert_close(loaded(x), model(x))
    torch.testing.assert_close(hg.to_torch(model)(x), model(x))


# ---- ConvTranspose1d/2d -----------------------------------------------------------------------
TRANSPOSE_CASES = [
    (nd, k, s, p, op, g, bias, d)
    for nd in (1, 2)
    for k, s, p, op, g, bias, d in itertools.product(
        [KERNELS[nd]], [1, 2], [0, (2,) * nd], [0, 1], [1, 2], [True, False], [1, 2]
    )
    if op < s or op < d
]


@pytest.mark.parametrize(
    "nd,kernel,stride,padding,output_padding,groups,bias,dilation", TRANSPOSE_CASES
)
def test_conv_transpose_matches_torch(
    nd, kernel, stride, padding, output_padding, groups, bias, dilation
):
    ref_cls, cls = _classes(nd, transposed=True)
    args = (4, 6, kernel, stride, padding, output_padding, groups, bias, dilation)
    for kind in ("batched", "unbatched", "empty"):
        ref = ref_cls(*args)
        assert_matches_torch(ref, [_input(nd, kind)], hg_module=cls(*args))
    assert_matches_torch(ref_cls(*args), [_input(nd, "batched")])  # through from_torch


@pytest.mark.parametrize(
    "nd,x_shape,output_size",
    [
        (2, (2, 4, 3, 4), (7, 10)),  # the smallest sizes
        (2, (2, 4, 3, 4), (9, 12)),  # the largest: stride - 1 more
        (2, (2, 4, 3, 4), [2, 6, 8, 11]),  # (N, C, H, W) as torch accepts
        (2, (4, 3, 4), torch.Size([6, 8, 11])),  # unbatched: (C, H, W)
        (1, (2, 4, 5), [14]),
        (1, (4, 5), (6, 13)),
    ],
)
def test_conv_transpose_output_size(nd, x_shape, output_size):
    ref_cls, _ = _classes(nd, transposed=True)
    x = torch.randn(x_shape)
    mine = assert_matches_torch(ref_cls(4, 6, 3, stride=3, padding=1, groups=2), [x, output_size])
    y = mine(x.double(), output_size=output_size)  # by keyword, as torch's forward
    assert y.shape[-nd:] == tuple(output_size)[-nd:]


def test_conv_transpose_init_and_keys_as_torch():
    torch.manual_seed(5)
    ref = nn.ConvTranspose2d(4, 6, (2, 3), stride=2, groups=2)
    torch.manual_seed(5)
    mine = hg.ConvTranspose2d(4, 6, (2, 3), stride=2, groups=2)
    assert mine.weight.shape == (4, 3, 2, 3)  # (in, out/groups, *kernel)
    for key, value in ref.state_dict().items():
        assert torch.equal(mine.state_dict()[key], value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: hg.Conv2d(4, 4, 3, 1, 1, 1, 2, True, "reflect"),
        lambda: hg.Conv2d(4, 4, 3, 1, 1, 1, 2, True, "circular", algorithm="reference"),
        lambda: hg.ConvTranspose2d(4, 4, 3, 2, 1, 1, 2),
    ],
)
def test_backward_params_gives_the_same_parameter_gradients(make):
    a, b = make().to(dtype=torch.float64), make().to(dtype=torch.float64)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    g = torch.randn_like(a(x))
    a.backward(g)
    b(x)
    b.backward_params(g)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name)


# ---- torch's errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad,error,match",
    [
        (
            lambda: hg.Conv2d(4, 4, 3, groups=3),
            InputError,
            "in_channels must be divisible by groups",
        ),
        (
            lambda: hg.Conv2d(4, 6, 3, groups=4),
            InputError,
            "out_channels must be divisible by groups",
        ),
        (lambda: hg.Conv1d(4, 4, 3, groups=0), InputError, "groups must be a positive integer"),
        (
            lambda: hg.Conv2d(4, 4, 3, padding_mode="mirror"),
            InputError,
            "padding_mode must be one of",
        ),
        (lambda: hg.Conv2d(4, 4, 3, padding="full"), InputError, "Invalid padding string 'full'"),
        (
            lambda: hg.Conv1d(4, 4, 3, 2, "same"),
            InputError,
            "padding='same' is not supported for strided convolutions",
        ),
        (lambda: hg.Conv1d(4, 4, 3, algorithm="winograd"), NotSupportedError, "needs a Conv2d"),
        (
            lambda: hg.Conv2d(4, 4, 3, padding=6, padding_mode="reflect")(torch.randn(1, 4, 6, 6)),
            ShapeError,
            "reflect needs padding < size",
        ),
        (
            lambda: hg.Conv1d(4, 4, 3, padding=8, padding_mode="circular")(torch.randn(4, 7)),
            ShapeError,
            "circular padding <= size",
        ),
        (
            lambda: hg.Conv2d(4, 4, 3)(torch.randn(2, 3, 6, 6)),
            ShapeError,
            r"expected input \(N, 4, H, W\)",
        ),
        (lambda: hg.Conv2d(4, 4, 3)(torch.randn(6, 6)), ShapeError, r"got shape \(6, 6\)"),
        (lambda: hg.Conv1d(4, 4, 3)([[1.0]]), TypeError, "expected a torch.Tensor"),
        (
            lambda: hg.Conv1d(4, 4, 3)(torch.randn(1, 4, 5, dtype=torch.cfloat)),
            NotSupportedError,
            r"not supported: complex input \(torch.complex64\)",
        ),
        (
            lambda: hg.ConvTranspose1d(4, 4, 3)(torch.randn(4, 5, dtype=torch.cdouble)),
            NotSupportedError,
            "not supported: complex input",
        ),
        (
            lambda: hg.ConvTranspose2d(4, 4, 3, padding_mode="reflect"),
            InputError,
            'Only "zeros" padding mode is supported',
        ),
        (lambda: hg.ConvTranspose1d(4, 4, 3, groups=3), InputError, "divisible by groups"),
        (lambda: hg.ConvTranspose1d(4, 4, 3, padding="same"), InputError, "padding must be an int"),
        (
            lambda: hg.ConvTranspose1d(4, 4, 3, stride=2, output_padding=2)(torch.randn(1, 4, 5)),
            ShapeError,
            "output padding must be smaller than either stride or dilation",
        ),
        (
            lambda: hg.ConvTranspose2d(4, 4, 3, stride=2)(torch.randn(1, 4, 3, 3), (9, 4)),
            InputError,
            r"output size of \[9, 4\], but valid sizes range from \[7, 7\] to \[8, 8\]",
        ),
        (
            lambda: hg.ConvTranspose2d(4, 4, 3)(torch.randn(1, 4, 3, 3), (5,)),
            InputError,
            "output_size must have 2 or 4 elements",
        ),
        (
            lambda: hg.ConvTranspose1d(4, 4, 3, padding=3)(torch.randn(1, 4, 1)),
            ShapeError,
            "Output size is too small",
        ),
        (
            lambda: hg.ConvTranspose2d(4, 4, 3)(torch.randn(1, 3, 5, 5)),
            ShapeError,
            r"\(N, 4, H, W\)",
        ),
    ],
)
def test_errors_as_torch(bad, error, match):
    with pytest.raises(error, match=match):
        bad()


def test_torch_refuses_the_same(capsys):
    """The cases above are errors in torch too (so handgrad refuses only what torch does)."""
    for make in [
        lambda: nn.Conv2d(4, 4, 3, groups=3),
        lambda: nn.Conv2d(4, 4, 3, padding_mode="mirror"),
        lambda: nn.Conv1d(4, 4, 3, 2, "same"),
        lambda: nn.ConvTranspose2d(4, 4, 3, padding_mode="reflect"),
        lambda: nn.Conv2d(4, 4, 3, padding=6, padding_mode="reflect")(torch.randn(1, 4, 6, 6)),
        lambda: nn.ConvTranspose1d(4, 4, 3, stride=2, output_padding=2)(torch.randn(1, 4, 5)),
        lambda: nn.ConvTranspose2d(4, 4, 3, stride=2)(torch.randn(1, 4, 3, 3), (9, 4)),
    ]:
        with pytest.raises((ValueError, RuntimeError)):
            make()


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError):
        hg.ConvTranspose1d(4, 4, 3)("x")
    assert issubclass(ArgumentTypeError, TypeError)
