"""OPC UA capture throughput against an independent server (node-opcua) on loopback.

For 100 and 1000 variables and a ladder of rates, node-opcua sets every variable every tick (value
= tick counter) for ``--seconds``; transferline's capture writes them to a catalog dataset (Parquet).
A run is *zero-loss* when every variable holds exactly the ticks 0..K-1, once each, with no
reconnect. Recorded per run: values/s, client CPU (% of one core, this process, all threads),
source-time → durable latency p50/p99. Then HistoryRead backfill values/s, and, in the same run, a
baseline: a plain asyncua callback subscription (library defaults) writing rows one by one to CSV.

Writes ``benchmarks/results/opcua_ingest.json`` and ``.md``. Needs node and npm (node-opcua is
installed into tests/opcua/node on first use). Usage:
``python benchmarks/opcua_ingest.py [--seconds 12] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import spread, started, write_results  # noqa: E402

from transferline.catalog import Catalog  # noqa: E402
from transferline.connectors.opcua import Capture, CaptureOptions  # noqa: E402

NODE_DIR = Path(__file__).resolve().parents[1] / "tests" / "opcua" / "node"
TARGETS = {"rate": 20_000, "cpu_pct": 50.0, "p99_s": 2.0, "backfill": 50_000}


def ensure_node() -> None:
    if not (NODE_DIR / "node_modules" / "node-opcua").is_dir():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NodeServer:
    def __init__(self, variables: int, interval_ms: float, ticks: int, start_in_s: float) -> None:
        self.port = free_port()
        self.start_at = time.time() + start_in_s
        assets = max(1, variables // 100)
        self.proc = subprocess.Popen(
            ["node", str(NODE_DIR / "server.js"), "--port", str(self.port), "--variables", str(variables), "--assets",
             str(assets), "--interval", str(interval_ms), "--ticks", str(ticks), "--history", str(ticks + 10),
             "--start-at", str(int(self.start_at * 1000))], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen = []
        while not (line := self.proc.stdout.readline()).startswith("READY"):
            seen.append(line)
            if self.proc.poll() is not None or len(seen) > 50:
                raise RuntimeError(f"node-opcua server did not start: {''.join(seen)}")
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def check_counters(catalog: Catalog, name: str, variables: int, ticks: int) -> dict:
    t = catalog.read(name, columns=["asset", "signal", "value", "quality"]).to_pandas()
    t = t[(t["quality"] == 0) & (t["value"] >= 0)]
    per = t.groupby(["asset", "signal"])["value"]
    complete = int(sum(1 for _, v in per if len(v) == ticks and np.array_equal(np.sort(v.to_numpy()), np.arange(ticks))))
    return {"variables_complete": complete, "values": len(t), "lost": variables * ticks - int(t.drop_duplicates(
        ["asset", "signal", "value"]).shape[0]), "repeated": int(t.duplicated(["asset", "signal", "value"]).sum())}


async def capture_run(variables: int, rate: int, seconds: float, root: Path) -> dict:
    interval = variables * 1000.0 / rate
    ticks = int(seconds * 1000 / interval)
    server = NodeServer(variables, interval, ticks, start_in_s=3.0 + variables / 500)
    catalog = Catalog(tempfile.mkdtemp(prefix=f"live-{variables}-{rate}-", dir=root))  # a fresh dataset per run
    try:
        capture = Capture(CaptureOptions(server.endpoint, "live", browse_root="Plant", sampling_ms=0.0,
                                         publishing_ms=100.0), catalog)
        stop = asyncio.Event()
        expected = variables * ticks
        t_end = server.start_at + ticks * interval / 1000

        async def watch() -> None:
            while capture.stats.written < expected and time.time() < t_end + 10:
                await asyncio.sleep(0.1)
            stop.set()

        watcher = asyncio.create_task(watch())
        run = asyncio.create_task(capture.run(stop))
        while time.time() < server.start_at:
            await asyncio.sleep(0.01)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        stats = await run
        await watcher
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        server.close()
    check = check_counters(catalog, "live", variables, ticks)
    s = stats.summary()
    zero_loss = check["variables_complete"] == variables and check["repeated"] == 0 and s["connects"] == 1 \
        and s["backfilled"] == 0
    return {"variables": variables, "rate_offered": rate, "ticks": ticks, "expected": expected,
            "written": s["written"], "values_per_s": s["written"] / (ticks * interval / 1000), "cpu_pct": 100 * cpu / wall,
            "latency_p50_s": s.get("latency_p50_ms", float("nan")) / 1000,
            "latency_p99_s": s.get("latency_p99_ms", float("nan")) / 1000, "connects": s["connects"],
            "backfilled": s["backfilled"], "overflows": s["overflows"], "zero_loss": zero_loss, **check}


async def backfill_run(variables: int, ticks: int, root: Path) -> dict:
    """History of ``ticks`` values per variable, read into an empty dataset."""
    interval = 5.0
    server = NodeServer(variables, interval, ticks, start_in_s=0.0)
    try:
        await asyncio.sleep(ticks * interval / 1000 + 1.5 + variables / 1000)
        catalog = Catalog(tempfile.mkdtemp(prefix=f"backfill-{variables}-", dir=root))
        capture = Capture(CaptureOptions(server.endpoint, "hist", browse_root="Plant"), catalog)
        t0 = time.perf_counter()
        stats = await capture.history(datetime.now(timezone.utc) - timedelta(hours=1), datetime.now(timezone.utc))
        seconds = time.perf_counter() - t0
    finally:
        server.close()
    check = check_counters(catalog, "hist", variables, ticks)
    return {"variables": variables, "values": stats.written, "seconds": seconds, "values_per_s": stats.written / seconds,
            **check}


async def baseline_run(variables: int, rate: int, seconds: float, root: Path) -> dict:
    """asyncua as documented: callback handler, subscribe_data_change defaults, one CSV row per value."""
    from asyncua import Client

    interval = variables * 1000.0 / rate
    ticks = int(seconds * 1000 / interval)
    server = NodeServer(variables, interval, ticks, start_in_s=3.0 + variables / 500)
    path = root / f"baseline-{variables}-{rate}.csv"
    try:
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)

            class Handler:
                def datachange_notification(self, node, val, data):
                    dv = data.monitored_item.Value
                    writer.writerow([node.nodeid.to_string(), dv.SourceTimestamp.isoformat(), val])

            async with Client(server.endpoint) as client:
                plant = await client.nodes.objects.get_child(["1:Plant", "1:Line1"])
                nodes = [v for asset in await plant.get_children() for v in await asset.get_children()]
                sub = await client.create_subscription(100, Handler())
                await sub.subscribe_data_change(nodes)
                while time.time() < server.start_at:
                    await asyncio.sleep(0.01)
                cpu0, wall0 = time.process_time(), time.perf_counter()
                await asyncio.sleep(ticks * interval / 1000 + 2.0)
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        server.close()
    rows = sum(1 for _ in open(path))
    return {"variables": variables, "rate_offered": rate, "expected": variables * ticks, "rows": rows,
            "lost_pct": 100 * (1 - rows / (variables * ticks)), "cpu_pct": 100 * cpu / wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--repeats", type=int, default=3, help="repeats at the target rate, for medians")
    parser.add_argument("--rates", default="10000,20000,30000,40000")
    args = parser.parse_args()
    if not shutil.which("node"):
        raise SystemExit("node and npm are needed: node-opcua is the server")
    ensure_node()
    started()
    logging.basicConfig(level=logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="tl-opcua-bench-"))
    rates = [int(r) for r in args.rates.split(",")]
    runs, baselines, backfills = [], [], []
    try:
        for variables in (100, 1000):
            for rate in rates:
                repeats = args.repeats if rate == TARGETS["rate"] else 1
                for _ in range(repeats):
                    r = asyncio.run(capture_run(variables, rate, args.seconds, root))
                    runs.append(r)
                    print(f"{variables:5d} vars {rate:6d}/s: {r['values_per_s']:8.0f} values/s, CPU {r['cpu_pct']:5.1f}%, "
                          f"p50 {r['latency_p50_s']:.2f} s p99 {r['latency_p99_s']:.2f} s, lost {r['lost']}, "
                          f"zero-loss {r['zero_loss']}", flush=True)
            b = asyncio.run(baseline_run(variables, TARGETS["rate"], args.seconds, root))
            baselines.append(b)
            print(f"baseline {variables} vars: {b['rows']} of {b['expected']} rows ({b['lost_pct']:.1f}% lost), "
                  f"CPU {b['cpu_pct']:.1f}%", flush=True)
            f = asyncio.run(backfill_run(variables, 300 if variables == 1000 else 3000, root))
            backfills.append(f)
            print(f"backfill {variables} vars: {f['values']} values at {f['values_per_s']:.0f}/s, lost {f['lost']}",
                  flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    summary = {}
    for variables in (100, 1000):
        mine = [r for r in runs if r["variables"] == variables]
        ok = [r["rate_offered"] for r in mine if r["zero_loss"]]
        at_target = [r for r in mine if r["rate_offered"] == TARGETS["rate"]]
        summary[f"v{variables}"] = {
            "max_zero_loss_rate": max(ok) if ok else 0,
            "at_20k": {"zero_loss_runs": sum(r["zero_loss"] for r in at_target), "runs": len(at_target),
                       "values_per_s": spread([r["values_per_s"] for r in at_target]),
                       "cpu_pct": spread([r["cpu_pct"] for r in at_target]),
                       "latency_p50_s": spread([r["latency_p50_s"] for r in at_target]),
                       "latency_p99_s": spread([r["latency_p99_s"] for r in at_target])},
            "backfill_values_per_s": next(f["values_per_s"] for f in backfills if f["variables"] == variables),
            "baseline_at_20k": next(b for b in baselines if b["variables"] == variables),
        }
    summary["targets"] = TARGETS
    table = ["| variables | offered values/s | achieved values/s | client CPU % | p50 s | p99 s | lost | zero-loss |",
             "|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for r in runs:
        table.append(f"| {r['variables']} | {r['rate_offered']:,} | {r['values_per_s']:,.0f} | {r['cpu_pct']:.1f} | "
                     f"{r['latency_p50_s']:.2f} | {r['latency_p99_s']:.2f} | {r['lost']} | {'yes' if r['zero_loss'] else 'no'} |")
    table += ["", "| variables | baseline (asyncua defaults, CSV row per value) rows | lost % | CPU % | backfill values/s |",
              "|---:|---:|---:|---:|---:|"]
    for b, f in zip(baselines, backfills):
        table.append(f"| {b['variables']} | {b['rows']:,} of {b['expected']:,} | {b['lost_pct']:.1f} | {b['cpu_pct']:.1f} | "
                     f"{f['values_per_s']:,.0f} |")
    config = {"seconds": args.seconds, "repeats": args.repeats, "rates": rates, "server": "node-opcua 2.182.2",
              "publishing_ms": 100, "sampling_ms": 0, "flush_s": CaptureOptions.flush_s}
    write_results("opcua_ingest", config, summary, {"runs": runs, "baselines": baselines,
                                                           "backfill": backfills}, "\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
