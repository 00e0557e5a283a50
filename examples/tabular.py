"""handgrad's default recipe on scikit-learn's tables, beside scikit-learn on the same rows.

Run:  .venv/bin/python examples/tabular.py [NAME ...] [--seeds 0-2]   (all four: about a minute)

Each table (breast cancer, wine, iris: accuracy; diabetes: R²) is written to a CSV and
trained with `handgrad train --data FILE.csv --target target --seed S` on the default
recipe (AdamW, an ensemble of 5 networks; the commands printed), seeds 0, 1, 2, test
fraction 0.2; both libraries are scored on the same test rows. The issue's goal is stated
on seeds 0, 1, 2; `--seeds 3-22` repeats the comparison on other splits, to see how much of
a difference is the luck of three test splits. StandardScaler + LogisticRegression (Ridge
for diabetes) is fitted twice: on handgrad's own training rows (the same rows), and on its
training and validation rows together (the rows handgrad keeps for early stopping, which a
linear model without early stopping can use).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import statistics
import tempfile
from pathlib import Path

import numpy as np
from sklearn import datasets as sk_datasets
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from handgrad.tools.recipe import TrainConfig, load_dataset, run

TABLES = {
    "breast_cancer": sk_datasets.load_breast_cancer,
    "wine": sk_datasets.load_wine,
    "iris": sk_datasets.load_iris,
    "diabetes": sk_datasets.load_diabetes,
}
SEEDS = (0, 1, 2)  # the goal's


def write_csv(name: str, folder: Path) -> Path:
    bunch = TABLES[name]()
    path = folder / f"{name}.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*bunch.feature_names, "target"])
        for x, t in zip(bunch.data, bunch.target):
            w.writerow([*(repr(float(v)) for v in x), t])
    return path


def one_seed(name: str, path: Path, seed: int, folder: Path) -> tuple[float, float, float]:
    """Test scores for one seed (accuracy, or R² for diabetes): handgrad's, scikit-learn's
    fitted on handgrad's training rows, and scikit-learn's fitted on training + validation."""
    config = TrainConfig(
        data=str(path), target="target", seed=seed, out=str(folder / f"{name}-{seed}")
    )
    config.progress = False
    print(f"  handgrad train --data {path.name} --target target --seed {seed}", flush=True)
    with contextlib.redirect_stdout(io.StringIO()):  # the run's own log
        result = run(config)
        data = load_dataset(config.resolved())  # the same split again: its row numbers
    assert data.rows is not None
    bunch = TABLES[name]()
    X, y = bunch.data, bunch.target
    train, val, test = (data.rows[k].numpy() for k in ("train", "val", "test"))
    regression = data.task == "regression"
    scores = [result.scores["test"]["r2" if regression else "accuracy"]]
    for rows in (train, np.concatenate([train, val])):
        linear = Ridge() if regression else LogisticRegression(max_iter=5000)
        model = make_pipeline(StandardScaler(), linear).fit(X[rows], y[rows])
        pred = model.predict(X[test])
        scores.append(r2_score(y[test], pred) if regression else accuracy_score(y[test], pred))
    return scores[0], float(scores[1]), float(scores[2])


def _cell(values: list[float], bold: bool = False) -> str:
    """The mean, and each seed's score where there are a few."""
    mean = f"{statistics.mean(values):.4f}"
    each = f" ({', '.join(f'{v:.3f}' for v in values)})" if len(values) <= 5 else ""
    return f"{f'**{mean}**' if bold else mean}{each}"


def main(names: list[str], seeds: tuple[int, ...] = SEEDS) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in names:
            path = write_csv(name, folder)
            scores = [one_seed(name, path, s, folder) for s in seeds]
            hg, same, more = ([s[k] for s in scores] for k in range(3))
            metric = "R²" if name == "diabetes" else "accuracy"
            gap = round(statistics.mean(hg) - statistics.mean(more), 4) + 0.0  # goal: >= -0.01
            rows.append(
                f"| {name} | {metric} | {_cell(hg, bold=True)} | {_cell(same)} | {_cell(more)} "
                f"| {gap:+.4f} |"
            )
            print(rows[-1], flush=True)
    print(
        "\n| table | test | handgrad, default recipe | scikit-learn, same training rows "
        "| scikit-learn, training + validation rows | handgrad − scikit-learn (train + val) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


def _seeds(text: str) -> tuple[int, ...]:
    """The seeds of "0-2" or "0,1,2": (0, 1, 2)."""
    if "-" in text:
        first, last = text.split("-", 1)
        return tuple(range(int(first), int(last) + 1))
    return tuple(int(s) for s in text.split(","))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(TABLES) + " (all)")
    parser.add_argument("--seeds", type=_seeds, default=SEEDS, help="e.g. 0-2 (the default)")
    args = parser.parse_args()
    if unknown := [n for n in args.names if n not in TABLES]:
        parser.error(f"unknown table {', '.join(unknown)}; choose from {', '.join(TABLES)}")
    main(args.names or list(TABLES), args.seeds)
