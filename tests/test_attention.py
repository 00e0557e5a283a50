"""MultiheadAttention and TransformerEncoderLayer against torch.nn in float64: every
constructor option (bias, add_bias_kv, add_zero_attn, kdim/vdim, batch_first), self- and
cross-attention, boolean and additive masks (2-D, 3-D, key padding), is_causal as torch
treats it, need_weights/average_attn_weights, unbatched, empty and length-1 inputs, large
scores, fully masked rows, dropout drawn as torch draws it; the attention op pair, torch's
init and keys, and bad inputs."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from parity import assert_matches_torch

import handgrad as hg
from handgrad import ops
from handgrad.errors import InputError, NotSupportedError, ShapeError, UsageError

F64 = torch.float64
E, H, L, S, N = 8, 2, 3, 4, 2


def r(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


KPM = torch.tensor([[False, True, False, False], [False, False, False, True]])
BOOL_MASK = torch.tensor([[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.bool)
CAUSAL = torch.ones(L, S, dtype=torch.bool).triu(1)
RANDOM_MASK = torch.rand(N * H, L, S, generator=torch.Generator().manual_seed(2)) < 0.4
RANDOM_MASK[..., 0] = False  # every query sees at least one key
MASKS = {  # name: (key_padding_mask, attn_mask, is_causal), for a batch of N
    "none": (None, None, False),
    "bool": (KPM, BOOL_MASK, False),
    "float": (r(N, S, seed=9), r(L, S, seed=8), False),
    "3d": (None, r(N * H, L, S, seed=8), False),
    "3d_bool": (None, RANDOM_MASK, False),
    "causal": (None, CAUSAL, True),
    "causal_kpm": (KPM, CAUSAL, True),
}
OPTIONS = list(
    itertools.product([True, False], [False, True], [False, True], [None, (5, 3)], [False, True])
)


@pytest.mark.parametrize("bias,add_bias_kv,add_zero_attn,kv,batch_first", OPTIONS)
@pytest.mark.parametrize("masks", MASKS)
def test_multihead_attention_matches_torch(
    bias, add_bias_kv, add_zero_attn, kv, batch_first, masks
):
    kdim, vdim = kv or (None, None)
    torch.manual_seed(0)
    m = nn.MultiheadAttention(E, H, 0.0, bias, add_bias_kv, add_zero_attn, kdim, vdim, batch_first)
    kd, vd = kdim or E, vdim or E

    def seq(length, features, seed):
        return (
            r(N, length, features, seed=seed) if batch_first else r(length, N, features, seed=seed)
        )

    q, k, v = seq(L, E, 1), seq(S, kd, 2), seq(S, vd, 3)
    kpm, attn_mask, causal = MASKS[masks]
    # need_weights/average_attn_weights rotate over the sweep: each pair meets every option
    turn = OPTIONS.index((bias, add_bias_kv, add_zero_attn, kv, batch_first)) + list(MASKS).index(
        masks
    )
    need_weights, average = [(True, True), (True, False), (False, True)][turn % 3]
    assert_matches_torch(m, [q, k, v, kpm, need_weights, attn_mask, average, causal])


@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
def test_self_attention_unbatched_empty_and_length_one(need_weights, average):
    torch.manual_seed(0)
    m = nn.MultiheadAttention(E, H, add_bias_kv=True)
    x = r(L, E)
    kpm, mask = torch.tensor([False, True, False]), r(H, L, L, seed=4)
    assert_matches_torch(m, [x, x, x, kpm, need_weights, mask, average])  # unbatched
    assert_matches_torch(m, [x, x, x, None, need_weights, None, average])
    z = r(L, 0, E)
    assert_matches_torch(m, [z, z, z, None, need_weights, None, average])  # empty batch
    one = r(1, N, E)
    assert_matches_torch(m, [one, one, one, None, need_weights, None, average])
    big = r(40, N, E) * 300  # long rows of large scores: the softmax must stay finite
    assert_matches_torch(m, [big, big, big, None, need_weights, None, average])


def test_a_query_with_every_key_masked_as_torch():
    """torch: NaN with need_weights=True (softmax of -inf), zeros with need_weights=False
    (scaled_dot_product_attention's safe softmax)."""
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(E, H).double()
    mine = hg.from_torch(ref)
    q, kv = r(L, N, E), r(S, N, E, seed=1)
    kpm = torch.tensor([[True] * S, [False] * S])
    for need in (True, False):
        expected, _ = ref(q, kv, kv, key_padding_mask=kpm, need_weights=need)
        got, _ = mine(q, kv, kv, key_padding_mask=kpm, need_weights=need)
        torch.testing.assert_close(got, expected.detach(), equal_nan=True)
    assert_matches_torch(ref, [q, kv, kv, kpm, False])  # and its gradient


@pytest.mark.parametrize("need_weights", [True, False])
def test_dropout_draws_as_torch(need_weights):
    ref = nn.MultiheadAttention(E, H, dropout=0.3).double()
    mine = hg.from_torch(ref)
    q = r(L, N, E)
    leaf = q.clone().requires_grad_(True)
    torch.manual_seed(5)
    out, w = ref(leaf, leaf, leaf, need_weights=need_weights)
    torch.manual_seed(5)
    out2, w2 = mine(q, q, q, need_weights=need_weights)
    torch.testing.assert_close(out2, out.detach())
    g = r(*out.shape, seed=6)
    (auto,) = torch.autograd.grad((out * g).sum(), leaf)
    dq, dk, dv = mine.backward(g, None)
    torch.testing.assert_close(dq + dk + dv, auto)


def test_keyword_call_and_gradient_of_the_weights_alone():
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(E, H, batch_first=True).double()
    mine = hg.from_torch(ref)
    q, kv = r(N, L, E), r(N, S, E, seed=1)
    leaves = [q.clone().requires_grad_(True), kv.clone().requires_grad_(True)]
    _, w = ref(leaves[0], leaves[1], leaves[1], average_attn_weights=False)
    g = r(*w.shape, seed=3)
    auto = torch.autograd.grad((w * g).sum(), leaves)
    _, w2 = mine(q, kv, kv, average_attn_weights=False)
    torch.testing.assert_close(w2, w.detach())
    dq, dk, dv = mine.backward(None, g)  # only the weights were used
    torch.testing.assert_close(dq, auto[0])
    torch.testing.assert_close(dk + dv, auto[1])


@pytest.mark.parametrize("add_bias_kv,kv", [(False, None), (True, (5, 3))])
def test_init_keys_and_positional_signature_are_torchs(add_bias_kv, kv):
    kdim, vdim = kv or (None, None)
    args = (E, H, 0.0, True, add_bias_kv, False, kdim, vdim, True)
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(*args)
    torch.manual_seed(0)
    mine = hg.MultiheadAttention(*args)
    assert list(mine.state_dict()) == list(ref.state_dict())
    for key, value in ref.state_dict().items():
        assert torch.equal(mine.state_dict()[key], value), key  # the same draws
    assert_matches_torch(ref, [r(N, L, E), r(N, S, kdim or E), r(N, S, vdim or E)], hg_module=mine)


def test_op_pair_against_torch_and_autograd():
    q, k, v = r(3, L, 4), r(3, S, 4, seed=1), r(3, S, 5, seed=2)
    mask = r(1, L, S, seed=3)
    (y, P), cache = ops.attention_forward(q, k, v, mask)
    torch.testing.assert_close(y, F.scaled_dot_product_attention(q, k, v, mask))
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v, mask)]
    (y2, P2), _ = ops.attention_forward(*leaves)
    gy, gP = r(*y.shape, seed=4), r(*P.shape, seed=5)
    auto = torch.autograd.grad((y2 * gy).sum() + (P2 * gP).sum(), leaves)
    dq, dk, dv, dmask, *rest = ops.attention_backward((gy, gP), cache)
    assert rest == [None, None, None]
    for got, want in zip((dq, dk, dv, dmask), auto):
        torch.testing.assert_close(got, want)

    def forward_y(q, k, v, mask):  # the pair as gradcheck takes it: one output
        (y, _), cache = ops.attention_forward(q, k, v, mask)
        return y, cache

    def backward_y(dy, cache):
        return ops.attention_backward((dy, None), cache)

    report = hg.check.gradcheck((forward_y, backward_y), q, k, v, mask)
    assert report.ok, str(report)
    huge = r(2, 64, 4) * 1e4  # scores near 1e8: still finite, still torch's
    (y3, _), _ = ops.attention_forward(huge, huge, huge)
    assert torch.isfinite(y3).all()
    torch.testing.assert_close(y3, F.scaled_dot_product_attention(huge, huge, huge))
    causal = ops.causal_mask(3, 4, q)
    torch.testing.assert_close(
        ops.attention_forward(q, k, v, causal)[0][0],
        F.scaled_dot_product_attention(q, k, v, is_causal=True),
    )


