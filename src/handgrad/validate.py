"""The small argument checks that constructors share: each raises a handgrad error (also
torch's builtin) naming the owner, the argument and what was expected."""

from __future__ import annotations

import numbers

from handgrad.errors import ArgumentTypeError, InputError


def positive_int(owner: str, name: str, value: object) -> int:
    """`value` as an int >= 1 (a bool is refused: True is not a size)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArgumentTypeError(f"{owner}: {name} must be a positive int, got {value!r}")
    if value <= 0:
        raise InputError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def check_int(owner: str, name: str, value: object) -> int:
    """`value` as an int of any sign (a bool is refused)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArgumentTypeError(f"{owner}: {name} must be an int, got {value!r}")
    return value


def check_number(owner: str, name: str, value: object) -> float:
    """A real number (an int, a float, a NumPy scalar), as torch takes it."""
    if not isinstance(value, numbers.Real):
        raise ArgumentTypeError(
            f"{owner}: {name} must be a float or int, got {type(value).__name__}"
        )
    return value  # type: ignore[return-value]


def check_algorithm(owner: str, algorithm: object, choices: tuple[str, ...]) -> str:
    """A module's ``algorithm=`` argument: one of its choices (handgrad.kernels' variants)."""
    if not isinstance(algorithm, str) or algorithm not in choices:
        raise InputError(f"{owner}: algorithm must be one of {choices}, got {algorithm!r}")
    return algorithm
