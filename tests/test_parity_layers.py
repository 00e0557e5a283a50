"""Conformance sweep: every option of the activations, dropouts, norms, Linear and the shape
layers against torch.nn in float64 (tests/parity.py's assert_matches_torch: forward, dL/dx,
parameter gradients, running statistics, from_torch and to_torch), on batched, unbatched and
empty inputs with awkward values (exact kinks, zeros, ±large). inplace=True, and dropout's
random masks (drawn as torch draws them), go through `assert_matches_torch_drawn` below,
which runs both modules on the same seed and hands torch a non-leaf input."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
import torch.nn as nn
from parity import assert_matches_torch

import handgrad as hg

F64 = torch.float64
KINKS = [-7.0, -6.0, -3.0, -1.0, -0.0, 0.0, 1.0, 3.0, 6.0, 7.0, -0.5, 2.5, -2.5, 0.25]


@pytest.fixture(autouse=True)
def _one_thread():
    """torch's batch_norm on a few values takes ~10 ms with two threads on a busy machine
    (the pool spins), ~15 µs with one: these tests are small, so they run on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def values(shape: tuple[int, ...], kind: str = "normal", seed: int = 0) -> torch.Tensor:
    """normal; kinks: exactly 0, ±1, ±3, ±6 and friends; large: ±1e4; zeros: half exact 0;
    mixed: the kinks first (all of them from 14 elements on), then large and normal values
    in turn."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=F64)
    if kind == "mixed":
        flat = x.reshape(-1).clone()
        n = min(len(KINKS), flat.numel())
        flat[:n] = torch.tensor(KINKS[:n], dtype=F64)
        flat[n::2] *= 1e4
        return flat.reshape(shape)
    if kind == "kinks":
        n = x.numel()
        return torch.tensor((KINKS * (n // len(KINKS) + 1))[:n], dtype=F64).reshape(shape)
    if kind == "large":
        return x * 1e4
    if kind == "zeros":
        x.view(-1)[::2] = 0.0
    return x


def assert_matches_torch_drawn(
    torch_module: nn.Module, x: torch.Tensor, train: bool = True, seed: int = 7
) -> hg.Module:
    """assert_matches_torch for what it cannot run: inplace=True (torch refuses an in-place op
    on a leaf) and random masks. Both draw from the same seed; with inplace the result must be
    the input tensor itself."""
    ref = torch_module.double().train(train)
    mine = hg.from_torch(ref)
    leaf = x.detach().clone().requires_grad_(True)
    inplace = getattr(ref, "inplace", False)
    fed = leaf * 1 if inplace else leaf  # torch's in-place op needs a non-leaf
    torch.manual_seed(seed)
    expected = ref(fed)
    x_mine = x.clone()
    torch.manual_seed(seed)
    y = mine(x_mine)
    if inplace:
        assert y is x_mine, "inplace=True must return the input tensor"
    torch.testing.assert_close(y, expected.detach())
    g = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    params = list(ref.parameters())
    try:
        auto = torch.autograd.grad((expected * g).sum(), [leaf, *params], allow_unused=True)
    except RuntimeError as e:  # torch has no in-place backward for a negative slope or α:
        assert "In-place" in str(e)  # handgrad gives the out-of-place gradient there
        ref.inplace = False
        out = ref(leaf)
        auto = torch.autograd.grad((out * g).sum(), [leaf, *params], allow_unused=True)
    torch.testing.assert_close(mine.backward(g), auto[0])
    for p, a in zip(mine.parameters(), auto[1:]):
        torch.testing.assert_close(p.grad, a)
    assert type(hg.to_torch(mine)) is type(ref)
    return mine


# ---- elementwise activations ---------------------------------------------------------------------
SHAPES = [(2, 3, 4), (14,), (), (0, 3)]  # batched, unbatched, a scalar, empty
KINDS = ["mixed"]
WITH_INPLACE = [  # (torch class, its other options)
    (nn.ReLU, {}),
    (nn.LeakyReLU, {"negative_slope": 0.2}),
    (nn.LeakyReLU, {"negative_slope": -0.5}),
    (nn.ELU, {"alpha": 1.3}),
    (nn.ELU, {"alpha": 0.0}),
    (nn.SiLU, {}),
    (nn.Mish, {}),
    (nn.Hardtanh, {}),
    (nn.Hardtanh, {"min_val": -3.0, "max_val": 6.0}),
    (nn.Hardtanh, {"min_val": 0.0, "max_val": 0.5}),
    (nn.ReLU6, {}),
    (nn.Hardswish, {}),
    (nn.Hardsigmoid, {}),
]
WITHOUT_INPLACE = [
    nn.Sigmoid(),
    nn.Tanh(),
    nn.LogSigmoid(),
    nn.Softplus(),
    nn.Softplus(beta=2.0, threshold=3.0),
    nn.Softplus(beta=-1.0, threshold=1.0),
    nn.GELU(),
    nn.GELU(approximate="tanh"),
    nn.Identity(),
    nn.Identity(54, unused_argument=0.1),
]


def _name(cls: type, options: dict) -> str:
    return f"{cls.__name__}({', '.join(f'{k}={v}' for k, v in options.items())})"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
@pytest.mark.parametrize("cls,options", WITH_INPLACE, ids=[_name(c, o) for c, o in WITH_INPLACE])
def test_activation_with_inplace(cls, options, inplace, shape, kind):
    module = cls(**options, inplace=inplace)
    if inplace:
        assert_matches_torch_drawn(module, values(shape, kind))
    else:
        assert_matches_torch(module, [values(shape, kind)])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("module", WITHOUT_INPLACE, ids=repr)
def test_activation(module, shape, kind):
    assert_matches_torch(module, [values(shape, kind)])


@pytest.mark.parametrize("cls", [c for c, _ in WITH_INPLACE])
def test_inplace_then_backward_is_right_and_a_later_inplace_change_is_refused(cls):
    x = values((3, 4), "kinks")
    sig = hg.Sigmoid()
    act = hg.from_torch(cls(inplace=True))
    y = act(sig(x))  # writes into Sigmoid's output, which Sigmoid's backward needs
    act.backward(torch.ones_like(y))
    with pytest.raises(RuntimeError, match=r"Sigmoid\(\)\.backward: a tensor saved by its forward"):
        sig.backward(torch.ones_like(y))


def test_positional_arguments_are_torchs():
    x = values((3, 4), "kinks")
    for args in [(0.2, False), (-0.1,)]:
        assert_matches_torch(nn.LeakyReLU(*args), [x], hg_module=hg.LeakyReLU(*args))
    assert_matches_torch(nn.ELU(0.5), [x], hg_module=hg.ELU(0.5))
    assert_matches_torch(nn.Hardtanh(-2.0, 3.0), [x], hg_module=hg.Hardtanh(-2.0, 3.0))
    assert_matches_torch(nn.Softplus(2.0, 1.0), [x], hg_module=hg.Softplus(2.0, 1.0))
    assert_matches_torch(nn.GELU("tanh"), [x], hg_module=hg.GELU("tanh"))
    assert_matches_torch(nn.PReLU(4, 0.1), [x], hg_module=hg.PReLU(4, 0.1))
    assert_matches_torch(nn.Softmax(0), [x], hg_module=hg.Softmax(0))


def test_hardtanh_deprecated_names_warn_as_torch():
    with pytest.warns(FutureWarning) as record:
        m = hg.Hardtanh(min_value=-2.0, max_value=3.0)
    assert [str(w.message) for w in record] == [
        "keyword argument `min_value` is deprecated and renamed to `min_val`",
        "keyword argument `max_value` is deprecated and renamed to `max_val`",
    ]
    assert (m.min_val, m.max_val) == (-2.0, 3.0)
    with pytest.warns(FutureWarning):
        ref = nn.Hardtanh(min_value=-2.0, max_value=3.0)
    assert_matches_torch(ref, [values((3, 4), "kinks")])


# ---- PReLU ---------------------------------------------------------------------------------------
PRELU_CASES = [  # (num_parameters, input shape)
    (1, (4, 3)),
    (1, (2, 3, 4)),
    (1, (5,)),
    (1, ()),
    (1, (0, 3)),
    (3, (4, 3)),
    (3, (2, 3, 4)),
    (3, (2, 3, 2, 2)),
    (3, (0, 3, 2)),
    (1, (2, 3, 2, 2)),
]


@pytest.mark.parametrize("kind", ["normal", "kinks"])
@pytest.mark.parametrize("init", [0.25, -0.7])
@pytest.mark.parametrize("num_parameters,shape", PRELU_CASES, ids=str)
def test_prelu(num_parameters, shape, init, kind):
    ref = nn.PReLU(num_parameters, init)
    if kind == "normal":  # a slope per channel, not all equal
        with torch.no_grad():
            ref.weight.copy_(torch.randn(num_parameters))
    assert_matches_torch(ref, [values(shape, kind)])


def test_prelu_factory_kwargs_and_state_dict():
    m = hg.PReLU(3, 0.1, dtype=F64)
    assert m.weight.dtype == F64 and torch.equal(m.weight, torch.full((3,), 0.1, dtype=F64))
    assert list(m.state_dict()) == list(nn.PReLU(3).state_dict()) == ["weight"]


@pytest.mark.parametrize("shape", [(3,), (2, 4), ()])
def test_prelu_channel_mismatch_is_refused_as_torch(shape):
    x = values(shape)
    with pytest.raises(RuntimeError):
        nn.PReLU(3)(x.float())
    with pytest.raises(RuntimeError, match=r"PReLU\(num_parameters=3.*expected input \(N, 3, \*\)"):
        hg.PReLU(3)(x.float())


# ---- Softmax and LogSoftmax ----------------------------------------------------------------------
SOFTMAX_SHAPES = [(), (5,), (3, 4), (2, 3, 4), (2, 3, 2, 2), (0, 3), (3, 0)]


@pytest.mark.filterwarnings("ignore:Implicit dimension choice")
@pytest.mark.parametrize("kind", ["mixed"])
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES, ids=str)
@pytest.mark.parametrize("dim", [None, 0, -1, 1])
@pytest.mark.parametrize("cls", [nn.Softmax, nn.LogSoftmax])
def test_softmax(cls, dim, shape, kind):
    if dim is not None and not -max(len(shape), 1) <= dim < max(len(shape), 1):
        with pytest.raises(IndexError):  # torch's error type, from both
            cls(dim)(values(shape, kind))
        with pytest.raises(IndexError, match="out of range"):
            getattr(hg, cls.__name__)(dim)(values(shape, kind))
        return
    assert_matches_torch(cls(dim), [values(shape, kind)])


@pytest.mark.parametrize("shape", SOFTMAX_SHAPES[:5], ids=str)
@pytest.mark.parametrize("cls,name", [(hg.Softmax, "softmax"), (hg.LogSoftmax, "log_softmax")])
def test_softmax_without_dim_warns_and_picks_torchs_dim(cls, name, shape):
    x = values(shape)
    with pytest.warns(UserWarning, match=f"Implicit dimension choice for {name} has been"):
        y = cls()(x)
    dim = 0 if len(shape) in (0, 1, 3) else 1
    torch.testing.assert_close(y, getattr(torch, name)(x, dim))


def test_from_torch_softmax_without_dim_gives_torchs_numbers():
    x = values((2, 3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(hg.from_torch(nn.Softmax())(x), nn.Softmax()(x))


@pytest.mark.parametrize("cls", [hg.Softmax, hg.LogSoftmax])
def test_softmax_dim_out_of_range(cls):
    with pytest.raises(IndexError):
        getattr(nn, cls.__name__)(2)(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"dim 2 is out of range for an input of shape \(2, 3\)"):
        cls(2)(torch.randn(2, 3))


# ---- Dropout, Dropout1d, Dropout2d ---------------------------------------------------------------
DROPOUT_CASES = [  # (class, input shapes it takes)
    (nn.Dropout, [(8, 5), (2, 3, 4), (6,), (), (0, 4)]),
    (nn.Dropout1d, [(6, 5, 4), (5, 4), (0, 5, 4)]),
    (nn.Dropout2d, [(4, 5, 2, 3), (0, 5, 2, 3)]),
]
DROPOUT_SWEEP = [(c, s) for c, shapes in DROPOUT_CASES for s in shapes]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
@pytest.mark.parametrize(
    "cls,shape", DROPOUT_SWEEP, ids=[f"{c.__name__}{s}" for c, s in DROPOUT_SWEEP]
)
def test_dropout_draws_torchs_mask(cls, shape, p, inplace, train):
    x = values(shape) + 10  # no zeros: a dropped element shows as 0
    if inplace or (train and 0 < p < 1):
        assert_matches_torch_drawn(cls(p, inplace), x, train=train)
    else:
        assert_matches_torch(cls(p, inplace), [x], train=train)


@pytest.mark.parametrize("cls,shape", [(hg.Dropout1d, (30, 40, 5)), (hg.Dropout2d, (30, 40, 2, 3))])
def test_feature_dropout_zeroes_whole_channels(cls, shape):
    x = values(shape) + 10
    layer = cls(0.4)
    y = layer(x)
    flat = y.flatten(2)
    kept = flat != 0
    assert (kept.all(2) | (~kept).all(2)).all(), "a channel was partly dropped"
    assert 0.3 < (~kept[:, :, 0]).double().mean() < 0.5
    torch.testing.assert_close(y[y != 0], x[y != 0] / 0.6)
    g = torch.randn(shape, dtype=F64)
    torch.testing.assert_close(layer.backward(g), g * (y / x))  # the same mask
    layer.eval()
    assert layer(x) is x


@pytest.mark.parametrize("shape", [(4, 5, 6), (4, 5), (2, 3, 2, 2, 2)])
def test_dropout2d_warns_as_torch_for_other_ranks(shape):
    x = values(shape) + 10
    with pytest.warns(UserWarning, match="dropout2d: Received a"):
        assert_matches_torch_drawn(hg.to_torch(hg.Dropout2d(0.5)), x)
    with pytest.warns(UserWarning, match="dropout2d: Received a"):
        hg.Dropout2d(0.5)(x)


@pytest.mark.parametrize("cls,shape", [(hg.Dropout1d, (5,)), (hg.Dropout1d, (2, 3, 4, 5))])
def test_dropout1d_refuses_other_ranks_as_torch(cls, shape):
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):
        nn.Dropout1d()(torch.randn(shape))
    with pytest.raises(RuntimeError, match=r"Dropout1d\(p=0.5.*expected input \(N, C, L\) or"):
        cls()(torch.randn(shape))


def test_dropout2d_of_a_vector_in_training_is_refused_as_torch():
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="at least 2 dimensions"):
        nn.Dropout2d()(torch.randn(5))
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="at least 2 dimensions"):
        hg.Dropout2d()(torch.randn(5))


@pytest.mark.parametrize("cls", [hg.Dropout, hg.Dropout1d, hg.Dropout2d])
@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_p_out_of_range_is_refused_as_torch(cls, p):
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        getattr(nn, cls.__name__)(p)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        cls(p)


# ---- Linear --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mixed"])
@pytest.mark.parametrize("lead", [(), (5,), (2, 3), (0,)], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias, lead, kind):
    ref = nn.Linear(4, 3, bias)
    assert_matches_torch(ref, [values((*lead, 4), kind)], hg_module=hg.Linear(4, 3, bias))
    assert_matches_torch(ref, [values((*lead, 4), kind)])


def test_linear_factory_kwargs_and_init_keyword():
    m = hg.Linear(4, 3, False, "cpu", F64, init="normal")
    assert m.weight.dtype == F64 and m.bias is None
    with pytest.raises(TypeError):
        hg.Linear(4, 3, True, None, None, "normal")  # init is keyword-only


# ---- BatchNorm1d, BatchNorm2d --------------------------------------------------------------------
BN_OPTIONS = [  # momentum, affine, track_running_stats, bias (bias only matters with affine)
    (m, a, t, b)
    for m, a, t, b in itertools.product([0.1, None], [True, False], [True, False], [True, False])
    if a or b
]
BN_SHAPES = {
    nn.BatchNorm1d: [(6, 3), (4, 3, 5), (0, 3), (0, 3, 5), (2, 3, 0)],
    nn.BatchNorm2d: [(2, 3, 4, 5), (0, 3, 2, 2), (1, 3, 1, 2)],
}
BN_SWEEP = [(c, s) for c, shapes in BN_SHAPES.items() for s in shapes]


def _bn(cls, momentum, affine, track, bias, seed=0):
    """torch's batch norm with random γ, β and running statistics from three earlier batches."""
    ref = cls(3, 1e-5, momentum, affine, track, bias=bias).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64))
        for _ in range(3):
            shape = (5, 3) if cls is nn.BatchNorm1d else (2, 3, 2, 2)
            ref(torch.randn(shape, generator=g, dtype=F64) * 2 + 1)
    return ref


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kind", ["mixed"])
@pytest.mark.parametrize("cls,shape", BN_SWEEP, ids=[f"{c.__name__}{s}" for c, s in BN_SWEEP])
@pytest.mark.parametrize("momentum,affine,track,bias", BN_OPTIONS, ids=str)
def test_batchnorm(momentum, affine, track, bias, cls, shape, kind, train):
    ref = _bn(cls, momentum, affine, track, bias)
    hand = getattr(hg, cls.__name__)(3, 1e-5, momentum, affine, track, bias=bias)
    assert_matches_torch(ref, [values(shape, kind)], hg_module=hand, train=train)
    assert list(hand.state_dict()) == list(ref.state_dict())


