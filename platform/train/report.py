"""``transferline report RUN_DIR...``: one self-contained HTML file (PNG plots inline) about training runs.

Per run: its setup and test numbers, learning curves (``history.jsonl``), the test confusion matrix
(or predicted against true values for a regression), what each input adds (a model of several
inputs, tested with each input absent in turn) and a 2-D projection (PCA) of source and target
features before and after training (``evaluation.npz``, written by every transfer run). Several
runs get a comparison table first.
"""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import TransferlineError

SOURCE, TARGET = "#1f77b4", "#ff7f0e"


def figure_img(fig) -> str:
    """A matplotlib figure as an inline ``<img>`` (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def load_run(run_dir: str | Path) -> dict:
    """What a report needs from one run directory; a clear error naming it where it is not a run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TransferlineError(f"{run_dir}: no such run directory")
    if not (run_dir / "metrics.json").is_file() or not (run_dir / "history.jsonl").is_file():
        raise TransferlineError(f"{run_dir}: not a finished run (it needs metrics.json and history.jsonl; a run "
                                "writes them when it ends)")
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines() if line.strip()]
    except ValueError as exc:
        raise TransferlineError(f"{run_dir}: unreadable metrics.json or history.jsonl ({exc})") from None
    meta = {}
    for name in ("model.json", "encoder.json"):
        if (run_dir / name).is_file():
            meta = json.loads((run_dir / name).read_text())
            break
    config = {}
    if (run_dir / "config.yaml").is_file():
        import yaml

        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    evaluation = {}
    if (run_dir / "evaluation.npz").is_file():
        with np.load(run_dir / "evaluation.npz") as npz:
            evaluation = {k: npz[k] for k in npz.files}
    return {"dir": run_dir, "name": run_dir.name, "metrics": metrics, "history": history, "meta": meta,
            "config": config, "evaluation": evaluation}


def _setup(run: dict) -> dict:
    config, meta = run["config"], run["meta"]
    data = config.get("data") or {}
    inputs = data.get("inputs") or {}
    adaptation = (config.get("adaptation") or {}).get("name") if config.get("mode") == "transfer" else \
        (config.get("objective") or {}).get("name")
    return {"mode": config.get("mode", "?"), "encoder": meta.get("encoder") or (config.get("encoder") or {}).get("name"),
            "data": ", ".join(f"{k}: {v}" for k, v in inputs.items()) if inputs else data.get("dataset"),
            "source": (data.get("source") or {}).get("domains"), "target": (data.get("target") or {}).get("domains"),
            "method": adaptation}


def _test_metrics(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k.startswith("test_") and not k.startswith("test_without_")
            and isinstance(v, (int, float))}


def _curves(history: list[dict]):
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    train = sorted({k for r in history for k in r if k.startswith("train_") and isinstance(r[k], (int, float))})
    scores = sorted({k for r in history for k in r if k not in train and k not in ("epoch", "seconds", "best")
                     and isinstance(r[k], (int, float))})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, keys, title in ((axes[0], train, "training terms"), (axes[1], scores, "evaluation")):
        for key in keys:
            ax.plot(epochs, [r.get(key, np.nan) for r in history], marker="o", ms=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        if keys:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    best = [r["epoch"] for r in history if r.get("best")]
    if best:
        axes[1].axvline(best[-1], color="grey", ls="--", lw=1)
    return figure_img(fig)


def _confusion(target: np.ndarray, predicted: np.ndarray, classes: list[str]):
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    used = sorted(set(target.tolist()) | set(predicted.tolist()))
    names = [classes[i] if i < len(classes) else str(i) for i in used]
    counts = confusion_matrix(target, predicted, labels=used)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * len(used), 1.0 + 0.5 * len(used)))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(used)):
        for j in range(len(used)):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(used)), names, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(used)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test: {int(np.trace(counts))} of {int(counts.sum())} right")
    return figure_img(fig)


