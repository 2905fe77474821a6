"""The version of convnp (one place; pyproject.toml repeats it), importable from any layer."""
__version__ = "0.1.0"
