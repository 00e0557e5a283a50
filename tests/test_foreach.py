"""The multi-tensor update of graph mode (handgrad.optim.foreach) against the per-tensor one it
mirrors, and the op count of fit's device step (handgrad.training.graph.Step): the update and
the inf/NaN guard cost a fixed number of ops, not a few per parameter."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch
from test_capture import IDS, OPTIMIZERS, _addresses, no_sync  # noqa: F401 (a fixture)
from torch.utils._python_dispatch import TorchDispatchMode

import handgrad as hg
from handgrad.mode import capture_safe
from handgrad.optim import foreach
from handgrad.training.graph import Step


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3,), (2, 5), (5,), (2,)]
    return [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]


def _groups(params, kw):
    """Three groups, the last with its own lr; params[4] never gets a gradient."""
    return [
        {"params": params[:2]},
        {"params": params[2:4], "lr": kw["lr"] / 2},
        {"params": params[4:]},
    ]


def _set_grads(params, t):
    g = torch.Generator().manual_seed(100 + t)
    for p in params[:4]:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        p.grad.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))  # in place, as Step


def _run(name, kw, listwise, monkeypatch, mask=None):
    """Six graph-mode steps (a schedule halves lr every two); `mask`: the guard's flags."""
    with monkeypatch.context() as m:
        if not listwise:
            m.setattr(foreach, "applies", lambda group: False)
        params = _params()
        opt = getattr(hg.optim, name)(_groups(params, kw), **kw)
        opt.device_scalars(True)
        sched = hg.optim.StepLR(opt, step_size=2, gamma=0.5)
        for t in range(6):
            if mask is not None:
                opt._mask = torch.tensor(mask[t])
            _set_grads(params, t)
            opt.step()
            sched.step()
    return params, opt


@pytest.mark.parametrize("name, kw", OPTIMIZERS, ids=IDS)
def test_listwise_update_equals_the_per_tensor_one(name, kw, monkeypatch):
    (a, opt_a), (b, opt_b) = (_run(name, kw, lw, monkeypatch) for lw in (False, True))
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i in sa["state"]:
        assert sa["state"][i].keys() == sb["state"][i].keys()
        for k in sa["state"][i]:
            torch.testing.assert_close(sa["state"][i][k], sb["state"][i][k], rtol=1e-12, atol=0)


@pytest.mark.parametrize("name, kw", OPTIMIZERS, ids=IDS)
def test_listwise_update_honours_the_mask(name, kw, monkeypatch):
    """A masked step (lr·0) leaves the weights as the per-tensor path does: unchanged."""
    mask = [True, True, False, False, True, False]
    (a, _), (b, _) = (_run(name, kw, lw, monkeypatch, mask) for lw in (False, True))
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    params, opt = _run(name, kw, True, monkeypatch, [True] * 5 + [False])
    before = [p.clone() for p in params]
    opt._mask = torch.tensor(False)
    _set_grads(params, 7)
    opt.step()
    for p, q in zip(params, before):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name, kw", OPTIMIZERS, ids=IDS)
def test_listwise_update_never_syncs_and_keeps_addresses(name, kw, no_sync):  # noqa: F811
    params = _params()
    opt = getattr(hg.optim, name)(_groups(params, kw), **kw)
    opt.device_scalars(True)
    _set_grads(params, 0)
    opt.step()  # the first step makes the state
    stepped = params[:4]
    before = _addresses(opt, stepped)
    no_sync()
    for t in range(1, 4):
        _set_grads(params, t)
        opt.step()
    assert _addresses(opt, stepped) == before


def test_every_optimizer_takes_the_listwise_path_in_graph_mode(monkeypatch):
    calls: Counter[str] = Counter()
    for fn in ("sgd", "adam", "adagrad", "rmsprop"):
        real = getattr(foreach, fn)
        monkeypatch.setattr(foreach, fn, lambda *a, _f=real, _n=fn: (calls.update([_n]), _f(*a)))
    for make in (hg.optim.SGD, hg.optim.Adam, hg.optim.AdamW, hg.optim.Adagrad, hg.optim.RMSprop):
        params = _params()
        opt = make(params, lr=0.1)
        _set_grads(params, 0)
        opt.step()  # eager: the per-tensor reference
        opt.device_scalars(True)
        opt.step()
    assert calls == {"sgd": 1, "adam": 2, "adagrad": 1, "rmsprop": 1}


