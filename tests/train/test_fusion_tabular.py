"""Signal groups of one real CNC milling dataset as inputs of their own, fused with the experiments'
set-points as a tabular input (vendored slice of the 18 experiments): what each input reads, the
statistics it is standardized with, a run that registers and serves any subset of its inputs as it
answered in training, and config and request errors by key (two Ray Train workers:
``test_ray_train.py``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from transferline.errors import TransferlineError

from ..conftest import REPO, answer_with

CONFIG = REPO / "examples" / "configs" / "fusion_cnc.yaml"
INPUTS = ("spindle", "x", "y", "z", "setpoints")


@pytest.fixture(scope="module")
def cnc_catalog(tmp_path_factory):
    return cnc_catalog_at(tmp_path_factory.mktemp("cnc-fusion"))


def cnc_catalog_at(root):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    catalog = Catalog(root / "catalog")
    catalog.ingest("cnc", create_reader("cnc-mill")(sample_path("cnc_mill")), progress=False)
    return catalog


def _config(catalog, *extra):
    from transferline.train import load_config

    return load_config(CONFIG, [f"catalog={catalog.root}", "progress=false", "tracking.mlflow=false", "epochs=2",
                                *extra])


def _raw(catalog) -> dict:
    """Experiment → its rows in step order (pandas)."""
    table = catalog.read("cnc").to_pandas().sort_values(["asset", "step"])
    return {asset: rows.reset_index(drop=True) for asset, rows in table.groupby("asset")}


def test_each_input_reads_its_own_columns_standardized_on_source_training(cnc_catalog):
    from transferline.train import prepare_data

    config = _config(cnc_catalog)
    data = prepare_data(config, cnc_catalog)
    raw = _raw(cnc_catalog)
    train, test = data.source_train, data.test
    assert train.names == list(INPUTS) and train.present.all() and test.present.all()
    spec = data.input_spec().to_dict()
    assert spec["spindle"]["signals"][0] == "S1_ActualPosition" and spec["spindle"]["channels"] == 12
    assert spec["z"]["channels"] == 10 and spec["setpoints"]["columns"] == ["feedrate", "clamp_pressure"]

    # the tabular input: the set-points at each window's last row, by the source training samples' statistics
    def rows_of(samples, index):
        part = samples.parts["setpoints"]
        names = np.asarray(part.asset_names)[part.assets[samples.rows[index, -1]]]
        ends = samples.ends[index]
        return np.array([raw[n.split("/")[1]].loc[e - 1, ["feedrate", "clamp_pressure"]].to_numpy(float)
                         for n, e in zip(names, ends)])

    every = np.arange(len(train))
    train_rows = rows_of(train, every)
    np.testing.assert_allclose(spec["setpoints"]["mean"], train_rows.mean(axis=0))
    np.testing.assert_allclose(spec["setpoints"]["std"], train_rows.std(axis=0))
    held = np.arange(len(test))
    expected = (rows_of(test, held) - train_rows.mean(axis=0)) / train_rows.std(axis=0)
    np.testing.assert_allclose(test.get(held)["setpoints"], expected, rtol=1e-5, atol=1e-5)
    assert np.allclose(expected, expected[0])  # one experiment held out: one set of set-points

    # a series input: its own signals, by group statistics of the source training rows (the test's too)
    norm = spec["spindle"]["normalizer"]
    assert spec["spindle"]["normalize"] == "group" and norm["groups"] == [0, -1]
    i = 3
    part = test.parts["spindle"]
    asset = np.asarray(part.asset_names)[part.assets[test.rows[i, 0]]].split("/")[1]
    window = raw[asset].loc[test.ends[i] - 32:test.ends[i] - 1, list(spec["spindle"]["signals"])].to_numpy(float)
    mean, std = np.asarray(norm["mean"][-1]), np.asarray(norm["std"][-1])
    np.testing.assert_allclose(test.get([i])["spindle"][0], ((window - mean) / std).T, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def cnc_run(cnc_catalog, tmp_path_factory):
    from transferline.train import train_loop

    run_dir = tmp_path_factory.mktemp("cnc-run") / "run"
    config = _config(cnc_catalog, f"run_dir={run_dir}")
    metrics = train_loop(config)
    return run_dir, config, metrics


def test_a_fused_run_reports_every_input_absent_and_stores_the_spec(cnc_run):
    run_dir, _, metrics = cnc_run
    assert all(0.0 <= metrics[f"test_without_{name}_accuracy"] <= 1.0 for name in INPUTS)
    meta = json.loads((run_dir / "model.json").read_text())
    assert list(meta["input"]) == list(INPUTS)
    assert meta["input"]["setpoints"]["modality"] == "tabular" and len(meta["input"]["setpoints"]["mean"]) == 2
    assert meta["options"]["encoders"]["setpoints"] == "mlp"


def test_served_subsets_with_table_rows_are_answered_as_in_training(cnc_run, cnc_catalog, tmp_path):
    """Raw windows and raw set-points, served for several subsets of the inputs, against the
    trained model on training's data path (standardized inputs, the same ones marked present)."""
    from safetensors.torch import load_file

    from transferline.data import InputSpec
    from transferline.model_registry import ModelRegistry, build_inference_model
    from transferline.serve.predictor import Predictor
    from transferline.train import prepare_data

    run_dir, config, _ = cnc_run
    registry = ModelRegistry(tmp_path / "models")
    entry = registry.register(run_dir, "cnc-fused")
    assert entry.runtime["served_by"] == "onnxruntime", entry.runtime
    test = prepare_data(config, cnc_catalog).test
    index = np.arange(0, len(test), 4)[:5]
    inputs, raw_rows = test.get(index), _raw(cnc_catalog)
    spec = json.loads((run_dir / "model.json").read_text())["input"]
    asset = test.asset_names[test.assets[index[0]]].split("/")[1]
    rows = raw_rows[asset]
    raw = {name: [rows.loc[e - 32:e - 1, spec[name]["signals"]].to_numpy(float).tolist() for e in test.ends[index]]
           for name in INPUTS[:4]}
    raw["setpoints"] = [rows.loc[e - 1, ["feedrate", "clamp_pressure"]].to_numpy(float).tolist()
                        for e in test.ends[index]]
    meta = json.loads((run_dir / "model.json").read_text())
    eager = build_inference_model(meta, load_file(str(run_dir / "model.safetensors")), InputSpec.from_dict(meta["input"]))
    predictor = Predictor(registry)
    for subset in [INPUTS, INPUTS[:4], ("spindle", "setpoints"), ("setpoints",)]:
        body = {n: ({"rows": raw[n], "columns": ["feedrate", "clamp_pressure"]} if n == "setpoints"
                    else {"windows": raw[n]}) for n in subset}
        served = predictor.predict("cnc-fused", inputs=body)
        assert served["inputs_used"] == list(subset)
        np.testing.assert_allclose(served["probabilities"], answer_with(eager, inputs, INPUTS, subset), atol=2e-5)


