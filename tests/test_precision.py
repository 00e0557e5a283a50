"""fit(precision="bf16") on the CPU: bf16 forward and backward (torch.autocast) with float32
master weights, gradients and optimizer state follows float32 training on a small problem.

Stated tolerance: after 5 epochs of Adam on a 2-class problem the bf16 run's per-epoch loss is
within 0.02 (absolute) of the float32 run's, its weights within 0.05 of them, and both reach
the same accuracy within 5 points."""

from __future__ import annotations

import pytest
import torch

import handgrad as hg


def _problem(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 8, generator=g)
    y = (X[:, :4].sum(1) > 0).long()
    return X, y


def _train(precision, model_fn, X, y, epochs=5):
    torch.manual_seed(0)
    model = model_fn()
    opt = hg.optim.Adam(model.parameters(), lr=0.01)
    h = hg.fit(
        model,
        hg.CrossEntropyLoss(),
        opt,
        (X, y),
        epochs=epochs,
        batch_size=32,
        seed=0,
        progress=False,
        metrics=["accuracy"],
        precision=precision,
    )
    return model, h


def _mlp():
    return hg.Sequential(hg.Linear(8, 32), hg.ReLU(), hg.Linear(32, 2))


def _cnn():
    return hg.Sequential(
        hg.Unflatten(1, (1, 8)),
        hg.Conv1d(1, 4, 3, padding=1),
        hg.ReLU(),
        hg.Flatten(),
        hg.Linear(32, 2),
    )


@pytest.mark.parametrize("model_fn", [_mlp, _cnn], ids=["mlp", "cnn"])
def test_bf16_follows_float32(model_fn):
    X, y = _problem()
    m32, h32 = _train("float32", model_fn, X, y)
    m16, h16 = _train("bf16", model_fn, X, y)
    for a, b in zip(h32["loss"], h16["loss"]):
        assert abs(a - b) < 0.02
    for p32, p16 in zip(m32.parameters(), m16.parameters()):
        assert p16.dtype == torch.float32  # master weights stay float32
        torch.testing.assert_close(p16, p32, rtol=0, atol=0.05)
    assert abs(h32["accuracy"][-1] - h16["accuracy"][-1]) < 0.05
    assert h16["loss"][-1] < h16["loss"][0]


def test_bf16_keeps_float32_gradients_and_state():
    X, y = _problem(64)
    model = _mlp()
    opt = hg.optim.Adam(model.parameters(), lr=0.01)
    hg.fit(model, hg.CrossEntropyLoss(), opt, (X, y), epochs=1, progress=False, precision="bf16")
    for p in model.parameters():
        assert p.dtype == p.grad.dtype == torch.float32
        assert opt.state[p]["exp_avg"].dtype == torch.float32


def test_bf16_really_computes_in_bf16():
    """The bf16 run differs from float32 (the products are rounded), by a little."""
    X, y = _problem(64)
    m32, _ = _train("float32", _mlp, X, y, epochs=1)
    m16, _ = _train("bf16", _mlp, X, y, epochs=1)
    diff = max((a - b).abs().max().item() for a, b in zip(m32.parameters(), m16.parameters()))
    assert 0 < diff < 0.05
