"""A model of three sensors, registered and served: the export keeps the presence mask as an input,
any subset of the sensors is a valid request and is answered as the trained model answers the
same windows in training's data path, and a request with none is refused by field."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ..conftest import answer_with

SENSORS = ("de", "fe", "ba")


@pytest.fixture(scope="module")
def fused_registry(tmp_path_factory, fused_runs):
    from transferline.model_registry import ModelRegistry

    registry = ModelRegistry(tmp_path_factory.mktemp("fused-models"))
    for fusion, (run_dir, _) in fused_runs.items():
        registry.register(run_dir, f"fused-{fusion}")
    return registry


def _test_windows(config, n: int = 6):
    """``n`` test samples with every sensor, from training's data path (model inputs), and the same
    windows raw ``[n, T, 1]``."""
    from transferline.train import prepare_data

    test = prepare_data(config).test
    complete = np.flatnonzero(test.present.all(axis=1))  # the normal recording has no base signal
    index = complete[np.linspace(0, len(complete) - 1, n).astype(int)]
    raw = {}
    for m, name in enumerate(test.names):
        part, rows = test.parts[name], test.rows[index, m]
        starts = part.ends[rows] - part.length
        raw[name] = np.stack([part.values[:, s:s + part.length].T for s in starts]).astype(np.float64)
    return test.get(index), raw


@pytest.mark.parametrize("fusion", ["gated", "attention"])
def test_the_export_keeps_the_mask_as_an_input(fused_registry, fusion):
    import onnxruntime

    entry = fused_registry.get(f"fused-{fusion}")
    assert entry.runtime["served_by"] == "onnxruntime", entry.runtime
    assert entry.modality == "de+fe+ba" and entry.input["fe"]["modality"] == "series"
    session = onnxruntime.InferenceSession(str(fused_registry.path(entry.name, entry.version) / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == [*SENSORS, "present"]
    assert session.get_inputs()[3].type == "tensor(bool)"


@pytest.mark.parametrize("fusion", ["gated", "attention"])
def test_every_subset_is_answered_as_in_training(fused_registry, fused_runs, fusion):
    """Each non-empty subset of the three sensors, served from raw windows, against the trained
    model (eager torch) on the same windows from training's data path with the same sensors marked
    present."""
    from safetensors.torch import load_file

    from transferline.data import InputSpec
    from transferline.model_registry import build_inference_model
    from transferline.serve.predictor import Predictor

    run_dir, config = fused_runs[fusion]
    inputs, raw = _test_windows(config)
    import json

    meta = json.loads((run_dir / "model.json").read_text())
    eager = build_inference_model(meta, load_file(str(run_dir / "model.safetensors")), InputSpec.from_dict(meta["input"]))
    predictor = Predictor(fused_registry)
    answers = {}
    for k in (3, 2, 1):
        for subset in itertools.combinations(SENSORS, k):
            served = predictor.predict(f"fused-{fusion}", inputs={s: {"windows": raw[s].tolist()} for s in subset})
            assert served["inputs_used"] == list(subset)
            np.testing.assert_allclose(served["probabilities"], answer_with(eager, inputs, list(SENSORS), subset),
                                       atol=2e-5)
            answers[subset] = np.asarray(served["probabilities"])
    # a sensor left out is not the same as a sensor sent: the mask changes the answer
    assert not np.allclose(answers[SENSORS], answers[("de",)], atol=1e-3)


def test_requests_that_do_not_fit_are_refused_by_field(fused_registry):
    from transferline.serve.predictor import Predictor, RequestError

    predictor = Predictor(fused_registry)
    w = np.zeros((2, 512, 1)).tolist()
    cases = [({}, ["body", "inputs"], "give at least one"),
             ({"xx": {"windows": w}}, ["body", "inputs", "xx"], "has no input 'xx'"),
             ({"de": {"windows": w}, "fe": {"windows": w[:1]}}, ["body", "inputs"], "different numbers of samples"),
             ({"de": {"texts": ["bearing noise"]}}, ["body", "inputs", "de", "texts"], "takes sensor windows"),
             ({"ba": {"windows": np.zeros((2, 100, 1)).tolist()}}, ["body", "inputs", "ba", "windows"],
              "512 time steps")]
    for inputs, loc, message in cases:
        with pytest.raises(RequestError, match=message) as err:
            predictor.predict("fused-gated", inputs=inputs)
        assert err.value.loc == loc
    with pytest.raises(RequestError, match="takes several inputs") as err:
        predictor.predict("fused-gated", windows=w)
    assert err.value.loc == ["body", "windows"]
