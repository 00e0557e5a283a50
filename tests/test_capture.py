"""Capture-safe training steps, on the CPU: nothing in an optimizer step, in clip_grad_norm or
in fit's device step (handgrad.training.graph.Step) reads a tensor's value on the host, and
every tensor that lives across steps keeps its address. These are what a CUDA graph needs."""

from __future__ import annotations

import pytest
import torch

import handgrad as hg
from handgrad.data.loader import DataLoader
from handgrad.errors import InputError, UsageError
from handgrad.optim.optimizer import Optimizer
from handgrad.training.graph import Step, check_options
from handgrad.training.loop import NonFiniteLossError

SYNCS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")

OPTIMIZERS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    ("AdamW", {"lr": 0.01, "betas": (0.8, 0.99), "amsgrad": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01}),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)]


@pytest.fixture
def no_sync(monkeypatch):
    """Every Tensor method that reads a value on the host raises."""

    def raiser(name):
        def refuse(self, *args, **kwargs):
            raise AssertionError(f"host sync: Tensor.{name}")

        return refuse

    def patch():
        for name in SYNCS:
            monkeypatch.setattr(torch.Tensor, name, raiser(name))

    return patch


def _params(seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype) for s in [(4, 3), (3,), (2,)]]


def _set_grads(params, t):
    g = torch.Generator().manual_seed(100 + t)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)


def _groups(params, kw):
    """Two groups: the second with its own lr."""
    return [{"params": params[:2]}, {"params": params[2:], "lr": kw["lr"] / 2}]


def _addresses(opt: Optimizer, params):
    ptrs = [p.data_ptr() for p in params] + [p.grad.data_ptr() for p in params]
    for p in params:
        ptrs += [v.data_ptr() for v in opt.state[p].values() if isinstance(v, torch.Tensor)]
    return ptrs


@pytest.mark.parametrize("device_scalars", [False, True], ids=["eager", "graph-mode"])
@pytest.mark.parametrize(
    "name, kw", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)]
)
def test_optimizer_step_never_syncs_and_keeps_addresses(name, kw, device_scalars, no_sync):
    params = _params()
    opt = getattr(hg.optim, name)(_groups(params, kw), **kw)
    opt.device_scalars(device_scalars)
    _set_grads(params, 0)
    opt.step()  # the first step makes the state
    hg.clip_grad_norm(params, 1.0)
    before = _addresses(opt, params)
    no_sync()
    for t in range(1, 4):
        for p in params:
            p.grad.copy_(torch.randn(p.shape) * t)  # in place, as fit's zero_grad + backward
        hg.clip_grad_norm(params, 1.0)
        opt.step()
    assert _addresses(opt, params) == before


@pytest.mark.parametrize(
    "name, kw", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)]
)
def test_graph_mode_follows_the_eager_step(name, kw):
    """Device-tensor lr / betas / bias corrections give the eager numbers to float rounding,
    and a schedule changing group['lr'] between steps reaches the device tensors."""
    trajectories = []
    for device_scalars in (False, True):
        params = _params(dtype=torch.float64)
        opt = getattr(hg.optim, name)(_groups(params, kw), **kw)
        opt.device_scalars(device_scalars)
        sched = hg.optim.StepLR(opt, step_size=2, gamma=0.5)
        for t in range(6):
            _set_grads(params, t)
            opt.step()
            sched.step()
        trajectories.append(params)
    for a, b in zip(*trajectories):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_graph_mode_keeps_torch_state_dict_format():
    params = _params()
    opt = hg.optim.Adam(params, lr=0.01)
    opt.device_scalars(True)
    _set_grads(params, 0)
    opt.step()
    opt.step()
    state = opt.state_dict()["state"][0]
    assert float(state["step"]) == 2.0 and state["step"].dtype == torch.float32
    opt.device_scalars(False)  # back to host numbers: the count is read once
    opt.step()
    assert float(opt.state[params[0]]["step"]) == 3.0


# ---- fit's device step on whole models ----------------------------------------------------------
def _mlp():
    return hg.Sequential(hg.Linear(6, 8), hg.ReLU(), hg.Linear(8, 3))


def _cnn():
    return hg.Sequential(
        hg.Conv2d(1, 2, 3, padding=1), hg.ReLU(), hg.MaxPool2d(2), hg.Flatten(), hg.Linear(8, 3)
    )


def _gru():
    return hg.RecurrentClassifier("gru", 1, 4, 5, 3, bidirectional=True)


MODELS = {
    "mlp": (_mlp, (6,)),
    "cnn": (_cnn, (1, 4, 4)),
    "gru": (_gru, (5, 1)),
}


