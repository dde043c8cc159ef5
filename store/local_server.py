"""A server process on this machine, for the tests and benchmarks that start one: a free port,
the dashboard's command line, waiting until it answers, stopping it; the headless browser."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Debian's chromium (`make browser`), with the flags that keep a headless run quiet and offline.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class ServerNotHealthy(RuntimeError):
    """The server exited, or did not answer its health URL in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def streamlit_command(port: int) -> list[str]:
    """`streamlit run app/Home.py`, headless on 127.0.0.1:port (run it from the repo root)."""
    return [
        sys.executable, "-m", "streamlit", "run", "app/Home.py",
        "--server.headless", "true", "--server.port", str(port),
        "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip


def wait_healthy(
    health_url: str, server: subprocess.Popen, seconds: float, poll_s: float = 0.5
) -> None:
    """Return once `health_url` answers 200; ServerNotHealthy if `server` exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise ServerNotHealthy(f"the server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(health_url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(poll_s)
    raise ServerNotHealthy(f"{health_url} did not answer within {seconds:.0f} s")


def stop(server: subprocess.Popen, grace_s: float = 20) -> None:
    """Terminate, and kill what does not exit within `grace_s`."""
    server.terminate()
    try:
        server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)
