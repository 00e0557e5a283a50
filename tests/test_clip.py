"""hg.clip_grad_norm against torch.nn.utils.clip_grad_norm_, in float64, and in fit."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import handgrad as hg
from handgrad.errors import ArgumentTypeError, InputError
from handgrad.optim.clip import NonFiniteNormError, total_norm

SHAPES = [(3, 4), (4,), (2, 2, 3), ()]


def _twins(scale: float, dtype=torch.float64, seed=0):
    """Two lists of tensors with equal .grad: one for handgrad, one for torch."""
    g = torch.Generator().manual_seed(seed)
    ours, theirs = [], []
    for shape in SHAPES:
        grad = scale * torch.randn(shape, generator=g, dtype=dtype)
        a, b = torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)
        a.grad, b.grad = grad.clone(), grad.clone()
        ours.append(a)
        theirs.append(b)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1, 0.5, 3.0, math.inf, "inf", -math.inf, 0])
@pytest.mark.parametrize("max_norm", [0.1, 1e6])  # clipped, and left alone
@pytest.mark.parametrize("foreach", [None, True, False])
def test_matches_torch(norm_type, max_norm, foreach):
    ours, theirs = _twins(scale=3.0)
    got = hg.clip_grad_norm(ours, max_norm, norm_type, foreach=foreach)
    want = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type, foreach=foreach)
    assert got.dtype == want.dtype and got.shape == want.shape == ()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=0)
    if max_norm < 1 and norm_type not in (0, -math.inf):  # clipped: the new norm is max_norm
        assert float(total_norm([p.grad for p in ours], norm_type)) == pytest.approx(max_norm)


def test_returns_the_norm_before_clipping_and_scales_in_place():
    p = torch.zeros(2, dtype=torch.float64)
    p.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
    grad = p.grad
    assert float(hg.clip_grad_norm([p], 1.0)) == 5.0
    assert p.grad is grad  # in place, as torch
    torch.testing.assert_close(grad, torch.tensor([0.6, 0.8], dtype=torch.float64) * 5 / (5 + 1e-6))


def test_single_tensor_none_grads_and_a_generator():
    ours, theirs = _twins(scale=2.0)
    ours.append(torch.zeros(3, dtype=torch.float64))  # no .grad: skipped
    theirs.append(torch.zeros(3, dtype=torch.float64))
    got = hg.clip_grad_norm((p for p in ours), 0.5)
    want = torch.nn.utils.clip_grad_norm_((p for p in theirs), 0.5)
    torch.testing.assert_close(got, want)
    one, other = _twins(scale=5.0)
    torch.testing.assert_close(
        hg.clip_grad_norm(one[0], 0.5), torch.nn.utils.clip_grad_norm_(other[0], 0.5)
    )
    torch.testing.assert_close(one[0].grad, other[0].grad)


def test_mixed_dtypes_group_as_torch():
    ours, theirs = _twins(scale=2.0)
    for ps in (ours, theirs):
        p = torch.zeros(4)  # a float32 parameter among float64 ones
        p.grad = torch.arange(4.0)
        ps.insert(1, p)
    got = hg.clip_grad_norm(ours, 0.3)
    want = torch.nn.utils.clip_grad_norm_(theirs, 0.3)
    torch.testing.assert_close(got, want)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.grad, b.grad)


def test_no_gradients_gives_zero():
    assert float(hg.clip_grad_norm([torch.zeros(2)], 1.0)) == 0.0
    assert float(hg.clip_grad_norm([], 1.0)) == 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hg.clip_grad_norm((p for p in []), 1.0)
    assert "empty generator" in str(caught[0].message)


def test_nonfinite_norm():
    ours, theirs = _twins(scale=1.0)
    ours[0].grad[0, 0] = theirs[0].grad[0, 0] = math.inf
    with pytest.raises(NonFiniteNormError, match="non-finite, so it cannot be clipped"):
        hg.clip_grad_norm(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError):  # also torch's error class
        hg.clip_grad_norm(ours, 1.0, error_if_nonfinite=True)
    got = hg.clip_grad_norm(ours, 1.0)  # scaled by the infinite norm anyway, as torch
    want = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert got == want == math.inf
    torch.testing.assert_close(ours[1].grad, theirs[1].grad, equal_nan=True)


def test_bad_arguments():
    p = torch.zeros(2)
    p.grad = torch.ones(2)
    with pytest.raises(ArgumentTypeError, match="clip_grad_norm: parameters must be"):
        hg.clip_grad_norm(3, 1.0)
    with pytest.raises(ArgumentTypeError, match="parameters must be tensors, got a str"):
        hg.clip_grad_norm(["w"], 1.0)
    with pytest.raises(InputError, match="must be numbers"):
        hg.clip_grad_norm([p], 1.0, "two")
    with pytest.raises(ArgumentTypeError, match="max_norm must be a number, got NoneType"):
        hg.clip_grad_norm([p], None)


def test_exported():
    assert hg.optim.clip_grad_norm is hg.clip_grad_norm


def _data(n=12):
    g = torch.Generator().manual_seed(0)
    return 10 * torch.randn(n, 3, generator=g, dtype=torch.float64), torch.randint(
        0, 2, (n,), generator=g
    )


def test_fit_clips_as_torch_does():
    """fit(clip_grad_norm=c) steps like torch's loop with clip_grad_norm_ before each step."""
    torch.manual_seed(0)
    model = hg.Sequential(hg.Linear(3, 5), hg.Tanh(), hg.Linear(5, 2)).to(dtype=torch.float64)
    twin = hg.to_torch(model)
    X, y = _data()
    opt = hg.optim.SGD(model.parameters(), lr=0.5)
    hg.fit(
        model,
        hg.CrossEntropyLoss(),
        opt,
        (X, y),
        epochs=3,
        batch_size=4,
        shuffle=False,
        progress=False,
        clip_grad_norm=0.05,
        threads=None,
    )
    topt = torch.optim.SGD(twin.parameters(), lr=0.5)
    norms = []
    for _ in range(3):
        for i in range(0, 12, 4):
            topt.zero_grad()
            torch.nn.functional.cross_entropy(twin(X[i : i + 4]), y[i : i + 4]).backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.05)))
            topt.step()
    assert max(norms) > 0.05  # the clipping mattered
    theirs = dict(twin.named_parameters())
    for name, a in model.named_parameters():
        torch.testing.assert_close(a, theirs[name].detach(), rtol=1e-10, atol=1e-12, msg=name)


def test_fit_refuses_a_bad_clip():
    model = hg.Linear(3, 2)
    X, y = _data()
    with pytest.raises(InputError, match="clip_grad_norm must be a number > 0"):
        hg.fit(
            model,
            hg.CrossEntropyLoss(),
            hg.optim.SGD(model.parameters()),
            (X.float(), y),
            clip_grad_norm=0,
            progress=False,
        )
