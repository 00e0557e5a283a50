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


TORCH_CASES = [
    ("Adagrad", {"lr": 0.1}),
    (
        "Adagrad",
        {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1, "initial_accumulator_value": 0.5},
    ),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.05}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.5}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.3, "amsgrad": True}),
]


@pytest.mark.parametrize("name,kw", TORCH_CASES, ids=[f"{n}{kw}" for n, kw in TORCH_CASES])
def test_trajectory_matches_torch_optim(name, kw):
    _trajectory(
        lambda ps: getattr(hg.optim, name)(ps, **kw),
        lambda ps: getattr(torch.optim, name)(ps, foreach=False, **kw),
    )


@pytest.mark.parametrize("name,kw", TORCH_CASES[::2], ids=[n for n, _ in TORCH_CASES[::2]])
def test_state_dict_resume_equals_uninterrupted(name, kw):
    def run(steps, opt_from=None):
        p = torch.linspace(-1, 1, 6, dtype=torch.float64)
        opt = getattr(hg.optim, name)([p], **kw)
        for t in range(steps):
            p.grad = torch.cos(p * (t + 1))
            opt.step()
        return p, opt

    full, _ = run(20)
    half, opt = run(10)
    saved = opt.state_dict()
    q = half.clone()
    opt2 = getattr(hg.optim, name)([q], lr=123.0)
    opt2.load_state_dict(saved)
    for t in range(10, 20):
        q.grad = torch.cos(q * (t + 1))
        opt2.step()
    assert_close(q, full, rtol=0, atol=0)


SCHEDULES = [
    (lambda o: hg.optim.StepLR(o, 3, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
    (
        lambda o: hg.optim.ExponentialLR(o, 0.9),
        lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9),
    ),
    (
        lambda o: hg.optim.CosineAnnealingLR(o, 10, 0.001),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.001),
    ),
]


@pytest.mark.parametrize("mine,ref", SCHEDULES)
def test_schedules_match_torch(mine, ref):
    opt = hg.optim.SGD([torch.zeros(1)], lr=0.1)
    ref_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched, ref_sched = mine(opt), ref(ref_opt)
    for _ in range(10):
        sched.step()
        ref_opt.step()
        ref_sched.step()
        assert opt.lr == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)


def test_inverse_time_decay():
    opt = hg.optim.SGD([torch.zeros(1)], lr=0.1)
    sched = hg.optim.InverseTimeDecay(opt, decay=0.5)
    lrs = []
    for _ in range(4):
        sched.step()
        lrs.append(opt.lr)
    assert lrs == pytest.approx([0.1 / 1.5, 0.1 / 2, 0.1 / 2.5, 0.1 / 3])
    state = sched.state_dict()
    again = hg.optim.InverseTimeDecay(hg.optim.SGD([torch.zeros(1)], lr=0.1), decay=0.5)
    again.load_state_dict(state)
    assert again.optimizer.lr == pytest.approx(0.1 / 3)


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


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: hg.optim.Adam(p, betas=(0.9, 1.0)), "betas"),
        (lambda p: hg.optim.AdamW(p, lr=-1), "invalid learning rate"),
        (lambda p: hg.optim.RMSprop(p, alpha=-0.1), "alpha"),
        (lambda p: hg.optim.Adagrad(p, eps=-1), "eps"),
        (lambda p: hg.optim.StepLR(hg.optim.SGD(p, lr=0.1), step_size=0), "step_size"),
    ],
)
def test_bad_hyperparameters_of_other_optimizers(make, match):
    with pytest.raises(ValueError, match=match):
        make([torch.zeros(1)])
