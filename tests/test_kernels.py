"""Each speed variant of handgrad.kernels against the reference op of handgrad.ops it stands in
for: bit-equal where it runs the same operations in another buffer, float64-close where it
sums in another order. Then the modules' algorithm= choice, and the defects mended with them.
"""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

import handgrad as hg
from handgrad import kernels, ops
from handgrad.errors import InputError
from handgrad.kernels.im2col import _kernel_last


def _randn(*shape, dtype=torch.float64, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _same(a, b):
    """Bit-equal (None and None alike)."""
    assert (a is None) == (b is None)
    if a is not None:
        assert_close(a, b, rtol=0, atol=0)


# ---- Linear: dL/dW added into .grad by the GEMM -------------------------------------------------
@pytest.mark.parametrize("x_shape", [(5, 3), (2, 4, 3), (1, 3), (0, 3)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("need_dx", [True, False])
def test_linear_backward_into_equals_the_reference(x_shape, bias, need_dx):
    x, W = _randn(*x_shape), _randn(4, 3, seed=1)
    b = _randn(4, seed=2) if bias else None
    y, cache = ops.linear_forward(x, W, b)
    dy = _randn(*y.shape, seed=3)
    grad_W = _randn(4, 3, seed=4)
    expected = grad_W + ops.linear_backward(dy, cache, need_dx)[1]
    dx_ref, _, db_ref = ops.linear_backward(dy, cache, need_dx)
    dx, dW, db = kernels.linear_backward_into(dy, cache, grad_W, need_dx)
    assert dW is grad_W  # added in place
    assert_close(dW, expected)  # the same sum, its rounding in the GEMM's order
    _same(dx, dx_ref)
    _same(db, db_ref)


# ---- LayerNorm: the backward in one buffer ------------------------------------------------------
@pytest.mark.parametrize(
    "x_shape,normalized", [((6, 5), (5,)), ((2, 3, 8), (8,)), ((2, 3, 4), (3, 4)), ((0, 5), (5,))]
)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_layer_norm_backward_in_one_buffer_equals_the_reference(x_shape, normalized, affine, dtype):
    x = _randn(*x_shape, dtype=dtype)
    w = _randn(*normalized, dtype=dtype, seed=1) if affine != "none" else None
    b = _randn(*normalized, dtype=dtype, seed=2) if affine == "both" else None
    y, cache = ops.layer_norm_forward(x, normalized, w, b)
    dy = _randn(*x_shape, dtype=dtype, seed=3)
    dy_before = dy.clone()
    got = kernels.normalization.layer_norm_backward(dy, cache)
    want = ops.layer_norm_backward(dy, cache)
    _same(got[2], want[2])  # dL/dγ and dL/dβ: the same operations
    _same(got[3], want[3])
    assert_close(got[0], want[0])  # dL/dx: addcmul_ may fuse x̂ E[dx̂ x̂] into the subtraction
    _same(dy, dy_before)  # the work buffer is its own, never dy


# ---- attention: elementwise steps in place ------------------------------------------------------
def _mask(kind, L, S):
    if kind is None:
        return None
    if kind == "causal":
        return ops.causal_mask(L, S, torch.zeros((), dtype=torch.float64))
    m = torch.zeros(L, S, dtype=torch.float64)
    m[0] = -torch.inf  # query 0 sees no key: NaN weights, or zeros with safe=True
    m[1:, 0] = -torch.inf
    return m


SIZES = [(2, 4, 4, 3), (3, 5, 2, 4), (1, 1, 1, 1), (2, 0, 3, 2)]
# each mask with the sizes it is defined for: causal needs L = S, "blocked" two rows and keys
SIZES_AND_MASKS = [
    (*size, mask)
    for size in SIZES
    for mask in (None, "causal", "blocked")
    if not (mask == "causal" and size[1] != size[2])
    and not (mask == "blocked" and min(size[1], size[2]) < 2)
]


@pytest.mark.parametrize("B,L,S,d,mask", SIZES_AND_MASKS)
@pytest.mark.parametrize("safe", [False, True])
def test_attention_kernel_forward_is_bit_equal(B, L, S, d, mask, safe):
    q, k, v = _randn(B, L, d), _randn(B, S, d, seed=1), _randn(B, S, d + 1, seed=2)
    m = _mask(mask, L, S)
    (y, P), cache = kernels.attention.attention_forward(q, k, v, m, safe=safe)
    (y_ref, P_ref), cache_ref = ops.attention_forward(q, k, v, m, safe=safe)
    assert_close(y, y_ref, rtol=0, atol=0, equal_nan=True)
    assert_close(P, P_ref, rtol=0, atol=0, equal_nan=True)
    assert len(cache) == len(cache_ref)


@pytest.mark.parametrize(
    "B,L,S,d,mask", [m for m in SIZES_AND_MASKS if m[1] > 0 and m[4] != "blocked"]
)
@pytest.mark.parametrize("outputs", ["y", "weights", "both"])
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_attention_kernel_backward_is_bit_equal(B, L, S, d, mask, outputs, dropout_p):
    q, k, v = _randn(B, L, d), _randn(B, S, d, seed=1), _randn(B, S, d + 1, seed=2)
    torch.manual_seed(5)
    (y, P), cache = ops.attention_forward(q, k, v, _mask(mask, L, S), dropout_p)
    dy = _randn(*y.shape, seed=3) if outputs != "weights" else None
    dP = _randn(*P.shape, seed=4) if outputs != "y" else None
    want = ops.attention_backward((dy, dP), cache)
    got = kernels.attention.attention_backward((dy, dP), cache)
    for g, w in zip(got, want):
        _same(g, w)


def test_attention_kernel_forward_draws_the_same_dropout():
    q, k, v = _randn(2, 6, 3), _randn(2, 6, 3, seed=1), _randn(2, 6, 3, seed=2)
    torch.manual_seed(7)
    (y, P), _ = kernels.attention.attention_forward(q, k, v, None, 0.5)
    torch.manual_seed(7)
    (y_ref, P_ref), _ = ops.attention_forward(q, k, v, None, 0.5)
    _same(y, y_ref)
    _same(P, P_ref)


# ---- GELU: one buffer per pass ------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (0, 3)])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_gelu_kernel_is_bit_equal(shape, approximate, dtype):
    x = (_randn(*shape) * 3).to(dtype)
    y, cache = kernels.activation.gelu_forward(x, approximate)
    y_ref, cache_ref = ops.gelu_forward(x, approximate)
    _same(y, y_ref)
    dy = _randn(*shape, seed=1).to(dtype)
    _same(kernels.activation.gelu_backward(dy, cache), ops.gelu_backward(dy, cache_ref))


# ---- convolution: col2im by strided in-place additions, the tuned im2col ------------------------
@pytest.mark.parametrize(
    "S,kernel,stride,dilation",
    [
        ((9,), (3,), (2,), (1,)),
        ((6, 7), (3, 2), (1, 2), (2, 1)),
        ((5, 4, 6), (2, 2, 3), (1, 1, 2), (1, 2, 1)),
    ],
)
def test_col2im_add_equals_the_reference_col2im(S, kernel, stride, dilation):
    out = [(n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(S, kernel, stride, dilation)]
    dwin = _randn(2, 3, *out, *kernel)
    want = ops.col2im(dwin, (2, 3, *S), stride, dilation)
    got = torch.zeros(2, 3, *S, dtype=torch.float64)
    kernels.col2im_add(got, dwin, stride, dilation)
    assert_close(got, want)  # the same sums, added in another order
    # and from the layout the tuned kernel keeps its gradients in: (N, C, *kernel, *out)
    nd = len(S)
    stored = dwin.permute(0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd)).contiguous()
    again = torch.zeros_like(got)
    kernels.col2im_add(again, _kernel_last(stored), stride, dilation)
    _same(again, got)


@pytest.mark.parametrize(
    "x_shape,w_shape,stride,padding,dilation,groups",
    [
        ((2, 3, 9), (4, 3, 3), (2,), [(1, 1)], (1,), 1),
        ((2, 4, 6, 5), (6, 2, 3, 2), (1, 2), [(1, 0), (0, 1)], (2, 1), 2),
        ((1, 2, 4, 4, 5), (3, 2, 2, 2, 3), (1, 1, 2), [(0, 0), (1, 1), (0, 0)], (1, 1, 1), 1),
    ],
)
def test_im2col_kernel_equals_the_reference_conv(
    x_shape, w_shape, stride, padding, dilation, groups
):
    x, W, b = _randn(*x_shape), _randn(*w_shape, seed=1), _randn(w_shape[0], seed=2)
    for kernel in (kernels.Im2col(), kernels.Im2col(per_image_from=1, chunk_bytes=64)):
        y, cache = kernel.forward(
            x, W, b, stride, padding, dilation, kernels.Workspace(), groups=groups
        )
        y_ref, cache_ref = ops.conv_forward(x, W, b, stride, padding, dilation, groups)
        assert_close(y, y_ref)
        dy = _randn(*y.shape, seed=3)
        got = kernel.backward(dy, cache, kernels.Workspace())
        want = ops.conv_backward(dy, cache_ref)
        for g, w in zip(got, want):
            assert_close(g, w)


# ---- the modules' algorithm= --------------------------------------------------------------------
def _two_steps(layer, x, dy):
    """y, dL/dx of two forward/backward passes, then the gradients (the second pass adds
    into .grad: the accumulate kernel's case)."""
    outs = []
    for _ in range(2):
        if isinstance(layer, hg.MultiheadAttention):  # self-attention on x
            y, _ = layer(x, x, x, need_weights=False)
            dx = layer.backward(dy)[0]
        else:
            y = layer(x)
            dx = layer.backward(dy)
        outs += [y, dx]
    return outs + [p.grad for p in layer.parameters()]


@pytest.mark.parametrize(
    "make,x_shape,y_shape",
    [
        (lambda a: hg.Linear(3, 4, dtype=torch.float64, algorithm=a), (5, 3), (5, 4)),
        (lambda a: hg.LayerNorm(6, dtype=torch.float64, algorithm=a), (2, 3, 6), (2, 3, 6)),
        (lambda a: hg.GELU(algorithm=a), (4, 5), (4, 5)),
        (
            lambda a: hg.MultiheadAttention(4, 2, dtype=torch.float64, algorithm=a),
            (3, 2, 4),
            (3, 2, 4),
        ),
    ],
)
def test_auto_gives_the_reference_numbers(make, x_shape, y_shape):
    x, dy = _randn(*x_shape), _randn(*y_shape, seed=1)
    results = {}
    for algorithm in ("reference", "auto"):
        torch.manual_seed(0)
        results[algorithm] = _two_steps(make(algorithm), x, dy)
    assert len(results["auto"]) >= 4
    for got, want in zip(results["auto"], results["reference"]):
        assert_close(got, want)


@pytest.mark.parametrize(
    "make",
    [
        lambda: hg.Linear(3, 4, algorithm="fast"),
        lambda: hg.LayerNorm(4, algorithm="im2col"),
        lambda: hg.GELU(algorithm=None),
        lambda: hg.MultiheadAttention(4, 2, algorithm="flash"),
    ],
)
def test_an_unknown_algorithm_is_refused_at_construction(make):
    with pytest.raises(InputError, match="algorithm must be one of"):
        make()


@pytest.mark.parametrize(
    "layer",
    [
        hg.Linear(3, 4, algorithm="reference"),
        hg.LayerNorm(4, algorithm="reference"),
        hg.GELU(algorithm="reference"),
        hg.MultiheadAttention(4, 2, algorithm="reference"),
    ],
)
def test_algorithm_is_not_part_of_the_saved_architecture(layer, tmp_path):
    assert "algorithm" not in layer.config()
    hg.save(layer, tmp_path / "m.safetensors")
    assert hg.load(tmp_path / "m.safetensors").algorithm == "auto"


@pytest.mark.parametrize("algorithm,calls", [("auto", 1), ("accumulate", 1), ("reference", 0)])
def test_linear_runs_the_accumulate_kernel_from_the_second_gradient_on(
    algorithm, calls, monkeypatch
):
    seen = []

    def spy(*args, **kwargs):
        seen.append(1)
        return kernels.linear.linear_backward_into(*args, **kwargs)

    monkeypatch.setattr(hg.nn.linear.kernels, "linear_backward_into", spy)
    layer = hg.Linear(3, 2, dtype=torch.float64, algorithm=algorithm)
    x, dy = _randn(4, 3), _randn(4, 2, seed=1)
    for _ in range(2):  # the first gradient becomes .grad; the second is added to it
        layer(x)
        layer.backward(dy)
    assert len(seen) == calls
    assert_close(layer.weight.grad, 2 * (dy.T @ x))


# ---- a defect mended with the ops: a sequence of length 0 ---------------------------------------
@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("reverse", [False, True])
def test_a_sequence_of_length_0_gives_empty_gradients(kind, reverse):
    N, H_in, H = 3, 2, 4
    G = {"rnn": 1, "gru": 3, "lstm": 4}[kind]
    x, h0 = _randn(0, N, H_in), _randn(N, H, seed=1)
    W_ih, W_hh = _randn(G * H, H_in, seed=2), _randn(G * H, H, seed=3)
    b_ih, b_hh = _randn(G * H, seed=4), _randn(G * H, seed=5)
    if kind == "lstm":
        c0 = _randn(N, H, seed=6)
        (y, h, c), cache = ops.lstm_sequence_forward(
            x, h0, c0, W_ih, W_hh, b_ih, b_hh, reverse=reverse
        )
        dh_n, dc_n = _randn(N, H, seed=7), _randn(N, H, seed=8)
        grads = ops.lstm_sequence_backward((torch.zeros_like(y), dh_n, dc_n), cache)
        dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh = grads[:7]
        _same(dc0, dc_n)  # no step: c_n is c0
    else:
        forward, backward = {
            "rnn": (ops.rnn_sequence_forward, ops.rnn_sequence_backward),
            "gru": (ops.gru_sequence_forward, ops.gru_sequence_backward),
        }[kind]
        (y, h), cache = forward(x, h0, W_ih, W_hh, b_ih, b_hh, reverse=reverse)
        dh_n = _randn(N, H, seed=7)
        dx, dh0, dW_ih, dW_hh, db_ih, db_hh = backward((None, dh_n), cache)[:6]
    assert y.shape == (0, N, H)
    _same(h, h0)  # no step: h_n is h0
    _same(dh0, dh_n)  # and dL/dh0 is dL/dh_n
    assert dx.shape == x.shape
    for g, like in ((dW_ih, W_ih), (dW_hh, W_hh), (db_ih, b_ih), (db_hh, b_hh)):
        _same(g, torch.zeros_like(like))


@pytest.mark.parametrize(
    "shape, kernel, stride, dilation",
    [
        ((2, 3, 9), (3,), (1,), (1,)),
        ((2, 3, 7, 8), (3, 2), (1, 1), (2, 1)),
        ((1, 2, 5, 6, 4), (2, 3, 2), (1, 1, 1), (1, 1, 1)),
        ((2, 3, 9, 9), (3, 3), (2, 1), (1, 1)),  # another stride: the reference's scatter
    ],
)
def test_col2im_shifted_equals_the_reference_scatter(shape, kernel, stride, dilation):
    """kernels.col2im_shifted (the compiled step's col2im) is ops.conv.col2im, in float64."""
    from handgrad.kernels.im2col import col2im_shifted
    from handgrad.ops.conv import col2im, windows

    xp = torch.randn(shape, dtype=torch.float64)
    dwin = torch.randn(windows(xp, kernel, stride, dilation).shape, dtype=torch.float64)
    torch.testing.assert_close(
        col2im_shifted(dwin, xp.shape, stride, dilation), col2im(dwin, xp.shape, stride, dilation)
    )
