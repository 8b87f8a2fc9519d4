"""Every cluster configuration loads, has the fields its tool requires, and matches the package:
image tag = package version, Ray version = installed Ray, commands parse with the CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

CLUSTER = REPO / "cluster"


def _version() -> str:
    return re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)


IMAGE = f"transferline:{_version()}"


def _images(node) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "image" and isinstance(v, str)] + \
            [i for v in node.values() for i in _images(v)]
    if isinstance(node, list):
        return [i for v in node for i in _images(v)]
    return []


@pytest.mark.parametrize("path", sorted((CLUSTER / "launcher").glob("*.yaml")), ids=lambda p: p.name)
def test_launcher_configs(path):
    cfg = yaml.safe_load(path.read_text())
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type", "docker"):
        assert key in cfg, f"{path.name}: no {key}"
    assert cfg["provider"]["type"] in ("aws", "gcp") and cfg["provider"]["region"]
    nodes = cfg["available_node_types"]
    assert cfg["head_node_type"] in nodes
    assert any(n.get("resources", {}).get("GPU", 0) >= 1 for n in nodes.values()), "no GPU worker group"
    assert all("node_config" in n for n in nodes.values())
    assert cfg["docker"]["image"] == IMAGE


@pytest.mark.parametrize("path", sorted((CLUSTER / "kuberay").glob("*.yaml")), ids=lambda p: p.name)
def test_kuberay_manifests(path):
    import ray

    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "ray.io/v1"
    kind = doc["kind"]
    assert kind in ("RayCluster", "RayJob", "RayService")
    cluster = {"RayCluster": lambda d: d["spec"], "RayJob": lambda d: d["spec"]["rayClusterSpec"],
               "RayService": lambda d: d["spec"]["rayClusterConfig"]}[kind](doc)
    assert cluster["rayVersion"] == ray.__version__
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"]
    assert set(_images(doc)) == {IMAGE}


@pytest.mark.parametrize("path", sorted((CLUSTER / "kuberay").glob("rayjob-*.yaml")), ids=lambda p: p.name)
def test_job_entrypoints_parse_with_the_cli(path):
    from transferline.cli import build_parser

    argv = shlex.split(yaml.safe_load(path.read_text())["spec"]["entrypoint"])
    assert argv[0] == "transferline"
    args = build_parser().parse_args(argv[1:])
    assert args.command in ("pretrain", "transfer")
    config = Path(args.config.replace("/home/ray/transferline/", str(REPO) + "/"))
    assert config.is_file(), f"{path.name}: no config {args.config} in the image"
    # the job trains on the cluster's workers, and they have the GPUs it asks for
    assert args.workers and args.address == "auto" and args.storage.startswith("/data/"), path.name
    groups = yaml.safe_load(path.read_text())["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    gpus = sum(g["replicas"] * int(c["resources"]["limits"].get("nvidia.com/gpu", 0))
               for g in groups for c in g["template"]["spec"]["containers"])
    assert args.workers * args.gpus_per_worker <= gpus, f"{path.name}: asks for more GPUs than its workers have"


def test_rayservice_import_path_builds_the_application(tmp_path):
    import importlib

    doc = yaml.safe_load((CLUSTER / "kuberay" / "rayservice.yaml").read_text())
    app = yaml.safe_load(doc["spec"]["serveConfigV2"])["applications"][0]
    module, _, attr = app["import_path"].partition(":")
    builder = getattr(importlib.import_module(module), attr)
    built = builder({**app["args"], "models_root": str(tmp_path)})
    from ray.serve import Application

    assert isinstance(built, Application)
    scaling = built._bound_deployment._deployment_config.autoscaling_config  # as the manifest asks
    assert (scaling.min_replicas, scaling.max_replicas) == (app["args"]["replicas"], app["args"]["max_replicas"])
    assert scaling.target_ongoing_requests == app["args"]["target_ongoing_requests"]
    assert built._bound_deployment.init_args[2] == app["args"]["models_per_replica"]


def test_autoscaling_bounds_are_checked_before_anything_starts(tmp_path):
    from transferline.errors import TransferlineError
    from transferline.serve.app import application

    fixed = application(str(tmp_path), replicas=3)._bound_deployment._deployment_config
    assert fixed.num_replicas == 3 and fixed.autoscaling_config is None
    for bad in ({"replicas": 0}, {"replicas": 4, "max_replicas": 2}, {"replicas": 1, "max_replicas": 2,
                                                                      "target_ongoing": 0}):
        with pytest.raises(TransferlineError, match="replicas"):
            application(str(tmp_path), **bad)
    for bad in (0, 2.5, True):
        with pytest.raises(TransferlineError, match="models_per_replica"):
            application(str(tmp_path), models_per_replica=bad)


def test_dockerfile_uses_the_tested_ray_and_copies_the_package():
    import ray

    text = (CLUSTER / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{ray.__version__}-py311" in text
    copied = re.findall(r"^COPY --chown=\S+ (\w+) \1$", text, re.M)
    assert set(copied) >= {"platform", "connectors", "tasks"}, copied
    for folder in copied:
        assert (REPO / folder).is_dir(), folder
    assert IMAGE in text
