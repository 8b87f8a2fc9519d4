"""A directory of named datasets stored as Parquet with a manifest each.

Layout::

    <root>/<name>/manifest.json
    <root>/<name>/data/split=<s>/plant=<p>/part-<digest>-<n>.parquet
    <root>/.tmp/            staging area; a crash leaves files here, never in a dataset

Readers see only the files the manifest lists, and the manifest is replaced atomically, so a
dataset is always either the old or the new version, never half written.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._fs import exclusive_lock, pending_swaps, recover_swap, staging, store_path, swap_in, sweep_staging
from ..errors import CatalogError, DataError
from ._manifest import FileEntry, Manifest, SourceEntry, now_iso, write_json_atomic
from ._validate import validate_table
from .schemas import SCHEMA_VERSION, get_kind

DEFAULT_ROOT = "transferline-data"
# NOTE: row groups of 128 Ki rows let a filtered or streamed read skip and decode a file in pieces.
ROW_GROUP_ROWS = 128 * 1024
ENV_HOME = "TRANSFERLINE_HOME"


@dataclass
class Part:
    """One unit of ingest: typically one source file, identified by a key and a content digest.

    ``load`` is only called when the part is not yet in the dataset.
    """

    key: str
    digest: str
    file: str
    load: Callable[[], pa.Table]
    first_line: int | None = None


@dataclass
class IngestPlan:
    """What a connector produces: the kind, column roles and the parts to write."""

    kind: str
    reader: str
    source: str
    parts: Sequence[Part]
    roles: dict[str, list[str]] = field(default_factory=dict)
    domain_columns: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # stored in the manifest; top-level keys replaced on append
    summary: str = ""  # what the reader found, shown before anything is written


@dataclass
class IngestResult:
    status: str  # "created" | "appended" | "replaced" | "unchanged"
    manifest: Manifest
    new_rows: int


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else $TRANSFERLINE_HOME, else ./transferline-data."""
    return Path(root or os.environ.get(ENV_HOME) or DEFAULT_ROOT).expanduser().resolve()


def _entries(manifest: Manifest, split: str | None, assets=None) -> list[FileEntry]:
    """The manifest's files of ``split`` (None: every split), only those holding some of ``assets``
    ("plant/asset" keys) when given."""
    return [f for f in manifest.files if (split is None or f.split == split)
            and (assets is None or not set(assets).isdisjoint(f.assets))]


