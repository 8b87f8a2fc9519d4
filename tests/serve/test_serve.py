"""The Ray Serve application over real HTTP on 127.0.0.1: multiplexed models answer concurrent
requests each with their own model's output, batched; bad requests get 422 naming the field."""

from __future__ import annotations

import asyncio
import os
import socket

import httpx
import numpy as np
import pytest

from transferline.serve import Predictor

from ..conftest import REPO, write_fan_end
from .conftest import windows
from .test_registry import _served_in_a_fresh_process

pytestmark = [pytest.mark.ray, pytest.mark.integration]
METRICS: dict = {}  # the embedded Ray's Prometheus port, set by the server fixture


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, runs):
    from ray import serve

    from transferline.model_registry import ModelRegistry
    from transferline.serve.app import application
    from transferline.serve.runtime import start

    import ray
    from ray.exceptions import RayError

    from transferline._ray import ensure_ray

    registry = ModelRegistry(tmp_path_factory.mktemp("served") / "models")
    registry.register(runs[0], "plant-a", stage="production")
    registry.register(runs[1], "plant-b")
    # Ray's own processes take their ports before the proxy's is chosen; metrics every second
    os.environ["RAY_metrics_report_interval_ms"] = "1000"
    METRICS["port"] = free_port()
    ensure_ray(num_cpus=2, metrics_port=METRICS["port"], worker_niceness=None)  # as serve.runtime.start starts it
    try:
        for attempt in range(3):
            port = free_port()
            try:
                # NOTE: the port is free when chosen; another process may take it before the
                # proxy binds it, and then the proxy fails to start: choose again.
                start("127.0.0.1", port, num_cpus=2)
                serve.run(application(str(registry.root)), name="transferline", route_prefix="/")
                break
            except RayError:
                serve.shutdown()
                if attempt == 2:
                    raise
        yield f"http://127.0.0.1:{port}", registry
    finally:  # a failed start must not leave Ray running (or collecting metrics) for the modules after this one
        serve.shutdown()
        ray.shutdown()
        for name in ("RAY_metrics_report_interval_ms", "RAY_enable_metrics_collection"):
            os.environ.pop(name, None)


def test_health_models_and_docs(server):
    url, _ = server
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "models": 2}
    models = {m["name"]: m for m in httpx.get(f"{url}/v1/models").json()}
    assert models["plant-a"]["stages"] == {"production": 1}
    series = models["plant-b"]["input"]["series"]
    assert series["window"] == 30 and series["layout"] == "[batch, time, signal]" and "normalizer" not in series
    assert httpx.get(f"{url}/openapi.json").json()["paths"]["/v1/models/{name}/predict"]


def test_prometheus_metrics_count_requests_time_them_and_size_batches_per_model(server, runs):
    """Ray's metrics agent exports each model's requests by status, latency and batch sizes (a model
    registered for this test alone, so the counts are exact); unknown model names share one label."""
    import time

    from prometheus_client.parser import text_string_to_metric_families

    url, registry = server
    registry.register(runs[0], "metered")
    ok = [httpx.post(f"{url}/v1/models/metered/predict", json={"windows": windows(n).tolist()}) for n in (1, 3)]
    bad = httpx.post(f"{url}/v1/models/metered/predict", json={"windows": [[1.0]]})
    missing = httpx.post(f"{url}/v1/models/no-such-model-xyz/predict", json={"windows": windows(1).tolist()})
    assert [r.status_code for r in ok] == [200, 200] and bad.status_code == 422 and missing.status_code == 404

    def scrape() -> dict:
        text = httpx.get(f"http://127.0.0.1:{METRICS['port']}/metrics", timeout=10).text
        out: dict = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith("ray_transferline_model_"):
                    labels = sample.labels
                    key = (sample.name, labels.get("model"), labels.get("code") or labels.get("le"))
                    out[key] = out.get(key, 0) + sample.value  # summed over replicas
        return out

    want = {("ray_transferline_model_requests_total", "metered@1", "200"): 2,
            ("ray_transferline_model_requests_total", "metered@1", "422"): 1,
            ("ray_transferline_model_latency_ms_count", "metered@1", None): 3,
            # one call of 1 window, one of 3 (Ray exports a histogram's sum from bucket midpoints: buckets are exact)
            ("ray_transferline_model_batch_size_bucket", "metered@1", "1.0"): 1,
            ("ray_transferline_model_batch_size_bucket", "metered@1", "2.0"): 1,
            ("ray_transferline_model_batch_size_bucket", "metered@1", "4.0"): 2,
            ("ray_transferline_model_batch_size_count", "metered@1", None): 2}
    unknown = ("ray_transferline_model_requests_total", "-", "404")  # other tests may add to this one

    def complete(got: dict) -> bool:  # each replica reports on its own clock: wait for all of it
        return all(got.get(k) == v for k, v in want.items()) and got.get(unknown, 0) >= 1

    deadline = time.monotonic() + 90
    got = scrape()
    while not complete(got) and time.monotonic() < deadline:
        time.sleep(1)  # the agent exports what the replicas reported every second
        got = scrape()
    assert {k: got.get(k) for k in want} == want
    assert got.get(unknown, 0) >= 1
    assert not any(model == "no-such-model-xyz" for _, model, _ in got)  # no label per unknown name


