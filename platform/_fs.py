"""File-system helpers shared by the catalog, the model registry and run directories: one name check,
paths kept inside their store, staging folders owned by a live process, and atomic swaps that a
crash cannot leave half done."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import shorten

MAX_NAME = 100
# NOTE: a staging entry without an owner lock is either being created right now or orphaned; give
# its creator this long before it counts as orphaned.
ORPHAN_GRACE_S = 60.0


def check_name(name, what: str, error: type[Exception]) -> str:
    """A catalog dataset or registry model name: 1-100 letters, digits, '-', '_', '.', not starting
    with '.'. Returns it; raises ``error`` naming the bad name (shortened) otherwise."""
    if (not isinstance(name, str) or not name or len(name) > MAX_NAME or name.startswith(".")
            or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)):
        raise error(f"{what} name {shorten(name)} must be letters, digits, '-', '_' or '.' (1-{MAX_NAME} ASCII "
                    "characters), not starting with '.'")
    return name


def inside(root: Path, *parts: str) -> Path:
    """``root / parts`` resolved (links followed); raises ValueError if it leaves ``root``."""
    base = root.resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and base not in path.parents:
        raise ValueError(f"{'/'.join(parts)!r} resolves outside {base}")
    return path


def store_path(root: Path, name, what: str, store: str, error: type[Exception]) -> Path:
    """The folder of ``name`` in the store at ``root``, after :func:`check_name`; raises ``error``
    if it resolves (through a link) outside the store."""
    check_name(name, what, error)
    try:
        return inside(root, name)
    except ValueError:
        raise error(f"{what} name {name!r} leads outside the {store}") from None


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path`` (created if needed) for a read-modify-write; dies with the process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def staging(tmp: Path, prefix: str) -> Iterator[Path]:
    """A fresh folder ``tmp/<prefix>-<id>`` owned by this process until the block ends.

    Ownership is an flock on ``tmp/<prefix>-<id>.owner``, which the kernel drops when the process
    dies however it dies, so :func:`sweep_staging` can tell a live writer's folder from a dead one's.
    The folder is removed at the end unless the block renamed it away.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    folder = tmp / f"{prefix}-{uuid.uuid4().hex[:10]}"
    owner = folder.with_name(folder.name + ".owner")
    fresh = folder.with_name(folder.name + ".owner.new")
    fh = open(fresh, "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX)
        os.rename(fresh, owner)  # locked before it is visible: a sweeper never sees it unlocked
        folder.mkdir()
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            owner.unlink(missing_ok=True)
    finally:
        fh.close()
        fresh.unlink(missing_ok=True)


def sweep_staging(tmp: Path, keep: set[str] = frozenset()) -> list[str]:
    """Removes staging folders under ``tmp`` whose owner process is gone (and orphaned trash);
    returns their names. Names in ``keep`` (e.g. a swap still to recover) are left alone."""
    if not tmp.is_dir():
        return []
    removed, now = [], time.time()
    for entry in sorted(tmp.iterdir()):
        name = entry.name
        if name in keep or name.endswith((".json", ".lock")):
            continue
        if name.endswith(".owner"):
            folder = entry.with_name(name[: -len(".owner")])
            if folder.name not in keep and not _locked(entry):
                shutil.rmtree(folder, ignore_errors=True)
                entry.unlink(missing_ok=True)
                removed.append(folder.name)
            continue
        if name.endswith(".owner.new") or entry.with_name(name + ".owner").exists():
            if name.endswith(".owner.new") and _age(entry, now) > ORPHAN_GRACE_S:
                entry.unlink(missing_ok=True)
            continue
        if _age(entry, now) > ORPHAN_GRACE_S:  # trash or a folder whose owner file is gone
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed.append(name)
    return removed


def _locked(path: Path) -> bool:
    try:
        with open(path, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    return True
                raise
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return True  # its owner just finished: not ours to touch


def _age(path: Path, now: float) -> float:
    try:
        return now - path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


def swap_in(stage: Path, target: Path, tmp: Path) -> None:
    """Replaces folder ``target`` by folder ``stage`` (both under the same file system as ``tmp``).

    A journal in ``tmp`` records the swap before the first rename, so a crash between the two
    renames is completed by :func:`recover_swaps` at the next open: the target is never left absent.
    """
    if not target.exists():
        os.rename(stage, target)
        return
    trash = tmp / f"replaced-{target.name}-{uuid.uuid4().hex[:8]}"
    journal = tmp / f"swap-{target.name}.json"
    _write_synced(journal, {"target": str(target), "stage": str(stage), "trash": str(trash)})
    os.rename(target, trash)
    os.rename(stage, target)
    journal.unlink()
    shutil.rmtree(trash, ignore_errors=True)


def pending_swaps(tmp: Path) -> list[dict]:
    """The journals of swaps a crash interrupted (see :func:`swap_in`)."""
    if not tmp.is_dir():
        return []
    out = []
    for journal in sorted(tmp.glob("swap-*.json")):
        try:
            out.append({**json.loads(journal.read_text()), "journal": str(journal)})
        except (OSError, ValueError):
            journal.unlink(missing_ok=True)  # torn before its first rename: nothing was moved
    return out


def recover_swap(swap: dict, complete: str) -> str:
    """Finishes an interrupted swap: the new version goes in if its folder holds ``complete`` (e.g.
    its manifest), else the old one comes back. Call with the target's lock held. Returns what it did."""
    target, stage, trash = Path(swap["target"]), Path(swap["stage"]), Path(swap["trash"])
    if (stage / complete).is_file():
        if target.exists() and not trash.exists():
            os.rename(target, trash)
        if not target.exists():
            os.rename(stage, target)
        done = "completed"
    elif not target.exists() and trash.exists():
        os.rename(trash, target)
        done = "rolled back"
    else:  # the new version was already in place
        done = "completed"
    Path(swap["journal"]).unlink(missing_ok=True)
    shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(stage, ignore_errors=True)
    return done


def _write_synced(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".new")
    with open(tmp, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def new_run_folder(out: str | os.PathLike) -> Iterator[Path]:
    """A staging folder beside ``out`` (which must not exist yet), renamed to ``out`` when the block
    ends without error and removed otherwise: a crash leaves no half-written run."""
    from .errors import TransferlineError

    out = Path(out)
    if out.exists():
        raise TransferlineError(f"{out} exists; pass a new --out folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
    stage.mkdir()
    try:
        yield stage
        os.rename(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def save_run(out: str | os.PathLike, state: dict, meta: dict, config: dict, metrics: dict) -> Path:
    """Writes a fitted model's run folder ``out`` atomically (:func:`new_run_folder`):
    ``model.safetensors`` (``state``), ``model.json`` (``meta``), ``config.yaml``, ``metrics.json``."""
    import yaml
    from safetensors.torch import save_file

    with new_run_folder(out) as stage:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(stage / "model.safetensors"))
        (stage / "model.json").write_text(json.dumps(meta, indent=2))
        (stage / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return Path(out)
