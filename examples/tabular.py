"""handgrad's default recipe on scikit-learn's tables, beside scikit-learn on the same rows.

Run:  .venv/bin/python examples/tabular.py [NAME ...]      (all four: about a minute)

Each table (breast cancer, wine, iris: accuracy; diabetes: R²) is written to a CSV and
trained with `handgrad train --data FILE.csv --target target --seed S` on the default
recipe (the commands printed), seeds 0, 1, 2, test fraction 0.2; both libraries are scored
on the same test rows.
StandardScaler + LogisticRegression (Ridge for diabetes) is fitted twice: on handgrad's own
training rows (the same rows), and on its training and validation rows together (the rows
handgrad keeps for early stopping, which a linear model without early stopping can use).
"""

from __future__ import annotations

import contextlib
import csv
import io
import statistics
import sys
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
SEEDS = (0, 1, 2)


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
    mean = f"{statistics.mean(values):.4f}"
    return f"{f'**{mean}**' if bold else mean} ({', '.join(f'{v:.3f}' for v in values)})"


def main(names: list[str]) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in names:
            path = write_csv(name, folder)
            scores = [one_seed(name, path, s, folder) for s in SEEDS]
            hg, same, more = ([s[k] for s in scores] for k in range(3))
            metric = "R²" if name == "diabetes" else "accuracy"
            rows.append(
                f"| {name} | {metric} | {_cell(hg, bold=True)} | {_cell(same)} | {_cell(more)} |"
            )
            print(rows[-1], flush=True)
    print(
        "\n| table | test | handgrad, default recipe | scikit-learn, same training rows "
        "| scikit-learn, training + validation rows |"
    )
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1:] or list(TABLES))
