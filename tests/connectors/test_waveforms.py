"""The generic waveform reader: recordings in layouts no built-in reader knows (file-name patterns,
a manifest; .npy, .npz, .mat, .wav, .csv, .parquet), channels kept together, errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat, wavfile

from transferline.connectors import create_reader
from transferline.errors import DataError

from ..conftest import assert_nothing_written


@pytest.fixture(scope="module")
def fan_end():
    """Real fan-end vibration (CWRU, vendored): {"IR007_0hp": float32 [12288], ...}."""
    from transferline.sample_data import sample_path

    with np.load(sample_path("cwru_fe") / "cwru_fe.npz") as npz:
        return {k: npz[k] for k in npz.files}


def read(src, **options):
    return create_reader("waveforms")(src, **options)


def test_pattern_labels_domains_and_classes(catalog, tmp_path, fan_end):
    for key, signal in fan_end.items():
        label, load = key.split("_")
        (tmp_path / "lab" / load).mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "lab" / load / f"{label.replace('@', 'at')}_{load}_run1.npy", signal)
    (tmp_path / "lab" / "README.txt").write_text("not a recording")
    plan = read(tmp_path / "lab", pattern="{label}_{load}hp_*.npy", sample_rate="12000")
    assert "found 6 recording(s), 1 channel(s)" in plan.summary and "load     0 3, 3 3" in plan.summary
    catalog.ingest("lab", plan)
    m = catalog.manifest("lab")
    assert m.extra == {"classes": ["B007", "IR007", "OR007at6"], "channels": ["signal"]}
    assert m.roles["domain"] == ["load"] and m.domain_columns == ["load"]
    table = catalog.read("lab").sort_by("asset")
    assert table.column("load").type.bit_width == 64 and sorted(set(table.column("load").to_pylist())) == [0, 3]
    assert set(table.column("sample_rate").to_pylist()) == {12000.0}
    row = table.column("asset").to_pylist().index("0hp/IR007_0hp_run1")
    np.testing.assert_array_equal(np.asarray(table.column("values")[row].values), fan_end["IR007_0hp"])


def test_channels_from_several_keys_stay_together(catalog, tmp_path, fan_end):
    from transferline.data import get_data_spec, load_windows

    for i, key in enumerate(["IR007_0hp", "B007_0hp"]):
        savemat(tmp_path / f"{key.split('_')[0]}_{i}.mat",
                {f"X{i}_DE_time": fan_end[key][:, None] * 2, f"X{i}_FE_time": fan_end[key][:, None], "fs": 12000,
                 f"X{i}RPM": 1797})
    catalog.ingest("two", read(tmp_path, pattern="{label}_{asset}.mat", key="*_DE_time,*_FE_time"))
    assert catalog.manifest("two").extra["channels"] == ["DE_time", "FE_time"]
    spec = get_data_spec({"kind": "waveforms", "length": 1024})
    windows = load_windows(catalog, "two", spec)
    assert windows.n_channels == 2 and windows.channels == ["DE_time", "FE_time"] and len(windows) == 24
    x = load_windows(catalog, "two", get_data_spec({"kind": "waveforms", "length": 1024, "normalize": "none"}))
    first = x.get([0])[0]
    np.testing.assert_allclose(first[0], 2 * first[1])
    fe_only = load_windows(catalog, "two", get_data_spec({"kind": "waveforms", "length": 1024, "features": ["FE_time"]}))
    assert fe_only.n_channels == 1 and fe_only.channels == ["FE_time"]
    with pytest.raises(ValueError, match=r"channel\(s\) \['AE'\] not in the dataset; it has \['DE_time', 'FE_time'\]"):
        load_windows(catalog, "two", get_data_spec({"kind": "waveforms", "length": 1024, "features": ["AE"]}))


def test_real_cwru_mat_files_read_generically(catalog, shared_data):
    """The published CWRU files, read by the generic path (not the cwru preset): both accelerometers."""
    from scipy.io import loadmat

    src = shared_data / "cwru" / "2HP"
    plan = read(src, pattern="12k_Drive_End_{label}_{load}_{asset}.mat", key="*_DE_time,*_FE_time",
                sample_rate=12000)
    catalog.ingest("cwru2", plan)
    table = catalog.read("cwru2")
    assert table.num_rows == 9 and catalog.manifest("cwru2").extra["channels"] == ["DE_time", "FE_time"]
    row = table.column("asset").to_pylist().index("120")
    raw = loadmat(src / "12k_Drive_End_B007_2_120.mat")
    values = np.asarray(table.column("values")[row].values).reshape(2, -1)
    np.testing.assert_array_equal(values[1], raw["X120_FE_time"].ravel().astype(np.float32))


def test_wav_csv_parquet_and_manifest(catalog, tmp_path, fan_end):
    import pandas as pd

    signal = fan_end["OR007@6_3hp"]
    pcm = np.clip(signal / np.abs(signal).max() * 30000, -32768, 32767).astype(np.int16)
    wavfile.write(tmp_path / "a.wav", 12000, np.stack([pcm, pcm // 2], axis=1))
    pd.DataFrame({"t": np.arange(4096) / 12000, "ax": signal[:4096], "ay": signal[4096:8192]}).to_csv(
        tmp_path / "b.csv", index=False)
    pd.DataFrame({"ax": signal[:4096], "ay": signal[:4096]}).to_parquet(tmp_path / "c.parquet")
    (tmp_path / "m.csv").write_text("path,label,sample_rate,site\na.wav,OR,,north\n")
    catalog.ingest("wav", read(tmp_path, manifest="m.csv"))
    table = catalog.read("wav")
    assert table.column("sample_rate").to_pylist() == [12000.0] and table.column("site").to_pylist() == ["north"]
    values = np.asarray(table.column("values")[0].values).reshape(2, -1)
    np.testing.assert_allclose(values[0], pcm / 32768, atol=1e-6)
    (tmp_path / "m2.csv").write_text("path,label,sample_rate,site\nb.csv,OR,12000,north\nc.parquet,OR,12000,south\n")
    catalog.ingest("tab", read(tmp_path, manifest="m2.csv", key="ax,ay"))
    assert catalog.manifest("tab").extra["channels"] == ["ax", "ay"]


@pytest.mark.parametrize("setup, options, match", [
    ("npy", {"pattern": "{label}.npy"}, r"no sample rate: give --sample-rate"),
    ("npy", {"pattern": "{fault}.npy", "sample_rate": 1}, r"has no \{label\} field"),
    ("npy", {"pattern": "x_{label}.wav", "sample_rate": 1}, r"no file matches the pattern 'x_\{label\}.wav' \(files here: IR\.npy"),
    ("npy", {"pattern": "{label}.npy", "manifest": "m.csv"}, r"give --pattern .* or --manifest"),
    ("npy", {"pattern": "{label}.npy", "sample_rate": "fast"}, r"--sample-rate must be a positive number"),
    ("npy", {"pattern": "{label}.npy", "sample_rate": 1, "classes": ["OR"]}, r"label\(s\) \['IR'\] are not in the class list \['OR'\]"),
    ("mat2", {"pattern": "{label}.mat", "sample_rate": 1}, r"2 arrays here \(\['a', 'b'\]\); choose with --key"),
    ("mat2", {"pattern": "{label}.mat", "sample_rate": 1, "key": "c*"}, r"no array\(s\) match 'c\*'; the file has \['a', 'b'\]"),
    ("nan", {"pattern": "{label}.npy", "sample_rate": 1}, r"file '.*IR.npy', key 'signal': NaN or infinite sample at index 7"),
    ("manifest", {"manifest": "m.csv", "sample_rate": 1}, r"file '.*m.csv', row 3, field 'path': recording 'gone.npy' not found"),
])
def test_bad_recordings_are_refused_naming_what_and_where(catalog, tmp_path, setup, options, match):
    signal = np.sin(np.arange(2048, dtype=np.float32))
    if setup == "nan":
        signal[7] = np.nan
    if setup.startswith("mat"):
        savemat(tmp_path / "IR.mat", {"a": signal, "b": signal})
    else:
        np.save(tmp_path / "IR.npy", signal)
    (tmp_path / "m.csv").write_text("path,label\nIR.npy,IR\ngone.npy,OR\n")
    with pytest.raises(DataError, match=match):
        catalog.ingest("bad", read(tmp_path, **options))
    assert_nothing_written(catalog, "bad")


def test_recordings_with_different_channels_are_refused(catalog, tmp_path):
    np.save(tmp_path / "IR_1.npy", np.zeros((2, 4096), np.float32))
    np.save(tmp_path / "OR_2.npy", np.zeros(4096, np.float32))
    with pytest.raises(DataError, match=r"channels \['signal'\] differ from the first recording's \['ch0', 'ch1'\]"):
        catalog.ingest("bad", read(tmp_path, pattern="{label}_{asset}.npy", sample_rate=1000))
    assert_nothing_written(catalog, "bad")
