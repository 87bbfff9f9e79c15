"""`tocsin serve` as a real subprocess on a free loopback port, for tests of what a user runs."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port


@dataclass
class Served:
    base: str
    port: int
    output: Path
    process: subprocess.Popen[bytes]

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")


def clean_environment(**settings: str) -> dict[str, str]:
    """This environment without Tocsin's settings and PYTHONPATH (so a test sees the defaults), plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_") and k != "PYTHONPATH"}
    env.update(settings)
    return env


@contextmanager
def serving(command: list[str], env: dict[str, str], cwd: Path, output: Path) -> Iterator[Served]:
    """Start `command` (a `tocsin serve` command line) with `--port P` added and wait for /healthz; on exit stop it
    with SIGTERM and wait for it to end, so `output` holds everything it wrote (stdout and stderr together)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT
        )
        served = Served(base=base, port=port, output=output, process=process)
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, served.text()
                assert time.monotonic() < deadline, "the server did not become ready:\n" + served.text()
                time.sleep(0.2)
            yield served
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
