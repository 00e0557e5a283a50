"""Optimizers' and schedules' bookkeeping as torch.optim's: parameter groups, state_dict, errors,
the switches handgrad refuses; foreach=True's multi-tensor update against the per-parameter
one, Adam's update in at most 25 lines, a tensor lr as torch's. (Trajectories for every
option: tests/test_parity_optim.py; graph mode: tests/test_foreach.py.)"""

from __future__ import annotations

import ast
import inspect

import pytest
import torch
from conftest import assert_close
from torch.optim import lr_scheduler as torch_sched

import handgrad as hg
from handgrad.errors import ArgumentTypeError, InputError, NotSupportedError

OPTIMIZERS = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW"]


def _pair(name, params_fn, **kw):
    """The same optimizer in handgrad and in torch over fresh copies of the same tensors."""
    return getattr(hg.optim, name)(params_fn(), **kw), getattr(torch.optim, name)(params_fn(), **kw)


def _two_groups():
    w, b = torch.ones(2, 2), torch.zeros(2)
    return [{"params": [w], "weight_decay": 0.1, "lr": 0.5}, {"params": b}]


# ---- groups ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_groups_and_defaults_are_torchs(name):
    opt, ref = _pair(name, _two_groups)
    assert opt.defaults == ref.defaults
    strip = [{k: v for k, v in g.items() if k != "params"} for g in ref.param_groups]
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == strip
    assert repr(opt) == repr(ref)
    assert opt.state_dict()["param_groups"] == ref.state_dict()["param_groups"]


def test_add_param_group_fills_defaults_and_refuses_a_parameter_twice():
    w, b = torch.ones(3), torch.ones(2)
    opt = hg.optim.SGD([w], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": b, "lr": 0.01})
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.01
    with pytest.raises(InputError, match="more than one parameter group"):
        opt.add_param_group({"params": [w]})
    with pytest.raises(ArgumentTypeError, match="param_group must be a dict"):
        opt.add_param_group([b])  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="duplicate parameters"):
        hg.optim.SGD([w, w], lr=0.1)


def test_named_parameters_are_kept_as_param_names():
    named = lambda: [("w", torch.ones(2)), ("b", torch.zeros(1))]  # noqa: E731
    opt, ref = _pair("Adam", named)
    assert opt.state_dict()["param_groups"] == ref.state_dict()["param_groups"]
    with pytest.raises(InputError, match="with/without names"):
        opt.add_param_group({"params": [torch.ones(1)]})


def test_lr_is_a_property_and_other_hyperparameters_live_in_the_groups():
    """opt.lr reads the first group's lr and sets every group's; the other hyperparameters
    are read from param_groups, as torch's (no opt.weight_decay, no opt.betas)."""
    opt = hg.optim.AdamW(_two_groups(), lr=0.1)
    assert opt.lr == 0.5
    assert opt.param_groups[0]["weight_decay"] == 0.1 and opt.param_groups[1]["betas"] == (
        0.9,
        0.999,
    )
    opt.lr = 0.02
    assert [g["lr"] for g in opt.param_groups] == [0.02, 0.02]
    assert len(opt.params) == 2
    for name in ("weight_decay", "betas", "momentum"):
        assert not hasattr(opt, name) and not hasattr(torch.optim.AdamW(_two_groups()), name)


@pytest.mark.parametrize(
    "params,error,match",
    [
        (
            torch.ones(2),
            ArgumentTypeError,
            "should be an iterable of Tensors or dicts, but got torch.FloatTensor",
        ),
        ([], InputError, "optimizer got an empty parameter list"),
        ([torch.ones(1), 3.0], ArgumentTypeError, "optimizer can only optimize Tensors"),
        ([{"params": {torch.ones(1)}}], ArgumentTypeError, "ordered collections"),
        (5, ArgumentTypeError, "iterable of Tensors or dicts"),
    ],
)
def test_bad_params_are_refused_as_torch_refuses_them(params, error, match):
    with pytest.raises(error, match=match):
        hg.optim.SGD(params, lr=0.1)
    with pytest.raises(error.__mro__[-3] if error is InputError else TypeError):
        torch.optim.SGD(params, lr=0.1)


