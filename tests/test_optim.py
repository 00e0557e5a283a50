"""SGD follows torch.optim.SGD's trajectory from the same weights and gradients."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close

import handgrad as hg


def _trajectory(make_mine, make_ref, steps=50):
    torch.manual_seed(0)
    w0 = [torch.randn(4, 3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)]
    mine = [w.clone() for w in w0]
    ref = [w.clone().requires_grad_(True) for w in w0]
    opt, ref_opt = make_mine(mine), make_ref(ref)
    for step in range(steps):
        grads = [torch.sin(w.detach() * (step + 1)) + 0.1 * step for w in ref]  # same function of w
        for p, g in zip(mine, [torch.sin(w * (step + 1)) + 0.1 * step for w in mine]):
            p.grad = g
        for p, g in zip(ref, grads):
            p.grad = g
        opt.step()
        ref_opt.step()
    for a, b in zip(mine, ref):
        assert_close(a, b.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"momentum": 0.9},
        {"momentum": 0.9, "dampening": 0.3},
        {"momentum": 0.9, "nesterov": True},
        {"weight_decay": 0.01},
        {"momentum": 0.5, "weight_decay": 0.1, "nesterov": True},
    ],
)
def test_sgd_trajectory(kw):
    _trajectory(
        lambda ps: hg.optim.SGD(ps, lr=0.05, **kw), lambda ps: torch.optim.SGD(ps, lr=0.05, **kw)
    )


def test_parameters_without_grad_are_skipped_and_zero_grad_clears():
    a, b = torch.ones(2), torch.ones(2)
    opt = hg.optim.SGD([a, b], lr=0.1)
    a.grad = torch.ones(2)
    opt.step()
    assert_close(a, torch.full((2,), 0.9))
    assert_close(b, torch.ones(2))
    opt.zero_grad()
    assert a.grad is None


def test_state_dict_round_trip_resumes_the_same_trajectory():
    p = torch.ones(3)
    opt = hg.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones(3)
    opt.step()
    saved, p_saved = opt.state_dict(), p.clone()
    opt.step()
    q = p_saved.clone()
    opt2 = hg.optim.SGD([q], lr=0.5, momentum=0.0)
    opt2.load_state_dict(saved)
    q.grad = torch.ones(3)
    opt2.step()
    assert_close(q, p)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"lr": -0.1}, "invalid learning rate -0.1"),
        ({"lr": 0.1, "momentum": -1}, "momentum"),
        ({"lr": 0.1, "nesterov": True}, "Nesterov"),
    ],
)
def test_bad_hyperparameters(kw, match):
    with pytest.raises(ValueError, match=match):
        hg.optim.SGD([torch.zeros(1)], **kw)
    with pytest.raises(ValueError, match="empty parameter list"):
        hg.optim.SGD([], lr=0.1)
