"""Starting Ray Serve locally, quietly, on loopback."""

from __future__ import annotations


def start(host: str = "127.0.0.1", port: int = 8000, *, num_cpus: int | None = None) -> None:
    """A fresh embedded local Ray (or the cluster at $RAY_ADDRESS) and Serve's HTTP proxy."""
    from ray import serve

    from .._ray import ensure_ray

    ensure_ray(num_cpus=num_cpus)
    serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})


def check_port_free(host: str, port: int) -> None:
    """Raises TransferlineError naming the port if something already listens there.

    # NOTE: Serve's HTTP proxy binds with SO_REUSEPORT, so a second server on a taken port would
    # start, print that it serves, and share the port with the first; a plain bind finds it taken.
    """
    import errno
    import socket

    from ..errors import TransferlineError

    if not 0 < port < 65536:
        raise TransferlineError(f"--port {port}: a port number from 1 to 65535")
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
                                        "pass --port") from None
            raise TransferlineError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
