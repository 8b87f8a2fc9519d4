"""The model registry: versioned, self-describing models with lineage, stages and exported artifacts.

Layout::

    <root>/<name>/<version>/entry.json          what the model is, takes, returns, came from, scored
    <root>/<name>/<version>/model.safetensors   weights (+ model.json: how to rebuild it)
    <root>/<name>/<version>/model.ts            TorchScript: loads with torch alone
    <root>/<name>/<version>/model.onnx          ONNX, served by onnxruntime without torch (every model that exports)
    <root>/<name>/<version>/index.json          retrievers: the indexed problems and their actions
    <root>/<name>/stages.json                   {"production": 3, "staging": 4}
    <root>/.tmp/                                staging; a crash leaves files here, never an entry

Registration is staged and renamed into place; nothing is ever unpickled (safetensors, JSON,
TorchScript).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .._fs import check_name, exclusive_lock, staging, store_path, sweep_staging
from ..catalog._manifest import write_json_atomic
from ..errors import TransferlineError, shorten

DEFAULT_ROOT = "transferline-models"
ENV_ROOT = "TRANSFERLINE_MODELS"
STAGES = ("staging", "production")
_FILES = ("model.safetensors", "model.json", "model.ts")


class RegistryError(TransferlineError):
    """An unknown model, version or stage, or a run that cannot be registered.

    ``public`` is what a server may tell a client: it names no path and no other model.
    """

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = public or message


class IntegrityError(RegistryError):
    """A registered model whose files no longer match the content hash recorded at registration."""


@dataclass
class ModelEntry:
    """Everything a client or a server needs to know about one registered model version."""

    name: str
    version: int
    task: dict
    modality: str
    encoder: dict
    input: dict  # the input spec: modality → its spec (series: signals, window, normalize, normalizer...)
    output: dict  # kind "class" with classes, or "regression" with names and units
    lineage: dict
    metrics: dict
    created: str
    content_hash: str
    files: list[str] = field(default_factory=lambda: list(_FILES))
    runtime: dict = field(default_factory=dict)  # served_by onnxruntime or torchscript (and why: onnx_error)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def key(self) -> str:
        """Names this registration, for caches of loaded models: a version number deleted and
        registered again with other weights gets another key."""
        return f"{self.ref}#{self.content_hash}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelEntry":
        return cls(**{k: v for k, v in _upgrade(data).items() if k in cls.__dataclass_fields__})


def _upgrade(data: dict) -> dict:
    """Entries registered before input specs: a flat series input and a single-unit output."""
    data = dict(data)
    old_input = data.get("input") or {}
    if "signals" in old_input:
        data["input"] = {"series": {"channels": old_input["channels"], "window": old_input["window"],
                                    "signals": old_input["signals"], "normalize": old_input.get("normalize", "group"),
                                    "group_by": old_input.get("group_by"), "normalizer": old_input.get("normalizer")}}
        data["modality"] = "series"
    output = data.get("output") or {}
    if output.get("kind") == "regression" and "names" not in output:
        data["output"] = {"kind": "regression", "names": [output.get("label") or "value"],
                          "units": [output.get("unit") or ""]}
    return data


def resolve_models_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else $TRANSFERLINE_MODELS, else ./transferline-models."""
    return Path(root or os.environ.get(ENV_ROOT) or DEFAULT_ROOT).expanduser().resolve()


