"""Catalog datasets → samples (windows, images) with labels, domains and assets → batches."""

from .batch import Batch
from .inputs import MODALITIES, ImageInput, InputSpec, SeriesInput, TabularInput, TextInput
from .normalize import GroupNormalizer
from .pivot import timeseries_to_runs
from .specs import (CMAPSS_SENSORS, IMAGE_SPECS, TEXT_SPECS, WINDOW_SPECS, WindowSpec, get_data_spec, get_window_spec,
                    load_windows, run_classes, operating_condition, series_input, split_by_asset, split_by_time, table_windows)
from .stream import StreamPlan, WindowStream, fit_normalizer, index_assets, plan_stream, split_keys
from .torch_dataset import WindowDataset
from .windows import Windows, run_windows, waveform_windows

__all__ = ["Batch", "CMAPSS_SENSORS", "IMAGE_SPECS", "TEXT_SPECS", "get_data_spec", "run_classes", "GroupNormalizer", "ImageInput", "InputSpec", "MODALITIES", "SeriesInput",
           "TabularInput", "TextInput", "series_input", "StreamPlan", "WINDOW_SPECS", "WindowDataset", "WindowSpec",
           "WindowStream", "Windows", "fit_normalizer", "get_window_spec", "index_assets", "load_windows",
           "operating_condition", "plan_stream", "run_windows", "split_by_asset", "split_by_time", "split_keys",
           "table_windows", "timeseries_to_runs", "waveform_windows"]
