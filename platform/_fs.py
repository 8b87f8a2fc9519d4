"""File-system helpers shared by the catalog and the model registry."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


def check_name(name: str, what: str, error: type[Exception]) -> None:
    """A catalog dataset or registry model name: letters, digits, '-', '_', '.', not starting with '.'."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise error(f"{what} name {name!r} must be letters, digits, '-', '_' or '.', not starting with '.'")


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
