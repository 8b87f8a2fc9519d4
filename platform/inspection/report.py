"""An HTML report of an anomaly model's test: the numbers, then the images people look at first
(false alarms, the most and the least anomalous defects), each beside its heat map and its mask."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from .heatmap import heat_rgb, overlay, png_base64


def _display(samples, i: int) -> np.ndarray:
    """Image ``i`` as the model saw it (resized and cropped or padded), uint8 for display."""
    from dataclasses import replace

    from ..data.preprocess import ImagePreprocess

    spec = samples.spec
    plain = ImagePreprocess(replace(spec, mean=(0.0,) * spec.channels, std=(1.0,) * spec.channels,
                                    standardize=False))
    x = plain.one(samples.images[int(i)].as_py())
    return (np.clip(x.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8).squeeze(-1) if spec.channels == 1 else \
        (np.clip(x.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)


def write_report(path: Path, model, samples, metrics: dict, defect: np.ndarray | None = None, *, title: str,
                 low: float = 0.0, per_group: int = 6) -> Path:
    """Writes ``path`` (self-contained HTML, images inline); ``defect`` marks the defective images
    where known; heat runs from ``low`` (a typical defect-free pixel) to the threshold."""
    from .anomaly import score_images

    scores, maps = score_images(model, samples, maps=True)
    threshold = float(model.threshold)
    defect = np.zeros(len(samples), bool) if defect is None else np.asarray(defect, bool)
    order = np.argsort(-scores)
    groups = [("highest-scoring images", order[:per_group])]
    if defect.any() and (~defect).any():
        groups = [("false alarms: defect-free images scored highest", [i for i in order if not defect[i]][:per_group]),
                  ("defects scored highest", [i for i in order if defect[i]][:per_group]),
                  ("defects scored lowest (missed first)", [i for i in order[::-1] if defect[i]][:per_group])]
    masks = samples.get_masks(np.arange(len(samples))) if samples.masks is not None else None
    rows = []
    for heading, index in groups:
        cells = []
        for i in index:
            shown = _display(samples, i)
            pictures = [png_base64(shown if shown.ndim == 3 else np.repeat(shown[..., None], 3, -1)),
                        png_base64(overlay(shown, maps[i], low, threshold))]
            if masks is not None:
                pictures.append(png_base64(np.repeat((masks[i] * 255).astype(np.uint8)[..., None], 3, -1)))
            label = samples.classes[samples.labels[i]] if samples.classes else ""
            name = samples.names[i] if samples.names else str(i)
            cells.append("<figure>" + "".join(f'<img src="data:image/png;base64,{p}">' for p in pictures)
                         + f"<figcaption>{html.escape(name)} ({html.escape(label)}) score {scores[i]:.4g}"
                         + (" <b>flagged</b>" if scores[i] > threshold else "") + "</figcaption></figure>")
        rows.append(f"<h2>{html.escape(heading)}</h2>" + "".join(cells))
    numbers = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" if isinstance(v, float) else
                      f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                      for k, v in metrics.items() if not isinstance(v, (dict, list)))
    legend = png_base64(heat_rgb(np.tile(np.linspace(low, threshold, 256), (12, 1)), low, threshold))
    path.write_text(f"""<!doctype html><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} figure{{display:inline-block;margin:.5em}}
img{{margin-right:2px;image-rendering:pixelated}} td{{padding:2px 10px}}</style>
<h1>{html.escape(title)}</h1><table>{numbers}<tr><td>threshold</td><td>{threshold:.4g}</td></tr></table>
<p>Each image: as the model sees it, its anomaly map over it
(<img src="data:image/png;base64,{legend}" style="vertical-align:middle;width:128px;height:10px"> from a
typical defect-free pixel, {low:.4g}, to the threshold and above){', and the defect mask' if masks is not None else ''}.</p>{''.join(rows)}
""")
    return path


def _draw_boxes(image: np.ndarray, boxes: list[tuple], width: int = 2) -> np.ndarray:
    """``image`` with rectangles ``(xyxy, rgb, text)`` drawn on it."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(image if image.ndim == 3 else np.repeat(image[..., None], 3, -1))
    draw = ImageDraw.Draw(img)
    for xyxy, color, text in boxes:
        draw.rectangle([float(v) for v in xyxy], outline=color, width=width)
        if text:
            draw.text((float(xyxy[0]) + 2, float(xyxy[1]) + 1), text, fill=color)
    return np.asarray(img)


def write_detection_report(path: Path, model, samples, metrics: dict, *, title: str, per_class: int = 3,
                           score: float = 0.3) -> Path:
    """Writes ``path``: the test numbers, the learning curve, and test images of each class with
    their true boxes (green) and the detections scoring at least ``score`` (red)."""
    import torch

    from .heatmap import png_base64

    picked = [i for c in range(len(samples.classes)) for i in np.flatnonzero(samples.labels == c)[:per_class]]
    cells = []
    for i in picked:
        with torch.no_grad():
            found = model.eval()(torch.from_numpy(samples.get([i])))[0]
        truth = samples.get_boxes([i], model.classes)[0]
        boxes = [(b, (40, 200, 40), "") for b in truth["boxes"].tolist()]
        boxes += [(b, (230, 40, 40), f"{model.classes[int(c)]} {s:.2f}")
                  for b, s, c in zip(found["boxes"].tolist(), found["scores"].tolist(), found["labels"].tolist())
                  if s >= score]
        name = samples.names[i] if samples.names else str(i)
        cells.append(f'<figure><img src="data:image/png;base64,{png_base64(_draw_boxes(_display(samples, i), boxes))}">'
                     f"<figcaption>{html.escape(name)}</figcaption></figure>")
    curve = ""
    history = metrics.get("history") or []
    if history:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from ..train.report import figure_img

        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot([r["epoch"] for r in history], [r["val_map50"] for r in history], "o-", label="validation mAP@0.5")
        ax.plot([r["epoch"] for r in history], [r["val_map50_95"] for r in history], "s-", label="mAP@0.5:0.95")
        ax.set_xlabel("epoch")
        ax.legend()
        fig.tight_layout()
        curve = figure_img(fig)
    numbers = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td></tr>" for k, v in metrics.items()
                      if isinstance(v, float))
    per = metrics.get("test_map50_95_per_class") or {}
    numbers += "".join(f"<tr><td>mAP@0.5:0.95 {html.escape(c)}</td><td>{v:.3f}</td></tr>" for c, v in per.items())
    path.write_text(f"""<!doctype html><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} figure{{display:inline-block;margin:.5em}} td{{padding:2px 10px}}</style>
<h1>{html.escape(title)}</h1><table>{numbers}</table>{curve}
<p>Test images as the model sees them: true boxes green, detections scoring {score} or more red.</p>{''.join(cells)}
""")
    return path
