"""Process optimization: one row per run (set-points → outcomes), a quality surrogate with
uncertainty, leave-one-run-out evaluation, and set-point recommendation under constraints.

Names load on first use, so the command line imports no torch until a command needs it."""

from __future__ import annotations

import importlib

_NAMES = {"baseline_metrics": "evaluate", "leave_one_run_out": "evaluate", "outcome_metrics": "evaluate",
          "EnsembleMLP": "surrogate", "SurrogateConfig": "surrogate", "covered": "surrogate", "fit_surrogate": "surrogate",
          "predict": "surrogate", "summarize": "surrogate", "Outcome": "table", "ProcessData": "table",
          "load_process_data": "table"}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