def test_a_replica_keeps_as_many_models_as_asked_and_unloads_the_least_recently_used(server):
    """An application keeping one model per replica loads a model for every switch between two and
    still answers each request with its own model (Serve's own multiplexing counters, scraped)."""
    import time

    from prometheus_client.parser import text_string_to_metric_families
    from ray import serve

    from transferline.serve.app import application

    url, registry = server
    local = Predictor(registry)
    serve.run(application(str(registry.root), models_per_replica=1), name="lru", route_prefix="/lru")
    try:
        order = ["plant-a", "plant-b", "plant-b", "plant-a", "plant-b"]
        x = windows(2, seed=3)
        for name in order:
            reply = httpx.post(f"{url}/lru/v1/models/{name}/predict", json={"windows": x.tolist()}, timeout=60)
            assert reply.status_code == 200 and reply.json()["model"] == f"{name}@1"
            assert np.allclose(reply.json()["predictions"], local.predict(name, x.tolist())["predictions"], atol=1e-4)

        def counts() -> dict:
            text = httpx.get(f"http://127.0.0.1:{METRICS['port']}/metrics", timeout=10).text
            out = {"load": 0.0, "unload": 0.0}
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.labels.get("application") != "lru":
                        continue
                    for kind in out:
                        if sample.name == f"ray_serve_multiplexed_models_{kind}_counter_total":
                            out[kind] += sample.value
            return out

        want = {"load": 4, "unload": 3}  # a, b (a out), b, a (b out), b (a out)
        deadline = time.monotonic() + 90
        while counts() != want and time.monotonic() < deadline:
            time.sleep(1)  # the replica reports its counters every second
        assert counts() == want
    finally:
        serve.delete("lru")


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


def test_binary_windows_and_pages_of_models_over_http(server):
    import base64
    import re

    url, _ = server
    x = windows(2, seed=3).astype(np.float32)
    as_json = httpx.post(f"{url}/v1/models/plant-b/predict", json={"windows": x.tolist()})
    as_binary = httpx.post(f"{url}/v1/models/plant-b/predict",
                           json={"windows_base64": base64.b64encode(x.astype("<f4").tobytes()).decode()})
    assert as_binary.status_code == 200 and as_binary.json() == as_json.json()
    assert as_binary.headers["content-type"] == "application/json"
    short = httpx.post(f"{url}/v1/models/plant-b/predict", json={"windows_base64": "AAAA"})
    assert short.status_code == 422 and short.json()["detail"][0]["loc"] == ["body", "windows_base64"]

    everything = [m["name"] for m in httpx.get(f"{url}/v1/models").json()]
    paged, next_page = [], "/v1/models?limit=1"
    while next_page:
        reply = httpx.get(url + next_page)
        assert reply.status_code == 200 and len(reply.json()) == 1
        paged += [m["name"] for m in reply.json()]
        link = reply.headers.get("link")
        next_page = re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1) if link else None
    assert paged == everything and len(everything) >= 2
    assert httpx.get(f"{url}/v1/models", params={"limit": 0}).status_code == 422


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


@pytest.mark.parametrize("path", ["%2e%2e", "..%2F..%2Fescape", "a%00b", "x" * 101, ".hidden"])
def test_names_that_leave_the_registry_are_refused_over_http(server, path):
    url, registry = server
    reply = httpx.post(f"{url}/v1/models/{path}/predict", json={"windows": windows(1).tolist()})
    assert reply.status_code in (404, 422), reply.text
    if reply.status_code == 422:
        assert reply.json()["detail"][0]["loc"] == ["path", "name"]
    assert str(registry.root) not in reply.text and str(registry.root.parent) not in reply.text


