"""A plant simulator: an OPC UA server that plays a catalog dataset back in accelerated time.

Address space: ``Objects/<plant>/<line>/<asset>/<signal>``, where the line is the dataset's split
(C-MAPSS ``train`` / ``test``), node ids ``ns=2;s=<plant>/<line>/<asset>/<signal>``.

* ``runs`` datasets (C-MAPSS engines): every numeric column of a row becomes one value, all stamped
  with the row's source time; all assets advance together, ``speed`` rows per second.
* ``waveforms`` datasets (CWRU channels): each asset's segments are played as one ``vibration``
  signal at ``speed`` x its sample rate.

With ``historize`` the server answers HistoryRead for every variable. With ``history_log`` that
history is also appended to a file, so a restarted simulator (after kill -9) still serves it and
resumes playback where it stopped.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import logging
import time
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transferline.catalog import Catalog
from transferline.errors import DataError

from ._buffer import from_micros, to_micros

log = logging.getLogger("transferline.opcua.simulator")
NAMESPACE = "urn:transferline:simulator"
_RECORD = np.dtype([("stream", "<i4"), ("ts", "<i8"), ("value", "<f8")])


@dataclass
class SimulatorOptions:
    dataset: str
    endpoint: str = "opc.tcp://127.0.0.1:4840"
    speed: float = 10.0
    historize: bool = False
    history_log: Path | None = None
    split: str | None = None
    plants: list[str] = field(default_factory=list)
    max_assets: int | None = None
    signals: list[str] = field(default_factory=list)
    security: str = "none"  # none | sign | encrypt (Basic256Sha256)
    certificate: Path | None = None
    private_key: Path | None = None
    users: dict[str, str] = field(default_factory=dict, repr=False)  # username -> password; empty: anonymous


@dataclass
class Stream:
    """One variable's playback: its path and values per tick (NaN where the asset has ended)."""

    path: tuple[str, ...]
    values: np.ndarray


def load_streams(catalog: Catalog, options: SimulatorOptions) -> tuple[list[Stream], float]:
    """The variables to play and the number of ticks per second of simulated time."""
    manifest = catalog.manifest(options.dataset)
    table = catalog.read(options.dataset, split=options.split)
    if options.plants:
        table = table.filter(pc.is_in(table.column("plant"), pa.array(options.plants, pa.string())))
    if table.num_rows == 0:
        raise DataError(f"nothing to play: no rows for split {options.split!r} and plants {options.plants}",
                        key=options.dataset)
    keys = sorted(set(zip(*(table.column(c).to_pylist() for c in ("plant", "split", "asset")))),
                  key=lambda k: (k[0], k[1], _natural(k[2])))
    if options.max_assets:
        keys = keys[:options.max_assets]
    if manifest.kind == "runs":
        return _run_streams(table, keys, options), options.speed
    if manifest.kind == "waveforms":
        rates = set(table.column("sample_rate").to_pylist())
        if len(rates) != 1:
            raise DataError(f"waveforms with several sample rates {sorted(rates)} cannot share one clock",
                            key=options.dataset, field="sample_rate")
        return _waveform_streams(table, keys), rates.pop() * options.speed
    raise DataError(f"the simulator plays runs or waveforms datasets, not {manifest.kind!r}", key=options.dataset)


def _natural(text: str):
    return (0, int(text)) if text.isdigit() else (1, text)


def _run_streams(table, keys, options: SimulatorOptions) -> list[Stream]:
    fixed = {"split", "plant", "asset"}
    numeric = [f.name for f in table.schema if f.name not in fixed and
               (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))]
    signals = options.signals or numeric
    unknown = [s for s in signals if s not in numeric]
    if unknown:
        raise DataError(f"no numeric column {unknown[0]!r} (columns: {', '.join(numeric)})", key=options.dataset)
    table = table.sort_by([("plant", "ascending"), ("split", "ascending"), ("asset", "ascending"),
                           ("step", "ascending")])
    streams = []
    ids = list(zip(*(table.column(c).to_pylist() for c in ("plant", "split", "asset"))))
    order = {}
    for row, key in enumerate(ids):
        order.setdefault(key, []).append(row)
    length = max(len(order[k]) for k in keys)
    for key in keys:
        rows = np.asarray(order[key])
        for s in signals:
            col = table.column(s).take(rows).to_numpy(zero_copy_only=False).astype(np.float64)
            values = np.full(length, np.nan)
            values[:len(col)] = col
            streams.append(Stream((key[0], key[1], key[2], s), values))
    return streams


