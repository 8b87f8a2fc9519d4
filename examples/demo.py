"""The main job on embedded defaults, on the vendored real C-MAPSS sample:

1. ingest the files into a local catalog (source plant FD002, and FD001's test engines with their
   true RUL);
2. bring the target plant FD001 live: the built-in plant simulator serves its 100 training engines
   over OPC UA on 127.0.0.1, played back in accelerated time, and the capture writes every value
   into the catalog (then pivots it into one row per engine cycle and checks it against the files);
3. cut windows (30 cycles x 14 sensors) per plant;
4. pretrain an encoder on the source plant (FD002: six operating conditions, labelled);
5. transfer to the target plant (FD001, the rows that came over OPC UA) with five labelled engines,
   and print the target test metrics of the source model alone, of the five engines alone (from
   scratch), and of the transfer;
6. several sensors: the drive-end, fan-end and base accelerometers of seven vendored CWRU bearing
   recordings, each its own dataset, joined per sample and fused (one encoder per sensor, gated
   fusion), trained at 0 hp and tested at 3 hp against the drive end alone, and with each sensor
   down at test time;
7. inspection images: few-shot steel-surface defect classification on 120 vendored NEU images (5
   labelled per class, EfficientNet-Lite0 with offline ImageNet weights), tested on the other half;
8. maintenance text: the 240 vendored MaintIE work orders labelled failed / degraded / routine from
   their expert annotations, MiniLM-L6 (offline) fine-tuned on 20 per class, tested on held-out ones;
   then an inspection line: 48 NEU images, the CNC drive signals of the machine each was taken at and
   MaintIE work orders, ingested as plants export them (times and machines assigned), each image
   joined by time with the window its machine recorded up to it and the nearest note within 1 s, and
   the three fused; then an entity tagger (BIO spans of MaintIE's 5 top-level types) trained on the
   same work orders' annotations and scored by span F1 on held-out ones;
9. process optimization: the 18 vendored CNC milling experiments' set-points (feedrate, clamp
   pressure), tool condition and outcomes, a deep-ensemble quality surrogate scored
   leave-one-experiment-out;
10. anomaly detection: PaDiM fitted on 12 of the 16 vendored defect-free magnetic tiles (11 to fit,
   1 to set the threshold), tested on the other 4 and 6 defective tiles, heat maps in report.html;
11. register the five models, serve them with Ray Serve on 127.0.0.1, send FD001's test engines, one
   NEU image of each class (its JPEG file) and a few work orders as HTTP requests, ask the surrogate
   for the fastest feedrate at which a worn tool still finishes and passes visual inspection, send
   a held-out good tile and a defective one asking for heat maps (saved as PNG), and print the answers;
   then write one HTML report of the transfer runs (runs/demo/report.html) and print its path.

Run with ``make demo`` (or ``python examples/demo.py [--catalog DIR] [--runs DIR]``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from transferline.catalog import Catalog
from transferline.cli import format_manifest
from transferline.connectors import create_reader
from transferline.data import timeseries_to_runs
from transferline.inspection import AnomalyConfig
from transferline.inspection.run import fit_dataset
from transferline.sample_data import cwru_folder, ingest_inspection_line, maintenance_log, sample_path
from transferline.train import load_config, prepare_data, train_loop
from transferline.train.report import write_report

CONFIGS = Path(__file__).resolve().parent / "configs"
# What the plant publishes per engine: the cycle, the operating setting that defines the operating
# condition, the 14 informative sensors, and the run-to-failure label.
SIGNALS = ["step", "setting_1", "s2", "s3", "s4", "s7", "s8", "s9", "s11", "s12", "s13", "s14", "s15", "s17",
           "s20", "s21", "rul"]


def stream_plant(catalog: Catalog, source: str, dest: str, *, speed: float, assets: int | None) -> dict:
    """Serves plant FD001's training engines from the simulator (a separate process) and captures
    them over OPC UA into ``dest`` until every published value is durable."""
    from tqdm.auto import tqdm

    from transferline.connectors.opcua import Capture, CaptureOptions, SimulatorOptions
    from transferline.connectors.opcua.simulator import load_streams

    sim = SimulatorOptions(source, split="train", plants=["FD001"], max_assets=assets, signals=SIGNALS)
    total = sum(int(np.isfinite(s.values).sum()) for s in load_streams(catalog, sim)[0])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"opc.tcp://127.0.0.1:{port}"
    since = datetime.now(timezone.utc) - timedelta(seconds=1)
    server = subprocess.Popen(
        [sys.executable, "-m", "transferline.cli", "simulate", "--dataset", source, "--catalog", str(catalog.root),
         "--endpoint", endpoint, "--speed", str(speed), "--split", "train", "--plant", "FD001", "--historize",
         "--signals", ",".join(SIGNALS), *(["--assets", str(assets)] if assets else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if catalog.exists(dest):
            catalog.delete(dest)  # a fresh capture each run: new playback, new source timestamps
        options = CaptureOptions(endpoint, dest, mapping="plant=0,split=1,asset=2,signal=3", since=since)
        with tqdm(total=total, desc="OPC UA → catalog", unit=" values") as bar:
            capture = Capture(options, catalog, progress=bar)
            stats = asyncio.run(_capture_all(capture, total, timeout=max(120.0, 3 * 362 / speed)))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {**stats.summary(), "published": total, "endpoint": endpoint}


async def _capture_all(capture, total: int, timeout: float):
    stop = asyncio.Event()

    async def watch() -> None:
        deadline = time.monotonic() + timeout
        while capture.stats.written < total and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        stop.set()

    watcher = asyncio.create_task(watch())
    stats = await capture.run(stop)
    await watcher
    if stats.written != total:
        raise SystemExit(f"the capture holds {stats.written:,} of {total:,} published values after {timeout:.0f} s")
    return stats


def check_against_files(catalog: Catalog, captured: str, files: str) -> int:
    """Rows captured over OPC UA that equal the file rows of the same engine and cycle."""
    got = catalog.read(captured).to_pandas()
    ref = catalog.read(files, split="train").to_pandas()
    merged = got.merge(ref[ref["plant"] == "FD001"], on=["plant", "asset", "step"], suffixes=("", "_file"))
    same = np.ones(len(merged), dtype=bool)
    for column in SIGNALS[1:]:
        same &= merged[column].to_numpy() == merged[f"{column}_file"].to_numpy()
    return int(same.sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", help="catalog directory (default: $TRANSFERLINE_HOME or ./transferline-data)")
    parser.add_argument("--runs", default="runs/demo", help="where run directories go")
    parser.add_argument("--models", default="transferline-models", help="model registry directory")
    parser.add_argument("--quick", action="store_true", help="a few steps per run (smoke test)")
    args = parser.parse_args()
    catalog = Catalog(args.catalog)
    runs = Path(args.runs)
    quick = ["epochs=1", "optim.max_steps_per_epoch=5"] if args.quick else []

    t0 = time.perf_counter()
    result = catalog.ingest("cmapss-sample", create_reader("cmapss")(sample_path("cmapss")), progress=True)
    print(f"\n[1/11] ingest files: {result.status}, {result.new_rows:,} new rows in {time.perf_counter() - t0:.1f} s "
          f"→ {catalog.root}")
    print(format_manifest(result.manifest))

    t0 = time.perf_counter()
    live = stream_plant(catalog, "cmapss-sample", "fd001-opcua", speed=60 if args.quick else 12,
                        assets=10 if args.quick else None)
    runs_table = timeseries_to_runs(catalog, "fd001-opcua", "fd001-opcua-runs", like="cmapss-sample")
    same = check_against_files(catalog, "fd001-opcua-runs", "cmapss-sample")
    seconds = time.perf_counter() - t0
    print(f"[2/11] plant FD001 over OPC UA ({live['endpoint']}): {live['written']:,} of {live['published']:,} "
          f"published values captured in {seconds:.0f} s ({live['duplicates']:,} duplicates dropped, "
          f"{live['backfilled']:,} read back from history), source→durable latency p50 "
          f"{live.get('latency_p50_ms', 0) / 1000:.1f} s, p99 {live.get('latency_p99_ms', 0) / 1000:.1f} s")
    print(f"      pivoted into {runs_table.new_rows:,} engine cycles; {same:,} equal the file rows exactly")

    common = [f"catalog={catalog.root}", "progress=false", "target.dataset=fd001-opcua-runs", *quick]
    transfer_cfg = load_config(CONFIGS / "demo_transfer.yaml", common)
    data = prepare_data(transfer_cfg, catalog)
    print(f"\n[3/11] windows: source FD002 {len(data.source_train):,} train / {len(data.source_val):,} val windows; "
          f"target FD001 {len(data.target_train):,} unlabelled windows (over OPC UA), "
          f"{len(set(data.target_labelled.assets))} labelled engines ({len(data.target_labelled):,} windows), "
          f"{len(data.test)} test engines")

    t0 = time.perf_counter()
    pre = train_loop({**load_config(CONFIGS / "demo_pretrain.yaml", common), "run_dir": str(runs / "pretrain")})
    print(f"[4/11] pretrained on FD002 in {time.perf_counter() - t0:.0f} s: source val loss {pre['val_loss']:.4f} "
          f"→ {runs / 'pretrain'}")

    t0 = time.perf_counter()
    pretrained = [f"pretrained={runs / 'pretrain'}"]
    variants = {
        "source model only, no FD001 labels": ["adaptation=source_only", "target.labelled_units=0",
                                                   "strategy=linear_probe", *pretrained],
        "5 FD001 engines alone, from scratch": ["adaptation=source_only", "source.domains=null",
                                                 "strategy=full"],
        "transfer: source model + 5 engines + MMD": pretrained,
    }
    results = {}
    for name, overrides in variants.items():
        config = load_config(CONFIGS / "demo_transfer.yaml", [*common, *overrides])
        config["run_dir"] = str(runs / name.split(",")[0].split(":")[0].replace(" ", "_"))
        results[name] = train_loop(config)
    print(f"[5/11] transfer to FD001 in {time.perf_counter() - t0:.0f} s — target test set, last window of each of "
          f"100 engines:")
    print(f"  {'':42s} {'RMSE':>7s} {'NASA score':>11s}")
    for name, m in results.items():
        print(f"  {name:42s} {m['test_rmse']:7.2f} {m['test_score']:11.0f}")
    source, scratch, transfer = (results[k]["test_rmse"] for k in results)
    print(f"  transfer vs the same 5 engines from scratch: RMSE {100 * (transfer / scratch - 1):+.0f}%; "
          f"vs the source model alone: {100 * (transfer / source - 1):+.0f}%")
    if transfer >= source:
        print("  (here the five labelled engines do not help: FD002 already covers FD001's operating condition, "
              "and five engines drawn at random can be longer- or shorter-lived than the plant's average)")

    t0 = time.perf_counter()
    sensors = fuse_sensors(catalog, runs, quick=args.quick)
    fused, alone = sensors["fused"], sensors["de"]
    print(f"[6/11] three accelerometers of one bearing (CWRU, {sensors['recordings']} vendored recordings: drive end, "
          f"fan end, base; the normal recording has no base signal and is marked absent): one encoder per sensor, "
          f"gated fusion, trained at 0 hp and tested at 3 hp in {time.perf_counter() - t0:.0f} s: accuracy "
          f"{fused['test_accuracy']:.3f} fused, {alone['test_accuracy']:.3f} drive end alone; with one sensor down "
          "at test time: " + ", ".join(f"{s} {fused[f'test_without_{s}_accuracy']:.3f}" for s in ("de", "fe", "ba")))

    t0 = time.perf_counter()
    neu = catalog.ingest("neu-sample", create_reader("neu-det")(sample_path("neu")))
    image_cfg = load_config(CONFIGS / "neu_fewshot.yaml", [f"catalog={catalog.root}", "progress=false",
                                                           "data.dataset=neu-sample",
                                                           *(["epochs=1", "data.spec_options.size=[64,64]"]
                                                             if args.quick else [])])
    image_data = prepare_data(image_cfg, catalog)
    image = train_loop({**image_cfg, "run_dir": str(runs / "neu-5shot")}, data=image_data)
    n_images = sum(catalog.manifest("neu-sample").rows.values())
    print(f"[7/11] steel-surface defects (NEU, {n_images} vendored images, {neu.status}): 5 labelled images per class, "
          f"ImageNet EfficientNet-Lite0 fine-tuned in {time.perf_counter() - t0:.0f} s: accuracy "
          f"{image['test_accuracy']:.3f} on the other {len(image_data.test)} images "
          f"(chance 0.167)")

    t0 = time.perf_counter()
    log = catalog.ingest("maint-log", create_reader("text")(maintenance_log(runs.parent / "maint-log.csv"),
                                                            text_col="note", label_col="fault"))
    text_cfg = load_config(CONFIGS / "text_classification.yaml",
                           [f"catalog={catalog.root}", "progress=false", "data.dataset=maint-log",
                            "data.spec_options.max_length=32",
                            *(["epochs=1", "target.per_class=5"] if args.quick else [])])
    text = train_loop({**text_cfg, "run_dir": str(runs / "maint-log")})
    print(f"[8/11] maintenance work orders ({sum(catalog.manifest('maint-log').rows.values())} MaintIE texts, "
          f"{log.status}; fault labels from the expert annotations): "
          f"{text_cfg['data']['target']['per_class']} labelled texts per class, MiniLM-L6 fine-tuned in {time.perf_counter() - t0:.0f} s: macro-F1 "
          f"{text['test_macro_f1']:.3f}, accuracy {text['test_accuracy']:.3f} on held-out texts")
    line = inspect_line(catalog, runs, quick=args.quick)
    print(f"  an inspection line ({line['images']} NEU images, each joined by time with the CNC drive signals its "
          f"machine recorded up to it and the nearest MaintIE note within 1 s; of the {line['used']} used, "
          f"{line['with_window']} have a window, {line['with_note']} a note): image, window and note fused on "
          f"{line['labelled']} labelled images in {line['seconds']:.0f} s, accuracy "
          f"{line['metrics']['test_accuracy']:.3f} on {line['test']} held-out ones; with an input absent: "
          + ", ".join(f"{n} {line['metrics'][f'test_without_{n}_accuracy']:.3f}" for n in ("photo", "drives", "note")))
    tags = tag_work_orders(catalog, runs / "maintie-tagger", quick=args.quick)
    print(f"  entity tagger (BIO spans, {tags['types']} top-level types, MiniLM-L6), trained on {tags['train']} "
          f"work orders in {tags['seconds']:.0f} s: span F1 {tags['f1']:.3f} on {tags['test']} held-out ones "
          f"({tags['spans']} spans); e.g. {tags['example']!r} → "
          + ", ".join(f"{s['label']} {s['text']!r}" for s in tags["spans_found"]))

    t0 = time.perf_counter()
    cnc = catalog.ingest("cnc-mill", create_reader("cnc-mill")(sample_path("cnc_mill")))
    process = fit_process(catalog, "cnc-mill", runs / "cnc-quality", quick=args.quick)
    print(f"[9/11] process optimization (CNC milling, {process['runs']} experiments with set-points and outcomes, "
          f"{cnc.status}): a quality surrogate of {process['members']} members fitted and scored leave-one-experiment-out "
          f"in {time.perf_counter() - t0:.0f} s:")
    print(f"  {'outcome':26s} {'AUROC':>6s} {'Brier':>6s} {'90% sets cover':>15s}   logistic regression AUROC / Brier")
    for name, m in process["loeo"].items():
        base = process["baselines"]["logistic"][name]
        print(f"  {name:26s} {m['auroc']:6.3f} {m['brier']:6.3f} {m['coverage_90']:15.2f}   "
              f"{base['auroc']:.3f} / {base['brier']:.3f}")
    print("  (the tool's condition, new or worn, is an input here: it was an experimental factor, not a "
          "consequence of the set-points)")

    t0 = time.perf_counter()
    tiles = catalog.ingest("tiles", create_reader("images")(sample_path("magnetic_tile"), plant="mt"))
    shutil.rmtree(runs / "tiles-anomaly", ignore_errors=True)
    inspection = fit_dataset(catalog, "tiles", ["MT_Free"], runs / "tiles-anomaly",
                             AnomalyConfig(method="padim"), size=(128, 128) if args.quick else (224, 224),
                             standardize=True, holdout=0.25)
    m = inspection["metrics"]
    print(f"[10/11] anomaly detection (magnetic tile, {sum(catalog.manifest('tiles').rows.values())} vendored images "
          f"with defect masks, {tiles.status}): PaDiM on ImageNet EfficientNet-Lite0 features of standardized "
          f"images, fitted on "
          f"{inspection['fit']['train_images']} defect-free images (threshold from {inspection['fit']['val_images']} "
          f"more) in {time.perf_counter() - t0:.0f} s; on {inspection['test_good']} held-out defect-free and "
          f"{inspection['test_defective']} defective images: image AUROC {m['image_auroc']:.3f}, pixel AUROC "
          f"{m['pixel_auroc']:.3f} (the full dataset's numbers: benchmarks/results/anomaly.md); heat maps in "
          f"{runs / 'tiles-anomaly' / 'report.html'}")

    t0 = time.perf_counter()
    served = serve_and_query(catalog, runs / "transfer", runs / "neu-5shot", runs / "maint-log", Path(args.models),
                             runs / "cnc-quality", runs / "tiles-anomaly", runs, inspection["held_out_good"][0])
    print(f"[11/11] registered {served['ref']}, {served['image_ref']}, {served['text_ref']}, {served['process_ref']} "
          f"and {served['anomaly_ref']}, served all five "
          f"(Ray Serve on {served['url']}) in "
          f"{time.perf_counter() - t0:.0f} s; {served['n']} FD001 test engines sent over HTTP:")
    print(f"  {'engine':>6s} {'predicted RUL':>14s} {'true RUL':>9s}")
    for engine, pred, true in served["rows"][:8]:
        print(f"  {engine:>6s} {pred:14.1f} {true:9.0f}")
    print(f"  ... served RMSE over all {served['n']} engines {served['rmse']:.2f} "
          f"(the run's own test RMSE: {results['transfer: source model + 5 engines + MMD']['test_rmse']:.2f})")
    print(f"  {len(served['images'])} NEU images sent as JPEG files: "
          + ", ".join(f"{true} → {label} ({p:.2f})" for true, label, p in served["images"]))
    print("  work orders sent as text: "
          + "; ".join(f"{text!r} → {label} ({p:.2f})" for text, label, p in served["texts"]))
    rec = served["recommend"]
    print(f"  POST /v1/models/cnc-quality/recommend: with a worn tool, max feedrate such that P(finalized) >= 0.9 and "
          f"P(passes visual inspection) >= 0.9, with probability >= {rec['min_probability']:g} "
          f"(fastest passing run so far: {rec['reference']['objective']:g} mm/s):")
    for row in rec["recommendations"]:
        sp, o = row["setpoints"], row["outcomes"]
        print(f"    feedrate {sp['feedrate']:5.1f} mm/s, clamp {sp['clamp_pressure']:.2f} bar: P(finalized) "
              + ", P(pass) ".join(f"{o[k]['mean']:.2f} [{o[k]['interval_90'][0]:.2f}, {o[k]['interval_90'][1]:.2f}]"
                                  for k in ("machining_finalized", "passed_visual_inspection"))
              + f"; both met with probability {row['p_constraints']:.2f}, expected gain "
              f"{row['expected_improvement']:.2f} mm/s")
    if not rec["feasible"]:
        print(f"    {rec['message']}")
    print("    next experiment (BoTorch qLogNEI): "
          + "; ".join(", ".join(f"{k} {v:.2f}" for k, v in x.items()) for x in rec["next"]))
    print(f"  two tiles sent to {served['anomaly_ref']} with heatmap=true (threshold {served['tiles']['threshold']:.4g}): "
          + "; ".join(f"{name} ({label}) score {score:.4g} → {'anomalous' if flagged else 'good'}, heat map {png}"
                      for name, label, score, flagged, png in served["tiles"]["rows"]))
    report = write_report([runs / "source_model_only", runs / "5_FD001_engines_alone", runs / "transfer",
                           runs / "drive-end-alone", runs / "fused-sensors", runs / "inspection-line"],
                          runs / "report.html", title="transferline demo: transfer runs")
    print(f"  report of 6 training runs (learning curves, test confusion matrix or predictions, each sensor's "
          f"contribution, source and target features before and after training): {report.resolve()}")
    tracked = [json.loads(p.read_text()) for p in sorted(runs.glob("*/mlflow.json"))]
    if tracked:
        print(f"  {len(tracked)} training runs tracked in MLflow (experiment {tracked[0]['experiment']!r} at "
              f"{tracked[0]['tracking_uri']}); {served['ref']}'s registry lineage names its run "
              f"{served['mlflow_run']}")
    return 0


def fuse_sensors(catalog: Catalog, runs: Path, *, quick: bool) -> dict:
    """The vendored CWRU slice's three accelerometers, one dataset each, fused into one classifier
    (trained at 0 hp, tested at 3 hp), beside the drive end alone."""
    folder = cwru_folder(runs.parent / "cwru-sensors")
    for sensor in ("DE", "FE", "BA"):
        catalog.ingest(f"cwru-{sensor.lower()}", create_reader("cwru")(folder, sensor=sensor))
    # the vendored recordings hold 6,144 samples: windows every 128, the first 60% of each to train
    common = [f"catalog={catalog.root}", "progress=false", "data.spec_options.stride=128", "data.time_split=0.6",
              "data.val_fraction=0.4", "optim.batch_size=16", "adaptation=source_only",
              f"epochs={2 if quick else 10}"]
    out = {"recordings": len(catalog.read("cwru-de", columns=["asset"]))}
    for name, inputs in (("fused", ["data.inputs={de: cwru-de, fe: cwru-fe, ba: cwru-ba}"]),
                         ("de", ["data.inputs={}", "data.dataset=cwru-de", "encoder=wdcnn"])):
        config = load_config(CONFIGS / "fusion_cwru.yaml", [*common, *inputs])
        out[name] = train_loop({**config, "run_dir": str(runs / ("fused-sensors" if name == "fused" else
                                                                 "drive-end-alone"))})
    return out


def inspect_line(catalog: Catalog, runs: Path, *, quick: bool) -> dict:
    """An inspection line's images, drive signals and maintenance notes (vendored real data, times
    and machines assigned), each ingested as plants export them and joined by plant, asset and time:
    one fused model over the three (``examples/configs/fusion_inspection.yaml``)."""
    t0 = time.perf_counter()
    ingest_inspection_line(catalog, runs.parent / "inspection-line")
    config = load_config(CONFIGS / "fusion_inspection.yaml", [f"catalog={catalog.root}", "progress=false",
                                                              *(["epochs=2"] if quick else [])])
    data = prepare_data(config, catalog)
    metrics = train_loop({**config, "run_dir": str(runs / "inspection-line")}, data=data)
    used = (data.source_train, data.test)  # few-shot: the labelled images are trained and validated on
    present = sum(d.present.sum(axis=0) for d in used)
    return {"images": sum(catalog.manifest("line_images").rows.values()), "used": sum(len(d) for d in used),
            "with_window": int(present[1]), "with_note": int(present[2]), "test": len(data.test),
            "labelled": len(data.source_train), "metrics": metrics, "seconds": time.perf_counter() - t0}


def tag_work_orders(catalog: Catalog, out: Path, *, quick: bool) -> dict:
    """An entity tagger on the vendored MaintIE work orders (``tag fit``'s path): its test span
    scores, and the spans it finds in one held-out work order."""
    from transferline.tagging import TagConfig, load_tagged, tag_texts
    from transferline.tagging.run import fit_tagging
    from transferline.tagging.tagger import build_tagger
    from transferline.train.checkpoint import load_state

    t0 = time.perf_counter()
    if not catalog.exists("maintie-sample"):
        catalog.ingest("maintie-sample", create_reader("maintie")(sample_path("maintie")))
    shutil.rmtree(out, ignore_errors=True)
    config = TagConfig(max_length=32, epochs=2 if quick else 8, patience=3)
    result = fit_tagging(catalog, "maintie-sample", out, config)
    state, meta = load_state(out, "model")
    tagger, spec = build_tagger(config, meta["tags"])
    tagger.load_state_dict(state)
    test = load_tagged(catalog, "maintie-sample").holdout(0.1, 0)[1]
    example = max(test.texts, key=len)
    scores, fit = result["test"], result["fit"]
    return {"types": (len(meta["tags"]) - 1) // 2, "train": fit["train_texts"], "test": len(test),
            "f1": scores["f1"], "spans": scores["spans"], "seconds": time.perf_counter() - t0,
            "example": example, "spans_found": tag_texts(tagger.eval(), spec, [example])[0]}


def fit_process(catalog: Catalog, dataset: str, out: Path, *, quick: bool) -> dict:
    """Fits the quality surrogate on the dataset's runs, scores it leave-one-run-out, writes its run folder."""
    from transferline.process import (SurrogateConfig, baseline_metrics, fit_surrogate, leave_one_run_out,
                                      load_process_data)
    from transferline.process.store import save_surrogate

    data = load_process_data(catalog, dataset, context=["tool_condition"])
    config = SurrogateConfig(members=8, epochs=100) if quick else SurrogateConfig()
    scores = {"loeo": leave_one_run_out(data, config)["metrics"], "baselines": baseline_metrics(data)}
    shutil.rmtree(out, ignore_errors=True)
    save_surrogate(out, fit_surrogate(data, config), data, config, scores)
    return {**scores, "runs": len(data.runs), "members": config.members}


def serve_and_query(catalog: Catalog, run_dir: Path, image_run: Path, text_run: Path, models_root: Path,
                    process_run: Path, anomaly_run: Path, out: Path, good_tile: str) -> dict:
    """Registers the transfer, image, text, process and anomaly runs, serves them with Ray Serve on
    loopback, and sends every FD001 test engine's last window (raw sensor values and operating
    condition), a few NEU images (their JPEG files, base64), a few work orders, a set-point question
    and two magnetic tiles (``good_tile``, one the anomaly model was not fitted on, and a defective
    one; heat maps saved as PNG in ``out``) as real HTTP requests."""
    import base64

    import httpx
    from ray import serve

    from transferline.data import load_windows
    from transferline.model_registry import ModelRegistry
    from transferline.serve.app import application
    from transferline.serve.runtime import start

    registry = ModelRegistry(models_root)
    entry = registry.register(run_dir, "fd001-rul", stage="production")
    image_entry = registry.register(image_run, "neu-5shot", stage="production")
    text_entry = registry.register(text_run, "maint-log", stage="production")
    process_entry = registry.register(process_run, "cnc-quality", stage="production")
    anomaly_entry = registry.register(anomaly_run, "tiles-anomaly", stage="production")
    tiles = catalog.read("tiles", columns=["image", "label", "source"])
    tile_labels = tiles.column("label").to_pylist()
    tile_pick = [tiles.column("source").to_pylist().index(good_tile), tile_labels.index("MT_Blowhole")]
    notes = ["hydraulic pump not working", "replace engine air filter", "oil leak at gearbox seal"]
    images = catalog.read("neu-sample", columns=["image", "label"])
    pick = list(range(0, images.num_rows, 20))  # one image of each class
    test = load_windows(catalog, "cmapss-sample", "cmapss", split="test", domains=["FD001"], last_only=True)
    rows = np.maximum(test.ends[:, None] - test.length + np.arange(test.length)[None, :], test.asset_starts[:, None])
    raw = test.values[:, rows].transpose(1, 2, 0)  # [engines, time, sensors]
    groups = test.row_groups[rows]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start("127.0.0.1", port)
    try:
        serve.run(application(str(registry.root)), name="transferline", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        reply = httpx.post(f"{url}/v1/models/fd001-rul/predict", params={"stage": "production"}, timeout=120,
                           json={"windows": raw.tolist(), "groups": groups.tolist(), "signals": entry.input["series"]["signals"]})
        reply.raise_for_status()
        predicted = np.clip(np.asarray(reply.json()["predictions"]), 0, None)
        files = [base64.b64encode(images.column("image")[i].as_py()).decode() for i in pick]
        answer = httpx.post(f"{url}/v1/models/neu-5shot/predict", params={"stage": "production"}, timeout=120,
                            json={"images": files})
        answer.raise_for_status()
        answer = answer.json()
        said = httpx.post(f"{url}/v1/models/maint-log/predict", params={"stage": "production"}, timeout=120,
                          json={"texts": notes})
        said.raise_for_status()
        said = said.json()
        recommend = httpx.post(f"{url}/v1/models/cnc-quality/recommend", params={"stage": "production"}, timeout=120,
                               json={"objective": "max:feedrate", "context": {"tool_condition": "worn"},
                                     "constraints": ["machining_finalized>=0.9", "passed_visual_inspection>=0.9"],
                                     "top": 3, "next": 1})
        recommend.raise_for_status()
        recommend = recommend.json()
        scored = httpx.post(f"{url}/v1/models/tiles-anomaly/predict", params={"stage": "production"}, timeout=120,
                            json={"images": [base64.b64encode(tiles.column("image")[i].as_py()).decode()
                                             for i in tile_pick], "heatmap": True})
        scored.raise_for_status()
        scored = scored.json()
    finally:
        serve.shutdown()
    true = test.labels
    labels = images.column("label").to_pylist()
    tile_rows = []
    for i, score, flagged, png in zip(tile_pick, scored["predictions"], scored["anomalous"], scored["heatmaps"]):
        path = out / f"heatmap-{Path(tiles.column('source')[i].as_py()).stem}.png"
        path.write_bytes(base64.b64decode(png))
        tile_rows.append((tiles.column("source")[i].as_py(), tile_labels[i], score, flagged, path))
    return {"ref": entry.ref, "mlflow_run": (entry.lineage.get("mlflow") or {}).get("run_id"),
            "image_ref": image_entry.ref, "text_ref": text_entry.ref, "url": url,
            "anomaly_ref": anomaly_entry.ref, "tiles": {"threshold": scored["threshold"], "rows": tile_rows},
            "process_ref": process_entry.ref, "recommend": recommend,
            "n": len(true),
            "texts": [(note, label, max(p)) for note, label, p in zip(notes, said["labels"], said["probabilities"])],
            "images": [(labels[i], label, max(p)) for i, label, p in zip(pick, answer["labels"],
                                                                        answer["probabilities"])],
            "rmse": float(np.sqrt(np.mean((predicted - true) ** 2))),
            "rows": [(test.asset_names[a].split("/")[-1], float(p), float(t))
                     for a, p, t in zip(test.assets, predicted, true)]}


if __name__ == "__main__":
    raise SystemExit(main())
