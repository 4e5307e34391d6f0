"""Ports and readiness for the benchmarks that start the stack as separate processes.
Importing this has no side effects (unlike _harness, which sets Django up)."""

from __future__ import annotations

import socket
import time

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, seconds: float = 60.0) -> None:
    """Return once `url` answers at all; raise if it does not within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up within {seconds:.0f} s")
