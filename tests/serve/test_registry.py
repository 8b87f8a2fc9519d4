"""The model registry: versions, stages, lineage, atomic registration, and exported artifacts that
match the eager model and load without tsai or fastai."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
import torch

from transferline.encoders import encoder_modality, list_encoders
from transferline.model_registry import ModelRegistry, RegistryError


def test_register_describes_the_model_and_its_lineage(registry, runs):
    entry = registry.get("plant-a")
    assert entry.ref == "plant-a@1"
    assert entry.task == {"name": "rul", "type": "regression",
                          "options": {"scale": 125, "hidden": 64, "dropout": 0.1, "unit": "cycles"}}
    assert entry.modality == "series" and list(entry.input) == ["series"]
    series = entry.input["series"]
    assert series["signals"][:2] == ["s2", "s3"] and series["window"] == 30 and series["channels"] == 14
    assert series["group_by"] == "operating_condition" and series["normalizer"]["groups"][-1] == -1
    assert entry.output == {"kind": "regression", "names": ["rul"], "units": ["cycles"]}
    assert entry.lineage["source"] == {"dataset": "cmapss-sample", "domains": ["FD002"], "split": "train"}
    assert entry.lineage["target"]["domains"] == ["FD001"] and entry.lineage["adaptation"] == "mmd"
    assert entry.metrics["test_rmse"] > 0
    assert entry.files == ["model.safetensors", "model.json", "model.ts", "model.onnx"]
    assert entry.runtime["served_by"] == "onnxruntime" and entry.runtime["onnx_max_diff"] < 1e-3
    digest = hashlib.sha256()
    for name in entry.files:
        digest.update((registry.path("plant-a", 1) / name).read_bytes())
    assert entry.content_hash == digest.hexdigest()


def test_versions_stages_and_delete(registry, runs):
    second = registry.register(runs[1], "plant-a")
    assert second.ref == "plant-a@2" and registry.versions("plant-a") == [1, 2]
    assert registry.get("plant-a@production").version == 1 and registry.get("plant-a").version == 2
    registry.promote("plant-a@2", "production")
    assert registry.get("plant-a", stage="production").version == 2
    with pytest.raises(RegistryError, match="no staging version"):
        registry.get("plant-a@staging")
    with pytest.raises(RegistryError, match="no version 7"):
        registry.get("plant-a@7")
    with pytest.raises(RegistryError, match="no model 'nope'.*plant-a, plant-b"):
        registry.get("nope")
    registry.delete("plant-a@2")
    assert registry.versions("plant-a") == [1] and registry.stages("plant-a") == {}
    registry.delete("plant-b")
    assert registry.names() == ["plant-a"]


def test_a_run_that_cannot_be_registered_leaves_nothing(tmp_path, runs):
    registry = ModelRegistry(tmp_path / "models")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.json").write_text("{}")
    with pytest.raises(Exception, match="not a finished transfer run: no model.safetensors"):
        registry.register(tmp_path / "half", "broken")
    with pytest.raises(RegistryError, match="must be letters"):
        registry.register(runs[0], "../escape")
    assert registry.names() == [] and list((tmp_path / "models" / ".tmp").iterdir()) == []


@pytest.mark.parametrize("name", [n for n in list_encoders() if encoder_modality(n) != "multi"])
def test_export_matches_eager_for_each_encoder(tmp_path, name):
    from transferline.encoders import create_encoder
    from transferline.model_registry import build_inference_model, export_torchscript, load_exported

    from transferline.data import ImageInput, InputSpec, SeriesInput, TabularInput, TextInput
    from transferline.encoders import encoder_modality

    c_in, length = (1, 1024) if name in ("wdcnn", "spectrogram") else (14, 30)
    one = {"image": ImageInput(size=(64, 64)), "text": TextInput(max_length=16),
           "tabular": TabularInput(("feedrate", "clamp_pressure"), (6.0, 3.0), (4.0, 0.5))}.get(
        encoder_modality(name), SeriesInput(channels=c_in, window=length))
    spec = InputSpec.of(one)
    meta = {"encoder": name, "options": {}, "task": {"name": "fault_diagnosis", "n_classes": 4}}
    torch.manual_seed(0)
    encoder = create_encoder(name, spec)
    from transferline.tasks import create_task

    head = create_task("fault_diagnosis", n_classes=4).build_head(encoder.out_dim)
    state = {**{f"encoder.{k}": v for k, v in encoder.state_dict().items()},
             **{f"head.{k}": v for k, v in head.state_dict().items()}}
    model = build_inference_model(meta, state, spec)
    from transferline.model_registry._export import export_served_onnx

    runtime = export_served_onnx(model, one, tmp_path)  # every built-in encoder serves without torch
    assert runtime["served_by"] == "onnxruntime", runtime
    # wdcnn: adaptive pool 2 -> 4; spectrogram: torch.stft
    assert runtime["exporter"] == ("dynamo" if name in ("wdcnn", "spectrogram") else "torchscript")
    export_torchscript(model, one, tmp_path / "m.ts")
    x = torch.from_numpy(one.example(5, seed=1))
    with torch.no_grad():
        assert torch.equal(model(x), load_exported(tmp_path / "m.ts")(x))
        logits_eager = model.head(model.encoder(x))
    assert logits_eager.shape == (5, 4)


def _served_in_a_fresh_process(root, call: str) -> list[str]:
    """Runs ``p.predict(...)`` (``call``) through a replica's imports (predictor, registry, Serve app
    module) in a new interpreter: [number of predictions, training-stack modules it imported]."""
    code = ("import sys, numpy as np; from transferline.serve import Predictor; import transferline.serve.app; "
            f"p = Predictor({str(root)!r}); out = {call}; print(len(out['predictions'])); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'tsai', 'fastai', 'transformers', "
            "'torchvision', 'timm'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_serving_imports_neither_torch_nor_the_training_stack(registry):
    """An ONNX-exported model is answered with numpy and onnxruntime only."""
    call = "p.predict('plant-a', (np.ones((1, 30, 14)) * 500).tolist(), groups=[[0] * 30])"
    assert _served_in_a_fresh_process(registry.root, call) == ["1", "[]"]


def test_a_model_that_does_not_export_to_onnx_is_served_by_torchscript(runs, tmp_path, monkeypatch):
    import numpy as np

    from transferline.model_registry import _export
    from transferline.serve import Predictor

    from .conftest import windows

    registry = ModelRegistry(tmp_path / "models")
    onnx = registry.register(runs[0], "exported")

    def refuse(*args, **kwargs):
        raise RuntimeError("Unsupported: ONNX export of operator something")

    monkeypatch.setattr(_export, "export_onnx", refuse)
    fallback = registry.register(runs[0], "fallback")
    assert "model.onnx" not in fallback.files and fallback.runtime["served_by"] == "torchscript"
    assert "torchscript exporter: RuntimeError: Unsupported" in fallback.runtime["onnx_error"]
    assert "dynamo exporter: RuntimeError" in fallback.runtime["onnx_error"]
    predictor = Predictor(registry)
    assert type(predictor.load("fallback").module).__name__ == "TorchScriptModule"
    assert type(predictor.load("exported").module).__name__ == "OnnxModule"
    x, groups = windows(5).tolist(), [[0] * 30] * 5
    a = predictor.predict("exported", x, groups=groups)["predictions"]
    b = predictor.predict("fallback", x, groups=groups)["predictions"]
    assert np.allclose(a, b, atol=1e-3) and onnx.content_hash != fallback.content_hash


def test_where_served_models_run_is_checked(registry, cli, monkeypatch):
    """$TRANSFERLINE_ORT_DEVICE picks onnxruntime's providers; a GPU this onnxruntime cannot use, or
    a value that is no device, is refused by name, by `transferline serve` before anything starts."""
    import onnxruntime

    from transferline.errors import TransferlineError
    from transferline.model_registry._runtime import ORT_DEVICE_ENV, OnnxModule, ort_providers

    assert ort_providers() == ["CPUExecutionProvider"]
    with pytest.raises(TransferlineError, match=r"device='gpu': cpu, cuda or cuda:N"):
        ort_providers("gpu")
    monkeypatch.setenv(ORT_DEVICE_ENV, "cuda:1")
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert ort_providers() == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
        return
    message = r"\$TRANSFERLINE_ORT_DEVICE='cuda:1': this onnxruntime \(.+\) runs on .*CPUExecutionProvider only"
    with pytest.raises(TransferlineError, match=message):
        OnnxModule(registry.artifact("plant-a").with_name("model.onnx"))
    code, out, err = cli("serve", "--models", registry.root, "--port", "1")
    assert code == 2 and "install onnxruntime-gpu to serve on a GPU" in err and "serving" not in out


def test_cli_models_list_show_promote(registry, cli):
    code, out, _ = cli("models", "list", "--models", registry.root)
    assert code == 0 and "plant-a" in out and "production=1" in out
    code, out, _ = cli("models", "promote", "plant-b@1", "staging", "--models", registry.root)
    assert code == 0 and json.loads(out) == {"staging": 1}
    code, out, _ = cli("models", "show", "plant-b@staging", "--models", registry.root)
    assert code == 0 and json.loads(out)["version"] == 1
    code, _, err = cli("models", "show", "plant-z", "--models", registry.root)
    assert code == 2 and "no model 'plant-z'" in err


def test_a_run_that_trained_no_step_cannot_be_registered(runs, tmp_path):
    import shutil

    from transferline.model_registry import ModelRegistry

    run = tmp_path / "untrained"
    shutil.copytree(runs[0], run)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "epochs_run": 0}))
    registry = ModelRegistry(tmp_path / "models")
    with pytest.raises(RegistryError, match="trained no step"):
        registry.register(run, "m", stage="production")
    (run / "metrics.json").unlink()
    with pytest.raises(RegistryError, match="not a finished transfer run: no metrics.json"):
        registry.register(run, "m")
    assert registry.names() == [] and list((registry.root / ".tmp").iterdir()) == []


def test_entries_and_runs_written_before_input_specs_still_load_and_serve(registry, runs, tmp_path):
    """Registries and run folders from before input specs: a flat series input, ``c_in``/``seq_len``."""
    import json

    from .conftest import windows
    from transferline.serve import Predictor

    before = Predictor(registry).predict("plant-a", windows().tolist(), groups=[[0] * 30] * 4)
    path = registry.path("plant-a", 1) / "entry.json"
    entry = json.loads(path.read_text())
    series = entry["input"].pop("series")
    entry["input"] = {**{k: series[k] for k in ("signals", "window", "channels", "group_by", "normalize",
                                                "normalizer")}, "layout": "[batch, time, signal]"}
    entry["modality"], entry["output"] = "timeseries", {"kind": "regression", "unit": "cycles", "label": "rul"}
    path.write_text(json.dumps(entry))
    old = ModelRegistry(registry.root).get("plant-a")
    assert old.input["series"]["window"] == 30 and old.output["units"] == ["cycles"]
    assert Predictor(ModelRegistry(registry.root)).predict("plant-a", windows().tolist(),
                                                           groups=[[0] * 30] * 4) == before

    import shutil

    legacy = tmp_path / "legacy-run"
    shutil.copytree(runs[0], legacy)
    meta = json.loads((legacy / "model.json").read_text())
    spec = meta.pop("input")["series"]
    meta.pop("output")
    meta.update(c_in=spec["channels"], seq_len=spec["window"], encoder="cnn_small")
    (legacy / "model.json").write_text(json.dumps(meta))
    entry = registry.register(legacy, "legacy")
    assert entry.input == registry.get("plant-a").input and entry.output == registry.get("plant-a").output


def test_serving_a_text_model_imports_neither_torch_nor_transformers(text_run, tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    entry = registry.register(text_run[0], "notes")
    assert entry.runtime["served_by"] == "onnxruntime", entry.runtime
    call = "p.predict('notes', texts=['hydraulic pump leaking oil at the seal', 'replaced air filter'])"
    assert _served_in_a_fresh_process(registry.root, call) == ["2", "[]"]
