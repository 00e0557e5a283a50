"""hg.compile_step, fit(compile=True) and --compile: the one training step through torch.compile.

Each architecture's compiled steps equal the eager step (train_step with the host guard) in
float64 and float32, in one graph (fullgraph, counted); the guard masks an inf/NaN step and
raises at the end; a schedule and the last, smaller batch do not recompile. Most tests compile
with the "aot_eager" backend, which traces and functionalizes the step as Inductor's input
is made, in a second instead of Inductor's C++ build; the Inductor tests run the real
compiler on the MLP (the GPT and the rest compile with it in `handgrad bench --compiled`).
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

import handgrad as hg
from handgrad.errors import ArgumentTypeError, InputError, NotSupportedError, UsageError
from handgrad.tools.cli import main
from handgrad.training import compiled
from handgrad.training.step import HostGuard, NonFiniteLossError, train_step


class Counting:
    """A torch.compile backend: aot_eager, counting the graphs it is given."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm: torch.fx.GraphModule, inputs: list) -> object:
        self.graphs += 1
        return torch._dynamo.lookup_backend("aot_eager")(gm, inputs)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def tiny(arch: str, dtype: torch.dtype) -> tuple[hg.Module, torch.Tensor, torch.Tensor, bool]:
    """(model, x, y, classes_last) of a tiny model of each architecture."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if arch == "mlp":
        model = hg.Sequential(
            hg.Linear(8, 16), hg.GELU(), hg.LayerNorm(16), hg.ReLU(), hg.Linear(16, 3)
        )
        x, y = torch.randn(32, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
    elif arch == "cnn":  # the MNIST-1D CNN's layers, small
        model = hg.Sequential(
            hg.Conv1d(1, 4, 5, stride=2, padding=1),
            hg.BatchNorm1d(4),
            hg.ReLU(),
            hg.Conv1d(4, 4, 3, padding=1),  # stride 1: col2im as shifted adds when compiled
            hg.MaxPool1d(2),
            hg.Flatten(),
            hg.Linear(4 * 9, 10),
        )
        x, y = torch.randn(16, 1, 40, generator=g), torch.randint(0, 10, (16,), generator=g)
    elif arch in ("gru", "lstm"):
        model = hg.RecurrentClassifier(arch, 3, 6, 5, 4, bidirectional=True)
        x, y = torch.randn(8, 5, 3, generator=g), torch.randint(0, 4, (8,), generator=g)
    else:
        model = hg.GPT(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16)
        x, y = torch.randint(0, 11, (4, 8), generator=g), torch.randint(0, 11, (4, 8), generator=g)
    model.to(dtype=dtype)
    return model, (x.to(dtype) if x.is_floating_point() else x), y, arch == "gpt"


OPTIMIZERS = {
    "mlp": lambda p: hg.optim.AdamW(p, lr=0.01, amsgrad=True),
    "cnn": lambda p: hg.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "gru": lambda p: hg.optim.RMSprop(p, lr=0.01, momentum=0.5),
    "lstm": lambda p: hg.optim.Adagrad(p, lr=0.1),
    # not Adam: dL/d(key bias) is 0 but for rounding, which Adam's g/√v blows up to ±lr
    "gpt": lambda p: hg.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
}


def eager_and_compiled(arch, dtype, steps, backend, clip=1.0):
    """The weights after `steps` eager steps and after `steps` compiled ones, and the losses."""
    model, x, y, classes_last = tiny(arch, dtype)
    twin = copy.deepcopy(model)
    loss = hg.CrossEntropyLoss()
    opt, opt2 = OPTIMIZERS[arch](model.parameters()), OPTIMIZERS[arch](twin.parameters())
    guard = HostGuard(model.parameters(), "test", "")
    eager = []
    for _ in range(steps):
        train_step(model, loss, opt, x, y, guard, clip=clip, classes_last=classes_last)
        eager.append(guard.value)
    step = hg.compile_step(
        twin, loss, opt2, classes_last=classes_last, clip_grad_norm=clip, backend=backend
    )
    losses = [float(step(x, y)) for _ in range(steps)]
    step.close()
    return model, twin, eager, losses, step


def assert_same(model, twin, rtol, atol=0.0):
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("arch", ["mlp", "cnn", "gru", "lstm", "gpt"])
def test_ten_compiled_steps_equal_ten_eager_ones_in_float64_in_one_graph(arch):
    counting = Counting()
    model, twin, eager, losses, step = eager_and_compiled(arch, torch.float64, 10, counting)
    assert counting.graphs == 1  # fullgraph: one graph, compiled once for the 9 compiled steps
    assert_same(model, twin, rtol=1e-9, atol=1e-12)
    assert losses == pytest.approx(eager, rel=1e-9)
    assert step.compile_seconds is not None and step.compile_seconds > 0


@pytest.mark.parametrize("arch", ["cnn", "gpt"])
def test_three_compiled_steps_equal_three_eager_ones_in_float32(arch):
    model, twin, *_ = eager_and_compiled(arch, torch.float32, 3, "aot_eager")
    assert_same(model, twin, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "dtype, steps, rtol", [(torch.float64, 10, 1e-9), (torch.float32, 3, 1e-4)]
)
@pytest.mark.skipif(compiled._cxx() is None, reason="Inductor on the CPU needs a C++ compiler")
def test_inductor_steps_equal_eager_ones(dtype, steps, rtol):
    """The real compiler: C++ code that Inductor generates for this machine's CPU."""
    model, twin, eager, losses, _ = eager_and_compiled("mlp", dtype, steps, "inductor")
    assert_same(model, twin, rtol=rtol, atol=rtol * 1e-3)
    assert losses == pytest.approx(eager, rel=rtol)


