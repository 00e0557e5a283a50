"""Preprocessing for tables: what turns a CSV's columns into the network's input, fitted on
the training split only and saved in the model file beside the network (never inside it).

    table = Table.read_csv("wine.csv")
    prep = Preprocessing.fit(table, target="class", rows=train_rows)   # statistics of train rows
    X, y = prep.features(table), prep.targets(table)                    # tensors for fit()
    prep.decode(model_output)                                           # labels / values back

Steps, in order, per feature column (matched by NAME, so a file's column order is free):

- numeric: missing values ("", NA, NaN, ?) are an error, or filled with the training mean or
  median (``impute=``); then standardised, x' = (x - mean) / std with the training split's
  mean and std (a constant column, std 0, becomes all zeros);
- text (categorical): one-hot, one feature per category seen in the training split, in
  sorted order; a missing value is an error, or its own category with ``impute``; a
  category never seen in training is an error at prediction.

The target: class labels of any values (text, -1/+1, years) map to 0..K-1 in sorted order
(``classes``) and back; a regression target is standardised with the training mean and std,
and ``decode`` maps the network's output back to the target's units. A missing target is
always an error.

Saved by ``hg.save(model, path, preprocessing=prep)`` as tensors (``__preprocessing__.*``:
means, stds, fill values) and JSON metadata (names, kinds, categories, classes); no pickle.
``hg.load`` gives the network with ``model.preprocessing`` set, and ``prep.predict(model,
table)`` runs the whole path (handgrad.training.tables). ``to_torch(model)`` sees the network
only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from handgrad.data.csvfile import is_number, read_rows
from handgrad.errors import ArgumentTypeError, InputError

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
TASKS = ("classification", "binary", "regression")
IMPUTE = ("none", "mean", "median")
MAX_CATEGORIES = 256  # a text column with more distinct values is an identifier, not a category
MAX_GUESSED_CLASSES = 20  # an integer target with more distinct values is guessed regression
PREFIX = "__preprocessing__."


# ---- tables --------------------------------------------------------------------------------------
def _is_missing(text: str) -> bool:
    return text.strip().lower() in MISSING


class Table:
    """Named columns of equal length: float64 arrays (NaN = missing) for numeric columns,
    arrays of str for text columns ("" = missing)."""

    def __init__(self, columns: Mapping[str, Any]) -> None:
        self.columns: dict[str, np.ndarray] = {}
        for name, values in columns.items():
            self.columns[str(name)] = _column(values)
        self.lines: np.ndarray | None = None  # each row's line in its CSV file, if read from one
        self.source = ""  # the CSV file it was read from, for errors
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            raise InputError(f"Table: columns have different lengths {sorted(lengths)}")

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @classmethod
    def read_csv(cls, path: str | os.PathLike[str]) -> Table:
        """A CSV with a header row (handgrad.data.csvfile: a byte-order mark dropped, the
        separator detected); a column whose every present value is a number is numeric."""
        data = read_rows(path)
        header = data.header
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise InputError(f"{data.path}: column names must be unique; repeated: {dup}")
        table = cls(data.columns())
        table.lines = np.asarray(data.lines)
        table.source = f"{data.path} ({data.separator_name}-separated)"
        return table

    @classmethod
    def from_arrays(cls, X: Any, names: Sequence[str] | None = None) -> Table:
        """A numeric table from a 2-D array or tensor; columns named x0, x1, ... by default."""
        a = X.detach().cpu().numpy() if isinstance(X, Tensor) else np.asarray(X)
        if a.ndim != 2:
            raise InputError(f"Table.from_arrays: expected a 2-D array, got shape {a.shape}")
        names = list(names) if names is not None else [f"x{j}" for j in range(a.shape[1])]
        if len(names) != a.shape[1]:
            raise InputError(f"Table.from_arrays: {len(names)} names for {a.shape[1]} columns")
        return cls({n: a[:, j] for j, n in enumerate(names)})

    def rows(self, index: Any) -> Table:
        table = Table({k: v[index] for k, v in self.columns.items()})
        table.lines = None if self.lines is None else self.lines[index]
        table.source = self.source
        return table

    def where(self, row: int) -> str:
        """Row `row` (0-based) as a user finds it: its line in the CSV file, or its data row."""
        if self.lines is not None:
            return f"line {int(self.lines[row])}"
        return f"data row {row + 1}"


def _column(values: Any) -> np.ndarray:
    """float64 when every present value is a number, else str."""
    a = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    if a.ndim != 1:
        raise InputError(f"Table: a column must be 1-D, got shape {a.shape}")
    if a.dtype.kind in "biuf":
        return a.astype(np.float64)
    text = np.array(["" if v is None else str(v).strip() for v in a.tolist()], dtype=object)
    try:
        return np.array([math.nan if _is_missing(t) else float(t) for t in text], np.float64)
    except ValueError:
        return np.array(["" if _is_missing(t) else t for t in text], dtype=object)


def as_table(data: Any) -> Table:
    """A Table from a Table, a dict of columns, a pandas DataFrame or a CSV path."""
    if isinstance(data, Table):
        return data
    if isinstance(data, (str, os.PathLike)):
        return Table.read_csv(data)
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        return Table({str(c): data[c].to_numpy() for c in data.columns})
    if isinstance(data, Mapping):
        return Table(data)
    raise ArgumentTypeError(
        f"expected a Table, a dict of columns, a DataFrame or a CSV path, got {type(data).__name__}"
    )


def _rows_where(mask: np.ndarray, limit: int = 3) -> str:
    rows = np.flatnonzero(mask)[:limit] + 1
    return ", ".join(str(int(r)) for r in rows) + (", ..." if mask.sum() > limit else "")


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return np.array([v == "" for v in values], dtype=bool)
    return np.isnan(values)


def _sorted_labels(values: np.ndarray) -> list[Any]:
    """The distinct labels in sorted order; whole numbers as ints (-1 and 1, not -1.0)."""
    uniq = sorted(set(values.tolist()))
    return [int(v) if isinstance(v, float) and v.is_integer() else v for v in uniq]


def _label_key(v: Any) -> Any:
    return float(v) if isinstance(v, (int, float, np.floating)) else str(v)


# ---- choosing the target and the task ---------------------------------------------------------
def target_column(names: Sequence[str], target: str | int) -> str:
    """The target's column name: a name, or else an index (Python's convention: -1 is the
    last column, -n the first; anything outside -n..n-1 is an error)."""
    if isinstance(target, str) and target in names:
        return target
    if isinstance(target, str):
        try:
            target = int(target)
        except ValueError:
            raise InputError(f"no column named {target!r}; columns: {', '.join(names)}") from None
    n = len(names)
    if not -n <= target < n:
        raise InputError(
            f"target index {target} is out of range for {n} columns "
            f"(0..{n - 1}, or -1..-{n} counting from the end)"
        )
    return names[target]


def guess_task(values: np.ndarray) -> tuple[str, str]:
    """(task, reason) for a target column, from its values alone."""
    present = values[~_missing(values)]
    distinct = len(set(present.tolist()))
    if values.dtype == object:
        if distinct == 2:
            return "binary", "the target holds text with 2 distinct values"
        return "classification", f"the target holds text, {distinct} distinct values"
    if distinct == 2:
        return "binary", "the target holds 2 distinct values"
    if not np.all(present == np.round(present)):
        return "regression", "the target holds non-integer numbers"
    if distinct <= MAX_GUESSED_CLASSES:
        return (
            "classification",
            f"the target holds {distinct} distinct integers, at most {MAX_GUESSED_CLASSES}",
        )
    return (
        "regression",
        f"the target holds {distinct} distinct integers, more than {MAX_GUESSED_CLASSES}",
    )


# ---- the fitted steps ----------------------------------------------------------------------------
@dataclass
class Feature:
    """One input column as fitted: numeric (mean, std, fill) or text (categories)."""

    name: str
    kind: str  # "numeric" or "categorical"
    mean: float = 0.0
    std: float = 1.0
    fill: float = math.nan  # the imputed value of a missing number (NaN: missing is an error)
    categories: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "categorical" else 1


@dataclass
class Preprocessing:
    """The fitted steps from a table to the network's input, and from its output back."""

    columns: list[Feature]  # the feature columns, in the network's input order
    target: str | None = None
    task: str = "regression"
    classes: list[Any] = field(default_factory=list)  # class labels, index = class number
    target_mean: float = 0.0
    target_std: float = 1.0
    standardize: bool = True
    impute: str = "none"

    # ---- fitting --------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        data: Any,
        target: str | int | None = -1,
        task: str = "auto",
        rows: Any = None,
        standardize: bool = True,
        impute: str = "none",
        categorical: Sequence[str] = (),
        drop: Sequence[str] = (),
    ) -> Preprocessing:
        """Fit on `rows` of the table (default: all). `target` is a column name or index
        (None: no target); `task` auto, classification, binary or regression; `categorical`
        names numeric columns to one-hot as well; `drop` names columns to leave out."""
        table = as_table(data)
        if impute not in IMPUTE:
            raise InputError(f"impute must be one of {', '.join(IMPUTE)}, got {impute!r}")
        if task != "auto" and task not in TASKS:
            raise InputError(f"task must be auto, {', '.join(TASKS)}, got {task!r}")
        for name in (*categorical, *drop):
            if name not in table.names:
                raise InputError(f"no column named {name!r}; columns: {', '.join(table.names)}")
        tname = None if target is None else target_column(table.names, target)
        if tname is not None and tname in drop:
            raise InputError(
                f"drop names the target column {tname!r}; a target cannot be left out "
                "(choose another target, or drop another column)"
            )
        if tname is not None and tname in categorical:
            raise InputError(
                f"categorical names the target column {tname!r}; it applies to features "
                "(the task says what the target is: classification for classes)"
            )
        for name in table.names:
            if name not in drop and name not in categorical:
                _check_numbers(table, name, is_target=name == tname)
        train = table if rows is None else table.rows(np.asarray(rows))
        if len(train) == 0:
            raise InputError("preprocessing: no training rows")
        prep = cls([], target=tname, standardize=standardize, impute=impute)
        for name in table.names:
            if name == tname or name in drop:
                continue
            f = _fit_feature(name, train[name], name in categorical, impute)
            if not standardize:
                f.mean, f.std = 0.0, 1.0
            prep.columns.append(f)
        if not prep.columns:
            raise InputError("preprocessing: no feature columns left")
        if tname is not None:
            prep._fit_target(table[tname], train[tname], task)
        return prep

    def _fit_target(self, values: np.ndarray, train: np.ndarray, task: str) -> None:
        miss = _missing(values)
        if miss.any():
            raise InputError(
                f"target column {self.target!r} has {int(miss.sum())} missing value(s) "
                f"(data rows {_rows_where(miss)}); drop those rows or choose another target"
            )
        if values.dtype != object and not np.isfinite(values).all():
            bad = ~np.isfinite(values)
            raise InputError(
                f"target column {self.target!r} holds an infinite value (data rows "
                f"{_rows_where(bad)})"
            )
        self.task = guess_task(values)[0] if task == "auto" else task
        if self.task in ("classification", "binary"):
            self.classes = _sorted_labels(values)  # every label in the file, train or not
            if self.task == "binary" and len(self.classes) != 2:
                raise InputError(
                    f"task binary needs 2 distinct target values, {self.target!r} has "
                    f"{len(self.classes)}; use --task classification"
                )
            if len(self.classes) < 2:
                raise InputError(f"target {self.target!r} holds one value only: nothing to learn")
        else:
            if values.dtype == object:
                raise InputError(f"regression needs a numeric target; {self.target!r} holds text")
            if self.standardize:
                self.target_mean = float(train.mean())
                std = float(train.std())
                self.target_std = std if std > 0 else 1.0

    # ---- applying -------------------------------------------------------------------------------
    @property
    def in_features(self) -> int:
        return sum(f.width for f in self.columns)

    @property
    def out_features(self) -> int:
        if self.task == "classification":
            return len(self.classes)
        return 1

    def feature_names(self) -> list[str]:
        """The network's inputs: a numeric column's name, or column=category."""
        names: list[str] = []
        for f in self.columns:
            names += (
                [f"{f.name}={c}" for c in f.categories] if f.kind == "categorical" else [f.name]
            )
        return names

    def features(self, data: Any, dtype: torch.dtype = torch.float32) -> Tensor:
        """The network's input (N, in_features) for a table, its columns matched by name."""
        table = as_table(data)
        missing = [f.name for f in self.columns if f.name not in table.names]
        if missing:
            source = f" ({table.source})" if table.source else ""
            raise InputError(
                f"the table lacks column(s) the model was trained on: {', '.join(missing)}; "
                f"its columns{source}: {', '.join(map(repr, table.names))}"
            )
        parts = [_apply_feature(f, table[f.name], table.where) for f in self.columns]
        return torch.tensor(np.concatenate(parts, axis=1), dtype=dtype)

    def targets(self, data: Any) -> Tensor:
        """Class indices (N,) int64, 0/1 (N, 1) float32 for binary, or the standardised
        regression target (N, 1) float32."""
        table = as_table(data)
        if self.target is None or self.target not in table.names:
            raise InputError(f"the table has no target column {self.target!r}")
        values = table[self.target]
        if _missing(values).any():
            raise InputError(f"target column {self.target!r} has missing values")
        if self.task == "regression":
            return torch.tensor(
                (values.astype(np.float64) - self.target_mean) / self.target_std,
                dtype=torch.float32,
            ).unsqueeze(1)
        index = {_label_key(c): i for i, c in enumerate(self.classes)}
        try:
            y = np.array([index[_label_key(v)] for v in values.tolist()], dtype=np.int64)
        except KeyError as exc:
            raise InputError(f"target {self.target!r}: label {exc.args[0]!r} is unknown") from None
        if self.task == "binary":
            return torch.tensor(y, dtype=torch.float32).unsqueeze(1)
        return torch.tensor(y)

    def decode(self, out: Tensor) -> tuple[list[Any], Tensor | None]:
        """(labels or values, probability of the predicted class or None) from model output."""
        out = out.detach().cpu().double()
        if self.task == "regression":
            values = out.reshape(out.shape[0], -1) * self.target_std + self.target_mean
            flat = values[:, 0] if values.shape[1] == 1 else values
            return flat.tolist(), None
        if self.task == "binary":
            p1 = torch.sigmoid(out.reshape(-1))
            cls = (p1 > 0.5).long()
            prob = torch.where(cls == 1, p1, 1 - p1)
        else:
            prob, cls = torch.softmax(out, 1).max(1)
        labels = [self.classes[int(i)] for i in cls] if self.classes else cls.tolist()
        return labels, prob

    # predict(model, table, threads="auto") -> (labels or values, probabilities or None): the
    # whole path, features -> the network -> decode. Running the network is training's work
    # (hg.predict), and data/ sits below training/, so the method is
    # handgrad.training.tables.predict_table, set on this class when handgrad.training is
    # imported (`import handgrad` always imports it).
    predict: ClassVar[Callable[..., tuple[list[Any], Tensor | None]]]

    # ---- saving -----------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Tensors (numeric statistics) and JSON-able metadata (everything else)."""
        numeric = [f for f in self.columns if f.kind == "numeric"]
        tensors = {
            PREFIX + "mean": torch.tensor([f.mean for f in numeric], dtype=torch.float64),
            PREFIX + "std": torch.tensor([f.std for f in numeric], dtype=torch.float64),
            PREFIX + "fill": torch.tensor([f.fill for f in numeric], dtype=torch.float64),
            PREFIX + "target": torch.tensor(
                [self.target_mean, self.target_std], dtype=torch.float64
            ),
        }
        meta = {
            "columns": [
                {"name": f.name, "kind": f.kind, "categories": f.categories} for f in self.columns
            ],
            "target": self.target,
            "task": self.task,
            "classes": self.classes,
            "standardize": self.standardize,
            "impute": self.impute,
        }
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> Preprocessing:
        try:
            mean, std, fill = (tensors[PREFIX + k].tolist() for k in ("mean", "std", "fill"))
            target_mean, target_std = tensors[PREFIX + "target"].tolist()
            features, k = [], 0
            for c in meta["columns"]:
                f = Feature(str(c["name"]), str(c["kind"]), categories=list(c["categories"]))
                if f.kind == "numeric":
                    f.mean, f.std, f.fill = mean[k], std[k], fill[k]
                    k += 1
                elif f.kind != "categorical":
                    raise InputError(f"unknown column kind {f.kind!r}")
                features.append(f)
            if k != len(mean):
                raise InputError("statistics do not fit the columns")
            return cls(
                features,
                target=meta["target"],
                task=str(meta["task"]),
                classes=list(meta["classes"]),
                target_mean=target_mean,
                target_std=target_std,
                standardize=bool(meta["standardize"]),
                impute=str(meta["impute"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"damaged preprocessing record ({exc})") from None

    def __repr__(self) -> str:
        kinds = [f"{f.name}:{'onehot' if f.kind == 'categorical' else 'num'}" for f in self.columns]
        return (
            f"Preprocessing({self.task}, target={self.target!r}, features=[{', '.join(kinds)}], "
            f"standardize={self.standardize}, impute={self.impute!r})"
        )

    def to_json(self) -> str:
        return json.dumps(self.state()[1])


def _fit_feature(name: str, values: np.ndarray, categorical: bool, impute: str) -> Feature:
    miss = _missing(values)
    if values.dtype == object or categorical:
        text = np.array([_text(v) for v in values.tolist()], dtype=object)
        cats = sorted({t for t in text.tolist() if t != ""})
        if impute != "none" and miss.any():
            cats.append("")  # missing is a category of its own
        if len(cats) > MAX_CATEGORIES:
            raise InputError(
                f"column {name!r} holds {len(cats)} distinct text values (more than "
                f"{MAX_CATEGORIES}): an identifier, not a category; leave it out with --drop"
            )
        return Feature(name, "categorical", categories=cats)
    present = values[~miss]
    if present.size == 0:
        raise InputError(f"column {name!r} has no values in the training split")
    feature = Feature(name, "numeric", float(present.mean()), float(present.std()))
    if impute != "none":
        feature.fill = float(np.median(present) if impute == "median" else present.mean())
    if feature.std == 0 or not math.isfinite(feature.std):
        feature.std = 1.0  # a constant column: (x - mean) is 0 for every training row
    return feature


NUMERIC_SHARE = 0.9  # a text column with at least this share of numbers: numbers with typos


def _check_numbers(table: Table, name: str, is_target: bool = False) -> None:
    """A column of numbers but for a few cells ('1O.5', '12,3'), which would otherwise become a
    text column one-hot by mistake: an error naming the first such cell where the file has it."""
    values = table[name]
    if values.dtype != object:
        return
    present = [(r, v) for r, v in enumerate(values.tolist()) if v != ""]
    bad = [(r, v) for r, v in present if not is_number(v)]
    if not bad or len(present) - len(bad) < NUMERIC_SHARE * len(present):
        return
    r, v = bad[0]
    more = f" (and {len(bad) - 1} other cell(s))" if len(bad) > 1 else ""
    fix = (
        "fix it or leave that row out"
        if is_target
        else (
            f"fix it, leave it empty for a missing value, or --categorical {name} to one-hot the "
            "column as text"
        )
    )
    raise InputError(
        f"column {name!r} holds numbers, but {table.where(r)} holds {v!r}{more}: {fix}"
    )


def _text(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else (str(int(v)) if v == int(v) else str(v))
    return str(v)


def _apply_feature(f: Feature, values: np.ndarray, where: Callable[[int], str]) -> np.ndarray:
    miss = _missing(values)
    if f.kind == "categorical":
        text = [_text(v) for v in values.tolist()]
        index = {c: i for i, c in enumerate(f.categories)}
        out = np.zeros((len(text), len(f.categories)), dtype=np.float64)
        for r, t in enumerate(text):
            if t not in index:
                what = "a missing value" if t == "" else f"category {t!r}"
                raise InputError(
                    f"column {f.name!r}: {what} ({where(r)}) was not in the training data"
                )
            out[r, index[t]] = 1.0
        return out
    if values.dtype == object:
        r = next(i for i, v in enumerate(values.tolist()) if v != "" and not is_number(v))
        raise InputError(
            f"column {f.name!r}: {where(r)} holds {values[r]!r}, but the model was trained on "
            "numbers"
        )
    x = values.astype(np.float64).copy()
    if miss.any():
        if math.isnan(f.fill):
            raise InputError(
                f"column {f.name!r} has {int(miss.sum())} missing value(s) (data rows "
                f"{_rows_where(miss)}); train with --impute mean or median, or fill them"
            )
        x[miss] = f.fill
    if not np.isfinite(x).all():
        raise InputError(f"column {f.name!r} holds an infinite value")
    return ((x - f.mean) / f.std)[:, None]
