"""fit reduces the loss, honours callbacks, stops on a non-finite loss; evaluate and predict."""

from __future__ import annotations

import math

import pytest
import torch

import handgrad as hg
from handgrad.training import NonFiniteLossError, accuracy, mae, r2


def _spiral_model(seed=0):
    torch.manual_seed(seed)
    return hg.Sequential(hg.Linear(2, 32), hg.ReLU(), hg.Linear(32, 3))


def test_fit_reduces_loss_and_records_history():
    d = hg.datasets.spiral()
    model = _spiral_model()
    opt = hg.optim.Adam(model.parameters(), lr=0.01)
    h = hg.fit(
        model,
        hg.CrossEntropyLoss(),
        opt,
        d,
        val=d,
        epochs=30,
        batch_size=32,
        metrics=["accuracy"],
        progress=False,
        seed=0,
    )
    assert h.epochs == list(range(1, 31))
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["val_accuracy"][-1] > 0.7
    assert '"val_accuracy"' in h.to_json()


def test_fit_matches_a_hand_written_loop():
    d = hg.datasets.parabola()
    a, b = [hg.Sequential(hg.Linear(1, 8), hg.Tanh(), hg.Linear(8, 1)) for _ in range(2)]
    b.load_state_dict(a.state_dict())
    start = [p.clone() for p in a.parameters()]
    hg.fit(
        a,
        hg.MSELoss(),
        hg.optim.SGD(a.parameters(), lr=0.1),
        d,
        epochs=5,
        batch_size=None,
        shuffle=False,
        progress=False,
    )
    loss, opt = hg.MSELoss(), hg.optim.SGD(b.parameters(), lr=0.1)
    for _ in range(5):
        loss(b(d.X), d.y)
        opt.zero_grad()
        b.backward(loss.backward())
        opt.step()
    for p, q, p0 in zip(a.parameters(), b.parameters(), start):
        assert torch.equal(p, q) and not torch.equal(p, p0)  # both moved, by the same steps


def test_early_stopping_stops_and_restores_best():
    d = hg.datasets.spiral()
    model = _spiral_model()
    opt = hg.optim.SGD(model.parameters(), lr=0.0)  # nothing improves after epoch 1
    stop = hg.EarlyStopping(monitor="val_loss", patience=2)
    h = hg.fit(
        model, hg.CrossEntropyLoss(), opt, d, val=d, epochs=20, callbacks=[stop], progress=False
    )
    assert h.epochs == [1, 2, 3, 4] and stop.stopped_epoch == 4


def test_early_stopping_restores_the_best_weights():
    d = hg.datasets.spiral()
    model = _spiral_model()
    opt = hg.optim.SGD(model.parameters(), lr=5.0)  # too large: val loss will get worse
    stop = hg.EarlyStopping(monitor="val_loss", patience=1)
    h = hg.fit(
        model,
        hg.CrossEntropyLoss(),
        opt,
        d,
        val=d,
        epochs=30,
        callbacks=[stop],
        progress=False,
        seed=0,
    )
    best = min(h["val_loss"])
    assert hg.evaluate(model, d, hg.CrossEntropyLoss())["loss"] == pytest.approx(best, rel=1e-5)


def test_non_finite_loss_stops_with_epoch_and_batch(tmp_path):
    X = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    y = X * 1e30
    model = hg.Sequential(hg.Linear(1, 1))
    opt = hg.optim.SGD(model.parameters(), lr=1e10)
    with pytest.raises(NonFiniteLossError, match=r"at epoch \d+, batch \d+"):
        hg.fit(model, hg.MSELoss(), opt, (X, y), epochs=50, batch_size=2, progress=False)
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


class _InfiniteSlope(hg.Module):
    """y = x, but dL/dx = dy·∞: a finite loss with infinite gradients below it."""

    def forward(self, x):
        return x

    def backward(self, dy):
        return dy * float("inf")