# ---- TransformerEncoderLayer -----------------------------------------------------------------
LAYER_OPTIONS = list(
    itertools.product(["relu", "gelu"], [False, True], [False, True], [True, False])
)


@pytest.mark.parametrize("activation,norm_first,batch_first,bias", LAYER_OPTIONS)
def test_encoder_layer_matches_torch(activation, norm_first, batch_first, bias):
    train = batch_first != bias  # training and eval mode, each for every activation and norm
    torch.manual_seed(0)
    m = nn.TransformerEncoderLayer(E, H, 16, 0.0, activation, 1e-5, batch_first, norm_first, bias)
    T = 5
    x = r(N, T, E) if batch_first else r(T, N, E)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    kpm = torch.zeros(N, T, dtype=torch.bool)
    kpm[0, -2:] = True
    assert_matches_torch(m, [x], train=train)
    assert_matches_torch(m, [x, causal, None, True], train=train)
    assert_matches_torch(m, [x, causal, kpm], train=train)
    assert_matches_torch(m, [x, r(T, T, seed=2), r(N, T, seed=3)], train=train)  # additive
    assert_matches_torch(m, [r(T, E, seed=4)], train=train)  # unbatched
    assert_matches_torch(m, [r(1, E, seed=5)], train=train)  # one token


@pytest.mark.parametrize("norm_first,batch_first", [(False, False), (True, True)])
def test_encoder_layer_dropout_draws_as_torch(norm_first, batch_first):
    ref = nn.TransformerEncoderLayer(E, H, 16, 0.3, norm_first=norm_first, batch_first=batch_first)
    ref = ref.double()
    mine = hg.from_torch(ref)
    x = r(N, 5, E) if batch_first else r(5, N, E)
    leaf = x.clone().requires_grad_(True)
    torch.manual_seed(4)
    y = ref(leaf)
    torch.manual_seed(4)
    y2 = mine(x)
    torch.testing.assert_close(y2, y.detach())
    g = r(*y.shape, seed=7)
    auto = torch.autograd.grad((y * g).sum(), [leaf, *ref.parameters()])
    torch.testing.assert_close(mine.backward(g), auto[0])
    for p, a in zip(mine.parameters(), auto[1:]):
        torch.testing.assert_close(p.grad, a)


