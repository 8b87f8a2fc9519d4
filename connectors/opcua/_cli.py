"""`transferline ingest opcua | opcua-history`, `transferline simulate` and `transferline opcua-cert`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from datetime import datetime, timezone
from pathlib import Path

from transferline.errors import TransferlineError

COMMANDS = ("opcua", "opcua-history")


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", required=True, help="opc.tcp://HOST:PORT[/path]")
    p.add_argument("--name", required=True, help="catalog dataset (kind timeseries) to append to")
    p.add_argument("--catalog", metavar="DIR", help="catalog directory (default: $TRANSFERLINE_HOME or ./transferline-data)")
    p.add_argument("--browse-root", metavar="PATH", help="start browsing at Objects/PATH (browse names, '/'-separated)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="only variables whose browse path matches (fnmatch; repeatable)")
    p.add_argument("--plant", help="plant name for every variable (default: from the browse path)")
    p.add_argument("--split", default="train", help="split column value (default train)")
    p.add_argument("--map", dest="mapping", metavar="SPEC",
                   help="browse path → catalog columns, e.g. plant=0,split=1,asset=2,signal=3 "
                        "(default plant=0,asset=1:-1,signal=-1)")
    sec = p.add_argument_group("security")
    sec.add_argument("--security-policy", default="None", choices=["None", "Basic256Sha256"],
                     help="message security policy (default None; Basic256Sha256 needs --cert and --key)")
    sec.add_argument("--security-mode", default=None, choices=["None", "Sign", "SignAndEncrypt"],
                     help="default SignAndEncrypt when a policy is set")
    sec.add_argument("--cert", type=Path, help="client certificate (DER or PEM)")
    sec.add_argument("--key", type=Path, help="client private key (PEM)")
    sec.add_argument("--trust", type=Path, action="append", default=[],
                     help="trusted server certificate file or folder (repeatable); others are refused")
    sec.add_argument("--user", help="user name for the session")
    sec.add_argument("--password-env", default="TRANSFERLINE_OPCUA_PASSWORD", metavar="VAR",
                     help="environment variable holding the password (default TRANSFERLINE_OPCUA_PASSWORD)")
    sec.add_argument("--password-file", type=Path, help="file whose first line is the password")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="log asyncua's own messages too")


def ingest_parser(command: str) -> argparse.ArgumentParser:
    if command == "opcua":
        p = argparse.ArgumentParser(prog="transferline ingest opcua",
                                    description="Capture live values over OPC UA into a timeseries dataset, with "
                                                "reconnect and history backfill. Runs until --duration or SIGINT/SIGTERM.")
        _connection_args(p)
        p.add_argument("--sampling-ms", type=float, default=0.0,
                       help="monitored-item sampling interval (default 0: every change)")
        p.add_argument("--publishing-ms", type=float, default=100.0, help="subscription publishing interval")
        p.add_argument("--queue-size", type=int, help="server queue per item (default: from the revised intervals)")
        p.add_argument("--flush-s", type=float, default=0.5, help="write to the catalog at least this often")
        p.add_argument("--duration", type=float, help="seconds to capture (default: until interrupted)")
        p.add_argument("--since", help="ISO time: on a variable's first capture, also read its history from then")
        p.add_argument("--compact-files", type=int, default=256, metavar="N",
                       help="merge the dataset's small per-flush files once it holds N (default 256)")
        return p
    p = argparse.ArgumentParser(prog="transferline ingest opcua-history",
                                description="Read raw history (HistoryRead) of every matching variable into a "
                                            "timeseries dataset.")
    _connection_args(p)
    p.add_argument("--start", required=True, help="ISO time, e.g. 2026-11-01T00:00:00Z")
    p.add_argument("--end", help="ISO time (default: now)")
    return p


def _security(args):
    from ._security import Security, read_password

    mode = args.security_mode or ("SignAndEncrypt" if args.security_policy != "None" else "None")
    password = read_password(args.password_env, args.password_file) if args.user else None
    return Security(args.security_policy, mode, args.cert, args.key, list(args.trust), args.user, password)


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # NOTE: asyncua logs a traceback every second while a server is unreachable; we log state changes.
    logging.getLogger("asyncua").setLevel(logging.INFO if verbose else logging.CRITICAL)


def run_ingest(command: str, argv: list[str]) -> int:
    from tqdm.auto import tqdm

    from transferline.catalog import Catalog

    from .capture import Capture, CaptureOptions

    args = ingest_parser(command).parse_args(argv)
    _logging(args.verbose)
    catalog = Catalog(args.catalog)
    try:
        security = _security(args)
    except ValueError as exc:
        raise TransferlineError(str(exc)) from None
    common = dict(endpoint=args.endpoint, name=args.name, browse_root=args.browse_root, include=args.include,
                  plant=args.plant, split=args.split, mapping=args.mapping, security=security, verbose=args.verbose)
    if command == "opcua-history":
        end = _parse_time(args.end) if args.end else datetime.now(timezone.utc)
        with tqdm(desc=f"history → {args.name}", unit=" values", disable=args.quiet) as bar:
            stats = asyncio.run(Capture(CaptureOptions(**common), catalog, progress=bar).history(
                _parse_time(args.start), end))
        print(f"{args.name}: {stats.written:,} values from history ({stats.duplicates:,} already there, "
              f"{stats.gaps} variables without history) in {stats.seconds:.1f} s")
        return 0
    options = CaptureOptions(**common, sampling_ms=args.sampling_ms, publishing_ms=args.publishing_ms,
                             queue_size=args.queue_size, flush_s=args.flush_s, duration_s=args.duration,
                             since=_parse_time(args.since) if args.since else None, compact_files=args.compact_files)
    with tqdm(desc=f"opcua → {args.name}", unit=" values", disable=args.quiet) as bar:
        stats = asyncio.run(_capture_until_signal(Capture(options, catalog, progress=bar)))
    s = stats.summary()
    print(f"{args.name}: {s['written']:,} values written from {s['variables']} variables in {s['seconds']:.1f} s "
          f"({s['duplicates']:,} duplicates dropped, {s['backfilled']:,} from history, {s['gaps']} gaps, "
          f"{s['connects']} connections)")
    return 0


async def _capture_until_signal(capture):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await capture.run(stop)


def _parse_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TransferlineError(f"time {text!r} is not ISO 8601 (e.g. 2026-11-01T00:00:00Z)") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def add_simulate_parser(sub) -> None:
    p = sub.add_parser("simulate", help="serve a catalog dataset over OPC UA, played back in accelerated time")
    p.add_argument("--dataset", required=True, help="a runs (C-MAPSS) or waveforms (CWRU) dataset")
    p.add_argument("--endpoint", default="opc.tcp://127.0.0.1:4840", help="where to listen (default opc.tcp://127.0.0.1:4840)")
    p.add_argument("--catalog", metavar="DIR", help="catalog directory (default: $TRANSFERLINE_HOME or ./transferline-data)")
    p.add_argument("--speed", type=float, default=10.0,
                   help="rows per second (runs) or multiple of the sample rate (waveforms)")
    p.add_argument("--historize", action="store_true", help="answer HistoryRead for every variable")
    p.add_argument("--history-log", type=Path, help="keep history in this file, so a restart resumes (implies --historize)")
    p.add_argument("--split", help="only this split")
    p.add_argument("--plant", action="append", default=[], help="only this plant (repeatable)")
    p.add_argument("--assets", type=int, help="only the first N assets")
    p.add_argument("--signals", help="comma-separated columns to publish (default: every numeric column)")
    p.add_argument("--security", default="none", choices=["none", "sign", "encrypt"],
                   help="Basic256Sha256 with Sign or SignAndEncrypt")
    p.add_argument("--cert", type=Path, help="server certificate (DER)")
    p.add_argument("--key", type=Path, help="server private key (PEM)")
    p.add_argument("--users-file", type=Path, help="file of user:password lines; sessions must log in")
    p.add_argument("--exit-when-done", action="store_true", help="stop when playback ends (default: keep serving)")


def run_simulate(args) -> int:
    from transferline.catalog import Catalog

    from .simulator import PlantSimulator, SimulatorOptions

    _logging(False)
    users = {}
    if args.users_file:
        for line in args.users_file.read_text().splitlines():
            if line.strip():
                name, _, password = line.partition(":")
                users[name.strip()] = password.strip()
    options = SimulatorOptions(args.dataset, args.endpoint, args.speed, args.historize or bool(args.history_log),
                               args.history_log, args.split, args.plant, args.assets,
                               [s.strip() for s in (args.signals or "").split(",") if s.strip()],
                               args.security, args.cert, args.key, users)
    simulator = PlantSimulator(Catalog(args.catalog), options)

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await simulator.run(stop, linger=not args.exit_when_done)

    published = asyncio.run(serve())
    print(f"simulator: {published:,} values published")
    return 0


def add_cert_parser(sub) -> None:
    p = sub.add_parser("opcua-cert", help="make a self-signed OPC UA application certificate and key")
    p.add_argument("--out", type=Path, required=True, help="folder for cert.der and key.pem")
    p.add_argument("--uri", default=None, help="application URI (default urn:transferline:client|server)")
    p.add_argument("--server", action="store_true", help="a server certificate (default: client)")


def run_cert(args) -> int:
    from ._security import make_certificate

    uri = args.uri or f"urn:transferline:{'server' if args.server else 'client'}"
    cert, key = args.out / "cert.der", args.out / "key.pem"
    asyncio.run(make_certificate(key, cert, uri, server=args.server))
    print(f"{cert}\n{key}")
    return 0
