"""Several inputs streamed are the inputs joined in memory: the same assets in train and
validation, the same statistics, and read tasks that yield the same joined samples (inputs,
presence, labels, domains), on the vendored CNC slice (four signal groups and the set-points) and
the vendored three-accelerometer CWRU slice (recordings that lack a sensor)."""

from __future__ import annotations

import numpy as np
import pytest

from ..conftest import REPO, SENSOR_SMALL, sensor_catalog_at
from ..train.test_fusion_tabular import cnc_catalog_at


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory):
    return {"cnc": cnc_catalog_at(tmp_path_factory.mktemp("cnc")),
            "cwru": sensor_catalog_at(tmp_path_factory.mktemp("cwru"))}


CASES = {
    # stride 1: statistics over every row of an asset are those of the rows the windows read
    "cnc": ("fusion_cnc.yaml", ["data.spec.stride=1", "data.spec.length=16"]),
    "cwru": ("fusion_cwru.yaml", [*SENSOR_SMALL, "data.time_split=null", "source.domains=['0','3']", "source.split=all",
             "target.split=all", "test.split=all", "test.last_only=false"]),
}


def _config(catalogs, case, *extra):
    from transferline.train import load_config

    name, overrides = CASES[case]
    return load_config(REPO / "examples" / "configs" / name,
                       [f"catalog={catalogs[case].root}", "progress=false", "tracking.mlflow=false", *overrides, *extra])


def _streamed(plan, keys, rows_per_task):
    from transferline.data.joined_stream import _cut_joined
    from transferline.data.stream import deal_tasks

    tasks = deal_tasks(plan.index, keys, rows_per_task)
    assert sorted(k for t in tasks for k in t) == keys
    return [b for i, task in enumerate(tasks)
            for b in _cut_joined({"task": [i], "keys": ["\n".join(task)]}, plan=plan, seed=0, shuffle=False)]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("rows_per_task", [1, 10**9])
def test_read_tasks_join_exactly_the_in_memory_samples(catalogs, case, rows_per_task):
    from transferline.train import prepare_data
    from transferline.train.data import plan_source

    memory = prepare_data(_config(catalogs, case), catalogs[case])
    plan, train_keys, val_keys = plan_source(_config(catalogs, case, "data.streaming.enabled=true",
                                                     f"data.streaming.rows_per_task={rows_per_task}"), catalogs[case])
    for keys, expected in ((train_keys, memory.source_train), (val_keys, memory.source_val)):
        assert keys == sorted({expected.asset_names[a] for a in np.unique(expected.assets)})
        assert plan.n_windows(keys) == len(expected)
        blocks = _streamed(plan, keys, rows_per_task)
        want = expected.get(np.arange(len(expected)))
        for name in plan.names:
            np.testing.assert_allclose(np.concatenate([b[f"x_{name}"] for b in blocks]), want[name],
                                       rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(np.concatenate([b["present"] for b in blocks]), want["present"])
        np.testing.assert_array_equal(np.concatenate([b["y"] for b in blocks]), expected.labels)
        np.testing.assert_array_equal(np.concatenate([b["domain"] for b in blocks]), expected.domains)
    got, want = plan.input_spec().to_dict(), memory.input_spec().to_dict()
    assert list(got) == list(want)
    for name in want:
        for field in ("normalizer", "mean", "std"):
            if want[name].get(field) is not None:
                np.testing.assert_allclose(np.asarray(_numbers(got[name][field])), np.asarray(_numbers(want[name][field])),
                                           rtol=1e-6, err_msg=f"{name}.{field}")
        assert {k: v for k, v in got[name].items() if k not in ("normalizer", "mean", "std")} == \
            {k: v for k, v in want[name].items() if k not in ("normalizer", "mean", "std")}


def _numbers(value):
    """The numbers of a spec field (a normalizer's groups, means and deviations; a column list)."""
    if isinstance(value, dict):
        return np.concatenate([np.ravel(np.asarray(value[k], float)) for k in sorted(value)])
    return value


def test_recordings_without_a_sensor_stream_with_it_absent(catalogs):
    """The vendored CWRU slice's normal-baseline recordings have no base accelerometer, as in the
    release: streamed, their samples keep the drive and fan end, with the base marked absent."""
    from transferline.train.data import plan_source

    plan, train_keys, _ = plan_source(_config(catalogs, "cwru", "data.streaming.enabled=true"), catalogs["cwru"])
    present = np.concatenate([b["present"] for b in _streamed(plan, train_keys, 10**9)])
    assert present[:, :2].all() and 0 < present[:, 2].sum() < len(present)
