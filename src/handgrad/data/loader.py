"""DataLoader: batches of (X, y) tensors, full batch, one example, or n at a time."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from handgrad.errors import ArgumentTypeError, InputError


class DataLoader:
    """Yields (X[idx], y[idx]) batches along dim 0.

    Args:
        batch_size: None for the full batch (gradient descent), 1 for one example per step
            (the lab's SGD), n for mini-batches.
        shuffle: a new order every epoch; with `seed`, epoch e's order depends only on
            (seed, e), so a resumed run sees the same batches.
        drop_last: skip a final batch smaller than batch_size.
        device: move each batch there (data can stay on the CPU).
        rank, world_size: keep only every world_size-th example from rank (data parallel).
    """

    def __init__(
        self,
        X: Tensor,
        y: Tensor,
        batch_size: int | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        drop_last: bool = False,
        device: torch.device | str | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not isinstance(X, Tensor) or not isinstance(y, Tensor):
            raise ArgumentTypeError(
                f"DataLoader: X and y must be tensors, got {type(X).__name__}, {type(y).__name__}"
            )
        if X.dim() == 0 or y.dim() == 0 or X.shape[0] != y.shape[0]:
            raise InputError(
                f"DataLoader: X and y must have the same length along dim 0, got X "
                f"{tuple(X.shape)} and y {tuple(y.shape)}"
            )
        if X.shape[0] == 0:
            raise InputError("DataLoader: the dataset is empty")
        if batch_size is not None and (
            not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1
        ):
            raise InputError(
                f"DataLoader: batch_size must be None or an int >= 1, got {batch_size!r}"
            )
        if not 0 <= rank < world_size:
            raise InputError(f"DataLoader: need 0 <= rank < world_size, got {rank}, {world_size}")
        self.X, self.y = X, y
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.drop_last, self.device = drop_last, device
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    @property
    def num_examples(self) -> int:
        """Examples this rank sees per epoch (all of them when world_size is 1)."""
        n = self.X.shape[0]
        return n // self.world_size if self.world_size > 1 else n

    def __len__(self) -> int:
        n, b = self.num_examples, self.batch_size or self.num_examples
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        """Choose the shuffle order of `epoch` (fit calls this; useful when resuming)."""
        self.epoch = epoch

    def _order(self) -> Tensor:
        n = self.X.shape[0]
        if not self.shuffle:
            order = torch.arange(n)
        elif self.seed is None:
            order = torch.randperm(n)
        else:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        if self.world_size > 1:  # every rank sees the same permutation, a disjoint slice of it
            order = order[: self.num_examples * self.world_size][self.rank :: self.world_size]
        return order

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self._order()
        self.epoch += 1
        b = self.batch_size or len(order)
        full_batch_in_order = b >= len(order) and not self.shuffle and self.world_size == 1
        for start in range(0, len(order), b):
            idx = order[start : start + b]
            if self.drop_last and len(idx) < b:
                break
            if full_batch_in_order:
                xb, yb = self.X, self.y  # no copy for plain gradient descent
            else:
                xb, yb = self.X[idx], self.y[idx]
            if self.device is not None:
                xb, yb = (
                    xb.to(self.device, non_blocking=True),
                    yb.to(self.device, non_blocking=True),
                )
            yield xb, yb

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.X.shape[0]} examples, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, {len(self)} batches)"
        )
