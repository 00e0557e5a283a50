"""LayerNorm: torch.nn.LayerNorm's signature, keys and outputs; gradients vs autograd in float64."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import VALUE_KINDS, assert_close, autograd_grads, make_values, upstream

import handgrad as hg
from handgrad.check import gradcheck

F64 = torch.float64
SETTINGS = [{}, {"bias": False}, {"elementwise_affine": False}, {"eps": 1e-3}]
SETTING_IDS = ["default", "bias=False", "elementwise_affine=False", "eps=1e-3"]
CASES = [  # (x shape, normalized_shape)
    ((5, 8), 8),
    ((2, 3, 8), 8),
    ((2, 3, 4), (3, 4)),
    ((8,), 8),  # one unbatched example
]


def twins(normalized_shape, dtype=F64, seed=1, **settings):
    """torch's LayerNorm with random weight and bias, and handgrad's holding the same tensors."""
    ref = nn.LayerNorm(normalized_shape, dtype=dtype, **settings)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
    mine = hg.LayerNorm(normalized_shape, dtype=dtype, **settings)
    mine.load_state_dict(ref.state_dict())
    return mine, ref


def make_input(shape, kind, normalized_shape):
    """make_values' awkward values, and "constant": every example one value (σ² = 0)."""
    if kind != "constant":
        return make_values(shape, kind)
    n = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    per_example = make_values((*shape[: len(shape) - n], *[1] * n), "normal")
    return per_example.expand(shape).clone()


# ---- the same module as torch's ------------------------------------------------------------------
def test_signature_is_torchs():
    def described(cls):
        return [(p.name, p.kind, p.default) for p in inspect.signature(cls).parameters.values()]

    theirs = described(nn.LayerNorm)
    assert described(hg.LayerNorm) == theirs + [
        ("algorithm", inspect.Parameter.KEYWORD_ONLY, "auto")  # handgrad's own, after torch's
    ]


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"bias": False},
        {"elementwise_affine": False},
        {"elementwise_affine": False, "bias": False},
    ],
)
@pytest.mark.parametrize("normalized_shape", [4, (3, 4)])
def test_state_dict_and_init_are_torchs(normalized_shape, settings):
    mine = hg.LayerNorm(normalized_shape, **settings)
    ref = nn.LayerNorm(normalized_shape, **settings)
    assert list(mine.state_dict()) == list(ref.state_dict())
    for (k, t), (_, e) in zip(mine.state_dict().items(), ref.state_dict().items()):
        assert t.shape == e.shape and t.dtype == e.dtype, k
        assert torch.equal(t, e), k  # weight = 1, bias = 0
    assert len(mine.parameters()) == len(list(ref.parameters()))