def test_encoder_layer_defaults_keys_init_and_activations():
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(E, H)
    torch.manual_seed(0)
    mine = hg.TransformerEncoderLayer(E, H)
    assert mine.config()["dim_feedforward"] == 2048 and mine.config()["dropout"] == 0.1
    assert mine.config()["activation"] == "relu"
    assert list(mine.state_dict()) == list(ref.state_dict())
    for key, value in ref.state_dict().items():
        assert torch.equal(mine.state_dict()[key], value), key
    tanh_gelu = hg.TransformerEncoderLayer(E, H, 16, 0.0, hg.GELU("tanh"))
    tanh_gelu(r(3, 2, E).float())
    assert tanh_gelu.backward(torch.ones(3, 2, E)).shape == (3, 2, E)
    assert isinstance(
        hg.to_torch(hg.TransformerEncoderLayer(E, H, activation="gelu")), nn.TransformerEncoderLayer
    )


def test_save_and_load(tmp_path):
    m = hg.Sequential(hg.TransformerEncoderLayer(E, H, 16, norm_first=True, activation="gelu"))
    hg.save(m, tmp_path / "m.safetensors")
    loaded = hg.load(tmp_path / "m.safetensors")
    loaded = loaded[0] if isinstance(loaded, tuple) else loaded
    assert loaded[0].config() == m[0].config()
    a = hg.MultiheadAttention(E, H, kdim=3, vdim=5, add_bias_kv=True)
    hg.save(a, tmp_path / "a.safetensors")
    b = hg.load(tmp_path / "a.safetensors")
    b = b[0] if isinstance(b, tuple) else b
    assert list(b.state_dict()) == list(a.state_dict())


