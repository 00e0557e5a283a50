"""The `handgrad` command. `handgrad lab` runs the seed lab beside PyTorch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

LAB_EXAMPLES = """examples:
  handgrad lab                              all tasks, figure in runs/lab/fit_4_4.png
  handgrad lab --task 4.4 --figure fit.png  one task
  handgrad lab --task 2.2 --task 3.2        several tasks
"""


def _lab(args: argparse.Namespace) -> int:
    import torch

    from handgrad import lab

    unknown = [t for t in args.task if t not in lab.TASKS]
    if unknown:
        print(
            f"handgrad lab: unknown task {', '.join(unknown)}; choose from {', '.join(lab.TASKS)}",
            file=sys.stderr,
        )
        return 2
    torch.set_printoptions(precision=4, sci_mode=None)
    names = args.task or list(lab.TASKS)
    figure = None if args.no_figure else args.figure
    results = [lab.task_4_4(figure) if n == "4.4" else lab.TASKS[n]() for n in names]
    for r in results:
        print(r, end="\n\n")
    bad = [r.task for r in results if not r.agree]
    print(
        f"{len(results) - len(bad)} of {len(results)} tasks agree with PyTorch"
        + (f"; disagreeing: {', '.join(bad)}" if bad else "")
    )
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="handgrad",
        description="Neural networks from scratch on PyTorch tensors, every backward by hand.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_lab = sub.add_parser(
        "lab",
        help="run the seed lab's tasks 1.1-4.4 beside PyTorch",
        epilog=LAB_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_lab.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="N.M",
        help="run only this task (repeatable), e.g. 4.4",
    )
    p_lab.add_argument(
        "--figure",
        default="runs/lab/fit_4_4.png",
        help="where task 4.4 writes its PNG of the 11 fits (default: %(default)s)",
    )
    p_lab.add_argument("--no-figure", action="store_true", help="skip the 4.4 figure")
    p_lab.set_defaults(func=_lab)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