@pytest.mark.parametrize("clip", [None, 1.0])
def test_an_infinite_gradient_stops_before_the_step_with_or_without_clipping(clip):
    X, y = torch.randn(8, 3), torch.randn(8, 1)
    model = hg.Sequential(hg.Linear(3, 1), _InfiniteSlope())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = hg.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(
        NonFiniteLossError, match="a gradient became inf or NaN at epoch 1, batch 1"
    ):
        hg.fit(model, hg.MSELoss(), opt, (X, y), epochs=1, clip_grad_norm=clip, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_non_finite_loss_keeps_the_weights_from_before_that_step():
    X = torch.randn(6, 3)
    y = torch.randn(6, 1)
    y[4] = float("inf")  # the third batch of two
    model = hg.Sequential(hg.Linear(3, 1))
    twin = hg.Sequential(hg.Linear(3, 1))
    twin.load_state_dict(model.state_dict())
    opt, twin_opt = (
        hg.optim.SGD(model.parameters(), lr=0.1),
        hg.optim.SGD(twin.parameters(), lr=0.1),
    )
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch 3"):
        hg.fit(
            model, hg.MSELoss(), opt, (X, y), epochs=1, batch_size=2, shuffle=False, progress=False
        )
    loss = hg.MSELoss()
    for i in (0, 2):  # the two good steps, by hand
        twin_opt.zero_grad()
        loss(twin(X[i : i + 2]), y[i : i + 2])
        twin.backward(loss.backward())
        twin_opt.step()
    for k, t in twin.state_dict().items():
        assert torch.equal(model.state_dict()[k], t), k


def test_model_checkpoint_saves_best(tmp_path):
    d = hg.datasets.spiral()
    model = _spiral_model()
    path = tmp_path / "best.safetensors"
    hg.fit(
        model,
        hg.CrossEntropyLoss(),
        hg.optim.Adam(model.parameters(), lr=0.01),
        d,
        val=d,
        epochs=3,
        callbacks=[hg.ModelCheckpoint(path)],
        progress=False,
    )
    assert hg.load(path)(d.X).shape == (300, 3)


def test_labels_outside_the_model_classes():
    d = hg.datasets.spiral(classes=4)
    model = _spiral_model()
    with pytest.raises(ValueError, match=r"labels span \[0, 3\] but the model has 3 outputs"):
        hg.fit(
            model,
            hg.CrossEntropyLoss(),
            hg.optim.SGD(model.parameters(), lr=0.1),
            d,
            epochs=1,
            progress=False,
        )


def test_scheduler_steps_each_epoch():
    model = _spiral_model()
    opt = hg.optim.SGD(model.parameters(), lr=1.0)
    sched = hg.optim.ExponentialLR(opt, 0.5)
    hg.fit(
        model,
        hg.CrossEntropyLoss(),
        opt,
        hg.datasets.spiral(),
        epochs=3,
        scheduler=sched,
        progress=False,
    )
    assert opt.lr == pytest.approx(0.125)


def test_progress_bar_shows_epoch_and_loss(capsys):
    model = _spiral_model()
    hg.fit(
        model,
        hg.CrossEntropyLoss(),
        hg.optim.SGD(model.parameters(), lr=0.1),
        hg.datasets.spiral(),
        epochs=1,
        metrics=["accuracy"],
        progress=True,
    )
    out = capsys.readouterr()
    assert "epoch 1/1" in out.out and "loss" in out.out and "accuracy" in out.out


def test_evaluate_and_predict_restore_mode():
    model = hg.Sequential(hg.Linear(2, 3), hg.Dropout(0.5))
    X = torch.randn(10, 2)
    assert torch.equal(hg.predict(model, X, batch_size=3), hg.predict(model, X))
    assert model.training
    scores = hg.evaluate(
        model, (X, torch.zeros(10, dtype=torch.long)), hg.CrossEntropyLoss(), ["accuracy"]
    )
    assert set(scores) == {"loss", "accuracy"} and model.training


def test_metrics():
    assert accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])) == 0.5
    assert accuracy(torch.tensor([[0.9], [0.2]]), torch.tensor([[1.0], [1.0]])) == 0.5
    assert accuracy(torch.tensor([[2.0], [-1.0], [0.5]]), torch.tensor([1, 0, 0])) == pytest.approx(
        2 / 3
    )  # logits
    scores = torch.zeros(2, 3, 4)
    scores[:, 2] = 1.0  # class 2 everywhere, along dim 1
    assert accuracy(scores, torch.tensor([[2, 2, 0, 2], [2, 2, 2, 2]])) == 7 / 8
    assert accuracy(torch.tensor([0.1, 0.7, 0.2]), torch.tensor(1)) == 1.0  # one example
    assert mae(torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [2.0]])) == 1.0
    assert r2(torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [2.0]])) == 1.0
    assert math.isnan(r2(torch.ones(2, 1), torch.ones(2, 1)))


