"""Runs tracked in MLflow: the config as parameters, every epoch's metrics, the final metrics and
the run directory's files as artifacts.

Where: ``tracking.uri`` (``--mlflow-uri``), else ``MLFLOW_TRACKING_URI``, else a local ``./mlruns``
file store; ``tracking.mlflow: false`` (``--no-mlflow``) turns tracking off. Under Ray Train the run
is opened through Ray's ``setup_mlflow`` on rank 0 only. The run id goes to
``<run_dir>/mlflow.json``, from where registering the run copies it into the model's lineage: the
transferline model registry stays the serving source of truth, MLflow the record of how runs went.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

from ..errors import TransferlineError

RUN_FILE = "mlflow.json"
_PARAM_CHARS = 6000  # MLflow's limit on a parameter value


def tracking_uri(config: dict) -> str | None:
    """The tracking URI of ``config``'s run (a folder becomes a ``file:`` URI); None when tracking is off."""
    tracking = config.get("tracking") or {"mlflow": True}  # configs built in code may leave it out
    if not tracking["mlflow"]:
        return None
    uri = tracking.get("uri") or os.environ.get("MLFLOW_TRACKING_URI") or "mlruns"
    if ":" not in uri.split("/")[0] or Path(uri).drive:  # a folder, not scheme://...
        uri = Path(uri).expanduser().resolve().as_uri()
    return uri


def flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    """``config`` as MLflow parameters: dotted keys, values as text (JSON for lists), clipped."""
    out = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:_PARAM_CHARS]
    return out


def numeric(record: dict) -> dict[str, float]:
    """The numbers of a metrics record (no flags, no text)."""
    return {k: float(v) for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class MlflowRun:
    """One MLflow run beside one transferline run, written through an ``MlflowClient`` bound to its
    store (no process-wide MLflow state changes, so runs to other stores in the same process do not
    leak into each other); every call after the start only warns on failure, so that a tracking
    server going away never costs the training run."""

    def __init__(self, client, run_id: str, uri: str, experiment: str, experiment_id: str, fluent=None) -> None:
        self.client, self.run_id, self.uri = client, run_id, uri
        self.experiment, self.experiment_id = experiment, experiment_id
        self.fluent = fluent  # Ray's setup_mlflow leaves the run active in this worker: ended through it
        self._warned = False

    @classmethod
    def start(cls, config: dict, run_dir: Path, *, ray_worker: bool = False) -> MlflowRun | None:
        """Opens the run (rank 0's, under Ray Train); None when tracking is off or on other ranks."""
        uri = tracking_uri(config)
        if uri is None:
            return None
        if uri.startswith("file:"):
            # NOTE: MLflow 3 refuses its file store unless asked; a database store needs the full mlflow
            # package (sqlalchemy, alembic), the file store only mlflow-skinny
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        experiment = (config.get("tracking") or {}).get("experiment") or "transferline"
        tags = {"transferline.mode": config["mode"], "transferline.run_dir": str(Path(run_dir).resolve()),
                "transferline.dataset": str(config["data"]["dataset"]),
                "transferline.encoder": str(config["encoder"]["name"])}
        params = flat_params({k: v for k, v in config.items() if k not in ("tracking", "progress")})
        fluent = None
        try:
            import mlflow
            from mlflow.entities import Param

            client = mlflow.MlflowClient(tracking_uri=uri)
            if ray_worker:
                from ray.air.integrations.mlflow import setup_mlflow

                fluent = setup_mlflow(params, tracking_uri=uri, experiment_name=experiment, run_name=Path(run_dir).name,
                                      create_experiment_if_not_exists=True, tags=tags, rank_zero_only=True)
                run = fluent.active_run()
                if run is None:  # another rank: Ray's no-op module
                    return None
            else:
                found = client.get_experiment_by_name(experiment)
                experiment_id = found.experiment_id if found else client.create_experiment(experiment)
                parent = mlflow.active_run()  # nested under the caller's run when there is one (a sweep, a notebook)
                if parent is not None:
                    tags["mlflow.parentRunId"] = parent.info.run_id
                run = client.create_run(experiment_id, run_name=Path(run_dir).name, tags=tags)
                items = [Param(k, v) for k, v in params.items()]
                for i in range(0, len(items), 100):  # MLflow takes at most 100 parameters per batch
                    client.log_batch(run.info.run_id, params=items[i:i + 100])
        except Exception as exc:  # noqa: BLE001 - any store or connection failure, named for the user
            raise TransferlineError(f"MLflow tracking at {uri}: {type(exc).__name__}: {str(exc)[:300]} "
                                    "(--mlflow-uri another store, or --no-mlflow to train without tracking)") from None
        tracked = cls(client, run.info.run_id, uri, experiment, run.info.experiment_id, fluent)
        (Path(run_dir) / RUN_FILE).write_text(json.dumps(tracked.describe(), indent=2) + "\n")
        return tracked

    def describe(self) -> dict:
        return {"run_id": self.run_id, "tracking_uri": self.uri, "experiment": self.experiment,
                "experiment_id": self.experiment_id}

    def epoch(self, record: dict) -> None:
        self._metrics({k: v for k, v in numeric(record).items() if k != "epoch"}, step=int(record["epoch"]))

    def finish(self, metrics: dict, run_dir: Path) -> None:
        """Final metrics (``final/<name>``), the run directory's files, and status FINISHED."""
        self._metrics({f"final/{k}": v for k, v in numeric(metrics).items()}, step=0)
        self._safely(lambda: self.client.log_artifacts(self.run_id, str(run_dir)))
        self.end("FINISHED")

    def end(self, status: str) -> None:
        def close():
            active = self.fluent.active_run() if self.fluent is not None else None
            if active is not None and active.info.run_id == self.run_id:
                self.fluent.end_run(status)
            else:
                self.client.set_terminated(self.run_id, status)
        self._safely(close)

    def _metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._safely(lambda: self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step)
                                                                         for k, v in values.items()]))

    def _safely(self, call) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - tracking must not cost the run
            if not self._warned:
                warnings.warn(f"MLflow tracking at {self.uri} failed ({type(exc).__name__}: {str(exc)[:200]}); "
                              "training goes on, this run's record in MLflow is incomplete", stacklevel=2)
                self._warned = True
