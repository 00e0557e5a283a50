"""torch's own optimizer test inputs (torch.testing._internal.common_optimizers.optim_db) run
against hg.optim by benchmarks/optim_db.py: no input fails, and handgrad refuses only
differentiable=True, fused=True and capturable=True, each by name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[1] / "benchmarks" / "optim_db.py"

try:
    import torch.testing._internal.common_optimizers  # noqa: F401 (needs expecttest)
except ImportError as e:  # pragma: no cover - the dev extras install expecttest
    pytest.skip(f"torch.testing._internal cannot be imported: {e}", allow_module_level=True)


def _harness():
    spec = importlib.util.spec_from_file_location("optim_db", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results():
    db = _harness()
    outcomes, not_built = db.run()
    return db, outcomes, not_built


def test_no_input_fails(results):
    db, outcomes, not_built = results
    failed = [o for o in outcomes if o.status == "failed"]
    assert not failed, db.summary(outcomes, not_built)


def test_refusals_only_by_the_allowed_names(results):
    _, outcomes, _ = results
    for o in outcomes:
        if o.status == "refused":
            flag = o.refused_by.removesuffix("=True")
            assert flag in ("differentiable", "fused", "capturable") and o.kwargs[flag] is True
        else:
            assert not any(o.kwargs.get(f) for f in ("differentiable", "fused", "capturable"))


def test_every_optimizer_handgrad_has_is_run_in_both_dtypes(results):
    _, outcomes, not_built = results
    import torch

    for name in ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW"):
        for dtype in (torch.float32, torch.float64):
            mine = [o for o in outcomes if o.optimizer == name and o.dtype == dtype]
            assert sum(o.status == "passed" for o in mine) >= 10, (name, dtype)
    assert {"Adadelta", "NAdam", "LBFGS"} <= set(not_built)
    assert not {"SGD", "Adam"} & set(not_built)
    assert any("Tensor lr" in o.desc and o.optimizer == "Adam" for o in outcomes)