def test_bad_arguments():
    model = _spiral_model()
    opt = hg.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        hg.fit(model, hg.CrossEntropyLoss(), opt, hg.datasets.spiral(), metrics=["f1"])
    with pytest.raises(TypeError, match="train must be"):
        hg.fit(model, hg.CrossEntropyLoss(), opt, [1, 2, 3])
    with pytest.raises(ValueError, match="epochs"):
        hg.fit(model, hg.CrossEntropyLoss(), opt, hg.datasets.spiral(), epochs=-1)


def _all_pending(*modules):
    return [m.pending() for root in modules for m in root.modules()]


def test_evaluate_predict_summary_and_fit_leave_no_cache_behind(capsys):
    """Forwards that are only looked at run under hg.no_cache(); fit's steps are balanced."""
    torch.manual_seed(0)
    model = hg.Sequential(
        hg.Unflatten(1, (1, 8)),
        hg.Conv1d(1, 3, 3, padding=1),
        hg.BatchNorm1d(3),
        hg.ReLU(),
        hg.Dropout(0.2),
        hg.Flatten(),
        hg.Linear(24, 3),
    )
    X, y = torch.randn(20, 8), torch.randint(0, 3, (20,))
    loss = hg.CrossEntropyLoss()
    hg.evaluate(model.train(), (X, y), loss, metrics=["accuracy"])
    hg.predict(model, X, batch_size=7)
    model.summary((8,))
    assert _all_pending(model, loss) == [0] * len(_all_pending(model, loss))
    model(X)  # a stray forward before fit is dropped by fit
    opt = hg.optim.SGD(model.parameters(), lr=0.1)
    hg.fit(model, loss, opt, (X, y), val=(X, y), epochs=2, batch_size=8, progress=False)
    assert set(_all_pending(model, loss)) == {0}


def test_a_non_finite_loss_leaves_no_cache_behind():
    model = hg.Sequential(hg.Linear(2, 1))
    X, y = torch.randn(8, 2), torch.full((8, 1), float("nan"))
    loss = hg.MSELoss()
    with pytest.raises(NonFiniteLossError):
        hg.fit(model, loss, hg.optim.SGD(model.parameters(), lr=0.1), (X, y), progress=False)
    assert set(_all_pending(model, loss)) == {0}


def test_a_per_batch_schedule_steps_after_every_optimizer_step():
    X, y = torch.randn(40, 3), torch.randn(40, 1)
    model = hg.Sequential(hg.Linear(3, 1))
    opt = hg.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = hg.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=4 * 5)
    assert sched.interval == "batch"
    hg.fit(model, hg.MSELoss(), opt, (X, y), epochs=4, batch_size=8, scheduler=sched,
           shuffle=False, progress=False)  # fmt: skip
    ref_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01, momentum=0.9)
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=0.1, total_steps=20)
    for _ in range(20):
        ref_opt.step()
        ref.step()
    assert sched.last_epoch == ref.last_epoch == 20
    assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]


def test_reduce_on_plateau_steps_on_the_validation_loss():
    X, y = torch.randn(16, 2), torch.randn(16, 1)
    model = hg.Sequential(hg.Linear(2, 1))
    opt = hg.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the val loss never improves
    sched = hg.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    seen = []
    real_step = sched.step

    def step(metrics, *args):
        seen.append(metrics)
        return real_step(metrics, *args)

    sched.step = step
    h = hg.fit(model, hg.MSELoss(), opt, (X, y), val=(X[:8], y[:8]), epochs=4, batch_size=8,
               scheduler=sched, progress=False)  # fmt: skip
    assert seen == h["val_loss"]
    assert sched.interval == "epoch" and sched.needs_metric
