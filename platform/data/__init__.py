"""Catalog datasets → windows with labels, domains and assets → torch datasets."""

from .normalize import GroupNormalizer
from .pivot import timeseries_to_runs
from .specs import (CMAPSS_SENSORS, WINDOW_SPECS, WindowSpec, get_window_spec, load_windows, operating_condition,
                    split_by_asset, split_by_time)
from .torch_dataset import WindowDataset
from .windows import Windows, run_windows, waveform_windows

__all__ = ["CMAPSS_SENSORS", "GroupNormalizer", "WINDOW_SPECS", "WindowDataset", "WindowSpec", "Windows",
           "get_window_spec", "load_windows", "operating_condition", "run_windows", "split_by_asset",
           "split_by_time", "timeseries_to_runs", "waveform_windows"]
