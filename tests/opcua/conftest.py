"""Real OPC UA servers and captures on 127.0.0.1 for the integration tests: the project's plant
simulator and the capture CLI as subprocesses (so they can be killed with SIGKILL), a loopback TCP
proxy that cuts the network, and the expected values straight from the source dataset."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

# Five FD001 engines (128–287 cycles), eight signals: 8,928 values.
ASSETS = 5
SIGNALS = ["step", "s2", "s3", "s4", "s7", "s11", "s12", "rul"]
MAPPING = "plant=0,split=1,asset=2,signal=3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def wait_until(predicate, timeout: float, what: str, step: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def cli(*args, **kwargs) -> subprocess.Popen:
    """Starts ``transferline ARGS`` as a process with its own output files."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **kwargs.pop("env", {})}
    return subprocess.Popen([sys.executable, "-m", "transferline.cli", *map(str, args)], env=env,
                            stdout=kwargs.pop("stdout", subprocess.PIPE), stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 20.0) -> str:
    """Signals ``proc`` and returns its output."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


@pytest.fixture(scope="session")
def source_catalog(tmp_path_factory) -> Path:
    """A catalog holding the vendored C-MAPSS sample as dataset ``cmapss``."""
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    root = tmp_path_factory.mktemp("opcua-source")
    Catalog(root).ingest("cmapss", create_reader("cmapss")(sample_path("cmapss")))
    return root


@pytest.fixture(scope="session")
def expected(source_catalog) -> dict[tuple[str, str], np.ndarray]:
    """(asset, signal) → every value the simulator plays, in order."""
    from transferline.catalog import Catalog
    from transferline.connectors.opcua.simulator import load_streams

    streams, _ = load_streams(Catalog(source_catalog), sim_options())
    return {(s.path[2], s.path[3]): s.values[np.isfinite(s.values)] for s in streams}


def sim_options(**kw):
    from transferline.connectors.opcua.simulator import SimulatorOptions

    return SimulatorOptions("cmapss", split="train", plants=["FD001"], max_assets=ASSETS, signals=SIGNALS, **kw)


def simulator_args(catalog: Path, port: int, *extra, speed: float = 40.0) -> list:
    return ["simulate", "--dataset", "cmapss", "--catalog", catalog, "--endpoint", f"opc.tcp://127.0.0.1:{port}",
            "--speed", speed, "--split", "train", "--plant", "FD001", "--assets", ASSETS,
            "--signals", ",".join(SIGNALS), *extra]


def capture_args(catalog: Path, endpoint: str, name: str = "live", *extra) -> list:
    return ["ingest", "opcua", "--endpoint", endpoint, "--name", name, "--catalog", catalog, "--map", MAPPING,
            "--quiet", *extra]


def captured(catalog: Path, name: str = "live") -> tuple[dict[tuple[str, str], np.ndarray], int]:
    """(asset, signal) → Good values in source-time order, and the number of repeated (asset, signal, ts)."""
    from transferline.catalog import Catalog

    cat = Catalog(catalog)
    if not cat.exists(name):
        return {}, 0
    t = cat.read(name).to_pandas()
    t = t[t["quality"] == 0].sort_values("ts", kind="stable")
    repeats = int(t.duplicated(["asset", "signal", "ts"]).sum())
    return {k: g["value"].to_numpy() for k, g in t.groupby(["asset", "signal"])}, repeats


def good_rows(catalog: Path, name: str = "live") -> int:
    from transferline.catalog import Catalog

    cat = Catalog(catalog)
    if not cat.exists(name):
        return 0
    return int((cat.read(name, columns=["quality"]).column("quality").to_numpy() == 0).sum())


def assert_exactly_once(catalog: Path, expected: dict, name: str = "live") -> None:
    got, repeats = captured(catalog, name)
    assert repeats == 0, f"{repeats} values stored twice"
    assert set(got) == set(expected), f"streams differ: {sorted(set(expected) ^ set(got))[:5]}"
    for key, values in expected.items():
        assert len(got[key]) == len(values), f"{key}: {len(got[key])} values captured, {len(values)} played"
        np.testing.assert_array_equal(got[key], values, err_msg=f"{key}: values differ")


class TcpProxy:
    """A loopback TCP proxy the test can cut: ``cut()`` drops every connection and refuses new
    ones until ``restore()``."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self._cut = True
        with self._lock:
            for s in self._open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self._open.clear()

    def restore(self) -> None:
        self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()


@pytest.fixture()
def proxy_factory():
    made = []

    def make(port: int) -> TcpProxy:
        made.append(TcpProxy(port))
        return made[-1]

    yield make
    for p in made:
        p.close()


@pytest.fixture()
def procs():
    """Processes started by a test; whatever is still running at the end is killed."""
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()
