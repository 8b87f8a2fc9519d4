"""Starting or joining Ray the same way for training and serving."""

from __future__ import annotations

import os


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Joins the running Ray of this process, the cluster at ``address`` or $RAY_ADDRESS, or starts a
    fresh embedded local Ray on loopback."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # NOTE: keep a local driver on loopback rather than the machine's eth0 address.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(address=address or "local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False, **({} if address else {"_node_ip_address": "127.0.0.1"}))
