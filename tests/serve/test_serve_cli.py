"""`transferline serve` as a process: it answers over HTTP, a second server on its port is refused,
and it stops cleanly on Ctrl-C and on SIGTERM. (A module of its own, so that no other Ray instance of
the test session is running beside it.)"""

import socket

import httpx
import pytest

from .conftest import windows

pytestmark = [pytest.mark.ray, pytest.mark.integration]


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_cli_serve_answers_refuses_a_second_server_then_stops_cleanly(runs, tmp_path, stop):
    import os
    import signal
    import subprocess
    import sys
    import time

    from transferline.model_registry import ModelRegistry

    ModelRegistry(tmp_path / "models").register(runs[0], "plant-a")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "-m", "transferline.cli", "serve", "--port", str(port), "--models",
                             str(tmp_path / "models")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    try:
        seen, deadline = [], time.monotonic() + 180  # ready once the command says it is serving (app deployed)
        while time.monotonic() < deadline and proc.poll() is None:
            seen.append(proc.stdout.readline())
            if "Ctrl-C stops" in seen[-1]:
                break
        assert "Ctrl-C stops" in seen[-1], "".join(seen)[-3000:]
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/models/plant-a/predict", json={"windows": windows(1).tolist()},
                           timeout=30)
        assert reply.status_code == 200, reply.text
        assert reply.json()["model"] == "plant-a@1"
        second = subprocess.run([sys.executable, "-m", "transferline.cli", "serve", "--port", str(port), "--models",
                                 str(tmp_path / "models")], capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 2 and f"port {port} on 127.0.0.1 is already in use" in second.stderr, second
        assert "serving models" not in second.stdout
        time.sleep(1.5)
    finally:
        proc.send_signal(getattr(signal, stop))
        out = proc.communicate(timeout=90)[0]
    assert proc.returncode == 0, out[-2000:]
    assert out.rstrip().endswith("stopped"), out[-2000:]
