"""The Arrow catalog: named, versioned datasets stored as Parquet with manifests."""

from ._manifest import FileEntry, Manifest, SourceEntry
from .schemas import KINDS, SCHEMA_VERSION, Kind, get_kind
from .store import Catalog, IngestPlan, IngestResult, Part, resolve_root

__all__ = ["Catalog", "FileEntry", "IngestPlan", "IngestResult", "KINDS", "Kind", "Manifest", "Part",
           "SCHEMA_VERSION", "SourceEntry", "get_kind", "resolve_root"]