@pytest.mark.parametrize(
    "name,kw,match",
    [
        ("SGD", {"lr": -0.1}, "Invalid learning rate: -0.1"),
        ("SGD", {"momentum": -1}, "Invalid momentum value: -1"),
        ("SGD", {"weight_decay": -1}, "Invalid weight_decay value"),
        ("SGD", {"nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
        ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "Nesterov"),
        ("Adam", {"betas": (0.9, 1.0)}, "Invalid beta parameter at index 1: 1.0"),
        ("Adam", {"betas": (-0.1, 0.9)}, "Invalid beta parameter at index 0"),
        ("Adam", {"eps": -1}, "Invalid epsilon value"),
        ("Adam", {"betas": (0, 0.9)}, "both floats or both Tensors"),
        ("AdamW", {"lr": -1}, "Invalid learning rate"),
        ("AdamW", {"weight_decay": -1}, "Invalid weight_decay value"),
        ("RMSprop", {"alpha": -0.1}, "Invalid alpha value"),
        ("RMSprop", {"momentum": -0.1}, "Invalid momentum value"),
        ("Adagrad", {"eps": -1}, "Invalid epsilon value"),
        ("Adagrad", {"lr_decay": -1}, "Invalid lr_decay value"),
        ("Adagrad", {"initial_accumulator_value": -1}, "Invalid initial_accumulator_value"),
        ("SGD", {"lr": torch.ones(2)}, "Tensor lr must be 1-element"),
    ],
)
def test_bad_hyperparameters_raise_torchs_error(name, kw, match):
    with pytest.raises(InputError, match=match):
        getattr(hg.optim, name)([torch.zeros(1)], **kw)
    with pytest.raises(ValueError, match=match):
        getattr(torch.optim, name)([torch.zeros(1)], **kw)


def test_a_groups_bad_hyperparameter_is_refused_too():
    with pytest.raises(InputError, match="Invalid learning rate"):
        hg.optim.SGD([{"params": [torch.ones(1)], "lr": -1.0}], lr=0.1)
    with pytest.raises(ArgumentTypeError, match="lr must be a number"):
        hg.optim.SGD([torch.ones(1)], lr="0.1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name,kw",
    [
        ("SGD", {"fused": True}),
        ("SGD", {"differentiable": True}),
        ("Adam", {"capturable": True}),
        ("Adam", {"fused": True}),
        ("AdamW", {"differentiable": True}),
        ("RMSprop", {"capturable": True}),
        ("Adagrad", {"fused": True}),
    ],
)
def test_switches_handgrad_cannot_honour_are_refused(name, kw):
    option = next(iter(kw))
    with pytest.raises(NotSupportedError, match=f"{name}: not supported: {option}=True"):
        getattr(hg.optim, name)([torch.zeros(1)], **kw)


FOREACH_CASES = [  # every option that changes the update's code path
    ("SGD", {}),
    ("SGD", {"momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    ("SGD", {"momentum": 0.9, "nesterov": True, "maximize": True}),
    ("Adagrad", {"lr_decay": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.5}),
    ("RMSprop", {}),
    ("RMSprop", {"momentum": 0.5, "centered": True, "weight_decay": 0.1, "maximize": True}),
    ("Adam", {}),
    ("Adam", {"amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    ("AdamW", {"amsgrad": True, "betas": (0.8, 0.99)}),
]


def _trajectory(name, kw, dtype, foreach):
    """Five steps of two groups (the second with its own lr), a parameter that misses the
    first step, and a complex one where the optimizer steps complex numbers."""
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=g, dtype=dtype) for s in [(4, 3), (3,), (2,)]]
    if name != "SGD":
        params.append(torch.randn(3, generator=g, dtype=torch.complex128))
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": 0.05}]
    opt = getattr(hg.optim, name)(groups, lr=0.1, foreach=foreach, **kw)
    for t in range(5):
        for i, p in enumerate(params):
            p.grad = None if (t == 0 and i == 1) else torch.cos(p * (t + 1)) + 0.1 * i
        opt.step()
    return params, opt


@pytest.mark.parametrize("name,kw", FOREACH_CASES)
def test_foreach_true_takes_the_multi_tensor_update_and_it_equals_the_reference(
    name, kw, monkeypatch
):
    """foreach=True runs optim/multi_tensor.py's kernel, foreach=False/None the per-parameter
    reference; both give the same weights and state (to float64 rounding)."""
    from handgrad.optim import multi_tensor

    kernel = {"AdamW": "adam"}.get(name, name.lower())
    calls = []
    real = getattr(multi_tensor, kernel)
    monkeypatch.setattr(multi_tensor, kernel, lambda *a, **k: (calls.append(1), real(*a, **k)))
    ref, ref_opt = _trajectory(name, kw, torch.float64, foreach=False)
    assert not calls
    _trajectory(name, kw, torch.float64, foreach=None)
    assert not calls  # eager foreach=None: the reference, as torch's on the CPU
    mine, opt = _trajectory(name, kw, torch.float64, foreach=True)
    assert calls
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)
    sa, sb = opt.state_dict()["state"], ref_opt.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        assert sa[i].keys() == sb[i].keys()
        for k in sa[i]:
            torch.testing.assert_close(sa[i][k], sb[i][k], rtol=1e-13, atol=1e-15)


def test_the_foreach_comparison_sees_a_wrong_kernel(monkeypatch):
    """The comparison above fails when the multi-tensor kernel is off by one rounding-sized
    step: it compares two different code paths."""
    from handgrad.optim import multi_tensor

    real = multi_tensor.adam

    def off(params, grads, states, t, h):
        real(params, grads, states, t, h)
        torch._foreach_mul_(params, 1 + 1e-11)

    monkeypatch.setattr(multi_tensor, "adam", off)
    ref, _ = _trajectory("Adam", {}, torch.float64, foreach=False)
    mine, _ = _trajectory("Adam", {}, torch.float64, foreach=True)
    with pytest.raises(AssertionError):
        for a, b in zip(mine, ref):
            torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


def test_adams_update_is_at_most_25_lines():
    """issue 19: the per-parameter update, signature and body, non-blank, docstring excluded."""
    from handgrad.optim.adam import adam_update

    source = inspect.getsource(adam_update)
    doc = ast.get_docstring(ast.parse(source).body[0], clean=False)
    assert doc is not None
    body = source.replace(doc, "")
    lines = [line for line in body.splitlines() if line.strip() and line.strip() != '""""""']
    assert len(lines) <= 25, "\n".join(lines)
    assert "float(" not in source and "value(" not in source  # lr as given


@pytest.mark.parametrize(
    "name,kw",
    [
        ("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
        ("SGD", {"maximize": True}),
        ("Adagrad", {"lr_decay": 0.1, "weight_decay": 0.1}),
        ("RMSprop", {"momentum": 0.5, "centered": True}),
        ("RMSprop", {"weight_decay": 0.1}),
        ("Adam", {"amsgrad": True, "weight_decay": 0.1}),
        ("AdamW", {"weight_decay": 0.1}),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_float32_tensor_lr_steps_as_torchs_bit_for_bit(name, kw, dtype):
    """torch computes lr / (1 - β₁ᵗ) and 1 - lr·λ as tensors of lr's dtype; so does the
    reference update, which uses lr as given."""
    g = torch.Generator().manual_seed(0)
    w = [torch.randn(4, 3, generator=g, dtype=dtype), torch.randn(3, generator=g, dtype=dtype)]
    mine, ref = [p.clone() for p in w], [p.clone().requires_grad_() for p in w]
    lr = torch.tensor(0.0123, dtype=torch.float32)
    opt = getattr(hg.optim, name)(mine, lr=lr.clone(), **kw)
    ref_opt = getattr(torch.optim, name)(ref, lr=lr.clone(), foreach=False, **kw)
    for t in range(6):
        for a, b in zip(mine, ref):
            a.grad = torch.sin(a * (t + 1))
            b.grad = torch.sin(b.detach() * (t + 1))
        opt.step()
        ref_opt.step()
        for a, b in zip(mine, ref):
            assert torch.equal(a, b.detach()), f"step {t}"


def test_tensor_lr_and_closure():
    p = torch.ones(2)
    opt = hg.optim.SGD([p], lr=torch.tensor(0.5))
    p.grad = torch.ones(2)
    assert opt.step(lambda: 3.0) == 3.0
    assert_close(p, torch.full((2,), 0.5))


# ---- step, zero_grad ---------------------------------------------------------------------------
def test_parameters_without_grad_are_skipped_and_zero_grad_clears():
    a, b = torch.ones(2), torch.ones(2)
    opt = hg.optim.SGD([a, b], lr=0.1)
    a.grad = torch.ones(2)
    opt.step()
    assert_close(a, torch.full((2,), 0.9))
    assert_close(b, torch.ones(2))
    opt.zero_grad(set_to_none=False)
    assert torch.equal(a.grad, torch.zeros(2)) and b.grad is None
    opt.zero_grad()
    assert a.grad is None


def test_complex_parameters_step_as_torchs():
    z0 = torch.tensor([1 + 2j, -0.5 + 0.1j], dtype=torch.complex128)
    for name in ["Adam", "RMSprop", "Adagrad"]:
        mine, ref = z0.clone(), z0.clone().requires_grad_()
        opt, ref_opt = (
            getattr(hg.optim, name)([mine], lr=0.1),
            getattr(torch.optim, name)([ref], lr=0.1),
        )
        for t in range(3):
            mine.grad = mine * (t + 1)
            ref.grad = ref.detach() * (t + 1)
            opt.step()
            ref_opt.step()
        assert_close(mine, ref.detach(), rtol=0, atol=0)


# ---- state_dict --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_resume_equals_uninterrupted(name):
    def run(steps, stop=None):
        p = torch.linspace(-1, 1, 6, dtype=torch.float64)
        opt = getattr(hg.optim, name)([p], lr=0.1)
        for t in range(steps):
            p.grad = torch.cos(p * (t + 1))
            opt.step()
            if t + 1 == stop:
                saved = opt.state_dict()
                opt = getattr(hg.optim, name)([p], lr=123.0)
                opt.load_state_dict(saved)
        return p

    assert torch.equal(run(20, stop=10), run(20))


def test_state_dict_is_a_copy():
    p = torch.ones(3)
    opt = hg.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones(3)
    opt.step()
    saved = opt.state_dict()
    opt.step()
    assert torch.equal(saved["state"][0]["momentum_buffer"], torch.ones(3))


@pytest.mark.parametrize(
    "saver,loader",
    [
        ("SGD", "Adam"),
        ("Adam", "SGD"),
        ("Adagrad", "RMSprop"),
        ("RMSprop", "SGD"),
        ("SGD", "Adagrad"),
    ],
)
def test_a_state_from_another_optimizer_class_is_refused(saver, loader):
    p = torch.ones(2)
    saved = getattr(hg.optim, saver)([p], lr=0.1).state_dict()
    with pytest.raises(InputError, match=f"saved by another optimizer class, not {loader}"):
        getattr(hg.optim, loader)([p], lr=0.1).load_state_dict(saved)


def test_load_state_dict_checks_the_groups():
    p, q = torch.ones(2), torch.ones(2)
    saved = hg.optim.SGD([p, q], lr=0.1).state_dict()
    with pytest.raises(InputError, match="different number of parameter groups"):
        hg.optim.SGD([{"params": [p]}, {"params": [q]}], lr=0.1).load_state_dict(saved)
    with pytest.raises(InputError, match="doesn't match the size"):
        hg.optim.SGD([p], lr=0.1).load_state_dict(saved)


def test_adamw_keeps_decoupled_decay_after_loading_adams_state():
    p = torch.ones(2)
    opt = hg.optim.AdamW([p])
    opt.load_state_dict(hg.optim.Adam([p]).state_dict())
    assert opt.param_groups[0]["decoupled_weight_decay"] is True


def test_the_single_group_format_of_older_checkpoints_loads():
    p = torch.ones(3)
    opt = hg.optim.Adam([p], lr=0.5)
    old = {
        "hyperparameters": {
            "lr": 0.01,
            "betas": [0.8, 0.9],
            "eps": 1e-8,
            "weight_decay": 0.0,
            "amsgrad": False,
        },
        "state": [
            {"step": torch.tensor(2.0), "exp_avg": torch.ones(3), "exp_avg_sq": torch.ones(3)}
        ],
    }
    opt.load_state_dict(old)
    assert opt.lr == 0.01 and opt.param_groups[0]["betas"] == (0.8, 0.9)
    assert opt.state[p]["step"] == 2
    p.grad = torch.ones(3)
    opt.step()
    with pytest.raises(InputError, match="expected state for 1 parameters"):
        opt.load_state_dict({"hyperparameters": {"lr": 0.1}, "state": []})


# ---- schedules ---------------------------------------------------------------------------------
def test_how_a_loop_steps_each_schedule():
    opt = hg.optim.SGD([torch.ones(1)], lr=0.1, momentum=0.9)
    plain = hg.optim.StepLR(opt, 2)
    cycle = hg.optim.OneCycleLR(opt, 1.0, total_steps=10)
    plateau = hg.optim.ReduceLROnPlateau(opt)
    assert (plain.interval, plain.needs_metric) == ("epoch", False)
    assert (cycle.interval, cycle.needs_metric) == ("batch", False)
    assert (plateau.interval, plateau.needs_metric) == ("epoch", True)
    seq = hg.optim.SequentialLR(opt, [hg.optim.LinearLR(opt), cycle], milestones=[3])
    assert seq.interval == "batch"


def test_inverse_time_decay():
    opt = hg.optim.SGD([torch.zeros(1)], lr=0.1)
    sched = hg.optim.InverseTimeDecay(opt, decay=0.5)
    lrs = []
    for _ in range(4):
        opt.step()
        sched.step()
        lrs.append(opt.lr)
    assert lrs == pytest.approx([0.1 / 1.5, 0.1 / 2, 0.1 / 2.5, 0.1 / 3])
    again = hg.optim.InverseTimeDecay(hg.optim.SGD([torch.zeros(1)], lr=0.1), decay=0.5)
    again.load_state_dict(sched.state_dict())
    again.step()
    assert again.optimizer.lr == pytest.approx(0.1 / 3.5)


def test_the_one_group_schedule_state_of_older_checkpoints_loads():
    sched = hg.optim.StepLR(hg.optim.SGD([torch.zeros(1)], lr=0.1), 2, 0.5)
    sched.load_state_dict({"base_lr": 0.1, "last_epoch": 5})
    assert sched.last_epoch == 5 and sched.get_last_lr() == [0.1 * 0.5**2]


def test_a_schedule_stepped_before_the_optimizer_warns_as_torch():
    sched = hg.optim.ExponentialLR(hg.optim.SGD([torch.zeros(1)], lr=0.1), 0.5)
    ref = torch_sched.ExponentialLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)]), 0.5)
    for s in (sched, ref):
        with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
            s.step()


def test_get_lr_outside_step_warns_as_torch():
    sched = hg.optim.ExponentialLR(hg.optim.SGD([torch.zeros(1)], lr=0.1), 0.5)
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


def _sgd(momentum: float = 0.0):
    return hg.optim.SGD([torch.zeros(1)], lr=0.1, momentum=momentum)


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: hg.optim.StepLR(_sgd(), step_size=0), InputError, "step_size must be > 0"),
        (lambda: hg.optim.CosineAnnealingLR(_sgd(), T_max=0), InputError, "T_max must be > 0"),
        (
            lambda: hg.optim.LinearLR(_sgd(), start_factor=0),
            InputError,
            "Starting multiplicative factor",
        ),
        (
            lambda: hg.optim.LinearLR(_sgd(), end_factor=1.5),
            InputError,
            "Ending multiplicative factor",
        ),
        (lambda: hg.optim.ConstantLR(_sgd(), factor=2.0), InputError, "between 0 and 1"),
        (
            lambda: hg.optim.LambdaLR(_sgd(), [lambda t: 1.0] * 2),
            InputError,
            "Expected 1 lr_lambdas, but got 2",
        ),
        (
            lambda: hg.optim.MultiplicativeLR(_sgd(), 0.9),
            ArgumentTypeError,
            "lr_lambda should be a function",
        ),
        (
            lambda: hg.optim.StepLR(torch.optim.SGD([torch.zeros(1)]), 2),
            ArgumentTypeError,
            "SGD is not an Optimizer",
        ),
        (lambda: hg.optim.StepLR(_sgd(), 2, last_epoch=3), KeyError, "initial_lr"),
        (lambda: hg.optim.OneCycleLR(_sgd(), 1.0), InputError, "either total_steps OR"),
        (
            lambda: hg.optim.OneCycleLR(_sgd(), 1.0, total_steps=0),
            InputError,
            "positive integer total_steps",
        ),
        (
            lambda: hg.optim.OneCycleLR(_sgd(), 1.0, epochs=2, steps_per_epoch=0),
            InputError,
            "steps_per_epoch",
        ),
        (lambda: hg.optim.OneCycleLR(_sgd(), 1.0, 10, pct_start=1.5), InputError, "pct_start"),
        (
            lambda: hg.optim.OneCycleLR(_sgd(), 1.0, 10, anneal_strategy="exp"),
            InputError,
            "anneal_strategy",
        ),
        (
            lambda: hg.optim.OneCycleLR(_sgd(), [1.0, 2.0], 10),
            InputError,
            "max_lr must have the same length",
        ),
        (
            lambda: hg.optim.OneCycleLR(hg.optim.Adagrad([torch.zeros(1)]), 1.0, 10),
            InputError,
            "momentum or beta1",
        ),
        (
            lambda: hg.optim.ReduceLROnPlateau(_sgd(), factor=1.0),
            InputError,
            "Factor should be < 1.0",
        ),
        (lambda: hg.optim.ReduceLROnPlateau(_sgd(), mode="avg"), InputError, "mode avg is unknown"),
        (
            lambda: hg.optim.ReduceLROnPlateau(_sgd(), threshold_mode="x"),
            InputError,
            "threshold mode x",
        ),
        (
            lambda: hg.optim.ReduceLROnPlateau(_sgd(), min_lr=[0, 0]),
            InputError,
            "expected 1 min_lrs, got 2",
        ),
        (lambda: hg.optim.SequentialLR(_sgd(), [], []), InputError, "at least one scheduler"),
    ],
)
def test_bad_schedule_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_sequential_lr_checks_its_schedules():
    opt = _sgd()
    a, b = hg.optim.ExponentialLR(opt, 0.9), hg.optim.ExponentialLR(opt, 0.5)
    with pytest.raises(InputError, match="one more than the number of milestone"):
        hg.optim.SequentialLR(opt, [a, b], milestones=[])
    with pytest.raises(InputError, match="does not support `ReduceLROnPlateau`"):
        hg.optim.SequentialLR(opt, [a, hg.optim.ReduceLROnPlateau(opt)], milestones=[2])
    with pytest.raises(InputError, match="same optimizer"):
        hg.optim.SequentialLR(opt, [a, hg.optim.ExponentialLR(_sgd(), 0.5)], milestones=[2])