class Catalog:
    """Named datasets under one root directory."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = resolve_root(root)
        self.recover()

    def recover(self) -> dict[str, str]:
        """Completes or rolls back a ``replace`` that a crash interrupted, and removes the staging
        folders of processes that died; returns what it did per dataset or folder."""
        done = {}
        tmp = self.root / ".tmp"
        for swap in pending_swaps(tmp):
            name = Path(swap["target"]).name
            with self._lock(name):
                if Path(swap["journal"]).is_file():
                    done[name] = recover_swap(swap, "manifest.json")
        for folder in sweep_staging(tmp):
            done[folder] = "removed"
        return done

    # -- reading -------------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "manifest.json").is_file())

    def path(self, name: str) -> Path:
        """The folder of dataset ``name``, after checking the name (it cannot leave the catalog)."""
        return store_path(self.root, name, "dataset", "catalog", CatalogError)

    def exists(self, name: str) -> bool:
        return (self.path(name) / "manifest.json").is_file()

    def manifest(self, name: str) -> Manifest:
        if not self.exists(name):
            known = ", ".join(self.names()) or "none"
            raise CatalogError(f"no dataset {name!r} in catalog {self.root} (datasets: {known})")
        return Manifest.load(self.path(name))

    def files(self, name: str, split: str | None = None) -> list[Path]:
        """Absolute paths of the dataset's Parquet files, optionally of one split."""
        return [self.path(name) / f.path for f in _entries(self.manifest(name), split)]

    def schema(self, name: str) -> pa.Schema:
        """The dataset's Arrow schema (of its first file; every file of a dataset shares it)."""
        files = self.files(name)
        if not files:
            raise CatalogError(f"dataset {name!r} holds no files")
        return pq.read_schema(files[0])

    _units: frozenset[str] | None = None  # set on a view of some units' rows (:meth:`of_units`)

    def of_units(self, units) -> "Catalog":
        """A view of this catalog whose :meth:`read` keeps only the rows of ``units`` ("plant/asset"
        keys) and opens only the files that hold them: a read task's share of every dataset."""
        view = copy.copy(self)
        view._units = frozenset(units)
        return view

    def read(self, name: str, split: str | None = None, columns: list[str] | None = None,
             filter: pc.Expression | None = None) -> pa.Table:
        """Reads a dataset (or one split) into one Arrow table (on a view of some units: their rows)."""
        import pyarrow.dataset as ds

        if self._units is not None:
            mine = pc.is_in(pc.binary_join_element_wise(pc.field("plant"), pc.field("asset"), "/"),
                            value_set=pa.array(sorted(self._units), pa.string()))
            filter = mine if filter is None else filter & mine
        for attempt in range(3):
            manifest = self.manifest(name)
            entries = _entries(manifest, split)
            if not entries:
                splits = ", ".join(manifest.rows) or "none"
                raise CatalogError(f"dataset {name!r} has no split {split!r} (splits: {splits})")
            if self._units is not None:  # the files that hold the units (the first, read empty, if none does)
                entries = _entries(manifest, split, self._units) or entries[:1]
            files = [self.path(name) / f.path for f in entries]
            try:
                return ds.dataset([str(f) for f in files], format="parquet").to_table(columns=columns, filter=filter)
            except FileNotFoundError:  # compacted meanwhile: read the new manifest
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def scan(self, name: str, split: str | None = None, columns: list[str] | None = None,
             filter: pc.Expression | None = None, assets: set[str] | None = None,
             batch_rows: int = 65536) -> Iterator[pa.RecordBatch]:
        """Streams a dataset (or one split) as record batches of at most ``batch_rows`` rows, in
        bounded memory. ``assets`` ("plant/asset" keys) limits the read to files that hold them
        (rows of other assets in those files still come through: filter them if that matters)."""
        import pyarrow.dataset as ds

        files = [str(self.path(name) / f.path) for f in _entries(self.manifest(name), split, assets)]
        if files:
            yield from ds.dataset(files, format="parquet").to_batches(columns=columns, filter=filter,
                                                                       batch_size=batch_rows)

    # -- writing -------------------------------------------------------------------------------
    def ingest(self, name: str, plan: IngestPlan, *, append: bool = False, replace: bool = False,
               progress: bool = False) -> IngestResult:
        """Writes the plan's parts to dataset ``name`` atomically.

        A part whose key and digest are already in the dataset is skipped, so re-ingesting the same
        source changes nothing. New parts need ``append`` when the dataset exists; a part whose
        key exists with another digest (the source changed) needs ``replace``.
        """
        self.path(name)
        kind = get_kind(plan.kind)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock(name):
            old = Manifest.load(self.root / name) if self.exists(name) and not replace else None
            if old is not None and old.kind != plan.kind:
                raise CatalogError(f"dataset {name!r} is of kind {old.kind!r}, this source gives {plan.kind!r}")
            known = {s.key: s.digest for s in old.sources} if old else {}
            todo = []
            for part in plan.parts:
                if part.key in known:
                    if known[part.key] != part.digest:
                        raise CatalogError(f"source {part.key!r} of dataset {name!r} has changed since it was "
                                           f"ingested ({part.file}); use --replace to rebuild the dataset")
                    continue
                todo.append(part)
            if old is not None and not todo:
                return IngestResult("unchanged", old, 0)
            if old is not None and not append:
                raise CatalogError(f"dataset {name!r} exists and this source adds {len(todo)} new part(s) "
                                   f"({', '.join(p.key for p in todo[:3])}...); use --append to add them "
                                   "or --replace to rebuild")
            if not todo:
                raise DataError("the source holds nothing to ingest", file=plan.source)
            with staging(self.root / ".tmp", name) as stage:
                manifest = old or Manifest(name=name, kind=plan.kind, schema_version=SCHEMA_VERSION,
                                           source=plan.source, reader=plan.reader, roles=plan.roles,
                                           domain_columns=plan.domain_columns, created=now_iso(),
                                           extra=plan.extra)
                if old is not None:  # e.g. a live capture's watermarks, committed with its data
                    manifest.extra.update(plan.extra)
                staged, schema = _stage_parts(stage, todo, kind, progress,
                                              frozenset((plan.roles or {}).get("outcomes", [])))
                if old is not None and old.arrow_schema != schema.to_string(show_schema_metadata=False):
                    raise DataError(f"columns differ from dataset {name!r}: {schema.names}", file=todo[0].file)
                manifest.updated = now_iso()
                manifest.arrow_schema = schema.to_string(show_schema_metadata=False)
                new_files = [e for entries, _ in staged for e in entries]
                manifest.sources.extend(source for _, source in staged)
                manifest.files.extend(new_files)
                new_rows = sum(source.rows for _, source in staged)
                if old is None:
                    status = "replaced" if self.exists(name) else "created"
                    manifest.save(stage)
                    swap_in(stage, self.path(name), self.root / ".tmp")
                else:
                    for f in new_files:  # rename into place; invisible until the manifest names them
                        dest = self.root / name / f.path
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(stage / f.path, dest)
                    manifest.save(self.root / name)
                    status = "appended"
            return IngestResult(status, manifest, new_rows)

    def compact(self, name: str, *, merge_sources: str | None = None, min_files: int = 2) -> int:
        """Rewrites every partition holding ``min_files`` or more files as one file; returns the
        number of files removed. Rows, their order within each partition, and the manifest's
        ``extra`` stay as they are; the swap is one atomic manifest write.

        Sources keep their keys (so re-ingesting a file is still recognised), except those whose
        key starts with ``merge_sources`` (e.g. a live capture's per-flush parts), which become one.
        """
        self.path(name)
        with self._lock(name):
            manifest = Manifest.load(self.root / name)
            groups: dict[str, list[FileEntry]] = {}
            for f in manifest.files:
                groups.setdefault(str(Path(f.path).parent), []).append(f)
            todo = {k: v for k, v in groups.items() if len(v) >= min_files}
            if not todo:
                return 0
            tag = uuid.uuid4().hex[:12]
            replaced: dict[str, str] = {}
            new_entries = []
            with staging(self.root / ".tmp", f"compact-{name}") as stage:
                for folder, entries in todo.items():
                    table = pa.concat_tables([pq.read_table(self.root / name / e.path) for e in entries])
                    rel = Path(folder, f"part-compact-{tag}.parquet")
                    (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                    pq.write_table(table, stage / rel, compression="zstd", row_group_size=ROW_GROUP_ROWS)
                    new_entries.append(FileEntry(path=str(rel), split=entries[0].split, partition=entries[0].partition,
                                                 rows=table.num_rows, bytes=(stage / rel).stat().st_size,
                                                 assets=sorted({a for e in entries for a in e.assets}),
                                                 source="compacted"))
                    replaced.update({e.path: str(rel) for e in entries})
                for entry in new_entries:
                    os.replace(stage / entry.path, self.root / name / entry.path)
            manifest.files = [f for f in manifest.files if f.path not in replaced] + new_entries
            sources = []
            merged = [s for s in manifest.sources if merge_sources and s.key.startswith(merge_sources)]
            for src in manifest.sources:
                if src in merged:
                    continue
                src.files = sorted({replaced.get(f, f) for f in src.files})
                sources.append(src)
            if merged:
                digest = hashlib.sha256("\n".join(s.digest for s in merged).encode()).hexdigest()
                sources.append(SourceEntry(f"{merge_sources}compacted-{tag}", digest,
                                           sorted({replaced.get(f, f) for s in merged for f in s.files}),
                                           sum(s.rows for s in merged)))
            manifest.sources = sources
            manifest.updated = now_iso()
            manifest.save(self.root / name)
            self._collect_garbage(name, list(replaced))
            return len(replaced) - len(new_entries)

    def _collect_garbage(self, name: str, unlisted: list[str], grace_s: float = 120.0) -> None:
        """Deletes files a manifest stopped listing over ``grace_s`` ago; remembers ``unlisted``.

        # NOTE: a reader that loaded the previous manifest may still open these files for a while.
        """
        import json
        import time

        path = self.root / name / ".garbage.json"
        pending = json.loads(path.read_text()) if path.is_file() else []
        now = time.time()
        keep = []
        for item in pending:
            if now - item["since"] > grace_s:
                (self.root / name / item["path"]).unlink(missing_ok=True)
            else:
                keep.append(item)
        keep += [{"path": p, "since": now} for p in unlisted]
        write_json_atomic(path, keep)

    def delete(self, name: str) -> None:
        folder = self.path(name)
        if not folder.is_dir():
            self.manifest(name)  # raises: no such dataset
        with self._lock(name):
            trash = self.root / ".tmp" / f"deleted-{name}-{uuid.uuid4().hex[:8]}"
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.rename(folder, trash)
            shutil.rmtree(trash, ignore_errors=True)

    # -- internals -----------------------------------------------------------------------------
    def _lock(self, name: str):
        return exclusive_lock(self.root / ".locks" / f"{name}.lock")


def _stage_parts(stage: Path, parts: list[Part], kind, progress: bool, nullable: frozenset[str] = frozenset()
                 ) -> tuple[list[tuple[list[FileEntry], SourceEntry]], pa.Schema]:
    """Loads, validates and writes each part under ``stage``; all parts must share one schema.
    ``nullable``: numeric columns that may hold missing values (outcomes not measured)."""
    from tqdm.auto import tqdm

    staged, schema = [], None
    for part in tqdm(parts, desc="ingest", unit="part", disable=not progress):
        table = validate_table(part.load(), kind, file=part.file, first_line=part.first_line, nullable=nullable)
        if schema is not None and not table.schema.equals(schema):
            raise DataError(f"columns differ from the first part's: {table.schema.names} vs {schema.names}",
                            file=part.file)
        schema = table.schema
        entries = _write_partitions(stage, table, kind.partition_by, part)
        staged.append((entries, SourceEntry(part.key, part.digest, [e.path for e in entries], table.num_rows)))
    return staged, schema


def _write_partitions(stage: Path, table: pa.Table, partition_by: tuple[str, ...], part: Part) -> list[FileEntry]:
    """Writes one Parquet file per distinct partition value combination of ``table``."""
    keys = pa.Table.from_arrays([table.column(c) for c in partition_by], names=list(partition_by))
    groups = keys.group_by(list(partition_by)).aggregate([]) if table.num_rows else keys
    entries = []
    for i in range(groups.num_rows):
        values = {c: str(groups.column(c)[i].as_py()) for c in partition_by}
        mask = None
        for c, v in values.items():
            m = pc.equal(table.column(c), v)
            mask = m if mask is None else pc.and_(mask, m)
        sub = table.filter(mask)
        rel = Path("data", *[f"{c}={_safe(v)}" for c, v in values.items()], f"part-{part.digest[:16]}-{i}.parquet")
        dest = stage / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(sub, dest, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        assets = pc.unique(pc.binary_join_element_wise(sub.column("plant"), sub.column("asset"), "/"))
        entries.append(FileEntry(path=str(rel), split=values.get("split", ""), partition=values, rows=sub.num_rows,
                                 bytes=dest.stat().st_size, assets=sorted(assets.to_pylist()), source=part.key))
    return entries


def _safe(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in value) or "_"
