"""Report ingest benchmark against PostGIS: N devices send reports and wait for each acknowledgement.

    .venv/bin/python benchmarks/ingest.py --clients 200 --reports 20000

Creates a scratch database (`tocsin_bench`, or `--database`), starts Tocsin in production mode (PostGIS, Redis, one
worker) on loopback with the rate limits lifted, and runs a load generator in its own process: each device sends its
reports one after another over the citizen socket, waiting for the `ack` (sent only after commit) before the next.
Prints reports per second, p50/p99 acknowledgement latency, the number lost (acknowledged but not in the database;
must be 0), the CPU time the server and the generator used meanwhile (a server near 100 % of one core is CPU-bound;
its time waiting for a CPU shows how busy the machine was) and the server's group commits (from its /metrics). Then a
floor: the same number of rows inserted straight into a copy of the table with asyncpg, in batches.
With `--profile FILE` the server runs under cProfile (in CPU time) and writes its statistics there when it stops
(read them with `python -m pstats FILE`); its figures are then slower than without. Loopback only; bounded in count
and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from measure import percentile

from tocsin.testing import free_port, wait_healthy, without_tocsin_settings

REPO = Path(__file__).resolve().parents[1]
DEADLINE_SECONDS = 600


# The server under cProfile, timed in CPU time: SQLAlchemy's greenlets keep frames "running" while they wait for the
# database, so a wall-clock profile would show waiting as work.
PROFILED_SERVER = """
import cProfile, runpy, sys, time
profile = cProfile.Profile(time.process_time)
out, sys.argv = sys.argv[1], ["tocsin", *sys.argv[2:]]
try:
    profile.runcall(runpy.run_module, "tocsin.cli", run_name="__main__")
except (SystemExit, KeyboardInterrupt):
    pass
finally:
    profile.dump_stats(out)
"""


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a running process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runqueue_seconds(pid: int) -> float:
    """Time the process's main thread was ready to run but waited for a CPU (other processes had them)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def group_commits(exposition: str) -> tuple[float, float, float]:
    """(transactions, reports committed, seconds spent writing) from the server's /metrics."""
    values: dict[str, float] = {}
    for line in exposition.splitlines():
        name, _, value = line.partition(" ")
        if name in (
            "tocsin_report_ingest_seconds_count",
            "tocsin_report_ingest_seconds_sum",
            "tocsin_reports_ingested_total",
        ):
            values[name] = float(value)
    return (
        values.get("tocsin_report_ingest_seconds_count", 0.0),
        values.get("tocsin_reports_ingested_total", 0.0),
        values.get("tocsin_report_ingest_seconds_sum", 0.0),
    )


