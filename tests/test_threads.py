"""The thread policy (handgrad.threads): one thread for small steps, every core for large ones,
only while torch's setting is its default, and torch's setting restored after every call."""

from __future__ import annotations

import pytest
import torch

import handgrad as hg
from handgrad import threads
from handgrad.training import Callback, NonFiniteLossError


@pytest.fixture(autouse=True)
def _default_setting(monkeypatch):
    """As a fresh process: torch's starting count, no thread variable, and 4 physical cores
    (so that "all cores" differs from one thread on any machine)."""
    for v in threads._THREAD_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setattr(threads, "_STARTING_THREADS", torch.get_num_threads())
    monkeypatch.setattr(threads, "physical_cores", lambda: 4)
    before = torch.get_num_threads()
    yield
    assert torch.get_num_threads() == before  # every call restores it


class Seen(Callback):
    """Records torch's thread count during training."""

    def __init__(self):
        self.counts = []

    def on_epoch_end(self, epoch, logs, model):
        self.counts.append(torch.get_num_threads())
        return False


def mlp(*sizes):
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [hg.Linear(a, b), hg.ReLU()]
    return hg.Sequential(*layers[:-1])


def _fit_threads(model, X, y, loss, batch_size, **kw):
    seen = Seen()
    opt = hg.optim.SGD(model.parameters(), lr=1e-3)
    hg.fit(model, loss, opt, (X, y), epochs=1, batch_size=batch_size, callbacks=[seen],
           progress=False, **kw)  # fmt: skip
    return seen.counts[0]


def test_the_labs_network_and_the_digits_mlp_run_on_one_thread():
    X, y = torch.randn(100, 1), torch.randn(100, 1)
    assert _fit_threads(mlp(1, 10, 1), X, y, hg.MSELoss(), None) == 1
    X, y = torch.randn(128, 64), torch.randint(0, 10, (128,))
    assert _fit_threads(mlp(64, 128, 10), X, y, hg.CrossEntropyLoss(), 64) == 1


def test_the_large_mlp_gets_every_core():
    model = mlp(784, 1024, 1024, 10)
    X = torch.randn(256, 784)
    assert threads.step_work(model, X) > threads.SMALL_WORK
    assert threads.choose("auto", threads.step_work(model, X)) == 4
    y = torch.randint(0, 10, (256,))
    assert _fit_threads(model, X, y, hg.CrossEntropyLoss(), 256) == 4


def test_step_work_counts_the_products():
    model = mlp(64, 128, 10)
    per_sample = 64 * 128 + 128 + 128 * 10  # two Linear products and the ReLU
    assert threads.step_work(model, torch.randn(32, 64), backward=False) == 32 * per_sample
    assert threads.step_work(model, torch.randn(32, 64)) == 3 * 32 * per_sample
    conv = hg.Conv2d(3, 8, 3, padding=1)
    assert threads.step_work(conv, torch.randn(2, 3, 5, 5), backward=False) == 2 * 8 * 25 * 27
    assert threads.step_work(model, torch.randn(0, 64)) == 0


def test_a_users_choice_is_kept(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        assert threads.choose("auto", 10) is None  # set by call: left alone
        X, y = torch.randn(16, 4), torch.randn(16, 1)
        assert _fit_threads(mlp(4, 1), X, y, hg.MSELoss(), 8) == 3
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.choose("auto", 10) is None  # set by environment: left alone


@pytest.mark.parametrize("given,expected", [(None, None), (3, 3), (1, 1)])
def test_explicit_settings(given, expected):
    assert threads.choose(given, 10**12) == expected
    X, y = torch.randn(16, 4), torch.randn(16, 1)
    got = _fit_threads(mlp(4, 1), X, y, hg.MSELoss(), 8, threads=given)
    assert got == (torch.get_num_threads() if expected is None else expected)


@pytest.mark.parametrize("bad", [0, -1, "many", 1.5, True])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match="threads must be 'auto', a positive int or None"):
        threads.choose(bad, 10)


def test_the_setting_is_restored_when_training_raises():
    before = torch.get_num_threads()
    X, y = torch.randn(8, 2), torch.full((8, 1), float("nan"))
    model = mlp(2, 1)
    with pytest.raises(NonFiniteLossError):
        hg.fit(model, hg.MSELoss(), hg.optim.SGD(model.parameters(), lr=0.1), (X, y),
               threads=2 if before != 2 else 3, progress=False)  # fmt: skip
    assert torch.get_num_threads() == before


def test_evaluate_and_predict_follow_the_policy(monkeypatch):
    counts = []
    model = mlp(4, 3)
    real_forward = model.forward

    def forward(*x):
        counts.append(torch.get_num_threads())
        return real_forward(*x)

    monkeypatch.setattr(model, "forward", forward)
    X = torch.randn(10, 4)
    hg.predict(model, X)
    hg.evaluate(model, (X, torch.randint(0, 3, (10,))), hg.CrossEntropyLoss(), threads=3)
    before = torch.get_num_threads()
    # predict: a one-sample probe of the work, then the run on one thread; evaluate with an
    # explicit count: no probe at all
    assert counts == [before, 1, 3]


def test_the_command_line_takes_threads(monkeypatch, capsys):
    from handgrad.tools import lab
    from handgrad.tools.cli import main

    seen = []
    task = lab.TASKS["1.1"]
    monkeypatch.setitem(lab.TASKS, "1.1", lambda: seen.append(torch.get_num_threads()) or task())
    for flag, expected in [("auto", 1), ("3", 3), ("torch", torch.get_num_threads())]:
        assert main(["lab", "--task", "1.1", "--threads", flag]) == 0
        assert seen[-1] == expected
    assert main(["lab", "--task", "1.1"]) == 0 and seen[-1] == 1  # auto by default
    with pytest.raises(SystemExit):
        main(["train", "--threads", "none"])
    assert "expected auto, torch or a positive number" in capsys.readouterr().err
