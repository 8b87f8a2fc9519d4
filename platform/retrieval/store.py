"""Retrievers in the model registry: a ``retrieve fit`` run folder holds the fine-tuned encoder and
an index (every distinct problem of the dataset, embedded, with the actions logged for it).
Registration exports one network — token ids → the ``k`` most similar past problems (cosine
scores and positions) — as TorchScript and ONNX, checked against the eager encoder; the server
answers each text's neighbours with their actions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import TransferlineError

ATOL = 1e-3
PROBES = ["oil leak at left engine rocker cover", "replaced magneto", "cyl 3 low compression"]


class NeighbourNetwork(nn.Module):
    """Token ids ``[B, L]`` → ``[B, 2k]``: the cosine scores of the ``k`` nearest indexed problems,
    best first, then their positions in the index (as floats)."""

    def __init__(self, encoder: nn.Module, index: torch.Tensor, k: int) -> None:
        super().__init__()
        self.encoder, self.k = encoder, int(min(k, len(index)))
        self.register_buffer("index", F.normalize(index.float(), dim=1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        scores = F.normalize(self.encoder(ids), dim=1) @ self.index.T
        top = scores.topk(self.k, dim=1)
        return torch.cat([top.values, top.indices.to(top.values.dtype)], 1)


def write_index(stage: Path, embed, pairs) -> int:
    """Embeds every distinct problem of ``pairs`` and writes ``index.safetensors`` (embeddings) and
    ``index.json`` (the problems and the actions logged for each); returns the number indexed."""
    from safetensors.numpy import save_file

    task = pairs.task()
    save_file({"embeddings": np.ascontiguousarray(embed(task.queries), np.float32)}, str(stage / "index.safetensors"))
    (stage / "index.json").write_text(json.dumps({"problems": task.queries, "actions": [
        [task.documents[j] for j in sorted(rel)] for rel in task.relevant]}))
    return len(task.queries)


def describe_retriever(run_dir: Path, out: Path) -> dict:
    """The registry's side of a retriever run: the encoder and the index as one exported network
    (TorchScript and ONNX), checked against the eager encoder (scores, the same neighbours)."""
    from safetensors.numpy import load_file as load_numpy
    from safetensors.torch import save_file

    from ..data import TextInput
    from ..data.preprocess import TextPreprocess
    from ..model_registry._export import OnnxModule, export_mismatch, export_onnx, load_exported, onnx_mismatch
    from ..train.checkpoint import load_state
    from .dense import PairConfig, build_encoder

    for fname in ("encoder.safetensors", "index.safetensors", "index.json", "metrics.json"):
        if not (run_dir / fname).is_file():
            raise TransferlineError(f"{run_dir} is not a finished retriever run: no {fname}")
    meta = json.loads((run_dir / "model.json").read_text())
    spec = TextInput(**meta["input"]["text"])
    encoder, _ = build_encoder(PairConfig(encoder=meta["encoder"], max_length=spec.max_length))
    encoder.load_state_dict(load_state(run_dir, "encoder")[0])
    index = torch.from_numpy(load_numpy(str(run_dir / "index.safetensors"))["embeddings"])
    network = NeighbourNetwork(encoder.eval(), index, meta.get("k", 5)).eval()
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(out / "model.safetensors"))
    for fname in ("model.json", "index.json"):
        shutil.copyfile(run_dir / fname, out / fname)
    example = torch.from_numpy(TextPreprocess(spec)(PROBES))
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(network, example, check_trace=False), str(out / "model.ts"))
        eager = network(example)
    export_onnx(network, example, out / "model.onnx")
    for path, loaded, what in ((out / "model.ts", load_exported, "TorchScript"), (out / "model.onnx", OnnxModule, "ONNX")):
        mismatch = export_mismatch(network, example, path, ATOL) if what == "TorchScript" else \
            onnx_mismatch(network, example, path, ATOL, ATOL)
        with torch.no_grad():
            same = torch.equal(loaded(path)(example)[:, network.k:], eager[:, network.k:])
        if mismatch is not None or not same:
            raise TransferlineError(f"the {what} retriever answers other neighbours or scores than the eager one")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"task": {"name": "retrieval", "type": "retrieval", "options": {"k": network.k}},
            "modality": "text", "encoder": {"name": meta["encoder"], "options": {}}, "input": meta["input"],
            "output": {"kind": "neighbours", "k": network.k, "indexed": len(index)},
            "lineage": {"run_dir": str(run_dir.resolve()), "dataset": meta.get("dataset")},
            "metrics": {name: {k: v for k, v in m.items() if k in ("recall_at_1", "recall_at_10", "mrr")}
                        for name, m in metrics.items() if name != "fit"}}
