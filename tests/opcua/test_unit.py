"""OPC UA pieces without a server: path mapping, the value buffer's dedupe and hold-back, the
subscription and HistoryRead parameters that avoid asyncua's traps, history paging, the publish
sink, state logging and credentials."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from transferline.connectors.opcua import PathMapping, Security, Variable, read_password
from transferline.connectors.opcua._buffer import NO_LIMIT, ValueBuffer, from_micros, to_micros
from transferline.errors import DataError


def _vars(n: int = 2) -> list[Variable]:
    return [Variable(f"ns=2;s=v{i}", ("P", "L", f"A{i}", "temp"), "P", "train", f"A{i}", "temp") for i in range(n)]


# -- mapping ---------------------------------------------------------------------------------------
def test_default_mapping_takes_plant_first_signal_last_and_asset_between():
    v = PathMapping.parse(None).apply("ns=2;i=7", ("North", "Line2", "Press4", "temp"), plant=None, split="train")
    assert (v.plant, v.asset, v.signal, v.split) == ("North", "Line2/Press4", "temp", "train")
    assert v.name == "North/Line2/Press4/temp"


def test_explicit_mapping_and_plant_override():
    m = PathMapping.parse("split=1,asset=2,signal=3")
    v = m.apply("x", ("FD001", "test", "7", "s2"), plant="site-a", split="train")
    assert (v.plant, v.split, v.asset, v.signal) == ("site-a", "test", "7", "s2")


def test_mapping_errors_name_the_node_and_the_bad_spec():
    with pytest.raises(DataError, match="node 'ns=2;i=9'.*no component 1:-1 for asset"):
        PathMapping.parse(None).apply("ns=2;i=9", ("Plant", "temp"), plant=None, split="train")
    with pytest.raises(ValueError, match="unknown part 'machine'"):
        PathMapping.parse("machine=1")
    with pytest.raises(ValueError, match="not an index"):
        PathMapping.parse("asset=two")


# -- buffer ----------------------------------------------------------------------------------------
def test_micros_round_trip_is_exact_and_naive_means_utc():
    t = datetime(2026, 11, 28, 1, 2, 3, 456789, tzinfo=timezone.utc)
    assert from_micros(to_micros(t)) == t
    assert to_micros(t.replace(tzinfo=None)) == to_micros(t)


def test_buffer_drops_values_at_or_before_the_watermark_and_repeats():
    buf = ValueBuffer(_vars(), watermarks={"P/L/A0/temp": 100})
    for ts in (90, 100, 101, 101, 102):
        buf.add(0, ts, float(ts), 0)
    buf.add(1, 5, 5.0, 0)
    table, watermark = buf.take()
    assert table.column("ts").cast("int64").to_pylist() == [101, 102, 5]
    assert table.column("asset").to_pylist() == ["A0", "A0", "A1"]
    assert buf.duplicates == 3
    assert watermark.tolist() == [102, 5]
    assert buf.watermark[0] == 100, "watermarks move only on commit, after the data is durable"
    buf.commit(watermark)
    assert buf.watermarks() == {"P/L/A0/temp": 102, "P/L/A1/temp": 5}


def test_buffer_holds_live_values_past_the_limit_until_backfill_ends():
    buf = ValueBuffer(_vars(1), watermarks={"P/L/A0/temp": 10})
    buf.limit[0] = 10
    buf.add(0, 50, 50.0, 0)  # live, arrives first
    table, wm = buf.take()
    assert table is None and len(buf) == 1
    buf.extend(0, np.array([11, 12]), np.array([11.0, 12.0]), np.zeros(2, np.uint64))  # history page
    buf.limit[0] = 12
    table, wm = buf.take()
    buf.commit(wm)
    assert table.column("value").to_pylist() == [11.0, 12.0] and len(buf) == 1
    buf.limit[0] = NO_LIMIT
    table, wm = buf.take()
    assert table.column("value").to_pylist() == [50.0]


def test_buffer_counts_good_nan_but_keeps_bad_nan():
    buf = ValueBuffer(_vars(1))
    buf.add(0, 1, float("nan"), 0)
    buf.add(0, 2, float("nan"), 0x80320000)
    table, _ = buf.take()
    assert table.num_rows == 1 and table.column("quality").to_pylist() == [0x80320000]
    assert buf.nonfinite == 1


# -- subscription parameters -----------------------------------------------------------------------
def test_monitored_items_carry_explicit_sampling_queue_and_timestamp_trigger():
    from asyncua import ua

    from transferline.connectors.opcua._session import monitored_item_requests, queue_size_for

    requests = monitored_item_requests(["ns=2;s=a", "ns=2;s=b"], sampling_ms=0.0, queue_size=210)
    params = [r.RequestedParameters for r in requests]
    assert [p.ClientHandle for p in params] == [1, 2]
    assert all(p.SamplingInterval == 0.0 and p.QueueSize == 210 for p in params)  # not asyncua's 50 ms / 0
    assert all(p.Filter.Trigger == ua.DataChangeTrigger.StatusValueTimestamp for p in params)
    # the queue holds two revised publishing intervals of samples
    assert queue_size_for(100.0, 0.0) == 210
    assert queue_size_for(1000.0, 10.0) == 210
    assert queue_size_for(500.0, 500.0) == 12


def test_history_parameters_keep_continuation_points():
    from asyncua import ua

    from transferline.connectors.opcua._history import raw_details, read_parameters

    assert ua.HistoryReadParameters().ReleaseContinuationPoints is True  # the trap
    now = datetime.now(timezone.utc)
    params = read_parameters(raw_details(now, now, 100), [ua.NodeId(1, 2)], [b"cp"])
    assert params.ReleaseContinuationPoints is False
    assert params.NodesToRead[0].ContinuationPoint == b"cp"
    assert params.HistoryReadDetails.NumValuesPerNode == 100


class _PagingServer:
    """Serves 250 values per node in pages of ``NumValuesPerNode`` with continuation points."""

    def __init__(self) -> None:
        self.uaclient = self
        self.requests = 0
        t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.data = [t0 + timedelta(seconds=k) for k in range(250)]

    async def history_read(self, params):
        from asyncua import ua

        self.requests += 1
        assert params.ReleaseContinuationPoints is False
        out = []
        size = params.HistoryReadDetails.NumValuesPerNode
        for node in params.NodesToRead:
            start = int(node.ContinuationPoint or b"0")
            res = ua.HistoryReadResult()
            res.HistoryData = ua.HistoryData()
            res.HistoryData.DataValues = [ua.DataValue(ua.Variant(float(k)), SourceTimestamp=self.data[k])
                                          for k in range(start, min(start + size, 250))]
            res.ContinuationPoint = str(start + size).encode() if start + size < 250 else None
            out.append(res)
        return out


def test_read_history_follows_every_continuation_point():
    from asyncua import ua

    from transferline.connectors.opcua._history import read_history

    server = _PagingServer()

    async def run():
        got = {}
        async for page in read_history(server, [ua.NodeId(1, 2), ua.NodeId(2, 2)], datetime.now(timezone.utc),
                                       datetime.now(timezone.utc), page_size=100):
            got.setdefault(page.index, []).extend(page.values.tolist())
        return got

    got = asyncio.run(run())
    assert got == {0: [float(k) for k in range(250)], 1: [float(k) for k in range(250)]}
    assert server.requests == 3  # both nodes per request, three pages each


def test_publish_sink_keeps_every_value_of_a_large_burst():
    from asyncua import ua

    from transferline.connectors.opcua._session import publish_sink

    buf = ValueBuffer(_vars(2))
    statuses = []
    sink = publish_sink(buf, statuses.append)
    now = datetime.now(timezone.utc)
    n = 20_000  # far beyond asyncua's iterator queue of 1,000
    items = [ua.MonitoredItemNotification(ClientHandle=1 + k % 2, Value=ua.DataValue(
        ua.Variant(float(k)), SourceTimestamp=now + timedelta(microseconds=k))) for k in range(n)]
    result = ua.PublishResult()
    result.NotificationMessage.NotificationData = [ua.DataChangeNotification(MonitoredItems=items),
                                                   ua.StatusChangeNotification(Status=ua.StatusCode(
                                                       ua.StatusCodes.BadTimeout))]
    asyncio.run(sink(result))
    assert len(buf) == n and buf.received == n
    assert statuses == ["BadTimeout"]
    table, _ = buf.take()
    assert table.num_rows == n


def test_state_log_says_each_change_once(caplog):
    from transferline.connectors.opcua.capture import _StateLog

    state = _StateLog()
    with caplog.at_level(logging.INFO, logger="transferline.opcua"):
        for _ in range(10):
            state.set("down", "lost", logging.WARNING)
        state.set("up", "back")
        state.set("up", "back")
    assert [r.getMessage() for r in caplog.records] == ["lost", "back"]


# -- security and credentials ----------------------------------------------------------------------
def test_security_settings_are_checked():
    with pytest.raises(ValueError, match="needs a client certificate"):
        Security("Basic256Sha256", "SignAndEncrypt")
    with pytest.raises(ValueError, match="needs mode Sign or SignAndEncrypt"):
        Security("Basic256Sha256", "None")
    with pytest.raises(ValueError, match="security policy 'Basic128'"):
        Security("Basic128", "Sign")
    assert "hunter2" not in repr(Security(username="op", password="hunter2"))


def test_password_from_file_or_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANT_PW", "from-env")
    assert read_password("PLANT_PW") == "from-env"
    (tmp_path / "pw").write_text("from-file\nignored\n")
    assert read_password("PLANT_PW", tmp_path / "pw") == "from-file"
    from transferline.connectors.opcua import OpcUaError

    with pytest.raises(OpcUaError, match="cannot read the password file"):
        read_password(None, tmp_path / "missing")


class _RevisingServer:
    """Revises the publishing interval to 500 ms and grants what the items ask for."""

    def __init__(self) -> None:
        self.uaclient = self
        self.items = []

    async def create_subscription(self, params, callback):
        from asyncua import ua

        return ua.CreateSubscriptionResult(SubscriptionId=7, RevisedPublishingInterval=500.0)

    async def create_monitored_items(self, params):
        from asyncua import ua

        self.items += params.ItemsToCreate
        return [ua.MonitoredItemCreateResult(StatusCode=ua.StatusCode(), RevisedSamplingInterval=10.0,
                                             RevisedQueueSize=r.RequestedParameters.QueueSize)
                for r in params.ItemsToCreate]


def test_subscribe_sizes_queues_from_the_revised_publishing_interval():
    from transferline.connectors.opcua._session import subscribe

    server = _RevisingServer()
    info = asyncio.run(subscribe(server, _vars(3), ValueBuffer(_vars(3)), sampling_ms=10.0, publishing_ms=100.0,
                                 queue_size=None, on_status=lambda s: None, chunk=2))
    assert info.publishing_ms == 500.0
    assert {i.RequestedParameters.QueueSize for i in server.items} == {110}  # 500 / 10 x 2 + 10, not 100 / 10
    assert len(server.items) == 3


def test_simulator_plays_waveforms_as_one_vibration_signal_per_asset(catalog):
    import pyarrow as pa

    from transferline.catalog import IngestPlan, Part
    from transferline.connectors.opcua.simulator import SimulatorOptions, load_streams

    table = pa.table({"split": ["train"] * 3, "plant": ["cwru"] * 3, "asset": ["B007", "B007", "N"],
                      "segment": pa.array([1, 0, 0], pa.int64()), "sample_rate": [12000.0] * 3,
                      "label": ["B007", "B007", "N"],
                      "values": pa.array([[3.0, 4.0], [1.0, 2.0], [9.0]], pa.list_(pa.float32()))})
    catalog.ingest("wave", IngestPlan("waveforms", "test", "mem", [Part("k", "d", "mem", lambda: table)]))
    streams, rate = load_streams(catalog, SimulatorOptions("wave", speed=0.01))
    assert rate == pytest.approx(120.0)
    assert [s.path for s in streams] == [("cwru", "train", "B007", "vibration"), ("cwru", "train", "N", "vibration")]
    np.testing.assert_array_equal(streams[0].values, [1.0, 2.0, 3.0, 4.0])  # segments in order
    assert streams[1].values[0] == 9.0 and np.isnan(streams[1].values[1:]).all()