def test_complex_parameters_keep_the_per_tensor_path():
    p = torch.randn(3, dtype=torch.complex128)
    q = p.clone()
    for x, listwise in ((p, False), (q, True)):
        opt = hg.optim.Adam([x], lr=0.1)
        opt.device_scalars(listwise)
        for _ in range(3):
            x.grad = torch.ones_like(x) * (1 + 2j)
            opt.step()
    torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


# ---- fit's device step: ops per step ---------------------------------------------------------
class _Count(TorchDispatchMode):
    """The aten calls made inside it that are not views (a proxy for kernel launches)."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.n += not func.is_view
        return func(*args, **(kwargs or {}))


def _bookkeeping_ops(layers: int, optimizer: str) -> int:
    """The ops one Step adds to a bare forward + loss + backward of an MLP of `layers`
    Linear layers (2 parameters each): zeroing, the inf/NaN guard and the update."""
    torch.manual_seed(0)
    mods: list[Any] = []
    for i in range(layers):
        mods += [hg.Linear(8, 8)] + ([hg.ReLU()] if i < layers - 1 else [])
    model, loss = hg.Sequential(*mods), hg.CrossEntropyLoss()
    make = getattr(hg.optim, optimizer)
    step = Step(model, loss, make(model.parameters(), lr=0.01), clip=1.0)
    X, y = torch.randn(4, 8), torch.randint(0, 8, (4,))
    for _ in range(2):
        step(X, y)
    with _Count() as whole:
        step(X, y)
    with _Count() as bare, capture_safe():
        loss(model(X), y)
        model.backward_params(loss.backward())
    step.close()
    return whole.n - bare.n


@pytest.mark.parametrize("optimizer", ["SGD", "Adam", "RMSprop"])
def test_step_bookkeeping_does_not_grow_with_the_parameters(optimizer):
    """8 more parameters add no op to the update and the guard (per tensor: ~4 each for SGD,
    ~15 for Adam); clip_grad_norm's foreach norm is one op too."""
    few, many = _bookkeeping_ops(2, optimizer), _bookkeeping_ops(6, optimizer)
    assert many - few <= 1, (few, many)
    assert few <= {"SGD": 30, "Adam": 50, "RMSprop": 40}[optimizer], few


def test_step_forward_loss_and_backward_skip_the_work_of_unused_options():
    """Linear-ReLU-Linear with CrossEntropyLoss as the step runs it (capture_safe, .grad there):
    no ignore_index mask, weight or smoothing term in the loss (10 ops forward, 5 backward), and
    each weight's product added into .grad by its GEMM: 27 ops in all (46 before)."""
    torch.manual_seed(0)
    model, loss = (
        hg.Sequential(hg.Linear(8, 16), hg.ReLU(), hg.Linear(16, 5)),
        hg.CrossEntropyLoss(),
    )
    X, y = torch.randn(4, 8), torch.randint(0, 5, (4,))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    with capture_safe():
        with _Count() as forward:
            out = model(X)
        with _Count() as loss_forward:
            loss(out, y)
        with _Count() as loss_backward:
            dz = loss.backward()
        with _Count() as backward:
            model.backward_params(dz)
    counts = (forward.n, loss_forward.n, loss_backward.n, backward.n)
    assert counts == (3, 10, 5, 9), counts


def test_step_keeps_none_for_a_frozen_module_and_gathers_it_when_unfrozen():
    torch.manual_seed(0)
    model = hg.Sequential(hg.Linear(6, 8), hg.ReLU(), hg.Linear(8, 3))
    model[0].freeze()
    opt = hg.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.1)
    step = Step(model, hg.CrossEntropyLoss(), opt)
    X, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    w = model[0].weight.clone()
    step(X, y)
    step(X, y)
    assert model[0].weight.grad is None and torch.equal(model[0].weight, w)  # no decay
    assert len(step.flat) == 1 and step.flat[0].numel() == 8 * 3 + 3
    model[0].unfreeze()
    step(X, y)
    assert step.flat[0].numel() == sum(p.numel() for p in model.parameters())
    assert not torch.equal(model[0].weight, w)
    for p in model.parameters():
        assert p.grad is not None and p.grad._base is step.flat[0]
    step.close()
