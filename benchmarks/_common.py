"""What every benchmark records beside its numbers: config, git sha, machine, date."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def environment() -> dict:
    """Git sha and whether tracked files differ from it, machine, date. Where the code runs in a copy
    of the tree whose git history is not the tree's (a lent GPU machine gets the working tree beside
    the history it started with), the caller states both in TL_GIT_SHA / TL_GIT_DIRTY."""
    repo = Path(__file__).resolve().parents[1]
    if os.environ.get("TL_GIT_SHA"):
        sha, dirty = os.environ["TL_GIT_SHA"], os.environ.get("TL_GIT_DIRTY", "true") != "false"
    else:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                    capture_output=True, text=True).stdout.strip())
    import torch

    return {"git_sha": sha or None, "git_dirty": dirty, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "processor": platform.machine(), "python": platform.python_version(),
                        "torch": torch.__version__, "system": platform.platform()}}


_STARTED = None


def started() -> dict:
    """The environment as it was when the benchmark started (sha of the code that ran)."""
    global _STARTED
    if _STARTED is None:
        _STARTED = environment()
    return _STARTED


def spread(values: list[float]) -> dict:
    """Median, min, max and std over repeats."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "std": statistics.pstdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def write_results(name: str, config: dict, summary: dict, details: dict, table: str) -> Path:
    """Writes ``results/<name>.json`` (and ``<name>.md`` holding the readable table), and prints the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"name": name, **started(), "finished": environment()["date"], "config": config, "summary": summary,
            "details": details}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)
    (RESULTS / f"{name}.md").write_text(table + "\n")
    print(f"→ {path}")
    return path
