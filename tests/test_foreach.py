"""The multi-tensor kernels (handgrad.optim.multi_tensor) that graph mode runs, against the
per-parameter reference updates they mirror, and the op counts of a graph-mode step and of
fit's device step (handgrad.training.graph.Step): the update and the inf/NaN guard cost a
fixed number of ops, not a few per parameter. (foreach=True in eager mode: tests/test_optim.py.)"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch
from test_capture import IDS, OPTIMIZERS, _addresses, no_sync  # noqa: F401 (a fixture)
from torch.utils._python_dispatch import TorchDispatchMode

import handgrad as hg
from handgrad.mode import capture_safe
from handgrad.optim import multi_tensor
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


def _run(name, kw, graph, mask=None):
    """Six steps (a schedule halves lr every two), in graph mode (the multi-tensor kernel,
    device scalars, `mask`: the guard's flags) or eager with foreach=False (the reference;
    a masked step is a step with lr 0, what the mask's lr·0 computes)."""
    params = _params()
    opt = getattr(hg.optim, name)(_groups(params, kw), **kw)
    opt.device_scalars(graph)
    sched = hg.optim.StepLR(opt, step_size=2, gamma=0.5)
    for t in range(6):
        _set_grads(params, t)
        masked = mask is not None and not mask[t]
        if graph and mask is not None:
            opt._mask = torch.tensor(mask[t])
        lrs = [g["lr"] for g in opt.param_groups]
        if masked and not graph:
            for g in opt.param_groups:
                g["lr"] = 0.0
        opt.step()
        for g, lr in zip(opt.param_groups, lrs):
            g["lr"] = lr
        sched.step()
    return params, opt


def _assert_same(a, opt_a, b, opt_b):
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
def test_graph_mode_kernel_equals_the_reference_update(name, kw):
    _assert_same(*_run(name, kw, graph=True), *_run(name, kw, graph=False))


@pytest.mark.parametrize("name, kw", OPTIMIZERS, ids=IDS)
def test_graph_mode_kernel_honours_the_mask(name, kw):
    """A masked step (lr·0) is the reference's step with lr 0; a masked step after the
    state exists leaves the weights unchanged."""
    mask = [True, True, False, False, True, False]
    graph, reference = _run(name, kw, True, mask), _run(name, kw, False, mask)
    _assert_same(*graph, *reference)
    params, opt = _run(name, kw, True, [True] * 5 + [False])
    before = [p.clone() for p in params]
    opt._mask = torch.tensor(False)
    _set_grads(params, 7)
    opt.step()
    for p, q in zip(params, before):
        assert torch.equal(p, q)


@pytest.mark.parametrize("name, kw", OPTIMIZERS, ids=IDS)
def test_graph_mode_kernel_never_syncs_and_keeps_addresses(name, kw, no_sync):  # noqa: F811
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


def test_every_optimizer_takes_the_kernel_in_graph_mode_whatever_foreach_says(monkeypatch):
    calls: Counter[str] = Counter()
    for fn in ("sgd", "adam", "adagrad", "rmsprop"):
        real = getattr(multi_tensor, fn)
        spy = lambda *a, _f=real, _n=fn, **k: (calls.update([_n]), _f(*a, **k))  # noqa: E731
        monkeypatch.setattr(multi_tensor, fn, spy)
    for make in (hg.optim.SGD, hg.optim.Adam, hg.optim.AdamW, hg.optim.Adagrad, hg.optim.RMSprop):
        params = _params()
        opt = make(params, lr=0.1, foreach=False)
        _set_grads(params, 0)
        opt.step()  # eager: the per-parameter reference
        opt.device_scalars(True)
        opt.step()
    assert calls == {"sgd": 1, "adam": 2, "adagrad": 1, "rmsprop": 1}


@pytest.mark.parametrize("name", ["Adam", "AdamW", "Adagrad", "RMSprop", "SGD"])
def test_complex_parameters_step_in_graph_mode_as_the_reference(name):
    """The kernels step a complex parameter as its (..., 2) real view, as the reference."""
    p = torch.tensor([1 + 2j, -0.5 + 0.1j, 0.3 - 1j], dtype=torch.complex128)
    q = p.clone()
    kw = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    for x, graph in ((p, False), (q, True)):
        opt = getattr(hg.optim, name)([x, torch.ones(2, dtype=torch.float64)], lr=0.1, **kw)
        opt.device_scalars(graph)
        for t in range(3):
            x.grad = x * (1 + 2j) * (t + 1)
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


GRAPH_STEP_OPS = [3, 7, 9, 25, 28, 30, 14, 14, 9]  # one per OPTIMIZERS case, as before issue 19


@pytest.mark.parametrize("case, ops", list(zip(OPTIMIZERS, GRAPH_STEP_OPS)), ids=IDS)
def test_a_graph_mode_step_costs_a_fixed_number_of_ops(case, ops):
    """One graph-mode opt.step() over 2 or over 8 parameters: the same ops (one foreach call
    covers the list), as many as before the updates were written once."""
    name, kw = case
    counts = []
    for n in (2, 8):
        g = torch.Generator().manual_seed(0)
        params = [torch.randn(3, generator=g) for _ in range(n)]
        opt = getattr(hg.optim, name)(params, **kw)
        opt.device_scalars(True)
        for _ in range(2):
            for p in params:
                p.grad = torch.randn(3, generator=g)
            opt.step()
        with _Count() as c:
            opt.step()
        counts.append(c.n)
    assert counts == [ops, ops]


@pytest.mark.parametrize("optimizer", ["SGD", "Adam", "RMSprop"])
def test_step_bookkeeping_does_not_grow_with_the_parameters(optimizer):
    """8 more parameters add no op to the update and the guard (per tensor: ~4 each for SGD,
    ~15 for Adam); clip_grad_norm's foreach norm is one op too."""
    few, many = _bookkeeping_ops(2, optimizer), _bookkeeping_ops(6, optimizer)
    assert many - few <= 1, (few, many)
    assert few <= {"SGD": 30, "Adam": 50, "RMSprop": 40}[optimizer], few


def test_step_forward_loss_and_backward_skip_the_work_of_unused_options():
    """Linear-ReLU-Linear with CrossEntropyLoss as the step runs it (capture_safe, .grad there):
    no ignore_index mask, weight or smoothing term in the loss (10 ops forward, 4 backward), and
    each weight's product added into .grad by its GEMM: 26 ops in all (46 before)."""
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
    assert counts == (3, 10, 4, 9), counts


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
