"""RNN (tanh, relu), GRU, LSTM (with proj_size) and their cells against torch.nn in float64:
every option (num_layers, bias, batch_first, bidirectional, dropout drawn as torch draws it),
batched, unbatched, empty-batch and length-1 inputs, with and without an initial state,
gradients of either output alone; the op pairs, torch's init and keys, and bad inputs."""

from __future__ import annotations

import inspect
import itertools
import typing
import warnings

import pytest
import torch
import torch.nn as nn
from parity import assert_matches_torch

import handgrad as hg
from handgrad import ops
from handgrad.check import gradcheck
from handgrad.errors import ArgumentTypeError, InputError, NotSupportedError, ShapeError

F64 = torch.float64
KINDS = {  # name: (torch class, extra kwargs)
    "rnn_tanh": (nn.RNN, {}),
    "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}),
    "gru": (nn.GRU, {}),
    "lstm": (nn.LSTM, {}),
    "lstm_proj": (nn.LSTM, {"proj_size": 2}),
}
H_IN, H = 3, 4


def r(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def state(kind: str, layers: int, D: int, N: int | None, seed: int = 5):
    """An initial state of the right shape (unbatched: N=None)."""
    cls, extra = KINDS[kind]
    lead = (layers * D,) if N is None else (layers * D, N)
    h0 = r(*lead, extra.get("proj_size", 0) or H, seed=seed)
    return (h0, r(*lead, H, seed=seed + 1)) if cls is nn.LSTM else h0


def build(kind: str, *args, **kwargs):
    cls, extra = KINDS[kind]
    torch.manual_seed(0)
    return cls(H_IN, H, *args, **{**extra, **kwargs})


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "layers,bias,batch_first,bidirectional",
    list(itertools.product([1, 2], [True, False], [False, True], [False, True])),
)
def test_sequence_models_match_torch(kind, layers, bias, batch_first, bidirectional):
    m = build(kind, layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    x = r(2, 5, H_IN) if batch_first else r(5, 2, H_IN)
    assert_matches_torch(m, [x, state(kind, layers, D, 2)])
    assert_matches_torch(m, [x])  # no initial state: zeros, and backward returns dL/dx alone
    assert_matches_torch(m, [r(4, H_IN, seed=2), state(kind, layers, D, None)])  # unbatched


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_length_one_empty_batch_and_large_values(kind, bidirectional):
    m = build(kind, 2, bidirectional=bidirectional)
    D = 2 if bidirectional else 1
    assert_matches_torch(m, [r(1, 3, H_IN)])  # a sequence of length 1
    assert_matches_torch(m, [r(1, H_IN)])  # unbatched, length 1
    assert_matches_torch(m, [r(4, 0, H_IN), state(kind, 2, D, 0)])  # an empty batch
    assert_matches_torch(m, [r(3, 2, H_IN) * 30])  # saturated gates


def test_positional_signature_builds_the_same_module():
    for kind, args in [
        ("rnn_tanh", (2, "relu", False, True, 0.0, True)),
        ("gru", (2, False, True, 0.0, True)),
        ("lstm", (2, False, True, 0.0, True, 2)),
    ]:
        cls, _ = KINDS[kind]
        torch.manual_seed(0)
        ref = cls(H_IN, H, *args)
        mine = getattr(hg, cls.__name__)(H_IN, H, *args)
        assert mine.config() == hg.from_torch(ref).config()
        assert_matches_torch(ref, [r(2, 5, H_IN)], hg_module=mine)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_between_layers_draws_as_torch(kind, bidirectional):
    ref = build(kind, 3, dropout=0.4, bidirectional=bidirectional).double()
    mine = hg.from_torch(ref)
    x = r(5, 2, H_IN)
    leaf = x.clone().requires_grad_(True)
    torch.manual_seed(11)
    out, hn = ref(leaf)
    torch.manual_seed(11)
    out2, hn2 = mine(x)
    torch.testing.assert_close(out2, out.detach())
    g = r(*out.shape, seed=3)
    auto = torch.autograd.grad((out * g).sum(), [leaf, *ref.parameters()])
    torch.testing.assert_close(mine.backward(g, None), auto[0])
    for p, a in zip(mine.parameters(), auto[1:]):
        torch.testing.assert_close(p.grad, a)
    mine.eval()
    ref.eval()
    assert_matches_torch(ref, [x], train=False)  # eval: no dropout


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_of_one_output_only(kind):
    ref = build(kind, 2, bidirectional=True).double()
    mine = hg.from_torch(ref)
    x = r(4, 2, H_IN)
    lstm = KINDS[kind][0] is nn.LSTM
    for which in range(3 if lstm else 2):
        leaf = x.clone().requires_grad_(True)
        out, hn = ref(leaf)
        outs = [out, *hn] if lstm else [out, hn]
        g = r(*outs[which].shape, seed=which)
        (auto,) = torch.autograd.grad((outs[which] * g).sum(), leaf)
        mine(x)
        grads: list = [None] * len(outs)
        grads[which] = g
        dx = mine.backward(grads[0], (grads[1], grads[2])) if lstm else mine.backward(*grads)
        torch.testing.assert_close(dx, auto)


def test_called_k_times_then_backpropagated_k_times():
    ref = build("gru", 1).double()
    mine = hg.from_torch(ref)
    xs = [r(3, 2, H_IN, seed=s) for s in range(3)]
    gs = [r(3, 2, H, seed=10 + s) for s in range(3)]
    leaves = [x.clone().requires_grad_(True) for x in xs]
    total = sum((ref(x)[0] * g).sum() for x, g in zip(leaves, gs))
    auto = torch.autograd.grad(total, [*leaves, *ref.parameters()])
    outs = [mine(x) for x in xs]
    dxs = [mine.backward(g, None) for g in reversed(gs)][::-1]
    assert len(outs) == 3
    for dx, a in zip(dxs, auto[:3]):
        torch.testing.assert_close(dx, a)
    for p, a in zip(mine.parameters(), auto[3:]):
        torch.testing.assert_close(p.grad, a)


@pytest.mark.parametrize("kind", KINDS)
def test_init_keys_and_shapes_are_torchs(kind):
    ref = build(kind, 2, bidirectional=True)
    cls, extra = KINDS[kind]
    torch.manual_seed(0)
    mine = getattr(hg, cls.__name__)(H_IN, H, 2, bidirectional=True, **extra)
    assert list(mine.state_dict()) == list(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert torch.equal(mine.state_dict()[k], v), k  # the same draws after the same seed


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_signature_is_torchs_documented_one(name):
    """torch's RNN, GRU and LSTM take (*args, **kwargs); their documented signature is the
    first typing overload of __init__."""
    (documented, _) = typing.get_overloads(getattr(nn, name).__init__)
    ref = list(inspect.signature(documented).parameters.values())[1:]
    ours = list(inspect.signature(getattr(hg, name)).parameters.values())
    assert [(p.name, p.kind, p.default) for p in ours] == [(p.name, p.kind, p.default) for p in ref]


@pytest.mark.parametrize("name", ["RNNCell", "GRUCell", "LSTMCell"])
def test_cell_signature_is_torchs(name):
    def sig(c):
        return [(p.name, p.kind, p.default) for p in inspect.signature(c).parameters.values()]

    assert sig(getattr(hg, name)) == sig(getattr(nn, name))


CELLS = [
    (nn.RNNCell, {}),
    (nn.RNNCell, {"nonlinearity": "relu"}),
    (nn.GRUCell, {}),
    (nn.LSTMCell, {}),
]


@pytest.mark.parametrize("cell,extra", CELLS, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("bias", [True, False])
def test_cells_match_torch(cell, extra, bias):
    torch.manual_seed(0)
    ref = cell(H_IN, H, bias=bias, **extra)
    lstm = cell is nn.LSTMCell

    def hx(*lead, seed=4):
        h = r(*lead, H, seed=seed)
        return (h, r(*lead, H, seed=seed + 1)) if lstm else h

    assert_matches_torch(ref, [r(3, H_IN), hx(3)])
    assert_matches_torch(ref, [r(3, H_IN)])
    assert_matches_torch(ref, [r(H_IN), hx()])  # unbatched
    assert_matches_torch(ref, [r(0, H_IN), hx(0)])  # empty batch
    assert_matches_torch(ref, [r(2, H_IN) * 40, hx(2)])  # saturated
    torch.manual_seed(0)
    mine = getattr(hg, cell.__name__)(H_IN, H, bias, *extra.values())
    assert_matches_torch(ref, [r(3, H_IN)], hg_module=mine)  # positional arguments
    torch.manual_seed(0)
    fresh = getattr(hg, cell.__name__)(H_IN, H, bias=bias, **extra)
    torch.manual_seed(0)
    twin = cell(H_IN, H, bias=bias, **extra)
    for k, v in twin.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_cell_through_time_accumulates_like_autograd():
    """An LSTMCell called over 4 steps, then backpropagated 4 times in reverse."""
    torch.manual_seed(0)
    ref = nn.LSTMCell(H_IN, H).double()
    mine = hg.from_torch(ref)
    xs = [r(2, H_IN, seed=s) for s in range(4)]
    leaves = [x.clone().requires_grad_(True) for x in xs]
    hc = None
    for x in leaves:
        hc = ref(x, hc)
    g = r(2, H, seed=9)
    auto = torch.autograd.grad((hc[0] * g).sum(), [*leaves, *ref.parameters()])
    state = None
    for x in xs:
        state = mine(x, state)
    dh, dc = g, None
    dxs = []
    for step in reversed(range(4)):
        grads = mine.backward(dh, dc)
        dx, (dh, dc) = grads if step > 0 else (grads, (None, None))
        dxs.append(dx)
    for dx, a in zip(reversed(dxs), auto[:4]):
        torch.testing.assert_close(dx, a)
    for p, a in zip(mine.parameters(), auto[4:]):
        torch.testing.assert_close(p.grad, a)


def test_op_pairs_against_autograd_and_finite_differences():
    x, h, c = r(3, H_IN), r(3, H, seed=1), r(3, H, seed=2)
    W1, W3, W4 = r(H, H_IN, seed=3), r(3 * H, H_IN, seed=3), r(4 * H, H_IN, seed=3)
    U1, U3, U4 = r(H, H, seed=4), r(3 * H, H, seed=4), r(4 * H, H, seed=4)
    b1, b3, b4 = r(H, seed=5), r(3 * H, seed=5), r(4 * H, seed=5)
    assert gradcheck(ops_pair("rnn_cell"), x, h, W1, U1, b1, b1 * 2).ok
    assert gradcheck(ops_pair("gru_cell"), x, h, W3, U3, b3, b3 * 2).ok
    xs = r(4, 3, H_IN, seed=7)
    rnn = first_output(ops.rnn_sequence_forward, ops.rnn_sequence_backward, 2)
    gru = first_output(ops.gru_sequence_forward, ops.gru_sequence_backward, 2)
    lstm = first_output(ops.lstm_sequence_forward, ops.lstm_sequence_backward, 3)
    lstm_cell = first_output(ops.lstm_cell_forward, ops.lstm_cell_backward, 2)
    for reverse in (False, True):
        for nonlinearity in ("tanh", "relu"):
            assert gradcheck(rnn, xs, h, W1, U1, b1, b1, nonlinearity, reverse).ok
        assert gradcheck(gru, xs, h, W3, U3, b3, b3, reverse).ok
        assert gradcheck(lstm, xs, h, c, W4, U4, b4, b4, None, reverse).ok
    assert gradcheck(lstm_cell, x, h, c, W4, U4, b4, b4).ok
    # LSTM: several outputs; backward against autograd through the same forward
    Wr = r(2, H, seed=8)
    for fwd, bwd, args in [
        (ops.lstm_cell_forward, ops.lstm_cell_backward, (x, h, c, W4, U4, b4, b4 * 2)),
        (ops.lstm_sequence_forward, ops.lstm_sequence_backward, (xs, h, c, W4, U4, b4, b4, None)),
        (
            ops.lstm_sequence_forward,
            ops.lstm_sequence_backward,
            (xs, h[:, :2], c, W4[:, :], U4[:, :2], b4, None, Wr, True),
        ),
    ]:
        leaves = [
            a.clone().requires_grad_(True) if isinstance(a, torch.Tensor) else a for a in args
        ]
        outs, _ = fwd(*leaves)
        gs = [r(*o.shape, seed=20 + i) for i, o in enumerate(outs)]
        tensors = [a for a in leaves if isinstance(a, torch.Tensor)]
        auto = torch.autograd.grad(sum((o * g).sum() for o, g in zip(outs, gs)), tensors)
        _, cache = fwd(*args)
        hand = [g for g in bwd(gs, cache)][: len(args)]
        hand = [g for g, a in zip(hand, args) if isinstance(a, torch.Tensor)]
        assert len(hand) == len(auto)
        for got, want in zip(hand, auto):
            torch.testing.assert_close(got, want)


def ops_pair(name):
    return getattr(ops, f"{name}_forward"), getattr(ops, f"{name}_backward")


def first_output(forward, backward, n_outputs):
    """A pair with several outputs as gradcheck takes it: the first output (y, or h'), the
    others given no gradient."""

    def run(*args):
        outputs, cache = forward(*args)
        return outputs[0], cache

    def back(dy, cache):
        return backward((dy, *[None] * (n_outputs - 1)), cache)

    return run, back


def test_save_load_and_to_torch(tmp_path):
    m = hg.LSTM(3, 5, 2, bidirectional=True, proj_size=2, batch_first=True)
    hg.save(m, tmp_path / "m.safetensors")
    loaded = hg.load(tmp_path / "m.safetensors")
    loaded = loaded[0] if isinstance(loaded, tuple) else loaded
    assert loaded.config() == m.config()
    twin = hg.to_torch(m)
    assert isinstance(twin, nn.LSTM) and twin.proj_size == 2 and twin.batch_first
    assert hg.from_torch(nn.RNN(3, 4, bias=False)).config()["bias"] is False


def test_dropout_with_one_layer_warns_as_torch():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        hg.GRU(3, 4, dropout=0.5)


@pytest.mark.parametrize(
    "build,error,match",
    [
        (lambda: hg.RNN(3, 4, nonlinearity="sigmoid"), InputError, "Unknown nonlinearity"),
        (lambda: hg.RNNCell(3, 4, nonlinearity="gelu"), InputError, "Unknown nonlinearity"),
        (lambda: hg.GRU(3, 0), InputError, "hidden_size must be greater than zero"),
        (lambda: hg.GRU(3.0, 4), ArgumentTypeError, "input_size should be of type int"),
        (lambda: hg.LSTM(3, 4, 0), InputError, "num_layers must be greater than zero"),
        (lambda: hg.LSTM(3, 4, proj_size=4), InputError, "proj_size has to be smaller"),
        (lambda: hg.LSTM(3, 4, proj_size=-1), InputError, "proj_size should be"),
        (lambda: hg.RNN(3, 4, dropout=1.5), InputError, "dropout should be a number"),
        (lambda: hg.RNN(3, 4, bias=1), ArgumentTypeError, "bias should be of type bool"),
        (lambda: hg.LSTMCell(3, 4, bias="no"), ArgumentTypeError, "bias should be of type bool"),
    ],
)
def test_bad_constructor_arguments(build, error, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=match):
            build()


def test_lstm_proj_size_true_is_a_handgrad_type_error():
    """torch lets True through its check and fails inside torch.empty with a TypeError."""
    with pytest.raises(ArgumentTypeError, match=r"LSTM: proj_size should be an int.*got True"):
        hg.LSTM(3, 4, proj_size=True)
    assert isinstance(ArgumentTypeError("x"), TypeError)


SIZE_CASES = [
    (cls, name, value)
    for cls in ("RNN", "GRU", "LSTM")
    for name in ("input_size", "hidden_size", "num_layers", "proj_size")
    for value in (True, False, 2.0, "2", 0, -1, 2)
    if name != "proj_size" or cls == "LSTM"
    # torch's check takes True as an int here, then RNN (alone) fails inside torch.empty
    if (cls, name, value) != ("RNN", "hidden_size", True)
]


@pytest.mark.parametrize("cls,name,value", SIZE_CASES, ids=str)
def test_integer_arguments_are_taken_or_refused_as_torch_does(cls, name, value):
    """A bool is an int to torch's checks (True builds a size or a layer count of 1, False is
    refused as not above zero), except proj_size=True: the same outcome, as handgrad's error
    of the builtin class torch raises."""
    kwargs = {"input_size": 3, "hidden_size": 4, name: value}
    try:
        twin = getattr(nn, cls)(**kwargs)
    except Exception as exc:  # noqa: BLE001 - torch's class is what is compared
        with pytest.raises(type(exc)) as raised:
            getattr(hg, cls)(**kwargs)
        assert isinstance(raised.value, hg.errors.HandgradError), raised.value
        return
    mine = getattr(hg, cls)(**kwargs)
    assert {k: v.shape for k, v in mine.state_dict().items()} == {
        k: v.shape for k, v in twin.state_dict().items()
    }


@pytest.mark.parametrize(
    "module,args,error,match",
    [
        (hg.RNN(3, 4), (torch.randn(2, 2, 2, 3),), ShapeError, "Expected input to be 2D or 3D"),
        (hg.GRU(3, 4), (torch.randn(5, 2, 6),), ShapeError, "Expected 3, got 6"),
        (hg.GRU(3, 4), (torch.randn(0, 2, 3),), ShapeError, "sequence length to be larger"),
        (hg.GRU(3, 4), ([[1.0, 2.0, 3.0]],), ArgumentTypeError, "must be a torch.Tensor"),
        (hg.GRU(3, 4), (torch.ones(2, 3, dtype=torch.long),), ShapeError, "floating point"),
        (hg.GRU(3, 4), (torch.randn(5, 2, 3, dtype=F64),), ShapeError, "torch.float64"),
        (
            hg.RNN(3, 4),
            (torch.randn(5, 2, 3), torch.randn(1, 3, 4)),
            ShapeError,
            r"Expected hidden size \(1, 2, 4\)",
        ),
        (hg.RNN(3, 4), (torch.randn(5, 3), torch.randn(1, 1, 4)), ShapeError, "should also be 2-D"),
        (
            hg.LSTM(3, 4),
            (torch.randn(5, 2, 3), torch.randn(1, 2, 4)),
            ArgumentTypeError,
            r"tuple \(h_0, c_0\)",
        ),
        (
            hg.LSTM(3, 4),
            (torch.randn(5, 2, 3), (torch.randn(1, 2, 4), torch.randn(1, 2, 3))),
            ShapeError,
            r"hidden\[1\] size",
        ),
        (hg.RNNCell(3, 4), (torch.randn(2, 2, 3),), ShapeError, "Expected input to be 1D or 2D"),
        (
            hg.GRUCell(3, 4),
            (torch.randn(2, 5),),
            ShapeError,
            "inconsistent input_size: got 5 expected 3",
        ),
        (
            hg.GRUCell(3, 4),
            (torch.randn(2, 3), torch.randn(3, 4)),
            ShapeError,
            "Expected hidden of shape",
        ),
        (hg.LSTMCell(3, 4), (torch.randn(2, 3), torch.randn(2, 4)), ArgumentTypeError, "tuple"),
    ],
)
def test_bad_inputs(module, args, error, match):
    with pytest.raises(error, match=match):
        module(*args)


def test_packed_sequence_is_refused_by_name():
    packed = nn.utils.rnn.pack_sequence([torch.randn(3, 3), torch.randn(2, 3)])
    with pytest.raises(NotSupportedError, match="not supported: PackedSequence"):
        hg.LSTM(3, 4)(packed)


def test_backward_checks():
    m = hg.LSTM(3, 4)
    with pytest.raises(hg.errors.UsageError, match="more often than forward"):
        m.backward(torch.zeros(5, 2, 4))
    m(torch.randn(5, 2, 3))
    with pytest.raises(ShapeError, match="gradient of the output's shape"):
        m.backward(torch.zeros(5, 2, 3))


def test_keyword_arguments_as_torch():
    torch.manual_seed(0)
    ref = nn.LSTM(H_IN, H, batch_first=True).double()
    mine = hg.from_torch(ref)
    x, hx = r(2, 5, H_IN), state("lstm", 1, 1, 2)
    out, (h, c) = mine(x, hx=hx)
    out_ref, (h_ref, c_ref) = ref(x, hx=hx)
    torch.testing.assert_close(out, out_ref.detach())
    torch.testing.assert_close(c, c_ref.detach())
    cell = hg.GRUCell(H_IN, H)
    assert cell(input=torch.randn(2, H_IN), hx=torch.zeros(2, H)).shape == (2, H)


def test_flatten_parameters_and_all_weights_as_torch():
    ref = build("lstm_proj", 2, bidirectional=True)
    mine = hg.from_torch(ref)
    mine.flatten_parameters()  # a no-op, as code written for cuDNN calls it
    assert [[tuple(t.shape) for t in group] for group in mine.all_weights] == [
        [tuple(t.shape) for t in group] for group in ref.all_weights
    ]
