"""Prometheus metrics per model, recorded by every replica and exported by Ray's metrics agent on
each node (``transferline serve --metrics-port P``: ``http://HOST:P/metrics``, Ray's ``ray_``
prefix in front of each name):

* ``transferline_model_requests_total{model, code}``: predict requests by model (``name@version``)
  and HTTP status; requests for a model that does not exist count under ``model="-"``, so that
  unknown names cannot grow the label set.
* ``transferline_model_latency_ms{model}``: histogram of the time in the replica, from the request
  to its answer (validation, loading, queueing for a batch, the model, the JSON).
* ``transferline_model_batch_size{model}``: histogram of the samples (windows, images, texts) per
  call of the model, batched or not.

Ray adds ``deployment``, ``replica`` and ``application``; Prometheus aggregates over replicas.
"""

from __future__ import annotations

LATENCY_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128]
UNKNOWN = "-"


class ModelMetrics:
    """The three metrics of one replica (Ray's metric objects; cheap when collection is off)."""

    def __init__(self) -> None:
        from ray.serve import metrics

        self.requests = metrics.Counter("transferline_model_requests", description="predict requests by model and "
                                        "HTTP status", tag_keys=("model", "code"))
        self.latency = metrics.Histogram("transferline_model_latency_ms", description="time from request to answer "
                                         "in the replica, ms", boundaries=LATENCY_MS, tag_keys=("model",))
        self.batch = metrics.Histogram("transferline_model_batch_size", description="samples per call of the model",
                                       boundaries=BATCH_SIZES, tag_keys=("model",))

    def request(self, model: str | None, code: int, ms: float) -> None:
        model = model or UNKNOWN
        self.requests.inc(1, tags={"model": model, "code": str(code)})
        self.latency.observe(ms, tags={"model": model})

    def batch_of(self, model: str, samples: int) -> None:
        self.batch.observe(samples, tags={"model": model})