@pytest.mark.parametrize("momentum", [None, 0.3])
def test_batchnorm_running_statistics_over_many_batches(momentum):
    ref = nn.BatchNorm1d(3, momentum=momentum).double()
    mine = hg.from_torch(ref)
    for seed, n in enumerate([4, 0, 6, 2, 5]):  # an empty batch counts, moves nothing
        x = values((n, 3), seed=seed) * 3 + seed
        torch.testing.assert_close(mine(x), ref(x).detach())
        mine.backward(torch.ones(n, 3, dtype=F64))
    for name, buf in ref.named_buffers():
        torch.testing.assert_close(mine.state_dict()[name], buf)


@pytest.mark.parametrize("track", [True, False])
def test_batchnorm_one_value_per_channel_as_torch(track):
    x = torch.randn(1, 3)
    for train in (True, False):
        ref, mine = (
            nn.BatchNorm1d(3, track_running_stats=track),
            hg.BatchNorm1d(3, track_running_stats=track),
        )
        ref.train(train), mine.train(train)
        if train or not track:
            with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
                ref(x)
            with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
                mine(x)
        else:
            torch.testing.assert_close(mine(x), ref(x).detach())


@pytest.mark.parametrize(
    "cls,shape,error,match",
    [
        (hg.BatchNorm1d, (3,), ValueError, r"expected 2D or 3D input \(got 1D input\)"),
        (hg.BatchNorm1d, (2, 3, 2, 2), ValueError, r"expected 2D or 3D input \(got 4D input\)"),
        (hg.BatchNorm2d, (2, 3, 2), ValueError, r"expected 4D input \(got 3D input\)"),
        (
            hg.BatchNorm1d,
            (2, 4),
            RuntimeError,
            r"expected input \(N, C\) or \(N, C, L\) with C = 3",
        ),
        (hg.BatchNorm2d, (2, 4, 2, 2), RuntimeError, r"expected input \(N, C, H, W\) with C = 3"),
    ],
)
def test_batchnorm_bad_shapes_are_refused_as_torch(cls, shape, error, match):
    with pytest.raises(error):
        getattr(nn, cls.__name__)(3)(torch.randn(shape))
    with pytest.raises(error, match=match):
        cls(3)(torch.randn(shape))


