"""`handgrad grade --train PATH`: the student's own classes train real networks.

PLACEHOLDER: the train helper replaces this module; the grader's command line calls only
run_train, with this signature.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from handgrad.errors import UsageError


def run_train(path: Path, *, lang: str = "en", out: TextIO) -> int:
    """Trains the 4.4 parabola and digits with the student's classes at `path` (a workspace or
    a task_4_4.py / task_4_5.py file), beside handgrad's own network from the same initial
    weights; writes the report to `out`; returns the exit status (0 when it trained)."""
    raise UsageError("grade --train: not built yet")