@pytest.mark.parametrize("settings", SETTINGS, ids=SETTING_IDS)
@pytest.mark.parametrize("x_shape,normalized_shape", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_forward_matches_torch(dtype, x_shape, normalized_shape, settings):
    mine, ref = twins(normalized_shape, dtype, **settings)
    x = make_values(x_shape, "normal").to(dtype) * 3 + 1
    y = mine(x)
    assert y.dtype == dtype
    assert_close(y, ref(x).detach())
    assert_close(mine.eval()(x), y)  # no running statistics: eval computes the same


# ---- gradients -----------------------------------------------------------------------------------
@pytest.mark.parametrize("settings", SETTINGS, ids=SETTING_IDS)
@pytest.mark.parametrize("kind", [*VALUE_KINDS, "constant"])
@pytest.mark.parametrize("x_shape,normalized_shape", CASES)
def test_backward_matches_autograd(x_shape, normalized_shape, kind, settings):
    mine, ref = twins(normalized_shape, **settings)
    x = make_input(x_shape, kind, normalized_shape)
    params = [p.detach() for p in ref.parameters()]
    y = mine(x)
    g = upstream(y.shape)
    expected, (dx, *dparams) = autograd_grads(
        lambda x_, *p: F.layer_norm(x_, ref.normalized_shape, *p, eps=ref.eps), [x, *params], g
    )
    assert_close(y, expected)
    assert_close(mine.backward(g), dx)
    assert len(mine.parameters()) == len(dparams)
    for p, d in zip(mine.parameters(), dparams):
        assert_close(p.grad, d)


def test_three_calls_backpropagated_in_reverse_accumulate():
    ln, ref = twins((3, 4))
    x = make_values((2, 3, 4), "normal")
    y = ln(ln(ln(x)))
    g = upstream(y.shape)
    dx = ln.backward(ln.backward(ln.backward(g)))  # last in, first out
    assert ln.pending() == 0

    def three_calls(x_, w, b):
        for _ in range(3):
            x_ = F.layer_norm(x_, (3, 4), w, b)
        return x_

    expected, (dx_ref, dw, db) = autograd_grads(three_calls, [x, ln.weight, ln.bias], g)
    assert_close(y, expected)
    assert_close(dx, dx_ref)
    assert_close(ln.weight.grad, dw)
    assert_close(ln.bias.grad, db)


@pytest.mark.parametrize("settings", SETTINGS, ids=SETTING_IDS)
@pytest.mark.parametrize("normalized_shape,x_shape", [(4, (5, 4)), ((3, 4), (2, 3, 4))])
def test_gradcheck(normalized_shape, x_shape, settings):
    ln, _ = twins(normalized_shape, **settings)
    report = gradcheck(ln, make_values(x_shape, "normal"))
    assert report.ok, str(report)
    checked = {c.name for c in report.comparisons}
    assert checked == {"input 0", *(n for n, _ in ln.named_parameters())}


def test_gradcheck_of_a_fresh_layer():
    report = gradcheck(hg.LayerNorm(4), torch.randn(3, 4))
    assert report.ok, str(report)


# ---- interop and saving --------------------------------------------------------------------------
@pytest.mark.parametrize("settings", SETTINGS, ids=SETTING_IDS)
@pytest.mark.parametrize("normalized_shape", [4, (3, 4)])
def test_from_torch_and_to_torch(normalized_shape, settings):
    x = make_values((2, 3, 4), "normal")
    mine, ref = twins(normalized_shape, **settings)
    assert_close(hg.from_torch(ref)(x), ref(x).detach())
    back = hg.to_torch(mine)
    assert type(back) is nn.LayerNorm
    assert_close(back(x).detach(), mine(x))
    assert_close(hg.from_torch(back)(x), mine(x))


@pytest.mark.parametrize("settings", SETTINGS, ids=SETTING_IDS)
def test_save_and_load(tmp_path, settings):
    mine, _ = twins((3, 4), **settings)
    loaded = hg.load(hg.save(mine, tmp_path / "ln.safetensors"))
    assert type(loaded) is hg.LayerNorm
    assert loaded.config() == mine.config()
    x = make_values((2, 3, 4), "normal")
    assert_close(loaded(x), mine(x))


# ---- mistakes ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "normalized_shape,x_shape,expected",
    [
        (4, (3, 5), r"\(\*, 4\)"),
        ((3, 4), (2, 4, 3), r"\(\*, 3, 4\)"),
        ((3, 4), (4,), r"\(\*, 3, 4\)"),
    ],
)
def test_wrong_trailing_shape_is_refused(normalized_shape, x_shape, expected):
    shape = str(x_shape).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(
        ValueError, match=rf"^LayerNorm\(.*\): expected input {expected}, got shape {shape}$"
    ):
        hg.LayerNorm(normalized_shape)(torch.zeros(x_shape))


def test_non_floating_input_is_refused():
    with pytest.raises(RuntimeError, match=r"LayerNorm\(.*\): expected a floating-point input"):
        hg.LayerNorm(4)(torch.ones(3, 4, dtype=torch.long))


def test_input_of_another_dtype_is_refused():
    with pytest.raises(RuntimeError, match=r"LayerNorm\(.*\): input is torch.float64.*float32"):
        hg.LayerNorm(4)(torch.ones(3, 4, dtype=F64))


@pytest.mark.parametrize("eps", [-1e-5, float("nan")])
def test_bad_eps_is_refused(eps):
    with pytest.raises(ValueError, match=r"^LayerNorm: eps must be >= 0, got"):
        hg.LayerNorm(4, eps=eps)


@pytest.mark.parametrize("normalized_shape", [0, -3, (3, 0)])
def test_bad_normalized_shape_is_refused(normalized_shape):
    with pytest.raises(ValueError, match=r"^LayerNorm: normalized_shape must be a positive int"):
        hg.LayerNorm(normalized_shape)


def test_backward_twice_after_one_forward_is_refused():
    ln = hg.LayerNorm(4)
    ln(torch.randn(3, 4))
    ln.backward(torch.ones(3, 4))
    with pytest.raises(RuntimeError, match="more often than forward"):
        ln.backward(torch.ones(3, 4))


def test_gradient_of_wrong_shape_is_refused():
    ln = hg.LayerNorm(4)
    ln(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"expected a gradient of the output's shape \(3, 4\)"):
        ln.backward(torch.ones(4, 3))
