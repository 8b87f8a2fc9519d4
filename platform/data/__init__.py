"""Catalog datasets → samples (windows, images) with labels, domains and assets → batches.

Names load on first use (PEP 562), so that the serving path can import ``transferline.data.inputs``
and ``transferline.data.preprocess`` (numpy only) without torch, pyarrow or the catalog.
"""

from importlib import import_module

_SOURCES = {
    "batch": ["Batch"],
    "inputs": ["MODALITIES", "ImageInput", "InputSpec", "SeriesInput", "TabularInput", "TextInput"],
    "normalize": ["GroupNormalizer"],
    "pivot": ["timeseries_to_runs"],
    "specs": ["CMAPSS_SENSORS", "IMAGE_SPECS", "TEXT_SPECS", "WINDOW_SPECS", "WindowSpec", "get_data_spec",
              "get_window_spec", "load_windows", "run_classes", "operating_condition", "series_input",
              "split_by_asset", "split_by_time", "split_windows", "table_windows"],
    "stream": ["StreamPlan", "WindowStream", "fit_normalizer", "index_assets", "plan_stream", "split_keys"],
    "torch_dataset": ["WindowDataset"],
    "windows": ["Windows", "run_windows", "waveform_windows"],
}
_WHERE = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