def test_not_found_names_neither_paths_nor_other_models(server):
    url, registry = server
    for params in ({}, {"version": 7}):
        reply = httpx.post(f"{url}/v1/models/{'plant-z' if not params else 'plant-a'}/predict", params=params,
                           json={"windows": windows(1).tolist()})
        assert reply.status_code == 404, reply.text
        assert str(registry.root) not in reply.text and "plant-b" not in reply.text
    assert httpx.post(f"{url}/v1/models/plant-a/predict", params={"stage": "nightly"},
                      json={"windows": windows(1).tolist()}).status_code == 422


def _with(value, b=0, t=3, c=2):
    x = windows(2).tolist()
    x[b][t][c] = value
    return x


@pytest.mark.parametrize("body,loc", [
    ({"windows": _with(True)}, ["body", "windows", 0, 3, 2]),
    ({"windows": _with("642.5")}, ["body", "windows", 0, 3, 2]),
    ({"windows": _with(1e308)}, ["body", "windows", 0, 3, 2]),
    ({"windows": _with(-1e39, b=1)}, ["body", "windows", 1, 3, 2]),
    ({"windows": windows(1).tolist(), "groups": [[2 ** 63] * 30]}, ["body", "groups"]),
    ({"windows": windows(1).tolist(), "groups": [[0] * 29 + [7]]}, ["body", "groups", 0, 29]),
    ({"windows": windows(1).tolist(), "groups": [[0.0] * 30]}, ["body", "groups", 0, 0]),
    ({"windows": windows(1).tolist(), "group": [[0] * 30]}, ["body", "group"]),
])
def test_strict_validation_names_the_field(server, body, loc):
    url, _ = server
    reply = httpx.post(f"{url}/v1/models/plant-a/predict", json=body)
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"][:len(loc)] == loc, reply.text


def test_chunked_body_over_the_limit_is_refused_and_the_server_keeps_serving(server):
    url, _ = server

    def chunks():
        for _ in range(90):  # 90 MB, no content-length
            yield b"[" * (1 << 20)

    reply = httpx.post(f"{url}/v1/models/plant-a/predict", content=chunks(),
                       headers={"content-type": "application/json"}, timeout=120)
    assert reply.status_code == 413, reply.text
    ok = httpx.post(f"{url}/v1/models/plant-a/predict", json={"windows": windows(1).tolist()})
    assert ok.status_code == 200


def test_a_model_whose_files_changed_is_not_served(server, runs):
    url, registry = server
    entry = registry.register(runs[0], "plant-d")
    artifact = registry.artifact("plant-d")
    original = artifact.read_bytes()
    try:
        artifact.write_bytes(original[:-64] + bytes(64))  # swapped on disk after registration
        reply = httpx.post(f"{url}/v1/models/plant-d/predict", json={"windows": windows(1).tolist()})
        assert reply.status_code == 409 and "plant-d@1" in reply.text and str(registry.root) not in reply.text
        artifact.write_bytes(original)
        assert httpx.post(f"{url}/v1/models/plant-d/predict", json={"windows": windows(1).tolist()}).status_code == 200
    finally:
        registry.delete(entry.name)


