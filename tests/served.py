"""`tocsin serve` as a real subprocess on a free loopback port, for tests of what a user runs."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tocsin.testing import free_port, wait_healthy, without_tocsin_settings


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
    env = without_tocsin_settings()
    env.pop("PYTHONPATH", None)
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
            wait_healthy(base, process, seconds=90, log=output)
            yield served
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
