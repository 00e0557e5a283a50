"""The data and prediction traps of issue 21, each through the command line in-process: a
bundled dataset's scaling saved with the model (predict on raw features), CSV files as Excel
writes them, flags that do not apply, splits below the floor, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, load_wine

import handgrad as hg
from handgrad.data import datasets
from handgrad.data.preprocessing import Table
from handgrad.data.scaling import Scaling
from handgrad.errors import InputError
from handgrad.mode import no_cache
from handgrad.tools.cli import main


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("HANDGRAD_DEBUG", raising=False)


def _write(path, header, rows, sep=",", bom=False):
    text = sep.join(header) + "\n" + "".join(sep.join(map(str, r)) + "\n" for r in rows)
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


def _table_rows(n=60):
    rng = np.random.default_rng(0)
    return [
        (
            round(float(rng.normal(10, 2)), 3),
            ["red", "blue"][i % 2],
            i % 5,
            "yes" if i % 3 else "no",
        )
        for i in range(n)
    ]


HEADER = ["alcohol", "color", "rooms", "answer"]


def _train(data, out, *extra):
    argv = ["train", "--data", str(data), "--epochs", "2", "--quiet", "--out", str(out)]
    return main([*argv, "--ensemble", "1", *extra])


def _predict(model, file, *extra):
    return main(["predict", str(model), str(file), *extra])


# ---- 1. a bundled dataset's scaling is saved: predict takes raw features --------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "run"
    argv = ["train", "--data", "digits", "--hidden", "16", "--epochs", "2", "--quiet"]
    assert main([*argv, "--out", str(out)]) == 0
    return out / "model.safetensors"


def _network(model, X):
    """The network alone on its own (scaled) input: the reference."""
    model.eval()
    with no_cache():
        return model(X)


def test_digits_model_predicts_from_raw_pixels(digits_run, tmp_path, capsys):
    raw = load_digits().data[:7]  # pixels 0..16, as the dataset's own file holds them
    _write(tmp_path / "raw.csv", [f"p{j}" for j in range(64)], raw.astype(int).tolist())
    capsys.readouterr()
    assert _predict(digits_run, tmp_path / "raw.csv") == 0
    lines = capsys.readouterr().out.split()
    model = hg.load(digits_run)
    assert model.preprocessing == Scaling(16.0, source=model.preprocessing.source)
    expected = torch.softmax(_network(model, torch.tensor(raw / 16.0, dtype=torch.float32)), 1)
    conf, cls = expected.max(1)
    assert lines == ["class,probability"] + [f"{int(c)},{float(q):.4f}" for c, q in zip(cls, conf)]
    assert float(conf.min()) < 0.99  # raw pixels unscaled would saturate every softmax
    # in Python: hg.load, then hg.predict on the raw pixels, the same numbers
    torch.testing.assert_close(
        hg.predict(model, torch.tensor(raw, dtype=torch.float32)),
        _network(model, torch.tensor(raw / 16.0, dtype=torch.float32)),
    )


def test_a_model_file_without_a_scaling_predicts_as_before(digits_run, tmp_path, capsys):
    old = hg.load(digits_run)
    old.preprocessing = None  # as a file written before scalings were saved
    hg.save(old, tmp_path / "old.safetensors", metadata=hg.io.read_metadata(digits_run))
    again = hg.load(tmp_path / "old.safetensors")
    assert again.preprocessing is None
    X = torch.rand(5, 64)
    torch.testing.assert_close(hg.predict(again, X), _network(again, X))
    # the files of tests/data were written long before: the same outputs as when written
    from safetensors.torch import load_file

    expected = load_file("tests/data/v1_expected.safetensors")
    v1 = hg.load("tests/data/v1_mlp.safetensors")
    assert v1.preprocessing is None
    torch.testing.assert_close(hg.predict(v1, expected["mlp.input"]), expected["mlp.output"])


# ---- 2. CSV files as Excel writes them ---------------------------------------------------------
@pytest.mark.parametrize(("sep", "bom"), [(",", True), (";", False), (";", True), ("\t", False)])
def test_byte_order_mark_and_separators_are_read(tmp_path, sep, bom):
    path = _write(tmp_path / "t.csv", HEADER, _table_rows(6), sep=sep, bom=bom)
    table = Table.read_csv(path)
    assert table.names == HEADER
    assert table["alcohol"].dtype == np.float64 and table["color"][1] == "blue"


def test_a_decimal_comma_in_a_semicolon_file_is_a_number(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text("alcohol;answer\n12,5;yes\n13;no\n11,25;yes\n")
    assert Table.read_csv(path)["alcohol"].tolist() == [12.5, 13.0, 11.25]


def test_train_and_predict_on_excel_files(tmp_path, capsys):
    data = _write(tmp_path / "t.csv", HEADER, _table_rows(), sep=";", bom=True)
    assert _train(data, tmp_path / "run", "--target", "answer") == 0
    new = _write(tmp_path / "new.csv", HEADER[:3], [(9.5, "red", 1), (11, "blue", 3)], bom=True)
    capsys.readouterr()
    assert _predict(tmp_path / "run" / "model.safetensors", new) == 0
    lines = capsys.readouterr().out.split()
    assert lines[0] == "class,probability" and len(lines) == 3


def test_a_bad_cell_in_a_numeric_column_names_its_line_and_value(tmp_path, capsys):
    rows = _table_rows()
    rows[36] = ("1O.5", *rows[36][1:])  # data row 37: line 38 of the file, after the header
    data = _write(tmp_path / "t.csv", HEADER, rows)
    assert _train(data, tmp_path / "run", "--target", "answer") == 1
    err = capsys.readouterr().err
    assert "column 'alcohol' holds numbers, but line 38 holds '1O.5'" in err
    assert err.count("\n") == 1
    # with a blank line above it, still the line a reader finds it on
    text = data.read_text().splitlines()
    data.write_text("\n".join(text[:5] + [""] + text[5:]) + "\n")
    assert _train(data, tmp_path / "run", "--target", "answer") == 1
    assert "line 39 holds '1O.5'" in capsys.readouterr().err


# ---- 3. flags that do not apply --------------------------------------------------------------
def test_predict_drop_on_a_csv_model(tmp_path, capsys):
    data = _write(tmp_path / "t.csv", HEADER, _table_rows())
    assert _train(data, tmp_path / "run", "--target", "answer") == 0
    model = tmp_path / "run" / "model.safetensors"
    new = _write(tmp_path / "new.csv", HEADER, _table_rows(3))
    capsys.readouterr()
    assert _predict(model, new, "--drop", "rooms") == 1  # a column the model needs
    assert "--drop rooms: the model was trained on column 'rooms'" in capsys.readouterr().err
    assert _predict(model, new, "--drop", "answer") == 0  # ignored anyway: a note says so
    captured = capsys.readouterr()
    assert "note: --drop is not needed" in captured.err and len(captured.out.split()) == 4
    assert _predict(model, new, "--drop", "nope") == 1
    assert "the file has no column 'nope'" in capsys.readouterr().err


def test_drop_naming_the_target_and_csv_flags_on_bundled_data(tmp_path, capsys):
    data = _write(tmp_path / "t.csv", HEADER, _table_rows())
    assert _train(data, tmp_path / "run", "--target", "answer", "--drop", "answer") == 1
    assert "drop names the target column 'answer'" in capsys.readouterr().err
    assert _train(data, tmp_path / "run", "--target", "rooms", "--categorical", "rooms") == 1
    assert "categorical names the target column 'rooms'" in capsys.readouterr().err
    assert _train("spiral", tmp_path / "run", "--drop", "x0") == 1
    assert "--drop applies to a CSV file; spiral is a bundled dataset" in capsys.readouterr().err


@pytest.mark.parametrize("hidden", ["128,,64", "128,", ",64"])
def test_hidden_with_an_empty_width_is_an_error(hidden, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--data", "spiral", "--hidden", hidden])
    assert stop.value.code == 2
    assert f"expected comma-separated integers, got {hidden!r}" in capsys.readouterr().err


def test_predict_drop_on_a_plain_model_names_an_unknown_column(digits_run, tmp_path, capsys):
    _write(tmp_path / "x.csv", [f"p{j}" for j in range(64)], [[0] * 64])
    assert _predict(digits_run, tmp_path / "x.csv", "--drop", "label") == 1
    assert "--drop label:" in capsys.readouterr().err


# ---- 4. splits below the floor ----------------------------------------------------------------
@pytest.fixture
def wine_csv(tmp_path):
    w = load_wine()
    rows = np.column_stack([w.data, w.target]).tolist()
    return _write(tmp_path / "wine.csv", [*w.feature_names, "class"], rows)


def test_a_test_fraction_leaving_one_example_is_refused(wine_csv, tmp_path, capsys):
    assert _train(wine_csv, tmp_path / "run", "--test-fraction", "0.99") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--test-fraction 0.99" in err
    assert "train 1, validation 1, test 176 examples" in err
    assert "every split needs at least one example of each class" in err


def test_the_floor_in_python_and_for_regression(wine_csv, tmp_path):
    with pytest.raises(
        InputError,
        match="test_fraction=0.99 and val_fraction=0.0: the splits would hold train 2, test 176",
    ):
        datasets.load_csv(wine_csv, target="class", test_fraction=0.99)
    cols = {"x": np.arange(10.0), "y": np.arange(10.0) * 0.37}
    with pytest.raises(InputError, match="a regression needs at least 2 training examples"):
        datasets.from_table(cols, "y", task="regression", test_fraction=0.8, val_fraction=0.5)
    d = datasets.from_table(cols, "y", task="regression", test_fraction=0.5, val_fraction=0.5)
    assert len(d.y) >= 2  # the floor itself is allowed
    full = datasets.spiral(n_per_class=4)
    with pytest.raises(InputError, match="--val-fraction 0.9: the splits would hold"):
        datasets.check_splits(full.split(0.25).split_validation(0.9), "--val-fraction 0.9")


# ---- 5. unclear errors made clear --------------------------------------------------------------
def test_an_unknown_separator_is_named_in_the_error(tmp_path, capsys):
    data = _write(tmp_path / "t.csv", HEADER, _table_rows())
    assert _train(data, tmp_path / "run", "--target", "answer") == 0
    bars = _write(tmp_path / "bars.csv", HEADER, _table_rows(2), sep="|")
    capsys.readouterr()
    assert _predict(tmp_path / "run" / "model.safetensors", bars) == 1
    err = capsys.readouterr().err
    assert "lacks column(s)" in err and "comma-separated" in err and "'alcohol|color" in err


def test_predict_out_to_a_folder_that_takes_no_files_names_the_users_path(
    digits_run, tmp_path, capsys
):
    _write(tmp_path / "x.csv", [f"p{j}" for j in range(64)], [[0] * 64])
    assert _predict(digits_run, tmp_path / "x.csv", "--out", "/proc/version") == 1
    err = capsys.readouterr().err
    assert "--out: cannot write /proc/version: folder /proc does not take new files" in err
    assert ".tmp" not in err and err.count("\n") == 1


def test_test_fraction_on_data_with_its_own_test_split_is_refused(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--data",
                "mnist1d",
                "--test-fraction",
                "0.5",
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "--test-fraction 0.5: mnist1d has a test split of its own" in err
    assert not (tmp_path / "run").exists()
