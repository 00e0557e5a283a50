"""Training: fit / evaluate / predict, metrics, History and callbacks, data parallelism."""

from handgrad.training.callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from handgrad.training.loop import NonFiniteLossError, evaluate, fit, predict
from handgrad.training.metrics import METRICS, accuracy, mae, r2

__all__ = [
    "fit",
    "evaluate",
    "predict",
    "NonFiniteLossError",
    "History",
    "Callback",
    "EarlyStopping",
    "ModelCheckpoint",
    "METRICS",
    "accuracy",
    "mae",
    "r2",
]
