"""Streamed windows are the in-memory windows: same assets in train and validation, same
normalization statistics, and read tasks that cut the same windows, on the vendored C-MAPSS sample."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path_factory.mktemp("stream-cat"))
    catalog.ingest("cmapss", create_reader("cmapss")(sample_path("cmapss")))
    return catalog


DOMAINS = ["FD001", "FD002"]


def _in_memory(sample, spec):
    from transferline.data import GroupNormalizer, load_windows, split_by_asset

    windows = load_windows(sample, "cmapss", spec, split="train", domains=DOMAINS)
    parts = split_by_asset(windows, {"train": 0.8, "val": 0.2}, seed=3)
    return windows, parts, GroupNormalizer.fit(parts["train"])


def _names(windows):
    return sorted({windows.asset_names[a] for a in np.unique(windows.assets)})


def test_index_split_and_normalizer_match_the_in_memory_path(sample):
    from transferline.data import fit_normalizer, get_window_spec, index_assets, split_keys

    spec = get_window_spec("cmapss")
    windows, parts, expected = _in_memory(sample, spec)
    index = index_assets(sample, "cmapss", spec, split="train", domains=DOMAINS)
    assert index.windows.sum() == len(windows)
    assert index.domain_names == DOMAINS
    train, val = split_keys(index, 0.2, seed=3)
    assert (train, val) == (_names(parts["train"]), _names(parts["val"]))
    got = fit_normalizer(sample, "cmapss", spec, split="train", domains=DOMAINS, keys=train)
    assert got.groups == expected.groups
    np.testing.assert_allclose(got.mean, expected.mean, rtol=1e-10)
    np.testing.assert_allclose(got.std, expected.std, rtol=1e-8)


@pytest.mark.parametrize("rows_per_task", [1, 5_000, 10**9])
def test_read_tasks_cut_exactly_the_in_memory_windows(sample, rows_per_task):
    from transferline.data import get_window_spec, plan_stream, split_keys
    from transferline.data.stream import _cut_task, deal_tasks

    spec = get_window_spec("cmapss", stride=3)
    windows, parts, normalizer = _in_memory(sample, spec)
    plan = plan_stream(sample, "cmapss", spec, split="train", domains=DOMAINS, rows_per_task=rows_per_task)
    train, _ = split_keys(plan.index, 0.2, seed=3)
    tasks = deal_tasks(plan.index, train, rows_per_task)
    assert sorted(k for t in tasks for k in t) == train
    blocks = [b for i, keys in enumerate(tasks)
              for b in _cut_task({"task": [i], "keys": ["\n".join(keys)]}, root=str(sample.root), dataset="cmapss",
                                 spec=spec, split="train", domains=DOMAINS, normalizer=normalizer,
                                 domain_names=plan.index.domain_names, classes=[], seed=0, shuffle=False,
                                 block_windows=500)]
    expected = normalizer.transform(parts["train"])
    assert plan.n_windows(train) == len(expected)
    np.testing.assert_array_equal(np.concatenate([b["x"] for b in blocks]), expected.get(np.arange(len(expected))))
    np.testing.assert_array_equal(np.concatenate([b["y"] for b in blocks]), expected.labels)
    np.testing.assert_array_equal(np.concatenate([b["domain"] for b in blocks]), expected.domains)


def test_shuffled_read_tasks_hold_the_same_windows(sample):
    from transferline.data import get_window_spec, plan_stream, split_keys
    from transferline.data.stream import _cut_task

    spec = get_window_spec("cmapss")
    plan = plan_stream(sample, "cmapss", spec, split="train", domains=["FD001"])
    keys, _ = split_keys(plan.index, 0.2, seed=0)
    cut = {shuffle: list(_cut_task({"task": [0], "keys": ["\n".join(keys)]}, root=str(sample.root), dataset="cmapss",
                                   spec=spec, split="train", domains=["FD001"], normalizer=None,
                                   domain_names=plan.index.domain_names, classes=[], seed=0, shuffle=shuffle,
                                   block_windows=4096))
           for shuffle in (False, True)}
    plain, mixed = (np.concatenate([b["y"] for b in cut[s]]) for s in (False, True))
    assert not np.array_equal(plain, mixed)
    np.testing.assert_array_equal(np.sort(plain), np.sort(mixed))


@pytest.mark.parametrize("override, message", [
    (["data.time_split=0.8"], "time_split"),
    (["data.source.domains=null"], "source.domains"),
    (["early_stopping.metric=dev"], "dev"),
    (["data.streaming.rows_per_task=0"], "rows_per_task"),
])
def test_streaming_config_errors_name_the_setting(override, message):
    from transferline.errors import TransferlineError
    from transferline.train import load_config

    from ..conftest import REPO

    with pytest.raises(TransferlineError, match=message):
        load_config(REPO / "examples" / "configs" / "demo_transfer.yaml", ["data.streaming.enabled=true", *override])


def test_read_tasks_of_a_two_channel_generic_waveform_dataset(tmp_path):
    """Recordings ingested by the generic reader with two channels each: the stream's index counts
    samples per channel, and read tasks cut the in-memory windows (both channels, class ids from
    the manifest)."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.data import get_data_spec, load_windows, plan_stream
    from transferline.data.stream import _cut_task
    from ..conftest import write_fan_end

    write_fan_end(tmp_path, "{fault}_{load}.npy", parts=1, two_channels=True)
    catalog = Catalog(tmp_path / "cat")
    catalog.ingest("lab", create_reader("waveforms")(tmp_path, pattern="{label}_{load}hp.npy", sample_rate=12000))
    spec = get_data_spec({"kind": "waveforms", "length": 1024, "stride": 512, "domain": "load"})
    windows = load_windows(catalog, "lab", spec, domains=["0"])
    plan = plan_stream(catalog, "lab", spec, split=None, domains=["0"])
    keys = plan.index.keys
    assert plan.n_windows(keys) == len(windows) == 3 * 23 and plan.stream_of(keys, None).n_channels == 2
    blocks = list(_cut_task({"task": [0], "keys": ["\n".join(keys)]}, root=str(catalog.root), dataset="lab", spec=spec,
                            split=None, domains=["0"], normalizer=None, domain_names=plan.index.domain_names,
                            classes=["B007", "IR007", "OR007"], seed=0, shuffle=False, block_windows=4096,
                            channels=plan.channels))
    x = np.concatenate([b["x"] for b in blocks])
    assert x.shape == (len(windows), 2, 1024)
    np.testing.assert_array_equal(x, windows.get(np.arange(len(windows))))
    np.testing.assert_array_equal(np.concatenate([b["y"] for b in blocks]), windows.labels)