def test_a_schedule_and_fits_last_smaller_batch_do_not_recompile():
    """fit with a per-batch schedule, 100 examples in batches of 32 (the last has 4): the
    same losses as eager fit, one graph, and the compile time printed once."""
    torch.set_default_dtype(torch.float64)
    try:
        model, *_ = tiny("mlp", torch.float64)
        X, y = torch.randn(100, 8), torch.randint(0, 3, (100,))
    finally:
        torch.set_default_dtype(torch.float32)
    twin = copy.deepcopy(model)
    histories = []
    counting = Counting()
    for m, compile in ((model, False), (twin, True)):
        opt = hg.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        sched = hg.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=12)
        old = compiled.BACKEND
        compiled.BACKEND = counting
        try:
            h = hg.fit(
                m,
                hg.CrossEntropyLoss(),
                opt,
                (X, y),
                epochs=3,
                batch_size=32,
                scheduler=sched,
                progress=False,
                compile=compile,
                seed=0,
            )
        finally:
            compiled.BACKEND = old
        histories.append(h["loss"])
    assert counting.graphs == 1
    assert histories[1] == pytest.approx(histories[0], rel=1e-9)
    assert_same(model, twin, rtol=1e-9, atol=1e-12)


def test_another_batch_size_recompiles_once_with_a_dynamic_batch():
    counting = Counting()
    model, x, y, _ = tiny("mlp", torch.float32)
    step = hg.compile_step(
        model, hg.CrossEntropyLoss(), hg.optim.SGD(model.parameters(), 0.1), backend=counting
    )
    for n in (32, 32, 20, 12, 7, 32):
        step(x[:n], y[:n])
    assert counting.graphs == 2  # the first shape, then one graph for every batch size


def test_an_inf_step_is_masked_and_raises_at_the_end_naming_it():
    model, x, y, _ = tiny("mlp", torch.float32)
    step = hg.compile_step(
        model, hg.CrossEntropyLoss(), hg.optim.Adam(model.parameters()), backend="aot_eager"
    )
    step(x, y), step(x, y)
    before = copy.deepcopy(model.state_dict())
    bad = x.clone()
    bad[0, 0] = math.inf
    assert math.isnan(float(step(bad, y)))  # the loss it saw
    step(x, y)  # the rest of the epoch is masked too
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(NonFiniteLossError, match="at step 3; the model keeps its weights"):
        step.finish_epoch()


def test_fit_compile_stops_on_nan_with_the_weights_from_before():
    model, x, y, _ = tiny("mlp", torch.float32)
    X = torch.cat([x, x])
    X[40, 0] = math.nan  # batch 2 of 4 (batch size 16, no shuffle)
    before = copy.deepcopy(model.state_dict())
    opt = hg.optim.SGD(model.parameters(), lr=0.1)
    old = compiled.BACKEND
    compiled.BACKEND = "aot_eager"
    try:
        with pytest.raises(NonFiniteLossError, match="epoch 1, batch 3"):
            hg.fit(
                model,
                hg.CrossEntropyLoss(),
                opt,
                (X, torch.cat([y, y])),
                epochs=1,
                batch_size=16,
                shuffle=False,
                progress=False,
                compile=True,
            )
    finally:
        compiled.BACKEND = old
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed  # batches 1 and 2 stepped; 3 and 4 did not
    assert not opt._device_scalars  # the optimizer is back to host numbers


def test_compile_step_refuses_bad_arguments_in_one_line(monkeypatch):
    model, *_ = tiny("mlp", torch.float32)
    opt = hg.optim.SGD(model.parameters(), lr=0.1)
    loss = hg.CrossEntropyLoss()
    with pytest.raises(InputError, match="precision must be"):
        hg.compile_step(model, loss, opt, precision="fp8")
    with pytest.raises(InputError, match="mode must be one of"):
        hg.compile_step(model, loss, opt, mode="fastest")
    with pytest.raises(InputError, match="clip_grad_norm must be a number > 0"):
        hg.compile_step(model, loss, opt, clip_grad_norm=0)
    with pytest.raises(ArgumentTypeError, match="hg.compile_step: optimizer is torch.optim"):
        hg.compile_step(model, loss, torch.optim.SGD([torch.zeros(1)], lr=0.1))
    with pytest.raises(ArgumentTypeError, match="fit: compile must be True or False"):
        hg.fit(model, loss, opt, (torch.randn(4, 8), torch.zeros(4).long()), compile="yes")
    with pytest.raises(NotSupportedError, match="compile=True with distributed=True"):
        hg.fit(
            model,
            loss,
            opt,
            (torch.randn(4, 8), torch.zeros(4).long()),
            compile=True,
            distributed=True,
        )
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    with pytest.raises(UsageError, match="needs a C\\+\\+ compiler.*none was found") as e:
        hg.compile_step(model, loss, opt)
    assert "\n" not in str(e.value)


