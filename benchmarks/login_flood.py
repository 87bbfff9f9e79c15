"""Login flood: wrong passwords from several clients while /healthz is timed.

    .venv/bin/python benchmarks/login_flood.py --clients 4 --attempts 95

Starts Tocsin embedded (SQLite, in a temporary directory) on loopback, creates one account, then `--clients`
concurrent clients send `--attempts` wrong passwords in all (for that account and for made-up ones) while a probe
times GET /healthz every 50 ms. Prints the answers by status (401 until the limits lock the account and the address,
then 429) and /healthz latency before and during the flood. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from tocsin.testing import free_port, wait_healthy, without_tocsin_settings

REPO = Path(__file__).resolve().parents[1]
DEADLINE_SECONDS = 120


async def probe(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    timings = []
    while not stop.is_set():
        started = time.perf_counter()
        await client.get("/healthz")
        timings.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.05)
    return timings


async def flood(base: str, clients: int, attempts: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        quiet = asyncio.Event()
        quiet_task = asyncio.create_task(probe(client, quiet))
        await asyncio.sleep(1.0)
        quiet.set()
        before = await quiet_task
        answers: Counter[int] = Counter()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(attempts):
            queue.put_nowait(n)

        async def attacker() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=30) as own:
                while not queue.empty():
                    n = queue.get_nowait()
                    name = "operator" if n % 2 else f"guess{n}"
                    answer = await own.post("/api/v1/auth/token", data={"username": name, "password": f"wrong {n}"})
                    answers[answer.status_code] += 1

        stop = asyncio.Event()
        during_task = asyncio.create_task(probe(client, stop))
        started = time.perf_counter()
        await asyncio.gather(*(attacker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        stop.set()
        during = await during_task
    print(f"{attempts} wrong sign-ins from {clients} clients in {elapsed:.1f} s: {dict(sorted(answers.items()))}")
    for label, timings in (("before", before), ("during", during)):
        print(
            f"/healthz {label}: p50 {statistics.median(timings):.1f} ms, max {max(timings):.1f} ms "
            f"({len(timings)} probes)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--attempts", type=int, default=95)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = without_tocsin_settings(TOCSIN_DATA_DIR=data_dir, PYTHONPATH=str(REPO / "backend"))
        subprocess.run([sys.executable, "-m", "tocsin.cli", "db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run(
            [sys.executable, "-m", "tocsin.cli", "users", "add", "operator", "--role", "operator", "--password-stdin"],
            env=env,
            input=b"a long enough password\n",
            check=True,
            capture_output=True,
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "tocsin.cli", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy(base, server, seconds=60)
            asyncio.run(asyncio.wait_for(flood(base, args.clients, args.attempts), DEADLINE_SECONDS))
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