def test_embedded_ray_and_serve_listen_on_loopback_only(server):
    import ipaddress

    import psutil

    listening = []
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            listening += [(proc.name(), c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="inet")
                          if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            continue
    assert len(listening) >= 5, listening  # GCS, raylet, workers, Serve's proxy ...
    def loopback(ip: str) -> bool:
        address = ipaddress.ip_address(ip)
        return (getattr(address, "ipv4_mapped", None) or address).is_loopback

    exposed = [item for item in listening if not loopback(item[1])]
    assert not exposed, exposed


def test_serving_keeps_rays_worker_niceness(server):
    """Serve's processes keep Ray's default niceness (15), where training's run at the driver's: on 2
    cores Serve answered more at 15 (see transferline._ray.ensure_ray)."""
    import os

    import psutil

    agents = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")  # the raylet's own helpers, not workers
    workers = {proc.name(): proc.nice() for proc in psutil.Process().children(recursive=True)
               if proc.name().startswith("ray::") and proc.name() not in agents}
    # NOTE: a Ray worker's process name carries the method it runs (ray::ServeController.listen_for_change)
    assert all(any(n.startswith(actor) for n in workers) for actor in ("ray::ServeController", "ray::ProxyActor")), \
        workers
    assert set(workers.values()) == {min(os.nice(0) + 15, 19)}, workers
    assert "RAY_worker_niceness" not in os.environ


def test_api_fuzz_finds_no_server_error_and_no_answer_outside_the_schema(server, tmp_path):
    """A bounded schemathesis run driven by the server's OpenAPI schema."""
    import subprocess
    import sys
    from pathlib import Path

    url, _ = server
    st = Path(sys.executable).with_name("st")
    # the checks are about answers, not latency: with both cores busy beside the server one request
    # (a 422) took over schemathesis' default 10 s, which it reports as an error
    done = subprocess.run([str(st), "run", f"{url}/openapi.json", "--checks",
                           "not_a_server_error,status_code_conformance,content_type_conformance,"
                           "response_schema_conformance", "--max-examples", "40", "--seed", "1", "--workers", "1",
                           "--request-timeout", "60", "--no-color"], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_images_over_http(server, image_run):
    import base64
    import io

    from PIL import Image

    url, registry = server
    registry.register(image_run[0], "neu-http")
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (100, 120), dtype=np.uint8)).save(buf, format="JPEG")
    body = {"images": [base64.b64encode(buf.getvalue()).decode()] * 2}
    reply = httpx.post(f"{url}/v1/models/neu-http/predict", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    out = reply.json()
    assert len(out["labels"]) == 2 and abs(sum(out["probabilities"][0]) - 1) < 1e-4
    bad = httpx.post(f"{url}/v1/models/neu-http/predict", json={"images": ["%%%"]}, timeout=60)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "images", 0]
    registry.delete("neu-http")


def test_a_newcomers_recordings_end_to_end_over_http(server, cli, tmp_path):
    """Fan-end vibration (real, vendored CWRU slice) saved as .npy files in a layout no built-in
    reader knows: ingested by pattern, a 2-epoch transfer, registered from the command line, served
    over HTTP: the served answers on raw windows equal the run's own predictions."""
    import json
    from dataclasses import replace

    import torch
    from safetensors.torch import load_file

    from transferline.data import InputSpec, get_data_spec, load_windows
    from transferline.model_registry import build_inference_model
    from transferline.train import load_config, prepare_data

    url, registry = server
    lab = write_fan_end(tmp_path / "lab", "{fault}-{load}-{part}.npy")
    catalog, run = tmp_path / "catalog", tmp_path / "run"
    code, _, err = cli("ingest", "waveforms", lab, "--name", "lab", "--catalog", catalog, "--pattern",
                       "{label}-{load}hp-*.npy", "--sample-rate", "12000", "--quiet")
    assert code == 0, err
    overrides = ["data.dataset=lab", "data.spec={kind: waveforms, length: 1024, label: label, domain: load}",
                 "source.domains=[0]", "target.domains=[3]", "test.domains=[3]", "source.split=all",
                 "target.split=all", "test.split=all", "test.last_only=false", "target.labelled_units=0",
                 "task=fault_diagnosis", "objective=supervised", "encoder=cnn_small", "epochs=2",
                 "adaptation=source_only", "strategy=full"]
    code, out, err = cli("transfer", "--config", REPO / "examples" / "configs" / "demo_transfer.yaml", *overrides,
                         "--catalog", catalog, "--run-dir", run, "--quiet")
    assert code == 0, err
    code, out, err = cli("models", "register", run, "--name", "newcomer", "--models", registry.root)
    assert code == 0, err

    config = load_config(REPO / "examples" / "configs" / "demo_transfer.yaml", [*overrides, f"catalog={catalog}"])
    test = prepare_data(config).test
    meta = json.loads((run / "model.json").read_text())
    model = build_inference_model(meta, load_file(str(run / "model.safetensors")), InputSpec.from_dict(meta["input"]))
    index = np.arange(len(test))
    with torch.no_grad():
        trained = model(torch.from_numpy(test.get(index))).numpy()
    from transferline.catalog import Catalog

    raw = load_windows(Catalog(catalog), "lab", get_data_spec(config["data"]["spec"]), split="all", domains=[3])
    windows = replace(raw, per_window_norm=False).get(index).transpose(0, 2, 1)  # [batch, time, signal], raw
    reply = httpx.post(f"{url}/v1/models/newcomer/predict", json={"windows": windows.tolist()}, timeout=60)
    assert reply.status_code == 200, reply.text
    served = reply.json()
    assert served["labels"] == [["B007", "IR007", "OR007"][i] for i in trained.argmax(-1)]
    np.testing.assert_allclose(served["probabilities"], trained, atol=1e-4)
    registry.delete("newcomer")


