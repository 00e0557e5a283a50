"""notebooks/lab.ipynb executes from top to bottom without an error."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "lab.ipynb"


def test_notebook_executes(tmp_path):
    shutil.copy(NOTEBOOK, tmp_path / "lab.ipynb")
    nb = nbformat.read(tmp_path / "lab.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
    assert (tmp_path / "fit_4_4.png").exists()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "agree: True" in text and "FAIL  input 0" in text
