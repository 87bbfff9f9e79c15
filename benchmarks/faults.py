"""Fault injection on the production topology: what is acknowledged, delivered and lost when processes die.

    .venv/bin/python benchmarks/faults.py            # 200 devices, every fault, about 3-4 minutes
    .venv/bin/python benchmarks/faults.py --quick    # 60 devices, shorter outages, about 2 minutes
    .venv/bin/python benchmarks/faults.py --faults worker-kill,pg-restart

Starts, on loopback and in a temp dir, its own PostgreSQL 15 + PostGIS cluster and Redis (never the shared ones),
migrates, creates an operator and an approver, and runs two API workers (`tocsin serve`, each on its own HTTP port,
both on one lean citizen listener port with SO_REUSEPORT) and two `tocsin scheduler` processes (one active, one
standby). The script is the process supervisor: it restarts a process that exited, and says so. (Not `tocsin serve
--workers 2`: uvicorn's supervisor kills a worker that does not answer its 5 s health check while it imports, which on
a loaded 2-core machine is every worker, and stops everything when a restarted worker fails at start.)
N citizen devices (real protocol) send reports at a steady rate and acknowledge alerts; operator feeds record
`report_new`. Then, in order, each selected fault:

  worker-kill     kill -9 an API worker, start it again a second later
  redis-restart   Redis down for a while (a worker and a scheduler are started meanwhile), then back, empty
  pg-restart      fast stop and start of PostgreSQL; HTTP answers probed meanwhile
  scheduler-kill  kill -9 the scheduler holding the lock while three alerts are due in the next seconds
  pg-down-start   PostgreSQL down; an API worker is killed and started again, and a worker and a scheduler are
                  started, while it is down; then PostgreSQL comes back

with alerts issued before, during and after each. At the end it checks against the database and prints per phase
the reports acknowledged / stored / lost and missed by each operator feed, per alert the devices reached (missing,
duplicated, out of order) against the reach counts the API reports, whether two schedulers were ever active at once,
which processes exited or failed to come up, the HTTP answers during database outages and the log volume per process
and phase. Exits 1 if anything was lost or wrong, with a one-line summary. Everything stops and is removed at the end,
also on Ctrl-C (`--keep` keeps the logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faults_checks import Checks  # noqa: E402
from faults_clients import AREA, Device, IssuedAlert, OperatorFeed, Staff, later, probe_http  # noqa: E402
from faults_report import summary_line  # noqa: E402
from faults_topology import Service, Topology, tcp_client_ports  # noqa: E402

FAULTS = ("worker-kill", "redis-restart", "pg-restart", "scheduler-kill", "pg-down-start")
HARD_DEADLINE_SECONDS = 600  # docs/performance.md: every benchmark stops within 10 minutes
PASSWORDS = {"operator": "faults-operator-password", "approver": "faults-approver-password"}
WORKERS = ("worker-1", "worker-2")
CORE = (*WORKERS, "scheduler-a", "scheduler-b")
STARTUP_MARK = b"Waiting for application startup."  # uvicorn, before the app's lifespan opens the database
STARTUP_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class Timing:
    devices: int
    outage: float  # how long Redis or PostgreSQL stays down
    settle: float  # after each fault, before the next
    report_interval: float  # seconds between two reports of one device
    comeback: float  # deadline for a process to come (back) up
    issue_deadline: float  # how long the staff retry one step of issuing an alert
    due_in: tuple[float, ...]  # scheduler-kill: alerts scheduled this many seconds ahead; the kill comes first


FULL = Timing(devices=200, outage=8, settle=6, report_interval=4, comeback=30, issue_deadline=20, due_in=(4, 6, 8))
QUICK = Timing(devices=60, outage=3, settle=3, report_interval=3, comeback=20, issue_deadline=12, due_in=(3, 4, 5))


def selected_faults(text: str) -> list[str]:
    """`all` or a comma-separated list of fault names, kept in the fixed order of FAULTS."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    if names == {"all"}:
        return list(FAULTS)
    unknown = names - set(FAULTS)
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown faults {sorted(unknown)}; choose from {', '.join(FAULTS)} or all")
    return [n for n in FAULTS if n in names]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer devices, shorter outages")
    parser.add_argument("--devices", type=int, help=f"citizen devices (default {FULL.devices}, quick {QUICK.devices})")
    parser.add_argument("--feeds", type=int, default=2, help="operator feed clients (1-4)")
    parser.add_argument("--faults", type=selected_faults, default=list(FAULTS), help="comma-separated, or all")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) at the end")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.devices is not None and not 1 <= args.devices <= 2_000:
        parser.error("--devices between 1 and 2000")
    if not 1 <= args.feeds <= 4:
        parser.error("--feeds between 1 and 4")
    timing = QUICK if args.quick else FULL
    args.timing = Timing(**{**timing.__dict__, "devices": args.devices or timing.devices})
    return args