def _waveform_streams(table, keys) -> list[Stream]:
    table = table.sort_by([("segment", "ascending")])
    ids = list(zip(*(table.column(c).to_pylist() for c in ("plant", "split", "asset"))))
    chunks: dict[tuple, list] = {}
    values = table.column("values")
    for row, key in enumerate(ids):
        chunks.setdefault(key, []).append(values[row].values.to_numpy(zero_copy_only=False))
    series = {k: np.concatenate(chunks[k]).astype(np.float64) for k in keys}
    length = max(len(v) for v in series.values())
    out = []
    for key in keys:
        padded = np.full(length, np.nan)
        padded[:len(series[key])] = series[key]
        out.append(Stream((key[0], key[1], key[2], "vibration"), padded))
    return out


class PlaybackHistory:
    """History storage for the simulator: per-variable arrays in memory, optionally appended to a log.

    Implements asyncua's HistoryStorageInterface for data changes (events are not historized).
    """

    def __init__(self, node_ids: list, log_path: Path | None, max_page: int = 10_000) -> None:
        self.index = {nid: i for i, nid in enumerate(node_ids)}
        self.ts: list[list[int]] = [[] for _ in node_ids]
        self.values: list[list[float]] = [[] for _ in node_ids]
        self.max_page = max_page
        self.log_path = log_path
        self._log = None
        self._pending: list[tuple[int, int, float]] = []

    def load(self) -> int:
        """Reads an existing log; returns the number of ticks it holds per variable."""
        if not self.log_path or not self.log_path.exists():
            return 0
        raw = self.log_path.read_bytes()
        records = np.frombuffer(raw[:len(raw) - len(raw) % _RECORD.itemsize], dtype=_RECORD)
        for stream, ts, value in zip(records["stream"].tolist(), records["ts"].tolist(), records["value"].tolist()):
            self.ts[stream].append(ts)
            self.values[stream].append(value)
        return max((len(t) for t in self.ts), default=0)

    def append(self, stream: int, ts: int, value: float) -> None:
        self.ts[stream].append(ts)
        self.values[stream].append(value)
        if self.log_path:
            self._pending.append((stream, ts, value))

    def sync(self) -> None:
        """Appends the values since the last call to the log (the OS keeps them across kill -9)."""
        if not self._pending:
            return
        if self._log is None:
            self._log = open(self.log_path, "ab")
        self._log.write(np.array(self._pending, dtype=_RECORD).tobytes())
        self._log.flush()
        self._pending.clear()

    # -- asyncua HistoryStorageInterface -------------------------------------------------------
    async def init(self) -> None:
        pass

    async def stop(self) -> None:
        self.sync()
        if self._log:
            self._log.close()

    async def new_historized_node(self, node_id, period, count=0) -> None:
        pass

    async def save_node_value(self, node_id, datavalue) -> None:
        pass  # values are appended by the player, which knows their source time

    async def read_node_history(self, node_id, start, end, nb_values):
        from asyncua import ua

        i = self.index.get(node_id)
        if i is None:
            return [], None
        epoch = ua.get_win_epoch()
        ts, values = self.ts[i], self.values[i]
        lo = 0 if start is None or start == epoch else bisect.bisect_left(ts, to_micros(start))
        hi = len(ts) if end is None or end == epoch else bisect.bisect_right(ts, to_micros(end))
        limit = min(nb_values or self.max_page, self.max_page)
        cont = from_micros(ts[lo + limit]) if hi - lo > limit else None
        hi = min(hi, lo + limit)
        out = [ua.DataValue(ua.Variant(values[k], ua.VariantType.Double), SourceTimestamp=from_micros(ts[k]),
                            ServerTimestamp=from_micros(ts[k])) for k in range(lo, hi)]
        return out, cont

    async def new_historized_event(self, source_id, evtypes, period, count=0) -> None:
        pass

    async def save_event(self, event) -> None:
        pass

    async def read_event_history(self, source_id, start, end, nb_values, evfilter):
        return [], None


