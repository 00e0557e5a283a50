"""The Python API's traps from issue 21: each ends in torch's result or one clear error.

model.to(...) keeps the parameters an optimizer holds; fit refuses what it cannot train
(torch.nn modules, torch.optim optimizers, tensors outside the model); metrics check the task;
forwards that are never backpropagated warn; a Module that names no parameters warns; and the
optimizers fill an older state_dict and compute a tensor lr as torch.optim does.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch

import handgrad as hg
from handgrad.errors import ArgumentTypeError, InputError
from handgrad.module import CACHE_WARN_AT

README = Path(__file__).resolve().parents[1] / "README.md"


def _pair(seed: int = 0) -> tuple[hg.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    mine = hg.Sequential(hg.Linear(3, 4), hg.BatchNorm1d(4), hg.Tanh(), hg.Linear(4, 1))
    torch.manual_seed(seed)
    ref = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Tanh(), torch.nn.Linear(4, 1)
    )
    return mine, ref


# ---- 1. to() keeps each parameter ---------------------------------------------------------
def test_to_keeps_parameters_and_grads_and_renews_buffers_as_torch_does():
    mine, ref = _pair()
    x = torch.randn(5, 3)
    mine.backward(torch.ones_like(mine(x)))
    ref(x).sum().backward()
    ids = {m: [id(t) for t in m.parameters()] for m in (mine, ref)}
    grads = {m: [id(t.grad) for t in m.parameters()] for m in (mine, ref)}
    bufs = {m: [id(t) for _, t in m.named_buffers()] for m in (mine, ref)}
    renewed = {}
    for m in (mine, ref):
        assert m.to(torch.float64) is m
        assert [id(t) for t in m.parameters()] == ids[m]  # the same tensor objects
        assert [id(t.grad) for t in m.parameters()] == grads[m]
        assert all(t.dtype == t.grad.dtype == torch.float64 for t in m.parameters())
        renewed[m] = [id(t) != i for (_, t), i in zip(m.named_buffers(), bufs[m])]
    # running_mean, running_var: new float64 tensors; num_batches_tracked (long) untouched
    assert renewed[mine] == renewed[ref] == [True, True, False]
    assert mine[1].num_batches_tracked.dtype == torch.long


def test_optimizer_built_before_to_trains_the_model_as_torch():
    mine, ref = _pair()
    opt = hg.optim.SGD(mine.parameters(), lr=0.1, momentum=0.9)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    mine.to(torch.float64)
    ref.to(torch.float64)
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    loss = hg.MSELoss()
    for _ in range(3):
        loss(mine(x), y)
        opt.zero_grad()
        mine.backward(loss.backward())
        opt.step()
        ref_opt.zero_grad()
        torch.nn.functional.mse_loss(ref(x), y).backward()
        ref_opt.step()
    for (name, p), q in zip(mine.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q.detach(), msg=name)


def test_fit_after_to_moves_the_weights():
    model = hg.Sequential(hg.Linear(2, 8), hg.Tanh(), hg.Linear(8, 1))
    opt = hg.optim.Adam(model.parameters(), lr=0.05)
    model.to(torch.float64)
    before = [p.clone() for p in model.parameters()]
    X = torch.randn(64, 2, dtype=torch.float64)
    y = X.sum(1, keepdim=True)
    h = hg.fit(model, hg.MSELoss(), opt, (X, y), epochs=5, progress=False, seed=0)
    assert h["loss"][-1] < h["loss"][0] / 2
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_to_keeps_a_tied_tensor_shared():
    a, b = hg.Linear(3, 3), hg.Linear(3, 3)
    b.weight = a.weight
    model = hg.Sequential(a, b).to(torch.float64)
    assert model[0].weight is model[1].weight and model[0].weight.dtype == torch.float64


# ---- 2. fit's arguments -------------------------------------------------------------------
def _data() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(16, 3), torch.randn(16, 1)


def test_fit_refuses_an_optimizer_over_another_models_tensor_naming_it():
    model, other = hg.Linear(3, 1), hg.Linear(3, 1)
    opt = hg.optim.SGD(list(model.named_parameters()) + [("stray", other.bias)], lr=0.1)
    with pytest.raises(InputError, match=r"fit: the optimizer holds 'stray' \(shape \(1,\)"):
        hg.fit(model, hg.MSELoss(), opt, _data(), epochs=1, progress=False)
    opt = hg.optim.SGD(other.parameters(), lr=0.1)
    with pytest.raises(InputError, match="tensor 0 of param group 0 .* neither the model"):
        hg.fit(model, hg.MSELoss(), opt, _data(), epochs=1, progress=False)


def test_fit_takes_a_subset_of_the_parameters_for_fine_tuning():
    model = hg.Sequential(hg.Linear(3, 4), hg.Tanh(), hg.Linear(4, 1))
    frozen = model[0].weight.clone()
    opt = hg.optim.SGD(model[2].parameters(), lr=0.1)
    before = model[2].weight.clone()
    hg.fit(model, hg.MSELoss(), opt, _data(), epochs=2, progress=False)
    assert torch.equal(model[0].weight, frozen) and not torch.equal(model[2].weight, before)


def test_fit_refuses_torch_objects_by_name():
    model = hg.Linear(3, 1)
    t_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ArgumentTypeError, match="torch.optim's SGD.*hg.optim.SGD"):
        hg.fit(model, hg.MSELoss(), t_opt, _data(), epochs=1, progress=False)
    lin = torch.nn.Linear(3, 1)
    opt = hg.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(
        ArgumentTypeError,
        match=r"fit: model must be a handgrad Module, got "
        r"torch.nn.modules.linear.Linear; handgrad's twin is hg.Linear",
    ):
        hg.fit(lin, hg.MSELoss(), opt, _data(), epochs=1, progress=False)
    with pytest.raises(ArgumentTypeError, match="fit: loss must be a handgrad Module.*hg.MSELoss"):
        hg.fit(model, torch.nn.MSELoss(), opt, _data(), epochs=1, progress=False)


def test_save_refuses_a_torch_module_in_one_line(tmp_path):
    with pytest.raises(ArgumentTypeError) as e:
        hg.save(torch.nn.Linear(2, 2), tmp_path / "m.safetensors")
    assert "\n" not in str(e.value)
    assert str(e.value).startswith("save: model must be a handgrad Module, got torch.nn.")
    assert not (tmp_path / "m.safetensors").exists()


# ---- metrics check the task ---------------------------------------------------------------
def test_accuracy_refuses_a_regression():
    X = torch.randn(20, 3)
    y = X.sum(1, keepdim=True) * 3
    with pytest.raises(InputError, match="accuracy: one score per example needs 0/1 targets"):
        hg.evaluate(hg.Linear(3, 1), (X, y), metrics=["accuracy"])


def test_accuracy_still_scores_binary_and_multiclass():
    torch.manual_seed(0)
    X = torch.randn(30, 3)
    y01 = (X[:, 0] > 0).float().unsqueeze(1)
    model = hg.Linear(3, 1)
    got = hg.evaluate(model, (X, y01), metrics=["accuracy"])["accuracy"]
    assert got == float(((model(X) > 0) == (y01 > 0.5)).float().mean())
    yc = torch.randint(0, 4, (30,))
    got = hg.evaluate(hg.Linear(3, 4), (X, yc), metrics=["accuracy"])["accuracy"]
    assert 0.0 <= got <= 1.0


def test_regression_metrics_refuse_class_scores():
    X, yc = torch.randn(10, 3), torch.randint(0, 4, (10,))
    for name in ("mae", "r2"):
        with pytest.raises(InputError, match=f"{name}: predictions \\(10, 4\\) do not fit"):
            hg.evaluate(hg.Linear(3, 4), (X, yc), metrics=[name])


# ---- forwards with no backward ------------------------------------------------------------
def test_a_cache_stack_past_the_bound_warns_once_naming_no_cache():
    layer, other = hg.Tanh(), hg.Tanh()
    x = torch.zeros(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(CACHE_WARN_AT - 1):
            layer(x)
        assert not caught
        for _ in range(CACHE_WARN_AT + 5):  # past the bound, and back to it after a clear
            layer(x)
        layer.clear_cache()
        for _ in range(CACHE_WARN_AT):
            layer(x)
        with hg.no_cache():
            for _ in range(CACHE_WARN_AT):
                other(x)
    assert len(caught) == 1 and CACHE_WARN_AT == 10_000
    assert "hg.no_cache()" in str(caught[0].message) and "Tanh" in str(caught[0].message)
    assert other.pending() == 0


# ---- a Module that names no parameters ----------------------------------------------------
class Scale(hg.Module):  # forgets parameter_names
    def __init__(self):
        self.w = torch.ones(3)
        self.extras = [torch.zeros(2)]

    def forward(self, x):
        return x * self.w


def test_a_module_holding_tensors_without_parameter_names_warns():
    model = hg.Sequential(hg.Linear(3, 3), Scale())
    with pytest.warns(
        UserWarning,
        match=r"Scale holds tensors w, extras but names no "
        r"parameter_names",
    ):
        named = model.named_parameters()
    assert [n for n, _ in named] == ["0.weight", "0.bias"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per class
        model.parameters()
        hg.Sequential(hg.Linear(2, 2), hg.ReLU()).parameters()  # nothing to say


def test_readme_protocol_names_parameter_names():
    text = README.read_text(encoding="utf-8")
    protocol = text[text.index("The protocol is small") : text.index("A model with branches")]
    assert "parameter_names" in protocol and "buffer_names" in protocol


# ---- 3. torch.optim's semantics -----------------------------------------------------------
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_tensor_lr_gives_torchs_numbers_exactly(name):
    torch.manual_seed(0)
    start = [torch.randn(4, 3), torch.randn(3)]
    mine = [p.clone() for p in start]
    ref = [p.clone().requires_grad_() for p in start]
    kw = {"lr": torch.tensor(0.01), "weight_decay": 0.1, "amsgrad": True}
    opt = getattr(hg.optim, name)(mine, **copy.deepcopy(kw))
    ref_opt = getattr(torch.optim, name)(ref, **copy.deepcopy(kw))
    for _ in range(5):
        grads = [torch.randn_like(p) for p in start]
        for p, q, g in zip(mine, ref, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref_opt.step()
    for p, q in zip(mine, ref):
        assert torch.equal(p, q.detach())


OLDER_KWARGS = {
    "SGD": {"momentum": 0.9},
    "Adagrad": {"lr_decay": 0.1},
    "RMSprop": {"momentum": 0.5, "centered": True},
    "Adam": {"amsgrad": True},
    "AdamW": {},
}


@pytest.mark.parametrize("name", list(OLDER_KWARGS))
def test_an_older_state_dict_is_filled_as_torchs_setstate_fills_it(name):
    """No foreach/fused/differentiable/maximize/capturable keys, numbers as step counts."""
    torch.manual_seed(0)
    ref_p = [torch.randn(3, requires_grad=True)]
    ref_opt = getattr(torch.optim, name)(ref_p, **OLDER_KWARGS[name])
    ref_p[0].grad = torch.randn(3)
    ref_opt.step()
    old = copy.deepcopy(ref_opt.state_dict())
    for key in ("foreach", "fused", "differentiable", "maximize", "capturable"):
        old["param_groups"][0].pop(key, None)
    for s in old["state"].values():
        if "step" in s:
            s["step"] = s["step"].item()
    ref_new = getattr(torch.optim, name)([torch.zeros(3, requires_grad=True)])
    ref_new.load_state_dict(copy.deepcopy(old))
    mine = getattr(hg.optim, name)([torch.zeros(3)])
    mine.load_state_dict(copy.deepcopy(old))
    got, want = mine.state_dict(), ref_new.state_dict()
    assert got["param_groups"] == want["param_groups"]
    if name == "SGD":
        assert got["param_groups"][0]["fused"] is False  # built: None; loaded: False, as torch
    for i, s in want["state"].items():
        assert set(got["state"][i]) == set(s)
        for k, v in s.items():
            assert got["state"][i][k].dtype == v.dtype and torch.equal(got["state"][i][k], v)


def test_state_dict_fused_after_construction_stays_none_as_torch():
    p = torch.zeros(2)
    got = hg.optim.SGD([p], lr=0.1).state_dict()["param_groups"][0]["fused"]
    want = torch.optim.SGD([p.clone().requires_grad_()], lr=0.1).state_dict()
    assert got is None and want["param_groups"][0]["fused"] is None
