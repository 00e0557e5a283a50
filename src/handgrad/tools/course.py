"""`handgrad lab new` and `handgrad grade`: the lab as a course (handgrad.course)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from handgrad.errors import InputError

GRADE_EXAMPLES = """examples:
  handgrad grade my_lab                     every task of a workspace (handgrad lab new my_lab)
  handgrad grade my_lab/task_2_2.py         one task file
  handgrad grade my_lab --task 4.1.2 --json one sub-task, as JSON
  handgrad grade class/                     a folder of students' workspaces: also writes a
                                            gradebook, class-gradebook.csv and .json beside it
  handgrad grade --train my_lab             the student's classes train the 4.4 parabola and digits

each task runs alone in a sandboxed child process on hidden inputs; a wrong answer that equals
a classic mistake is named (its id and a message in --lang)
"""
GRADEBOOK_MARK = "handgrad gradebook"


def add_grade_parser(sub: Any, formatter: Any) -> None:
    p = sub.add_parser(
        "grade",
        help="grade a lab workspace (handgrad lab new) task by task, naming the mistake",
        epilog=GRADE_EXAMPLES,
        formatter_class=formatter,
    )
    p.add_argument(
        "path",
        metavar="PATH",
        help="a workspace, a task file, a lab notebook (.ipynb) or a folder of workspaces",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--lang", choices=("ru", "en"), default="en", help="messages' language")
    p.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="N.M",
        help="grade only this task (repeatable), e.g. 2.2 or 4.1.2",
    )
    p.add_argument(
        "--out", help="where a class's gradebook goes (FILE.csv, and FILE.json beside it)"
    )
    p.add_argument(
        "--train",
        action="store_true",
        help="train the 4.4 parabola and digits with the student's classes",
    )
    p.set_defaults(func=grade)


def lab_new(args: argparse.Namespace) -> int:
    from handgrad.course.workspace import new_workspace, parse_chapters

    if not args.dir:
        raise InputError("lab new: expected a folder, e.g. handgrad lab new my_lab")
    written = new_workspace(Path(args.dir), args.lang, parse_chapters(args.chapters))
    tasks = [p.name for p in written if p.suffix == ".py"]
    print(
        f"wrote {len(written)} files into {args.dir}: "
        f"{tasks[0]} ... {tasks[-1]}, lab.ipynb, README.md"
    )
    print(
        f"next: edit a task file, run it (python {Path(args.dir) / tasks[0]}), "
        f"then: handgrad grade {args.dir}"
    )
    return 0


def _is_workspace(folder: Path) -> bool:
    return any(folder.glob("task_*.py"))


def _table(reports: list[Any]) -> str:
    lines = [f"{'task':<7} {'result':<14} {'points':<7} message"]
    for r in reports:
        result = "passed" if r.passed else r.status.upper() if r.status == "failed" else r.status
        mistakes = f"[{', '.join(r.mistakes)}] " if r.mistakes else ""
        note = f" ({'; '.join(r.notes)})" if r.notes and r.status == "failed" else ""
        lines.append(
            f"{r.task:<7} {result:<14} {r.points}/{r.max_points:<5} {mistakes}{r.message}{note}"
        )
    got, total = sum(r.points for r in reports), sum(r.max_points for r in reports)
    lines.append(
        f"total: {got}/{total} points, {sum(r.passed for r in reports)}/{len(reports)} tasks passed"
    )
    return "\n".join(lines)


def _check_tasks(tasks: list[str]) -> None:
    from handgrad.course.probes import TASKS

    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise InputError(
            f"grade --task: unknown task {', '.join(unknown)}; choose from {', '.join(TASKS)}"
        )


def _write_new(path: Path, text: str, is_ours: bool) -> None:
    """Writes `text` to `path`, replacing only a file handgrad wrote (is_ours), by one rename."""
    if path.exists() and (path.is_dir() or not is_ours):
        raise InputError(
            f"grade --out: {path} exists and is not a gradebook handgrad wrote; choose another path"
        )
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _ours(path: Path, marker: str) -> bool:
    try:
        return path.is_file() and marker in path.read_text(encoding="utf-8")[:200]
    except (OSError, UnicodeDecodeError):
        return False


def _gradebook_paths(out: Path) -> tuple[Path, Path]:
    csv_path = out if out.suffix == ".csv" else out.with_suffix(".csv")
    return csv_path, csv_path.with_suffix(".json")


def _check_gradebook_path(out: Path) -> None:
    """The gradebook's two files can be written, and neither is a file of the user's."""
    from handgrad.tools.outputs import check_output_file

    for path, marker in zip(_gradebook_paths(out), ("student,points,max_points", GRADEBOOK_MARK)):
        check_output_file(path, "grade --out")
        if path.exists() and not _ours(path, marker):
            raise InputError(
                f"grade --out: {path} exists and is not a gradebook handgrad wrote; "
                "choose another path"
            )


def write_gradebook(out: Path, students: dict[str, list[Any]]) -> list[Path]:
    """The class's gradebook: out (CSV, one row per student) and out with .json (every report)."""
    from handgrad.course.probes import TASKS

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["student", "points", "max_points", *TASKS])
    for name, reports in students.items():
        by_task = {r.task: r.points for r in reports}
        writer.writerow(
            [
                name,
                sum(by_task.values()),
                sum(r.max_points for r in reports),
                *(by_task.get(t, "") for t in TASKS),
            ]
        )
    csv_path, json_path = _gradebook_paths(out)
    first_line = "student,points,max_points"
    _write_new(csv_path, buf.getvalue(), _ours(csv_path, first_line))
    data = {
        "format": GRADEBOOK_MARK,
        "students": {n: [r.as_dict() for r in rs] for n, rs in students.items()},
    }
    _write_new(
        json_path,
        json.dumps(data, ensure_ascii=False, indent=1) + "\n",
        _ours(json_path, GRADEBOOK_MARK),
    )
    return [csv_path, json_path]


