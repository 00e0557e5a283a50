"""Each dataset's shapes and dtypes; IDX and CSV readers on files made here."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from handgrad.data import datasets


def test_regression_is_the_labs():
    d = datasets.regression()
    assert d.X.shape == (100, 4) and d.y.shape == (100, 1) and d.X.dtype == torch.float32
    assert d.task == "regression" and d.out_features == 1


def test_parabola_is_the_labs_4_4_data():
    d = datasets.parabola()
    torch.manual_seed(0)
    X = torch.linspace(-1, 1, 100).view(-1, 1)
    assert torch.equal(d.y, X.pow(2) + 0.2 * torch.rand(X.size()))


def test_spiral():
    d = datasets.spiral(n_per_class=50, classes=4)
    assert d.X.shape == (200, 2) and d.y.dtype == torch.int64
    assert torch.bincount(d.y).tolist() == [50] * 4 and d.num_classes == 4
    with pytest.raises(ValueError, match="classes >= 2"):
        datasets.spiral(classes=1)


def test_digits_fixed_stratified_split():
    d = datasets.digits()
    assert d.X.shape == (1437, 64) and d.X_test.shape == (360, 64)
    assert 0 <= float(d.X.min()) and float(d.X.max()) <= 1
    assert torch.equal(d.X_test, datasets.digits().X_test)
    counts = torch.bincount(d.y_test)
    assert counts.min() >= 35 and counts.max() <= 37
    assert datasets.digits(image=True).X.shape == (1437, 1, 8, 8)


def test_mnist1d_offline_split():
    d = datasets.mnist1d()
    assert d.X.shape == (4000, 40) and d.X_test.shape == (1000, 40)
    assert d.y.dtype == torch.int64 and set(d.y.unique().tolist()) == set(range(10))
    assert datasets.mnist1d(image=True).X.shape == (4000, 1, 40)


def test_unpacking_and_split():
    X, y = datasets.parabola()
    assert X.shape == (100, 1)
    s = datasets.spiral().split(0.25, seed=1)
    assert s.X.shape[0] == 225 and s.X_test.shape[0] == 75


def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx(tmp_path, gz):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    for name, arr in (("img", images), ("lab", labels)):
        data = _idx_bytes(arr, 0x08)
        (tmp_path / name).write_bytes(gzip.compress(data) if gz else data)
    assert torch.equal(datasets.load_idx(tmp_path / "img"), torch.from_numpy(images))
    d = datasets.idx_dataset(tmp_path / "img", tmp_path / "lab", image=True)
    assert d.X.shape == (5, 1, 28, 28) and d.y.tolist() == [3, 1, 4, 1, 5]
    floats = np.arange(6, dtype=np.float32).reshape(2, 3)
    (tmp_path / "f").write_bytes(_idx_bytes(floats, 0x0D))
    assert torch.equal(datasets.load_idx(tmp_path / "f"), torch.from_numpy(floats))


def test_load_idx_bad_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="junk is not an IDX file"):
        datasets.load_idx(tmp_path / "junk")
    (tmp_path / "short").write_bytes(_idx_bytes(np.zeros((4, 2), np.uint8), 0x08)[:-3])
    with pytest.raises(ValueError, match="short should hold 8 values"):
        datasets.load_idx(tmp_path / "short")
    with pytest.raises(FileNotFoundError, match="missing"):
        datasets.load_idx(tmp_path / "missing")


def test_load_csv(tmp_path):
    rows = ["a,b,label"] + [f"{i},{2 * i % 7},{i % 2}" for i in range(10)]
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    d = datasets.load_csv(tmp_path / "c.csv", target="label", test_fraction=0.2)
    assert d.X.shape == (8, 2) and d.X_test.shape == (2, 2) and d.X_val is None
    assert d.task == "binary" and d.num_classes == 2 and d.y.shape == (8, 1)
    assert torch.allclose(d.X.mean(0), torch.zeros(2), atol=1e-6)  # standardised on train
    assert torch.allclose(d.X.std(0, unbiased=False), torch.ones(2), atol=1e-5)
    assert sorted(torch.cat([d.rows["train"], d.rows["test"]]).tolist()) == list(range(10))
    (tmp_path / "r.csv").write_text("x,y\n1,0.5\n2,1.5\n3,2.25\n4,3.5\n5,4.0\n")
    r = datasets.load_csv(tmp_path / "r.csv")
    assert r.task == "regression" and r.y.shape == (4, 1) and r.y_test.shape == (1, 1)


def test_load_csv_bad_files(tmp_path):
    (tmp_path / "c.csv").write_text("a,b\n1,x\n2,y\n")
    with pytest.raises(ValueError, match="regression needs a numeric target; 'b' holds text"):
        datasets.load_csv(tmp_path / "c.csv", task="regression")
    with pytest.raises(ValueError, match="no column named 'z'"):
        datasets.load_csv(tmp_path / "c.csv", target="z")
    (tmp_path / "e.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="at least one data row"):
        datasets.load_csv(tmp_path / "e.csv")
    (tmp_path / "s.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match="line 3 has 1 values, the header 2"):
        datasets.load_csv(tmp_path / "s.csv")
    with pytest.raises(FileNotFoundError):
        datasets.load_csv(tmp_path / "nope.csv")


def test_split_validation_is_carved_from_training():
    d = datasets.spiral().split(0.2, seed=0)
    v = d.split_validation(0.25, seed=0)
    assert v.X.shape[0] == 180 and v.X_val.shape[0] == 60 and torch.equal(v.X_test, d.X_test)
    train = {tuple(r) for r in v.X.tolist()}
    assert not train & {tuple(r) for r in v.X_val.tolist()}
    assert torch.bincount(v.y_val).tolist() == [20, 20, 20]  # stratified
    assert d.split_validation(0).X_val is None
    with pytest.raises(ValueError, match="val_fraction must be in"):
        d.split_validation(1.5)


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_val_fraction_applies_to_datasets_with_a_test_split(name):
    from handgrad.tools.recipe import TrainConfig, load_dataset

    full = datasets.DATASETS[name]()
    d = load_dataset(TrainConfig(data=name, val_fraction=0.1))
    assert d.X_val.shape[0] == round(0.1 * full.X.shape[0])
    assert d.X.shape[0] + d.X_val.shape[0] == full.X.shape[0]
    assert torch.equal(d.X_test, full.X_test)  # the fixed test split is never touched
