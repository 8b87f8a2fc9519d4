"""Serving registered models: a plain-Python predictor, and a Ray Serve application around it.

Importing this package loads neither Ray nor tsai (nor torch, until a name is used):
``transferline.serve.app`` holds the Ray Serve application and is imported only when serving.
"""

__all__ = ["LoadedModel", "Predictor", "RequestError", "validate"]


def __getattr__(name: str):
    if name in __all__:
        from . import predictor

        return getattr(predictor, name)
    raise AttributeError(name)
