"""Starting Ray and Ray Serve locally, quietly, on loopback."""

from __future__ import annotations

import os


def start(host: str = "127.0.0.1", port: int = 8000, *, num_cpus: int | None = None) -> None:
    """A fresh embedded local Ray (or the cluster at $RAY_ADDRESS) and Serve's HTTP proxy."""
    import ray
    from ray import serve

    # NOTE: keep the driver on loopback rather than the machine's eth0 address.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", num_cpus=num_cpus, include_dashboard=False,
                 log_to_driver=False, configure_logging=False, _node_ip_address="127.0.0.1")
    serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
