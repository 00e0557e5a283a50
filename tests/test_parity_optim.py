"""Every optimizer option and every schedule against torch.optim, step by step, in float64.

Both sides start from the same weights, in two parameter groups with different lr and
weight_decay (and an algorithm's own hyperparameter), and get the same gradients: a quadratic
pull plus fixed noise, a function of the current weights. After each of 50 steps the weights
(and, for schedules, every group's lr and momentum) must equal torch's exactly; at the end the
state_dicts must have torch's structure and values.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from torch.optim import lr_scheduler as torch_sched

import handgrad as hg

STEPS = 50


def _weights(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for shape in [(4, 3), (3,), (2,)]]


def _noise(steps: int) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        [torch.randn(w.shape, generator=g, dtype=torch.float64) for w in _weights()]
        for _ in range(steps)
    ]


NOISE = _noise(STEPS)


def _set_grads(params: list[torch.Tensor], t: int) -> None:
    """∇ of Σ (p - 1)² / 2 · (i + 1) plus noise: the same function of the weights on both sides."""
    for i, (p, n) in enumerate(zip(params, NOISE[t])):
        p.grad = (p.detach() - 1.0) * (i + 1) + 0.5 * n


def _groups(params: list[torch.Tensor], first: dict[str, Any]) -> list[dict[str, Any]]:
    """Two groups: the weight matrix with its own hyperparameters, the vectors with defaults."""
    return [{"params": [params[0]], **first}, {"params": params[1:]}]


def _compare_state_dicts(mine: dict[str, Any], ref: dict[str, Any]) -> None:
    assert mine["param_groups"] == ref["param_groups"]
    assert mine["state"].keys() == ref["state"].keys()
    for i, s in ref["state"].items():
        assert mine["state"][i].keys() == s.keys(), f"state of parameter {i}"
        for k, v in s.items():
            assert mine["state"][i][k].dtype == v.dtype, f"{i}.{k}"
            torch.testing.assert_close(mine["state"][i][k], v, rtol=0, atol=0)


def _run_both(name: str, kw: dict[str, Any], first: dict[str, Any]) -> None:
    mine, ref = _weights(), [w.clone().requires_grad_() for w in _weights()]
    opt = getattr(hg.optim, name)(_groups(mine, first), **kw)
    ref_opt = getattr(torch.optim, name)(_groups(ref, first), **kw)
    for t in range(STEPS):
        _set_grads(mine, t)
        _set_grads(ref, t)
        opt.step()
        ref_opt.step()
        for a, b in zip(mine, ref):
            torch.testing.assert_close(a, b.detach(), rtol=0, atol=0, msg=f"step {t}")
    _compare_state_dicts(opt.state_dict(), ref_opt.state_dict())


def _grid(**options: list[Any]) -> list[dict[str, Any]]:
    keys = list(options)
    return [dict(zip(keys, values)) for values in itertools.product(*options.values())]


SGD = [
    kw
    for kw in _grid(
        momentum=[0, 0.9],
        dampening=[0, 0.3],
        nesterov=[False, True],
        weight_decay=[0, 0.1],
        maximize=[False, True],
    )
    if not (kw["nesterov"] and (kw["momentum"] == 0 or kw["dampening"] != 0))
]
ADAM = _grid(
    amsgrad=[False, True],
    weight_decay=[0, 0.1],
    maximize=[False, True],
    decoupled_weight_decay=[False, True],
)
ADAMW = _grid(amsgrad=[False, True], weight_decay=[0, 0.1], maximize=[False, True])
ADAGRAD = _grid(
    lr_decay=[0, 0.05],
    weight_decay=[0, 0.1],
    initial_accumulator_value=[0, 0.5],
    maximize=[False, True],
)
RMSPROP = _grid(
    momentum=[0, 0.5], centered=[False, True], weight_decay=[0, 0.1], maximize=[False, True]
)

CASES = (
    [("SGD", {"lr": 0.05, **kw}, {"lr": 0.02, "weight_decay": 0.2, "momentum": 0.5}) for kw in SGD]
    + [
        ("Adam", {"lr": 0.01, **kw}, {"lr": 0.03, "weight_decay": 0.2, "betas": (0.8, 0.99)})
        for kw in ADAM
    ]
    + [
        ("AdamW", {"lr": 0.01, **kw}, {"lr": 0.03, "weight_decay": 0.2, "eps": 1e-6})
        for kw in ADAMW
    ]
    + [
        ("Adagrad", {"lr": 0.1, **kw}, {"lr": 0.2, "weight_decay": 0.2, "lr_decay": 0.1})
        for kw in ADAGRAD
    ]
    + [
        ("RMSprop", {"lr": 0.01, **kw}, {"lr": 0.02, "weight_decay": 0.2, "alpha": 0.9})
        for kw in RMSPROP
    ]
    + [
        ("SGD", {}, {}),  # torch's defaults everywhere
        ("Adam", {}, {}),
        ("AdamW", {}, {}),
        ("Adagrad", {}, {}),
        ("RMSprop", {}, {}),
        ("SGD", {"lr": 0.1, "foreach": False, "fused": False}, {"nesterov": True, "momentum": 0.9}),
        ("Adam", {"lr": 0.01, "foreach": False, "fused": None}, {"amsgrad": True}),
        ("RMSprop", {"lr": 0.01, "foreach": None}, {"centered": True, "momentum": 0.3}),
        ("Adagrad", {"lr": 0.1, "foreach": False, "eps": 1e-3}, {"initial_accumulator_value": 2.0}),
    ]
)


@pytest.mark.parametrize("name,kw,first", CASES, ids=[f"{n}-{kw}-{f}" for n, kw, f in CASES])
def test_trajectory_and_state_equal_torch(name, kw, first):
    _run_both(name, kw, first)


def test_sgd_default_lr_is_torchs():
    assert hg.optim.SGD([torch.zeros(1)]).lr == torch.optim.SGD([torch.zeros(1)]).defaults["lr"]


def test_state_dict_loads_into_torch_and_back():
    """handgrad's state_dict drives torch's optimizer on, and torch's drives handgrad's."""
    mine, ref = _weights(), [w.clone().requires_grad_() for w in _weights()]
    first = {"lr": 0.02, "weight_decay": 0.1}
    opt = hg.optim.Adam(_groups(mine, first), lr=0.01, amsgrad=True)
    for t in range(5):
        _set_grads(mine, t)
        opt.step()
    with torch.no_grad():
        for a, b in zip(ref, mine):
            a.copy_(b)
    ref_opt = torch.optim.Adam(_groups(ref, first), lr=0.5)
    ref_opt.load_state_dict(opt.state_dict())
    back = hg.optim.Adam(_groups(mine, {}), lr=0.5)
    back.load_state_dict(ref_opt.state_dict())
    for t in range(5, 10):
        _set_grads(mine, t)
        _set_grads(ref, t)
        back.step()
        ref_opt.step()
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)
    _compare_state_dicts(back.state_dict(), ref_opt.state_dict())


# ---- schedules ---------------------------------------------------------------------------------
def _seq(lib: Any, opt: Any) -> Any:
    return lib.SequentialLR(
        opt,
        [
            lib.LinearLR(opt, 0.1, 1.0, 5),
            lib.CosineAnnealingLR(opt, 20, 1e-4),
            lib.ExponentialLR(opt, 0.9),
        ],
        milestones=[5, 30],
    )


def _chain(lib: Any, opt: Any) -> Any:
    return lib.ChainedScheduler([lib.StepLR(opt, 4, 0.5), lib.ExponentialLR(opt, 0.97)])


def _lam(t: int) -> float:
    return 1 / (1 + t) ** 0.5


SCHEDULES: list[tuple[str, Any, str]] = [
    ("StepLR", lambda L, o: L.StepLR(o, 7, 0.5), "SGD"),
    ("MultiStepLR", lambda L, o: L.MultiStepLR(o, [3, 10, 10, 25], 0.3), "SGD"),
    ("ConstantLR", lambda L, o: L.ConstantLR(o, 0.25, 6), "SGD"),
    ("ExponentialLR", lambda L, o: L.ExponentialLR(o, 0.93), "SGD"),
    ("CosineAnnealingLR", lambda L, o: L.CosineAnnealingLR(o, 12, 0.001), "SGD"),
    ("PolynomialLR", lambda L, o: L.PolynomialLR(o, 30, 2.0), "SGD"),
    ("LambdaLR", lambda L, o: L.LambdaLR(o, _lam), "SGD"),
    ("LambdaLR-per-group", lambda L, o: L.LambdaLR(o, [_lam, lambda t: 0.95**t]), "SGD"),
    ("MultiplicativeLR", lambda L, o: L.MultiplicativeLR(o, lambda t: 0.97), "SGD"),
    ("LinearLR", lambda L, o: L.LinearLR(o), "SGD"),
    ("LinearLR-warmup", lambda L, o: L.LinearLR(o, 0.01, 1.0, 20), "SGD"),
    ("LinearLR-decay", lambda L, o: L.LinearLR(o, 1.0, 0.1, 30), "Adam"),
    ("SequentialLR", _seq, "SGD"),
    ("ChainedScheduler", _chain, "Adam"),
    ("OneCycleLR-sgd", lambda L, o: L.OneCycleLR(o, 0.5, total_steps=STEPS + 1), "SGD"),
    (
        "OneCycleLR-adam",
        lambda L, o: L.OneCycleLR(o, [0.1, 0.3], epochs=6, steps_per_epoch=9),
        "Adam",
    ),
    (
        "OneCycleLR-linear-3phase",
        lambda L, o: L.OneCycleLR(
            o,
            0.4,
            STEPS,
            pct_start=0.25,
            anneal_strategy="linear",
            three_phase=True,
            base_momentum=[0.8, 0.7],
            max_momentum=0.9,
        ),
        "SGD",
    ),
    ("CyclicLR", lambda L, o: L.CyclicLR(o, 0.01, 0.2, 4, 7), "SGD"),
    (
        "CyclicLR-triangular2-adam",
        lambda L, o: L.CyclicLR(o, [0.01, 0.02], [0.2, 0.1], 5, mode="triangular2"),
        "Adam",
    ),
    (
        "CyclicLR-exp_range",
        lambda L, o: L.CyclicLR(o, 0.01, 0.2, 3, mode="exp_range", gamma=0.97, base_momentum=0.7),
        "SGD",
    ),
    (
        "CyclicLR-scale_fn-no-momentum",
        lambda L, o: L.CyclicLR(
            o, 0.01, 0.2, 6, 2, scale_fn=_lam, scale_mode="iterations", cycle_momentum=False
        ),
        "Adagrad",
    ),
    (
        "CosineAnnealingWarmRestarts",
        lambda L, o: L.CosineAnnealingWarmRestarts(o, 7, eta_min=0.001),
        "SGD",
    ),
    (
        "CosineAnnealingWarmRestarts-T_mult",
        lambda L, o: L.CosineAnnealingWarmRestarts(o, 3, 2),
        "SGD",
    ),
    (
        "OneCycleLR-no-momentum",
        lambda L, o: L.OneCycleLR(
            o, 0.2, STEPS, cycle_momentum=False, div_factor=5.0, final_div_factor=100.0
        ),
        "RMSprop",
    ),
]


def _momenta(opt: Any) -> list[Any]:
    return [g.get("momentum", g.get("betas")) for g in opt.param_groups]


def _two_groups(lib: Any, name: str, params: list[torch.Tensor]) -> Any:
    kw = {"momentum": 0.9} if name == "SGD" else {}
    return getattr(lib, name)(_groups(params, {"lr": 0.3, "weight_decay": 0.1}), lr=0.1, **kw)


@pytest.mark.parametrize("name,make,opt_name", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedule_trajectory_equals_torch(name, make, opt_name):
    mine, ref = _weights(), [w.clone().requires_grad_() for w in _weights()]
    opt, ref_opt = _two_groups(hg.optim, opt_name, mine), _two_groups(torch.optim, opt_name, ref)
    sched, ref_sched = make(hg.optim, opt), make(torch_sched, ref_opt)
    assert sched.get_last_lr() == ref_sched.get_last_lr()
    for t in range(STEPS):
        _set_grads(mine, t)
        _set_grads(ref, t)
        opt.step()
        ref_opt.step()
        sched.step()
        ref_sched.step()
        assert sched.get_last_lr() == ref_sched.get_last_lr(), f"step {t}"
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in ref_opt.param_groups]
        assert _momenta(opt) == _momenta(ref_opt), f"step {t}"
        for a, b in zip(mine, ref):
            torch.testing.assert_close(a, b.detach(), rtol=0, atol=0, msg=f"step {t}")
    assert sched.state_dict().keys() == ref_sched.state_dict().keys()
    assert opt.state_dict()["param_groups"] == ref_opt.state_dict()["param_groups"]


@pytest.mark.parametrize(
    "kw",
    _grid(mode=["min", "max"], threshold_mode=["rel", "abs"], cooldown=[0, 2])
    + [{"min_lr": [0.05, 0.001], "factor": 0.5, "patience": 1, "eps": 1e-3}],
)
def test_reduce_lr_on_plateau_equals_torch(kw):
    opt = _two_groups(hg.optim, "SGD", _weights())
    ref_opt = _two_groups(torch.optim, "SGD", [w.requires_grad_() for w in _weights()])
    kw = {"patience": 2, "threshold": 0.01, **kw}
    sched, ref_sched = (
        hg.optim.ReduceLROnPlateau(opt, **kw),
        torch_sched.ReduceLROnPlateau(ref_opt, **kw),
    )
    metrics = [1.0, 0.9, 0.9, 0.895, 0.95, 1.0, 0.5, 0.5, 0.6, 0.4, 1.2, 1.3, 1.4] * 4
    for m in metrics:
        sched.step(m)
        ref_sched.step(m)
        assert sched.get_last_lr() == ref_sched.get_last_lr()
        assert [sched.best, sched.num_bad_epochs, sched.cooldown_counter] == [
            ref_sched.best,
            ref_sched.num_bad_epochs,
            ref_sched.cooldown_counter,
        ]
    assert sched.state_dict().keys() == ref_sched.state_dict().keys()


@pytest.mark.parametrize("name,make,opt_name", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedule_state_dict_resumes_the_same_trajectory(name, make, opt_name):
    """Stop at step 20, save optimizer and schedule, build both afresh, load, go on."""

    def lrs_after(steps, stop=None):
        opt = _two_groups(hg.optim, opt_name, _weights())
        sched = make(hg.optim, opt)
        lrs = []
        for t in range(steps):
            opt.step()
            sched.step()
            lrs.append(sched.get_last_lr())
            if t + 1 == stop:
                saved = sched.state_dict(), opt.state_dict()
                opt = _two_groups(hg.optim, opt_name, _weights())
                sched = make(hg.optim, opt)
                sched.load_state_dict(saved[0])
                opt.load_state_dict(saved[1])
        return lrs

    assert lrs_after(40, stop=20) == lrs_after(40)


def test_step_with_epoch_uses_the_closed_form_with_torchs_warning():
    opt = _two_groups(hg.optim, "SGD", _weights())
    ref_opt = _two_groups(torch.optim, "SGD", [w.requires_grad_() for w in _weights()])
    sched, ref_sched = hg.optim.StepLR(opt, 3, 0.5), torch_sched.StepLR(ref_opt, 3, 0.5)
    opt.step()
    ref_opt.step()
    with pytest.warns(UserWarning, match="epoch parameter"):
        sched.step(7)
    with pytest.warns(UserWarning):
        ref_sched.step(7)
    assert sched.get_last_lr() == ref_sched.get_last_lr()


@pytest.mark.parametrize("T_mult", [1, 2])
def test_warm_restarts_with_fractional_epochs_equal_torch(T_mult):
    opt = _two_groups(hg.optim, "SGD", _weights())
    ref_opt = _two_groups(torch.optim, "SGD", [w.requires_grad_() for w in _weights()])
    sched = hg.optim.CosineAnnealingWarmRestarts(opt, 3, T_mult, 0.01)
    ref_sched = torch_sched.CosineAnnealingWarmRestarts(ref_opt, 3, T_mult, 0.01)
    for epoch in range(12):
        for i in range(4):
            sched.step(epoch + i / 4)
            ref_sched.step(epoch + i / 4)
            assert sched.get_last_lr() == ref_sched.get_last_lr()
    assert sched.state_dict() == ref_sched.state_dict()