def test_texts_over_http(server, text_run):
    url, registry = server
    registry.register(text_run[0], "log-http")
    reply = httpx.post(f"{url}/v1/models/log-http/predict", json={"texts": ["pump seal leaking", "replace filter"]},
                       timeout=60)
    assert reply.status_code == 200, reply.text
    out = reply.json()
    assert len(out["labels"]) == 2 and set(out["labels"]) <= {"degraded", "failed", "routine"}
    assert abs(sum(out["probabilities"][0]) - 1) < 1e-4
    local = Predictor(registry).predict("log-http", texts=["pump seal leaking", "replace filter"])
    assert local["labels"] == out["labels"]
    for body, loc in [({"texts": [""]}, ["body", "texts", 0]), ({"texts": [3]}, ["body", "texts", 0]),
                      ({"texts": "pump"}, ["body", "texts"]), ({"windows": [[[1.0]]]}, ["body", "windows"])]:
        bad = httpx.post(f"{url}/v1/models/log-http/predict", json=body, timeout=60)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == loc, bad.text
    models = {m["name"]: m for m in httpx.get(f"{url}/v1/models").json()}
    assert models["log-http"]["input"]["text"] == {"tokenizer": "hf/all-minilm-l6-v2", "max_length": 32}
    registry.delete("log-http")


