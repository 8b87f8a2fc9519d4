"""Live OPC UA capture into a catalog ``timeseries`` dataset: every value once, across network
cuts, server restarts and crashes of the capture itself.

How: values are buffered and appended to the dataset by size or time; each append commits, in the
same atomic manifest write, the per-variable *watermark* (newest durable source timestamp). After
a reconnect or a restart, each variable's outage window (watermark → server now) is read back with
HistoryRead while live values past it wait; values at or before the watermark are dropped as
duplicates. A variable the server does not historize gets an explicit gap record instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from transferline.catalog import Catalog, IngestPlan, Part

from ._buffer import NO_LIMIT, NO_WATERMARK, ValueBuffer, from_micros, to_micros
from ._history import HistoryPage, NoHistory, read_history
from ._mapping import PathMapping, Variable
from ._security import OpcUaError, Security, apply_security
from ._session import browse_variables, subscribe

log = logging.getLogger("transferline.opcua")
STATE_KEY = "opcua"


@dataclass
class CaptureOptions:
    """What to capture and how. Times are in milliseconds unless named ``_s``."""

    endpoint: str
    name: str
    browse_root: str | None = None
    include: list[str] = field(default_factory=list)
    plant: str | None = None
    split: str = "train"
    mapping: str | None = None
    sampling_ms: float = 0.0  # 0: report every change the server sees
    publishing_ms: float = 100.0
    queue_size: int | None = None  # default: sized from the revised publishing interval
    flush_s: float = 0.5
    flush_values: int = 200_000
    compact_files: int = 256  # compact the dataset's small per-flush files once it holds this many
    duration_s: float | None = None
    since: datetime | None = None  # on a variable's first capture, also read its history from here
    backoff_max_s: float = 10.0
    timeout_s: float = 4.0
    verbose: bool = False  # let asyncua log (it logs a traceback a second while a server is down)
    security: Security = field(default_factory=Security)


@dataclass
class CaptureStats:
    variables: int = 0
    received: int = 0
    written: int = 0
    duplicates: int = 0
    overflows: int = 0
    nonfinite: int = 0
    flushes: int = 0
    connects: int = 0
    backfilled: int = 0
    gaps: int = 0
    seconds: float = 0.0
    latency_ms: list[float] = field(default_factory=list, repr=False)  # sampled source→durable

    def summary(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "latency_ms"}
        if self.latency_ms:
            out["latency_p50_ms"], out["latency_p99_ms"] = (float(np.percentile(self.latency_ms, q)) for q in (50, 99))
        return out


class ConnectionLost(Exception):
    pass


class _StateLog:
    """Logs the connection state once per change, never once per retry."""

    def __init__(self) -> None:
        self.state = None

    def set(self, state: str, message: str, level: int = logging.INFO) -> None:
        if state != self.state:
            self.state = state
            log.log(level, message)


class Capture:
    """One capture of ``options.endpoint`` into dataset ``options.name`` of ``catalog``."""

    def __init__(self, options: CaptureOptions, catalog: Catalog, progress=None) -> None:
        self.options = options
        self.catalog = catalog
        self.mapping = PathMapping.parse(options.mapping)
        self.session = uuid.uuid4().hex[:12]
        self.stats = CaptureStats()
        self.variables: list[Variable] | None = None
        self.buffer: ValueBuffer | None = None
        self.gaps: list[dict] = []
        self._seq = 0
        self._progress = progress
        self._state = _StateLog()
        self._backfill: asyncio.Task | None = None

    # -- durable state ---------------------------------------------------------------------------
    def _saved_state(self) -> dict:
        if not self.catalog.exists(self.options.name):
            return {}
        manifest = self.catalog.manifest(self.options.name)
        if manifest.kind != "timeseries":
            raise OpcUaError(f"dataset {self.options.name!r} is of kind {manifest.kind!r}; OPC UA capture writes "
                             "a timeseries dataset")
        return manifest.extra.get(STATE_KEY, {})

    async def flush(self) -> int:
        """Appends the writable buffered values and their watermarks in one atomic commit.

        The buffer is cut here, on the event loop; only the Parquet and manifest writes run in a
        thread, so publish callbacks never race the cut.
        """
        table, watermark = self.buffer.take()
        if table is None:
            return 0
        self._seq += 1
        key = f"opcua/{self.session}/{self._seq:06d}"
        state = {"endpoint": self.options.endpoint, "mapping": self.mapping.text,
                 "watermarks": self.buffer.watermarks(watermark), "gaps": list(self.gaps),
                 "variables": {v.name: v.node_id for v in self.variables}}
        plan = IngestPlan(kind="timeseries", reader="opcua", source=self.options.endpoint,
                          parts=[Part(key, hashlib.sha256(key.encode()).hexdigest(), self.options.endpoint,
                                      lambda: table)],
                          extra={STATE_KEY: state})
        result = await asyncio.to_thread(self.catalog.ingest, self.options.name, plan, append=True)
        self.buffer.commit(watermark)
        if len(result.manifest.files) >= self.options.compact_files:
            # NOTE: each flush adds a file per partition and the manifest lists them all; left alone,
            # a capture of days would rewrite a manifest of tens of megabytes twice a second.
            await asyncio.to_thread(self.catalog.compact, self.options.name, merge_sources="opcua/")
        now = to_micros(datetime.now(timezone.utc))
        ts = table.column("ts").cast("int64").to_numpy()
        sample = ts if len(ts) <= 2000 else ts[np.linspace(0, len(ts) - 1, 2000).astype(int)]
        self.stats.latency_ms.extend(((now - sample) / 1000.0).tolist())
        self.stats.written += table.num_rows
        self.stats.flushes += 1
        if self._progress is not None:
            self._progress.update(table.num_rows)
        return table.num_rows

    # -- the loop ----------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> CaptureStats:
        """Captures until ``stop`` is set or the duration has passed; flushes before returning."""
        stop = stop or asyncio.Event()
        started = time.monotonic()
        deadline = started + self.options.duration_s if self.options.duration_s else None
        saved = self._saved_state()
        self.gaps = list(saved.get("gaps", []))
        from asyncua.ua import UaError

        backoff = 0.5
        with self._exclusive(), _quiet_asyncua(not self.options.verbose):
            while not stop.is_set() and not _past(deadline):
                connects = self.stats.connects
                try:
                    await self._session(saved.get("watermarks", {}), stop, deadline)
                    break
                except (ConnectionLost, OSError, asyncio.TimeoutError, ConnectionError, UaError) as exc:
                    if self.buffer is None:  # never got as far as subscribing
                        raise OpcUaError(f"cannot capture from {self.options.endpoint}: {_describe(exc)}") from None
                    self._state.set("down", f"connection to {self.options.endpoint} lost ({_describe(exc)}); "
                                            f"reconnecting with backoff up to {self.options.backoff_max_s:.0f} s",
                                    logging.WARNING)
                    await self.flush()
                    if self.stats.connects > connects:  # it had been up: start the backoff over
                        backoff = 0.5
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=backoff)
                    backoff = min(backoff * 2, self.options.backoff_max_s)
            if self.buffer is not None:
                await self.flush()
                self.stats.received = self.buffer.received
                self.stats.duplicates = self.buffer.duplicates
                self.stats.overflows = self.buffer.overflows
                self.stats.nonfinite = self.buffer.nonfinite
        self.stats.gaps = len(self.gaps)
        self.stats.seconds = time.monotonic() - started
        return self.stats

    async def _open(self, saved_watermarks: dict, lost: asyncio.Event):
        """A connected asyncua Client; browses the variables on the first connection."""
        from asyncua import Client, ua

        opts = self.options
        client = Client(opts.endpoint, timeout=opts.timeout_s)

        async def on_lost(exc: Exception) -> None:
            lost.set()

        client.connection_lost_callback = on_lost
        await apply_security(client, opts.security, opts.endpoint)
        try:
            await client.connect()
        except ua.UaStatusCodeError as exc:
            raise OpcUaError(f"{opts.endpoint} refused the session: {exc}") from None
        if self.variables is None:
            try:
                self.variables = await browse_variables(client, root=opts.browse_root, include=opts.include,
                                                        mapping=self.mapping, plant=opts.plant, split=opts.split)
            except BaseException:
                await _close(client)
                raise
            self.buffer = ValueBuffer(self.variables, saved_watermarks)
            if opts.since is not None:
                new = self.buffer.watermark == NO_WATERMARK
                self.buffer.watermark[new] = to_micros(opts.since) - 1
            self.stats.variables = len(self.variables)
            log.info("capturing %d variables from %s into %r", len(self.variables), opts.endpoint, opts.name)
        return client

    async def _session(self, saved_watermarks: dict, stop: asyncio.Event, deadline: float | None) -> None:
        from asyncua import ua

        opts = self.options
        lost = asyncio.Event()
        client = await self._open(saved_watermarks, lost)
        try:
            behind = np.flatnonzero(self.buffer.watermark != NO_WATERMARK)
            self.buffer.limit[behind] = self.buffer.watermark[behind]  # hold live values until backfilled
            await subscribe(client, self.variables, self.buffer, sampling_ms=opts.sampling_ms,
                            publishing_ms=opts.publishing_ms, queue_size=opts.queue_size,
                            on_status=lambda status: lost.set() if status.startswith("Bad") else None)
            self.stats.connects += 1
            self._state.set("up", f"connected to {opts.endpoint}")
            if len(behind):
                # NOTE: read to the newest value, not to the server's CurrentTime: servers refresh that
                # node about once a second, and values between it and the first live one would be lost.
                # The overlap with live values is dropped as duplicates.
                server_now = await client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_CurrentTime)).read_value()
                end = max(_aware(server_now), datetime.now(timezone.utc)) + timedelta(hours=1)
                self._backfill = asyncio.create_task(self._fill(client, behind, end))
            await self._pump(lost, stop, deadline)
        finally:
            if self._backfill is not None:
                self._backfill.cancel()
                with contextlib.suppress(BaseException):
                    await self._backfill
                self._backfill = None
            await _close(client)

    async def history(self, start: datetime, end: datetime) -> CaptureStats:
        """Reads every variable's raw history between ``start`` and ``end`` into the dataset."""
        started = time.monotonic()
        saved = self._saved_state()
        self.gaps = list(saved.get("gaps", []))
        with self._exclusive(), _quiet_asyncua(not self.options.verbose):
            client = await self._open(saved.get("watermarks", {}), asyncio.Event())
            try:
                indices = np.arange(len(self.variables))
                self.buffer.watermark[:] = np.maximum(self.buffer.watermark, to_micros(start) - 1)
                await self._fill(client, indices, end, flush_every=self.options.flush_values, gap_end=end)
                await self.flush()
            finally:
                await _close(client)
        self.stats.received, self.stats.duplicates = self.buffer.received, self.buffer.duplicates
        self.stats.gaps = len(self.gaps)
        self.stats.seconds = time.monotonic() - started
        return self.stats

    async def _pump(self, lost: asyncio.Event, stop: asyncio.Event, deadline: float | None) -> None:
        last = time.monotonic()
        while not stop.is_set() and not _past(deadline):
            if lost.is_set():
                raise ConnectionLost("the server stopped answering")
            if self._backfill is not None and self._backfill.done():
                self._backfill.result()  # re-raise a failed backfill
                self._backfill = None
            now = time.monotonic()
            if len(self.buffer) >= self.options.flush_values or now - last >= self.options.flush_s:
                await self.flush()
                last = now
            await asyncio.sleep(min(0.05, self.options.flush_s / 4))

    async def _fill(self, client, indices: np.ndarray, end: datetime, flush_every: int | None = None,
                    gap_end: datetime | None = None) -> None:
        """Reads each variable's outage window from history into the buffer, then releases its live values.

        Variables the server does not historize (no HistoryRead access bit, or a refused read) get
        a gap record instead.
        """
        start_us = int(self.buffer.watermark[indices].min())
        access = await _history_access(client, [self.variables[i].node_id for i in indices])
        for i, ok in zip(indices.tolist(), access):
            if not ok:
                self._record_gap(i, gap_end or datetime.now(timezone.utc), "no HistoryRead access")
                self.buffer.limit[i] = NO_LIMIT
        indices = indices[np.asarray(access, dtype=bool)]
        node_ids = [_node_id(self.variables[i].node_id) for i in indices]
        async for page in read_history(client, node_ids, from_micros(start_us), end):
            i = int(indices[page.index])
            if isinstance(page, NoHistory):
                self._record_gap(i, gap_end or datetime.now(timezone.utc), page.status)
                self.buffer.limit[i] = NO_LIMIT
                continue
            assert isinstance(page, HistoryPage)
            self.buffer.extend(i, page.micros, page.values, page.quality)
            self.stats.backfilled += len(page.micros)
            self.buffer.limit[i] = max(int(self.buffer.limit[i]), int(page.micros.max()))
            if flush_every and len(self.buffer) >= flush_every:
                await self.flush()
        self.buffer.limit[indices] = NO_LIMIT
        log.info("backfilled %d variables from history", len(indices))

    def _record_gap(self, i: int, end: datetime, status: str) -> None:
        v = self.variables[i]
        start = from_micros(int(self.buffer.watermark[i])).isoformat()
        gap = {"variable": v.name, "node": v.node_id, "start": start, "end": end.isoformat(), "reason": status}
        self.gaps.append(gap)
        log.warning("no history for %s (%s): gap %s → %s recorded", v.name, status, start, gap["end"])

    @contextlib.contextmanager
    def _exclusive(self):
        """One capture per dataset at a time; the lock dies with the process, so kill -9 frees it."""
        lock_dir = self.catalog.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{self.options.name}.capture", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OpcUaError(f"another capture is writing dataset {self.options.name!r}") from None
            yield


def gaps(catalog: Catalog, name: str):
    """The recorded gaps of a captured dataset as an Arrow table (variable, node, start, end, reason)."""
    import pyarrow as pa

    rows = catalog.manifest(name).extra.get(STATE_KEY, {}).get("gaps", [])
    return pa.Table.from_pylist(rows, schema=pa.schema([(k, pa.string()) for k in
                                                        ("variable", "node", "start", "end", "reason")]))


async def _history_access(client, node_ids: list[str]) -> list[bool]:
    """Whether each variable's AccessLevel grants HistoryRead."""
    from asyncua import ua

    values = await client.uaclient.read_attributes([_node_id(n) for n in node_ids], ua.AttributeIds.AccessLevel)
    return [bool(dv.Value is not None and dv.Value.Value is not None and dv.Value.Value & ua.AccessLevel.HistoryRead.mask)
            for dv in values]


async def _close(client) -> None:
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(client.disconnect(), timeout=2)


def _node_id(text: str):
    from asyncua import ua

    return ua.NodeId.from_string(text)


@contextlib.contextmanager
def _quiet_asyncua(quiet: bool):
    """Silences asyncua's own logging for the duration; our state log says what matters once."""
    logger = logging.getLogger("asyncua")
    level = logger.level
    if quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
