"""`handgrad grade --train PATH`: the student's own classes train real networks.

Every 4.4/4.5 class the student wrote (Linear, Activation_ReLU, MSELoss, SoftmaxCrossEntropyLoss)
is checked on small inputs (handgrad.course.adapter); one that fails or is not written is
replaced by handgrad's own. Then two networks train through ``hg.fit``, each beside handgrad's
own network from the same initial weights:

- the 4.4 parabola: Linear(1, 10) -> ReLU -> Linear(10, 1), MSE, SGD lr 0.02, 2001 epochs, full
  batch, as the seed (its 1/N conventions: the update the student's own loop makes);
- digits: Linear(64, 32) -> ReLU -> Linear(32, 10), 4.5's softmax cross-entropy, SGD, mini-batches.

The student's code runs only in the sandbox (handgrad.sandbox); handgrad's networks train here.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor

from handgrad.course.adapter import (
    Verdict,
    check_linear,
    check_loss,
    check_relu,
    wrap_layer,
    wrap_loss,
)
from handgrad.course.train_text import LOSS_NAME, TEXT, say
from handgrad.data import datasets
from handgrad.errors import InputError
from handgrad.module import Module
from handgrad.nn.activation import ReLU
from handgrad.nn.class_loss import CrossEntropyLoss
from handgrad.nn.containers import Sequential
from handgrad.nn.linear import Linear
from handgrad.nn.loss import Loss, MSELoss
from handgrad.optim.sgd import SGD
from handgrad.sandbox import Limits, Sandbox
from handgrad.threads import policy
from handgrad.training import Callback, NonFiniteLossError, evaluate, fit

FILES = ("task_4_4.py", "task_4_5.py")
# role -> (the student's class name, the task files that may define it, first found wins)
ROLES = {
    "Linear": ("Linear", ("task_4_4",)),
    "ReLU": ("Activation_ReLU", ("task_4_4",)),
    "MSE": ("MSELoss", ("task_4_4", "task_4_2")),
    "CE": ("SoftmaxCrossEntropyLoss", ("task_4_5",)),
}
CONTRACT_POWER = {"Linear": 1, "MSE": 1, "CE": 0}  # the powers of N the seed and 4.5 use


@dataclass(frozen=True)
class Network:
    """One training run: Linear(sizes[0], sizes[1]) -> ReLU -> Linear(sizes[1], sizes[2])."""

    name: str
    sizes: tuple[int, int, int]
    loss: str  # "MSE" or "CE"
    lr: float
    epochs: int
    batch_size: int | None  # None: the full batch


NETWORKS = {
    "parabola": Network("parabola", (1, 10, 1), "MSE", lr=0.02, epochs=2001, batch_size=None),
    "digits": Network("digits", (64, 32, 10), "CE", lr=0.1, epochs=20, batch_size=32),
}
USES = {"parabola": ("Linear", "ReLU", "MSE"), "digits": ("Linear", "ReLU", "CE")}  # their roles
LIMITS = Limits(cpu_seconds=60.0, wall_seconds=120.0)  # one sandboxed call, with margin


# ---- data, initial weights and one training run (the same code for both networks) ----------
Data = tuple[Tensor, Tensor, Tensor | None, Tensor | None]  # X, y, X_test, y_test


def load_data(name: str) -> Data:
    """The network's data, loaded here and handed to the sandbox (the same tensors for both)."""
    d = datasets.parabola() if name == "parabola" else datasets.digits()
    return d.X, d.y, d.X_test, d.y_test


def initial_weights(net: Network) -> list[list[Any]]:
    """[[W1, b1], [W2, b2]] as lists: randn(out, in) then randn(out) per layer after
    manual_seed(0), the draws of the seed's Linear (and of hg.Linear(init="normal")), from a
    private generator: the caller's random state is left alone."""
    g = torch.Generator().manual_seed(0)
    (i, h, o) = net.sizes
    shapes = ((h, i), (h,), (o, h), (o,))
    W1, b1, W2, b2 = (torch.randn(*s, generator=g) for s in shapes)
    layers = [(W1, b1), (W2, b2)]
    return [[W.tolist(), b.tolist()] for W, b in layers]


