"""`handgrad grade`: each task of a workspace run alone in the sandbox on hidden inputs,
compared with the reference, and a wrong answer named by the catalogued mistake it equals.

The grader's own process never runs student code: `runner.run_probe` runs in the sandbox's
child and sends back raw outputs; the reference and the catalogue's variants run here.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from handgrad.course import catalogue, compare, probes, readymade, reference, runner
from handgrad.course.workspace import SEED_CHAPTERS
from handgrad.sandbox import Limits, Sandbox

TASKS = probes.TASKS
HIDDEN_SEED = 20260  # the hidden inputs' seed (the lab's are manual_seed(0))
# where a task builds on an earlier task's class: {task: {name: the task that defines it}}
DEPENDS: dict[str, dict[str, str]] = {
    "1.5": {"Linear": "1.4"},
    "4.1.3": {"MSELoss": "4.1.1", "Neuron": "4.1.2"},
    "4.2.3": {"MSELoss": "4.2.1", "Neuron": "4.2.2"},
    "4.3.2": {"MSELoss": "4.2.1", "Linear": "4.3.1"},
    "4.4.3": {"MSELoss": "4.2.1", "Activation_ReLU": "4.4.1", "Linear": "4.4.2"},
    "6.2": {"Im2col": "6.1"},
    "7.2": {"GRUCell": "7.1"},
}
# the names whose bodies a (sub-)task grades (for the ready-made scan)
OWNS: dict[str, tuple[str, ...]] = {
    "4.1.1": ("MSELoss",), "4.1.2": ("Neuron",), "4.1.3": ("train",),
    "4.2.1": ("MSELoss",), "4.2.2": ("Neuron",), "4.2.3": ("train",),
    "4.3.1": ("Linear",), "4.3.2": ("train",),
    "4.4.1": ("Activation_ReLU",), "4.4.2": ("Linear",), "4.4.3": ("train",),
    "1.5": ("NeuralNet",),
}  # fmt: skip
PAIRS = {"4.1.2": "4.1.1", "4.2.2": "4.2.1"}  # 4.x.2 -> 4.x.1: conventions may trade factors
TRAIN_TASKS = {"4.1.3", "4.2.3", "4.3.2", "4.4.3"}

TEXT = {
    "passed": {"en": "passed", "ru": "верно"},
    "absent": {
        "en": "not attempted: {file} is missing or still raises NotImplementedError",
        "ru": "не выполнено: {file} отсутствует или ещё вызывает NotImplementedError",
    },
    "crashed": {"en": "the code did not run ({reason}): {detail}", "ru": "код не выполнился ({reason}): {detail}"},
    "at": {"en": "first wrong: {where}: expected {exp}, got {got}", "ru": "первое неверное: {where}: ожидалось {exp}, получено {got}"},
    "wrong": {"en": "wrong result", "ru": "неверный результат"},
    "pair": {
        "en": "passed: {a} and {b} move a factor between them (the lab puts 2(p − t) in the loss and the 1/N in the neuron); their product is right",
        "ru": "верно: {a} и {b} переносят множитель друг в друга (в лабораторной 2(p − t) — в потере, 1/N — в нейроне); их произведение верно",
    },
    "subst": {"en": "graded with the reference {name} of {task} in place of yours", "ru": "проверено с эталонным {name} из {task} вместо вашего"},
}  # fmt: skip


@dataclass
class TaskReport:
    """One (sub-)task's grade."""

    task: str
    passed: bool
    points: int
    max_points: int
    status: str  # "passed", "failed", "not attempted", "error"
    mistake: str | None = None
    mistakes: list[str] = field(default_factory=list)
    message: str = ""
    first_wrong: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def task_file(folder: Path, task: str) -> Path:
    return folder / f"task_{reference.file_task(task).replace('.', '_')}.py"


def needed(tasks: list[str]) -> list[str]:
    """The tasks to grade for `tasks`, with every task they build on, in the lab's order."""
    want = set(tasks)
    for task in tasks:
        want |= set(DEPENDS.get(task, {}).values())
        if task in PAIRS:
            want.add(PAIRS[task])
    want |= {t for t, a in PAIRS.items() if a in want}
    return [t for t in TASKS if t in want]


