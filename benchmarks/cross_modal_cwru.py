"""Cross-modal transfer on CWRU: one drive-end vibration signal as a raw waveform (WDCNN from
scratch) against the same windows as log-magnitude STFT images through EfficientNet-Lite0 with its
ImageNet weights (and, as a control, the same image network from random weights), and the fusion of
the waveform and ImageNet views; across motor loads.

Every model trains on the first 80% of each source recording (a fifth of that held out for
selection by source validation accuracy) and is tested on the last 20% of the target load's
recordings; windows of 1024 samples without overlap (the ``cwru`` spec); MMD + entropy (0.3) on the
features (fused features for the fused model), 10 epochs; images 64 x 64 (``torch.stft``, n_fft
128, hop 32). Config: ``examples/configs/cross_modal_cwru.yaml``. The nine fault classes, as in
``fusion_cwru.json``.

Usage: ``python benchmarks/cross_modal_cwru.py [--seeds 0 1 2] [--jobs 2] [--pairs 0-3 3-0]``
Writes ``benchmarks/results/cross_modal_cwru.json`` and ``.md``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import spread, started, write_results  # noqa: E402
from _transfer import accuracy_run, markdown_table, mean_of_medians, run_jobs, seed_values  # noqa: E402
from fusion_cwru import cwru_parser, fault_catalog  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "configs" / "cross_modal_cwru.yaml"
SINGLE = ['data.inputs={}', "data.dataset=cwru_de"]
MODELS = {
    "waveform": [*SINGLE, "encoder=wdcnn"],
    "image_imagenet": [*SINGLE, "encoder=spectrogram", "encoder.options.size=64"],
    "image_scratch": [*SINGLE, "encoder=spectrogram", "encoder.options.size=64", "encoder.options.pretrained=false"],
    "fused": [],
}


def run_job(job: tuple) -> tuple:
    """One run in a worker process."""
    src, tgt, model, seed, catalog_root, extra = job
    return job, accuracy_run(catalog_root, CONFIG, [f"seed={seed}", f'source.domains=["{src}"]',
                                                    f'target.domains=["{tgt}"]', "tracking.mlflow=false",
                                                    *MODELS[model], *extra])


def main() -> int:
    parser = cwru_parser(__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    env = started()
    catalog = fault_catalog(args.root, args.data, sensors=("de",))
    pairs = [tuple(p.split("-")) for p in args.pairs]
    jobs = [(src, tgt, model, seed, str(catalog.root), tuple(args.extra))
            for src, tgt in pairs for model in args.models for seed in args.seeds]
    t0 = time.perf_counter()
    results = run_jobs(run_job, jobs, args.jobs, 4, lambda job: f"{job[0]}→{job[1]} {job[2]:14s} seed {job[3]}")

    def acc(src: str, tgt: str, model: str, key: str = "test_accuracy") -> list[float]:
        return seed_values(results, (src, tgt), model, args.seeds, key)

    def mean_over(model: str, key: str = "test_accuracy") -> dict:
        return mean_of_medians(results, pairs, model, args.seeds, key)

    cross = {m: mean_over(m) for m in args.models}
    ranked = sorted(cross, key=lambda m: cross[m]["mean_of_medians"], reverse=True)
    summary = {f"{m}_accuracy_crossload": cross[m]["mean_of_medians"] for m in args.models}
    summary.update({"winner": ranked[0], "runner_up": ranked[1] if len(ranked) > 1 else None,
                    "winner_margin": (cross[ranked[0]]["mean_of_medians"] - cross[ranked[1]]["mean_of_medians"]
                                      if len(ranked) > 1 else None),
                    "wall_minutes": (time.perf_counter() - t0) / 60})
    if {"waveform", "image_imagenet"} <= set(args.models):
        summary["image_minus_waveform"] = cross["image_imagenet"]["mean_of_medians"] - cross["waveform"]["mean_of_medians"]
    if {"image_imagenet", "image_scratch"} <= set(args.models):
        summary["imagenet_minus_scratch"] = (cross["image_imagenet"]["mean_of_medians"]
                                             - cross["image_scratch"]["mean_of_medians"])
    if {"fused", "waveform", "image_imagenet"} <= set(args.models):
        summary["fused_minus_best_view"] = cross["fused"]["mean_of_medians"] - max(
            cross["waveform"]["mean_of_medians"], cross["image_imagenet"]["mean_of_medians"])
        for view in ("wave", "image"):
            summary[f"fused_without_{view}_accuracy_crossload"] = mean_over(
                "fused", f"test_without_{view}_accuracy")["mean_of_medians"]
    details = {"cross": {m: {**cross[m], "per_pair": {f"{s}->{t}": acc(s, t, m) for s, t in pairs}} for m in cross},
               "seconds_per_run": {m: spread([results[(*p, m, s)]["seconds"] for p in pairs for s in args.seeds])
                                   for m in args.models}}
    rows = [[m, f"{cross[m]['mean_of_medians']:.4f}",
             f"{cross[m]['per_seed']['min']:.4f}–{cross[m]['per_seed']['max']:.4f}",
             f"{details['seconds_per_run'][m]['median']:.0f}"] for m in ranked]
    table = markdown_table(["model", "cross-load acc", "seed range", "s per run"], rows)
    table += (f"\n\nCWRU 12 kHz drive-end faults (9 classes), drive-end signal only; accuracy on the last 20% of "
              f"each target recording; mean over {len(pairs)} load pairs of the median over seeds {args.seeds}. "
              f"MMD + entropy. Git {env['git_sha'][:7]}{' (dirty)' if env['git_dirty'] else ''}.")
    write_results("cross_modal_cwru", {"seeds": args.seeds, "pairs": args.pairs, "models": {m: MODELS[m] for m in
                                                                                              args.models},
                                       "overrides": args.extra, "jobs": args.jobs,
                                       "config": "examples/configs/cross_modal_cwru.yaml",
                                       "classes": "9 fault classes (normal left out, as in fusion_cwru)"},
                  summary, details, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
