"""The `handgrad` command end to end."""

from __future__ import annotations

import subprocess
import sys

from handgrad.cli import main


def test_lab_single_tasks(capsys, tmp_path):
    assert main(["lab", "--task", "1.1", "--task", "3.2"]) == 0
    out = capsys.readouterr().out
    assert "1.1" in out and "4.84" in out and "2 of 2 tasks agree with PyTorch" in out


def test_lab_4_4_writes_its_figure(capsys, tmp_path):
    figure = tmp_path / "sub" / "fit.png"
    assert main(["lab", "--task", "4.4", "--figure", str(figure)]) == 0
    assert figure.stat().st_size > 10_000
    assert "epoch 2000" in capsys.readouterr().out


def test_unknown_task_is_a_clear_error(capsys):
    assert main(["lab", "--task", "9.9"]) == 2
    assert "unknown task 9.9" in capsys.readouterr().err


def test_console_entry_point_help():
    out = subprocess.run(
        [sys.executable, "-m", "handgrad", "lab", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "examples:" in out and "--task" in out
