"""`handgrad lab new DIR`: the seed lab as a student meets it, one file per task.

Each task's text (ru and en) and skeleton live in tasks/task_N_M.txt, in three sections
(`=== ru`, `=== en`, `=== code`). A task file is the text as its docstring, then the code:
the lab's classes with `raise NotImplementedError` bodies and the lab's demo lines under
`if __name__ == "__main__":`. The workspace never holds a reference solution.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from handgrad.errors import InputError

FILES = tuple(
    f"task_{n}"
    for n in (
        "1_1",
        "1_2",
        "1_3",
        "1_4",
        "1_5",
        "2_1",
        "2_2",
        "2_3",
        "3_1",
        "3_2",
        "3_3",
        "4_1",
        "4_2",
        "4_3",
        "4_4",
        "4_5",
    )
)
LANGS = ("ru", "en")
# the chapters past the seed, by number: their task files (`lab new --chapters`)
CHAPTERS: dict[int, tuple[str, ...]] = {
    6: ("task_6_1", "task_6_2"),
    7: ("task_7_1", "task_7_2"),
    8: ("task_8_1",),
}

README = {
    "ru": """# Нейронная сеть без готовых решений

Лабораторная работа «Создание нейронной сети без использования готовых решений».
Автор заданий: Никита Владимирович Блохин (NVBlokhin@fa.ru), Финансовый университет, 2020 г.
Рабочее место подготовлено handgrad.

Каждое задание — свой файл: `task_1_1.py` … `task_4_5.py` (текст задания — в начале файла).
Замените `raise NotImplementedError` своим кодом; torch.nn, autograd и `.backward()` из torch
в телах классов не используются. Тот же набор заданий — в `lab.ipynb`.

    python task_2_2.py                  # демонстрация из лабораторной
    handgrad grade .                    # проверка всех заданий
    handgrad grade task_2_2.py          # одно задание
    handgrad grade . --task 4.1.2       # одна подзадача
    handgrad grade --train .            # ваши слои обучают настоящую сеть
""",
    "en": """# A neural network without ready-made parts

The lab "Building a neural network without ready-made solutions".
Tasks by Nikita Vladimirovich Blokhin (NVBlokhin@fa.ru), Financial University, 2020.
Workspace prepared by handgrad.

Each task has its own file: `task_1_1.py` … `task_4_5.py` (the task's text opens the file).
Replace each `raise NotImplementedError` with your code; the class bodies use no torch.nn,
autograd or torch's `.backward()`. The same tasks are in `lab.ipynb`.

    python task_2_2.py                  # the lab's demo lines
    handgrad grade .                    # grade every task
    handgrad grade task_2_2.py          # one task
    handgrad grade . --task 4.1.2       # one sub-task
    handgrad grade --train .            # your layers train a real network
""",
}


def sections(name: str) -> dict[str, str]:
    """The sections of tasks/<name>.txt: {"ru": ..., "en": ..., "code": ...}."""
    text = resources.files("handgrad.course").joinpath("tasks", f"{name}.txt").read_text("utf-8")
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("=== "):
            current = line[4:].strip()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return {k: "\n".join(v).strip("\n") for k, v in found.items()}


def task_source(name: str, lang: str) -> str:
    """The text of one task file: the statement as its docstring, then the skeleton."""
    parts = sections(name)
    statement = parts[lang].replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'"""{statement}\n"""\n\n{parts["code"]}\n'


def _notebook_cells(name: str, lang: str) -> list[dict]:
    parts = sections(name)
    code, _, demo = parts["code"].partition('\nif __name__ == "__main__":\n')
    code = "\n".join(line for line in code.splitlines() if not line.startswith("from task_"))
    demo = "\n".join(line[4:] for line in demo.splitlines() if "from task_" not in line)
    tag = {"tags": [name]}
    return [
        {
            "cell_type": "markdown",
            "id": f"{name}-text",
            "metadata": tag,
            "source": parts[lang].splitlines(keepends=True),
        },
        {
            "cell_type": "code",
            "id": f"{name}-code",
            "metadata": tag,
            "execution_count": None,
            "outputs": [],
            "source": code.strip("\n").splitlines(keepends=True),
        },
        {
            "cell_type": "code",
            "id": f"{name}-demo",
            "metadata": tag,
            "execution_count": None,
            "outputs": [],
            "source": demo.strip("\n").splitlines(keepends=True),
        },
    ]


def notebook(lang: str, names: Sequence[str] = FILES) -> dict:
    """lab.ipynb as nbformat 4 JSON: per task a markdown cell and two code cells, tagged."""
    cells: list[dict] = []
    for name in names:
        cells += _notebook_cells(name, lang)
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def chapter_files(chapters: Sequence[int]) -> tuple[str, ...]:
    """The task files of the chapters past the seed asked for, in the course's order."""
    unknown = sorted(set(chapters) - set(CHAPTERS))
    if unknown:
        known = ", ".join(map(str, CHAPTERS))
        raise InputError(f"lab new --chapters: expected some of {known}, got {unknown[0]}")
    return tuple(name for n in sorted(set(chapters)) for name in CHAPTERS[n])


def new_workspace(folder: Path, lang: str = "ru", chapters: Sequence[int] = ()) -> list[Path]:
    """Writes the workspace into `folder` (created; refused when it holds anything): the
    seed's tasks, then those of `chapters` (numbers past the seed)."""
    if lang not in LANGS:
        raise InputError(f"lab new --lang: expected ru or en, got {lang!r}")
    names = FILES + chapter_files(chapters)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"lab new: {folder} is not an empty folder; choose a new one")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        path = folder / f"{name}.py"
        path.write_text(task_source(name, lang), encoding="utf-8")
        written.append(path)
    nb = folder / "lab.ipynb"
    nb.write_text(
        json.dumps(notebook(lang, names), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    readme = folder / "README.md"
    readme.write_text(README[lang], encoding="utf-8")
    return [*written, nb, readme]
