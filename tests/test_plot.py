"""Figures are written whole or not at all."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from handgrad import plot


def test_fit_snapshots_writes_a_png(tmp_path):
    X = torch.linspace(-1, 1, 20).view(-1, 1)
    path = plot.fit_snapshots(X, X**2, [X, X**2], [0, 10], [0.5, 0.01], path=tmp_path / "f.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_failed_save_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.png"
    target.write_bytes(b"old figure")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    fig = Figure()
    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        plot.save_figure(fig, target)
    assert target.read_bytes() == b"old figure"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_mismatched_snapshots_are_refused():
    with pytest.raises(ValueError, match="2 snapshots but 1 epochs"):
        plot.fit_snapshots(torch.zeros(3, 1), torch.zeros(3, 1), [torch.zeros(3)] * 2, [0])


def test_training_curves_decision_boundary_confusion(tmp_path):
    import handgrad as hg

    d = hg.datasets.spiral()
    torch.manual_seed(0)
    model = hg.Sequential(hg.Linear(2, 8), hg.ReLU(), hg.Linear(8, 3))
    h = hg.fit(
        model,
        hg.CrossEntropyLoss(),
        hg.optim.Adam(model.parameters(), lr=0.01),
        d,
        val=d,
        epochs=2,
        metrics=["accuracy"],
        progress=False,
    )
    for path in (
        plot.training_curves(h, tmp_path / "c.png"),
        plot.decision_boundary(model, d.X, d.y, tmp_path / "b.png", resolution=50),
        plot.confusion_matrix_figure(d.y, d.y, 3, tmp_path / "m.png"),
    ):
        assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=r"needs 2-D inputs"):
        plot.decision_boundary(model, torch.zeros(3, 4), torch.zeros(3), tmp_path / "x.png")


def test_confusion_matrix_counts():
    counts = plot.confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2]), 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def _captured(monkeypatch):
    figures = []
    monkeypatch.setattr(plot, "save_figure", lambda fig, path, dpi=100: figures.append(fig))
    return figures


def test_fit_snapshots_draw_the_datas_own_range(monkeypatch):
    figures = _captured(monkeypatch)
    X = torch.linspace(0, 10, 30).view(-1, 1)
    plot.fit_snapshots(X, 50 + X, [40 + X], [5])
    ax = figures[0].axes[0]
    assert ax.get_xlim() == pytest.approx((-0.5, 10.5))
    assert ax.get_ylim() == pytest.approx((40 - 1, 60 + 1))


def test_confusion_matrix_figure_of_many_classes_is_capped(monkeypatch):
    figures = _captured(monkeypatch)
    y = torch.cat([torch.arange(1000), torch.full((50,), 7)])
    plot.confusion_matrix_figure(y, y, labels=[f"c{i}" for i in range(1000)])
    fig = figures[0]
    assert max(fig.get_size_inches()) <= 16
    ax = fig.axes[0]
    assert len(ax.get_xticks()) == plot.MAX_FIGURE_CLASSES
    assert "30 most frequent of 1000 classes (80 of 1050 examples)" in ax.get_title()
    assert "c7" in [t.get_text() for t in ax.get_xticklabels()]


def test_confusion_matrix_refuses_a_huge_label():
    with pytest.raises(ValueError, match="1000000001 classes"):
        plot.confusion_matrix(torch.tensor([0, 10**9]), torch.tensor([0, 0]))