def _train(model: Module, loss: Loss, net: Network, epochs: int, data: Data) -> dict[str, Any]:
    """fit with SGD; the per-epoch losses, the final one, the test accuracy (digits), and the
    epoch where the loss stopped being finite (None if it never did)."""
    losses: list[float] = []

    class Log(Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Module) -> bool:
            losses.append(logs["loss"])
            return False

    X, y, X_test, y_test = data
    opt = SGD(model.parameters(), lr=net.lr)
    diverged = None
    try:
        fit(
            model,
            loss,
            opt,
            (X, y),
            epochs=epochs,
            batch_size=net.batch_size,
            callbacks=[Log()],
            progress=False,
            seed=0,
            threads=1,
        )
    except NonFiniteLossError:
        diverged = len(losses) + 1
    accuracy = None
    if X_test is not None and y_test is not None and diverged is None:
        accuracy = evaluate(model, (X_test, y_test), metrics=["accuracy"], threads=1)["accuracy"]
    final = losses[-1] if losses else float("nan")
    return {"losses": losses, "final": final, "accuracy": accuracy, "diverged": diverged}


def reference_network(net: Network, init: list[list[Any]]) -> tuple[list[Module], Loss]:
    """handgrad's own layers and loss for `net`, from the initial weights `init`."""
    layers: list[Module] = []
    for W, b in init:
        lin = Linear(len(W[0]), len(W))
        lin.weight, lin.bias = torch.tensor(W), torch.tensor(b)
        layers.append(lin)
    layers.insert(1, ReLU())
    return layers, MSELoss() if net.loss == "MSE" else CrossEntropyLoss()


def train_reference(net: Network, init: list[list[Any]], epochs: int, data: Data) -> dict[str, Any]:
    """handgrad's own network trained from `init` (in this process: no student code)."""
    layers, loss = reference_network(net, init)
    return _train(Sequential(*layers), loss, net, epochs, data)


# ---- inside the sandbox: the student's classes ------------------------------------------------
def _student_classes(workspace: str, modules: list[str], roles: tuple[str, ...]) -> dict[str, Any]:
    """role -> the student's class, or a Verdict when it is missing or its file fails. Only the
    files these roles need are imported, so a file that fails costs only its own classes."""
    sys.path.insert(0, workspace)
    loaded: dict[str, Any] = {}
    found: dict[str, Any] = {}
    for role in roles:
        cls_name, files = ROLES[role]
        found[role] = Verdict("missing", "not in the files given")
        for f in (f for f in files if f in modules):
            if f not in loaded:
                loaded[f] = _import(f)
            if isinstance(loaded[f], Verdict) or hasattr(loaded[f], cls_name):
                found[role] = getattr(loaded[f], cls_name, loaded[f])
                break
    return found


def _import(name: str) -> Any:
    """The student's module `name`, imported afresh, or a Verdict saying why it does not import."""
    sys.modules.pop(name, None)
    try:
        return importlib.import_module(name)
    except Exception as e:  # noqa: BLE001 - the student's file: reported, not raised
        return Verdict("wrong", f"{name}.py does not import: {type(e).__name__}: {e}")


def _check(role: str, cls: Any) -> Verdict:
    checks = {"Linear": check_linear, "ReLU": check_relu}
    try:
        return checks[role](cls) if role in checks else check_loss(cls, role)
    except NotImplementedError:
        return Verdict("missing", "raises NotImplementedError (not written yet)")
    except Exception as e:  # noqa: BLE001 - the student's error, reported
        return Verdict("wrong", f"raised {type(e).__name__}: {e}".splitlines()[0])


def probe(workspace: str, modules: list[str], role: str) -> tuple[str, str, int]:
    """(sandboxed) (status, reason, power) of the student's class for `role`."""
    cls = _student_classes(workspace, modules, (role,))[role]
    v = cls if isinstance(cls, Verdict) else _check(role, cls)
    return (v.status, v.reason, v.power)


