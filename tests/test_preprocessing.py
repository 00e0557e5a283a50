"""Preprocessing saved with the model: statistics of the training split, one-hot text,
imputation, label maps, tasks and targets; `handgrad train`/`predict` on tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import handgrad as hg
from handgrad.data import datasets
from handgrad.errors import InputError, StateDictError
from handgrad.preprocessing import Preprocessing, Table, guess_task, target_column
from handgrad.tools.cli import main


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("HANDGRAD_DEBUG", raising=False)


def _csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


def _train(data, out, *extra):
    return main(
        ["train", "--data", str(data), "--epochs", "3", "--quiet", "--out", str(out), *extra]
    )


# ---- fitting and applying -------------------------------------------------------------------
def test_standardisation_uses_the_training_rows_only():
    table = Table({"a": [1.0, 2.0, 3.0, 100.0], "c": [5, 5, 5, 7], "y": [0.0, 1.0, 2.0, 3.0]})
    prep = Preprocessing.fit(table, "y", task="regression", rows=[0, 1, 2])
    a, c = prep.columns
    assert (a.mean, a.std) == (2.0, pytest.approx(math.sqrt(2 / 3)))
    assert (c.mean, c.std) == (5.0, 1.0)  # constant on train: std 0 -> 1, x - mean = 0
    X = prep.features(table)
    assert X[:3, 1].tolist() == [0, 0, 0] and X[3, 1] == 2.0
    assert prep.target_mean == 1.0 and prep.target_std == pytest.approx(math.sqrt(2 / 3))
    assert torch.allclose(
        prep.targets(table)[:3, 0], torch.tensor([-1.2247, 0.0, 1.2247]), atol=1e-4
    )
    values, prob = prep.decode(prep.targets(table))
    assert prob is None and values == pytest.approx([0.0, 1.0, 2.0, 3.0], abs=1e-6)


def test_text_columns_are_one_hot_and_numbers_can_be_too():
    table = Table({"color": ["red", "blue", "red", "green"], "n": [1, 2, 1, 3], "y": [0, 1, 0, 1]})
    prep = Preprocessing.fit(table, "y", categorical=["n"])
    assert prep.feature_names() == ["color=blue", "color=green", "color=red", "n=1", "n=2", "n=3"]
    X = prep.features(table)
    assert X[0].tolist() == [0, 0, 1, 1, 0, 0] and X.sum(1).tolist() == [2.0] * 4
    with pytest.raises(InputError, match="column 'color': category 'pink' .* not in the training"):
        prep.features(Table({"color": ["pink"], "n": [1]}))


def test_missing_values_are_an_error_or_imputed():
    table = Table({"a": ["1", "", "3", "NA"], "t": ["x", "", "y", "x"], "y": [0, 1, 0, 1]})
    with pytest.raises(InputError, match="column 'a' has 2 missing value.*rows 2, 4.*--impute"):
        Preprocessing.fit(table, "y").features(table)
    prep = Preprocessing.fit(table, "y", impute="median", standardize=False)
    X = prep.features(table)
    assert X[:, 0].tolist() == [1, 2, 3, 2] and prep.columns[1].categories == ["x", "y", ""]
    assert X[1, 1:].tolist() == [0, 0, 1]  # missing text: a category of its own


def test_a_missing_label_is_an_error():
    table = Table({"a": [1, 2, 3], "y": ["1", "nan", "0"]})
    with pytest.raises(InputError, match="target column 'y' has 1 missing value.*data rows 2"):
        Preprocessing.fit(table, "y")


@pytest.mark.parametrize(
    "labels, task, classes",
    [
        (["cat", "dog", "cat", "eel"], "classification", ["cat", "dog", "eel"]),
        ([-1, 1, 1, -1], "binary", [-1, 1]),
        ([1999, 2005, 2012, 1999], "classification", [1999, 2005, 2012]),
        (["no", "yes", "yes", "no"], "binary", ["no", "yes"]),
    ],
)
def test_labels_of_any_values_map_to_0_k_and_back(labels, task, classes):
    table = Table({"a": [0.1, 0.2, 0.3, 0.4], "y": labels})
    prep = Preprocessing.fit(table, "y")
    assert prep.task == task and prep.classes == classes
    y = prep.targets(table)
    if task == "binary":
        logits = (2 * y - 1) * 5  # confident and right
    else:
        logits = torch.nn.functional.one_hot(y, len(classes)).double() * 5
    back, prob = prep.decode(logits)
    assert back == labels and bool((prob > 0.9).all())


def test_the_guess_and_its_reason():
    assert guess_task(np.array([0.5, 1.5, 2.0])) == (
        "regression",
        "the target holds non-integer numbers",
    )
    assert guess_task(np.array([3.0, 4.0, 5.0]))[0] == "classification"
    assert guess_task(np.arange(30.0)) == (
        "regression",
        "the target holds 30 distinct integers, more than 20",
    )
    assert guess_task(np.array([-1.0, 1.0]))[0] == "binary"
    assert "text" in guess_task(np.array(["a", "b", "c"], dtype=object))[1]


def test_target_by_name_or_index():
    names = ["a", "b", "3", "d"]
    assert target_column(names, "b") == "b" and target_column(names, "3") == "3"  # a name first
    assert target_column(names, "0") == "a" and target_column(names, -1) == "d"
    assert target_column(names, "-4") == "a"
    for bad in ("99", "-7", 4, -5):
        with pytest.raises(InputError, match="out of range for 4 columns"):
            target_column(names, bad)
    with pytest.raises(InputError, match="no column named 'e'"):
        target_column(names, "e")


# ---- saved with the model ---------------------------------------------------------------------
def _fitted():
    rng = np.random.default_rng(0)
    table = Table(
        {
            "size": rng.normal(50, 10, 40),
            "kind": rng.choice(["a", "b", "c"], 40),
            "y": rng.choice(["lo", "hi", "mid"], 40),
        }
    )
    prep = Preprocessing.fit(table, "y", rows=np.arange(30))
    torch.manual_seed(0)
    return table, prep, hg.Sequential(hg.Linear(prep.in_features, 8), hg.ReLU(), hg.Linear(8, 3))


def test_preprocessing_is_stored_beside_the_network(tmp_path):
    table, prep, model = _fitted()
    path = hg.save(model, tmp_path / "m.safetensors", preprocessing=prep)
    loaded = hg.load(path)
    assert _same(loaded.preprocessing, prep)
    assert list(loaded.state_dict()) == list(model.state_dict())  # the network alone
    torch_model = hg.to_torch(loaded)
    assert isinstance(torch_model, nn.Sequential) and len(torch_model) == 3
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        assert "__preprocessing__.mean" in f.keys()  # tensors, not pickle
    assert json.loads(meta["preprocessing"])["classes"] == ["hi", "lo", "mid"]
    labels, _ = loaded.preprocessing.predict(loaded, table)
    assert labels == prep.decode(hg.predict(model, prep.features(table)))[0]
    hg.save(loaded, tmp_path / "again.safetensors")  # model.preprocessing goes along
    assert _same(hg.load(tmp_path / "again.safetensors").preprocessing, prep)


def _same(a, b):
    (ta, ma), (tb, mb) = a.state(), b.state()
    return ma == mb and all(torch.equal(ta[k].nan_to_num(7), tb[k].nan_to_num(7)) for k in ta)


def test_a_model_file_is_checked_before_allocation(tmp_path):
    from safetensors.torch import save_file

    arch = {
        "type": "Sequential",
        "layers": [{"type": "Linear", "in_features": 30000, "out_features": 30000, "bias": True}],
    }
    meta = {"format": "handgrad-model-1", "architecture": json.dumps(arch), "user": "{}"}
    tensors = {"0.weight": torch.zeros(2, 2), "0.bias": torch.zeros(2)}
    save_file(tensors, str(tmp_path / "liar.safetensors"), metadata=meta)
    with pytest.raises(
        StateDictError,
        match=r"'0.weight' has shape \(2, 2\) in the file but "
        r"\(30000, 30000\)",
    ):
        hg.load(tmp_path / "liar.safetensors")
    arch["layers"][0].update(in_features=2, out_features=2)
    meta["architecture"] = json.dumps(arch)
    del tensors["0.bias"]
    save_file(tensors, str(tmp_path / "short.safetensors"), metadata=meta)
    with pytest.raises(StateDictError, match="lacks the tensor '0.bias'"):
        hg.load(tmp_path / "short.safetensors")


# ---- the command line on tables -------------------------------------------------------------
def _table_csv(tmp_path, n=60, label=lambda i: "yes" if i % 3 else "no"):
    rng = np.random.default_rng(1)
    rows = [
        (round(float(rng.normal(1000, 300)), 2), ["x", "y"][i % 2], i % 5, label(i))
        for i in range(n)
    ]
    return _csv(tmp_path / "t.csv", ["income", "town", "rooms", "answer"], rows)


def test_train_prints_the_guess_and_predict_maps_labels_back(tmp_path, capsys):
    data = _table_csv(tmp_path)
    assert _train(data, tmp_path / "run", "--target", "answer") == 0
    out = capsys.readouterr().out
    assert "task: binary (the target holds text with 2 distinct values; --task overrides" in out
    assert "classes no, yes -> 0..1" in out and "split: train 38, validation 10, test 12" in out
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert set(scores) == {"train", "val", "test"}
    # columns matched by name: another order, an extra column, the label left in
    _csv(
        tmp_path / "new.csv",
        ["rooms", "note", "town", "income"],
        [(2, "hi", "y", 1200.5), (0, "", "x", 700)],
    )
    model = str(tmp_path / "run" / "model.safetensors")
    assert main(["predict", model, str(tmp_path / "new.csv")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "class,probability" and len(lines) == 3
    assert all(line.split(",")[0] in ("yes", "no") for line in lines[1:])
    _csv(tmp_path / "same.csv", ["income", "town", "rooms"], [(1200.5, "y", 2), (700, "x", 0)])
    assert main(["predict", model, str(tmp_path / "same.csv")]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines


def test_predict_refuses_missing_columns_and_missing_values(tmp_path, capsys):
    data = _table_csv(tmp_path)
    _train(data, tmp_path / "run", "--target", "answer")
    model = str(tmp_path / "run" / "model.safetensors")
    _csv(tmp_path / "a.csv", ["income", "town"], [(1, "x")])
    capsys.readouterr()
    assert main(["predict", model, str(tmp_path / "a.csv")]) == 1
    assert "lacks column(s) the model was trained on: rooms" in capsys.readouterr().err
    _csv(tmp_path / "b.csv", ["income", "town", "rooms"], [(1, "x", 2), ("", "y", 1)])
    assert main(["predict", model, str(tmp_path / "b.csv")]) == 1
    assert "column 'income' has 1 missing value(s) (data rows 2)" in capsys.readouterr().err


def test_task_override_and_regression_back_in_the_targets_units(tmp_path, capsys):
    rows = [(i, i % 4, 1000 + 50 * i) for i in range(40)]
    data = _csv(tmp_path / "r.csv", ["x", "k", "price"], rows)
    assert _train(data, tmp_path / "c", "--target", "k", "--task", "regression") == 0
    assert "task: regression (given)" in capsys.readouterr().out
    args = ["--target", "price", "--epochs", "200", "--lr", "0.01"]
    assert main(["train", "--data", str(data), "--quiet", "--out", str(tmp_path / "r"), *args]) == 0
    assert (
        "task: regression (the target holds 40 distinct integers, more than 20;"
        in capsys.readouterr().out
    )
    _csv(tmp_path / "q.csv", ["x", "k"], [(10, 2), (30, 2)])
    assert (
        main(["predict", str(tmp_path / "r" / "model.safetensors"), str(tmp_path / "q.csv")]) == 0
    )
    lines = capsys.readouterr().out.split()
    assert lines[0] == "price"
    assert [float(v) for v in lines[1:]] == pytest.approx([1500, 2500], rel=0.05)


def test_bad_targets_and_labels_are_one_line_errors(tmp_path, capsys):
    data = _table_csv(tmp_path)
    for target, message in (
        ("99", "target index 99 is out of range for 4 columns"),
        ("-7", "target index -7 is out of range"),
        ("nope", "no column named 'nope'"),
    ):
        assert _train(data, tmp_path / "x", "--target", target) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    _csv(tmp_path / "nan.csv", ["a", "y"], [(1, 0), (2, 1), (3, "nan"), (4, 1)])
    assert _train(tmp_path / "nan.csv", tmp_path / "x") == 1
    assert "target column 'y' has 1 missing value(s) (data rows 3)" in capsys.readouterr().err
    assert _train(data, tmp_path / "x", "--target", "answer", "--task", "regression") == 1
    assert "regression needs a numeric target" in capsys.readouterr().err


def test_many_classes_draw_a_bounded_confusion_matrix(tmp_path, capsys):
    # 41 classes of 10: one example of each in every split (the floor), 41 > 30 drawn
    rows = [(i, i % 40) for i in range(400)] + [(7 + i, 1000) for i in range(10)]
    data = _csv(tmp_path / "m.csv", ["a", "y"], rows)
    assert _train(data, tmp_path / "run", "--task", "classification", "--epochs", "1") == 0
    from PIL import Image

    width, height = Image.open(tmp_path / "run" / "confusion.png").size
    assert width <= 1600 and height <= 1600


def test_from_table_with_given_test_rows_and_a_dataframe_like_dict():
    cols = {"a": np.arange(20.0), "b": np.arange(20.0) ** 2, "y": np.arange(20) % 2}
    d = datasets.from_table(cols, "y", test_rows=[0, 1, 2, 3], val_fraction=0.25)
    assert d.rows["test"].tolist() == [0, 1, 2, 3] and d.X_test.shape == (4, 2)
    assert d.X.shape[0] == 12 and d.X_val.shape[0] == 4
    assert d.preprocessing.columns[0].mean == pytest.approx(
        float(np.arange(20.0)[d.rows["train"]].mean())
    )


def test_an_infinite_target_is_an_error():
    with pytest.raises(InputError, match="target column 'y' holds an infinite value .data rows 1"):
        Preprocessing.fit(Table({"a": [1, 2, 3], "y": ["inf", "3", "4"]}), "y")


def test_a_loaded_model_without_preprocessing_says_none(tmp_path):
    path = hg.save(hg.Sequential(hg.Linear(2, 2)), tmp_path / "m.safetensors")
    assert hg.load(path).preprocessing is None


def test_the_tabular_example_runs_on_iris(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "tabular.py"
    spec = importlib.util.spec_from_file_location("tabular_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    csv_path = example.write_csv("iris", tmp_path)
    hg_score, same_rows, more_rows = example.one_seed("iris", csv_path, 0, tmp_path)
    assert hg_score >= same_rows - 0.01 and 0.9 <= more_rows <= 1


def test_a_damaged_preprocessing_record_is_refused():
    _, prep, _ = _fitted()
    tensors, meta = prep.state()
    meta["columns"][0]["kind"] = "weird"
    with pytest.raises(InputError, match="damaged preprocessing record .unknown column kind"):
        Preprocessing.from_state(tensors, meta)
    del tensors["__preprocessing__.std"]
    with pytest.raises(InputError, match="damaged preprocessing record"):
        Preprocessing.from_state(tensors, prep.state()[1])


# ---- the table recipe's ensemble ------------------------------------------------------------
def test_a_table_trains_an_ensemble_whose_first_member_is_the_single_run(tmp_path, capsys):
    data = _table_csv(tmp_path)
    assert _train(data, tmp_path / "one", "--target", "answer", "--ensemble", "1") == 0
    assert "ensemble member" not in capsys.readouterr().out
    assert _train(data, tmp_path / "two", "--target", "answer", "--ensemble", "2") == 0
    out = capsys.readouterr().out
    assert "ensemble member 1 of 2" in out and "ensemble member 2 of 2" in out
    one = hg.load(tmp_path / "one" / "model.safetensors")
    two = hg.load(tmp_path / "two" / "model.safetensors")
    assert isinstance(two, hg.Ensemble) and len(two.members) == 2
    first, second = (m.state_dict() for m in two.members)
    assert all(torch.equal(one.state_dict()[k], first[k]) for k in first)  # seed, as alone
    assert not all(torch.equal(first[k], second[k]) for k in first)  # seed + 1000
    history = json.loads((tmp_path / "two" / "history.json").read_text())
    assert len(history["members"]) == 2 and history["epochs"] == history["members"][0]["epochs"]
    _csv(tmp_path / "new.csv", ["income", "town", "rooms"], [(1200.5, "y", 2), (700, "x", 0)])
    assert (
        main(["predict", str(tmp_path / "two" / "model.safetensors"), str(tmp_path / "new.csv")])
        == 0
    )
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    # the default: 5 networks for a table, one when the run checkpoints
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "--target",
                "answer",
                "--epochs",
                "1",
                "--quiet",
                "--out",
                str(tmp_path / "five"),
            ]
        )
        == 0
    )
    assert len(hg.load(tmp_path / "five" / "model.safetensors").members) == 5
    args = ["--target", "answer", "--checkpoint-every", "1"]
    assert _train(data, tmp_path / "ck", *args) == 0
    assert isinstance(hg.load(tmp_path / "ck" / "model.safetensors"), hg.Sequential)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ensemble", "0"], "--ensemble must be >= 1, got 0"),
        (
            ["--ensemble", "3", "--checkpoint-every", "1"],
            "--ensemble 3 cannot be combined with "
            "--checkpoint-every, which trains one network: pass --ensemble 1",
        ),
    ],
)
def test_bad_ensemble_flags_are_one_line_errors(tmp_path, capsys, extra, message):
    data = _table_csv(tmp_path)
    capsys.readouterr()
    assert _train(data, tmp_path / "run", "--target", "answer", *extra) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_the_table_recipe_and_what_a_given_flag_changes(tmp_path):
    from handgrad.tools.config import TrainConfig

    data = str(_table_csv(tmp_path))
    table = TrainConfig(data=data).resolved()
    assert (table.optimizer, table.weight_decay, table.ensemble) == ("adamw", 1.0, 5)
    assert (table.epochs, table.batch_size, table.patience) == (200, 32, 20)
    mine = TrainConfig(data=data, optimizer="adam").resolved()  # no decay the user did not ask
    assert (mine.optimizer, mine.weight_decay) == ("adam", 0.0)
    assert TrainConfig(data=data, weight_decay=0.1).resolved().weight_decay == 0.1
    assert TrainConfig(data=data, resume="c.safetensors").resolved().ensemble == 1
    digits = TrainConfig(data="digits").resolved()
    assert (digits.optimizer, digits.weight_decay, digits.ensemble) == ("adam", 0.0, 1)
