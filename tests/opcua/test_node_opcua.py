"""Interop with an independent implementation: node-opcua (npm) as the server. Every variable's
values are the tick counter 0, 1, 2, ..., so a capture is complete and duplicate-free exactly when
each variable holds consecutive integers."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from .conftest import cli, free_port, stop, wait_until

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="session")
def node_server_js() -> Path:
    """server.js with node-opcua installed beside it (npm install on first use)."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed for the node-opcua interop tests")
    if not (NODE_DIR / "node_modules" / "node-opcua").is_dir():
        proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            pytest.skip(f"npm install node-opcua failed (no registry?): {proc.stderr[-500:]}")
    return NODE_DIR / "server.js"


def start_node_server(procs, script: Path, *, variables=40, assets=4, interval=10, ticks=0) -> int:
    port = free_port()
    proc = subprocess.Popen(["node", str(script), "--port", str(port), "--variables", str(variables), "--assets",
                             str(assets), "--interval", str(interval), "--ticks", str(ticks)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("READY"):
            return port
        if proc.poll() is not None:
            raise RuntimeError(f"node-opcua server exited: {line}{proc.stdout.read()}")
    raise TimeoutError("node-opcua server did not start")


def counters(catalog: Path, name: str = "live") -> dict[tuple[str, str], np.ndarray]:
    from transferline.catalog import Catalog

    t = Catalog(catalog).read(name).to_pandas()
    t = t[(t["quality"] == 0) & (t["value"] >= 0)].sort_values("ts", kind="stable")
    return {k: g["value"].to_numpy() for k, g in t.groupby(["asset", "signal"])}


def assert_contiguous(catalog: Path, n_variables: int, up_to: int | None = None) -> int:
    got = counters(catalog)
    assert len(got) == n_variables
    for key, values in got.items():
        assert np.all(np.diff(values) == 1), f"{key}: holes or repeats at {np.flatnonzero(np.diff(values) != 1)[:5]}"
        if up_to is not None:
            assert values[-1] == up_to - 1, f"{key}: last tick {values[-1]}, server played {up_to}"
    return min(len(v) for v in got.values())


def test_live_capture_and_backfill_after_a_cut(node_server_js, tmp_path, procs, proxy_factory):
    ticks = 800  # 8 s at 10 ms, 40 variables: 32,000 values
    port = start_node_server(procs, node_server_js, ticks=ticks)
    proxy = proxy_factory(port)
    since = (datetime.now(timezone.utc) - timedelta(seconds=5)).isoformat()
    capture = cli("ingest", "opcua", "--endpoint", proxy.endpoint, "--name", "live", "--catalog", tmp_path,
                  "--browse-root", "Plant", "--quiet", "--since", since)
    procs.append(capture)
    from .conftest import good_rows

    wait_until(lambda: good_rows(tmp_path) > 2000, 30, "the first values")
    proxy.cut()
    time.sleep(2.5)
    proxy.restore()
    wait_until(lambda: good_rows(tmp_path) >= 40 * ticks, 60, "every tick of every variable")
    out = stop(capture)
    assert capture.returncode == 0, out
    assert assert_contiguous(tmp_path, 40, up_to=ticks) == ticks
    assert re.search(r"[1-9][\d,]* from history", out), out  # the outage came back through HistoryRead
    assert "Traceback" not in out


def test_kill_9_and_restart_against_node_opcua(node_server_js, tmp_path, procs):
    ticks = 800
    port = start_node_server(procs, node_server_js, ticks=ticks)
    from .conftest import good_rows

    since = (datetime.now(timezone.utc) - timedelta(seconds=5)).isoformat()
    args = ["ingest", "opcua", "--endpoint", f"opc.tcp://127.0.0.1:{port}", "--name", "live", "--catalog", tmp_path,
            "--browse-root", "Plant", "--quiet", "--since", since]
    first = cli(*args)
    procs.append(first)
    wait_until(lambda: good_rows(tmp_path) > 3000, 30, "the first values")
    stop(first, signal.SIGKILL)
    time.sleep(1.5)
    second = cli(*args)
    procs.append(second)
    wait_until(lambda: good_rows(tmp_path) >= 40 * ticks, 60, "every tick after the restart")
    stop(second)
    assert assert_contiguous(tmp_path, 40, up_to=ticks) == ticks


def test_history_read_pages_through_continuation_points(node_server_js, procs):
    """Small pages force node-opcua to hand out continuation points; every page must be read."""
    from asyncua import Client

    from transferline.connectors.opcua._history import HistoryPage, read_history

    port = start_node_server(procs, node_server_js, variables=4, assets=1, interval=5, ticks=600)
    time.sleep(3.5)

    async def read_all():
        async with Client(f"opc.tcp://127.0.0.1:{port}") as client:
            ids = [client.get_node(f"ns=1;s=Plant/Line1/Asset_0/Signal_{s}").nodeid for s in range(4)]
            pages: dict[int, list] = {}
            async for page in read_history(client, ids, datetime.now(timezone.utc) - timedelta(minutes=1),
                                           datetime.now(timezone.utc) + timedelta(minutes=1), page_size=50):
                assert isinstance(page, HistoryPage)
                pages.setdefault(page.index, []).append(page.values)
            return pages

    pages = asyncio.run(read_all())
    assert sorted(pages) == [0, 1, 2, 3]
    for index, chunks in pages.items():
        values = np.concatenate(chunks)
        assert len(chunks) >= 12, f"variable {index}: {len(chunks)} pages of <= 50 for 600 values"
        np.testing.assert_array_equal(values[values >= 0], np.arange(600))
