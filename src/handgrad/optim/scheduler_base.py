"""LRScheduler: the base of every learning-rate schedule, torch.optim.lr_scheduler's.

As torch's, a schedule sets every parameter group's ``lr`` at construction (step 0) and on
each ``step()``; the group's starting rate is kept in ``group["initial_lr"]`` (``base_lrs``).
Each step applies the schedule's recursive form to the group's current lr (so schedules chain),
which gives torch's float numbers; ``_get_closed_form_lr()`` is the same rate as a formula of
t (used by the deprecated ``step(epoch)`` and by SequentialLR at a milestone).

How often to step: ``interval`` ("epoch", or "batch" for OneCycleLR) and ``needs_metric``
(ReduceLROnPlateau's step takes the monitored value) tell a training loop what to do.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor

from handgrad.errors import ArgumentTypeError, InputError
from handgrad.optim.optimizer import Optimizer

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` was not necessary and is being "
    "deprecated where possible. Please use `scheduler.step()` to step the "
    "scheduler. During the deprecation, if epoch is different from None, the "
    "closed form is used instead of the new chainable form, where available. "
    "Please open an issue if you are unable to replicate your use case: "
    "https://github.com/pytorch/pytorch/issues/new/choose."
)


class MissingInitialLRError(InputError, KeyError):
    """last_epoch >= 0 (a resumed schedule) on groups that have no 'initial_lr' (torch's
    KeyError)."""


def group_values(optimizer: Optimizer, key: str) -> list[Any]:
    """[group[key] for each group], tensors copied so that the list does not alias them."""
    return [
        g[key].clone() if isinstance(g[key], Tensor) else g[key] for g in optimizer.param_groups
    ]


def set_group_value(group: dict[str, Any], key: str, v: Any) -> None:
    """group[key] = v; a tensor-valued entry is filled in place (torch's rule)."""
    if isinstance(group[key], Tensor):
        group[key].fill_(float(v))
    else:
        group[key] = v


def per_group(name: str, optimizer: Optimizer, v: Any) -> list[Any]:
    """One value per parameter group: a list/tuple of that length, or one value for all."""
    if isinstance(v, (list, tuple)):
        if len(v) != len(optimizer.param_groups):
            raise InputError(
                f"{name} must have the same length as optimizer.param_groups. "
                f"{name} has {len(v)} values, param_groups has {len(optimizer.param_groups)}."
            )
        return [x.clone() if isinstance(x, Tensor) else x for x in v]
    return [v.clone() if isinstance(v, Tensor) else v for _ in optimizer.param_groups]


def check_optimizer(owner: str, optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise ArgumentTypeError(
            f"{owner}: {type(optimizer).__name__} is not an Optimizer (a handgrad.optim one)"
        )


class LRScheduler:
    """Base: remembers each group's initial lr and sets group['lr'] = get_lr() on step()."""

    interval = "epoch"  # fit steps it once per "epoch", or once per "batch"
    needs_metric = False  # True: step(metric) takes the monitored value
    _get_lr_called_within_step = False
    _is_initial = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        check_optimizer(type(self).__name__, optimizer)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                lr = group["lr"]
                group.setdefault("initial_lr", lr.clone() if isinstance(lr, Tensor) else lr)
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise MissingInitialLRError(
                        f"{type(self).__name__}: param 'initial_lr' is not specified in "
                        f"param_groups[{i}] when resuming scheduler with last_epoch >= 0"
                    )
        self.base_lrs: list[Any] = group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """Step 0: sets each group's lr to the schedule's first value."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[Any]:
        """The next lr of each group (called inside step; get_last_lr() reads the current)."""
        raise NotImplementedError

    def _warn_outside_step(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, "
                "please use `get_last_lr()`.",
                UserWarning,
                stacklevel=3,
            )

    def step(self, epoch: int | None = None) -> None:
        """Advance one step (call it after optimizer.step()); `epoch` is deprecated, as in
        torch: it jumps to that step with the closed form."""
        if self._step_count == 1 and self._optimizer_not_stepped_yet():
            warnings.warn(
                "Detected call of `lr_scheduler.step()` before `optimizer.step()`. "
                "In PyTorch 1.1.0 and later, you should call them in the opposite order: "
                "`optimizer.step()` before `lr_scheduler.step()`.  Failure to do this "
                "will result in PyTorch skipping the first value of the learning rate schedule. "
                "See more details at "
                "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate",
                UserWarning,
                stacklevel=2,
            )
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _optimizer_not_stepped_yet(self) -> bool:
        """Optimizer.step marks the optimizer; a subclass with its own step() is not checked
        (torch wraps step() to know; handgrad does not patch methods)."""
        if type(self.optimizer).step is not Optimizer.step:
            return False
        return not getattr(self.optimizer, "_opt_called", False)

    def _update_lr(self, epoch: int | None = None) -> None:
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed = getattr(self, "_get_closed_form_lr", None)
                values = closed() if closed is not None else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values):
            set_group_value(group, "lr", lr)
        self._last_lr: list[Any] = group_values(self.optimizer, "lr")

    def get_last_lr(self) -> list[Any]:
        """The lr of each group after the last step."""
        return self._last_lr

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer (torch's keys)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore state_dict(); also handgrad's one-group format {'base_lr', 'last_epoch'}."""
        if "base_lr" in state_dict and "base_lrs" not in state_dict:
            self.base_lrs = [float(state_dict["base_lr"])] * len(self.optimizer.param_groups)
            self._update_lr(int(state_dict["last_epoch"]))
            return
        self.__dict__.update(state_dict)
