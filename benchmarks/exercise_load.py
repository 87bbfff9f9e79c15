"""Exercise load benchmark: does a running exercise hold up real alerts?

    .venv/bin/python benchmarks/exercise_load.py --devices 2000 --public 200 --transport in_process

Starts Tocsin (embedded mode, one worker, scheduler in the process, a fresh data dir) on loopback and connects K
public devices (real WebSockets, from this process) inside Borgo Durbecco, an area of the romagna-river-flood
scenario. Then, phase by phase:

1. baseline: M Actual alerts over that area (drafted, approved by a second person, issued), one after another;
2. population: an exercise of that scenario with N synthetic citizens (in-process or over WebSockets) is created;
   timed until ~90 % of its connected share is online; two real alerts go out while they come up;
3. exercise: the exercise runs (injects, report waves, failures, scripted alerts and the citizens' answers) and the
   same M Actual alerts go out again, spread over the run;
4. stop: the exercise is stopped, timed until none of its devices is connected; two real alerts go out meanwhile.

For each real alert, latency runs from the moment the `issue` call returns to each public device's receipt (a device
can have it before the call returns: fan-out starts at commit); the time the operator's calls took (draft + approve,
issue) is printed too. Prints the figures, the server's CPU time per phase (/proc) and the server log's warnings and
errors. Loopback only; bounded in count and time (--max-seconds); the server is terminated in every case.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import shapely
import yaml
from measure import percentile, raise_fd_limit
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tocsin.testing import free_port, wait_healthy_async, without_tocsin_settings

REPO = Path(__file__).resolve().parents[1]
SCENARIO_ID = "romagna-river-flood"
AREA_ID = "borgo-durbecco"
PASSWORD = "bench-password-" + secrets.token_hex(8)
ONLINE_SHARE = 0.9  # of the scenario's connected share: "the population is up"
RECEIPT_TIMEOUT_SECONDS = 20.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- small helpers ----------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (fields 14 and 15 of /proc/<pid>/stat, after the command name)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def loopback_sockets(pid: int, port: int) -> int:
    """Established connections to `port` opened by process `pid` itself: the synthetic citizens that the server's
    exercise runner connects over WebSockets to its own /ws/citizen (their client ends belong to the server)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(entry.path)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "01" and int(parts[2].rsplit(":", 1)[1], 16) == port and parts[9] in inodes:
                    count += 1
    return count


def scenario_area() -> tuple[dict[str, Any], float]:
    """The GeoJSON polygon of the area the public devices live in, and the scenario's connected share."""
    document = yaml.safe_load((REPO / "scenarios" / f"{SCENARIO_ID}.yaml").read_text(encoding="utf-8"))
    area = next(a for a in document["areas"] if a["id"] == AREA_ID)
    return area["geometry"], float(document["population"]["behaviour"]["connected_share"])


def points_inside(geometry: dict[str, Any], count: int, rng: random.Random) -> list[tuple[float, float]]:
    shape = shapely.geometry.shape(geometry)
    min_x, min_y, max_x, max_y = shape.bounds
    points: list[tuple[float, float]] = []
    while len(points) < count:
        x, y = rng.uniform(min_x, max_x), rng.uniform(min_y, max_y)
        if shapely.contains_xy(shape, x, y):
            points.append((x, y))
    return points


# ---- the server -------------------------------------------------------------------------------------------------


