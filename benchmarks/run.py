"""Benchmarks: handgrad vs torch eager vs a NumPy from-scratch baseline, in one run.

    .venv/bin/python benchmarks/run.py                 # every suite, table on stdout
    .venv/bin/python benchmarks/run.py --json out.json # and the numbers as JSON

The same as `handgrad bench`; the code lives in src/handgrad/bench.py.
"""

from __future__ import annotations

import sys

from handgrad.tools.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
