"""Package layout: the stdlib `platform` stays visible, the wheel holds every subpackage, layers point left."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO

# Layers in data-flow order; a module may import only from its own layer or those to its left.
LAYERS = ["errors", "registry", "catalog", "connectors", "data", "sample_data", "encoders", "losses", "tasks", "objectives",
          "adaptation", "train", "process", "inspection", "retrieval",
          "tagging"]
TOP_LEVEL = {"connectors", "tasks"}  # packages that live in their own top-level folder


def test_no_init_in_platform_root():
    assert not (REPO / "platform" / "__init__.py").exists()


def test_stdlib_platform_from_repo_root():
    code = "import platform, torch; print(platform.system(), platform.python_version())"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "Linux"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 2:  # from ..x import y inside transferline/<pkg>/
                names.add(module.split(".")[0])
            elif module.startswith("transferline."):
                names.add(module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[1] for a in node.names if a.name.startswith("transferline."))
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_point_left(layer):
    folder = REPO / layer if layer in TOP_LEVEL else REPO / "platform" / layer
    files = [folder.with_suffix(".py")] if folder.with_suffix(".py").is_file() else sorted(folder.rglob("*.py"))
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    for path in files:
        wrong = {name for name in _imports(path) if name in LAYERS} - allowed
        assert not wrong, f"{path.relative_to(REPO)} imports {wrong}, which lie to the right of {layer!r}"


@pytest.mark.integration
def test_wheel_in_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, REPO],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    wheel = next(dist.glob("transferline-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("transferline/catalog/__init__.py", "transferline/data/__init__.py",
                    "transferline/connectors/__init__.py", "transferline/tasks/__init__.py",
                    "transferline/sample_data/cmapss/train_FD001.txt.gz", "transferline/cli.py"):
        assert package in names, package
    assert "transferline/__init__.py" not in names  # platform/ is a namespace root
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "transferline = transferline.cli:main" in entry_points
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, wheel],
                   check=True, timeout=300)
    # the fresh venv resolves transferline from the wheel; its dependencies come from this test's venv
    deps = [p for p in sys.path if p.endswith("site-packages")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(deps), "TRANSFERLINE_HOME": str(tmp_path / "cat")}
    probe = ("import transferline.catalog, transferline.connectors, transferline.data, transferline.tasks, "
             "transferline.sample_data as s, platform; print(transferline.catalog.__file__); "
             "print(s.sample_path('cmapss')); print(platform.system())")
    done = subprocess.run([venv / "bin" / "python", "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert all(line.startswith(str(site)) for line in done.stdout.splitlines()[:2]), done.stdout
    sample = done.stdout.splitlines()[1]
    cli = subprocess.run([venv / "bin" / "python", "-m", "transferline.cli", "ingest", "cmapss", sample, "--name",
                          "c", "--quiet"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert cli.returncode == 0 and "created" in cli.stdout, cli.stderr
