"""The plain-Python predictor: normalization like training, and requests checked field by field."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.requests import Request

from transferline.serve import Predictor, RequestError

from .conftest import windows


def test_predictions_match_the_training_pipeline(registry, runs):
    import json

    import torch
    from safetensors.torch import load_file

    from transferline.data import GroupNormalizer, InputSpec
    from transferline.model_registry import build_inference_model

    x = windows(3)
    got = Predictor(registry).predict("plant-a", x.tolist(), groups=np.zeros((3, 30), int).tolist())
    meta = json.loads((runs[0] / "model.json").read_text())
    norm = GroupNormalizer.from_dict(meta["normalizers"]["target"])
    z = (x - norm.mean[0]) / norm.std[0]  # FD001: operating condition 0
    model = build_inference_model(meta, load_file(str(runs[0] / "model.safetensors")),
                                  InputSpec.from_dict(meta["input"]))
    with torch.no_grad():
        expected = model(torch.from_numpy(z.transpose(0, 2, 1).astype(np.float32))).numpy()
    assert got["model"] == "plant-a@1" and got["unit"] == "cycles"
    np.testing.assert_allclose(got["predictions"], expected, rtol=1e-5)


@pytest.mark.parametrize("change,loc,message", [
    (lambda w: w[:, :20], ["body", "windows"], "shape [2, 20, 14]"),
    (lambda w: np.where(np.arange(14) == 5, np.nan, w), ["body", "windows", 0, 0, 5], "signal 's9'"),
])
def test_bad_windows_name_the_field(registry, change, loc, message):
    with pytest.raises(RequestError) as err:
        Predictor(registry).predict("plant-a", change(windows(2)).tolist())
    assert err.value.loc == loc and message in err.value.message


def test_wrong_signals_and_groups_are_refused(registry):
    p = Predictor(registry)
    with pytest.raises(RequestError, match="takes signals"):
        p.predict("plant-a", windows(1).tolist(), signals=["s3", "s2"])
    with pytest.raises(RequestError, match=r"shape \[1, 5\]"):
        p.predict("plant-a", windows(1).tolist(), groups=[[0] * 5])


def test_lru_keeps_at_most_max_models(registry):
    p = Predictor(registry, max_models=1)
    p.load("plant-a@1")
    p.load("plant-b@1")
    assert list(p._loaded) == [registry.get("plant-b@1").key]


def test_a_version_registered_again_is_loaded_anew(registry, runs):
    p = Predictor(registry)
    x = windows(3).tolist()
    first = p.predict("plant-a", x)["predictions"]
    registry.delete("plant-a@1")
    assert registry.register(runs[1], "plant-a").version == 1  # the same number, other weights
    again = p.predict("plant-a", x)["predictions"]
    assert again == Predictor(registry).predict("plant-a", x)["predictions"]
    assert np.abs(np.asarray(again) - first).min() > 0.1


def test_cli_predict_locally(registry, cli, tmp_path):
    import json

    body = {"windows": windows(2).tolist()}
    (tmp_path / "in.json").write_text(json.dumps(body))
    code, out, err = cli("predict", "plant-a@production", "--input", tmp_path / "in.json", "--models", registry.root)
    assert code == 0, err
    reply = json.loads(out)
    assert reply["model"] == "plant-a@1" and len(reply["predictions"]) == 2
    (tmp_path / "bad.json").write_text(json.dumps({"windows": windows(1)[:, :3].tolist()}))
    code, _, err = cli("predict", "plant-a", "--input", tmp_path / "bad.json", "--models", registry.root)
    assert code == 2 and "body.windows: shape [1, 3, 14]" in err


def test_api_key_docs_and_body_limit(monkeypatch):
    from fastapi.testclient import TestClient

    from transferline.serve.app import API_KEY_ENV, MAX_BODY_BYTES, OPEN_DOCS_ENV, build_api

    api = build_api()
    seen = []

    @api.post("/v1/echo")
    async def echo(request: Request) -> dict:
        seen.append(len(await request.body()))
        return {"ok": True}

    client = TestClient(api)
    assert client.post("/v1/echo").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    monkeypatch.setenv(API_KEY_ENV, "k3y")
    assert client.post("/v1/echo").status_code == 401
    assert client.get("/openapi.json").status_code == 401 and client.get("/docs").status_code == 401
    assert client.get("/openapi.json", headers={"x-api-key": "k3y"}).status_code == 200
    monkeypatch.setenv(OPEN_DOCS_ENV, "1")  # the operator opens the docs; the API stays closed
    assert client.get("/openapi.json").status_code == 200 and client.post("/v1/echo").status_code == 401
    key = {"x-api-key": "k3y"}
    assert client.post("/v1/echo", headers=key, content=b"y" * 1000).status_code == 200 and seen[-1] == 1000
    big = client.post("/v1/echo", headers={**key, "content-length": str(MAX_BODY_BYTES + 1)},
                      content=b"x" * (MAX_BODY_BYTES + 1))
    assert big.status_code == 413

    def chunks(n: int, size: int = 1 << 20):  # no content-length: Transfer-Encoding: chunked
        for _ in range(n):
            yield b"x" * size

    chunked = client.post("/v1/echo", headers=key, content=chunks(90))
    assert chunked.status_code == 413 and "over" in chunked.json()["detail"]
    assert seen == [0, 1000]  # the handler never ran for either large body
    small = client.post("/v1/echo", headers=key, content=chunks(2))
    assert small.status_code == 200 and seen[-1] == 2 << 20


def _b64(x: np.ndarray) -> str:
    import base64

    return base64.b64encode(np.asarray(x, "<f4").tobytes()).decode()


def test_binary_windows_answer_as_the_json_numbers(registry):
    p = Predictor(registry)
    x = windows(3, seed=4).astype(np.float32)  # exactly representable both ways
    as_json = p.predict_body("plant-a", {"windows": x.tolist()})
    as_binary = p.predict_body("plant-a", {"windows_base64": _b64(x)})
    assert as_binary == as_json and len(as_json["predictions"]) == 3
    raw = f'{{"windows_base64": "{_b64(x)}"}}'.encode()  # bytes: parsed and validated by pydantic in one pass
    assert p.predict_body("plant-a", raw) == as_json


@pytest.mark.parametrize("body,loc,message", [
    ({"windows_base64": "not base64!"}, ["body", "windows_base64"], "not valid base64"),
    ({"windows_base64": _b64(np.zeros(30 * 14 + 1))}, ["body", "windows_base64"], "1684 bytes"),
    ({"windows_base64": ""}, ["body", "windows_base64"], "0 bytes"),
    ({"windows_base64": _b64(np.where(np.arange(420) == 17, np.inf, 1.0))}, ["body", "windows_base64", 0, 1, 3],
     "signal 's7'"),
    ({"windows_base64": _b64(np.zeros(420)), "windows": windows(1).tolist()}, ["body", "windows_base64"], "once"),
    (b'{"windows": [[[1.0, ', ["body"], "JSON"),
])
def test_bad_binary_windows_and_bodies_name_the_field(registry, body, loc, message):
    with pytest.raises(RequestError) as err:
        Predictor(registry).predict_body("plant-a", body)
    assert err.value.loc[:len(loc)] == loc and message in err.value.message, err.value


class _Costed:
    """A model whose run costs ``fixed + per_sample * n`` seconds (a busy wait)."""

    def __init__(self, fixed: float, per_sample: float) -> None:
        self.fixed, self.per_sample = fixed, per_sample

    def sample(self, batch: int) -> np.ndarray:
        return np.zeros((batch, 3), np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        import time

        end = time.perf_counter() + self.fixed + self.per_sample * len(x)
        while time.perf_counter() < end:
            pass
        return x[:, :1]


def test_batching_is_sized_by_what_it_buys_each_model():
    from transferline.serve.batching import MAX_BATCH, measure

    heavy_call = measure(_Costed(fixed=0.004, per_sample=0.0002))  # a batch of 8 costs ~1.4 single calls
    assert heavy_call.batch and heavy_call.max_batch == MAX_BATCH and heavy_call.gain > 4
    assert 0.003 <= heavy_call.wait_s <= 0.010  # about one single call's time
    linear = measure(_Costed(fixed=0.0, per_sample=0.002))  # batching buys nothing
    assert not linear.batch and linear.gain < 1.3
    cheap = measure(_Costed(fixed=0.00005, per_sample=0.000001))  # a 10x gain of microseconds: not worth a queue
    assert not cheap.batch and cheap.gain > 1.3
    opaque = measure(type("Opaque", (), {"run": lambda self, x: x})())
    assert opaque.batch  # no probe possible (TorchScript fallback): default batching


def test_onnx_models_are_probed_on_zeros_of_their_input(registry):
    model = Predictor(registry).load("plant-a")
    x = model.module.sample(5)
    assert x.shape == (5, 14, 30) and x.dtype == np.float32
    assert model.module.run(x).shape[0] == 5


def test_a_batching_model_answers_each_caller_its_own_rows(monkeypatch):
    """The batched path itself (no model in these tests is worth batching on a CPU, so the server never
    takes it here): concurrent callers share calls, each gets its own rows, oversized inputs run alone."""
    import asyncio

    from ray.serve import batching as ray_batching

    from transferline.serve.batching import BatchPolicy, batched

    # NOTE: Serve's batch queue reads the replica's max_ongoing_requests for a warning only; there is
    # no replica here.
    monkeypatch.setattr(ray_batching._BatchQueue, "_warn_if_max_batch_size_exceeds_max_ongoing_requests",
                        lambda self: None)

    class Model:
        calls: list[int] = []

        def run(self, x: np.ndarray) -> np.ndarray:
            self.calls.append(len(x))
            return x * 10

    model = Model()
    run = batched(model, BatchPolicy(True, max_batch=8, wait_s=0.05))

    async def fire():
        inputs = [np.full((1 + i % 2, 3), float(i)) for i in range(10)]
        outs = await asyncio.gather(*(run(x) for x in inputs))
        return inputs, outs, await run(np.ones((20, 3)))

    inputs, outs, big = asyncio.run(fire())
    for x, y in zip(inputs, outs):
        np.testing.assert_array_equal(y, x * 10)
    assert max(model.calls[:-1]) > 2 and max(model.calls[:-1]) <= 8  # shared calls, never over max_batch
    assert model.calls[-1] == 20 and big.shape == (20, 3)