def test_table_rows_that_do_not_fit_are_refused_by_field(cnc_run, tmp_path):
    from transferline.model_registry import ModelRegistry
    from transferline.serve.predictor import Predictor, RequestError

    registry = ModelRegistry(tmp_path / "models")
    registry.register(cnc_run[0], "cnc-fused")
    predictor = Predictor(registry)
    cases = [({"rows": [[3.0]]}, ["body", "inputs", "setpoints", "rows", 0], "1 values; model cnc-fused@1 takes one"),
             ({"rows": [[3.0, 4.0]], "columns": ["clamp_pressure", "feedrate"]},
              ["body", "inputs", "setpoints", "columns"], "takes columns \\['feedrate', 'clamp_pressure'\\]"),
             ({"rows": []}, ["body", "inputs", "setpoints", "rows"], "takes table rows"),
             ({"rows": [[3.0, 1e39]]}, ["body", "inputs", "setpoints", "rows", 0, 1], "not a finite float32"),
             ({"windows": [[[0.0, 0.0]]]}, ["body", "inputs", "setpoints", "windows"], "takes table rows, not sensor")]
    for part, loc, message in cases:
        with pytest.raises(RequestError, match=message) as err:
            predictor.predict("cnc-fused", inputs={"setpoints": part})
        assert err.value.loc == loc
    with pytest.raises(RequestError, match="columns name the values of table rows") as err:
        predictor.predict("cnc-fused", inputs={"x": {"windows": np.zeros((1, 32, 11)).tolist(), "columns": ["a"]}})
    assert err.value.loc == ["body", "inputs", "x", "columns"]


