"""Starting Ray Serve locally, quietly, on loopback."""

from __future__ import annotations


def start(host: str = "127.0.0.1", port: int = 8000, *, num_cpus: int | None = None) -> None:
    """A fresh embedded local Ray (or the cluster at $RAY_ADDRESS) and Serve's HTTP proxy."""
    from ray import serve

    from .._ray import ensure_ray

    ensure_ray(num_cpus=num_cpus)
    serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