class PlantSimulator:
    """Builds the server, then plays the streams; ``run`` returns when playback ends or ``stop`` is set."""

    def __init__(self, catalog: Catalog, options: SimulatorOptions) -> None:
        self.options = options
        self.streams, self.rate = load_streams(catalog, options)
        self.length = len(self.streams[0].values)
        self.played = 0  # ticks published
        self.values_published = 0
        self.server = None
        self.history: PlaybackHistory | None = None
        self.ready = asyncio.Event()

    @property
    def total_values(self) -> int:
        return int(sum(np.isfinite(s.values).sum() for s in self.streams))

    async def _build(self):
        from asyncua import Server, ua

        opts = self.options
        server = Server()
        await server.init()
        server.set_endpoint(opts.endpoint)
        server.set_server_name("transferline plant simulator")
        await _configure_security(server, opts)
        idx = await server.register_namespace(NAMESPACE)
        folders: dict[tuple[str, ...], object] = {}
        built = from_micros(to_micros(datetime.now(timezone.utc)) - 1_000_000)
        self.nodes = []
        for stream in self.streams:
            parent = server.nodes.objects
            for depth in range(1, len(stream.path)):
                key = stream.path[:depth]
                if key not in folders:
                    folders[key] = await parent.add_object(ua.NodeId("/".join(key), idx), key[-1])
                parent = folders[key]
            node = await parent.add_variable(ua.NodeId("/".join(stream.path), idx), stream.path[-1],
                                             ua.Variant(0.0, ua.VariantType.Double))
            await server.write_attribute_value(node.nodeid, ua.DataValue(
                ua.Variant(0.0, ua.VariantType.Double),
                StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData), SourceTimestamp=built))
            await node.write_attribute(ua.AttributeIds.MinimumSamplingInterval, ua.DataValue(ua.Variant(0.0, ua.VariantType.Double)))
            self.nodes.append(node)
        if opts.historize:
            self.history = PlaybackHistory([n.nodeid for n in self.nodes], opts.history_log)
            self._check_log_header()
            self.played = self.history.load()
            server.iserver.history_manager.set_storage(self.history)
            for node in self.nodes:
                await node.write_attribute(ua.AttributeIds.Historizing, ua.DataValue(True))
                await node.set_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
                await node.set_attr_bit(ua.AttributeIds.UserAccessLevel, ua.AccessLevel.HistoryRead)
        return server

    def _check_log_header(self) -> None:
        path = self.options.history_log
        if not path:
            return
        header = {"dataset": self.options.dataset, "variables": ["/".join(s.path) for s in self.streams]}
        meta = path.with_name(path.name + ".json")
        if meta.exists():
            if json.loads(meta.read_text()) != header:
                raise DataError("the history log was written for other variables; delete it or pass another",
                                file=str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            meta.write_text(json.dumps(header))

    async def run(self, stop: asyncio.Event | None = None, *, linger: bool = False) -> int:
        """Plays every tick; with ``linger`` keeps serving (history included) until ``stop``."""
        from asyncua import ua

        stop = stop or asyncio.Event()
        self.server = await self._build()
        write = self.server.write_attribute_value
        good = ua.StatusCode(ua.StatusCodes.Good)
        async with self.server:
            self.ready.set()
            log.info("simulator at %s: %d variables, %d ticks at %.1f/s (from tick %d)", self.options.endpoint,
                     len(self.streams), self.length, self.rate, self.played)
            # resume: the clock restarts now, just after the newest historized value
            start = time.time() - self.played / self.rate
            last_us = max((t[-1] for t in self.history.ts if t), default=0) if self.history else 0
            while self.played < self.length and not stop.is_set():
                due = min(self.length, int((time.time() - start) * self.rate) + 1)
                batch = []
                for tick in range(self.played, due):
                    ts_us = max(int((start + tick / self.rate) * 1e6), last_us + 1)
                    last_us = ts_us
                    for i, stream in enumerate(self.streams):
                        value = stream.values[tick]
                        if value == value:  # NaN: this asset has ended
                            batch.append((i, ts_us, float(value)))
                if self.history is not None:  # history first: a value published is a value historized
                    for i, ts_us, value in batch:
                        self.history.append(i, ts_us, value)
                    self.history.sync()
                for n, (i, ts_us, value) in enumerate(batch):
                    if n % 500 == 499:  # NOTE: writes do not yield; let the server answer its clients
                        await asyncio.sleep(0)
                    stamp = from_micros(ts_us)
                    await write(self.nodes[i].nodeid, ua.DataValue(ua.Variant(value, ua.VariantType.Double),
                                                                   StatusCode=good, SourceTimestamp=stamp,
                                                                   ServerTimestamp=stamp))
                self.values_published += len(batch)
                self.played = max(self.played, due)
                next_due = start + self.played / self.rate
                await asyncio.sleep(max(0.0, min(0.05, next_due - time.time())))
            log.info("simulator: playback done, %d values", self.values_published)
            if linger:
                await stop.wait()
            if self.history is not None:
                await self.history.stop()
        return self.values_published


async def _configure_security(server, opts: SimulatorOptions) -> None:
    from asyncua import ua
    from asyncua.server.user_managers import UserManager
    from asyncua.crypto.permission_rules import User, UserRole

    if opts.security != "none":
        if not (opts.certificate and opts.private_key):
            raise ValueError("a secure simulator needs --cert and --key (a server certificate and its key)")
        policy = {"sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
                  "encrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt}[opts.security]
        server.set_security_policy([policy])
        from asyncua.crypto import uacrypto

        from ._security import _certificate_uris

        uris = _certificate_uris(await uacrypto.load_certificate(str(opts.certificate)))
        if uris:
            await server.set_application_uri(uris[0])
        await server.load_certificate(str(opts.certificate))
        await server.load_private_key(str(opts.private_key))
    else:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    if opts.users:
        users = dict(opts.users)

        class _Users(UserManager):
            def get_user(self, iserver, username=None, password=None, certificate=None):
                if username in users and password == users[username]:
                    return User(role=UserRole.User, name=username)
                return None

        server.iserver.user_manager = _Users()
        server.set_security_IDs(["Username"])