def test_batchnorm_without_tracking_has_torchs_keys_and_no_buffers():
    mine, ref = (
        hg.BatchNorm1d(3, track_running_stats=False, affine=False),
        nn.BatchNorm1d(3, track_running_stats=False, affine=False),
    )
    assert list(mine.state_dict()) == list(ref.state_dict()) == []
    assert mine.running_mean is None and mine.parameters() == []


# ---- LayerNorm -----------------------------------------------------------------------------------
LN_OPTIONS = list(itertools.product([1e-5, 0.1], [True, False], [True, False]))
LN_CASES = [
    ((5, 4), 4),
    ((2, 3, 4), [3, 4]),
    ((4,), (4,)),
    ((0, 4), 4),
    ((2, 3, 4), torch.Size([4])),
]


@pytest.mark.parametrize("kind", ["mixed"])
@pytest.mark.parametrize("shape,normalized_shape", LN_CASES, ids=str)
@pytest.mark.parametrize("eps,affine,bias", LN_OPTIONS, ids=str)
def test_layernorm(eps, affine, bias, shape, normalized_shape, kind):
    ref = nn.LayerNorm(normalized_shape, eps, affine, bias).double()
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, dtype=F64))
    hand = hg.LayerNorm(normalized_shape, eps, affine, bias)
    assert_matches_torch(ref, [values(shape, kind)], hg_module=hand)


