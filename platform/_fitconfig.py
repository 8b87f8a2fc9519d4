"""Config files of the text fit commands (``tag fit``, ``retrieve fit``).

A file has a ``data`` section (dataset, holdout, val_fraction, split_seed) and the command's own
section (``tagging``: the fields of ``TagConfig``; ``retrieval``: those of ``PairConfig`` and ``k``).
It is the shape each run folder's ``config.yaml`` is written in, so a run is repeated from its
folder (``--config RUN/config.yaml --out NEW``). Flags given on the command line win over the file;
what neither sets takes the command's default.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .errors import TransferlineError

DATA_KEYS = ("dataset", "holdout", "val_fraction", "split_seed")
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "str | None": (str, type(None)), "bool": (bool,)}
_DATA_TYPES = {"dataset": "str", "holdout": "float", "val_fraction": "float", "split_seed": "int"}


def _check_types(where: str, section: str, values: dict, types: dict) -> None:
    for key, value in values.items():
        allowed = _TYPES.get(types.get(key, ""))
        if allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
            raise TransferlineError(f"{where}{section}.{key}: expected {types[key]}, found {value!r}")


def read_fit_config(path: str | Path, section: str, cls: type, extra: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """The ``data`` and ``section`` mappings of the YAML file at ``path``, every key checked against
    ``DATA_KEYS`` and the fields of ``cls`` (plus ``extra``); errors name the file and the key."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise TransferlineError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise TransferlineError(f"--config {path}: not valid YAML ({exc})") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise TransferlineError(f"--config {path}: expected a mapping with sections data and {section}, "
                                f"found {type(raw).__name__}")
    known = {"data": DATA_KEYS, section: (*(f.name for f in dataclasses.fields(cls)), *extra)}
    for key in raw:
        if key not in known:
            raise TransferlineError(f"--config {path}: unknown section {key!r} (known: {', '.join(known)})")
    parts = []
    for name, keys in known.items():
        part = raw.get(name) or {}
        if not isinstance(part, dict):
            raise TransferlineError(f"--config {path}: {name} must be a mapping, found {type(part).__name__}")
        for key in part:
            if key not in keys:
                raise TransferlineError(f"--config {path}: {name}.{key}: unknown key (known: {', '.join(keys)})")
        parts.append(dict(part))
    return parts[0], parts[1]


def fit_settings(args, section: str, cls: type, data_defaults: dict, extra: dict | None = None):
    """``(data, config, extra)`` of a fit command: its ``--config`` file (if any) under the flags the
    user gave (those not None), over ``data_defaults``, ``cls``'s defaults and ``extra``'s."""
    extra = dict(extra or {})
    data, fields = read_fit_config(args.config, section, cls, tuple(extra)) if args.config else ({}, {})
    where = f"--config {args.config}: " if args.config else ""
    data = {**data_defaults, **data, **{k: v for k in DATA_KEYS if (v := getattr(args, k, None)) is not None}}
    if not data.get("dataset"):
        raise TransferlineError("--dataset is required (or data.dataset in --config)")
    names = [f.name for f in dataclasses.fields(cls)]
    given = {**fields, **{k: v for k in (*names, *extra) if (v := getattr(args, k, None)) is not None}}
    _check_types(where, "data", data, _DATA_TYPES)
    _check_types(where, section, given, {**{f.name: str(f.type) for f in dataclasses.fields(cls)},
                                         **{k: type(v).__name__ for k, v in extra.items()}})
    for key in extra:
        extra[key] = given.pop(key, extra[key])
    try:
        config = cls(**given)
    except (TypeError, ValueError) as exc:
        raise TransferlineError(f"{where}{section}: {exc}") from None
    return data, config, extra
