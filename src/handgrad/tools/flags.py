"""The `handgrad train` flags, read from TrainConfig's fields (tools/config.py): each field is
a flag --its-name-with-dashes, its type read from the annotation, its help, metavar and
choices from the field's metadata. So a new flag is a new field, and the code that uses it."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from handgrad.tools.checks import flag_name as flag_name
from handgrad.tools.config import TrainConfig, parse_ints
from handgrad.tools.text_recipe import DEFAULT_CORPUS

# the annotation of a field -> the argparse type of its flag (str: none needed)
TYPES: dict[str, Any] = {
    "int": int,
    "int | None": int,
    "float": float,
    "float | None": float,
    "str": None,
    "str | None": None,
    "tuple[int, ...]": parse_ints,
}
REPEATED = "tuple[str, ...]"  # a repeatable flag: --drop a --drop b gives ("a", "b")


def train_fields(config: type = TrainConfig) -> list[dataclasses.Field[Any]]:
    """The fields that are flags (all but those whose metadata says flag=None)."""
    return [f for f in dataclasses.fields(config) if f.metadata.get("flag", "") is not None]


def _annotation(f: dataclasses.Field[Any]) -> str:
    """The field's annotation as written: "int | None" (a string already under
    `from __future__ import annotations`, as in tools/config.py)."""
    if isinstance(f.type, str):
        return f.type
    return f.type.__name__ if isinstance(f.type, type) else str(f.type)


def add_train_flags(parser: argparse.ArgumentParser, config: type = TrainConfig) -> None:
    """One argument per field, in the dataclass's order, stored under the field's name."""
    for f in train_fields(config):
        meta = {k: v for k, v in f.metadata.items() if k not in ("flag", "parser_default")}
        kw: dict[str, Any] = {"dest": f.name, **meta}
        annotation = _annotation(f)
        if annotation == "bool":
            kw.setdefault("action", "store_true")  # store_false: a flag that turns True off
        elif annotation == REPEATED:
            kw.update(action="append", default=[])
        else:
            if annotation not in TYPES and "type" not in meta:
                where = f"{config.__name__}.{f.name}"
                raise AssertionError(f"{where}: give its flag a type= in flag(...)")
            kw.setdefault("type", TYPES.get(annotation))
            kw["default"] = f.metadata.get("parser_default", f.default)
        parser.add_argument(flag_name(f), **kw)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig that the parsed flags describe."""
    values = {f.name: getattr(args, f.name) for f in train_fields()}
    for f in train_fields():
        if _annotation(f) == REPEATED:
            values[f.name] = tuple(values[f.name])
    if values["data"] is None:  # the default data depends on --arch
        values["data"] = DEFAULT_CORPUS if values["arch"] == "gpt" else "digits"
    return TrainConfig(**values)