class ModelRegistry:
    """Named models, each with integer versions and optional stage pointers."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = resolve_models_root(root)
        self._entries: dict[tuple[str, int, int], ModelEntry] = {}  # keyed by entry.json's mtime too
        sweep_staging(self.root / ".tmp")  # registrations and deletions of processes that died

    def folder(self, name: str) -> Path:
        """The folder of model ``name``, after checking the name (it cannot leave the registry)."""
        return store_path(self.root, name, "model", "registry", RegistryError)

    # -- reading -------------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _is_name(p.name) and self.versions(p.name))

    def versions(self, name: str) -> list[int]:
        folder = self.folder(name)
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / "entry.json").is_file())

    def stages(self, name: str) -> dict[str, int]:
        path = self.folder(name) / "stages.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def resolve(self, ref: str, stage: str | None = None) -> tuple[str, int]:
        """``name``, ``name@3`` or ``name@production`` (or ``stage=``) → (name, version); latest by default."""
        name, _, which = ref.partition("@")
        which = which or stage or ""
        number = which.isascii() and which.isdigit()
        if which and which != "latest" and not number and which not in STAGES:
            raise RegistryError(f"{shorten(which)} is neither a version number nor a stage ({', '.join(STAGES)})")
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise RegistryError(f"no model {name!r} in {self.root} (models: {known})", f"no model {name!r}")
        if not which or which == "latest":
            return name, versions[-1]
        if number:
            if int(which) not in versions:
                raise RegistryError(f"model {name!r} has no version {which} (versions: {versions})")
            return name, int(which)
        stages = self.stages(name)
        if which not in stages:
            raise RegistryError(f"model {name!r} has no {which} version (stages: {stages or 'none'})")
        return name, stages[which]

    def get(self, ref: str, stage: str | None = None) -> ModelEntry:
        name, version = self.resolve(ref, stage)
        path = self.path(name, version) / "entry.json"
        key = (name, version, path.stat().st_mtime_ns)  # a deleted and re-registered version reads anew
        if key not in self._entries:
            self._entries[key] = ModelEntry.from_dict(json.loads(path.read_text()))
        return self._entries[key]

    def path(self, name: str, version: int) -> Path:
        return self.folder(name) / str(int(version))

    def verify(self, entry: ModelEntry) -> None:
        """Raises :class:`IntegrityError` unless the version's files still hash to the content hash
        recorded when it was registered (a file swapped or damaged on disk is never served)."""
        folder = self.path(entry.name, entry.version)
        try:
            digest = _digest(folder, entry.files)
        except OSError as exc:
            digest = f"unreadable ({exc.strerror})"
        if digest != entry.content_hash:
            raise IntegrityError(f"model {entry.ref}: the files in {folder} do not match the content hash recorded at "
                                 f"registration ({entry.content_hash[:12]}, now {digest[:12]}); register the run again",
                                 f"model {entry.ref} failed its integrity check: its files changed after registration")

    def artifact(self, ref: str, stage: str | None = None) -> Path:
        """The exported TorchScript file of a model version."""
        name, version = self.resolve(ref, stage)
        return self.path(name, version) / "model.ts"

    # -- writing -------------------------------------------------------------------------------
    def register(self, run_dir: str | os.PathLike, name: str, *, stage: str | None = None,
                 lineage: dict | None = None) -> ModelEntry:
        """Registers a transfer run directory as the next version of ``name`` (atomically)."""
        from ._describe import describe_run

        folder = self.folder(name)
        run_dir = Path(run_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        with staging(self.root / ".tmp", name) as stage_dir:
            description = describe_run(run_dir, stage_dir)
            folder.mkdir(exist_ok=True)
            with exclusive_lock(folder / ".lock"):
                version = (self.versions(name) or [0])[-1] + 1
                files = [f for f in (*_FILES, "model.onnx", "index.json") if f in _FILES or (stage_dir / f).is_file()]
                description.setdefault("runtime", {"served_by": "onnxruntime" if "model.onnx" in files else "torchscript"})
                entry = ModelEntry(name=name, version=version, created=datetime.now(timezone.utc).isoformat(
                    timespec="seconds"), content_hash=_digest(stage_dir, files), files=files, **description)
                entry.lineage.update({**_tracked_run(run_dir), **(lineage or {})})
                write_json_atomic(stage_dir / "entry.json", entry.to_dict())
                os.rename(stage_dir, self.path(name, version))
        if stage:
            self.promote(entry.ref, stage)
        return entry

    def promote(self, ref: str, stage: str) -> dict[str, int]:
        """Points ``stage`` of the model at the given version."""
        if stage not in STAGES:
            raise RegistryError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        name, version = self.resolve(ref)
        with exclusive_lock(self.folder(name) / ".lock"):
            stages = {**self.stages(name), stage: version}
            write_json_atomic(self.folder(name) / "stages.json", stages)
        return stages

    def delete(self, ref: str) -> None:
        """Deletes one version (``name@3``) or, given a bare name, every version of the model."""
        name, _, which = ref.partition("@")
        targets = [self.resolve(ref)[1]] if which else self.versions(name)
        if not targets:
            raise RegistryError(f"no model {name!r} in {self.root}", f"no model {name!r}")
        folder = self.folder(name)
        with exclusive_lock(folder / ".lock"):
            for version in targets:
                trash = self.root / ".tmp" / f"deleted-{name}-{version}-{uuid.uuid4().hex[:6]}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.rename(self.path(name, version), trash)
                shutil.rmtree(trash, ignore_errors=True)
            stages = {k: v for k, v in self.stages(name).items() if v not in targets}
            write_json_atomic(folder / "stages.json", stages)
        if not self.versions(name):
            shutil.rmtree(folder, ignore_errors=True)


def _digest(folder: Path, files) -> str:
    digest = hashlib.sha256()
    for fname in files:
        digest.update((folder / fname).read_bytes())
    return digest.hexdigest()


def _is_name(name: str) -> bool:
    try:
        check_name(name, "model", RegistryError)
        return True
    except RegistryError:
        return False


def _tracked_run(run_dir: Path) -> dict:
    """``{"mlflow": {run_id, tracking_uri, experiment, ...}}`` for a run tracked in MLflow, else ``{}``."""
    path = run_dir / "mlflow.json"
    if not path.is_file():
        return {}
    try:
        run = json.loads(path.read_text())
        if not isinstance(run, dict) or not isinstance(run.get("run_id"), str):
            raise ValueError("no run_id")
    except ValueError as exc:
        raise RegistryError(f"{path}: damaged MLflow run record ({str(exc)[:120]}); delete it to register the run "
                            "without its MLflow lineage") from None
    return {"mlflow": run}
