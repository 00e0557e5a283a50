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
    (tmp_path / "c.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,6,1\n")
    d = datasets.load_csv(tmp_path / "c.csv", target="label")
    assert d.X.tolist() == [[1, 2], [3, 4], [5, 6]] and d.y.tolist() == [0, 1, 1]
    assert d.task == "classification" and d.num_classes == 2
    (tmp_path / "r.csv").write_text("x,y\n1,0.5\n2,1.5\n")
    r = datasets.load_csv(tmp_path / "r.csv")
    assert r.task == "regression" and r.y.shape == (2, 1)


def test_load_csv_bad_files(tmp_path):
    (tmp_path / "c.csv").write_text("a,b\n1,x\n")
    with pytest.raises(ValueError, match="non-numeric"):
        datasets.load_csv(tmp_path / "c.csv")
    with pytest.raises(ValueError, match="no column 'z'"):
        datasets.load_csv(tmp_path / "c.csv", target="z")
    (tmp_path / "e.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="at least one data row"):
        datasets.load_csv(tmp_path / "e.csv")
    with pytest.raises(FileNotFoundError):
        datasets.load_csv(tmp_path / "nope.csv")
