"""Train/serve parity: for every window spec and normalization mode, a registered model answering raw
windows through the predictor gives what the trained model gave on the same windows at training
time (the training pipeline's own preprocessing)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest
import torch

from ..conftest import REPO


def _waveforms(n_per_class: int = 2, length: int = 8 * 256) -> pa.Table:
    """A small real-format ``waveforms`` table: 3 classes x 2 loads, each signal a noisy tone whose
    frequency tells the class, with a load-dependent offset and gain (what window normalization removes)."""
    rng = np.random.default_rng(0)
    rows = []
    for load in (0, 1):
        for label_id in range(3):
            for k in range(n_per_class):
                t = np.arange(length) / 12000.0
                signal = (1 + load) * np.sin(2 * np.pi * (500 + 900 * label_id) * t) + 3.0 * load
                rows.append({"split": "all", "plant": "rig", "asset": f"{load}-{label_id}-{k}", "segment": 0,
                             "sample_rate": 12000.0, "label": f"c{label_id}", "label_id": label_id, "load_hp": load,
                             "values": (signal + 0.1 * rng.standard_normal(length)).astype(np.float32)})
    return pa.table({
        "split": [r["split"] for r in rows], "plant": [r["plant"] for r in rows], "asset": [r["asset"] for r in rows],
        "segment": pa.array([r["segment"] for r in rows], pa.int64()),
        "sample_rate": [r["sample_rate"] for r in rows], "label": [r["label"] for r in rows],
        "values": pa.array([r["values"] for r in rows], pa.list_(pa.float32())),
        "label_id": pa.array([r["label_id"] for r in rows], pa.int32()),
        "load_hp": pa.array([r["load_hp"] for r in rows], pa.int32())})


def _two_channel_recordings(root) -> None:
    """The rig's signals as a newcomer's files: one ``[2, T]`` .npy per recording (the second channel
    a rectified, rescaled copy), named ``c<class>_<load>_<k>.npy``."""
    table = _waveforms()
    for row in table.to_pylist():
        x = np.asarray(row["values"], np.float32)
        np.save(root / f"c{row['label_id']}_{row['load_hp']}_{row['asset'].replace('-', '')}.npy",
                np.stack([x, 0.5 * np.abs(x) - 1.0]))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    from transferline.catalog import Catalog, IngestPlan, Part
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path_factory.mktemp("parity") / "catalog")
    catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_path("cmapss")))
    catalog.ingest("rig", IngestPlan(kind="waveforms", reader="test", source="generated",
                                     parts=[Part("rig", "d1", "generated", _waveforms)],
                                     domain_columns=["load_hp"]))
    files = tmp_path_factory.mktemp("rig2")
    _two_channel_recordings(files)
    catalog.ingest("rig2", create_reader("waveforms")(files, pattern="{label}_{load}_*.npy", sample_rate=12000))
    return catalog


CMAPSS = ["data.dataset=cmapss-sample", "data.spec=cmapss", "source.domains=[FD002]", "target.domains=[FD001]",
          "target.labelled_units=3", "test.domains=[FD001]", "test.last_only=false", "task=rul",
          "task.options.scale=125"]
RIG = ["data.dataset=rig", "data.spec=cwru", "data.spec_options.length=256", "data.spec_options.stride=256",
       "source.domains=[0]", "target.domains=[1]", "test.domains=[1]", "source.split=all", "target.split=all",
       "test.split=all", "test.last_only=false", "task=fault_diagnosis", "task.options.n_classes=10"]
RIG2 = ["data.dataset=rig2", "data.spec={kind: waveforms, length: 256, label: label, domain: load}",
        "source.domains=[0]", "target.domains=[1]", "test.domains=[1]", "source.split=all", "target.split=all",
        "test.split=all", "test.last_only=false", "task=fault_diagnosis"]
CASES = {
    "runs-group": CMAPSS + ["data.spec_options.normalize=group"],
    "runs-window": CMAPSS + ["data.spec_options.normalize=window"],  # the skew: trained raw, served normalized
    "runs-none": CMAPSS + ["data.spec_options.normalize=none"],
    "waveforms-window": RIG + ["data.spec_options.normalize=window"],
    "waveforms-none": RIG + ["data.spec_options.normalize=none"],
    "waveforms-written-2ch-window": RIG2,  # a spec written in full over a generic two-channel dataset
    "waveforms-written-2ch-none": RIG2 + ["data.spec_options.normalize=none"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_served_prediction_on_raw_input_equals_the_training_time_prediction(case, catalog, tmp_path):
    from safetensors.torch import load_file

    from transferline.data import InputSpec, get_data_spec, load_windows
    from transferline.model_registry import ModelRegistry, build_inference_model
    from transferline.serve import Predictor
    from transferline.train import load_config, prepare_data, train_loop

    config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml",
                         [*CASES[case], f"catalog={catalog.root}", "epochs=1", "optim.max_steps_per_epoch=2",
                          "optim.batch_size=32", "progress=false", "adaptation=source_only", "strategy=full"])
    config["run_dir"] = str(tmp_path / "run")
    train_loop(config)
    registry = ModelRegistry(tmp_path / "models")
    entry = registry.register(tmp_path / "run", "m")
    spec = get_data_spec(config["data"]["spec"], **config["data"]["spec_options"])
    assert entry.input["series"]["normalize"] == spec.normalize
    if "2ch" in case:
        assert entry.input["series"]["channels"] == 2 and entry.input["series"]["signals"] == ["ch0", "ch1"]

    # what the model computed at training time: the pipeline's own test windows
    test = prepare_data(config).test
    index = np.arange(min(len(test), 40))
    import json

    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    model = build_inference_model(meta, load_file(str(tmp_path / "run" / "model.safetensors")),
                                  InputSpec.from_dict(meta["input"]))
    with torch.no_grad():
        trained = model(torch.from_numpy(test.get(index))).numpy()

    # what a client sends: the same windows raw, [batch, time, signal], with each step's group
    data = config["data"]
    raw = load_windows(catalog, data["dataset"], spec, split=data["test"]["split"], domains=data["test"]["domains"],
                       last_only=data["test"]["last_only"])
    raw = replace(raw, per_window_norm=False)
    windows = raw.get(index).transpose(0, 2, 1)
    body = {}
    if entry.input["series"]["normalize"] == "group":
        rows = np.maximum(raw.ends[index, None] - raw.length + np.arange(raw.length), raw.asset_starts[index, None])
        body["groups"] = raw.row_groups[rows].tolist()
    reply = Predictor(registry).predict("m", windows.astype(np.float64).tolist(), **body)
    served = reply["predictions"]
    if entry.output["kind"] == "class":
        assert served == trained.argmax(-1).tolist()  # the export answers probabilities; the server their argmax
        np.testing.assert_allclose(reply["probabilities"], trained, atol=1e-5)
    else:
        np.testing.assert_allclose(served, trained, rtol=1e-4, atol=1e-3)
