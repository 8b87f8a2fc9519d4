"""The multimodal view: three real accelerometers of one recording joined by position, with the
absent ones marked absent."""

from __future__ import annotations

import numpy as np
import pytest

from transferline.data import get_data_spec, split_by_time
from transferline.data.factory import load_samples
from transferline.data.multimodal import PRESENT, join_samples
from transferline.errors import DataError


@pytest.fixture(scope="module")
def sensors(tmp_path_factory):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import cwru_folder

    root = tmp_path_factory.mktemp("sensors")
    catalog = Catalog(root / "catalog")
    for sensor in ("DE", "FE", "BA"):
        catalog.ingest(f"cwru_{sensor.lower()}", create_reader("cwru")(cwru_folder(root / "cwru"), sensor=sensor),
                       progress=False)
    spec = get_data_spec("cwru", stride=512)
    return {s: load_samples(catalog, f"cwru_{s}", spec) for s in ("de", "fe", "ba")}


def test_outer_join_marks_the_missing_base_sensor_absent(sensors):
    joined = join_samples(sensors)
    assert len(joined) == len(sensors["de"]) == 7 * 11  # 6,144 samples: windows of 1,024 every 512
    normal = joined.labels == joined.classes.index("normal")
    assert normal.sum() == 11
    np.testing.assert_array_equal(joined.present[:, 2], ~normal)  # the normal recording has no BA signal
    assert joined.present[:, :2].all()
    x = joined.get(np.arange(len(joined)))
    assert set(x) == {"de", "fe", "ba", PRESENT}
    assert not x["ba"][normal].any()  # absent: zeros, and marked so
    fe_rows = joined.rows[:, 1]
    np.testing.assert_array_equal(x["fe"], sensors["fe"].get(fe_rows))


def test_one_sample_is_one_moment_of_one_recording(sensors):
    joined = join_samples(sensors)
    i = 30
    de_row, ba_row = joined.rows[i, 0], joined.rows[i, 2]
    de, ba = sensors["de"], sensors["ba"]
    assert de.asset_names[de.assets[de_row]] == ba.asset_names[ba.assets[ba_row]]
    assert de.ends[de_row] - de.asset_starts[de_row] == ba.ends[ba_row] - ba.asset_starts[ba_row]
    assert de.labels[de_row] == ba.labels[ba_row] == joined.labels[i]


def test_inner_join_keeps_samples_with_every_input(sensors):
    joined = join_samples(sensors, how="inner")
    assert len(joined) == 6 * 11 and joined.present.all()


def test_batches_carry_the_presence_mask(sensors):
    joined = join_samples(sensors)
    batch = next(joined.batches(len(joined)))
    assert batch.inputs["de"].shape == (len(joined), 1, 1024)
    assert batch.inputs[PRESENT].dtype.is_floating_point is False
    assert batch.present is batch.inputs[PRESENT]
    assert int(batch.present.sum()) == 7 * 11 * 2 + 6 * 11


def test_a_sensor_down_at_test_time(sensors):
    joined = join_samples(sensors).without("fe")
    assert not joined.present[:, 1].any() and joined.present[:, 0].all()
    with pytest.raises(ValueError, match=r"no input\(s\) \['xy'\]"):
        joined.without("xy")


def test_time_split_of_joined_samples(sensors):
    early, late = split_by_time(join_samples(sensors), 0.5)
    assert len(early) and len(late)
    assert set(early.assets) == set(late.assets) == set(range(7))
    assert early.ends.max() <= (late.ends - late.length).min()  # (all recordings equally long) no shared sample


def test_inputs_that_disagree_on_a_label(sensors):
    fe = sensors["fe"]
    relabelled = fe.subset(np.arange(len(fe)))
    relabelled.labels = relabelled.labels.copy()
    relabelled.labels[0] = (relabelled.labels[0] + 1) % len(fe.classes)
    with pytest.raises(DataError, match="inputs 'de' and 'fe' disagree on the label of the window ending at sample"):
        join_samples({"de": sensors["de"], "fe": relabelled})


def test_windows_of_another_length_join_by_where_they_end(sensors):
    """A shorter window of another input is the same moment when it ends at the same sample; a time
    split keeps the longest window of a sample on one side."""
    short = sensors["fe"].subset(np.arange(len(sensors["fe"])))
    short.length = 512
    joined = join_samples({"de": sensors["de"], "fe": short}, how="inner")
    assert len(joined) == len(sensors["de"]) and joined.length == 1024
    x = joined.get(np.arange(3))
    assert x["de"].shape == (3, 1, 1024) and x["fe"].shape == (3, 1, 512)
    np.testing.assert_array_equal(x["fe"], short.get(joined.rows[:3, 1]))
    assert (short.ends[joined.rows[:, 1]] == sensors["de"].ends[joined.rows[:, 0]]).all()
