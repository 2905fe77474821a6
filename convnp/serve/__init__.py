"""The interactive CNN playground (``convnp serve``): draw a digit, watch every layer respond."""


def create_app(*args, **kwargs):
    from .app import create_app as _create_app
    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
