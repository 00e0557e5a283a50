"""A bundled dataset's own scaling of its raw features, saved with a model trained on it.

    digits: x' = x / 16        (pixels 0..16 to [0, 1])
    IDX images: x' = x / 255   (bytes 0..255 to [0, 1])

The loader applies it (``Dataset.scaling`` says which); ``hg.save`` stores it in the model
file beside the network (JSON metadata ``scaling``, never inside the network), ``hg.load``
sets it as ``model.preprocessing``, and ``hg.predict`` on such a model applies it first, so
`handgrad predict` and ``hg.predict`` take the raw features (digits: pixels 0..16), as the
dataset's own files hold them. A model file without it predicts from its inputs as given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from handgrad.errors import InputError


@dataclass(frozen=True)
class Scaling:
    """x' = (x - shift) / scale, the same two numbers for every feature."""

    scale: float = 1.0
    shift: float = 0.0
    source: str = ""  # what it is, for a reader: "digits: pixels 0..16 / 16"

    def apply(self, X: Tensor) -> Tensor:
        """The network's input from raw features, computed in float64 as the loaders do (the
        result in X's floating dtype, or float32 for integer pixels)."""
        dtype = X.dtype if X.is_floating_point() else torch.float32
        return ((X.double() - self.shift) / self.scale).to(dtype)

    def state(self) -> dict[str, Any]:
        return {"kind": "scaling", **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.state())

    @classmethod
    def from_state(cls, meta: Mapping[str, Any]) -> Scaling:
        try:
            scale, shift = float(meta["scale"]), float(meta["shift"])
            source = str(meta.get("source", ""))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"damaged scaling record ({exc})") from None
        if not scale or scale != scale:
            raise InputError(f"damaged scaling record (scale {scale})")
        return cls(scale, shift, source)


DIGITS = Scaling(16.0, source="digits: pixels 0..16 / 16")
BYTES = Scaling(255.0, source="IDX images: bytes 0..255 / 255")
