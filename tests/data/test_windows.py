"""Windows: counts, labels, padding, per-condition normalization fitted on train rows only, splits."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from transferline.connectors import create_reader
from transferline.data import (GroupNormalizer, WindowDataset, get_window_spec, load_windows, run_windows,
                               split_by_asset, split_by_time, waveform_windows)


@pytest.fixture(scope="module")
def sample_catalog(tmp_path_factory):
    from transferline.catalog import Catalog
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path_factory.mktemp("cat"))
    catalog.ingest("c", create_reader("cmapss")(sample_path("cmapss")))
    return catalog


def _toy(lengths: dict[str, int]) -> pa.Table:
    rows = [(a, s) for a, n in lengths.items() for s in range(1, n + 1)]
    return pa.table({"plant": ["P"] * len(rows), "asset": [a for a, _ in rows], "step": [s for _, s in rows],
                     "x": [float(s) for _, s in rows], "rul": [float(n - s) for a, s in rows for n in [lengths[a]]]})


def test_sliding_windows_by_hand():
    w = run_windows(_toy({"a": 6, "b": 4}), features=["x"], length=3, stride=2, label="rul")
    # asset a (rows 0-5): ends anchored at the last row → windows [3,6) and [1,4); asset b: [7,10)
    assert w.ends.tolist() == [4, 6, 10]
    x = w.get(np.arange(len(w)))
    assert x[:, 0, :].tolist() == [[2.0, 3.0, 4.0], [4.0, 5.0, 6.0], [2.0, 3.0, 4.0]]
    assert w.labels.tolist() == [2.0, 0.0, 0.0]


def test_last_window_pads_short_assets():
    w = run_windows(_toy({"a": 2, "b": 5}), features=["x"], length=4, label="rul", last_only=True)
    assert w.get(np.arange(2))[:, 0, :].tolist() == [[1.0, 1.0, 1.0, 2.0], [2.0, 3.0, 4.0, 5.0]]


def test_rul_cap_and_cmapss_counts(sample_catalog):
    spec = get_window_spec("cmapss")
    train = load_windows(sample_catalog, "c", spec, split="train", domains=["FD001"])
    # each of 100 engines with n cycles gives n - 29 windows of 30 cycles
    assert len(train) == 20631 - 100 * 29 and train.n_channels == 14 and train.length == 30
    assert train.labels.max() == 125 and train.labels.min() == 0
    test = load_windows(sample_catalog, "c", spec, split="test", domains=["FD001"], last_only=True)
    assert len(test) == 100 and test.get(np.arange(100)).shape == (100, 14, 30)


def test_normalizer_fits_on_training_rows_only(sample_catalog):
    train = load_windows(sample_catalog, "c", "cmapss", split="train", domains=["FD002"])
    parts = split_by_asset(train, {"fit": 0.5, "held": 0.5}, seed=1)
    assert not set(parts["fit"].assets) & set(parts["held"].assets)
    norm = GroupNormalizer.fit(parts["fit"])
    assert norm.groups == [0, 10, 20, 25, 35, 42, -1]
    fitted = norm.transform(parts["fit"])
    rows = parts["fit"].covered_rows()
    for g in (0, 42):  # standardized within each operating condition, on the rows it was fitted on
        sel = rows & (train.row_groups == g)
        np.testing.assert_allclose(fitted.values[:, sel].mean(axis=1), 0, atol=1e-3)
        np.testing.assert_allclose(fitted.values[:, sel].std(axis=1), 1, atol=1e-3)
    held = norm.transform(parts["held"]).values[:, ~rows]
    assert np.abs(held.mean(axis=1)).max() > 1e-3  # the held-out half did not shape the statistics


def test_waveform_windows_share_arrow_memory():
    signal = np.arange(5000, dtype=np.float32)
    values = pa.ListArray.from_arrays(pa.array([0, 3000, 5000], pa.int32()), pa.array(signal))
    table = pa.table({"plant": ["p", "p"], "asset": ["1", "2"], "values": values, "label_id": [0, 3],
                      "load_hp": [0, 1]})
    w = waveform_windows(table, length=1024, per_window_norm=False)
    assert len(w) == 2 + 1 and w.labels.tolist() == [0, 0, 3]
    assert np.shares_memory(w.values, np.frombuffer(values.values.buffers()[1], np.float32))
    assert w.get([2])[0, 0, 0] == 3000.0
    early, late = split_by_time(w, 0.5)
    assert len(early) + len(late) <= len(w)


def test_cwru_windows_and_time_split(shared_data, tmp_path):
    from transferline.catalog import Catalog

    catalog = Catalog(tmp_path)
    catalog.ingest("cwru", create_reader("cwru")(shared_data / "cwru"))
    w = load_windows(catalog, "cwru", "cwru")
    assert w.domain_names == ["0", "1", "2", "3"] and w.length == 1024
    assert np.bincount(w.labels[w.domain_mask("1")]).tolist()[0] == 110  # the 110x1024 normal prefix
    train, test = split_by_time(w, 0.8)
    for a in np.unique(w.assets):  # no sample is in both splits
        assert train.ends[train.assets == a].max() <= (test.ends[test.assets == a] - 1024).min()
    x = w.get([0, 1])
    np.testing.assert_allclose(x.mean(axis=2), 0, atol=1e-4)


def test_torch_dataset_batches(sample_catalog):
    w = load_windows(sample_catalog, "c", "cmapss", split="test", domains=["FD001"], last_only=True)
    dataset = WindowDataset(w)
    x, y, d = next(iter(dataset.loader(batch_size=32)))
    assert x.shape == (32, 14, 30) and x.dtype == torch.float32 and y.shape == (32,) and d.shape == (32,)
    np.testing.assert_array_equal(x.numpy(), w.get(np.arange(32)))
    single = dataset[5]
    assert torch.equal(single[0], x[5]) and single[1] == y[5]
    plain = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))  # default collate works too
    assert torch.equal(plain[0], x[:4])
    seen = [b[1] for b in dataset.loader(batch_size=30, shuffle=True, seed=3)]
    again = [b[1] for b in dataset.loader(batch_size=30, shuffle=True, seed=3)]
    assert all(torch.equal(a, b) for a, b in zip(seen, again)) and sum(len(s) for s in seen) == 100
