"""The modules: thin wrappers around handgrad.ops that keep the caches.

Importing this package imports every file in it, and so defines and registers every module
class; ``hg.nn.Linear`` and ``hg.Linear`` are read from the registry (handgrad.registry). A new
layer, in a file here or in a new file, needs no entry in any list.
"""

import importlib
import pkgutil
from typing import Any

from handgrad import registry
from handgrad.nn.penalty import L2, L1Penalty

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")  # each file registers its classes


def __getattr__(name: str) -> Any:
    classes = registry.public()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module 'handgrad.nn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *registry.public()])


__all__ = [*registry.public(), "L2", "L1Penalty"]
