"""Stores that survive crashes and keep names inside: an interrupted ``--replace`` is completed or
rolled back at the next open, staging left by a killed process is removed while a live writer's is
kept, and no name reaches outside its catalog or registry."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from transferline.catalog import Catalog
from transferline.errors import CatalogError

from ..conftest import REPO


def _ingest(catalog, name, sample_cmapss, **kw):
    from transferline.connectors import create_reader

    return catalog.ingest(name, create_reader("cmapss")(sample_cmapss), **kw)


@pytest.mark.parametrize("crash_after", [2, 3])
def test_replace_killed_between_renames_is_finished_at_next_open(tmp_path, sample_cmapss, crash_after):
    """The process is SIGKILLed at the first or second rename of the swap (the first rename of all
    claims the staging folder); the next open completes the swap."""
    import shutil

    root = tmp_path / "catalog"
    _ingest(Catalog(root), "c", sample_cmapss)
    smaller = tmp_path / "smaller"
    shutil.copytree(sample_cmapss, smaller)
    (smaller / "train_FD002.txt.gz").unlink()
    script = textwrap.dedent(f"""
        import os, signal
        import transferline._fs as fs
        from transferline.catalog import Catalog
        from transferline.connectors import create_reader
        calls, real = [], os.rename
        def rename(src, dst):
            calls.append(src)
            if len(calls) == {crash_after}:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst)
        fs.os.rename = rename
        Catalog({str(root)!r}).ingest("c", create_reader("cmapss")({str(smaller)!r}), replace=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == -9, done.stderr
    assert list((root / ".tmp").glob("swap-*.json")), "the swap left no journal"
    if crash_after == 3:  # the old copy is in the trash and the new one not yet in place
        assert not (root / "c").exists()
    reopened = Catalog(root)
    new_rows = reopened.manifest("c").rows
    assert sum(new_rows.values()) < 87_486, "the new version should be in place"
    assert reopened.read("c", split="train").num_rows == new_rows["train"]
    assert [p.name for p in (root / ".tmp").iterdir()] == []


def test_staging_of_a_killed_process_is_removed_at_open_but_a_live_one_is_kept(tmp_path):
    root = tmp_path / "catalog"
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        from pathlib import Path
        from transferline._fs import staging
        with staging(Path({str(root / '.tmp')!r}), "ds") as folder:
            (folder / "part.parquet").write_bytes(b"x" * 1000)
            print(folder.name, flush=True)
            if sys.argv[1] == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            sys.stdin.readline()
    """)
    dead = subprocess.run([sys.executable, "-c", script, "die"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert dead.returncode == -9
    dead_name = dead.stdout.strip()
    live = subprocess.Popen([sys.executable, "-c", script, "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=REPO)
    try:
        live_name = live.stdout.readline().strip()
        assert (root / ".tmp" / dead_name).is_dir() and (root / ".tmp" / live_name).is_dir()
        catalog = Catalog(root)  # opening sweeps
        assert not (root / ".tmp" / dead_name).exists()
        assert (root / ".tmp" / live_name / "part.parquet").is_file(), "a live writer's staging was removed"
        assert catalog.recover() == {}
    finally:
        live.communicate("go\n", timeout=60)
    assert live.returncode == 0 and not (root / ".tmp" / live_name).exists()


@pytest.mark.parametrize("name", ["../other-catalog/ds", "..", "/etc", "a/b", ".hidden", "x" * 101, "ds\n", "é"])
def test_catalog_names_cannot_leave_the_catalog(tmp_path, sample_cmapss, name):
    other = Catalog(tmp_path / "other-catalog")
    _ingest(other, "ds", sample_cmapss)
    catalog = Catalog(tmp_path / "catalog")
    for call in (lambda: catalog.delete(name), lambda: catalog.manifest(name), lambda: catalog.exists(name),
                 lambda: catalog.read(name), lambda: catalog.compact(name),
                 lambda: _ingest(catalog, name, sample_cmapss)):
        with pytest.raises(CatalogError, match="name"):
            call()
    assert other.exists("ds") and sum(other.manifest("ds").rows.values()) == 87_486


def test_a_link_out_of_the_catalog_is_refused(tmp_path, sample_cmapss):
    other = Catalog(tmp_path / "other")
    _ingest(other, "ds", sample_cmapss)
    catalog = Catalog(tmp_path / "catalog")
    catalog.root.mkdir(parents=True)
    (catalog.root / "escape").symlink_to(other.root / "ds")
    with pytest.raises(CatalogError, match="leads outside the catalog"):
        catalog.delete("escape")
    assert other.exists("ds")


@pytest.mark.parametrize("ref", ["../escape", "../escape@1", "/tmp/d@1", "d/../../escape", "rul@\u00b2", "a@-1"])
def test_registry_refs_cannot_leave_the_registry(tmp_path, ref):
    from transferline.model_registry import ModelRegistry, RegistryError

    victim = tmp_path / "escape" / "1"
    victim.mkdir(parents=True)
    (victim / "entry.json").write_text("{}")
    registry = ModelRegistry(tmp_path / "models")
    for call in (lambda: registry.delete(ref), lambda: registry.get(ref), lambda: registry.promote(ref, "production"),
                 lambda: registry.resolve(ref)):
        with pytest.raises(RegistryError):
            call()
    assert (victim / "entry.json").is_file()