def test_a_step_that_cannot_compile_is_one_line():
    """A module whose forward reads a value on the host breaks the graph: refused, named."""

    class HostRead(hg.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x  # a branch on a value: no graph can hold it

        def backward(self, dy):
            return dy

    model = hg.Sequential(hg.Linear(4, 2), HostRead())
    step = hg.compile_step(
        model, hg.MSELoss(), hg.optim.SGD(model.parameters(), lr=0.1), backend="aot_eager"
    )
    x, y = torch.randn(8, 4), torch.randn(8, 2)
    step(x, y)  # the eager first step
    with pytest.raises(UsageError, match="torch.compile could not compile the training step"):
        step(x, y)


def test_train_compile_gpt_logs_the_eager_runs_losses(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(compiled, "BACKEND", "aot_eager")
    common = [
        "train",
        "--arch",
        "gpt",
        "--steps",
        "6",
        "--eval-every",
        "3",
        "--context",
        "8",
        "--width",
        "16",
        "--layers",
        "1",
        "--heads",
        "2",
        "--batch-size",
        "4",
        "--quiet",
    ]
    assert main([*common, "--out", str(tmp_path / "eager")]) == 0
    assert main([*common, "--compile", "--out", str(tmp_path / "compiled")]) == 0
    a = json.loads((tmp_path / "eager" / "history.json").read_text())
    b = json.loads((tmp_path / "compiled" / "history.json").read_text())
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)


def test_train_compile_with_distributed_is_one_line(tmp_path, capsys):
    assert main(["train", "--compile", "--distributed", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "--compile does not apply with --distributed" in err and "Traceback" not in err


def test_the_first_step_is_eager_and_checks_what_the_compiled_ones_cannot():
    """Labels beyond the outputs, and a saved tensor changed in place after it was saved,
    are refused at the first step, which runs eagerly."""
    model = hg.Sequential(hg.Linear(4, 3))
    step = hg.compile_step(
        model, hg.CrossEntropyLoss(), hg.optim.SGD(model.parameters(), 0.1), backend="aot_eager"
    )
    with pytest.raises(InputError):
        step(torch.randn(8, 4), torch.full((8,), 5))
    model = hg.Sequential(hg.Linear(4, 3), hg.Sigmoid(), hg.ReLU(inplace=True))
    step = hg.compile_step(
        model, hg.MSELoss(), hg.optim.SGD(model.parameters(), 0.1), backend="aot_eager"
    )
    with pytest.raises(UsageError, match="changed in place"):
        step(torch.randn(8, 4), torch.randn(8, 3))


def test_auto_runs_what_compiled_faster_inside_a_compiled_step(monkeypatch):
    """hg.mode.COMPILED_AUTO: a Conv2d's "auto" is im2col eagerly and, in a compiled step,
    what the table names."""
    model = hg.Sequential(hg.Conv2d(2, 3, 3), hg.Flatten(), hg.Linear(12, 2))
    step = hg.compile_step(
        model, hg.CrossEntropyLoss(), hg.optim.SGD(model.parameters(), 0.1), backend="aot_eager"
    )
    x, y = torch.randn(4, 2, 4, 4), torch.randint(0, 2, (4,))
    step(x, y)
    assert model[0].last_algorithm == "im2col"  # the eager first step
    step(x, y)
    assert model[0].last_algorithm == hg.mode.COMPILED_AUTO["Conv"]
    assert not hg.mode.compiling()


def test_a_python_that_torch_cannot_compile_on_is_one_line(monkeypatch):
    import torch._dynamo.eval_frame as ef

    monkeypatch.setattr(ef, "is_dynamo_supported", lambda: False)
    model = hg.Sequential(hg.Linear(4, 3))
    with pytest.raises(UsageError, match="cannot compile on Python .*train without compiling"):
        hg.compile_step(model, hg.MSELoss(), hg.optim.SGD(model.parameters(), 0.1))


def test_a_process_compiles_any_number_of_different_models():
    """torch.compile keeps at most 8 graphs per code object; each CompiledStep has its own."""
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    for depth in range(10):
        model = hg.Sequential(*[hg.Linear(8, 8) for _ in range(depth)], hg.Linear(8, 3))
        step = hg.compile_step(
            model, hg.CrossEntropyLoss(), hg.optim.SGD(model.parameters(), lr=0.1), backend="eager"
        )
        step(x, y), step(x, y)
        assert step.compile_seconds is not None
