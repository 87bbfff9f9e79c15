"""Helpers for driving a real Tocsin server from outside, shared by the tests (tests/) and the benchmarks
(benchmarks/): a free loopback port, an environment without Tocsin's own settings, and waiting until a started
server answers `/healthz`.

They live in the package because it is the one place both can import without sys.path tricks: pytest imports the
tests from the checkout (`tests.*`), while a benchmark runs as a script (`python benchmarks/x.py`), which puts only
benchmarks/ and the installed packages on sys.path. Nothing in the application imports this module; it needs only
the standard library and httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx

PROBE_TIMEOUT_SECONDS = 2.0


class ServerDidNotStart(RuntimeError):
    """The server exited, or did not answer `/healthz` in time; the message carries its log when one was given."""


def free_port() -> int:
    """A loopback TCP port nothing listens on right now (bound, then closed again)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def without_tocsin_settings(**settings: str) -> dict[str, str]:
    """This process's environment without Tocsin's settings (`TOCSIN_*`: a child sees the defaults), plus `settings`."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("TOCSIN_")}
    environment.update(settings)
    return environment


def wait_healthy(
    base: str,
    process: subprocess.Popen[bytes] | None = None,
    *,
    seconds: float = 60,
    log: Path | None = None,
    every: float = 0.1,
) -> float:
    """Poll `{base}/healthz` until it answers 200 and return the seconds that took; raise `ServerDidNotStart` when
    `process` exits first or `seconds` pass."""
    started = time.monotonic()
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/healthz", timeout=PROBE_TIMEOUT_SECONDS).status_code == 200:
                return time.monotonic() - started
        _refuse_to_wait_longer(base, process, started + seconds, log)
        time.sleep(every)


async def wait_healthy_async(
    base: str,
    process: subprocess.Popen[bytes] | None = None,
    *,
    seconds: float = 60,
    log: Path | None = None,
    every: float = 0.1,
) -> float:
    """`wait_healthy` for callers with an event loop running."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_SECONDS) as http:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{base}/healthz")).status_code == 200:
                    return time.monotonic() - started
            _refuse_to_wait_longer(base, process, started + seconds, log)
            await asyncio.sleep(every)


def _refuse_to_wait_longer(
    base: str, process: subprocess.Popen[bytes] | None, deadline: float, log: Path | None
) -> None:
    if process is not None and process.poll() is not None:
        raise ServerDidNotStart(f"the server at {base} exited ({process.returncode})" + _log_text(log))
    if time.monotonic() > deadline:
        raise ServerDidNotStart(f"the server at {base} did not answer /healthz in time" + _log_text(log))


def _log_text(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    return f"; its log ({log}):\n" + log.read_text(encoding="utf-8", errors="replace")
