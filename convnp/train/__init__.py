"""Training: the fit loop, Keras-style model methods, callbacks, metrics and history."""
from .fit import Trainer, predict, softmax
from .history import History
from .callbacks import (Callback, CallbackList, ProgressBar, CSVLogger, JSONLogger, ModelCheckpoint, EarlyStopping,
                        LRScheduler, NaNGuard)
from .metrics import (accuracy, top_k_accuracy, confusion_matrix, precision_recall, classification_report,
                      get_metric)
from .progress import EpochProgress

__all__ = ["Trainer", "predict", "softmax", "History", "Callback", "CallbackList", "ProgressBar", "CSVLogger",
           "JSONLogger", "ModelCheckpoint", "EarlyStopping", "LRScheduler", "NaNGuard", "accuracy",
           "top_k_accuracy", "confusion_matrix", "precision_recall", "classification_report", "get_metric",
           "EpochProgress"]
