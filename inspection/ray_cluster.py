"""Ray itself for both archive engines: import it or name the fix, join or start a cluster.

`inspection.ray_engine` (a Ray Data job) and `inspection.ray_pool` (a standing pool) both use
these; Ray is imported only when a run starts, since it is an optional extra.
"""

from __future__ import annotations

import socket
from typing import Any

from inspection.errors import InspectionError

RAY_MISSING = "the ray engine needs Ray Data: pip install -e '.[ray]' (or ray[data]==2.60.0)"
# A local cluster (no --address) gets an object store of twice the run's image bytes (the
# input blocks and the rows coming back), at least this much.
LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024


class RayEngineError(InspectionError):
    """Ray is missing, the cluster cannot be reached or the job failed."""


def import_ray() -> Any:
    """The ray module, or a RayEngineError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayEngineError(RAY_MISSING) from exc
    return ray


def connect(ray: Any, address: str | None, workers: int, input_bytes: int = 0) -> bool:
    """Join the cluster at `address` or start a local one; True when this call started Ray."""
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
    if address is None:
        kwargs.update(
            num_cpus=workers,
            include_dashboard=False,
            object_store_memory=max(LOCAL_OBJECT_STORE_BYTES, 2 * input_bytes),
        )
    _check_reachable(address)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local cluster"
        raise RayEngineError(
            f"cannot connect to the Ray cluster at {where} ({exc}); start it with "
            "`ray start --head` or pass --address auto|ray://HOST:10001"
        ) from exc
    return True


def split_host_port(address: str) -> tuple[str, int]:
    """HOST:PORT, with an IPv6 host in brackets ([::1]:6379), as (host, port).

    ValueError when the port is not a number or an IPv6 host has no brackets."""
    if address.startswith("["):
        host, sep, port = address[1:].partition("]:")
        if not sep:
            raise ValueError("an IPv6 address needs its port after the brackets, e.g. [::1]:6379")
    else:
        host, _, port = address.rpartition(":")
        if ":" in host:
            raise ValueError("put an IPv6 host in brackets, e.g. [::1]:6379")
    if not port.isdigit():
        raise ValueError(f"port {port!r} is not a number")
    return host, int(port)


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """A HOST:PORT address must accept a connection within seconds; Ray itself waits minutes
    for a head that is not there."""
    if address is None or address == "auto" or "://" in address or ":" not in address:
        return
    try:
        host, port = split_host_port(address)
    except ValueError as exc:
        raise RayEngineError(
            f"--address {address}: not HOST:PORT ({exc}); pass --address HOST:PORT, "
            "auto or ray://HOST:10001"
        ) from exc
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise RayEngineError(
            f"--address {address}: no Ray head answers there ({exc}); start it with "
            "`ray start --head --port PORT` or pass --address auto|ray://HOST:10001"
        ) from exc
