"""Browsing an address space and subscribing to many variables with explicit parameters.

# NOTE: asyncua's ``Subscription.subscribe_data_change`` defaults to a 50 ms sampling interval
# and queue size 0 (one value per item between publishes), and its iterator mode drops the oldest
# notifications when its queue is full. We create monitored items with an explicit sampling
# interval and a queue sized from the server's *revised* publishing interval, and take publish
# results in a callback that appends every value to our own buffer, so nothing is dropped on the
# client side.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from collections.abc import Callable
from dataclasses import dataclass

from transferline.errors import DataError

from ._buffer import ValueBuffer, to_micros
from ._mapping import PathMapping, Variable, matches
from ._security import OpcUaError

log = logging.getLogger("transferline.opcua")

SERVER_OBJECT = "i=2253"
MAX_QUEUE = 10_000
# StatusCode info bits: InfoType=DataValue (0x400) with Overflow (0x80): the server's queue dropped values.
OVERFLOW = 0x480


async def browse_variables(client, *, root: str | None, include: list[str], mapping: PathMapping,
                           plant: str | None, split: str) -> list[Variable]:
    """Every numeric scalar variable below ``Objects/root`` (the Server object excluded) whose
    slash-joined browse path matches an ``include`` pattern."""
    from asyncua import ua

    node, path = client.nodes.objects, ()
    for part in filter(None, (root or "").split("/")):
        children = await node.get_children_descriptions(refs=ua.ObjectIds.HierarchicalReferences)
        found = [c for c in children if c.BrowseName.Name == part]
        if not found:
            names = ", ".join(sorted(c.BrowseName.Name for c in children)[:20]) or "none"
            raise OpcUaError(f"--browse-root {root!r}: no node {part!r} under {'/'.join(path) or 'Objects'} "
                             f"(children: {names})")
        node, path = client.get_node(found[0].NodeId), path + (part,)
    candidates: list[tuple[object, tuple[str, ...]]] = []
    seen = set()

    async def walk(parent, parent_path: tuple[str, ...]) -> None:
        for child in await parent.get_children_descriptions(refs=ua.ObjectIds.HierarchicalReferences):
            key = child.NodeId.to_string()
            if key in seen or key == SERVER_OBJECT:
                continue
            seen.add(key)
            child_path = parent_path + (child.BrowseName.Name,)
            if child.NodeClass == ua.NodeClass.Variable:
                candidates.append((child.NodeId, child_path))
            elif child.NodeClass == ua.NodeClass.Object:
                await walk(client.get_node(child.NodeId), child_path)

    await walk(node, path)
    candidates = [(nid, p) for nid, p in candidates if matches(p, include)]
    if not candidates:
        raise OpcUaError(f"no variable below Objects/{root or ''} matches {include or ['*']}")
    values = await client.read_values([client.get_node(nid) for nid, _ in candidates])
    variables, unmapped = [], []
    for (nid, p), v in zip(candidates, values):
        if not _numeric(v):
            continue
        try:
            variables.append(mapping.apply(nid.to_string(), p, plant=plant, split=split))
        except DataError as exc:
            unmapped.append(exc)
    if unmapped:
        log.warning("skipped %d variables whose browse path does not fit the mapping, e.g. %s", len(unmapped),
                    unmapped[0])
    if not variables:
        reason = f"; {unmapped[0]}" if unmapped else ""
        raise OpcUaError(f"{len(candidates)} variables match {include or ['*']}, none holds a numeric scalar "
                         f"that maps to (plant, asset, signal){reason}")
    names = [v.name for v in variables]
    if len(set((v.plant, v.split, v.asset, v.signal) for v in variables)) != len(variables):
        raise OpcUaError(f"two variables map to the same (plant, asset, signal) with mapping {mapping.text}; "
                         f"first paths: {names[:4]}")
    return variables


def _numeric(value) -> bool:
    return isinstance(value, (int, float, bool))


def queue_size_for(publishing_ms: float, sampling_ms: float) -> int:
    """Server-side queue per monitored item that holds one publishing interval of samples, twice over."""
    per_publish = publishing_ms / max(sampling_ms, 1.0)
    return int(min(MAX_QUEUE, max(10, math.ceil(per_publish) * 2 + 10)))


def subscription_parameters(publishing_ms: float):
    from asyncua import ua

    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = publishing_ms
    params.RequestedMaxKeepAliveCount = max(3, int(2000 / max(publishing_ms, 1.0)))
    params.RequestedLifetimeCount = params.RequestedMaxKeepAliveCount * 10
    params.MaxNotificationsPerPublish = 0  # no limit
    params.PublishingEnabled = True
    params.Priority = 0
    return params


def monitored_item_requests(node_ids: list, sampling_ms: float, queue_size: int) -> list:
    """One request per node, client handle = index + 1, with explicit sampling interval and queue."""
    from asyncua import ua

    requests = []
    for i, node_id in enumerate(node_ids):
        item = ua.ReadValueId()
        item.NodeId = ua.NodeId.from_string(node_id) if isinstance(node_id, str) else node_id
        item.AttributeId = ua.AttributeIds.Value
        params = ua.MonitoringParameters()
        params.ClientHandle = i + 1
        params.SamplingInterval = sampling_ms
        params.QueueSize = queue_size
        params.DiscardOldest = True
        # NOTE: the default trigger (StatusValue) skips a new sample equal to the previous one;
        # a sensor repeating a reading is still a sample, so report timestamp changes too.
        params.Filter = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
        request = ua.MonitoredItemCreateRequest()
        request.ItemToMonitor = item
        request.MonitoringMode = ua.MonitoringMode.Reporting
        request.RequestedParameters = params
        requests.append(request)
    return requests


def publish_sink(buffer: ValueBuffer, on_status: Callable[[str], None]):
    """The publish callback: every data change goes into ``buffer``; a status change is reported."""
    from asyncua import ua

    add = buffer.add

    async def callback(result) -> None:
        data = result.NotificationMessage.NotificationData
        if not data:
            return
        for notification in data:
            if isinstance(notification, ua.DataChangeNotification):
                for item in notification.MonitoredItems:
                    dv = item.Value
                    v = dv.Value.Value if dv.Value is not None else None
                    code = dv.StatusCode.value if dv.StatusCode is not None else 0
                    if code and code & OVERFLOW == OVERFLOW:
                        buffer.overflows += 1
                    add(item.ClientHandle - 1, to_micros(dv.SourceTimestamp or dv.ServerTimestamp or datetime.now(timezone.utc)),
                        float(v) if v is not None else math.nan, code)
            elif isinstance(notification, ua.StatusChangeNotification):
                on_status(notification.Status.name)

    return callback


@dataclass
class SubscriptionInfo:
    subscription_id: int
    publishing_ms: float
    sampling_ms: tuple[float, float]  # min, max revised
    queue_size: tuple[int, int]  # min, max revised


async def subscribe(client, variables: list[Variable], buffer: ValueBuffer, *, sampling_ms: float,
                    publishing_ms: float, queue_size: int | None, on_status: Callable[[str], None],
                    chunk: int = 1000) -> SubscriptionInfo:
    """Creates one subscription with a monitored item per variable; raises naming a refused node."""
    from asyncua import ua

    result = await client.uaclient.create_subscription(subscription_parameters(publishing_ms),
                                                       publish_sink(buffer, on_status))
    revised = result.RevisedPublishingInterval
    if revised != publishing_ms:
        log.info("server revised the publishing interval from %.0f to %.0f ms", publishing_ms, revised)
    queue = queue_size or queue_size_for(revised, sampling_ms)
    requests = monitored_item_requests([v.node_id for v in variables], sampling_ms, queue)
    sampled, queues = [], []
    for lo in range(0, len(requests), chunk):
        params = ua.CreateMonitoredItemsParameters()
        params.SubscriptionId = result.SubscriptionId
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        params.ItemsToCreate = requests[lo:lo + chunk]
        for i, r in enumerate(await client.uaclient.create_monitored_items(params), start=lo):
            if not r.StatusCode.is_good():
                raise OpcUaError(f"node {variables[i].node_id!r} ({variables[i].name}): monitored item refused "
                                 f"with {r.StatusCode.name}")
            sampled.append(r.RevisedSamplingInterval)
            queues.append(r.RevisedQueueSize)
    needed = queue_size_for(revised, min(sampled))
    if min(queues) < min(needed, queue):
        log.warning("server revised the monitored-item queue to %d (< %d needed for %.0f ms publishing at "
                    "%.0f ms sampling); fast signals may lose values between publishes", min(queues), needed,
                    revised, min(sampled))
    return SubscriptionInfo(result.SubscriptionId, revised, (min(sampled), max(sampled)), (min(queues), max(queues)))