class Grader:
    """Grades workspaces with one sandbox; the reference's and the variants' outputs are
    computed once per task."""

    def __init__(self, box: Sandbox, lang: str = "en", seed: int = HIDDEN_SEED) -> None:
        self.box, self.lang, self.seed = box, lang, seed
        self._expected: dict[str, Any] = {}
        self._variants: dict[str, list[tuple[catalogue.Mistake, Any]]] = {}

    def text(self, key: str, **kw: Any) -> str:
        return TEXT[key][self.lang].format(**kw)

    def expected(self, task: str) -> Any:
        if task not in self._expected:
            self._expected[task] = probes.probe(task, reference.namespace(task), self.seed)
        return self._expected[task]

    def variants(self, task: str) -> list[tuple[catalogue.Mistake, Any]]:
        if task not in self._variants:
            found = []
            for m in catalogue.for_task(task):
                try:
                    found.append((m, probes.probe(task, m.namespace(), self.seed)))
                except probes.NotAttempted:
                    continue
            self._variants[task] = found
        return self._variants[task]

    def run_student(self, path: Path, task: str, subs: dict[str, str]) -> Any:
        outcome = self.box.run(runner.run_probe, str(path), task, self.seed, subs)
        if outcome.ok:
            outcome.value = runner.unpack(outcome.value)
        return outcome

    def grade_folder(self, folder: Path, tasks: list[str] | None = None) -> list[TaskReport]:
        """Every task of one workspace (or those of `tasks` and what they build on)."""
        present = _chapters_present(folder)
        order = needed(tasks) if tasks else [t for t in TASKS if _chapter(t) in present]
        reports: dict[str, TaskReport] = {}
        for task in order:
            reports[task] = self.grade_task(folder, task, reports)
            if task in PAIRS:
                self._pair(folder, PAIRS[task], task, reports)
        return [reports[t] for t in order if not tasks or t in tasks]

    def _subs(self, task: str, reports: dict[str, TaskReport]) -> dict[str, str]:
        deps = DEPENDS.get(task, {})
        return {
            name: dep for name, dep in deps.items() if dep in reports and not reports[dep].passed
        }

    def grade_task(self, folder: Path, task: str, reports: dict[str, TaskReport]) -> TaskReport:
        path = task_file(folder, task)
        max_points = 2 if task in TRAIN_TASKS else 1
        report = TaskReport(task, False, 0, max_points, "not attempted")
        if not path.is_file():
            report.message = self.text("absent", file=path.name)
            return report
        subs = self._subs(task, reports)
        report.notes = [self.text("subst", name=n, task=t) for n, t in subs.items()]
        outcome = self.run_student(path, task, subs)
        if not outcome.ok:
            report.status = "error"
            report.message = self.text("crashed", reason=outcome.reason, detail=outcome.detail)
            return report
        if outcome.value == "not attempted":
            report.message = self.text("absent", file=path.name)
            return report
        self.judge(task, outcome.value, report)
        found = readymade.scan(
            path, OWNS.get(task, tuple(reference.CLASSES[reference.file_task(task)]))
        )
        if found:
            report.passed, report.points, report.status = False, 0, "failed"
            report.mistakes.insert(0, catalogue.READY_MADE.id)
            report.mistake = report.mistakes[0]
            report.message = f"{getattr(catalogue.READY_MADE, self.lang)} ({', '.join(found)})"
        return report

    def judge(self, task: str, got: Any, report: TaskReport) -> None:
        """Fills `report` from the student's outputs `got`."""
        exp = self.expected(task)
        places = []
        for case, value in exp.items():
            places += _case_wrong(task, case, got.get(case), value)
        if not places:
            report.passed, report.points, report.status = True, report.max_points, "passed"
            report.message = self.text("passed")
            return
        report.status, report.first_wrong = "failed", places[0]
        cases = list(dict.fromkeys(p["case"].split(".")[0].split("[")[0] for p in places))
        report.mistakes = self.name_mistakes(task, got, exp, cases)
        report.mistake = report.mistakes[0] if report.mistakes else None
        first = places[0]
        where = first["case"] + (str(first["index"]) if first["index"] else "")
        at = self.text("at", where=where, exp=_short(first["expected"]), got=_short(first["got"]))
        named = [getattr(catalogue.find(task, m), self.lang) for m in report.mistakes]
        report.message = "; ".join(named or [self.text("wrong")]) + f" ({at})"

    def name_mistakes(self, task: str, got: Any, exp: Any, cases: list[str]) -> list[str]:
        """The catalogued variants that explain the wrong cases: each agrees with the student
        wherever the student is right, and equals the student's output on wrong cases; the
        one explaining the most cases first, then what remains (a greedy cover)."""
        right = [c for c in exp if c not in cases]
        explains: dict[str, set[str]] = {}
        for mistake, outputs in self.variants(task):
            if any(_case_wrong(task, c, outputs.get(c), exp[c]) for c in right):
                continue  # a variant that is wrong where the student is right is not theirs
            covered = {c for c in cases if compare.same(got.get(c), outputs.get(c))}
            if covered:
                explains.setdefault(mistake.id, covered)
        named: list[str] = []
        left = set(cases)
        while left:
            best = max(explains, key=lambda m: len(explains[m] & left), default=None)
            if best is None or not explains[best] & left:
                break
            named.append(best)
            left -= explains.pop(best)
        return named

    def _pair(self, folder: Path, first: str, second: str, reports: dict[str, TaskReport]) -> None:
        """4.x.1 and 4.x.2 off from the lab's convention by reciprocal factors both pass."""
        a, b = reports.get(first), reports.get(second)
        if a is None or b is None or a.passed and b.passed:
            return
        if any(r.status != "failed" for r in (a, b) if not r.passed):
            return
        chain = ".".join(first.split(".")[:2]) + ".chain"
        outcome = self.run_student(task_file(folder, first), chain, {})
        if not outcome.ok or outcome.value == "not attempted":
            return
        if compare.wrong(outcome.value, self.expected(chain)):
            return
        note = self.text("pair", a=first, b=second)
        for r in (a, b):
            r.passed, r.points, r.status, r.mistake, r.mistakes = (
                True,
                r.max_points,
                "passed",
                None,
                [],
            )
            r.message, r.first_wrong = note, None