def test_process_surrogate_recommends_over_http(server, tmp_path):
    """A registered quality surrogate answers POST /recommend like `transferline optimize`; its
    mistakes are 422s naming the field; /predict points to /recommend."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.process import SurrogateConfig, fit_surrogate, load_process_data
    from transferline.process.recommend import answer_for
    from transferline.process.store import load_surrogate, save_surrogate
    from transferline.sample_data import sample_path

    url, registry = server
    catalog = Catalog(tmp_path / "catalog")
    catalog.ingest("cnc", create_reader("cnc-mill")(sample_path("cnc_mill")))
    data = load_process_data(catalog, "cnc")
    config = SurrogateConfig(members=8, epochs=150)
    save_surrogate(tmp_path / "run", fit_surrogate(data, config), data, config, {})
    registry.register(tmp_path / "run", "cnc-quality")
    ask = {"objective": "max:feedrate", "constraints": ["passed_visual_inspection>=0.9"], "top": 3,
           "bounds": {"feedrate": [3, 25]}}
    reply = httpx.post(f"{url}/v1/models/cnc-quality/recommend", json=ask, timeout=60)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    model, meta = load_surrogate(tmp_path / "run")
    local = answer_for(model, meta, bounds={"feedrate": (3, 25)}, objective="max:feedrate",
                       constraints=ask["constraints"], top=3)
    assert body["model"] == "cnc-quality@1" and body["warnings"] == local["warnings"] != []
    assert [r["setpoints"] for r in body["recommendations"]] == [r["setpoints"] for r in local["recommendations"]]
    np.testing.assert_allclose([r["p_constraints"] for r in body["recommendations"]],
                               [r["p_constraints"] for r in local["recommendations"]], atol=1e-6)
    for ask_bad, loc in (({"objective": "max:speed"}, ["body", "objective"]),
                         ({"objective": "max:feedrate", "bounds": {"feedrate": [9, 3]}}, ["body", "bounds"]),
                         ({"objective": "max:feedrate", "constraints": ["scrap<0.1"]}, ["body", "constraints"]),
                         ({"objective": "max:feedrate", "next": 50}, ["body", "next"]),
                         ({"objective": "max:feedrate", "speed": 1}, ["body", "speed"])):
        bad = httpx.post(f"{url}/v1/models/cnc-quality/recommend", json=ask_bad, timeout=60)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == loc, bad.text
    warm = httpx.post(f"{url}/v1/models/cnc-quality/recommend", timeout=120,
                      json={**ask, "next": 1, "warm_start": ["cnc-quality"]})  # itself as the source: kept, correlated
    assert warm.status_code == 200, warm.text
    assert warm.json()["warm_start"]["passed_visual_inspection"]["cnc-quality@1"]["kept"] is True
    no_context = httpx.post(f"{url}/v1/models/cnc-quality/recommend", json={**ask, "context": {"tool": "worn"}})
    assert no_context.status_code == 422 and no_context.json()["detail"][0]["loc"] == ["body", "context"]
    unknown = httpx.post(f"{url}/v1/models/cnc-quality/recommend", json={**ask, "next": 1, "warm_start": ["nope"]})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "warm_start", 0]
    wrong = httpx.post(f"{url}/v1/models/plant-a/recommend", json={"objective": "max:feedrate"}, timeout=60)
    assert wrong.status_code == 422 and "not a process surrogate" in wrong.text
    predict = httpx.post(f"{url}/v1/models/cnc-quality/predict", json={"windows": [[[0.0]]]}, timeout=60)
    assert predict.status_code == 422 and "/v1/models/cnc-quality/recommend" in predict.text
    registry.delete("cnc-quality")


def test_anomaly_scores_and_heat_maps_over_http(server, tmp_path):
    """A registered anomaly model answers scores, decisions at its threshold and PNG heat maps; a
    heat map asked of another model is a 422 naming the field."""
    import base64
    import io

    from PIL import Image

    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.inspection import AnomalyConfig
    from transferline.inspection.run import fit_dataset
    from transferline.sample_data import sample_path

    url, registry = server
    catalog = Catalog(tmp_path / "catalog")
    catalog.ingest("tiles", create_reader("images")(sample_path("magnetic_tile"), plant="mt"))
    result = fit_dataset(catalog, "tiles", ["MT_Free"], tmp_path / "run", AnomalyConfig(method="padim"), size=(64, 64),
                         holdout=0.25)
    registry.register(result["out"], "tiles-http")
    images = catalog.read("tiles", columns=["image"]).column("image")
    body = {"images": [base64.b64encode(images[i].as_py()).decode() for i in (0, 10)], "heatmap": True}
    reply = httpx.post(f"{url}/v1/models/tiles-http/predict", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    out = reply.json()
    local = Predictor(registry).predict("tiles-http", images=body["images"])
    np.testing.assert_allclose(out["predictions"], local["predictions"], rtol=1e-3)  # float32, other threads
    assert out["anomalous"] == [p > out["threshold"] for p in out["predictions"]]
    assert Image.open(io.BytesIO(base64.b64decode(out["heatmaps"][1]))).size == (64, 64)
    bad = httpx.post(f"{url}/v1/models/plant-a/predict", json={"windows": [[[0.0]]], "heatmap": True}, timeout=60)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "heatmap"]
    registry.delete("tiles-http")


def test_detector_boxes_over_http(server, tmp_path):
    """A registered detector answers, per sent image, boxes with class, score and xyxy in that
    image's own pixels, the same as the predictor in this process."""
    import base64

    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.inspection.detection import DetectorConfig
    from transferline.inspection.run import detect_dataset
    from transferline.sample_data import sample_path

    url, registry = server
    catalog = Catalog(tmp_path / "catalog")
    catalog.ingest("neu", create_reader("neu-det")(sample_path("neu")))
    result = detect_dataset(catalog, "neu", tmp_path / "run", DetectorConfig(size=(64, 64), epochs=1), per_class=2)
    registry.register(result["out"], "neu-boxes-http")
    images = catalog.read("neu", columns=["image"]).column("image")
    body = {"images": [base64.b64encode(images[i].as_py()).decode() for i in (0, 50)]}
    reply = httpx.post(f"{url}/v1/models/neu-boxes-http/predict", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    out = reply.json()["predictions"]
    local = Predictor(registry).predict("neu-boxes-http", images=body["images"])["predictions"]
    assert len(out) == 2 and [[b["label"] for b in p] for p in out] == [[b["label"] for b in p] for p in local]
    for boxes in out:
        for box in boxes:
            x0, y0, x1, y1 = box["xyxy"]
            assert 0 <= x0 <= x1 <= 416 and 0 <= y0 <= y1 <= 416 and 0 <= box["score"] <= 1  # the 416 px originals
    registry.delete("neu-boxes-http")


def test_tagger_spans_over_http(server, tmp_path):
    """A registered entity tagger answers each sent text's spans (type, character offsets, text), the
    same as the eager tagger; an empty text is a 422 naming it."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path
    from transferline.tagging import TagConfig, tag_texts
    from transferline.tagging.run import fit_tagging
    from transferline.tagging.store import load_tagger

    url, registry = server
    catalog = Catalog(tmp_path / "catalog")
    catalog.ingest("mie", create_reader("maintie")(sample_path("maintie")))
    result = fit_tagging(catalog, "mie", tmp_path / "run", TagConfig(epochs=2, max_length=24))
    entry = registry.register(result["out"], "mie-spans-http")
    assert entry.output["kind"] == "spans" and "model.onnx" in entry.files
    texts = ["replace air conditioner filter", "<id> hydraulic pump leaking", "engine  oil   leak at rear seal"]
    reply = httpx.post(f"{url}/v1/models/mie-spans-http/predict", json={"texts": texts}, timeout=60)
    assert reply.status_code == 200, reply.text
    out = reply.json()["predictions"]
    tagger, spec, _ = load_tagger(result["out"])
    assert out == tag_texts(tagger, spec, texts) and sum(map(len, out)) >= 3
    for text, spans in zip(texts, out):
        assert all(text[s["start"]:s["end"]] == s["text"] and s["label"] in {t[2:] for t in entry.output["tags"]}
                   for s in spans)
    bad = httpx.post(f"{url}/v1/models/mie-spans-http/predict", json={"texts": ["pump", " "]}, timeout=60)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "texts", 1]
    # a replica answers it with onnxruntime and the tokenizers library: no torch, no transformers
    call = "p.predict('mie-spans-http', texts=['replace air conditioner filter', 'pump seal leaking'])"
    assert _served_in_a_fresh_process(registry.root, call) == ["2", "[]"]
    registry.delete("mie-spans-http")


def test_retriever_neighbours_over_http(server, tmp_path):
    """A registered retriever answers each sent problem's nearest past problems with the actions
    that fixed them, as the predictor in this process does."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.retrieval import PairConfig, load_pairs
    from transferline.retrieval.run import fit_retrieval
    from transferline.sample_data import sample_path

    url, registry = server
    catalog = Catalog(tmp_path / "catalog")
    catalog.ingest("mn", create_reader("maintnet")(sample_path("maintnet")))
    result = fit_retrieval(catalog, "mn", tmp_path / "run", PairConfig(epochs=1, batch_size=16, max_length=24), k=3)
    registry.register(result["out"], "fixes-http")
    problem = load_pairs(catalog, "mn").queries[0]
    body = {"texts": [problem, "left mag drop high"]}
    reply = httpx.post(f"{url}/v1/models/fixes-http/predict", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    out = reply.json()["predictions"]
    assert out == Predictor(registry).predict("fixes-http", texts=body["texts"])["predictions"]
    assert [len(n) for n in out] == [3, 3] and out[0][0]["problem"] == problem and out[0][0]["actions"]
    bad = httpx.post(f"{url}/v1/models/fixes-http/predict", json={"texts": "oil leak"}, timeout=60)
    assert bad.status_code == 422 and "texts" in bad.text
    registry.delete("fixes-http")


def test_fused_sensors_over_http(server, fused_runs):
    """A model of three accelerometers: the same windows with all sensors, each one alone, and none."""
    url, registry = server
    registry.register(fused_runs["gated"][0], "fused-http")
    rng = np.random.default_rng(0)
    w = {s: rng.standard_normal((2, 512, 1)).tolist() for s in ("de", "fe", "ba")}
    listed = next(m for m in httpx.get(f"{url}/v1/models", timeout=30).json() if m["name"] == "fused-http")
    assert list(listed["input"]) == ["de", "fe", "ba"] and listed["input"]["fe"]["layout"] == "[batch, time, signal]"
    for subset in (("de", "fe", "ba"), ("de",), ("fe",), ("ba",), ("fe", "ba")):
        reply = httpx.post(f"{url}/v1/models/fused-http/predict",
                           json={"inputs": {s: {"windows": w[s]} for s in subset}}, timeout=60)
        assert reply.status_code == 200, reply.text
        out = reply.json()
        assert out["inputs_used"] == list(subset) and len(out["probabilities"]) == 2
    none = httpx.post(f"{url}/v1/models/fused-http/predict", json={"inputs": {}}, timeout=60)
    assert none.status_code == 422 and none.json()["detail"][0]["loc"] == ["body", "inputs"]
    flat = httpx.post(f"{url}/v1/models/fused-http/predict", json={"windows": w["de"]}, timeout=60)
    assert flat.status_code == 422 and "takes several inputs (de, fe, ba)" in flat.json()["detail"][0]["msg"]
    registry.delete("fused-http")
