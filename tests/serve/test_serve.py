"""The Ray Serve application over real HTTP on 127.0.0.1: multiplexed models answer concurrent
requests each with their own model's output, batched; bad requests get 422 naming the field."""

from __future__ import annotations

import asyncio
import socket

import httpx
import numpy as np
import pytest

from transferline.serve import Predictor

from .conftest import windows

pytestmark = [pytest.mark.ray, pytest.mark.integration]


@pytest.fixture(scope="module")
def server(tmp_path_factory, runs):
    from ray import serve

    from transferline.model_registry import ModelRegistry
    from transferline.serve.app import application
    from transferline.serve.runtime import start

    registry = ModelRegistry(tmp_path_factory.mktemp("served") / "models")
    registry.register(runs[0], "plant-a", stage="production")
    registry.register(runs[1], "plant-b")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start("127.0.0.1", port, num_cpus=2)
    serve.run(application(str(registry.root)), name="transferline", route_prefix="/")
    yield f"http://127.0.0.1:{port}", registry
    serve.shutdown()
    import ray

    ray.shutdown()


def test_health_models_and_docs(server):
    url, _ = server
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "models": 2}
    models = {m["name"]: m for m in httpx.get(f"{url}/v1/models").json()}
    assert models["plant-a"]["stages"] == {"production": 1} and models["plant-b"]["input"]["window"] == 30
    assert httpx.get(f"{url}/openapi.json").json()["paths"]["/v1/models/{name}/predict"]


def test_concurrent_requests_for_different_models_get_their_own_answers(server):
    url, registry = server
    local = Predictor(registry)
    cases = [("plant-a" if i % 2 else "plant-b", windows(1 + i % 3, seed=i)) for i in range(48)]
    expected = [local.predict(name, x.tolist())["predictions"] for name, x in cases]
    other = local.predict("plant-a", cases[0][1].tolist())["predictions"]
    assert np.abs(np.asarray(expected[0]) - other).min() > 0.1, "the two models must answer differently"

    async def fire():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{url}/v1/models/{name}/predict", json={"windows": x.tolist()})
                                          for name, x in cases))

    replies = asyncio.run(fire())
    for (name, _), want, reply in zip(cases, expected, replies):
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["model"] == f"{name}@1"
        np.testing.assert_allclose(body["predictions"], want, rtol=1e-4, atol=1e-3)  # batching reorders float sums


def test_version_stage_and_validation_errors(server):
    url, _ = server
    ok = httpx.post(f"{url}/v1/models/plant-a/predict", params={"stage": "production"},
                    json={"windows": windows(1).tolist()})
    assert ok.status_code == 200 and ok.json()["model"] == "plant-a@1"
    short = httpx.post(f"{url}/v1/models/plant-a/predict", json={"windows": windows(1)[:, :10].tolist()})
    assert short.status_code == 422 and short.json()["detail"][0]["loc"] == ["body", "windows"]
    typed = httpx.post(f"{url}/v1/models/plant-a/predict", json={"windows": [[["x"]]]})
    assert typed.status_code == 422
    missing = httpx.post(f"{url}/v1/models/plant-z/predict", json={"windows": windows(1).tolist()})
    assert missing.status_code == 404 and "no model 'plant-z'" in missing.text
    big = httpx.post(f"{url}/v1/models/plant-a/predict", content=b"x" * (9 * 1024 * 1024),
                     headers={"content-type": "application/json"})
    assert big.status_code == 413



def test_a_version_registered_again_is_served_with_its_new_weights(server, runs):
    url, registry = server
    x = windows(2, seed=5).tolist()
    registry.register(runs[0], "plant-c")
    try:
        first = httpx.post(f"{url}/v1/models/plant-c/predict", json={"windows": x}).json()["predictions"]
        registry.delete("plant-c@1")
        registry.register(runs[1], "plant-c")  # version 1 again, other weights
        reply = httpx.post(f"{url}/v1/models/plant-c/predict", json={"windows": x})
        assert reply.status_code == 200 and reply.json()["model"] == "plant-c@1"
        want = Predictor(registry).predict("plant-c", x)["predictions"]
        np.testing.assert_allclose(reply.json()["predictions"], want, rtol=1e-4, atol=1e-3)
        assert np.abs(np.asarray(want) - first).min() > 0.1
    finally:
        registry.delete("plant-c")
