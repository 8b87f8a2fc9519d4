"""Raw HistoryRead for many variables at once, paged through continuation points.

# NOTE: two asyncua traps avoided here. ``ua.HistoryReadParameters`` defaults to
# ``ReleaseContinuationPoints=True``, which frees the server's continuation point with the first
# page (node-opcua then answers BadContinuationPointInvalid); and ``Node.read_raw_history`` with a
# value limit returns only its first page. We page ourselves, per node, until no node has a
# continuation point left.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ._buffer import to_micros
from ._security import OpcUaError

# Status codes meaning "this variable has no history here", as opposed to a failed read.
NOT_HISTORIZED = {"BadHistoryOperationUnsupported", "BadHistoryOperationInvalid", "BadNotReadable",
                  "BadNodeIdUnknown", "BadNotSupported"}


@dataclass
class HistoryPage:
    """Values of one variable from one HistoryRead response, in server order."""

    index: int
    micros: np.ndarray
    values: np.ndarray
    quality: np.ndarray


@dataclass
class NoHistory:
    """The server keeps no history of this variable (status names why)."""

    index: int
    status: str


def read_parameters(details, node_ids: list, continuation_points: list[bytes | None]):
    """HistoryReadParameters that keep continuation points alive for the next page."""
    from asyncua import ua

    params = ua.HistoryReadParameters()
    params.HistoryReadDetails = details
    params.TimestampsToReturn = ua.TimestampsToReturn.Both
    params.ReleaseContinuationPoints = False
    for node_id, cp in zip(node_ids, continuation_points):
        valueid = ua.HistoryReadValueId()
        valueid.NodeId = node_id
        valueid.IndexRange = ""
        valueid.ContinuationPoint = cp
        params.NodesToRead.append(valueid)
    return params


def raw_details(start: datetime, end: datetime, page_size: int):
    from asyncua import ua

    details = ua.ReadRawModifiedDetails()
    details.IsReadModified = False
    details.StartTime = start
    details.EndTime = end
    details.NumValuesPerNode = page_size
    details.ReturnBounds = False
    return details


async def read_history(client, node_ids: list, start: datetime, end: datetime, *,
                       page_size: int = 10_000, nodes_per_request: int = 64
                       ) -> AsyncIterator[HistoryPage | NoHistory]:
    """Yields pages of raw history for ``node_ids[i]`` (as ``index=i``) between ``start`` and ``end``."""
    details = raw_details(start, end, page_size)
    for lo in range(0, len(node_ids), nodes_per_request):
        pending = {i: None for i in range(lo, min(lo + nodes_per_request, len(node_ids)))}
        while pending:
            indices = list(pending)
            params = read_parameters(details, [node_ids[i] for i in indices], [pending[i] for i in indices])
            results = await client.uaclient.history_read(params)
            pending = {}
            for i, result in zip(indices, results):
                status = result.StatusCode
                if not status.is_good():
                    if status.name in NOT_HISTORIZED:
                        yield NoHistory(i, status.name)
                        continue
                    raise OpcUaError(f"node {node_ids[i].to_string()!r}: HistoryRead failed with {status.name}")
                data = result.HistoryData.DataValues if result.HistoryData else []
                if data:
                    yield page_from_datavalues(i, data)
                if result.ContinuationPoint and data:
                    pending[i] = result.ContinuationPoint
                elif result.ContinuationPoint:  # a server making no progress: stop, release it
                    await _release(client, details, node_ids[i], result.ContinuationPoint)


def page_from_datavalues(index: int, data) -> HistoryPage:
    micros = np.fromiter((to_micros(dv.SourceTimestamp or dv.ServerTimestamp) for dv in data), np.int64, len(data))
    values = np.fromiter((_as_float(dv) for dv in data), np.float64, len(data))
    quality = np.fromiter((dv.StatusCode.value if dv.StatusCode is not None else 0 for dv in data), np.uint64,
                          len(data))
    return HistoryPage(index, micros, values, quality)


def _as_float(dv) -> float:
    v = dv.Value.Value if dv.Value is not None else None
    return float(v) if v is not None else float("nan")


async def _release(client, details, node_id, cp: bytes) -> None:
    params = read_parameters(details, [node_id], [cp])
    params.ReleaseContinuationPoints = True
    await client.uaclient.history_read(params)