def test_one_cycle_refuses_a_step_past_total_steps():
    opt, ref = (
        _sgd(0.9),
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9),
    )
    sched, ref_sched = (
        hg.optim.OneCycleLR(opt, 1.0, total_steps=3),
        torch_sched.OneCycleLR(ref, 1.0, total_steps=3),
    )
    for _ in range(3):
        opt.step()
        sched.step()
        ref.step()
        ref_sched.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        ref_sched.step()
    with pytest.raises(InputError, match="Tried to step 4 times"):
        sched.step()


def test_a_schedule_resumed_with_last_epoch_continues_as_torchs():
    opt, ref = _sgd(), torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    for o, lib in [(opt, hg.optim), (ref, torch_sched)]:
        sched = lib.ExponentialLR(o, 0.5)
        o.step()
        sched.step()
        again = lib.ExponentialLR(o, 0.5, last_epoch=sched.last_epoch)
        again.step()
        assert again.base_lrs == [0.1]
    assert opt.lr == ref.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


# ---- checkpoints (handgrad.io) -----------------------------------------------------------------
@pytest.mark.parametrize(
    "make_sched",
    [
        lambda o: hg.optim.MultiStepLR(o, [2, 4], 0.5),  # its Counter goes through JSON
        lambda o: hg.optim.ReduceLROnPlateau(o, patience=0),  # best = inf at first
        lambda o: hg.optim.OneCycleLR(o, 0.5, total_steps=10),
        lambda o: hg.optim.SequentialLR(o, [hg.optim.LinearLR(o), hg.optim.StepLR(o, 2)], [3]),
    ],
)
def test_a_checkpoint_keeps_groups_and_schedule(tmp_path, make_sched):
    def fresh():
        torch.manual_seed(0)
        model = hg.Sequential(hg.Linear(3, 4), hg.ReLU(), hg.Linear(4, 2))
        weights = [p for n, p in model.named_parameters() if n.endswith("weight")]
        biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
        groups = [{"params": weights, "weight_decay": 0.1}, {"params": biases, "lr": 0.2}]
        opt = hg.optim.SGD(groups, lr=0.05, momentum=0.9)
        return model, opt, make_sched(opt)

    def train(model, opt, sched, epochs, start=0):
        x, y = torch.randn(8, 3, generator=torch.Generator().manual_seed(1)), torch.zeros(8, 2)
        loss = hg.MSELoss()
        for _ in range(start, epochs):
            value = loss(model(x), y)
            opt.zero_grad()
            model.backward(loss.backward())
            opt.step()
            sched.step(float(value)) if sched.needs_metric else sched.step()

    m1, o1, s1 = fresh()
    train(m1, o1, s1, 8)
    m2, o2, s2 = fresh()
    train(m2, o2, s2, 4)
    path = hg.save_checkpoint(tmp_path / "ck.safetensors", m2, o2, epoch=4, scheduler=s2)
    m3, o3, s3 = fresh()
    hg.load_checkpoint(path, m3, o3, s3)
    train(m3, o3, s3, 8, start=4)
    for p, q in zip(m1.parameters(), m3.parameters()):
        assert torch.equal(p, q)
    rebuilt = hg.load_checkpoint(path)["optimizer"]
    assert [len(g["params"]) for g in rebuilt.param_groups] == [2, 2]
    assert rebuilt.param_groups[1]["lr"] == o2.param_groups[1]["lr"]


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: hg.optim.CyclicLR(_sgd(0.9), 0.1, 1.0, mode="saw"), "mode is invalid"),
        (
            lambda: hg.optim.CyclicLR(hg.optim.Adagrad([torch.zeros(1)]), 0.1, 1.0),
            "momentum or beta1",
        ),
        (
            lambda: hg.optim.CyclicLR(_sgd(0.9), [0.1, 0.2], 1.0),
            "base_lr must have the same length",
        ),
        (lambda: hg.optim.CosineAnnealingWarmRestarts(_sgd(), 0), "positive integer T_0"),
        (lambda: hg.optim.CosineAnnealingWarmRestarts(_sgd(), 2, 0), "T_mult >= 1"),
        (lambda: hg.optim.CosineAnnealingWarmRestarts(_sgd(), 2, eta_min="0"), "eta_min"),
        (lambda: hg.optim.CosineAnnealingWarmRestarts(_sgd(), 2).step(-1), "non-negative epoch"),
    ],
)
def test_bad_cyclic_schedule_arguments(make, match):
    with pytest.raises(InputError, match=match):
        make()


def test_an_optimizer_of_ones_own_works_with_the_schedules():
    """torch's recipe: subclass Optimizer with defaults and a step() over param_groups."""

    class SignSGD(hg.optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, {"lr": lr})

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.sub_(group["lr"] * p.grad.sign())

    p = torch.ones(2)
    opt = SignSGD([{"params": [p], "lr": 0.5}])
    sched = hg.optim.StepLR(opt, 1, 0.5)
    p.grad = torch.tensor([1.0, -1.0])
    opt.step()
    sched.step()
    opt.step()
    assert torch.equal(p, torch.tensor([0.25, 1.75]))
    assert opt.state_dict()["param_groups"][0] == {"lr": 0.25, "initial_lr": 0.5, "params": [0]}


def test_torchs_module_path_for_schedules():
    names = [n for n in dir(torch_sched) if isinstance(getattr(torch_sched, n), type)]
    shared = [n for n in names if not n.startswith("_") and n in hg.optim.lr_scheduler.__all__]
    assert set(shared) >= {"LRScheduler", "OneCycleLR", "ReduceLROnPlateau", "CyclicLR"}
    assert all(getattr(hg.optim.lr_scheduler, n) is getattr(hg.optim, n) for n in shared)
