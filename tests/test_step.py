"""handgrad.training.step: the one training step that fit, `handgrad train --arch gpt` and
fit's device step (training/graph.py's Step) call, and its two guards: on the host it raises
before the update, on the device it masks the update. An inf or NaN never reaches the weights."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import handgrad as hg
from handgrad.optim import clip as clip_module
from handgrad.tools import text_recipe
from handgrad.tools.cli import main
from handgrad.training import graph, loop
from handgrad.training import step as step_module
from handgrad.training.graph import Step
from handgrad.training.step import HostGuard, NonFiniteLossError, train_step

TEXT = "the quick brown fox jumps over the lazy dog. " * 40  # 28 distinct characters
SRC = Path(__file__).resolve().parents[1] / "src" / "handgrad"


def _gpt_args(tmp_path, steps=6, clip=None):
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    args = ["train", "--arch", "gpt", "--data", str(tmp_path / "t.txt"), "--layers", "1"]
    args += ["--heads", "1", "--width", "8", "--context", "8", "--batch-size", "4"]
    args += ["--steps", str(steps), "--eval-every", "3", "--lr", "0.01", "--quiet"]
    args += [] if clip is None else ["--clip-grad-norm", str(clip)]
    return [*args, "--out", str(tmp_path / "run")]


class _Spoil:
    """Patches GPT: at the k-th training step, keep the weights (those the bad step must not
    change) and make its loss NaN (`where="loss"`) or one gradient element inf."""

    def __init__(self, monkeypatch, k, where):
        self.k, self.where, self.calls = k, where, 0
        self.model, self.before = None, None
        forward, backward = hg.GPT.forward, hg.GPT.backward

        def spoiled_forward(model, idx):
            out = forward(model, idx)
            if not model.training:  # an evaluation or a work count, not a step
                return out
            self.calls += 1
            if self.calls == self.k:
                self.model = model
                self.before = {n: t.clone() for n, t in model.state_dict().items()}
                if where == "loss":
                    out = out * float("nan")
            return out

        def spoiled_backward(model, dlogits):
            backward(model, dlogits)
            if self.calls == self.k and where == "gradient":
                model.parameters()[0].grad.view(-1)[0] = float("inf")

        monkeypatch.setattr(hg.GPT, "forward", spoiled_forward)
        monkeypatch.setattr(hg.GPT, "backward", spoiled_backward)


# ---- the goal: `handgrad train --arch gpt` with an inf gradient --------------------------------
@pytest.mark.parametrize("clip", [None, 1.0], ids=["no-clip", "clip"])
@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("gradient", "train: a gradient became inf or NaN at step 3; the model keeps its weights"),
        ("loss", "train: the loss became nan at step 3; the model keeps its weights"),
    ],
    ids=["inf-gradient", "nan-loss"],
)
def test_gpt_run_stops_before_a_non_finite_step_with_its_weights(
    tmp_path, capsys, monkeypatch, where, message, clip
):
    spoil = _Spoil(monkeypatch, 3, where)
    assert main(_gpt_args(tmp_path, clip=clip)) == 1
    assert spoil.calls == 3  # it stopped at the bad step
    after = spoil.model.state_dict()
    for name, t in spoil.before.items():
        assert torch.equal(after[name], t), name  # the weights from before the bad step
    assert all(bool(torch.isfinite(t).all()) for t in after.values())
    err = capsys.readouterr().err
    assert err.startswith(f"handgrad train: error: {message}"), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_gpt_run_without_a_bad_step_trains(tmp_path, monkeypatch):
    spoil = _Spoil(monkeypatch, 99, "gradient")  # never reached: it only records the steps
    assert main(_gpt_args(tmp_path, steps=4)) == 0
    assert spoil.calls == 4 and (tmp_path / "run" / "model.safetensors").exists()


# ---- one function, called by all three ---------------------------------------------------------
def test_fit_the_gpt_recipe_and_the_device_step_call_the_one_step(tmp_path, monkeypatch):
    guards: list[str] = []

    def spy(*args, **kwargs):
        guards.append(type(args[5]).__name__)
        return train_step(*args, **kwargs)

    for module in (loop, graph, text_recipe):
        monkeypatch.setattr(module, "train_step", spy)
    X, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    for precision in ("float32", "bf16"):
        model = hg.Sequential(hg.Linear(4, 3))
        opt = hg.optim.SGD(model.parameters(), lr=0.1)
        hg.fit(model, hg.CrossEntropyLoss(), opt, (X, y), epochs=1, batch_size=8,
               progress=False, precision=precision)  # fmt: skip
    assert main(_gpt_args(tmp_path, steps=2)) == 0
    assert guards == ["HostGuard"] * 2 + ["Step"] * 2 + ["HostGuard"] * 2


CALLERS = ["training/loop.py", "training/graph.py", "tools/text_recipe.py"]
STEP_CALLS = {"backward", "backward_params", "zero_grad", "clip_grad_norm"}


@pytest.mark.parametrize("path", CALLERS)
def test_no_caller_keeps_a_copy_of_the_step(path):
    """The callers run no backward, zero_grad or clipping of their own: train_step does."""
    tree = ast.parse((SRC / path).read_text())
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            called.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    assert "train_step" in called and not called & STEP_CALLS, sorted(called & STEP_CALLS)


# ---- train_step itself -------------------------------------------------------------------------
def test_train_step_is_the_hand_written_step():
    torch.manual_seed(0)
    a = hg.Sequential(hg.Linear(3, 5), hg.Tanh(), hg.Linear(5, 2))
    b = hg.Sequential(hg.Linear(3, 5), hg.Tanh(), hg.Linear(5, 2))
    b.load_state_dict(a.state_dict())
    X, y = torch.randn(8, 3), torch.randn(8, 2)
    loss_a, loss_b = hg.MSELoss(), hg.MSELoss()
    opt_a = hg.optim.Adam(a.parameters(), lr=0.01)
    opt_b = hg.optim.Adam(b.parameters(), lr=0.01)
    guard = HostGuard(a.parameters(), "test", "")
    for _ in range(3):
        out, value = train_step(a, loss_a, opt_a, X, y, guard, clip=0.5)
        want = loss_b(b(X), y)
        opt_b.zero_grad()
        b.backward(loss_b.backward())
        hg.clip_grad_norm(b.parameters(), 0.5)
        opt_b.step()
        assert guard.value == float(want) and torch.equal(value, want)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_classes_last_is_the_gpt_recipe_step():
    """(N, T, V) logits against (N, T) ids: one row per position, the gradient reshaped back."""
    torch.manual_seed(0)
    a, b = hg.GPT(7, 6, 1, 2, 8, 0.0), hg.GPT(7, 6, 1, 2, 8, 0.0)
    b.load_state_dict(a.state_dict())
    x, y = torch.randint(0, 7, (3, 6)), torch.randint(0, 7, (3, 6))
    loss_a, loss_b = hg.CrossEntropyLoss(), hg.CrossEntropyLoss()
    opt_a = hg.optim.AdamW(a.parameters(), lr=0.01)
    opt_b = hg.optim.AdamW(b.parameters(), lr=0.01)
    guard = HostGuard(a.parameters(), "test", "")
    for _ in range(2):
        out, _ = train_step(a, loss_a, opt_a, x, y, guard, classes_last=True)
        logits = b(x)  # (3, 6, 7)
        loss_b(logits.reshape(-1, 7), y.reshape(-1))
        opt_b.zero_grad()
        b.backward(loss_b.backward().reshape(logits.shape))
        opt_b.step()
        assert out.shape == (3, 6, 7)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


class _InfiniteSlope(hg.Module):
    """y = x, but dL/dx = dy·∞: a finite loss with infinite gradients below it."""

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy * float("inf")


def _guarded(kind, model, opt, clip):
    if kind == "host":
        guard = HostGuard(model.parameters(), "test", "a hint")
        guard.where = "batch 2"
        return guard
    return Step(model, hg.MSELoss(), opt, clip=clip)


@pytest.mark.parametrize("clip", [None, 1.0], ids=["no-clip", "clip"])
@pytest.mark.parametrize("kind", ["host", "device"])
def test_both_guards_keep_an_infinite_gradient_out_of_the_weights(kind, clip):
    """The host guard raises before the update; the device guard masks it and tells read()."""
    torch.manual_seed(0)
    model = hg.Sequential(hg.Linear(3, 2), hg.Linear(2, 1))
    opt = hg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    X, y = torch.randn(8, 3), torch.randn(8, 1)
    guard = _guarded(kind, model, opt, clip)
    loss = guard.loss if isinstance(guard, Step) else hg.MSELoss()
    train_step(model, loss, opt, X, y, guard, clip=clip)  # a good step first
    kept = [p.clone() for p in model.parameters()]
    bad = hg.Sequential(*model, _InfiniteSlope())  # the same parameters, an inf below them
    if isinstance(guard, HostGuard):
        with pytest.raises(NonFiniteLossError, match="^test: a gradient became inf or NaN at "
                           "batch 2; the model keeps its weights from before this step "
                           r"\(a hint\)$"):  # fmt: skip
            train_step(bad, loss, opt, X, y, guard, clip=clip)
    else:
        guard.model = bad
        guard(X, y)
        assert guard.read()[1] == 2
        guard.close()
    for p, q in zip(model.parameters(), kept):
        assert torch.equal(p, q)


@pytest.mark.parametrize("clip", [None, 1.0], ids=["no-clip", "clip"])
def test_one_norm_a_step(monkeypatch, clip):
    """With clipping, clip_grad_norm's norm is the check; without, the guard's max|g|."""
    norms = []
    for module in (clip_module, step_module):
        real = module.total_norm
        monkeypatch.setattr(
            module, "total_norm", lambda *a, _f=real, **k: (norms.append(1), _f(*a, **k))[1]
        )
    model = hg.Sequential(hg.Linear(3, 1))
    opt = hg.optim.SGD(model.parameters(), lr=0.1)
    guard = HostGuard(model.parameters(), "test", "")
    train_step(model, hg.MSELoss(), opt, torch.randn(4, 3), torch.randn(4, 1), guard, clip=clip)
    assert len(norms) == 1
