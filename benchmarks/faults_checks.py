"""What `faults.py` records while it runs (phases, exits, late starts, HTTP answers, log volume, which schedulers
work) and the final comparison with the database."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import asyncpg
from faults_clients import Device, IssuedAlert, OperatorFeed
from faults_report import AlertRow, device_delivery, reports_by_phase, runs_per_second, table
from faults_topology import SCHEDULER_LOCK_KEY, Topology, tcp_client_ports

SAMPLE_SECONDS = 1.0
RATE_WINDOW_SECONDS = 10.0  # PostgreSQL flushes a session's table statistics within about a second, idle ones in 10
TWO_SCHEDULERS_RATE = 1.5  # scheduler job runs per second above which more than one scheduler is at work
SCHEDULED_LATE_MAX_SECONDS = 10.0  # a standby takes over within its 5 s poll, plus the 1 s job interval
LOG_LINES_PER_PHASE_MAX = 100  # more log records than this from one process in one phase is a log flood


class Checks:
    def __init__(self, topology: Topology) -> None:
        self.t = topology
        self.phase = "setup"
        self.timeline: list[tuple[str, float, float]] = []
        self.started_at = time.time()
        self.volume_at_start: dict[str, tuple[int, int]] = {}
        self.log_volume: dict[str, dict[str, tuple[int, int]]] = {}  # phase -> process -> (bytes, lines)
        self.notes: list[str] = []
        self.problems: list[str] = []
        self.http: dict[str, Counter[str]] = {}
        self.late: list[tuple[str, str, float | None, int | None]] = []
        self.exits: list[tuple[str, str, int | None]] = []
        self.samples: list[tuple[float, str, int, str | None]] = []  # time, phase, exercises scans, lock holder
        self.connection: Any = None
        self.lock = asyncio.Lock()

    # ---- while running ----------------------------------------------------------------------------------------------

    def begin(self, phase: str) -> None:
        self.phase, self.started_at = phase, time.time()
        self.volume_at_start = {name: s.log_volume() for name, s in self.t.services.items()}

    def end(self, phase: str) -> None:
        self.timeline.append((phase, self.started_at, time.time()))
        volumes = {}
        for name, service in self.t.services.items():
            size, lines = service.log_volume()
            before = self.volume_at_start.get(name, (0, 0))
            volumes[name] = (size - before[0], lines - before[1])
        self.log_volume[phase] = volumes

    def note(self, phase: str, text: str) -> None:
        self.notes.append(f"{phase}: {text}")

    def problem(self, phase: str, text: str) -> None:
        self.problems.append(f"{phase}: {text}")

    def exited(self, phase: str, name: str, code: int | None) -> None:
        self.exits.append((phase, name, code))

    def late_start(self, phase: str, name: str, took: float | None, exit_code: int | None) -> None:
        self.late.append((phase, name, took, exit_code))

    def http_during_outage(self, phase: str, seen: Counter[str]) -> None:
        self.http[phase] = seen

    async def fetch(self, query: str, *args: object) -> list[Any] | None:
        """Rows, or None while the database is unreachable (one connection, one query at a time)."""
        async with self.lock:
            try:
                if self.connection is None or self.connection.is_closed():
                    self.connection = await asyncpg.connect(self.t.postgres.dsn(), timeout=2)
                rows: list[Any] = await asyncio.wait_for(self.connection.fetch(query, *args), timeout=5)
                return rows
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError):
                if self.connection is not None:
                    self.connection.terminate()
                self.connection = None
                return None

    async def scheduler_holder(self) -> str | None:
        """The scheduler process holding the lock: pg_locks gives the session, its TCP port gives the process."""
        rows = await self.fetch(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1",
            SCHEDULER_LOCK_KEY,
        )
        for row in rows or []:
            for name, service in self.t.services.items():
                if "scheduler" in name and service.pid and row["client_port"] in self._ports(service.pid):
                    return name
        return None

    def _ports(self, pid: int) -> set[int]:
        return tcp_client_ports(pid, self.t.postgres.port)

    def last_holder(self) -> str | None:
        return next((holder for *_, holder in reversed(self.samples) if holder is not None), None)

    async def scheduler_holder_is(self, name: str) -> bool:
        return await self.scheduler_holder() == name

    async def sample_schedulers(self) -> None:
        """Every second: how many times the scheduler job that reads `exercises` has run (the only reader of that
        table here; once a second per active scheduler), and who holds the lock."""
        while True:
            rows = await self.fetch(
                "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) AS scans FROM pg_stat_user_tables"
                " WHERE relname = 'exercises'"
            )
            if rows:
                self.samples.append((time.time(), self.phase, int(rows[0]["scans"]), await self.scheduler_holder()))
            await asyncio.sleep(SAMPLE_SECONDS)

    async def issued_ids(self) -> set[str] | None:
        rows = await self.fetch("SELECT alert_id::text AS id FROM alert_events WHERE kind = 'issued'")
        return {r["id"] for r in rows} if rows is not None else None

    async def all_issued(self, ids: list[str]) -> bool:
        issued = await self.issued_ids()
        return issued is not None and set(ids) <= issued

    # ---- at the end -------------------------------------------------------------------------------------------------

    async def report(
        self,
        devices: list[Device],
        feeds: list[OperatorFeed],
        calls: list[IssuedAlert],
        counts: dict[str, dict[str, int] | None],
    ) -> tuple[list[str], list[str]]:
        stored_rows = await self.fetch(
            "SELECT client_id::text AS id, extract(epoch FROM received_at) AS at FROM reports"
        )
        issued_rows = await self.fetch("SELECT seq, alert_id::text AS id FROM alert_events WHERE kind = 'issued'")
        late_rows = await self.fetch(
            "SELECT a.id::text AS id, extract(epoch FROM e.at - a.scheduled_for) AS late FROM alerts a"
            " JOIN alert_events e ON e.alert_id = a.id AND e.kind = 'issued' WHERE a.scheduled_for IS NOT NULL"
        )
        acked_rows = await self.fetch(
            "SELECT alert_id::text AS id, count(acknowledged_at) AS n FROM alert_responses GROUP BY alert_id"
        )
        if stored_rows is None or issued_rows is None or acked_rows is None:
            return ["the database could not be read at the end"], ["database unreadable at the end"]
        stored = {r["id"]: float(r["at"]) for r in stored_rows}
        issued = {r["id"]: int(r["seq"]) for r in issued_rows}
        db_acked = {r["id"]: int(r["n"]) for r in acked_rows}
        lines: list[str] = []
        lines += self._reports(devices, feeds, stored)
        lines += self._alerts(devices, calls, issued, counts, db_acked)
        lates = sorted(float(r["late"]) for r in late_rows or [])
        lines.append(f"scheduled alerts issued this late after their time (s): {[round(x, 1) for x in lates]}")
        if any(x > SCHEDULED_LATE_MAX_SECONDS for x in lates):
            self.problems.append(f"scheduled alerts issued up to {max(lates):.0f} s late")
        lines += self._processes()
        return lines, self.problems

    def _reports(self, devices: list[Device], feeds: list[OperatorFeed], stored: dict[str, float]) -> list[str]:
        acked = {rid: at for d in devices for rid, at in d.acked.items()}
        feed_data = {f.name: (f.seen, f.intervals) for f in feeds}
        rows = reports_by_phase(self.timeline, acked, stored, feed_data)
        names = [f.name for f in feeds]
        body: list[list[object]] = []
        for phase, row in rows.items():
            missed = [f"{row.feed_missed_connected[n]}/{row.feed_missed_disconnected[n]}" for n in names]
            body.append([phase, row.reports_acked, row.reports_stored, row.reports_lost, *missed])
        total = [
            sum(r.reports_acked for r in rows.values()),
            sum(r.reports_stored for r in rows.values()),
            sum(r.reports_lost for r in rows.values()),
        ]
        missed_connected = {n: sum(r.feed_missed_connected[n] for r in rows.values()) for n in names}
        missed_away = {n: sum(r.feed_missed_disconnected[n] for r in rows.values()) for n in names}
        body.append(["total", *total, *[f"{missed_connected[n]}/{missed_away[n]}" for n in names]])
        unacked = sum(len(d.pending) for d in devices)
        errors = sum((d.errors for d in devices), Counter[str]())
        lines = ["", "REPORTS (per phase; feed columns: missed while connected / while disconnected)"]
        lines += table(["phase", "acked", "stored", "lost", *[f"{n} missed" for n in names]], body)
        connections = ", ".join(f"{f.name}: {len(f.intervals)} connections" for f in feeds)
        lines.append(
            f"sent {sum(d.sent for d in devices)}, never acknowledged {unacked}; errors {dict(errors)}; {connections}"
        )
        if total[2]:
            self.problems.append(f"{total[2]} acknowledged reports not stored")
        if sum(missed_connected.values()):
            self.problems.append(f"operator feeds missed {sum(missed_connected.values())} reports while connected")
        return lines

    def _alerts(
        self,
        devices: list[Device],
        calls: list[IssuedAlert],
        issued: dict[str, int],
        counts: dict[str, dict[str, int] | None],
        db_acked: dict[str, int],
    ) -> list[str]:
        deliveries = {d.device_id: device_delivery(d.received, d.snapshot_ids, issued, d.first_seq) for d in devices}
        labels = {c.alert_id: c.label for c in calls if c.alert_id}
        rows = []
        for alert_id, seq in sorted(issued.items(), key=lambda item: item[1]):
            count = counts.get(alert_id) or {}
            rows.append(
                AlertRow(
                    label=labels.get(alert_id, "?"),
                    seq=seq,
                    devices_received=sum(alert_id in dd.received for dd in deliveries.values()),
                    messages=sum(1 for d in devices for _, a, _ in d.received if a == alert_id),
                    snapshot_only=sum(alert_id in dd.snapshot_only for dd in deliveries.values()),
                    missing=sum(alert_id in dd.missing for dd in deliveries.values()),
                    api_delivered=count.get("delivered"),
                    api_in_area=count.get("in_area"),
                    devices_acked=sum(alert_id in d.alert_acked for d in devices),
                    api_acknowledged=count.get("acknowledged"),
                    db_acknowledged=db_acked.get(alert_id, 0),
                )
            )
        headers = ["alert", "seq", "received", "msgs", "snap-only", "missing", "api deliv", "api in_area"]
        body = [
            [r.label, r.seq, r.devices_received, r.messages, r.snapshot_only, r.missing, r.api_delivered, r.api_in_area]
            + [f"{r.devices_acked}/{r.api_acknowledged}/{r.db_acknowledged}"]
            for r in rows
        ]
        lines = ["", f"ALERTS ({len(devices)} devices; acked: answered ack / API acknowledged / database)"]
        lines += table([*headers, "acked"], body)
        acknowledged = [c for c in calls if c.acknowledged]
        never = [c.label for c in acknowledged if c.alert_id not in issued]
        failed = [f"{c.label} ({','.join(Counter(c.statuses))})" for c in calls if not c.acknowledged]
        lines.append(f"issue calls {len(calls)}, acknowledged {len(acknowledged)}, in the database {len(issued)}")
        if failed:
            lines.append(f"issue calls not acknowledged (statuses seen): {'; '.join(failed)}")
        missing = sum(len(dd.missing) for dd in deliveries.values())
        snapshot_only = sum(len(dd.snapshot_only) for dd in deliveries.values())
        duplicated = sum(len(dd.duplicated) for dd in deliveries.values())
        disorder = sum(dd.out_of_order for dd in deliveries.values())
        devices_missing = sum(1 for dd in deliveries.values() if dd.missing or dd.snapshot_only)
        lines.append(
            f"device-alert pairs missing {missing}, only in a snapshot {snapshot_only} ({devices_missing} devices), "
            f"duplicated {duplicated}, out of order {disorder}; reconnects {sum(d.connections - 1 for d in devices)}, "
            f"alerts replayed after reconnect {sum(dd.replayed for dd in deliveries.values())}"
        )
        wrong_counts = [r for r in rows if r.reach_wrong]
        for text, bad in (
            (f"{len(never)} alerts acknowledged as issued but never issued", never),
            (f"{missing} device-alert pairs never delivered", missing),
            (f"{snapshot_only} device-alert pairs only in a snapshot", snapshot_only),
            (f"{duplicated} duplicated alert messages", duplicated),
            (f"{disorder} alert messages out of order", disorder),
            (f"reach counts wrong for {len(wrong_counts)}/{len(rows)} alerts", wrong_counts),
        ):
            if bad:
                self.problems.append(text)
        return lines

    def _processes(self) -> list[str]:
        lines = ["", "PROCESSES"]
        for phase, name, code in self.exits:
            lines.append(f"{phase}: {name} had exited (code {code}); started again")
            self.problems.append(f"{name} exited in {phase}")
        for phase, name, took, code in self.late:
            state = f"up after {took:.1f} s" if took is not None else f"NOT up (exit code {code})"
            lines.append(f"{phase}: {name} started during the outage: {state}")
            if took is None:
                self.problems.append(f"{name} did not come up ({phase})")
        lines += self.notes
        lines += self._schedulers()
        for phase, seen in self.http.items():
            lines.append(f"{phase}: HTTP during the database outage: {dict(seen)}")
            bad = [k for k in seen if " 500 " in f"{k} " or "text/plain" in k or "Error" in k or "Timeout" in k]
            if bad:
                self.problems.append(f"HTTP during the {phase} outage: {', '.join(sorted(bad))}")
        lines += ["", "LOG RECORDS per process and phase (KiB); a traceback is part of its record"]
        names = sorted({n for volumes in self.log_volume.values() for n in volumes})
        body = [[phase, *[self._volume(volumes.get(n)) for n in names]] for phase, volumes in self.log_volume.items()]
        lines += table(["phase", *names], body)
        floods = [
            f"{n} {lines_} lines in {phase}"
            for phase, volumes in self.log_volume.items()
            for n, (_, lines_) in volumes.items()
            if lines_ > LOG_LINES_PER_PHASE_MAX
        ]
        if floods:
            self.problems.append("log floods: " + ", ".join(floods))
        return lines

    @staticmethod
    def _volume(volume: tuple[int, int] | None) -> str:
        return "-" if volume is None else f"{volume[1]} ({volume[0] / 1024:.0f})"

    def _schedulers(self) -> list[str]:
        holders: list[tuple[str, str | None]] = []
        for _, phase, _, holder in self.samples:
            if not holders or holders[-1][1] != holder:
                holders.append((phase, holder))
        lines = [f"scheduler lock holders in turn: {' -> '.join(f'{h} ({p})' for p, h in holders)}"]
        rates = runs_per_second([(t, scans) for t, _, scans, _ in self.samples], RATE_WINDOW_SECONDS)
        phases = {round(t): phase for t, phase, _, _ in self.samples}
        peak: dict[str, float] = {}
        for t, rate in rates:
            phase = phases.get(round(t), "?")
            peak[phase] = max(peak.get(phase, 0.0), rate)
        shown = ", ".join(f"{phase} {rate:.1f}" for phase, rate in peak.items())
        lines.append(f"scheduler job runs per second (one active scheduler: about 1), peak per phase: {shown}")
        over = {phase: rate for phase, rate in peak.items() if rate > TWO_SCHEDULERS_RATE}
        if over:
            lines.append(f"TWO SCHEDULERS ACTIVE at once in {sorted(over)}")
            self.problems.append(f"two schedulers active at once ({', '.join(sorted(over))})")
        return lines