def _data(shape, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("opt_name", ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"])
def test_fit_step_never_syncs_and_keeps_addresses(model_name, opt_name, no_sync):
    torch.manual_seed(0)
    make, shape = MODELS[model_name]
    model, loss = make(), hg.CrossEntropyLoss()
    kw = {"momentum": 0.9} if opt_name in ("SGD", "RMSprop") else {}
    opt = getattr(hg.optim, opt_name)(model.parameters(), lr=0.01, **kw)
    step = Step(model, loss, opt, clip=1.0)
    X, y = _data(shape)
    step(X, y)
    before = _addresses(opt, model.parameters()) + [
        t.data_ptr() for t in (step.ok, step.total, step.good, *step.flat)
    ]
    no_sync()
    for _ in range(3):
        step(X, y)
    assert (
        _addresses(opt, model.parameters())
        + [t.data_ptr() for t in (step.ok, step.total, step.good, *step.flat)]
        == before
    )


def test_device_step_trains_as_fit_does():
    """fit's device step (bf16 off, no graph) gives fit's eager weights and loss."""
    X, y = _data((6,), n=32)
    runs = []
    for device in (False, True):
        torch.manual_seed(0)
        model = _mlp()
        opt = hg.optim.Adam(model.parameters(), lr=0.01)
        if device:
            step = Step(model, hg.CrossEntropyLoss(), opt, clip=1.0)
            for i in range(0, 32, 8):
                step(X[i : i + 8], y[i : i + 8])
            loss = step.read()[0] / 32
            step.close()
        else:
            h = hg.fit(
                model,
                hg.CrossEntropyLoss(),
                opt,
                (X, y),
                epochs=1,
                batch_size=8,
                shuffle=False,
                progress=False,
                clip_grad_norm=1.0,
            )
            loss = h["loss"][0]
        runs.append((model.parameters(), loss))
    for a, b in zip(runs[0][0], runs[1][0]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert runs[0][1] == pytest.approx(runs[1][1], rel=1e-5)


def test_non_finite_step_is_masked_and_reported():
    torch.manual_seed(0)
    model = _mlp()
    opt = hg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    step = Step(model, hg.CrossEntropyLoss(), opt)
    X, y = _data((6,))
    step(X, y)
    kept = [p.clone() for p in model.parameters()]
    bad = X.clone()
    bad[0, 0] = float("nan")
    step(bad, y)
    step(X, y)  # the flag stays cleared for the rest of the epoch
    assert step.read()[1] == 2
    for a, b in zip(model.parameters(), kept):
        assert torch.equal(a, b)


def test_fit_precision_path_raises_on_nan_with_the_batch():
    torch.manual_seed(0)
    X, y = _data((6,), n=16)
    X[9, 0] = float("inf")
    model = _mlp()
    opt = hg.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 2"):
        hg.fit(
            model,
            hg.CrossEntropyLoss(),
            opt,
            (X, y),
            epochs=1,
            batch_size=8,
            shuffle=False,
            progress=False,
            precision="bf16",
        )
    assert opt._mask is None and not opt._device_scalars


def test_fit_per_batch_schedule_in_the_device_step():
    torch.manual_seed(0)
    X, y = _data((6,), n=32)
    model = _mlp()
    opt = hg.optim.SGD(model.parameters(), lr=0.1)
    sched = hg.optim.OneCycleLR(opt, max_lr=0.5, total_steps=8)
    hg.fit(
        model,
        hg.CrossEntropyLoss(),
        opt,
        (X, y),
        epochs=2,
        batch_size=8,
        progress=False,
        scheduler=sched,
        precision="bf16",
    )
    assert sched.last_epoch == 8


def test_bad_options_are_refused_before_any_cuda_call():
    model = _mlp()
    opt = hg.optim.SGD(model.parameters(), lr=0.1)
    X, y = _data((6,))
    fit = lambda **kw: hg.fit(model, hg.CrossEntropyLoss(), opt, (X, y), progress=False, **kw)  # noqa: E731
    with pytest.raises(InputError, match="precision must be 'float32' or 'bf16'"):
        fit(precision="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="cuda_graph=True needs CUDA"):
            fit(cuda_graph=True)
    else:
        with pytest.raises(UsageError, match="needs the model and the data on a CUDA device"):
            fit(cuda_graph=True)
    loader = DataLoader(torch.empty(8, 6, device="meta"), torch.empty(8, device="meta"))
    with pytest.raises(InputError, match="the model is on cpu but the data is on meta"):
        check_options(model, loader, False, "float32", False)
