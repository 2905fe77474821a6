"""Saving and loading: checkpoints and saved models (npz, no pickle)."""
from .checkpoint import (Checkpoint, CheckpointError, load, load_checkpoint, save_checkpoint, save_model)

__all__ = ["Checkpoint", "CheckpointError", "load", "load_checkpoint", "save_checkpoint", "save_model"]
