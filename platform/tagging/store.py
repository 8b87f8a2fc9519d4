"""Tagger runs on disk and in the model registry: a run folder holds ``model.safetensors`` and
``model.json`` (kind ``tagger``: tags, input spec, encoder); registration exports the token-level
network (:class:`~transferline.tagging.tagger.TokenLogits`) as TorchScript and ONNX, checked
against the eager tagger (logits within tolerance, the same spans)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from ..errors import TransferlineError

ATOL = 1e-3
PROBES = ["replace air conditioner filter", "<id> pump seal leaking on engine 2", "check oil level"]


def load_tagger(run_dir: str | Path):
    """``(tagger, spec, meta)`` of a tagger run folder."""
    from ..data import TextInput
    from ..train.checkpoint import load_state
    from .tagger import TagConfig, build_tagger

    state, meta = load_state(Path(run_dir), "model")
    if meta.get("kind") != "tagger":
        raise TransferlineError(f"{run_dir} is not a tagger run (model.json kind {meta.get('kind')!r})")
    spec = TextInput(**meta["input"]["text"])
    tagger, _ = build_tagger(TagConfig(encoder=meta["encoder"], max_length=spec.max_length), meta["tags"])
    tagger.load_state_dict(state)
    return tagger.eval(), spec, meta


def describe_tagger(run_dir: Path, out: Path) -> dict:
    """The registry's side of a tagger run: copies weights and ``model.json``, exports and checks the
    token-level network, and returns the entry fields."""
    import numpy as np

    from ..model_registry._export import OnnxModule, export_mismatch, export_onnx, load_exported, onnx_mismatch
    from .spans import TagPreprocess
    from .tagger import TokenLogits, tag_texts

    tagger, spec, meta = load_tagger(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for fname in ("model.safetensors", "model.json"):
        shutil.copyfile(run_dir / fname, out / fname)
    network = TokenLogits(tagger).eval()
    preprocess = TagPreprocess(spec)
    example = torch.from_numpy(preprocess(PROBES))
    eager = tag_texts(tagger, spec, PROBES)
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(network, example, check_trace=False), str(out / "model.ts"))
    export_onnx(network, example, out / "model.onnx")
    for path, loaded, what in ((out / "model.ts", load_exported, "TorchScript"), (out / "model.onnx", OnnxModule, "ONNX")):
        mismatch = export_mismatch(network, example, path, ATOL) if what == "TorchScript" else \
            onnx_mismatch(network, example, path, ATOL, ATOL)
        if mismatch is not None:
            raise TransferlineError(f"the {what} tagger differs from the eager one by {mismatch:.2e}")
        with torch.no_grad():
            served = preprocess.spans(PROBES, np.asarray(loaded(path)(example)), tagger.tag_names)
        if served != eager:
            raise TransferlineError(f"the {what} tagger finds other spans than the eager one")
    test = metrics.get("test", {})
    return {"task": {"name": "entity_tagging", "type": "tagging", "options": {"depth": meta.get("depth")}},
            "modality": "text", "encoder": {"name": meta["encoder"], "options": {}}, "input": meta["input"],
            "output": {"kind": "spans", "tags": meta["tags"], "flattening": meta.get("flattening")},
            "lineage": {"run_dir": str(run_dir.resolve()), "dataset": meta.get("dataset"),
                        "pretrained": (metrics.get("fit", {}).get("config") or {}).get("pretrained")},
            "metrics": {"test_f1": test.get("f1"), "test_precision": test.get("precision"),
                        "test_recall": test.get("recall"), "test_spans": test.get("spans")}}
