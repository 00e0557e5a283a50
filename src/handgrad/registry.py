"""The one registry of module classes: every Module subclass enters it when it is defined.

``Module.__init_subclass__`` calls ``register``, so a class is known the moment its ``class``
statement runs, a user's own subclass too. Everything that needs the list of classes reads it
from here: ``hg.save``/``hg.load`` (the ``type`` in a model file), ``to_torch``/``from_torch``
(each class's ``torch_name``), the command line's choice lists (``cli_name``) and
``handgrad.__all__``. Adding a layer therefore means writing its class, and nothing else.

Names in model files: a class defined inside handgrad is saved by its bare name (``"Linear"``,
as files written before this registry also say); any other class by ``"module:QualName"``, which
``lookup`` imports when the class is not defined yet.
"""

from __future__ import annotations

import importlib
from typing import Any

from handgrad.errors import InputError

_CLASSES: dict[str, type] = {}  # saved name -> class


def saved_name(cls: type) -> str:
    """The name a model file stores for cls: bare inside handgrad, "module:QualName" outside."""
    if cls.__module__.split(".")[0] == "handgrad":
        return cls.__name__
    return f"{cls.__module__}:{cls.__qualname__}"


def register(cls: type) -> None:
    """Enter cls under its saved name. Names starting with "_" are private bases: skipped."""
    if cls.__name__.startswith("_") or "<locals>" in cls.__qualname__:
        return
    _CLASSES[saved_name(cls)] = cls  # a re-run class statement (a notebook cell) replaces it


def lookup(name: str) -> type:
    """The class saved as `name`; a "module:QualName" class is imported if need be."""
    if name in _CLASSES:
        return _CLASSES[name]
    module_name, sep, qualname = name.partition(":")
    if not sep:
        raise InputError(f"unknown layer type {name!r}")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InputError(
            f"the model uses the class {qualname} from {module_name}, which cannot be imported "
            f"({exc}); import or define it before loading"
        ) from None
    cls = _CLASSES.get(name)
    if cls is None or cls is not obj:
        raise InputError(f"{name} is not a handgrad Module class")
    return cls


def classes(base: type | None = None) -> dict[str, type]:
    """{saved name: class} of every registered class (that subclasses `base`, if given)."""
    return {n: c for n, c in _CLASSES.items() if base is None or issubclass(c, base)}


def public() -> dict[str, type]:
    """handgrad's own classes by name: what ``handgrad.__all__`` and ``hg.<Name>`` offer."""
    return {n: c for n, c in _CLASSES.items() if ":" not in n}


def cli_choices(base: type) -> dict[str, type]:
    """{cli_name: class} of the subclasses of `base` that the command line offers."""
    named = {getattr(c, "cli_name", None): c for c in classes(base).values()}
    return {n: c for n, c in named.items() if n}


def torch_counterpart(torch_name: str) -> type | None:
    """The handgrad class whose torch.nn counterpart is `torch_name` (same name preferred)."""
    matches = [c for c in public().values() if getattr(c, "torch_name", None) == torch_name]
    same = [c for c in matches if c.__name__ == torch_name]
    return (same + matches)[0] if matches else None