# ---- Flatten, Unflatten --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4), (0, 3, 4)], ids=str)
@pytest.mark.parametrize("start,end", [(1, -1), (0, -1), (1, 2), (-2, -1), (0, 0), (2, 3)])
def test_flatten(start, end, shape):
    if (
        max(start % len(shape), end % len(shape)) >= len(shape)
        or start >= len(shape)
        or end >= len(shape)
    ):
        with pytest.raises(IndexError):  # torch's error type, from both
            nn.Flatten(start, end)(values(shape))
        with pytest.raises(IndexError, match="out of range"):
            hg.Flatten(start, end)(values(shape))
        return
    assert_matches_torch(nn.Flatten(start, end), [values(shape)], hg_module=hg.Flatten(start, end))


@pytest.mark.parametrize(
    "dim,sizes,shape",
    [
        (1, (2, 3), (4, 6)),
        (1, [3, -1], (4, 6)),
        (-1, (2, 2), (4,)),
        (0, torch.Size([2, 2]), (4, 3)),
        (1, (2, 3), (0, 6)),
    ],
    ids=str,
)
def test_unflatten(dim, sizes, shape):
    assert_matches_torch(
        nn.Unflatten(dim, sizes), [values(shape)], hg_module=hg.Unflatten(dim, sizes)
    )


@pytest.mark.parametrize(
    "sizes,match", [(2, "must be a tuple of ints"), ((2.0, 2), "element of type float at pos 0")]
)
def test_unflatten_bad_sizes_as_torch(sizes, match):
    with pytest.raises(TypeError, match=match):
        nn.Unflatten(1, sizes)
    with pytest.raises(TypeError, match=match):
        hg.Unflatten(1, sizes)


def test_flatten_start_after_end_is_refused_as_torch():
    with pytest.raises(RuntimeError):
        nn.Flatten(2, 1)(torch.randn(2, 3, 4))
    with pytest.raises(RuntimeError, match="start_dim cannot come after end_dim"):
        hg.Flatten(2, 1)(torch.randn(2, 3, 4))


def test_cli_names_still_offered():
    from handgrad.tools.config import ACTIVATIONS

    assert {"relu", "tanh", "gelu", "leaky_relu", "relu6", "hardswish", "mish", "prelu"} <= set(
        ACTIVATIONS
    )
    for name, cls in ACTIVATIONS.items():
        assert isinstance(cls(), hg.Module), name
