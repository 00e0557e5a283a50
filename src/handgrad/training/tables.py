"""Prediction through a table's preprocessing: its features, the network, its labels back.

It runs the network (predict), so it belongs to training; the preprocessing itself sits
with the data (handgrad.data.preprocessing), below training, and offers this function as its
method ``Preprocessing.predict`` (what ``hg.load``'s ``model.preprocessing.predict`` runs).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from handgrad.data.preprocessing import Preprocessing
from handgrad.module import Module
from handgrad.threads import Threads
from handgrad.training.loop import predict


def predict_table(
    prep: Preprocessing, model: Module, data: Any, threads: Threads = "auto"
) -> tuple[list[Any], Tensor | None]:
    """(labels or values, probability of the predicted class or None) for the table `data`:
    its columns by name through `prep`, the network (hg.predict), and `prep.decode`."""
    p = next(iter(model.parameters()), None)
    X = prep.features(data, dtype=p.dtype if p is not None else torch.float32)
    return prep.decode(predict(model, X, threads=threads))


Preprocessing.predict = predict_table
