"""Live capture against the plant simulator over real TCP on 127.0.0.1: every played value lands
in the catalog exactly once, across a network cut, a kill -9 of the capture and a kill -9 of the
server; bad input fails clearly and writes nothing."""

from __future__ import annotations

import re
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import assert_nothing_written

from .conftest import (assert_exactly_once, capture_args, cli, free_port, good_rows, simulator_args, stop,
                       wait_port, wait_until)

pytestmark = pytest.mark.integration

TOTAL = 8928


def _since() -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=2)).isoformat()


def _start_simulator(procs, source_catalog, port, *extra, speed: float = 40.0):
    proc = cli(*simulator_args(source_catalog, port, *extra, speed=speed))
    procs.append(proc)
    wait_port(port)
    return proc


def test_capture_gets_every_value_once_and_exits_cleanly_on_sigterm(source_catalog, expected, tmp_path, procs):
    port, since = free_port(), _since()
    _start_simulator(procs, source_catalog, port, "--historize")
    capture = cli(*capture_args(tmp_path, f"opc.tcp://127.0.0.1:{port}", "live", "--since", since))
    procs.append(capture)
    wait_until(lambda: good_rows(tmp_path) >= TOTAL, 60, "all values in the catalog")
    out = stop(capture, signal.SIGTERM)
    assert capture.returncode == 0, out
    assert re.search(r"live: [\d,]+ values written from 40 variables", out), out
    assert_exactly_once(tmp_path, expected)


def test_network_cut_loses_nothing_and_logs_once_per_state_change(source_catalog, expected, tmp_path, procs,
                                                                  proxy_factory):
    port, since = free_port(), _since()
    _start_simulator(procs, source_catalog, port, "--historize")
    proxy = proxy_factory(port)
    capture = cli(*capture_args(tmp_path, proxy.endpoint, "live", "--since", since))
    procs.append(capture)
    wait_until(lambda: good_rows(tmp_path) > 500, 30, "the first values")
    proxy.cut()
    time.sleep(3.0)
    during = good_rows(tmp_path)
    proxy.restore()
    wait_until(lambda: good_rows(tmp_path) >= TOTAL, 60, "all values after the cut")
    out = stop(capture)
    assert during < TOTAL, "the cut happened after playback ended; it proved nothing"
    assert out.count("connection to") == 1, out  # one warning for the outage, not one per retry
    assert re.search(r"[1-9][\d,]* from history", out), out
    assert "Traceback" not in out, out
    assert_exactly_once(tmp_path, expected)


def test_kill_9_of_the_capture_then_restart_resumes_without_gaps_or_duplicates(source_catalog, expected, tmp_path,
                                                                               procs):
    port, since = free_port(), _since()
    _start_simulator(procs, source_catalog, port, "--historize")
    # small files are compacted every 5 files, so compaction runs (and may be killed) mid-capture even where
    # a slow machine flushes fewer, larger files (18 in all on one CI run)
    args = capture_args(tmp_path, f"opc.tcp://127.0.0.1:{port}", "live", "--since", since, "--compact-files", "5")
    first = cli(*args)
    procs.append(first)
    wait_until(lambda: good_rows(tmp_path) > 1000, 30, "the first values")
    stop(first, signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    time.sleep(1.5)
    second = cli(*args)
    procs.append(second)
    wait_until(lambda: good_rows(tmp_path) >= TOTAL, 60, "all values after the restart")
    out = stop(second)
    assert re.search(r"[1-9][\d,]* from history", out), out
    assert_exactly_once(tmp_path, expected)
    from transferline.catalog import Catalog

    manifest = Catalog(tmp_path).manifest("live")
    assert len(manifest.files) < 20 and any(s.key.startswith("opcua/compacted-") for s in manifest.sources)


def test_kill_9_of_the_server_then_restart(source_catalog, expected, tmp_path, procs):
    port, since = free_port(), _since()
    log = tmp_path / "history.bin"
    server = _start_simulator(procs, source_catalog, port, "--history-log", log)
    capture = cli(*capture_args(tmp_path, f"opc.tcp://127.0.0.1:{port}", "live", "--since", since))
    procs.append(capture)
    wait_until(lambda: good_rows(tmp_path) > 1000, 30, "the first values")
    stop(server, signal.SIGKILL)
    time.sleep(2.0)
    _start_simulator(procs, source_catalog, port, "--history-log", log)  # resumes playback from its log
    wait_until(lambda: good_rows(tmp_path) >= TOTAL, 90, "all values after the server restart")
    out = stop(capture)
    assert capture.returncode == 0, out
    assert_exactly_once(tmp_path, expected)


def test_a_server_without_history_gives_an_explicit_gap(source_catalog, tmp_path, procs):
    from transferline.catalog import Catalog
    from transferline.connectors.opcua import gaps

    port = free_port()
    _start_simulator(procs, source_catalog, port)  # no --historize
    args = capture_args(tmp_path, f"opc.tcp://127.0.0.1:{port}", "live", "--include", "FD001/train/1/*")
    first = cli(*args)
    procs.append(first)
    wait_until(lambda: good_rows(tmp_path) > 50, 30, "the first values")
    stop(first, signal.SIGKILL)
    time.sleep(1.0)
    second = cli(*args, "--duration", "2")
    procs.append(second)
    out = second.communicate(timeout=30)[0]
    assert second.returncode == 0, out
    table = gaps(Catalog(tmp_path), "live")
    assert table.num_rows == 8, table  # one per variable of engine 1
    assert set(table.column("reason").to_pylist()) == {"no HistoryRead access"}
    row = table.to_pylist()[0]
    assert datetime.fromisoformat(row["start"]) < datetime.fromisoformat(row["end"])


@pytest.mark.parametrize("case", ["no server", "no match"])
def test_bad_endpoint_or_pattern_fails_clearly_and_writes_nothing(source_catalog, tmp_path, procs, case):
    from transferline.catalog import Catalog

    port = free_port()
    extra = []
    if case == "no match":
        _start_simulator(procs, source_catalog, port)
        extra = ["--include", "Nowhere/*"]
    proc = cli(*capture_args(tmp_path, f"opc.tcp://127.0.0.1:{port}", "live", "--duration", "5", *extra))
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 2, out
    message = {"no server": f"cannot capture from opc.tcp://127.0.0.1:{port}",
               "no match": "no variable below Objects/ matches ['Nowhere/*']"}[case]
    assert message in out, out
    assert "Traceback" not in out, out
    assert_nothing_written(Catalog(tmp_path), "live")


def test_opcua_history_command_reads_a_time_range(source_catalog, expected, tmp_path, procs):
    port, start = free_port(), _since()
    _start_simulator(procs, source_catalog, port, "--historize", speed=200.0)
    time.sleep(4.0)  # 287 ticks at 200/s: playback has ended
    proc = cli("ingest", "opcua-history", "--endpoint", f"opc.tcp://127.0.0.1:{port}", "--name", "live", "--catalog",
               tmp_path, "--map", "plant=0,split=1,asset=2,signal=3", "--start", start, "--quiet")
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    assert f"live: {TOTAL:,} values from history" in out, out
    assert_exactly_once(tmp_path, expected)