def grade(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.exists():
        raise InputError(f"grade: {path} does not exist")
    _check_tasks(args.task)
    if path.is_file() and path.suffix == ".ipynb":  # its tasks' cells, as a workspace's files
        from handgrad.course.notebook import write_workspace

        with tempfile.TemporaryDirectory(prefix="handgrad-notebook-") as tmp:
            folder = Path(tmp) / path.stem
            folder.mkdir()
            write_workspace(path, folder)
            return _grade(argparse.Namespace(**{**vars(args), "path": str(folder)}), folder)
    return _grade(args, path)


def _grade(args: argparse.Namespace, path: Path) -> int:
    from handgrad.course.grader import grade_class, grade_path

    if args.train:
        from handgrad.course.train import run_train

        given = [
            f for f, on in (("--task", args.task), ("--json", args.json), ("--out", args.out)) if on
        ]
        if given:
            raise InputError(f"grade --train: {', '.join(given)} apply to grading, not to --train")
        return run_train(path, lang=args.lang, out=sys.stdout)
    if path.is_dir() and not _is_workspace(path):
        students = {d.name: d for d in sorted(path.iterdir()) if d.is_dir() and _is_workspace(d)}
        if not students:
            raise InputError(
                f"grade: {path} holds no task_*.py files and no workspaces of students"
            )
        out = (
            Path(args.out)
            if args.out
            else path.resolve().parent / f"{path.resolve().name}-gradebook.csv"
        )
        _check_gradebook_path(out)  # before grading: a bad --out costs nothing
        results = grade_class(students, lang=args.lang, tasks=args.task or None)
        written = write_gradebook(out, results)
        if args.json:
            print(
                json.dumps(
                    {n: [r.as_dict() for r in rs] for n, rs in results.items()},
                    ensure_ascii=False,
                    indent=1,
                )
            )
        else:
            for name, reports in results.items():
                print(f"== {name}\n{_table(reports)}\n")
            print("gradebook: " + ", ".join(str(p) for p in written))
        return 0
    if args.out:
        raise InputError(
            f"grade --out: places a class's gradebook; {path} is one student's work "
            "(grade the folder that holds the students' workspaces)"
        )
    if path.is_file() and not (path.suffix == ".py" and path.stem.startswith("task_")):
        raise InputError(f"grade: {path} is not a task file (task_N_M.py) or a workspace folder")
    reports = grade_path(path, lang=args.lang, tasks=args.task or None)
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], ensure_ascii=False, indent=1))
    else:
        print(_table(reports))
    return 0 if all(r.passed for r in reports) else 1
