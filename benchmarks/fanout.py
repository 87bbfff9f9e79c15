"""Fan-out benchmark: N real WebSocket devices on one Tocsin worker, one alert over about half of them.

    .venv/bin/python benchmarks/fanout.py --clients 10000

Starts Tocsin (embedded mode, one worker, a fresh data dir) on loopback, opens N citizen connections from a load
generator in its own process (spread over Karlsruhe), issues an alert whose area covers the western half, and prints
p50/p95/p99 delivery latency (from the issue call returning to each device's receipt), deliveries per second, and the
server's memory per idle connection. Then it measures a floor in the same way: a bare `websockets` server that only
calls `websockets.broadcast` to the same devices, and prints the ratio. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from measure import percentile, raise_fd_limit, rss_kib

from tocsin.testing import free_port, wait_healthy_async, without_tocsin_settings

REPO = Path(__file__).resolve().parents[1]
CITY = (8.30, 48.96, 8.50, 49.06)  # Karlsruhe: min lon, min lat, max lon, max lat
WEST_HALF = [
    [CITY[0], CITY[1]],
    [(CITY[0] + CITY[2]) / 2, CITY[1]],
    [(CITY[0] + CITY[2]) / 2, CITY[3]],
    [CITY[0], CITY[3]],
    [CITY[0], CITY[1]],
]
DEADLINE_SECONDS = 600


# ---- load generator (its own process) ---------------------------------------------------------------------------


async def generator(url: str, clients: int, mode: str, seed: int) -> None:
    """Connect `clients` devices, say READY, then record when each receives its alert; print the timestamps."""
    import websockets

    raise_fd_limit()
    rng = random.Random(seed)
    received: list[float] = []
    connections: list[Any] = []
    done = asyncio.Event()
    expected = [0]

    async def open_one(index: int) -> None:
        lon, lat = rng.uniform(CITY[0], CITY[2]), rng.uniform(CITY[1], CITY[3])
        if lon < (CITY[0] + CITY[2]) / 2:
            expected[0] += 1
        connection = await websockets.connect(url, compression=None, open_timeout=60, max_queue=64)
        if mode == "tocsin":
            hello = {"type": "hello", "device_id": f"bench-{seed}-{index:06d}", "location": {"lon": lon, "lat": lat}}
            await connection.send(json.dumps(hello))
            while json.loads(await connection.recv())["type"] != "snapshot":
                pass
        else:
            await connection.send(json.dumps({"lon": lon, "lat": lat}))
            await connection.recv()  # "ok"
        connections.append(connection)

    async def listen(connection: Any) -> None:
        try:
            async for _ in connection:
                received.append(time.time())
                if len(received) >= expected[0]:
                    done.set()
        except websockets.ConnectionClosed:
            return

    batch = 250
    for start in range(0, clients, batch):
        await asyncio.gather(*(open_one(i) for i in range(start, min(clients, start + batch))))
    listeners = [asyncio.create_task(listen(c)) for c in connections]
    # The generator's own garbage collection over 10,000 connections pauses it for hundreds of milliseconds at random
    # moments; that is noise in the measurement, not latency of the server, so it is off while measuring.
    gc.freeze()
    gc.disable()
    print(json.dumps({"ready": len(connections), "expected": expected[0]}), flush=True)
    try:
        await asyncio.wait_for(done.wait(), timeout=120)
    except TimeoutError:
        pass
    print(json.dumps({"received": received}), flush=True)
    for task in listeners:
        task.cancel()
    await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)


def start_generator(url: str, clients: int, mode: str) -> tuple[subprocess.Popen[str], dict[str, int]]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--generator", url, "--clients", str(clients), "--mode", mode],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=raise_fd_limit,
    )
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    return process, ready


def finish_generator(process: subprocess.Popen[str], t0: float) -> list[float]:
    assert process.stdout is not None
    result = json.loads(process.stdout.readline())
    process.wait(timeout=60)
    return [(t - t0) * 1000 for t in result["received"]]


# ---- floor: bare websockets.broadcast ---------------------------------------------------------------------------


FLOOR_SERVER = r"""
import asyncio, json, resource, sys, websockets
from websockets.asyncio.server import serve, broadcast
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
west = {}
async def handler(ws):
    first = json.loads(await ws.recv())
    if first.get("control"):
        async for _ in ws:
            targets = [c for c, lon in west.items() if lon < float(sys.argv[2])]
            broadcast(targets, MESSAGE)
            await ws.send("sent")
        return
    west[ws] = first["lon"]
    await ws.send("ok")
    try:
        await ws.wait_closed()
    finally:
        west.pop(ws, None)
MESSAGE = json.dumps({"type": "alert", "seq": 1, "headline": "x" * 120, "description": "y" * 400})
async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1]), compression=None, max_queue=64, backlog=4096):
        await asyncio.Future()