def train_student(
    workspace: str,
    modules: list[str],
    net_name: str,
    epochs: int,
    init: list[list[Any]],
    powers: dict[str, int | None],
    data: Data,
) -> dict[str, Any]:
    """(sandboxed) `net_name` with the student's class for each role whose power is given (the
    adapters assume that power of N), handgrad's own for the others; trained from `init`."""
    net = NETWORKS[net_name]
    classes = _student_classes(
        workspace, modules, tuple(r for r, p in powers.items() if p is not None)
    )
    layers, loss = reference_network(net, init)
    for k in (0, 2):
        if powers.get("Linear") is not None:
            W, b = init[k // 2]
            lin = classes["Linear"](len(W[0]), len(W))
            lin.weights, lin.biases = torch.tensor(W), torch.tensor(b)
            layers[k] = wrap_layer("Linear", lin, powers["Linear"] or 0)
    if powers.get("ReLU") is not None:
        layers[1] = wrap_layer("ReLU", classes["ReLU"](), 0)
    if powers.get(net.loss) is not None:
        loss = wrap_loss(classes[net.loss](), powers[net.loss] or 0)
    return _train(Sequential(*layers), loss, net, epochs, data)


# ---- the command: resolve the path, run the sandboxed steps, print the table ------------------
def _resolve(path: Path) -> tuple[Path, list[str]]:
    """(the workspace folder, the task modules to read): a folder reads 4.2, 4.4 and 4.5; a
    task_4_4.py or task_4_5.py file reads that file alone."""
    if not path.exists():
        raise InputError(f"grade --train: {path} does not exist")
    if path.is_dir():
        return path.resolve(), ["task_4_2", "task_4_4", "task_4_5"]
    if path.name not in FILES:
        raise InputError(
            f"grade --train: expected a workspace folder or one of {', '.join(FILES)}, got {path}"
        )
    return path.resolve().parent, [path.stem]


def _present(workspace: Path, modules: list[str]) -> list[str]:
    return [m for m in modules if (workspace / f"{m}.py").is_file()]


def _verdict_lines(verdicts: dict[str, tuple[str, str, int]], lang: str) -> list[str]:
    """One line per class: whose class trained, and why handgrad's stands in."""
    t, lines = TEXT[lang], []
    for role, (status, reason, _) in verdicts.items():
        reason = say(reason, lang)
        if status == "ok":
            who = t["yours"]
        elif status == "scaled":
            who = t["scaled"].format(reason=reason)
        else:
            who = t["reference"].format(why=t[status], reason=reason)
        lines.append(f"  {ROLES[role][0]:<24} {who}")
    return lines


def _note(name: str, verdicts: dict[str, tuple[str, str, int]], t: dict[str, Any]) -> str | None:
    """What the 1/N conventions do to `name`'s run. The parabola steps N^(q_MSE - p_Linear)
    times the true gradient (adapter.py: the student's own loop); digits normalises them."""
    power = {r: v[2] for r, v in verdicts.items() if v[0] in ("ok", "scaled")}
    scaled = {r for r, v in verdicts.items() if v[0] == "scaled"}
    if name == "digits":
        return t["normalised"] if scaled & {"Linear", "CE"} else None
    q, p = power.get("MSE", 1), power.get("Linear", 1)
    if q != p:
        return t["why+" if q > p else "why-"]
    return t["moved"] if scaled & {"Linear", "MSE"} else None


def _table(net: Network, mine: dict[str, Any], ours: dict[str, Any], t: dict[str, Any]) -> str:
    (i, h, o) = net.sizes
    batch = t["full"] if net.batch_size is None else t["batch"].format(n=net.batch_size)
    layers = f"Linear({i}, {h}) -> ReLU -> Linear({h}, {o})"
    head = t["net"].format(
        name=net.name,
        layers=layers,
        loss=LOSS_NAME[net.loss],
        lr=net.lr,
        epochs=len(ours["losses"]),
        batch=batch,
    )

    def loss(r: dict[str, Any]) -> str:
        return t["diverged"].format(e=r["diverged"]) if r["diverged"] else f"{r['final']:.6f}"

    rows = [t["columns"], (t["final"], loss(mine), loss(ours))]
    if ours["accuracy"] is not None:
        acc = [f"{r['accuracy']:.1%}" if r["accuracy"] is not None else "-" for r in (mine, ours)]
        rows.append((t["accuracy"], *acc))
    body = [f"  {a:<18} {b:>22} {c:>14}" for a, b, c in rows]
    return "\n".join([head, *body])


@dataclass
class Report:
    """What train_workspace found: each role's verdict, and per network (your run, handgrad's
    run), or why there is none (a string: skipped, or the sandbox's reason)."""

    verdicts: dict[str, tuple[str, str, int]]
    runs: dict[str, tuple[dict[str, Any], dict[str, Any]] | str]


def _failed(outcome: Any) -> tuple[str, str, int]:
    """The verdict of a sandboxed call that returned nothing (a timeout, a crash, an exit)."""
    return ("wrong", f"{outcome.reason}: {outcome.detail}", 0)


def _powers(name: str, verdicts: dict[str, tuple[str, str, int]]) -> dict[str, int | None]:
    """The power of N each adapter assumes: the contract's on the parabola (the student's own
    loop), the measured one on digits; None where handgrad's class stands in."""
    usable = {r: v[2] for r, v in verdicts.items() if v[0] in ("ok", "scaled")}
    if name == "parabola":
        return {r: CONTRACT_POWER.get(r, 0) if r in usable else None for r in USES[name]}
    return {r: usable.get(r) for r in USES[name]}


def train_workspace(
    path: Path,
    epochs: dict[str, int] | None = None,
    limits: Limits = LIMITS,
    box: Sandbox | None = None,
) -> Report | None:
    """Check the student's classes at `path`, then train each network that uses one of them,
    in the sandbox, beside handgrad's own; None when `path` holds no task file to read.
    `epochs` overrides a network's epochs (the tests train digits for fewer); `box`: a sandbox
    to run in (the tests share one), else one opened here with `limits`."""
    workspace, modules = _resolve(path)
    modules = _present(workspace, modules)
    if not modules:
        return None
    # one thread here: small networks, and no thread pool alive in a process that forks
    with policy(1, 0), contextlib.ExitStack() as stack:
        if box is None:
            box = stack.enter_context(Sandbox(workspace, limits, shared=True))
        verdicts = {}
        for role in ROLES:  # one call each: a file that hangs costs its own classes only
            outcome = box.run(probe, str(workspace), modules, role)
            verdicts[role] = outcome.value if outcome.ok else _failed(outcome)
        runs = {
            name: _run_both(box, str(workspace), modules, net, verdicts, (epochs or {}).get(name))
            for name, net in NETWORKS.items()
        }
    return Report(verdicts, runs)


def _run_both(
    box: Sandbox,
    workspace: str,
    modules: list[str],
    net: Network,
    verdicts: dict[str, tuple[str, str, int]],
    epochs: int | None,
) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """(the student's run, handgrad's run) of `net` from the same weights and data; "skip"
    when none of its classes is the student's, or the sandbox's reason when theirs failed."""
    powers = _powers(net.name, verdicts)
    if all(p is None for p in powers.values()):
        return "skip"
    n = net.epochs if epochs is None else epochs
    init, data = initial_weights(net), load_data(net.name)
    mine = box.run(train_student, workspace, modules, net.name, n, init, powers, data)
    ours = train_reference(net, init, n, data)
    return (mine.value, ours) if mine.ok else f"{mine.reason}: {mine.detail}"


def run_train(path: Path, *, lang: str = "en", out: TextIO) -> int:
    """Trains the 4.4 parabola and digits with the student's classes at `path` (a workspace or
    a task_4_4.py / task_4_5.py file), beside handgrad's own network from the same initial
    weights; writes the report to `out`; returns the exit status (0 when it trained)."""
    if lang not in TEXT:
        raise InputError(f"grade --train: --lang must be one of {', '.join(TEXT)}, got {lang!r}")
    t = TEXT[lang]
    report = train_workspace(Path(path))
    if report is None:
        print(t["nothing"].format(path=path), file=out)
        return 1
    print(t["header"].format(path=path), file=out)
    print("\n".join(_verdict_lines(report.verdicts, lang)), file=out)
    trained = False
    for name, run in report.runs.items():
        print(file=out)
        if run == "skip":
            print(t["skip"].format(name=name), file=out)
        elif isinstance(run, str):
            print(f"{name}: " + t["failed"].format(detail=say(run, lang)), file=out)
        else:
            trained = True
            print(_table(NETWORKS[name], run[0], run[1], t), file=out)
            note = _note(name, report.verdicts, t)
            if note:
                print(note, file=out)
    if not trained and all(r == "skip" for r in report.runs.values()):
        print(t["none_written"], file=out)
        return 1
    return 0