class Run:
    def __init__(self, topology: Topology, args: argparse.Namespace) -> None:
        self.t = topology
        self.timing: Timing = args.timing
        self.faults: list[str] = args.faults
        rng = random.Random(args.seed)
        west, south, east, north = AREA
        self.devices = [
            Device(f"faults-{i:05d}", rng.uniform(west + 0.01, east - 0.01), rng.uniform(south + 0.01, north - 0.01), 1)
            for i in range(self.timing.devices)
        ]
        for device in self.devices:
            device.report_interval = self.timing.report_interval
        self.feed_count: int = args.feeds
        self.feeds: list[OperatorFeed] = []
        self.staff = Staff([], PASSWORDS, self.timing.issue_deadline)
        self.checks = Checks(topology)
        self.stop_clients = asyncio.Event()
        self.background: list[asyncio.Task[None]] = []
        self.pending_issues: list[asyncio.Task[object]] = []

    # ---- helpers --------------------------------------------------------------------------------------------------

    async def healthy(self, base: str) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0) as http:
                return (await http.get(f"{base}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def wait_for(self, condition: Callable[[], Awaitable[bool]], deadline: float) -> float | None:
        """Seconds until `condition` is true, or None at the deadline."""
        started = time.monotonic()
        while time.monotonic() - started < deadline:
            if await condition():
                return time.monotonic() - started
            await asyncio.sleep(0.25)
        return None

    async def came_up(self, service: Service, serving: Callable[[], Awaitable[bool]]) -> float | None:
        """Seconds until `service` does its job, or None if it exited or the deadline passed first."""
        took = await self.wait_for(lambda: self._exited_or(service, serving), self.timing.comeback)
        return took if service.alive else None

    @staticmethod
    async def _exited_or(service: Service, serving: Callable[[], Awaitable[bool]]) -> bool:
        return not service.alive or await serving()

    def issue_soon(self, label: str) -> IssuedAlert:
        record = IssuedAlert(label)
        self.staff.issued.append(record)
        self.pending_issues.append(asyncio.create_task(self.staff.carry_out(record)))
        return record

    async def issue(self, label: str) -> None:
        await self.staff.issue(label)

    def base(self, worker: str) -> str:
        return f"http://127.0.0.1:{self.t.worker_ports[worker]}"

    async def worker_up(self, worker: str) -> bool:
        return self.t.services[worker].alive and await self.healthy(self.base(worker))

    async def api_up(self) -> bool:
        return all([await self.worker_up(w) for w in WORKERS])

    async def late_start(self, phase: str, also: Service | None = None) -> tuple[tuple[Service, int], Service]:
        """Start a worker and a scheduler during an outage, and keep the outage on until the workers (this one and
        `also`, restarted just before) reached their application startup, or exited: a worker takes seconds to import
        on a loaded machine, and must meet the outage, not its end."""
        marks = {s.name: s.log_count(STARTUP_MARK) for s in (also,) if s is not None}
        worker = self.t.start_late_worker(f"late-worker-{phase}")
        scheduler = self.t.add(f"late-scheduler-{phase}", "scheduler")
        starting = [worker[0], *(s for s in (also,) if s is not None)]

        async def reached() -> bool:
            return all(not s.alive or s.log_count(STARTUP_MARK) > marks.get(s.name, 0) for s in starting)

        started = time.monotonic()
        await self.wait_for(reached, self.timing.comeback)
        await asyncio.sleep(max(STARTUP_GRACE_SECONDS, self.timing.outage - (time.monotonic() - started)))
        return worker, scheduler

    async def judge_late(self, phase: str, worker: tuple[Service, int], scheduler: Service) -> None:
        """After the outage: did the worker serve and the scheduler connect to the database?"""
        service, port = worker

        async def worker_up() -> bool:
            return service.alive and await self.healthy(f"http://127.0.0.1:{port}")

        for process, condition in ((service, worker_up), (scheduler, lambda: self.connected(scheduler))):
            took = await self.came_up(process, condition)
            self.checks.late_start(phase, process.name, took, process.exit_code)
            process.stop(timeout=5)

    async def connected(self, service: Service) -> bool:
        """A scheduler is up once it holds a connection to the database (as the standby, or running)."""
        return service.alive and service.pid is not None and bool(tcp_client_ports(service.pid, self.pg_port))

    @property
    def pg_port(self) -> int:
        return self.t.postgres.port

    async def supervise(self, phase: str) -> None:
        """Like `restart: unless-stopped`: record any core process that exited, and start it again; the next fault
        waits until the workers serve and the schedulers are connected (or the deadline passes)."""
        restarted = []
        for name in CORE:
            service = self.t.services[name]
            if not service.alive:
                self.checks.exited(phase, name, service.exit_code)
                service.start()
                restarted.append(service)
        await self.wait_for(self.api_up, self.timing.comeback)
        for service in restarted:
            if service.name.startswith("scheduler"):
                await self.came_up(service, functools.partial(self.connected, service))

    # ---- phases ---------------------------------------------------------------------------------------------------

    async def worker_kill(self) -> None:
        await self.issue("worker-kill before")
        worker = self.t.services["worker-1"]
        worker.kill()
        self.issue_soon("worker-kill during")
        await asyncio.sleep(1.0)  # a supervisor's restart delay
        worker.start()
        took = await self.came_up(worker, lambda: self.worker_up("worker-1"))
        self.checks.late_start("worker-kill", "worker-1 (killed, started again)", took, worker.exit_code)
        await self.issue("worker-kill after")

    async def redis_restart(self) -> None:
        await self.issue("redis-restart before")
        self.t.redis.stop()
        self.issue_soon("redis-restart during")
        worker, scheduler = await self.late_start("redis")
        self.t.redis.start()
        await self.judge_late("redis-restart", worker, scheduler)
        await self.issue("redis-restart after")

    async def pg_outage(self, phase: str, during: object) -> None:
        seen: Counter[str] = Counter()
        stop_probe = asyncio.Event()
        probe = asyncio.create_task(probe_http(self.base("worker-1"), stop_probe, seen))
        await asyncio.to_thread(self.t.postgres.stop, "fast")
        self.issue_soon(f"{phase} during")
        await during  # type: ignore[misc]
        await asyncio.to_thread(self.t.postgres.start)
        stop_probe.set()
        await probe
        self.checks.http_during_outage(phase, seen)

    async def pg_restart(self) -> None:
        await self.issue("pg-restart before")
        # The stop races an issue call: committed or not, and if committed, does every worker still deliver it?
        racing = self.issue_soon("pg-restart at stop")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(racing.issuing.wait(), self.timing.issue_deadline)
        await asyncio.sleep(0.03)
        await self.pg_outage("pg-restart", asyncio.sleep(self.timing.outage))
        await self.issue("pg-restart after")
        await asyncio.sleep(self.timing.settle)  # two schedulers, if any, show here

    async def pg_down_start(self) -> None:
        """A worker that crashes during the outage is restarted by its supervisor while PostgreSQL is still down."""
        worker = self.t.services["worker-2"]
        late: list[tuple[tuple[Service, int], Service]] = []

        async def meanwhile() -> None:
            worker.kill()
            worker.start()
            late.append(await self.late_start("pg", also=worker))

        await self.pg_outage("pg-down-start", meanwhile())
        took = await self.came_up(worker, lambda: self.worker_up("worker-2"))
        self.checks.late_start("pg-down-start", "worker-2 (killed, started again)", took, worker.exit_code)
        await self.judge_late("pg-down-start", *late[0])
        await self.supervise("pg-down-start")
        await self.issue("pg-down-start after")

    async def scheduler_kill(self) -> None:
        holder = await self.checks.scheduler_holder()
        if holder is None:  # nobody holds the lock (it was lost): the last holder is the one still running jobs
            holder = self.checks.last_holder()
            self.checks.note("scheduler-kill", f"no scheduler held the lock; killing the last holder, {holder}")
        first_due = later(self.timing.due_in[0])
        due = await asyncio.gather(*(self.staff.issue(f"scheduled +{o:.0f}s", at=later(o)) for o in self.timing.due_in))
        if holder is not None:
            self.t.services[holder].kill()
        self.checks.note("scheduler-kill", f"kill {(first_due - later(0)).total_seconds():.1f} s before the first due")
        ids = [d.alert_id for d in due if d.acknowledged and d.alert_id]
        took = await self.wait_for(lambda: self.checks.all_issued(ids), self.timing.comeback)
        issued = "never" if took is None else f"{took:.1f} s after the kill"
        self.checks.note("scheduler-kill", f"killed {holder}; the scheduled alerts were all issued {issued}")
        if holder is not None:  # back as the standby, connected before the next fault
            restarted = self.t.services[holder]
            restarted.start()
            await self.came_up(restarted, lambda: self.connected(restarted))

    # ---- the run --------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.t.prepare)
        for user, password in PASSWORDS.items():
            await asyncio.to_thread(
                self.t.tocsin, "users", "add", user, "--role", user, "--password-stdin", stdin=password
            )
        for worker in WORKERS:
            self.t.start_worker(worker)
        self.t.add("scheduler-a", "scheduler")
        self.staff.clients = [httpx.AsyncClient(base_url=self.base(w), timeout=5.0) for w in WORKERS]
        if await self.wait_for(self.api_up, 90) is None:
            raise RuntimeError(f"the API workers did not start; see the logs in {self.t.root}")
        for i in range(self.feed_count):  # spread over the workers, as a reverse proxy would
            port = self.t.worker_ports[WORKERS[i % len(WORKERS)]]
            self.feeds.append(OperatorFeed(f"feed-{i + 1}", f"ws://127.0.0.1:{port}/ws/operator"))
        await self.wait_for(lambda: self.checks.scheduler_holder_is("scheduler-a"), 30)
        self.t.add("scheduler-b", "scheduler")
        self.background.append(asyncio.create_task(self.checks.sample_schedulers()))
        url = f"ws://127.0.0.1:{self.t.citizen_port}/ws/citizen"
        self.background += [asyncio.create_task(d.run(url, self.stop_clients)) for d in self.devices]
        self.background += [asyncio.create_task(f.run(self.staff, self.stop_clients)) for f in self.feeds]

        async def connected() -> bool:
            return all(d.first_seq is not None for d in self.devices) and all(f.intervals for f in self.feeds)

        if await self.wait_for(connected, 60) is None:
            raise RuntimeError("devices or feeds did not connect")

    async def phase(self, name: str, body: object) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)
        self.checks.begin(name)
        await body  # type: ignore[misc]
        await asyncio.sleep(self.timing.settle)
        await self.supervise(name)
        self.checks.end(name)

    async def drain(self) -> None:
        """Stop reporting; wait for every report to be acknowledged and every alert to arrive (bounded)."""
        for device in self.devices:
            device.reporting = False
        await asyncio.gather(*self.pending_issues, return_exceptions=True)

        async def settled() -> bool:
            if any(d.pending or d.alert_ack_pending for d in self.devices):
                return False
            issued = await self.checks.issued_ids()
            return issued is not None and all(issued <= {a for _, a, _ in d.received} for d in self.devices)

        await self.wait_for(settled, self.timing.comeback)

    async def execute(self) -> int:
        await self.start()
        phases = {
            "worker-kill": self.worker_kill,
            "redis-restart": self.redis_restart,
            "pg-restart": self.pg_restart,
            "scheduler-kill": self.scheduler_kill,
            "pg-down-start": self.pg_down_start,
        }
        await self.phase("baseline", self.issue("baseline"))
        for name in self.faults:
            await self.phase(name, phases[name]())
        await self.phase("drain", self.drain())
        counts = {r.alert_id: await self.staff.counts(r.alert_id) for r in self.staff.issued if r.alert_id}
        self.stop_clients.set()
        await asyncio.wait(self.background, timeout=10)
        await self.staff.close()
        lines, problems = await self.checks.report(self.devices, self.feeds, self.staff.issued, counts)
        print("\n".join(lines))
        print(summary_line(problems))
        return 1 if problems else 0


def main() -> None:
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="tocsin-faults-"))
    topology = Topology(root)
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))  # asyncio.run cancels cleanly
    code = 2
    try:
        code = asyncio.run(asyncio.wait_for(Run(topology, args).execute(), HARD_DEADLINE_SECONDS))
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
    except TimeoutError:
        print(f"faults: FAIL - the run did not finish within {HARD_DEADLINE_SECONDS} s; cleaning up", file=sys.stderr)
    finally:
        topology.stop_all()
        if args.keep:
            print(f"logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    raise SystemExit(code)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
