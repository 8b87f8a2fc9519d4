"""Basic256Sha256 with Sign and with SignAndEncrypt, a trust list for server certificates, and a
password that never appears on the command line or in the output."""

from __future__ import annotations

import pytest

from tests.conftest import assert_nothing_written

from .conftest import capture_args, cli, free_port, good_rows, simulator_args, stop, wait_port, wait_until

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pa55"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    for who, flag in (("server", ["--server"]), ("client", [])):
        proc = cli("opcua-cert", "--out", root / who, *flag)
        out = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, out
    (root / "users.txt").write_text(f"operator:{PASSWORD}\n")
    return root


def _secure_server(procs, source_catalog, pki, mode: str) -> int:
    port = free_port()
    procs.append(cli(*simulator_args(source_catalog, port, "--security", mode, "--cert", pki / "server/cert.der",
                                     "--key", pki / "server/key.pem", "--users-file", pki / "users.txt")))
    wait_port(port)
    return port


def _client_args(pki, *, trust=True, user="operator") -> list:
    args = ["--security-policy", "Basic256Sha256", "--cert", pki / "client/cert.der", "--key", pki / "client/key.pem",
            "--user", user]
    return args + (["--trust", pki / "server/cert.der"] if trust else [])


@pytest.mark.parametrize("server_mode,client_mode", [("encrypt", "SignAndEncrypt"), ("sign", "Sign")])
def test_secure_capture_with_a_trusted_server(source_catalog, tmp_path, procs, pki, server_mode, client_mode):
    port = _secure_server(procs, source_catalog, pki, server_mode)
    capture = cli(*capture_args(tmp_path, f"opc.tcp://127.0.0.1:{port}", "live", *_client_args(pki),
                                "--security-mode", client_mode), env={"TRANSFERLINE_OPCUA_PASSWORD": PASSWORD})
    procs.append(capture)
    wait_until(lambda: good_rows(tmp_path) > 200, 40, "values over the secure channel")
    out = stop(capture)
    assert capture.returncode == 0, out
    assert PASSWORD not in out
    assert PASSWORD not in " ".join(map(str, capture.args))


@pytest.mark.parametrize("case", ["untrusted server", "wrong password", "mode not offered"])
def test_refused_security_fails_clearly_and_writes_nothing(source_catalog, tmp_path, procs, pki, case):
    from transferline.catalog import Catalog

    port = _secure_server(procs, source_catalog, pki, "encrypt")
    args = _client_args(pki, trust=case != "untrusted server")
    if case == "mode not offered":
        args += ["--security-mode", "Sign"]
    password = "wrong" if case == "wrong password" else PASSWORD
    proc = cli(*capture_args(tmp_path, f"opc.tcp://127.0.0.1:{port}", "live", *args, "--duration", "5"),
               env={"TRANSFERLINE_OPCUA_PASSWORD": password})
    out = proc.communicate(timeout=40)[0]
    assert proc.returncode == 2, out
    expected = {"untrusted server": "is not in the trust list; pass --trust FILE",
                "wrong password": "refused the session",
                "mode not offered": "offers no Basic256Sha256/Sign endpoint"}[case]
    assert expected in out, out
    assert "Traceback" not in out and password not in out, out
    assert_nothing_written(Catalog(tmp_path), "live")
