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
fine-tuning on MaintNet's (problem, action) pairs; after DAPT, then pairs. Recipes, each through
``train_loop``: a linear probe (logistic regression fitted to convergence by L-BFGS on the frozen
encoder's features, ``strategy=linear_probe`` with ``solver=lbfgs``); LP-FT (that probe, then the
whole model with the encoder at 1/20 of the rate, the last epoch kept: ``strategy=lp_ft``,
``early_stopping.metric=last``; the config file's recipe); and, for plain MiniLM, the earlier
freeze → unfreeze recipe. Baseline: TF-IDF (word 1-2-grams) + logistic regression (scikit-learn) on
the same k texts. The probe's C and feature scaling (per encoder), TF-IDF's C and which pretrained
encoder is compared with plain MiniLM are chosen on a development split of the texts outside the
test (:func:`choose_on_dev`), never on the test. Macro-F1 mean ± std over seeds.

LP-FT was picked by hand over the probe and over freeze → unfreeze (with the best epoch on the
labelled texts, or the last) on that development split too, k = 5 and 10, three draws; those runs
are not part of this script's results.

Writes ``benchmarks/results/text_fewshot.json`` and ``.md``.
Usage: ``python benchmarks/text_fewshot.py [--seeds 0 1 2 3 4] [--shots 5 10 20] [--pretrained-from DIR]``
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
PRETRAINED = ENCODERS[1:]
# the probe's settings tried on the development split: features as pooled or at unit length, and
# the logistic regression's inverse regularization strength (scikit-learn's C); TF-IDF's C too
GRID = {"normalize": [False, True], "c": [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]}
DEV = {"holdout": 0.3, "seed": 7, "draws": [100, 101, 102, 103, 104]}
# the recipes, as overrides of benchmarks/configs/text_fewshot.yaml (LP-FT, the file's own); the
# probe's C and feature scaling come from the development split, per encoder
RECIPES = {
    "lp-ft": [],
    "probe": ["strategy=linear_probe", "strategy.options.solver=lbfgs"],
    # the earlier recipe, for plain MiniLM only: a random hidden-layer head for 2 epochs, then the
    # encoder at a tenth of the rate, the best epoch on the labelled texts themselves kept
    "freeze-unfreeze": ["strategy=freeze_unfreeze", "strategy.options.freeze_epochs=2",
                        "strategy.options.encoder_lr_mult=0.1", "task.options.hidden=64",
                        "encoder.options.normalize=false", "early_stopping.metric=auto"],
}
RECIPE_TEXT = {"lp-ft": "LP-FT", "probe": "probe", "freeze-unfreeze": "freeze → unfreeze"}


def tfidf_f1(train_texts, train_y, test_texts, test_y, c: float = 10.0) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    model = LogisticRegression(max_iter=2000, C=c, class_weight="balanced")
    model.fit(vec.fit_transform(train_texts), train_y)
    return float(f1_score(test_y, model.predict(vec.transform(test_texts)), average="macro"))


def _choice_text(choice: dict) -> str:
    scaling = "" if "normalize" not in choice else (", unit-length features" if choice["normalize"] else ", pooled features")
    return f"{scaling}, C={choice['c']:g}"


def choose_on_dev(rest, runs_dirs: dict, shots: list[int], spec) -> dict:
    """Per encoder, the probe's feature scaling and C with the best mean macro-F1 over k and
    ``DEV["draws"]`` on a development split of ``rest`` (the texts outside the test: 30 % of each
    class held out, k per class drawn from the others), fitted by the runs' own probe
    (:class:`LinearProbe`); TF-IDF's C the same way; and the pretrained encoder scoring best."""
    import numpy as np
    import torch
    from sklearn.metrics import f1_score

    from transferline.encoders import create_encoder
    from transferline.tasks import create_task
    from transferline.train.checkpoint import load_state
    from transferline.train.strategies import LinearProbe

    pool, held = rest.holdout(DEV["holdout"], DEV["seed"])
    draws = {(k, d): pool.per_class_index(k, d) for k in shots for d in DEV["draws"]}
    scores: dict = {"tfidf": {}}
    for c in GRID["c"]:
        scores["tfidf"][f"c={c:g}"] = float(np.mean([
            tfidf_f1([pool.texts[j] for j in i], pool.labels[i], held.texts, held.labels, c) for i in draws.values()]))
    task = create_task("text_classification", hidden=0)
    task.bind(rest.classes)
    y_pool, y_held = torch.from_numpy(pool.labels), held.labels
    for name in ENCODERS:
        encoder = create_encoder("hf/all-minilm-l6-v2", spec).eval()
        if runs_dirs[name]:
            encoder.load_state_dict(load_state(Path(runs_dirs[name]), "encoder")[0])
        with torch.no_grad():
            x_pool, x_held = (torch.cat([encoder(torch.as_tensor(t.get(np.arange(i, min(i + 64, len(t))))))
                                          for i in range(0, len(t), 64)])
                              for t in (pool, held))
        scores[name] = {}
        for normalize in GRID["normalize"]:
            a, b = (torch.nn.functional.normalize(x, dim=-1) if normalize else x for x in (x_pool, x_held))
            for c in GRID["c"]:
                f1s = []
                for i in draws.values():
                    torch.manual_seed(0)
                    head = task.build_head(a.shape[1])
                    LinearProbe("lbfgs", c).fit_head(head, task, a[i], y_pool[i])
                    with torch.no_grad():
                        f1s.append(f1_score(y_held, head(b).argmax(-1).numpy(), average="macro"))
                scores[name][f"normalize={normalize},c={c:g}"] = float(np.mean(f1s))
    choices = {}
    for name, grid in scores.items():
        key = max(grid, key=grid.get)
        choice = dict(part.split("=") for part in key.split(","))
        choices[name] = {**({"normalize": choice["normalize"] == "True"} if "normalize" in choice else {}),
                         "c": float(choice["c"]), "dev_macro_f1": grid[key]}
    best = max(PRETRAINED, key=lambda n: choices[n]["dev_macro_f1"])
    return {"texts": f"{len(held)} held-out texts, k per class from {len(pool)}, draws {DEV['draws']}",
            "choices": choices, "pretrained_encoder": best, "scores": scores}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--catalog", type=Path, default=Path("/tmp/transferline-bench-textfew"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--dapt-epochs", type=int, default=2)
    parser.add_argument("--ntxent-epochs", type=int, default=1)
    parser.add_argument("--pair-epochs", type=int, default=2)
    parser.add_argument("--finetune-seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="seeds of the freeze → unfreeze row (plain MiniLM)")
    parser.add_argument("--pretrained-from", type=Path, default=None,
                        help="a folder holding dapt/, ntxent/, pairs/, dapt_pairs/ from an earlier run of this "
                             "script: the encoders are reused instead of pretrained again")
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
    if args.pretrained_from:
        runs_dirs.update({name: str(args.pretrained_from / name.replace("+", "_")) for name in PRETRAINED})
        print(f"pretrained encoders reused from {args.pretrained_from}", flush=True)
    else:
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

    # the probe's settings and the pretrained encoder are chosen on a development split of the
    # training pool, never on the test texts
    t0 = time.perf_counter()
    dev = choose_on_dev(rest, runs_dirs, args.shots, spec)
    print(f"development split: {dev['texts']} ({time.perf_counter() - t0:.0f} s)", flush=True)
    for name, choice in dev["choices"].items():
        print(f"  {name}: {choice}", flush=True)
    best = dev["pretrained_encoder"]
    methods = [(name, recipe) for recipe in ("lp-ft", "probe") for name in ENCODERS] + [("plain", "freeze-unfreeze")]

    results: dict = {}
    for k in args.shots:
        for seed in args.seeds:
            labelled = rest.per_class(k, seed + 1000)  # the run's target.per_class draw
            f1 = tfidf_f1(labelled.texts, labelled.labels, test.texts, test.labels, dev["choices"]["tfidf"]["c"])
            results.setdefault(f"tfidf/{k}", []).append({"seed": seed, "macro_f1": f1})
            line = [f"tfidf {f1:.3f}"]
            for name, recipe in methods:
                if recipe == "freeze-unfreeze" and seed not in args.finetune_seeds:
                    continue
                overrides = [f"catalog={catalog.root}", "progress=false", f"target.per_class={k}", f"seed={seed}",
                             f"run_dir={root / 'runs' / f'{name}-{recipe}-{k}-{seed}'}", *RECIPES[recipe]]
                if recipe == "probe":
                    choice = dev["choices"][name]
                    overrides += [f"strategy.options.c={choice['c']}",
                                  f"encoder.options.normalize={str(choice['normalize']).lower()}"]
                if runs_dirs[name]:
                    overrides.append(f"pretrained={runs_dirs[name]}")
                t0 = time.perf_counter()
                metrics = train_loop(load_config(CONFIGS / "text_fewshot.yaml", overrides))
                results.setdefault(f"{name}/{recipe}/{k}", []).append(
                    {"seed": seed, "macro_f1": metrics["test_macro_f1"], "seconds": time.perf_counter() - t0})
                line.append(f"{name} {recipe} {metrics['test_macro_f1']:.3f}")
            print(f"k={k} seed {seed}: " + ", ".join(line), flush=True)

    def stat(key):
        values = [r["macro_f1"] for r in results[key]]
        return {"mean": statistics.mean(values), "std": statistics.pstdev(values), "n": len(values)}

    table_stats = {key: stat(key) for key in results}
    rows_of = [("tfidf", ""), *methods]
    lpft = {"normalize": base["encoder"]["options"]["normalize"], "c": base["strategy"]["options"]["c"]}
    keys = {(name, recipe): f"{name}/{recipe}" if recipe else name for name, recipe in rows_of}
    summary = {}
    for (name, recipe), key in keys.items():
        suffix = "" if recipe in ("", "lp-ft") else "_" + recipe.replace("-", "_")
        for k in args.shots:
            summary[f"{name.replace('+', '_')}{suffix}_macro_f1_at_{k}"] = table_stats[f"{key}/{k}"]["mean"]
    main_key = keys[(best, "lp-ft")]
    summary["recipe"] = "lp-ft"
    summary["pretrained_encoder"] = best
    summary["pretrained_minus_plain_at_10"] = table_stats[f"{main_key}/10"]["mean"] - \
        table_stats["plain/lp-ft/10"]["mean"] if 10 in args.shots else None
    summary["pretrained_minus_tfidf_min"] = min(table_stats[f"{main_key}/{k}"]["mean"] -
                                                table_stats[f"tfidf/{k}"]["mean"] for k in args.shots)
    summary["targets"] = TARGETS
    summary["targets_met"] = all(summary[k] is not None and summary[k] >= v for k, v in TARGETS.items())
    labels = {"tfidf": "TF-IDF + logistic regression", "plain": "MiniLM-L6", "dapt": "MiniLM-L6 + DAPT (MLM)",
              "ntxent": "MiniLM-L6 + NT-Xent (text views)", "pairs": "MiniLM-L6 + pair InfoNCE",
              "dapt+pairs": "MiniLM-L6 + DAPT + pair InfoNCE"}
    rows = []
    for (name, recipe), key in keys.items():
        setting = dev["choices"][name] if recipe in ("", "probe") else lpft if recipe == "lp-ft" else None
        how = (RECIPE_TEXT[recipe] if recipe else "") + (_choice_text(setting) if setting else "")
        cells = []
        for k in args.shots:
            st = table_stats[f"{key}/{k}"]
            cells.append(f"{st['mean']:.4f} ± {st['std']:.4f}" + ("" if st["n"] == len(args.seeds) else
                                                                   f" ({st['n']} seeds)"))
        rows.append([labels[name] + (" *" if name == best else ""), how.strip(" ,"), *cells])
    table = markdown_table(["encoder", "recipe", *(f"macro-F1 k={k}" for k in args.shots)], rows)
    table += (f"\n\nMaintIE work orders labelled failed / degraded / routine from the expert annotations "
              f"({counts}); test {len(test)} texts (30 % of each class); mean ± std over seeds {args.seeds} "
              f"(freeze → unfreeze: seeds {args.finetune_seeds}). Probe: logistic regression fitted to convergence "
              f"(L-BFGS) on the frozen encoder's features. LP-FT: such a probe, then the whole model for "
              f"{base['optim']['epochs']} epochs (the encoder at {base['strategy']['options']['encoder_lr_mult']:g} "
              f"of the rate), the last epoch kept. The probe's C and feature scaling and the "
              f"pretrained encoder (*) chosen on a development split of the training pool ({dev['texts']}). "
              f"Targets (LP-FT): {best} >= plain + 0.03 at k=10 and >= TF-IDF at every k "
              f"({'met' if summary['targets_met'] else 'missed'}).")
    config = {"seeds": args.seeds, "finetune_seeds": args.finetune_seeds, "shots": args.shots,
              "run_config": "benchmarks/configs/text_fewshot.yaml", "recipes": RECIPES,
              "development": {k: v for k, v in dev.items() if k != "scores"}, "grid": GRID,
              "pretrained_from": str(args.pretrained_from) if args.pretrained_from else None,
              "mlm": asdict(MLMConfig(epochs=args.dapt_epochs)),
              "ntxent": asdict(MLMConfig(objective="contrastive", epochs=args.ntxent_epochs)),
              "pairs": asdict(PairConfig(epochs=args.pair_epochs)),
              "labels": "failed: a State/UndesirableState/FailedState entity; degraded: another "
                        "State/UndesirableState entity; else routine"}
    write_results("text_fewshot", config, summary, {"stats": table_stats, "runs": results, "development": dev["scores"],
                                                    "pretraining": pretraining}, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
