"""The manifest stored beside each dataset: what it holds, where it came from, and its files."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

MANIFEST_NAME = "manifest.json"


@dataclass
class FileEntry:
    """One Parquet file of a dataset."""

    path: str  # relative to the dataset directory
    split: str
    partition: dict[str, str]
    rows: int
    bytes: int
    assets: list[str]  # "plant/asset" keys in this file
    source: str  # the part key it came from


@dataclass
class SourceEntry:
    """One ingested source part: a key (e.g. a file name) and the digest of the bytes it was read from."""

    key: str
    digest: str
    files: list[str]
    rows: int


@dataclass
class Manifest:
    """Everything a reader needs to know about a dataset without opening its Parquet files."""

    name: str
    kind: str
    schema_version: int
    source: str
    reader: str
    roles: dict[str, list[str]] = field(default_factory=dict)
    domain_columns: list[str] = field(default_factory=list)
    created: str = ""
    updated: str = ""
    sources: list[SourceEntry] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    arrow_schema: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """sha256 over the sorted digests of every ingested part."""
        return hashlib.sha256("\n".join(sorted(s.digest for s in self.sources)).encode()).hexdigest()

    @property
    def rows(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.split] = out.get(f.split, 0) + f.rows
        return dict(sorted(out.items()))

    @property
    def assets(self) -> dict[str, int]:
        per_split: dict[str, set[str]] = {}
        for f in self.files:
            per_split.setdefault(f.split, set()).update(f.assets)
        return {k: len(v) for k, v in sorted(per_split.items())}

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(rows=self.rows, assets=self.assets, bytes=self.bytes, content_hash=self.content_hash,
                   total_rows=sum(self.rows.values()))
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Manifest":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["sources"] = [SourceEntry(**s) for s in data.get("sources", [])]
        known["files"] = [FileEntry(**f) for f in data.get("files", [])]
        return cls(**known)

    def save(self, directory: Path) -> None:
        """Writes the manifest atomically (temp file, fsync, rename)."""
        write_json_atomic(directory / MANIFEST_NAME, self.to_dict())

    @classmethod
    def load(cls, directory: Path) -> "Manifest":
        """Reads ``directory/manifest.json``; a damaged one raises CatalogError naming the file."""
        from ..errors import CatalogError

        path = directory / MANIFEST_NAME
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # bad JSON, or fields of the wrong shape
            raise CatalogError(f"damaged manifest {path} ({type(exc).__name__}: {str(exc)[:120]}); delete the "
                               "dataset and ingest it again") from None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: dict) -> None:
    """Writes JSON to ``path`` via a temp file in the same directory and an atomic rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
