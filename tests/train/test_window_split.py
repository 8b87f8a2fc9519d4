"""``data.window_split``: each recording's windows dealt at random between training and test
(UDTL's CWRU protocol), against ``data.time_split`` (the last part of each recording held out), on
the vendored three-sensor CWRU slice."""

from __future__ import annotations

import numpy as np
import pytest

from transferline.data import split_windows
from transferline.errors import TransferlineError

from ..conftest import REPO, sensor_catalog_at

CONFIG = REPO / "benchmarks" / "configs" / "cwru_crossload.yaml"
# the slice's recordings hold 6,144 samples: 12 windows of 512, not overlapping
SMALL = ["data.dataset=cwru_de", "data.spec_options.length=512", "data.spec_options.stride=512", "data.time_split=null",
         "data.window_split=0.75", "data.val_fraction=0.25", "source.domains=['0']", "target.domains=['3']",
         "progress=false", "tracking.mlflow=false", "optim.batch_size=16"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return sensor_catalog_at(tmp_path_factory.mktemp("cwru"))


def _config(*extra):
    from transferline.train import load_config

    return load_config(CONFIG, [*SMALL, *extra])


def _windows_of(samples) -> dict[str, set[int]]:
    """Each recording's window ends."""
    names = np.asarray(samples.asset_names, dtype=object)[samples.assets]
    out: dict[str, set[int]] = {}
    for name, end in zip(names.tolist(), (samples.ends - samples.asset_starts).tolist()):
        out.setdefault(name, set()).add(end)
    return out


def test_split_windows_deals_each_assets_windows_by_seed():
    from transferline.data import Windows

    assets = np.repeat(np.arange(3), 10)
    windows = Windows(values=np.zeros((1, 300), np.float32), length=10, ends=np.arange(1, 31) * 10,
                      asset_starts=np.repeat([0, 100, 200], 10), labels=assets, domains=np.zeros(30, np.int64),
                      assets=assets, domain_names=["0"], asset_names=["a", "b", "c"])
    first, rest = split_windows(windows, 0.8, seed=0)
    assert np.bincount(first.assets).tolist() == [8, 8, 8] and np.bincount(rest.assets).tolist() == [2, 2, 2]
    assert not set(first.ends.tolist()) & set(rest.ends.tolist())
    again, _ = split_windows(windows, 0.8, seed=0)
    other, _ = split_windows(windows, 0.8, seed=1)
    assert again.ends.tolist() == first.ends.tolist() != other.ends.tolist()


def test_window_split_holds_out_windows_between_the_training_ones(catalog):
    from transferline.train import prepare_data

    data = prepare_data(_config(), catalog)
    source = [_windows_of(s) for s in (data.source_train, data.source_val)]
    target, test = _windows_of(data.target_train), _windows_of(data.test)
    assert set(target) == set(test) and set(source[0]) == set(source[1])
    for name in source[0]:  # 12 windows: 9 to the source sets (7 train, 2 validation), 3 held out
        assert (len(source[0][name]), len(source[1][name])) == (7, 2) and not source[0][name] & source[1][name]
    for name in test:  # the target: 9 unlabelled for adaptation, 3 to test, never both
        assert (len(target[name]), len(test[name])) == (9, 3) and not target[name] & test[name]
    # not the end of each recording: some test window comes before some training window
    assert any(min(test[name]) < max(target[name]) for name in test)
    timed = prepare_data(_config("data.window_split=null", "data.time_split=0.75"), catalog)
    assert all(min(_windows_of(timed.test)[n]) > max(_windows_of(timed.target_train)[n]) for n in test)
    # the held-out windows are drawn by test.holdout_seed, the same for every run seed
    assert _windows_of(prepare_data(_config("seed=3"), catalog).test) == test
    assert _windows_of(prepare_data(_config("data.test.holdout_seed=1"), catalog).test) != test


def test_a_run_trains_and_tests_on_the_dealt_windows(catalog):
    from transferline.train import prepare_data, train_loop

    config = _config("epochs=1", "adaptation=mmd")
    data = prepare_data(config, catalog)
    metrics = train_loop(config, data=data)
    assert metrics["train_samples"] == 7 * len(_windows_of(data.source_train))  # 7 of each source recording's 12
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["feature_mmd"] >= 0


@pytest.mark.parametrize("override, message", [
    ("data.time_split=0.8", "data.window_split: recordings are split either in time .* or by dealing"),
    ("data.window_split=1.5", "data.window_split"),
    ("data.streaming.enabled=true", "streaming.enabled: not with data.window_split"),
])
def test_window_split_config_errors_name_the_key(override, message):
    with pytest.raises(TransferlineError, match=message):
        _config(override)
