"""The errors handgrad raises for a user's mistake, and nothing else.

Every check of what a user gave (a constructor argument, an input tensor, a file, a flag)
raises one of these classes. Each is also the builtin class that torch raises in the same
place, so code written against torch catches them unchanged:

    InputError(ValueError)              a value is wrong: p=2 for Dropout, reduction="avg"
    ShapeError(InputError, RuntimeError) a tensor's shape or dtype does not fit the module
                                        (torch raises RuntimeError from inside its kernels)
    DimensionError(ShapeError, IndexError) a dim out of range for the input (torch: IndexError)
    ArgumentTypeError(TypeError)        an argument of the wrong type: a list where a tensor goes
    NotSupportedError(InputError, TypeError) a torch option handgrad does not reproduce;
                                        the message reads "not supported: <option>"
    TargetIndexError(InputError, IndexError) a class index outside [0, C) (not ignore_index)
    InvalidKeyError(InputError, KeyError) a refused name: a ModuleDict key with a '.'
    StateDictError(InvalidKeyError, RuntimeError) a state_dict or model file whose keys
                                        or tensors do not fit the module (torch: RuntimeError)
    UsageError(RuntimeError)            a call out of order (backward() more often than
                                        forward()) or where it cannot run (--distributed
                                        outside torchrun)

All derive from HandgradError. The command line prints a HandgradError (and an OSError) as
one line; any other exception is a bug inside handgrad and shows its traceback.
"""

from __future__ import annotations


class HandgradError(Exception):
    """Base class of the errors that report a user's mistake."""


class InputError(HandgradError, ValueError):
    """A value handgrad was given is not one it accepts."""


class ShapeError(InputError, RuntimeError):
    """A tensor whose shape or dtype the module cannot take."""


class DimensionError(ShapeError, IndexError):
    """A dim argument out of range for the input (torch's IndexError)."""


class ArgumentTypeError(HandgradError, TypeError):
    """An argument of the wrong type (torch's TypeError)."""


class NotSupportedError(InputError, TypeError):
    """A torch option that handgrad does not reproduce; refused, never dropped."""

    def __init__(self, owner: str, option: str, detail: str = "") -> None:
        self.owner, self.option, self.detail = owner, option, detail
        super().__init__(f"{owner}: not supported: {option}" + (f" ({detail})" if detail else ""))


class TargetIndexError(InputError, IndexError):
    """A class index outside [0, C) that is not ignore_index (torch raises IndexError)."""


class InvalidKeyError(InputError, KeyError):
    """A name or key that is refused (torch's KeyError): a ModuleDict key with a '.'."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StateDictError(InvalidKeyError, RuntimeError):
    """Keys or tensors of a state_dict that do not fit the module."""


class UsageError(HandgradError, RuntimeError):
    """A call out of order (backward() before forward()) or where it cannot run."""


__all__ = [
    "HandgradError",
    "InputError",
    "ShapeError",
    "DimensionError",
    "ArgumentTypeError",
    "NotSupportedError",
    "TargetIndexError",
    "InvalidKeyError",
    "StateDictError",
    "UsageError",
]
