"""Reading a CSV file's cells: what Table.read_csv (handgrad.data.preprocessing) and
`handgrad predict` build on.

- UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8" writes one: without this it
  would become part of the first column's name, ``'\\ufeffalcohol'``);
- the separator is the one of comma, semicolon and tab that splits the header line into the
  most columns (a tie: comma), so Excel's semicolon files of European locales read as they
  look; in a file separated by semicolons or tabs, a column of numbers written with a
  decimal comma ("3,5") is read as numbers;
- blank lines are skipped, and every data row keeps its line number in the file, so an error
  names the line a user can find.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from handgrad.errors import InputError

SEPARATORS = (",", ";", "\t")
SEPARATOR_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}


@dataclass
class CsvRows:
    """A CSV file's header, its data rows (strings) and each row's line number in the file."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]
    separator: str

    @property
    def separator_name(self) -> str:
        return SEPARATOR_NAMES[self.separator]

    def columns(self) -> dict[str, list[str]]:
        """{name: the column's cells}, a decimal comma read as a point where the separator is
        not a comma and every cell of the column is then a number."""
        out = {h: [r[j] for r in self.rows] for j, h in enumerate(self.header)}
        if self.separator != ",":
            for name, cells in out.items():
                points = [c.replace(",", ".") for c in cells]
                if points != cells and all(_number(c) for c in points):
                    out[name] = points
        return out


def is_number(text: str) -> bool:
    """Whether a cell reads as a number (what float() takes)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(text: str) -> bool:
    """A number, or a missing value (no evidence either way)."""
    return text.strip() == "" or is_number(text)


def separator_of(line: str) -> str:
    """The separator that splits `line` (the header) into the most columns; a tie: comma."""
    counts = [len(next(csv.reader([line], delimiter=s), [])) for s in SEPARATORS]
    return SEPARATORS[counts.index(max(counts))]


def read_rows(path: str | os.PathLike[str]) -> CsvRows:
    """The header and data rows of a CSV file (see the module docstring); a row whose number of
    values differs from the header's is an error naming its line."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise FileNotFoundError(f"cannot read {p}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{p} is not a UTF-8 text CSV file (byte {exc.start}); save it as CSV UTF-8"
        ) from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    sep = separator_of(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    rows, lines = [], []
    try:
        for r in reader:
            if r and any(c.strip() for c in r):
                rows.append(r)
                lines.append(reader.line_num)
    except csv.Error as exc:
        raise InputError(f"{p}, line {reader.line_num}: not readable as CSV ({exc})") from None
    if len(rows) < 2:
        raise InputError(f"{p} needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    where = "" if sep == "," else f" (separated by {SEPARATOR_NAMES[sep]}s)"
    for r, line in zip(rows[1:], lines[1:]):
        if len(r) != len(header):
            raise InputError(
                f"{p}: line {line} has {len(r)} values, the header {len(header)}{where}"
            )
    return CsvRows(p, header, rows[1:], lines[1:], sep)