def _scatter(target: np.ndarray, predicted: np.ndarray, rmse: float | None = None):
    """Predicted against true; titled with the run's own test RMSE where it has one (a task may score
    its predictions clipped, as RUL's are at 0), else the RMSE of the points drawn."""
    import matplotlib.pyplot as plt

    predicted = predicted.reshape(len(predicted), -1)[:, 0]
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(target, predicted, s=8, alpha=0.6)
    low, high = float(min(target.min(), predicted.min())), float(max(target.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="grey", lw=1)
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    if rmse is None:
        rmse = float(np.sqrt(np.mean((predicted - target) ** 2)))
    ax.set_title(f"test: RMSE {rmse:.3g}")
    return figure_img(fig)


def _contributions(metrics: dict):
    """Test accuracy with every input and with each one absent (a model of several inputs)."""
    import matplotlib.pyplot as plt

    absent = {k[len("test_without_"):-len("_accuracy")]: v for k, v in metrics.items()
              if k.startswith("test_without_") and k.endswith("_accuracy")}
    if not absent or "test_accuracy" not in metrics:
        return None
    names = ["all inputs", *[f"without {k}" for k in absent]]
    values = [metrics["test_accuracy"], *absent.values()]
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(names), 3))
    bars = ax.bar(names, values, color=["#2ca02c", *["#d62728"] * len(absent)])
    for bar, value in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, value, f"{value:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("test accuracy")
    ax.set_title("each input's contribution: accuracy when it is absent")
    return figure_img(fig)


def _projection(evaluation: dict):
    """Source and target features before and after training, each state on its own PCA axes."""
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    states = [s for s in ("before", "after") if f"source_{s}" in evaluation and f"target_{s}" in evaluation]
    if not states:
        return None
    fig, axes = plt.subplots(1, len(states), figsize=(4.6 * len(states), 4), squeeze=False)
    for ax, state in zip(axes[0], states):
        src, tgt = evaluation[f"source_{state}"], evaluation[f"target_{state}"]
        both = np.concatenate([src, tgt]).astype(np.float64)
        xy = PCA(2, random_state=0).fit_transform(both) if both.shape[1] >= 2 else np.c_[both, np.zeros(len(both))]
        ax.scatter(*xy[:len(src)].T, s=6, alpha=0.5, c=SOURCE, label=f"source ({len(src)})")
        ax.scatter(*xy[len(src):].T, s=6, alpha=0.5, c=TARGET, label=f"target ({len(tgt)})")
        ax.set_title(f"features {state} training (PCA)")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7)
    return figure_img(fig)


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


def _section(run: dict) -> str:
    setup, metrics, evaluation = _setup(run), run["metrics"], run["evaluation"]
    parts = [f"<h2>{html.escape(run['name'])}</h2>",
             f"<p class='dir'>{html.escape(str(run['dir'].resolve()))}</p>",
             _table(["mode", "encoder", "data", "source", "target", "method", "epochs", "wall s"],
                    [[setup["mode"], setup["encoder"], setup["data"], setup["source"], setup["target"], setup["method"],
                      metrics.get("epochs_run"), metrics.get("wall_seconds")]])]
    tested = _test_metrics(metrics)
    if tested:
        parts.append(_table(list(tested), [list(tested.values())]))
    parts += ["<h3>learning curves</h3>", _curves(run["history"])]
    if "test_target" in evaluation:
        target, predicted = evaluation["test_target"], evaluation["test_predicted"]
        classes = (run["meta"].get("output") or {}).get("classes") or []
        if np.issubdtype(target.dtype, np.integer) and predicted.ndim == 1:
            parts += ["<h3>test confusion matrix</h3>", _confusion(target, predicted, classes)]
        else:
            parts += ["<h3>test predictions</h3>", _scatter(target.astype(float), predicted.astype(float),
                                                            metrics.get("test_rmse"))]
    contributions = _contributions(metrics)
    if contributions:
        parts += ["<h3>per-input contributions</h3>", contributions]
    projection = _projection(evaluation)
    if projection:
        parts += ["<h3>source and target features</h3>", projection]
    return "<section>" + "\n".join(parts) + "</section>"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f3f3f3}section{border-top:2px solid #ddd;margin-top:2em}.dir{color:#777;font-size:12px}
img{max-width:100%;display:block;margin:.4em 0}"""


def write_report(run_dirs: list[str | Path], out: str | Path | None = None, title: str = "transferline runs") -> Path:
    """Writes the report of ``run_dirs`` to ``out`` (default: ``report.html`` in the first run
    directory) atomically; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    if not run_dirs:
        raise TransferlineError("report: give at least one run directory")
    runs = [load_run(d) for d in run_dirs]
    out = Path(out) if out else runs[0]["dir"] / "report.html"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(runs)} run(s), written {datetime.now(timezone.utc).isoformat(timespec='seconds')}</p>"]
    if len(runs) > 1:
        keys = sorted({k for r in runs for k in _test_metrics(r["metrics"])})
        parts.append(_table(["run", "method", *keys], [[r["name"], _setup(r)["method"],
                                                       *[r["metrics"].get(k) for k in keys]] for r in runs]))
    parts += [_section(r) for r in runs]
    document = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(out)
    return out
