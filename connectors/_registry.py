"""Ingest formats by name. Each entry is loaded lazily so `transferline --help` imports nothing heavy."""

from __future__ import annotations

import importlib
from collections.abc import Callable

# format name -> "module:function"; the function takes (src, **options) and returns an IngestPlan.
_FORMATS: dict[str, str] = {
    "cmapss": "transferline.connectors.cmapss:read_cmapss",
    "cwru": "transferline.connectors.cwru:read_cwru",
    "neu-det": "transferline.connectors.neu_det:read_neu_det",
    "maintie": "transferline.connectors.maint_text:read_maintie",
    "maintnet": "transferline.connectors.maint_text:read_maintnet",
    "cnc-mill": "transferline.connectors.cnc_mill:read_cnc_mill",
    "csv": "transferline.connectors.tabular:read_csv",
    "parquet": "transferline.connectors.tabular:read_parquet",
    "images": "transferline.connectors.images:read_image_folder",
    "text": "transferline.connectors.text_logs:read_text_log",
    "waveforms": "transferline.connectors.waveforms:read_waveforms",
}


def register_format(name: str, target: str) -> None:
    """Registers ``"module:function"`` as the reader for ``name``."""
    _FORMATS[name] = target


def list_formats() -> list[str]:
    return sorted(_FORMATS)


def create_reader(name: str) -> Callable:
    """Returns the reader function for format ``name``."""
    try:
        module, func = _FORMATS[name].split(":")
    except KeyError:
        raise ValueError(f"unknown ingest format {name!r}; known: {', '.join(list_formats())}") from None
    return getattr(importlib.import_module(module), func)
