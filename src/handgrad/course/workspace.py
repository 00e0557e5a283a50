"""`handgrad lab new DIR [--chapters 5,9]`: the lab as a student meets it, one file per task
(the seed's chapters 1-4 by default; --chapters picks others by number or name, or all).

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

SEED_CHAPTERS = (1, 2, 3, 4)  # `lab new` without --chapters: the seed lab
# each chapter's name for --chapters (its files: every tasks/task_<n>_*.txt)
CHAPTER_NAMES = {
    1: "neuron",
    2: "activations",
    3: "losses",
    4: "backprop",
    5: "optimizers",
    6: "convolution",
    7: "gru",
    8: "attention",
    9: "layernorm",
}


def chapter_files(chapter: int) -> tuple[str, ...]:
    """The task files of one chapter, in order: ("task_5_1", "task_5_2")."""
    found = resources.files("handgrad.course").joinpath("tasks").iterdir()
    stems = [p.name[:-4] for p in found if p.name.startswith(f"task_{chapter}_")]
    return tuple(sorted(stems, key=lambda s: [int(n) for n in s.split("_")[1:]]))


def all_chapters() -> tuple[int, ...]:
    """Every chapter that has a task file."""
    found = resources.files("handgrad.course").joinpath("tasks").iterdir()
    return tuple(sorted({int(p.name.split("_")[1]) for p in found if p.name.endswith(".txt")}))


def parse_chapters(text: str | None) -> tuple[int, ...]:
    """--chapters: None (the seed's 1-4), "all", or numbers and names joined by commas."""
    if text is None:
        return SEED_CHAPTERS
    known = all_chapters()
    if text.strip() == "all":
        return known
    by_name = {name: n for n, name in CHAPTER_NAMES.items()}
    chosen = set()
    for item in (i.strip().lower() for i in text.split(",")):
        n = by_name.get(item, int(item) if item.isdigit() else None)
        if n not in known:
            listed = ", ".join(f"{c} ({CHAPTER_NAMES.get(c, '?')})" for c in known)
            raise InputError(
                f"lab new --chapters: unknown chapter {item!r}; expected all or some of {listed}"
            )
        chosen.add(n)
    return tuple(sorted(chosen))


def files_of(chapters: Sequence[int]) -> tuple[str, ...]:
    """The task files of `chapters`, in the course's order (an unknown chapter: an error)."""
    unknown = sorted(set(chapters) - set(all_chapters()))
    if unknown:
        known = ", ".join(map(str, all_chapters()))
        raise InputError(f"lab new --chapters: expected some of {known}, got {unknown[0]}")
    return tuple(name for c in sorted(set(chapters)) for name in chapter_files(c))


FILES = files_of(SEED_CHAPTERS)
LANGS = ("ru", "en")

README = {
    "ru": """# Нейронная сеть без готовых решений

Лабораторная работа «Создание нейронной сети без использования готовых решений».
Автор заданий: Никита Владимирович Блохин (NVBlokhin@fa.ru), Финансовый университет, 2020 г.
Рабочее место подготовлено handgrad.

Каждое задание — свой файл: @FILES@ (текст задания — в начале файла).
Замените `raise NotImplementedError` своим кодом; torch.nn, autograd и `.backward()` из torch
в телах классов не используются. Тот же набор заданий — в `lab.ipynb`.
Главы: @CHAPTERS@.

    python @EXAMPLE@.py                  # демонстрация из лабораторной
    handgrad grade .                    # проверка всех заданий
    handgrad grade @EXAMPLE@.py          # одно задание
@BACKPROP@""",
    "en": """# A neural network without ready-made parts

The lab "Building a neural network without ready-made solutions".
Tasks by Nikita Vladimirovich Blokhin (NVBlokhin@fa.ru), Financial University, 2020.
Workspace prepared by handgrad.

Each task has its own file: @FILES@ (the task's text opens the file).
Replace each `raise NotImplementedError` with your code; the class bodies use no torch.nn,
autograd or torch's `.backward()`. The same tasks are in `lab.ipynb`.
Chapters: @CHAPTERS@.

    python @EXAMPLE@.py                  # the lab's demo lines
    handgrad grade .                    # grade every task
    handgrad grade @EXAMPLE@.py          # one task
@BACKPROP@""",
}
BACKPROP = {  # the README's lines for chapter 4's sub-tasks and its training run
    "ru": """    handgrad grade . --task 4.1.2       # одна подзадача
    handgrad grade --train .            # ваши слои обучают настоящую сеть
""",
    "en": """    handgrad grade . --task 4.1.2       # one sub-task
    handgrad grade --train .            # your layers train a real network
""",
}


def readme_text(lang: str, chapters: Sequence[int]) -> str:
    """README.md of a workspace of `chapters`."""
    files = files_of(chapters)
    example = "task_2_2" if "task_2_2" in files else files[0]
    return (
        README[lang]
        .replace("@FILES@", f"`{files[0]}.py` … `{files[-1]}.py`")
        .replace("@CHAPTERS@", ", ".join(f"{c} ({CHAPTER_NAMES.get(c, c)})" for c in chapters))
        .replace("@EXAMPLE@", example)
        .replace("@BACKPROP@", BACKPROP[lang] if 4 in chapters else "")
    )


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


def notebook(lang: str, files: tuple[str, ...] = FILES) -> dict:
    """lab.ipynb as nbformat 4 JSON: per task a markdown cell and two code cells, tagged."""
    cells: list[dict] = []
    for name in files:
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


def new_workspace(
    folder: Path, lang: str = "ru", chapters: Sequence[int] = SEED_CHAPTERS
) -> list[Path]:
    """Writes the workspace of `chapters` into `folder` (created; refused when it holds
    anything)."""
    if lang not in LANGS:
        raise InputError(f"lab new --lang: expected ru or en, got {lang!r}")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"lab new: {folder} is not an empty folder; choose a new one")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    files = files_of(chapters)
    for name in files:
        path = folder / f"{name}.py"
        path.write_text(task_source(name, lang), encoding="utf-8")
        written.append(path)
    nb = folder / "lab.ipynb"
    nb.write_text(
        json.dumps(notebook(lang, files), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    readme = folder / "README.md"
    readme.write_text(readme_text(lang, chapters), encoding="utf-8")
    return [*written, nb, readme]
