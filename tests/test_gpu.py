"""The GPU test subset: fit(cuda_graph=True) and bf16 on CUDA. Every test skips without CUDA.

benchmarks/gpu.py runs these first (with pytest, or with its own small runner where pytest is
not installed: keep to plain asserts, pytest.mark.skipif and pytest.raises(..., match=))."""

from __future__ import annotations

import pytest
import torch

import handgrad as hg
from handgrad.data.loader import DataLoader
from handgrad.errors import ShapeError
from handgrad.training.graph import GraphStep, Step

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs CUDA")


def _data(shape, n, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn((n, *shape), generator=g)
    return X.cuda(), torch.randint(0, classes, (n,), generator=g).cuda()


def _mlp():
    return hg.Sequential(hg.Linear(6, 32), hg.ReLU(), hg.Linear(32, 3)).to("cuda")


def _cnn():
    return hg.Sequential(
        hg.Conv2d(1, 4, 3, padding=1), hg.ReLU(), hg.MaxPool2d(2), hg.Flatten(), hg.Linear(16, 3)
    ).to("cuda")


def _gru():
    return hg.RecurrentClassifier("gru", 1, 8, 5, 3).to("cuda")


def _fit(make, shape, cuda_graph, precision="float32", n=72, epochs=2, sched=True):
    torch.manual_seed(0)
    model = make()
    opt = hg.optim.AdamW(model.parameters(), lr=0.01)
    schedule = hg.optim.OneCycleLR(opt, max_lr=0.02, total_steps=epochs * ((n + 15) // 16))
    X, y = _data(shape, n)
    h = hg.fit(
        model,
        hg.CrossEntropyLoss(),
        opt,
        DataLoader(X, y, batch_size=16, shuffle=True, seed=0),
        epochs=epochs,
        progress=False,
        clip_grad_norm=1.0,
        cuda_graph=cuda_graph,
        precision=precision,
        scheduler=schedule if sched else None,
    )
    return model, h, opt


@needs_cuda
def test_graph_fit_equals_eager_fit_mlp_cnn_gru():
    """Warm-up, capture, replay (with a per-batch schedule, clipping, a last batch of 8 run
    eagerly): the eager step's numbers to float rounding."""
    for make, shape in ((_mlp, (6,)), (_cnn, (1, 4, 4)), (_gru, (5, 1))):
        m0, h0, _ = _fit(make, shape, cuda_graph=False)
        m1, h1, opt = _fit(make, shape, cuda_graph=True)
        for a, b in zip(m0.parameters(), m1.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        for a, b in zip(h0["loss"], h1["loss"]):
            assert abs(a - b) < 1e-4 * max(1.0, abs(a))
        assert not opt._device_scalars  # the optimizer is back to host numbers


@needs_cuda
def test_replays_follow_the_schedule():
    """The lr is a device tensor refreshed before each replay: a schedule that changes it
    changes the step."""
    torch.manual_seed(0)
    model = _mlp()
    opt = hg.optim.SGD(model.parameters(), lr=0.1)
    step = Step(model, hg.CrossEntropyLoss(), opt)
    graph = GraphStep(step, warmup=1)
    X, y = _data((6,), 16)
    graph(X, y, False)
    graph(X, y, False)  # captured and replayed
    before = [p.clone() for p in model.parameters()]
    opt.param_groups[0]["lr"] = 0.0
    graph(X, y, False)
    for a, b in zip(model.parameters(), before):
        assert torch.equal(a, b)
    opt.param_groups[0]["lr"] = 0.1
    graph(X, y, False)
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), before))
    step.close()


@needs_cuda
def test_graph_masks_a_non_finite_step():
    torch.manual_seed(0)
    model = _mlp()
    opt = hg.optim.Adam(model.parameters(), lr=0.01)
    step = Step(model, hg.CrossEntropyLoss(), opt)
    graph = GraphStep(step, warmup=1)
    X, y = _data((6,), 16)
    graph(X, y, False)
    graph(X, y, False)
    kept = [p.clone() for p in model.parameters()]
    bad = X.clone()
    bad[3, 1] = float("nan")
    graph(bad, y, False)
    graph(X, y, False)
    assert step.read()[1] == 3
    for a, b in zip(model.parameters(), kept):
        assert torch.equal(a, b)
    step.close()


@needs_cuda
def test_batch_shape_change_mid_epoch_is_refused():
    model = _mlp()
    step = Step(model, hg.CrossEntropyLoss(), hg.optim.SGD(model.parameters(), lr=0.1))
    graph = GraphStep(step, warmup=1)
    X, y = _data((6,), 16)
    graph(X, y, False)
    with pytest.raises(ShapeError, match="cuda_graph=True needs one batch shape"):
        graph(X[:8], y[:8], False)
    graph(X[:8], y[:8], True)  # a last, smaller batch runs eagerly
    step.close()


@needs_cuda
def test_eager_device_step_never_syncs():
    """torch's own sync detector, on CUDA: the device step (no graph) makes no sync."""
    torch.manual_seed(0)
    for make, shape in ((_mlp, (6,)), (_cnn, (1, 4, 4)), (_gru, (5, 1))):
        model = make()
        opt = hg.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
        step = Step(model, hg.CrossEntropyLoss(), opt, clip=1.0, precision="bf16")
        X, y = _data(shape, 16)
        step(X, y)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(3):
                step(X, y)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        step.close()


@needs_cuda
def test_bf16_graph_follows_float32():
    for make, shape in ((_mlp, (6,)), (_cnn, (1, 4, 4))):
        m0, h0, _ = _fit(make, shape, cuda_graph=False, epochs=3)
        m1, h1, _ = _fit(make, shape, cuda_graph=True, precision="bf16", epochs=3)
        for a, b in zip(h0["loss"], h1["loss"]):
            assert abs(a - b) < 0.03
        for a, b in zip(m0.parameters(), m1.parameters()):
            assert b.dtype == torch.float32
            torch.testing.assert_close(a, b, rtol=0, atol=0.05)


@needs_cuda
def test_model_and_data_on_different_devices():
    from handgrad.errors import InputError

    model = _mlp()
    X, y = _data((6,), 16)
    opt = hg.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(InputError, match="the model is on cuda:0 but the data is on cpu"):
        hg.fit(model, hg.CrossEntropyLoss(), opt, (X.cpu(), y.cpu()), cuda_graph=True)


@needs_cuda
@pytest.mark.parametrize("mode", [None, "reduce-overhead"])
def test_compiled_step_on_cuda_equals_the_eager_one(mode):
    """hg.compile_step on CUDA (Triton kernels; with "reduce-overhead", CUDA graphs too):
    three float32 steps equal three eager ones."""
    import copy

    from handgrad.training.step import HostGuard, train_step

    torch.manual_seed(0)
    model = _mlp()
    twin = copy.deepcopy(model)
    X, y = _data((6,), 32)
    loss = hg.CrossEntropyLoss()
    opt, opt2 = (
        hg.optim.Adam(model.parameters(), lr=0.01),
        hg.optim.Adam(twin.parameters(), lr=0.01),
    )
    guard = HostGuard(model.parameters(), "test", "")
    step = hg.compile_step(twin, loss, opt2, mode=mode)
    for _ in range(3):
        train_step(model, loss, opt, X, y, guard)
        step(X, y)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@needs_cuda
def test_fit_compile_with_cuda_graph_and_bf16_trains():
    """compile=True with cuda_graph=True (mode "reduce-overhead") and precision="bf16": the
    loss falls, the weights stay float32."""
    torch.manual_seed(0)
    model = _mlp()
    X, y = _data((6,), 128)
    opt = hg.optim.Adam(model.parameters(), lr=0.01)
    h = hg.fit(
        model,
        hg.CrossEntropyLoss(),
        opt,
        (X, y),
        epochs=4,
        batch_size=32,
        progress=False,
        compile=True,
        cuda_graph=True,
        precision="bf16",
    )
    assert h["loss"][-1] < h["loss"][0]
    assert all(p.dtype == torch.float32 for p in model.parameters())