asyncio.run(main())
"""


async def run_floor(clients: int) -> tuple[list[float], int]:
    import websockets

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", FLOOR_SERVER, str(port), str((CITY[0] + CITY[2]) / 2)], preexec_fn=raise_fd_limit
    )
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.1)
        generator_process, ready = start_generator(f"ws://127.0.0.1:{port}", clients, "floor")
        async with websockets.connect(f"ws://127.0.0.1:{port}", compression=None) as control:
            await control.send(json.dumps({"control": True}))
            # The clock starts when the broadcast is asked for: frames can reach devices before the answer does.
            t0 = time.time()
            await control.send("go")
            await control.recv()
        return finish_generator(generator_process, t0), ready["expected"]
    finally:
        server.terminate()
        server.wait(timeout=20)


# ---- Tocsin ----------------------------------------------------------------------------------------------------


async def run_tocsin(clients: int, listener: str) -> tuple[list[float], int, float, float]:
    port, citizen_port = free_port(), free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
    env = without_tocsin_settings(
        TOCSIN_DATA_DIR=str(data_dir),
        TOCSIN_PUBLIC_URL=f"http://127.0.0.1:{port}",
        TOCSIN_IP_MESSAGES_PER_MINUTE="10000000",
        TOCSIN_IP_NEW_DEVICES_PER_MINUTE="10000000",
    )
    if listener == "lean":
        env["TOCSIN_CITIZEN_PORT"] = str(citizen_port)
    log = (data_dir / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "tocsin.cli", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        preexec_fn=raise_fd_limit,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            await wait_healthy_async(base, server, seconds=60, log=data_dir / "serve.log")
            output = (data_dir / "serve.log").read_text()
            credentials = dict(re.findall(r"^\s+(operator|approver)\s+(\S+)\s+roles:", output, re.M))
            tokens = {}
            for name in ("operator", "approver"):
                response = await http.post("/api/v1/auth/token", data={"username": name, "password": credentials[name]})
                tokens[name] = {"Authorization": f"Bearer {response.json()['access_token']}"}
            idle_before = rss_kib(server.pid)
            citizen_url = f"ws://127.0.0.1:{citizen_port if listener == 'lean' else port}/ws/citizen"
            generator_process, ready = start_generator(citizen_url, clients, "tocsin")
            await asyncio.sleep(2)  # let the server settle after the connection storm
            per_connection = (rss_kib(server.pid) - idle_before) / max(1, ready["ready"])
            body = {
                "status": "Actual",
                "info": [
                    {
                        "language": "de",
                        "category": ["Met"],
                        "event": "Hochwasser",
                        "urgency": "Immediate",
                        "severity": "Severe",
                        "certainty": "Observed",
                        "headline": "Hochwasser im Westen",
                        "description": "x" * 400,
                        "area": [{"areaDesc": "West", "geometry": {"type": "Polygon", "coordinates": [WEST_HALF]}}],
                    }
                ],
            }
            alert = (await http.post("/api/v1/alerts", json=body, headers=tokens["operator"])).json()
            await http.post(f"/api/v1/alerts/{alert['id']}/approve", headers=tokens["approver"])
            response = await http.post(f"/api/v1/alerts/{alert['id']}/issue", headers=tokens["approver"])
            t0 = time.time()
            assert response.status_code == 200, response.text
            latencies = finish_generator(generator_process, t0)
            return latencies, ready["expected"], per_connection, rss_kib(server.pid) / 1024
    finally:
        server.terminate()
        server.wait(timeout=30)


def report(name: str, latencies: list[float], expected: int) -> dict[str, float]:
    if not latencies:
        print(f"{name}: nothing delivered (expected {expected})")
        return {"p99": float("inf")}
    span = max(latencies) / 1000
    figures = {
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "rate": len(latencies) / span if span > 0 else float("inf"),
    }
    print(
        f"{name}: delivered {len(latencies)}/{expected}  p50 {figures['p50']:.0f} ms  p95 {figures['p95']:.0f} ms  "
        f"p99 {figures['p99']:.0f} ms  max {figures['max']:.0f} ms  {figures['rate']:.0f} deliveries/s"
    )
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--generator")
    parser.add_argument("--mode", default="tocsin")
    parser.add_argument(
        "--listener",
        choices=["lean", "asgi"],
        default="lean",
        help="lean: the websockets listener (TOCSIN_CITIZEN_PORT); asgi: /ws/citizen under uvicorn",
    )
    args = parser.parse_args()
    if args.generator:
        await generator(args.generator, args.clients, args.mode, seed=1)
        return
    if not 1 <= args.clients <= 15_000:
        parser.error("--clients must be between 1 and 15000")
    raise_fd_limit()
    started = time.monotonic()
    latencies, expected, per_connection, rss_mib = await asyncio.wait_for(
        run_tocsin(args.clients, args.listener), DEADLINE_SECONDS
    )
    print(f"clients {args.clients}, in the alert area {expected}, citizen endpoint: {args.listener}")
    tocsin = report("tocsin", latencies, expected)
    print(f"tocsin: server memory per idle connection {per_connection:.1f} KiB (RSS {rss_mib:.0f} MiB)")
    floor_latencies, floor_expected = await asyncio.wait_for(run_floor(args.clients), DEADLINE_SECONDS)
    floor = report("floor (websockets.broadcast)", floor_latencies, floor_expected)
    print(f"ratio p99 tocsin/floor: {tocsin['p99'] / floor['p99']:.2f}   (took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
