"""Training: fit / evaluate / predict (predict_table: through a table's preprocessing),
metrics, History and callbacks, data parallelism."""

from handgrad.training.callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from handgrad.training.compiled import CompiledStep, compile_step
from handgrad.training.loop import NonFiniteLossError, evaluate, fit, predict
from handgrad.training.metrics import METRICS, accuracy, mae, r2
from handgrad.training.tables import predict_table

__all__ = [
    "fit",
    "compile_step",
    "CompiledStep",
    "evaluate",
    "predict",
    "predict_table",
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