@pytest.mark.parametrize(
    "build,error,match",
    [
        (lambda: hg.MultiheadAttention(10, 3), InputError, "divisible by num_heads"),
        (lambda: hg.MultiheadAttention(0, 1), InputError, "greater than 0"),
        (lambda: hg.MultiheadAttention(8, 2, dropout=2.0), InputError, "dropout"),
        (lambda: hg.MultiheadAttention(8, 2, kdim=0), InputError, "kdim"),
        (lambda: hg.TransformerEncoderLayer(8, 2, activation="tanh"), InputError, "relu/gelu"),
        (
            lambda: hg.TransformerEncoderLayer(8, 2, activation=torch.tanh),
            NotSupportedError,
            "activation",
        ),
        (lambda: hg.TransformerEncoderLayer(8, 3), InputError, "divisible"),
    ],
)
def test_bad_constructor_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


MHA = hg.MultiheadAttention(E, H)
X = torch.randn(L, N, E)
KV = torch.randn(S, N, E)


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        ((torch.randn(L, N, 5), KV, KV), {}, ShapeError, "expected query with 8 features"),
        ((X, torch.randn(S, E), KV), {}, ShapeError, "expected `key` and `value` to be 3-D"),
        ((X, KV, torch.randn(S + 1, N, E)), {}, ShapeError, "do not match"),
        ((X, KV, KV), {"attn_mask": torch.zeros(L, L)}, ShapeError, "2D attn_mask"),
        ((X, KV, KV), {"attn_mask": torch.zeros(3, L, S)}, ShapeError, "3D attn_mask"),
        (
            (X, KV, KV),
            {"attn_mask": torch.zeros(L, S, dtype=torch.long)},
            ShapeError,
            "bool and floating",
        ),
        (
            (X, KV, KV),
            {"key_padding_mask": torch.zeros(N, S + 1, dtype=torch.bool)},
            ShapeError,
            "key_padding_mask of shape",
        ),
        ((X, KV, KV), {"is_causal": True}, InputError, "Need attn_mask"),
        ((X.long(), KV, KV), {}, ShapeError, "floating-point"),
        ((X.double(), KV, KV), {}, ShapeError, "float64"),
    ],
)
def test_bad_inputs(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        MHA(*args, **kwargs)


def test_backward_checks():
    m = hg.MultiheadAttention(E, H)
    with pytest.raises(UsageError, match="more often than forward"):
        m.backward(X)
    m(X, KV, KV, need_weights=False)
    with pytest.raises(UsageError, match="need_weights=False"):
        m.backward(X, torch.zeros(N, L, S))
    m(X, KV, KV)
    with pytest.raises(ShapeError, match="gradient of the output's shape"):
        m.backward(torch.zeros(L, N, E + 1))


def test_mismatched_mask_types_warn_as_torch():
    with pytest.warns(UserWarning, match="mismatched key_padding_mask and attn_mask"):
        MHA(
            X,
            KV,
            KV,
            key_padding_mask=torch.zeros(N, S, dtype=torch.bool),
            attn_mask=torch.zeros(L, S),
        )
    MHA.clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MHA(X, KV, KV, key_padding_mask=torch.zeros(N, S), attn_mask=torch.zeros(L, S))
    MHA.clear_cache()
