"""CWRU: 4 loads x 10 classes from the real files, the 110x1024 prefix layout, bad .mat files."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from transferline.connectors import create_reader
from transferline.errors import DataError

from ..conftest import assert_nothing_written


@pytest.fixture(scope="module")
def cwru_table(shared_data, tmp_path_factory):
    from transferline.catalog import Catalog

    catalog = Catalog(tmp_path_factory.mktemp("cwru"))
    result = catalog.ingest("cwru", create_reader("cwru")(shared_data / "cwru"))
    assert result.status == "created"
    return catalog.read("cwru")


def test_four_loads_by_ten_classes(cwru_table):
    frame = cwru_table.drop_columns(["values"]).to_pandas()
    assert len(frame) == 40
    assert sorted(frame.load_hp.unique()) == [0, 1, 2, 3]
    assert frame.groupby("load_hp").label_id.nunique().tolist() == [10, 10, 10, 10]
    assert set(frame[frame.label == "normal"].sample_rate) == {48000.0}
    assert set(frame[frame.label != "normal"].sample_rate) == {12000.0}


def test_prefix_rows_are_read_in_time_order(cwru_table, shared_data):
    raw = loadmat(shared_data / "cwru" / "1HP" / "normal_1_98_prefix.mat")["Normal_001"]
    row = [i for i, a in enumerate(cwru_table.column("asset").to_pylist()) if a == "98"][0]
    values = np.asarray(cwru_table.column("values")[row].values)
    assert len(values) == 110 * 1024
    np.testing.assert_array_equal(values[1024:2048], raw[1].astype(np.float32))


def test_mat_without_expected_key(catalog, tmp_path, shared_data):
    src = tmp_path / "cwru" / "0HP"
    src.mkdir(parents=True)
    savemat(src / "12k_Drive_End_IR007_0_105.mat", {"X999_FE_time": np.zeros((2048, 1))})
    with pytest.raises(DataError) as err:
        catalog.ingest("c", create_reader("cwru")(tmp_path / "cwru"))
    assert err.value.key == "X105_DE_time" and err.value.file.endswith("12k_Drive_End_IR007_0_105.mat")
    assert "X999_FE_time" in str(err.value)
    assert_nothing_written(catalog, "c")


def test_truncated_mat_file(catalog, tmp_path, shared_data):
    src = tmp_path / "cwru" / "0HP"
    src.mkdir(parents=True)
    shutil.copy(shared_data / "cwru" / "0HP" / "12k_Drive_End_B007_0_118.mat", src)
    good = src / "12k_Drive_End_B007_0_118.mat"
    good.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(DataError, match="cannot read MATLAB file"):
        catalog.ingest("c", create_reader("cwru")(tmp_path / "cwru"))
    assert_nothing_written(catalog, "c")


@pytest.mark.parametrize("sensor, rows", [("DE", 7), ("FE", 7), ("BA", 6)])
def test_each_sensor_of_the_vendored_recordings(catalog, tmp_path, sensor, rows):
    """Every accelerometer of the vendored slice as its own dataset; the normal recording has no
    base signal and is left out of that one, by name."""
    from transferline.sample_data import cwru_folder, sample_path

    plan = create_reader("cwru")(cwru_folder(tmp_path / "cwru"), sensor=sensor.lower())
    catalog.ingest(f"cwru_{sensor}", plan, progress=False)
    table = catalog.read(f"cwru_{sensor}")
    assert table.num_rows == rows
    assert catalog.manifest(f"cwru_{sensor}").extra["channels"] == [f"{sensor}_time"]
    assert ("left out 1 recording(s) without the base sensor: 0HP/normal_0_97.mat" in plan.summary) == (sensor == "BA")
    with np.load(sample_path("cwru_sensors") / "cwru_sensors.npz") as npz:
        expected = npz[f"IR007_0_X105_{sensor}"]
    row = table.column("asset").to_pylist().index("105")
    np.testing.assert_array_equal(np.asarray(table.column("values")[row].values), expected)


def test_real_fan_end_and_base_sensors(shared_data):
    fe = create_reader("cwru")(shared_data / "cwru", sensor="FE")
    ba = create_reader("cwru")(shared_data / "cwru", sensor="BA")
    assert len(fe.parts) == 37 and len(ba.parts) == 36  # normal: FE at 0 hp only (the others are DE prefixes)
    assert "normal_1_98_prefix.mat" in fe.summary and "normal_0_97.mat" in ba.summary


def test_unknown_sensor(tmp_path):
    from transferline.sample_data import cwru_folder

    with pytest.raises(DataError, match=r"unknown CWRU sensor 'XY'; known: DE \(drive end\), FE \(fan end\), BA"):
        create_reader("cwru")(cwru_folder(tmp_path / "cwru"), sensor="xy")


def test_no_recording_with_the_sensor(tmp_path):
    src = tmp_path / "cwru" / "0HP"
    src.mkdir(parents=True)
    savemat(src / "normal_0_97.mat", {"X097_DE_time": np.zeros((4096, 1))})
    with pytest.raises(DataError, match=r"no CWRU recording here has the base sensor \(X<id>_BA_time\)"):
        create_reader("cwru")(tmp_path / "cwru", sensor="BA")
