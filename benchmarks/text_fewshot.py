"""MaintIE work-order classification with k labelled texts per class through the generic path
(``ingest text --label-col`` → ``task=text_classification``), 2 CPU cores.

Labels come only from MaintIE's expert entity annotations (``sample_data.maintenance_log``):
``failed`` where an entity is a ``State/UndesirableState/FailedState``, ``degraded`` where one is
another ``State/UndesirableState``, else ``routine``. Test: 30 % of each class (the run's
``test.holdout``, fixed seed), the same for every method; the k texts per class are drawn from the
rest (``target.per_class``, seed + 1000), the same draw for every method of a seed.

Encoders, all MiniLM-L6: plain; after masked-language-model pretraining (DAPT) on every MaintNet
PROBLEM/ACTION text and the MaintIE texts outside the test; after NT-Xent over two views of each of
those texts (abbreviation swaps from MaintNet's lexicon, token dropout); after contrastive
fine-tuning on MaintNet's (problem, action) pairs; after DAPT, then pairs. Baseline: TF-IDF (word 1-2-grams)
+ logistic regression (scikit-learn) on the same k texts. Macro-F1 mean ± std over seeds.

Writes ``benchmarks/results/text_fewshot.json`` and ``.md``.
Usage: ``python benchmarks/text_fewshot.py [--seeds 0 1 2] [--shots 5 10 20]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import started, write_results  # noqa: E402
from _transfer import CONFIGS, DEFAULT_DATA, markdown_table  # noqa: E402

TARGETS = {"pretrained_minus_plain_at_10": 0.03, "pretrained_minus_tfidf_min": 0.0}
ENCODERS = ("plain", "dapt", "ntxent", "pairs", "dapt+pairs")


def tfidf_f1(train_texts, train_y, test_texts, test_y) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    model = LogisticRegression(max_iter=2000, C=10.0, class_weight="balanced")
    model.fit(vec.fit_transform(train_texts), train_y)
    return float(f1_score(test_y, model.predict(vec.transform(test_texts)), average="macro"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--catalog", type=Path, default=Path("/tmp/transferline-bench-textfew"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--dapt-epochs", type=int, default=2)
    parser.add_argument("--ntxent-epochs", type=int, default=1)
    parser.add_argument("--pair-epochs", type=int, default=2)
    args = parser.parse_args()
    started()
    import torch

    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.data import TextInput
    from transferline.data.text import load_texts
    from transferline.retrieval import PairConfig, fit_pairs, load_pairs
    from transferline.sample_data import maintenance_log
    from transferline.tagging.pretrain import MLMConfig, pretrain_mlm
    from transferline.tagging.run import dataset_texts
    from transferline.train import load_config, train_loop
    from transferline.train.checkpoint import save_module

    torch.set_num_threads(2)
    root = args.catalog
    root.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(root / "catalog")
    if not catalog.exists("maintie_log"):
        log = maintenance_log(root / "maintie_log.csv", args.data / "maint_text" / "maintie" / "gold_release.json")
        catalog.ingest("maintie_log", create_reader("text")(log, text_col="note", label_col="fault"))
    if not catalog.exists("maintnet"):
        catalog.ingest("maintnet", create_reader("maintnet")(args.data / "maint_text" / "maintnet"))
    base = load_config(CONFIGS / "text_fewshot.yaml", [f"catalog={catalog.root}"])
    spec = TextInput(max_length=base["data"]["spec_options"]["max_length"])
    texts = load_texts(catalog, "maintie_log", spec)
    rest, test = texts.holdout(base["data"]["test"]["holdout"], base["data"]["test"]["holdout_seed"])
    counts = {c: int((texts.labels == i).sum()) for i, c in enumerate(texts.classes)}
    print(f"MaintIE log: {len(texts)} texts {counts}; test {len(test)}", flush=True)

    # pretraining never sees the test texts
    held = {t.strip() for t in test.texts}
    unlabelled = [t for t in dataset_texts(catalog, ["maintnet"]) if t.strip() not in held] + list(rest.texts)
    pretraining, runs_dirs = {}, {"plain": None}
    t0 = time.perf_counter()
    encoder, _, fit = pretrain_mlm(unlabelled, MLMConfig(epochs=args.dapt_epochs))  # masked language modelling
    pretraining["dapt"] = {**{k: v for k, v in fit.items() if k != "config"}, "seconds": time.perf_counter() - t0}
    save_module(root / "dapt", "encoder", encoder, {"encoder": "hf/all-minilm-l6-v2", "objective": "masked"})
    runs_dirs["dapt"] = str(root / "dapt")
    print(f"DAPT: held-out masked-token accuracy {fit['val_masked_accuracy_before']:.3f} -> "
          f"{fit['val_masked_accuracy']:.3f} ({pretraining['dapt']['seconds']:.0f} s)", flush=True)
    t0 = time.perf_counter()
    encoder, _, fit = pretrain_mlm(unlabelled, MLMConfig(objective="contrastive", epochs=args.ntxent_epochs))
    pretraining["ntxent"] = {**{k: v for k, v in fit.items() if k != "config"}, "seconds": time.perf_counter() - t0}
    save_module(root / "ntxent", "encoder", encoder, {"encoder": "hf/all-minilm-l6-v2", "objective": "contrastive"})
    runs_dirs["ntxent"] = str(root / "ntxent")
    print(f"NT-Xent: held-out loss {fit['val_loss_before']:.3f} -> {fit['val_loss']:.3f} "
          f"({pretraining['ntxent']['seconds']:.0f} s)", flush=True)
    pairs = load_pairs(catalog, "maintnet")
    pair_train, pair_val = pairs.split(0.1, 1)
    for name, start in (("pairs", None), ("dapt+pairs", runs_dirs["dapt"])):
        t0 = time.perf_counter()
        encoder, _, fit = fit_pairs(pair_train, pair_val, PairConfig(pretrained=start, epochs=args.pair_epochs))
        pretraining[name] = {**{k: v for k, v in fit.items() if k != "config"}, "seconds": time.perf_counter() - t0}
        save_module(root / name.replace("+", "_"), "encoder", encoder, {"encoder": "hf/all-minilm-l6-v2",
                                                                       "objective": "pair_contrastive"})
        runs_dirs[name] = str(root / name.replace("+", "_"))
        print(f"{name}: validation MRR {fit['val_mrr']:.3f} ({pretraining[name]['seconds']:.0f} s)", flush=True)

    results: dict = {}
    for k in args.shots:
        for seed in args.seeds:
            labelled = rest.per_class(k, seed + 1000)  # the run's target.per_class draw
            f1 = tfidf_f1(labelled.texts, labelled.labels, test.texts, test.labels)
            results.setdefault(f"tfidf/{k}", []).append({"seed": seed, "macro_f1": f1})
            for name in ENCODERS:
                overrides = [f"catalog={catalog.root}", "progress=false", f"target.per_class={k}", f"seed={seed}",
                             f"run_dir={root / 'runs' / f'{name}-{k}-{seed}'}"]
                if runs_dirs[name]:
                    overrides.append(f"pretrained={runs_dirs[name]}")
                t0 = time.perf_counter()
                metrics = train_loop(load_config(CONFIGS / "text_fewshot.yaml", overrides))
                results.setdefault(f"{name}/{k}", []).append({"seed": seed, "macro_f1": metrics["test_macro_f1"],
                                                              "seconds": time.perf_counter() - t0})
            print(f"k={k} seed {seed}: tfidf {f1:.3f}, " + ", ".join(
                f"{n} {results[f'{n}/{k}'][-1]['macro_f1']:.3f}" for n in ENCODERS), flush=True)

    def stat(key):
        values = [r["macro_f1"] for r in results[key]]
        return {"mean": statistics.mean(values), "std": statistics.pstdev(values), "n": len(values)}

    table_stats = {key: stat(key) for key in results}
    best = "dapt+pairs"
    summary = {f"{name}_macro_f1_at_{k}": table_stats[f"{name}/{k}"]["mean"]
               for name in ("tfidf", *ENCODERS) for k in args.shots}
    summary["pretrained_encoder"] = best
    summary["pretrained_minus_plain_at_10"] = table_stats[f"{best}/10"]["mean"] - table_stats["plain/10"]["mean"] \
        if 10 in args.shots else None
    summary["pretrained_minus_tfidf_min"] = min(table_stats[f"{best}/{k}"]["mean"] - table_stats[f"tfidf/{k}"]["mean"]
                                                for k in args.shots)
    summary["targets"] = TARGETS
    summary["targets_met"] = all(summary[k] is not None and summary[k] >= v for k, v in TARGETS.items())
    labels = {"tfidf": "TF-IDF + logistic regression", "plain": "MiniLM-L6", "dapt": "MiniLM-L6 + DAPT (MLM)",
              "ntxent": "MiniLM-L6 + NT-Xent (text views)", "pairs": "MiniLM-L6 + pair InfoNCE",
              "dapt+pairs": "MiniLM-L6 + DAPT + pair InfoNCE"}
    rows = [[labels[name], *(f"{table_stats[f'{name}/{k}']['mean']:.4f} ± {table_stats[f'{name}/{k}']['std']:.4f}"
                             for k in args.shots)] for name in ("tfidf", *ENCODERS)]
    table = markdown_table(["method", *(f"macro-F1 k={k}" for k in args.shots)], rows)
    table += (f"\n\nMaintIE work orders labelled failed / degraded / routine from the expert annotations "
              f"({counts}); test {len(test)} texts (30 % of each class); mean ± std over seeds {args.seeds}. "
              f"Targets: {best} >= plain + 0.03 at k=10 and >= TF-IDF at every k "
              f"({'met' if summary['targets_met'] else 'missed'}).")
    config = {"seeds": args.seeds, "shots": args.shots, "run_config": "benchmarks/configs/text_fewshot.yaml",
              "mlm": asdict(MLMConfig(epochs=args.dapt_epochs)),
              "ntxent": asdict(MLMConfig(objective="contrastive", epochs=args.ntxent_epochs)),
              "pairs": asdict(PairConfig(epochs=args.pair_epochs)),
              "labels": "failed: a State/UndesirableState/FailedState entity; degraded: another "
                        "State/UndesirableState entity; else routine"}
    write_results("text_fewshot", config, summary, {"stats": table_stats, "runs": results,
                                                    "pretraining": pretraining}, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