class Server:
    def __init__(self, args: argparse.Namespace) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = Path(tempfile.mkdtemp(prefix="tocsin-exercise-bench-"))
        self.log_path = self.data_dir / "serve.log"
        self.env = without_tocsin_settings(
            TOCSIN_DATA_DIR=str(self.data_dir),
            TOCSIN_SECRET_KEY=secrets.token_urlsafe(36),  # 48 characters
            TOCSIN_RUN_SCHEDULER="true",
            TOCSIN_EXERCISE_MAX_DEVICES=str(max(args.devices, 5_000)),
            TOCSIN_EXERCISE_CITIZEN_URL=f"ws://127.0.0.1:{self.port}/ws/citizen",
            TOCSIN_PUBLIC_URL=self.base,
            TOCSIN_IP_MESSAGES_PER_MINUTE="10000000",  # the public devices share one address
            TOCSIN_IP_NEW_DEVICES_PER_MINUTE="10000000",
        )
        tocsin = REPO / ".venv" / "bin" / "tocsin"
        self.command = [str(tocsin)] if tocsin.exists() else [sys.executable, "-m", "tocsin.cli"]
        self.process: subprocess.Popen[bytes] | None = None

    def add_user(self, name: str, *roles: str) -> None:
        options = [part for role in roles for part in ("--role", role)]
        subprocess.run(
            [*self.command, "users", "add", name, *options, "--password-stdin"],
            input=f"{PASSWORD}\n",
            text=True,
            env=self.env,
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [*self.command, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                preexec_fn=raise_fd_limit,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_findings(self) -> list[str]:
        """Lines of the server log that are warnings, errors or parts of a traceback."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        keep = ("WARNING", "ERROR", "CRITICAL", "Traceback", "Error", "Exception")
        return [line for line in text.splitlines() if any(word in line for word in keep)]


async def sign_in(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    response = await http.post("/api/v1/auth/token", data={"username": name, "password": PASSWORD})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


# ---- the public devices -----------------------------------------------------------------------------------------


@dataclass
class PublicDevices:
    """K citizen connections; for each alert id, when (monotonic) each device received it."""

    connections: list[ClientConnection] = field(default_factory=list)
    receipts: dict[str, list[float]] = field(default_factory=dict)
    listeners: list[asyncio.Task[None]] = field(default_factory=list)

    async def open(self, url: str, points: list[tuple[float, float]]) -> None:
        async def open_one(index: int, lon: float, lat: float) -> ClientConnection:
            connection = await connect(url, compression=None, open_timeout=60, max_queue=64)
            hello = {
                "type": "hello",
                "device_id": f"bench-public-{index:05d}",
                "location": {"lon": lon, "lat": lat},
                "languages": ["it" if index % 4 else "en"],
            }
            await connection.send(json.dumps(hello))
            while json.loads(await connection.recv())["type"] != "snapshot":
                pass
            return connection

        for start in range(0, len(points), 100):
            batch = points[start : start + 100]
            self.connections += await asyncio.gather(
                *(open_one(start + i, lon, lat) for i, (lon, lat) in enumerate(batch))
            )
        self.listeners = [asyncio.create_task(self._listen(c)) for c in self.connections]

    async def _listen(self, connection: ClientConnection) -> None:
        try:
            async for frame in connection:
                at = time.monotonic()
                message = json.loads(frame)
                if message.get("type") == "alert":
                    self.receipts.setdefault(str(message["alert_id"]), []).append(at)
        except ConnectionClosed:
            pass

    async def wait_for(self, alert_id: str, timeout: float) -> list[float]:
        deadline = time.monotonic() + timeout
        while len(self.receipts.get(alert_id, [])) < len(self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return self.receipts.get(alert_id, [])

    async def close(self) -> None:
        for task in self.listeners:
            task.cancel()
        await asyncio.gather(*(c.close() for c in self.connections), return_exceptions=True)


# ---- real alerts ------------------------------------------------------------------------------------------------


@dataclass
class AlertRun:
    label: str
    alert_id: str
    prepare_ms: float  # drafting and approval
    issue_call_ms: float
    latencies_ms: list[float]  # from the issue call returning to each receipt
    expected: int


def alert_body(area: dict[str, Any], headline: str) -> dict[str, Any]:
    def info(language: str) -> dict[str, Any]:
        return {
            "language": language,
            "category": ["Met"],
            "event": "River flood",
            "responseType": ["Evacuate"],
            "urgency": "Immediate",
            "severity": "Severe",
            "certainty": "Observed",
            "headline": f"{headline} ({language})",
            "description": "The Lamone is over threshold 3 at Faenza. " * 8,
            "instruction": "Leave ground floors and basements now.",
            "expires": (datetime.now(UTC) + timedelta(hours=6)).isoformat(),
            "area": [{"areaDesc": "Borgo Durbecco", "geometry": area}],
        }

    return {"status": "Actual", "info": [info("it"), info("en")]}


async def issue_real_alert(
    http: httpx.AsyncClient, tokens: dict[str, dict[str, str]], area: dict[str, Any], devices: PublicDevices, label: str
) -> AlertRun:
    drafted = time.monotonic()
    draft = await http.post("/api/v1/alerts", json=alert_body(area, label), headers=tokens["operator"])
    draft.raise_for_status()
    alert_id = str(draft.json()["id"])
    (await http.post(f"/api/v1/alerts/{alert_id}/approve", headers=tokens["approver"])).raise_for_status()
    sent = time.monotonic()
    response = await http.post(f"/api/v1/alerts/{alert_id}/issue", headers=tokens["approver"])
    returned = time.monotonic()
    response.raise_for_status()
    received = await devices.wait_for(alert_id, RECEIPT_TIMEOUT_SECONDS)
    return AlertRun(
        label,
        alert_id,
        (sent - drafted) * 1000,
        (returned - sent) * 1000,
        [(t - returned) * 1000 for t in received],
        len(devices.connections),
    )


def alert_line(run: AlertRun) -> str:
    lat = run.latencies_ms
    head = f"  {run.label:<12} draft+approve {run.prepare_ms:7.1f} ms  issue call {run.issue_call_ms:7.1f} ms"
    if not lat:
        return f"{head}   delivered 0/{run.expected}"
    return (
        f"{head}   delivered {len(lat)}/{run.expected}   "
        f"p50 {percentile(lat, 50):7.1f} ms  p99 {percentile(lat, 99):7.1f} ms  max {max(lat):7.1f} ms"
    )


# ---- CPU sampling -----------------------------------------------------------------------------------------------


@dataclass
class CpuSampler:
    pid: int
    samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, cpu seconds)

    async def run(self) -> None:
        while True:
            self.samples.append((time.monotonic(), cpu_seconds(self.pid)))
            await asyncio.sleep(0.5)

    def between(self, start: float, end: float) -> tuple[float, float]:
        """CPU seconds used between two moments, and the highest share of a core over any ~1 s window."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return 0.0, 0.0
        used = inside[-1][1] - inside[0][1]
        peak = max(
            ((b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(inside, inside[2:], strict=False) if b[0] > a[0]),
            default=used / max(inside[-1][0] - inside[0][0], 1e-9),
        )
        return used, peak


# ---- the exercise -----------------------------------------------------------------------------------------------


async def get_exercise(http: httpx.AsyncClient, token: dict[str, str], exercise_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/v1/exercises/{exercise_id}", headers=token)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def wait_online(
    http: httpx.AsyncClient, token: dict[str, str], exercise_id: str, target: int, deadline: float
) -> tuple[float | None, int]:
    """Seconds until `devices_online` reaches target (None if the deadline came first), and the last count."""
    started = time.monotonic()
    online = 0
    while time.monotonic() < deadline:
        online = int((await get_exercise(http, token, exercise_id))["devices_online"])
        if online >= target:
            return time.monotonic() - started, online
        await asyncio.sleep(0.25)
    return None, online


async def wait_disconnected(
    http: httpx.AsyncClient, token: dict[str, str], exercise_id: str, server: Server, deadline: float
) -> tuple[float | None, float | None, int, str]:
    """After stop: seconds until `devices_online` is 0, and until the server holds none of its synthetic citizens'
    WebSockets (in-process devices have none). Also the last count and the state."""
    started = time.monotonic()
    online_gone: float | None = None
    sockets_gone: float | None = None
    online, state = -1, "?"

    async def watch_sockets() -> None:
        nonlocal sockets_gone
        while loopback_sockets(server.pid, server.port) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        sockets_gone = time.monotonic() - started

    watcher = asyncio.create_task(watch_sockets())
    while time.monotonic() < deadline and online_gone is None:
        exercise = await get_exercise(http, token, exercise_id)
        online, state = int(exercise["devices_online"]), str(exercise["state"])
        if online == 0:
            online_gone = time.monotonic() - started
        await asyncio.sleep(0.05)
    await watcher
    return online_gone, sockets_gone, online, state


async def exercise_summary(http: httpx.AsyncClient, token: dict[str, str], exercise_id: str) -> str:
    response = await http.get(f"/api/v1/exercises/{exercise_id}/report", headers=token, timeout=120)
    if response.status_code != 200:
        return f"report: HTTP {response.status_code}"
    report = response.json()
    alerts = report["alerts"]
    kinds: dict[str, int] = {}
    for entry in report["timeline"]:
        kinds[entry["kind"]] = kinds.get(entry["kind"], 0) + 1
    return (
        f"scenario {report['exercise']['scenario_seconds'] / 60:.0f} min, injects fired "
        f"{report['exercise']['injects_fired']}/{report['exercise']['injects_total']}, exercise alerts {len(alerts)} "
        f"(reached {sum(a['reached'] for a in alerts)} of {sum(a['affected'] for a in alerts)} affected, "
        f"acknowledged {sum(a['acknowledged'] for a in alerts)}, check-ins {sum(a['checked_in'] for a in alerts)}), "
        f"reports {report['reports']['received']}, lost connection {report['population']['lost_connection']}, "
        f"timeline {dict(sorted(kinds.items()))}"
    )


# ---- the run ----------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    start: float
    end: float = 0.0
    alerts: list[AlertRun] = field(default_factory=list)


@dataclass
class Results:
    phases: list[Phase] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sampler: CpuSampler | None = None


@dataclass
class Bench:
    """What every phase needs."""

    args: argparse.Namespace
    server: Server
    http: httpx.AsyncClient
    tokens: dict[str, dict[str, str]]
    area: dict[str, Any]
    devices: PublicDevices
    results: Results
    deadline: float

    async def issue_series(self, phase: Phase, times: list[float]) -> None:
        """Issue one real alert at each of `times` (monotonic; each waits for the previous one's receipts)."""
        for number, at in enumerate(times, 1):
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            run = await issue_real_alert(self.http, self.tokens, self.area, self.devices, f"{phase.name} {number}")
            phase.alerts.append(run)
            print(alert_line(run), flush=True)

    def note(self, text: str) -> None:
        self.results.notes.append(text)
        print(text, flush=True)

    async def exercise(self, path: str = "", method: str = "GET", body: Any = None) -> dict[str, Any]:
        response = await self.http.request(
            method, f"/api/v1/exercises{path}", json=body, headers=self.tokens["planner"], timeout=120
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


async def population_phase(bench: Bench, target: int) -> tuple[str, int]:
    """Create the exercise and wait for its synthetic citizens; two real alerts go out while they come up."""
    args = bench.args
    body = {
        "scenario_id": SCENARIO_ID,
        "devices": args.devices,
        "transport": args.transport,
        "speed": args.speed,
        "autoplay": True,  # the scripted alerts are part of the load
    }
    phase = Phase("population", time.monotonic())
    exercise_id = str((await bench.exercise("", "POST", body | {"seed": args.seed}))["id"])
    probes = asyncio.create_task(bench.issue_series(phase, [phase.start + 0.5, phase.start + 3.0]))
    took, online = await wait_online(bench.http, bench.tokens["planner"], exercise_id, target, bench.deadline)
    await probes
    phase.end = time.monotonic()
    bench.results.phases.append(phase)
    sockets = loopback_sockets(bench.server.pid, bench.server.port)  # 0 when the devices connect in-process
    up = f"population up in {took:.1f} s" if took is not None else "population NOT up before the deadline"
    bench.note(f"{up} ({online} of {args.devices} devices online, target {target}; {sockets} exercise WebSockets)")
    return exercise_id, sockets


async def running_phase(bench: Bench, exercise_id: str) -> None:
    """Start the exercise, let it run, and issue M real alerts spread over the run."""
    await bench.exercise(f"/{exercise_id}/start", "POST")
    phase = Phase("exercise", time.monotonic())
    run_for = min(bench.args.run_seconds, max(0.0, bench.deadline - time.monotonic() - 30))
    alerts = bench.args.alerts
    await bench.issue_series(phase, [phase.start + run_for * (i + 1) / (alerts + 1) + 1.5 for i in range(alerts)])
    await asyncio.sleep(max(0.0, phase.start + run_for - time.monotonic()))
    phase.end = time.monotonic()
    bench.results.phases.append(phase)
    online = (await bench.exercise(f"/{exercise_id}"))["devices_online"]
    bench.note(f"devices_online at the end of the run: {online}")
    bench.note("exercise: " + await exercise_summary(bench.http, bench.tokens["planner"], exercise_id))


async def stop_phase(bench: Bench, exercise_id: str, sockets: int) -> None:
    """Stop the exercise and time until its devices are gone; two real alerts go out meanwhile."""
    phase = Phase("stop", time.monotonic())
    await bench.exercise(f"/{exercise_id}/stop", "POST")
    stop_call = time.monotonic() - phase.start
    probes = asyncio.create_task(bench.issue_series(phase, [phase.start + 0.3, phase.start + 1.5]))
    online_gone, sockets_gone, online, state = await wait_disconnected(
        bench.http, bench.tokens["planner"], exercise_id, bench.server, bench.deadline
    )
    await probes
    phase.end = time.monotonic()
    bench.results.phases.append(phase)

    def seconds(value: float | None) -> str:
        return f"{value:.2f} s" if value is not None else "not before the deadline"

    via_sockets = f"{sockets} sockets gone after {seconds(sockets_gone)}" if sockets > 0 else "none"
    bench.note(
        f"stop call {stop_call * 1000:.0f} ms (state {state}); devices_online 0 after {seconds(online_gone)} "
        f"(last {online}); exercise WebSockets: {via_sockets}"
    )


async def run(args: argparse.Namespace, server: Server, results: Results) -> None:
    deadline = time.monotonic() + args.max_seconds - 15  # leave time to stop the server
    area, connected_share = scenario_area()
    for name in ("planner", "operator", "approver"):
        server.add_user(name, name)
    server.start()
    sampler = results.sampler = CpuSampler(server.pid)
    async with httpx.AsyncClient(base_url=server.base, timeout=60) as http:
        took = await wait_healthy_async(server.base, server.process, seconds=60, log=server.log_path)
        results.notes.append(f"server healthy after {took:.1f} s (pid {server.pid})")
        sampler_task = asyncio.create_task(sampler.run())
        tokens = {name: await sign_in(http, name) for name in ("planner", "operator", "approver")}
        bench = Bench(args, server, http, tokens, area, PublicDevices(), results, deadline)
        try:
            started = time.monotonic()
            points = points_inside(area, args.public, args.rng)
            await bench.devices.open(f"ws://127.0.0.1:{server.port}/ws/citizen", points)
            bench.note(f"{len(points)} public devices connected in {time.monotonic() - started:.1f} s")
            gc.collect()
            gc.freeze()  # the generator's own collections would show up as latency
            baseline = Phase("baseline", time.monotonic())
            await bench.issue_series(baseline, [baseline.start + i for i in range(args.alerts)])
            baseline.end = time.monotonic()
            results.phases.append(baseline)
            exercise_id, sockets = await population_phase(bench, int(ONLINE_SHARE * connected_share * args.devices))
            await running_phase(bench, exercise_id)
            await stop_phase(bench, exercise_id, sockets)
            connections = bench.devices.connections
            still = sum(1 for c in connections if c.close_code is None)
            results.notes.append(f"public devices still connected at the end: {still}/{len(connections)}")
            ours = {a.alert_id for phase in results.phases for a in phase.alerts}
            foreign = sum(len(v) for k, v in bench.devices.receipts.items() if k not in ours)
            results.notes.append(f"alert messages public devices got that were not our real alerts: {foreign}")
        finally:
            await bench.devices.close()
            sampler_task.cancel()


def print_results(results: Results, sampler: CpuSampler) -> None:
    print()
    print(
        "| phase | wall s | server CPU s | CPU % (avg / peak 1 s) | alerts | delivered | draft+approve max "
        "| issue call p50 / max | latency p50 | p99 | max |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for phase in results.phases:
        wall = phase.end - phase.start
        used, peak = sampler.between(phase.start, phase.end)
        cells = [phase.name, f"{wall:.1f}", f"{used:.1f}", f"{100 * used / max(wall, 1e-9):.0f} / {100 * peak:.0f}"]
        if phase.alerts:
            latencies = [x for a in phase.alerts for x in a.latencies_ms]
            calls = [a.issue_call_ms for a in phase.alerts]
            expected = sum(a.expected for a in phase.alerts)
            cells += [
                str(len(phase.alerts)),
                f"{len(latencies)}/{expected}",
                f"{max(a.prepare_ms for a in phase.alerts):.0f} ms",
                f"{percentile(calls, 50):.0f} / {max(calls):.0f} ms",
            ]
            if latencies:
                cells += [f"{percentile(latencies, q):.0f} ms" for q in (50, 99)] + [f"{max(latencies):.0f} ms"]
            else:
                cells += ["-", "-", "-"]
        else:
            cells += [""] * 7
        print("| " + " | ".join(cells) + " |")
    print()
    for note in results.notes:
        print(note)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2_000, help="synthetic citizens of the exercise (N)")
    parser.add_argument("--public", type=int, default=200, help="public devices in the alert area (K)")
    parser.add_argument("--alerts", type=int, default=5, help="real alerts per phase (M)")
    parser.add_argument("--transport", choices=["auto", "in_process", "websocket"], default="auto")
    parser.add_argument("--speed", type=float, default=60.0, help="scenario seconds per wall-clock second")
    parser.add_argument("--run-seconds", type=float, default=120.0, help="how long the exercise runs (wall clock)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="bound on the whole run")
    args = parser.parse_args()
    if not 0 <= args.devices <= 15_000 or not 1 <= args.public <= 5_000 or not 1 <= args.alerts <= 50:
        parser.error("--devices 0..15000, --public 1..5000, --alerts 1..50")
    if not 60 <= args.max_seconds <= 600:
        parser.error("--max-seconds 60..600")
    args.rng = random.Random(args.seed)
    raise_fd_limit()
    server = Server(args)
    results = Results()
    print(
        f"exercise load: {args.devices} synthetic devices ({args.transport}), {args.public} public devices, "
        f"{args.alerts} real alerts per phase, speed {args.speed:g}; data dir {server.data_dir}",
        flush=True,
    )
    try:
        await asyncio.wait_for(run(args, server, results), args.max_seconds)
    finally:
        server.stop()
        if results.sampler is not None:
            print_results(results, results.sampler)
        findings = server.log_findings()
        print(f"\nserver log {server.log_path}: {len(findings)} warning/error lines")
        for line in findings[:40]:
            print("  " + line)


if __name__ == "__main__":
    asyncio.run(main())
