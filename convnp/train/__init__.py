"""Training: the fit loop, the Keras-style ``Model`` methods, callbacks, metrics and history."""
from .fit import Trainer, predict, softmax
from .model import Model, use_model_api
from .history import History
from .callbacks import (Callback, CallbackList, ProgressBar, CSVLogger, JSONLogger, ModelCheckpoint, EarlyStopping,
                        LRScheduler, NaNGuard)
from .metrics import (accuracy, top_k_accuracy, confusion_matrix, precision_recall, classification_report,
                      get_metric)
from .progress import EpochProgress

__all__ = ["Trainer", "Model", "use_model_api", "predict", "softmax", "History", "Callback", "CallbackList", "ProgressBar", "CSVLogger",
           "JSONLogger", "ModelCheckpoint", "EarlyStopping", "LRScheduler", "NaNGuard", "accuracy",
           "top_k_accuracy", "confusion_matrix", "precision_recall", "classification_report", "get_metric",
           "EpochProgress"]