def children_cpu_seconds() -> float:
    """User and system CPU time of this process's finished (waited-for) children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def generator(url: str, clients: int, per_client: int, out: Path) -> None:
    import websockets

    latencies: list[float] = []
    acked: list[str] = []
    errors = [0]

    async def device(index: int) -> None:
        async with websockets.connect(url, compression=None, open_timeout=60) as ws:
            await ws.send(json.dumps({"type": "hello", "device_id": f"ingest-{index:06d}"}))
            while json.loads(await ws.recv())["type"] != "snapshot":
                pass
            for n in range(per_client):
                report_id = str(uuid.uuid4())
                message = {
                    "type": "report",
                    "id": report_id,
                    "category": "flooding",
                    "text": f"water level {n}",
                    "location": {"lon": 11.88 + index * 1e-5, "lat": 44.29 + n * 1e-6},
                    "observed_at": datetime.now(UTC).isoformat(),
                }
                started = time.perf_counter()
                await ws.send(json.dumps(message))
                while True:
                    answer = json.loads(await ws.recv())
                    if answer.get("id") == report_id:
                        break
                if answer["type"] == "ack":
                    latencies.append((time.perf_counter() - started) * 1000)
                    acked.append(report_id)
                else:
                    errors[0] += 1

    started = time.perf_counter()
    await asyncio.gather(*(device(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    out.write_text(json.dumps({"elapsed": elapsed, "latencies": latencies, "acked": acked, "errors": errors[0]}))


async def prepare_database(admin_url: str, name: str) -> str:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def floor(dsn: str, rows: int, batch: int = 500, connections: int = 4) -> float:
    """Raw batched inserts with asyncpg into a copy of the reports table: the most this database can take."""
    setup = await asyncpg.connect(dsn)
    await setup.execute("DROP TABLE IF EXISTS reports_floor")
    await setup.execute("CREATE TABLE reports_floor (LIKE reports INCLUDING DEFAULTS INCLUDING INDEXES)")
    await setup.close()
    now = datetime.now(UTC)
    statement = (
        "INSERT INTO reports_floor (id, client_id, device_id, category, text, lon, lat, geom, observed_at,"
        " received_at, status) VALUES ($1, $2, $3, 'flooding', $4, $5, $6, ST_SetSRID(ST_MakePoint($5, $6), 4326),"
        " $7, $7, 'new') ON CONFLICT (client_id) DO NOTHING"
    )
    counter = iter(range(1, rows + 1))

    async def insert(worker: int) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            while True:
                ids = [i for _, i in zip(range(batch), counter, strict=False)]
                if not ids:
                    return
                values = [(i, uuid.uuid4(), f"floor-{worker}", f"water level {i}", 11.88, 44.29, now) for i in ids]
                async with connection.transaction():
                    await connection.executemany(statement, values)
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(insert(w) for w in range(connections)))
    return rows / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--reports", type=int, default=20_000, help="in total")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres", help="admin DSN")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--database", default="tocsin_bench", help="scratch database (dropped and created)")
    parser.add_argument("--profile", help="write a cProfile of the server (pstats) to this file")
    parser.add_argument("--generator")
    parser.add_argument("--out")
    args = parser.parse_args()
    per_client = max(1, args.reports // args.clients)
    if args.generator:
        await generator(args.generator, args.clients, per_client, Path(args.out))
        return
    if not (1 <= args.clients <= 2_000 and 1 <= args.reports <= 200_000):
        parser.error("--clients up to 2000, --reports up to 200000")
    name = await prepare_database(args.postgres, args.database)
    dsn = args.postgres.rsplit("/", 1)[0] + f"/{name}"
    database_url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="tocsin-ingest-"))
    env = without_tocsin_settings(
        TOCSIN_MODE="production",
        TOCSIN_DATABASE_URL=database_url,
        TOCSIN_REDIS_URL=args.redis,
        TOCSIN_SECRET_KEY=secrets.token_urlsafe(48),
        TOCSIN_DATA_DIR=str(data_dir),
        TOCSIN_DEVICE_REPORTS_PER_MINUTE="1000000000",
        TOCSIN_IP_REPORTS_PER_MINUTE="1000000000",
        TOCSIN_DEVICE_MESSAGES_PER_MINUTE="1000000000",
        TOCSIN_IP_MESSAGES_PER_MINUTE="1000000000",
        TOCSIN_IP_NEW_DEVICES_PER_MINUTE="1000000000",
    )
    subprocess.run([sys.executable, "-m", "tocsin.cli", "db", "upgrade"], env=env, check=True, capture_output=True)
    log = (data_dir / "serve.log").open("w")
    serve = ["serve", "--port", str(port)]
    command = [sys.executable, "-m", "tocsin.cli", *serve]
    if args.profile:
        command = [sys.executable, "-c", PROFILED_SERVER, str(Path(args.profile).resolve()), *serve]
    server = subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server, seconds=60, log=data_dir / "serve.log")
        out = data_dir / "result.json"
        server_cpu, generator_cpu, wall = cpu_seconds(server.pid), children_cpu_seconds(), time.perf_counter()
        server_waited = runqueue_seconds(server.pid)
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--generator",
                f"ws://127.0.0.1:{port}/ws/citizen",
                "--clients",
                str(args.clients),
                "--reports",
                str(args.reports),
                "--out",
                str(out),
            ],
            check=True,
            timeout=DEADLINE_SECONDS,
        )
        wall = time.perf_counter() - wall
        server_cpu, generator_cpu = cpu_seconds(server.pid) - server_cpu, children_cpu_seconds() - generator_cpu
        server_waited = runqueue_seconds(server.pid) - server_waited
        result = json.loads(out.read_text())
        commits = group_commits(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    finally:
        # uvicorn re-raises SIGTERM after shutting down, which would kill cProfile before it writes; SIGINT ends the
        # server the same way and lets the profile be written.
        server.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
    connection = await asyncpg.connect(dsn)
    try:
        stored = {str(r["client_id"]) for r in await connection.fetch("SELECT client_id FROM reports")}
    finally:
        await connection.close()
    acked = result["acked"]
    lost = sum(1 for report_id in acked if report_id not in stored)
    latencies = result["latencies"]
    rate = len(acked) / result["elapsed"]
    print(
        f"clients {args.clients}, reports sent {args.clients * per_client}, acknowledged {len(acked)}, "
        f"errors {result['errors']}"
    )
    print(
        f"tocsin: {rate:.0f} reports/s  ack p50 {percentile(latencies, 50):.1f} ms  "
        f"p99 {percentile(latencies, 99):.1f} ms  lost {lost}"
    )
    print(
        f"cpu: server {server_cpu:.1f} s ({server_cpu / wall:.0%} of one core; "
        f"waited {server_waited:.1f} s for a cpu), "
        f"generator {generator_cpu:.1f} s ({generator_cpu / wall:.0%}), over {wall:.1f} s"
    )
    count, reports, seconds = commits
    if count:
        print(
            f"group commits: {count:.0f}, {reports / count:.1f} reports and {seconds / count * 1000:.1f} ms each "
            f"(the writer was busy {seconds / wall:.0%} of the time)"
        )
    floor_rate = await floor(dsn, len(acked) or args.reports)
    print(f"floor (asyncpg batched inserts): {floor_rate:.0f} rows/s   tocsin/floor {rate / floor_rate:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