def _chapter(task: str) -> int:
    """The chapter of `task`, the seed's chapters 1-4 counted as one (0)."""
    chapter = int(task.split(".")[0])
    return 0 if chapter in SEED_CHAPTERS else chapter


def _chapters_present(folder: Path) -> set[int]:
    """The chapters with a task file in `folder` (lab new --chapters wrote only those): every
    task of such a chapter is graded, a missing file as not attempted. A folder without any
    task file counts as the seed lab."""
    stems = [p.stem.split("_") for p in folder.glob("task_*_*.py")]
    found = {_chapter(s[1]) for s in stems if s[1].isdigit()}
    return found or {0}


def _case_wrong(task: str, case: str, got: Any, exp: Any) -> list[dict[str, Any]]:
    """Where one case's output differs from the reference (3.2's tiny target: any finite
    loss of at least −log(1e-7) is right)."""
    if task == "3.2" and case == "tiny_target" and probes.tiny_target_accepted(got):
        return []
    rtol = compare.TRAIN_RTOL if task in TRAIN_TASKS else compare.RTOL
    return compare.wrong(got, exp, case, rtol)


def _short(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


LIMITS = Limits(cpu_seconds=10, wall_seconds=20)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """The reference runs on one thread: the tasks are tiny, and a process that forks (the
    sandbox) must not hold an OpenMP pool, whose threads a forked child would wait on."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def grade_path(
    path: Path, *, lang: str = "en", tasks: list[str] | None = None, seed: int = HIDDEN_SEED
) -> list[TaskReport]:
    """Grades one workspace folder, or one task file (its tasks only), with one sandbox."""
    path = path.resolve()
    folder = path if path.is_dir() else path.parent
    if path.is_file():
        stem = path.stem.removeprefix("task_").replace("_", ".")
        tasks = [t for t in TASKS if reference.file_task(t) == stem and (not tasks or t in tasks)]
    with _one_thread(), _copies([folder]) as (work,), Sandbox(work, LIMITS, shared=True) as box:
        return Grader(box, lang, seed).grade_folder(work, tasks)


def grade_class(
    students: dict[str, Path], *, lang: str = "en", tasks: list[str] | None = None
) -> dict[str, list[TaskReport]]:
    """Grades each student's workspace; one sandbox (in the class folder) for them all."""
    folders = [Path(f).resolve() for f in students.values()]
    with _one_thread(), _copies(folders) as work:
        with Sandbox(work[0].parent if work else Path.cwd(), LIMITS, shared=True) as box:
            grader = Grader(box, lang)
            return {name: grader.grade_folder(w, tasks) for name, w in zip(students, work)}


@contextlib.contextmanager
def _copies(folders: list[Path]) -> Iterator[list[Path]]:
    """A temporary copy of each workspace's Python files (task_*.py and any module of the
    student's beside them), side by side in one folder: the sandbox's working folder, so what
    a submission writes lands there and goes with it; the student's own folder is only read."""
    with tempfile.TemporaryDirectory(prefix="handgrad-grade-") as tmp:
        work = []
        for i, folder in enumerate(folders):
            copy = Path(tmp) / f"{i:03d}-{folder.name}"
            copy.mkdir()
            for source in sorted(folder.glob("*.py")):
                shutil.copy2(source, copy / source.name)
            work.append(copy)
        yield work
