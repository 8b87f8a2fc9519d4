"""Streamed images and texts are the in-memory ones: the same samples in train and validation,
decoded and tokenized to the same arrays with the same targets and domains, whatever the read
tasks' size, on the vendored NEU images and MaintIE work orders."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def maintie_catalog(tmp_path_factory):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path_factory.mktemp("mie-cat"))
    catalog.ingest("mie", create_reader("maintie")(sample_path("maintie")))
    return catalog


def _read_all(plan, numbers, shuffle=False):
    """Every block the read tasks of ``numbers`` yield, run in this process (no Ray)."""
    from transferline.data.sample_stream import _decode_task

    blocks = []
    for item in plan.tasks(numbers):
        blocks += list(_decode_task({k: [v] for k, v in item.items()}, spec=plan.spec, seed=1, shuffle=shuffle,
                                    block=plan.block))
    return blocks


def _check_matches(catalog, dataset, spec, samples_per_task, domains=None):
    from transferline.data import split_by_asset
    from transferline.data.factory import load_samples
    from transferline.data.sample_stream import plan_samples

    samples = load_samples(catalog, dataset, spec, domains=domains)
    plan = plan_samples(catalog, dataset, spec, split=None, domains=domains, classes=None,
                        samples_per_task=samples_per_task)
    assert len(plan.index) == len(samples)
    assert (plan.index.classes, plan.index.multi_label) == (samples.classes, getattr(samples, "multi_label", False))
    assert plan.index.domain_names == samples.domain_names
    parts = split_by_asset(samples, {"train": 0.8, "val": 0.2}, seed=3)
    train, val = plan.split(0.2, seed=3)
    np.testing.assert_array_equal(train, np.flatnonzero(np.isin(samples.assets, parts["train"].assets)))
    np.testing.assert_array_equal(val, np.flatnonzero(np.isin(samples.assets, parts["val"].assets)))
    blocks = _read_all(plan, val)  # in order without shuffling
    assert max(len(b["x"]) for b in blocks) <= min(plan.block, samples_per_task)
    np.testing.assert_array_equal(np.concatenate([b["x"] for b in blocks]), samples.get(val))
    np.testing.assert_array_equal(np.concatenate([b["y"] for b in blocks]), samples.labels[val])
    np.testing.assert_array_equal(np.concatenate([b["domain"] for b in blocks]), samples.domains[val])
    np.testing.assert_array_equal(np.concatenate([b["number"] for b in blocks]), val)
    shuffled = _read_all(plan, train, shuffle=True)  # the same samples, in another order
    x = np.concatenate([b["x"] for b in shuffled])
    assert len(x) == len(train)
    if samples_per_task > 1:  # tasks of one sample have nothing to shuffle (Ray's buffer does)
        assert not np.array_equal(x, samples.get(train))
    key = lambda a: a.reshape(len(a), -1)[:, :64].tobytes()  # noqa: E731
    assert sorted(key(x[i:i + 1]) for i in range(len(x))) == \
        sorted(key(samples.get(train[i:i + 1])) for i in range(len(train)))


@pytest.mark.parametrize("samples_per_task", [1, 7, 10**6])
def test_streamed_images_are_the_loaded_images(neu_catalog, samples_per_task):
    from transferline.data import get_data_spec

    _check_matches(neu_catalog, "neu", get_data_spec("neu", size=(32, 32)), samples_per_task)


def test_streamed_texts_are_the_loaded_texts_multi_label(maintie_catalog):
    from transferline.data import get_data_spec

    _check_matches(maintie_catalog, "mie", get_data_spec("text", max_length=16), 9)


def test_only_the_row_groups_of_a_task_are_read(tmp_path):
    """A task's rows in the middle of a file of many row groups come from those groups alone."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from transferline.data.sample_stream import _read_rows

    pq.write_table(pa.table({"text": [f"t{i}" for i in range(100)]}), tmp_path / "f.parquet", row_group_size=10)
    rows = np.array([3, 27, 28, 95])
    assert _read_rows(str(tmp_path / "f.parquet"), rows, "text") == ["t3", "t27", "t28", "t95"]


def test_a_domain_with_no_samples_is_named(neu_catalog):
    from transferline.data import get_data_spec
    from transferline.data.sample_stream import plan_samples

    with pytest.raises(ValueError, match=r"no samples in 'neu' for split None and domains \['plant-x'\]"):
        plan_samples(neu_catalog, "neu", get_data_spec("neu"), split=None, domains=["plant-x"], classes=None)