@pytest.mark.parametrize("override, message", [
    ("data.inputs.setpoints={dataset: cnc, columns: []}", "data.inputs.setpoints.columns: a non-empty list"),
    ("data.inputs.setpoints={dataset: cnc, columns: [feedrate], spec_options: {length: 8}}",
     "spec_options \\(a series input\\) or columns \\(a tabular input\\), not both"),
    ("data.inputs.x={dataset: cnc, spec_options: {features: [X1_ActualPosition], lenght: 8}}", "config data.inputs.x.spec_options: .*lenght"),
    ("data.inputs.x={dataset: cnc, spec_options: {features: [X1_ActualPosition]}, window: 8}", "data.inputs.x: unknown key\\(s\\) \\['window'\\]"),
    ("data.inputs={a: {dataset: cnc, columns: [feedrate]}, b: {dataset: cnc, columns: [clamp_pressure]}}",
     "tabular inputs are read at the windows of a series input"),
])
def test_input_config_errors_name_the_key(cnc_catalog, override, message):
    """(Without features of its own, an input falls back on data.spec's: its error names that key.)"""
    with pytest.raises(TransferlineError, match=message):
        _config(cnc_catalog, override)


def test_a_column_the_dataset_lacks_names_the_input(cnc_catalog):
    from transferline.train import prepare_data

    config = _config(cnc_catalog, "data.inputs.setpoints={dataset: cnc, columns: [feedrate, spindle_speed]}")
    with pytest.raises(TransferlineError, match="config data.inputs.setpoints \\(dataset 'cnc'\\): .*spindle_speed"):
        prepare_data(config, cnc_catalog)


def test_the_tabular_encoder():
    from transferline.data import TabularInput
    from transferline.encoders import create_encoder

    encoder = create_encoder("mlp", TabularInput(("feedrate", "clamp_pressure")), out_dim=16)
    assert encoder.modality == "tabular" and encoder(torch.randn(5, 2)).shape == (5, 16)
    assert encoder({"tabular": torch.randn(3, 2)}).shape == (3, 16)
    with pytest.raises(ValueError, match="rows \\[batch, columns\\]"):
        encoder(torch.randn(5, 2, 8))


def test_table_rows_attach_to_series_samples_and_make_none_of_their_own(cnc_catalog):
    """Rows read at windows the series inputs do not have are left out, not joined as samples with
    only set-points; rows that meet no series window at all are an error naming the input."""
    from transferline.data import get_data_spec
    from transferline.data.factory import load_samples
    from transferline.data.multimodal import RowValues, join_samples
    from transferline.errors import DataError

    def spec(**options):
        return get_data_spec({"kind": "runs", "length": 32, "label": "tool_condition", "domain": "asset",
                              "normalize": "none", **options})

    rows = RowValues.from_windows

    series = load_samples(cnc_catalog, "cnc", spec(stride=8, features=("S1_OutputCurrent",)))
    every = load_samples(cnc_catalog, "cnc", spec(stride=3, features=("feedrate", "clamp_pressure")))
    joined = join_samples({"spindle": series, "setpoints": rows(every)})
    assert len(joined) == len(series) and joined.present[:, 0].all()
    shared = np.isin(series.ends, every.ends)
    assert 0 < shared.sum() < len(series)  # windows every 24 rows end where both cut
    np.testing.assert_array_equal(joined.present[:, 1], shared)
    elsewhere = every.subset(~np.isin(every.ends, series.ends))
    with pytest.raises(DataError, match="tabular input 'setpoints' has no row where a window of the series"):
        join_samples({"spindle": series, "setpoints": rows(elsewhere)})
