"""Small helpers shared by the zoo families: per-layer seeds and optional pretrained weights."""
from __future__ import annotations

import itertools


def seed_stream(seed=None):
    """Yield one seed per layer: None forever (fresh entropy) or seed, seed+1, ... (reproducible models)."""
    if seed is None:
        return itertools.repeat(None)
    return itertools.count(int(seed))


def finish(model, weights=None):
    """Load ``weights`` (a path to .pth/.safetensors/.npz/.h5) into ``model`` with strict checking; return it."""
    if weights is not None:
        model.load_weights(weights, strict=True)
    return model
