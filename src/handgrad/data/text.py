"""Character-level text: the tokens, a train/validation split and batches of fixed-length
windows, for the GPT (examples/gpt.py) and any sequence model.

With no path the corpus is the standard library's ``pydoc_data.topics`` (Python's own help
texts, about 465,000 characters of English), which every Python installation ships: nothing
to download. A path reads the user's own text, UTF-8, any script.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from handgrad.errors import ArgumentTypeError, InputError

__all__ = ["TextData", "text", "default_corpus"]


def default_corpus() -> str:
    """The text of every topic in ``pydoc_data.topics``, in the order of their names."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


@dataclass
class TextData:
    """Token ids of a text, split in two, and the vocabulary to read them back.

    ``train``/``val``: 1-D int64 ids; ``chars``: the vocabulary (id i is chars[i]).
    ``batch(split, batch_size)`` draws windows: x = ids[i : i+T], y = ids[i+1 : i+T+1].
    """

    name: str
    chars: list[str]
    train: Tensor
    val: Tensor
    block_size: int

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> Tensor:
        """The ids of s (int64); a character outside the vocabulary is an InputError."""
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted({c for c in s if c not in index})
        if unknown:
            raise InputError(
                f"text {self.name}: characters outside the vocabulary: "
                f"{''.join(unknown)[:40]!r} (the vocabulary has {self.vocab_size} characters)"
            )
        return torch.tensor([index[c] for c in s], dtype=torch.long)

    def decode(self, ids: Tensor | list[int]) -> str:
        """The text of a sequence of ids."""
        values = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        return "".join(self.chars[i] for i in values)

    def batch(
        self, split: str, batch_size: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """(x, y), each (batch_size, block_size) int64: random windows of the split, y the
        next character of every position of x."""
        if split not in ("train", "val"):
            raise InputError(f"text {self.name}: split must be 'train' or 'val', got {split!r}")
        ids = self.train if split == "train" else self.val
        T = self.block_size
        start = torch.randint(len(ids) - T, (batch_size,), generator=generator)
        offsets = start.unsqueeze(1) + torch.arange(T)  # (B, T)
        return ids[offsets], ids[offsets + 1]


def text(
    path: str | Path | None = None,
    block_size: int = 128,
    val_fraction: float = 0.1,
) -> TextData:
    """Character-level tokens of the text at `path` (UTF-8), or of the standard library's
    pydoc_data.topics with no path. The last `val_fraction` of the text is the validation
    split; each split must hold more than `block_size` characters."""
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size <= 0:
        raise InputError(f"text: block_size must be a positive int, got {block_size!r}")
    if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise InputError(f"text: val_fraction must be in (0, 1), got {val_fraction!r}")
    if path is None:
        name, corpus = "pydoc_data.topics", default_corpus()
    else:
        if not isinstance(path, (str, Path)):
            raise ArgumentTypeError(f"text: path must be a str or Path, got {type(path).__name__}")
        name, raw = str(path), Path(path).read_bytes()
        if b"\x00" in raw:
            raise InputError(f"text: {path} looks binary (it has NUL bytes); expected UTF-8 text")
        try:
            corpus = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"text: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    if not corpus:
        raise InputError(f"text: {name} is empty")
    chars = sorted(set(corpus))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in corpus], dtype=torch.long)
    n_val = int(len(ids) * val_fraction)
    train, val = ids[: len(ids) - n_val], ids[len(ids) - n_val :]
    if min(len(train), len(val)) <= block_size:
        raise InputError(
            f"text: {name} has {len(ids)} characters: too short for windows of {block_size} in "
            f"both splits (train {len(train)}, validation {len(val)}); use a longer text or a "
            "smaller block_size"
        )
    return TextData(name, chars, train, val, block_size)
