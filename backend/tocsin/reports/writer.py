"""Group commit for citizen reports: acknowledge only what is committed, without one transaction per report.

Reports that arrive within a few milliseconds of each other are written in one transaction (INSERT ... ON CONFLICT
DO NOTHING on the client's UUID, RETURNING what was new), then every sender gets its acknowledgement, and only then
are the new reports announced to operators. A resend finds the existing row and gets the same acknowledgement. If
the transaction fails, every report in it gets an error instead of an ack, and the device resends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from logging import WARNING
from typing import Any

from shapely.geometry import Point
from sqlalchemy import select

from tocsin import backend, metrics
from tocsin.bus import Bus
from tocsin.db import Database
from tocsin.kernel.channels import REPORTS_CHANNEL
from tocsin.models import Report
from tocsin.reports import feed
from tocsin.reports.schemas import ReportAck, ReportIn, ReportStatus
from tocsin.resilience import ThrottledLog

log = logging.getLogger(__name__)
_failures = ThrottledLog(log)  # a database outage: one line per kind of failure per minute, not one per report

MAX_PENDING = 20_000
WRITE_TIMEOUT_SECONDS = 15
_FUTURE_SLACK = timedelta(minutes=5)  # phones with a clock a little ahead


class ReportRefused(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass
class _Pending:
    device_id: str
    report: ReportIn
    exercise_id: str | None
    future: asyncio.Future[tuple[ReportAck, bool]]


def report_json(values: dict[str, Any], report_id: int) -> dict[str, Any]:
    """A committed report as operators see it in `report_new`."""
    return {
        "id": report_id,
        "client_id": str(values["client_id"]),
        "category": values["category"],
        "text": values["text"],
        "location": {"lon": values["lon"], "lat": values["lat"]},
        "severity": values["severity"],
        "observed_at": values["observed_at"].isoformat(),
        "received_at": values["received_at"].isoformat(),
        "status": values["status"],
        "exercise_id": values["exercise_id"],
    }


def _seq(event: dict[str, Any]) -> int:
    return int(event["seq"])


class ReportWriter:
    def __init__(self, database: Database, bus: Bus, *, max_batch: int = 500, gather_seconds: float = 0.004) -> None:
        self.database = database
        self.bus = bus
        self.max_batch = max_batch
        self.gather_seconds = gather_seconds
        self.pending: list[_Pending] = []
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.publishing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        for item in self.pending:
            if not item.future.done():
                item.future.set_exception(ReportRefused("unavailable", "the server is shutting down; resend later"))

    @metrics.timed(metrics.REPORT_ACK_SECONDS)
    async def submit(self, device_id: str, report: ReportIn, exercise_id: str | None = None) -> tuple[ReportAck, bool]:
        """Wait until the report is committed; returns (acknowledgement, created)."""
        if len(self.pending) >= MAX_PENDING:  # shed load instead of queueing without end; the device resends
            raise ReportRefused("unavailable", "the server is busy; resend in a moment")
        now = datetime.now(UTC)
        if report.observed_at > now.replace(microsecond=0) + _FUTURE_SLACK:
            raise ReportRefused("invalid", "observed_at lies in the future", "observed_at")
        future: asyncio.Future[tuple[ReportAck, bool]] = asyncio.get_running_loop().create_future()
        self.pending.append(_Pending(device_id, report, exercise_id, future))
        self.ready.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self.ready.wait()
            if len(self.pending) < self.max_batch:
                await asyncio.sleep(self.gather_seconds)  # let the reports of the next few ms join this commit
            batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
            if not self.pending:
                self.ready.clear()
            if not batch:
                continue
            try:
                await self._write(batch)
            except Exception:  # never let the writer die: every sender gets an answer
                _failures.failure("batch", "the report writer failed on a batch of %d", len(batch), exc_info=True)
            finally:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(ReportRefused("unavailable", "not stored; resend"))

    @metrics.timed(metrics.REPORT_INGEST_SECONDS)
    async def _write(self, batch: list[_Pending]) -> None:
        received = datetime.now(UTC)
        # The first of several sends of one UUID in the same batch wins; the others get its acknowledgement.
        unique: dict[uuid.UUID, _Pending] = {}
        for item in batch:
            unique.setdefault(item.report.id, item)
        rows = [
            {
                "client_id": r.report.id,
                "device_id": r.device_id,
                "category": r.report.category.value,
                "text": r.report.text.strip(),
                "lon": r.report.location.lon,
                "lat": r.report.location.lat,
                "geom": Point(r.report.location.lon, r.report.location.lat),
                "severity": r.report.severity,
                "observed_at": r.report.observed_at,
                "received_at": received,
                "status": ReportStatus.new.value,
                "exercise_id": r.exercise_id,
            }
            for r in sorted(unique.values(), key=lambda pending: pending.report.id)  # one lock order everywhere
        ]
        columns = (Report.client_id, Report.id, Report.device_id, Report.received_at, Report.status)
        try:
            async with asyncio.timeout(WRITE_TIMEOUT_SECONDS), self.database.sessions() as session:
                statement = backend.insert_ignoring_duplicates(Report, self.database.dialect_name)
                # RETURNING gives the new rows; a resend (the UUID exists) is looked up instead.
                new = {row.client_id: row for row in await session.execute(statement.returning(*columns), rows)}
                missing = [client_id for client_id in unique if client_id not in new]
                existing = {}
                if missing:
                    query = select(*columns).where(Report.client_id.in_(missing))
                    existing = {row.client_id: row for row in await session.execute(query)}
                # Real reports enter the operator feed in the same transaction; exercise reports never do.
                real = sorted(new[v["client_id"]].id for v in rows if v["client_id"] in new and not v["exercise_id"])
                seqs = await feed.append(session, [(feed.REPORT_NEW, report_id) for report_id in real])
                numbers = dict(zip(real, seqs, strict=True))
                await session.commit()
            metrics.REPORTS_INGESTED.inc(len(new))
        except Exception as exc:  # nothing of this batch is stored, so nothing is acknowledged
            if len(unique) > 1 and not isinstance(exc, TimeoutError):
                # One bad report must not fail the others: write them one by one, so only it is refused.
                _failures.failure(
                    "split", "a batch of %d failed (%s); writing one by one", len(batch), exc, level=WARNING
                )
                for client_id in unique:
                    await self._write([item for item in batch if item.report.id == client_id])
                return
            _failures.failure(type(exc).__name__, "writing %d reports failed", len(batch), exc_info=True)
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(
                        ReportRefused("unavailable", f"not stored ({type(exc).__name__}); resend")
                    )
            return
        stored = {**existing, **new}
        for item in batch:
            row = stored[item.report.id]
            if item.future.done():
                continue
            if row.device_id != item.device_id:
                item.future.set_exception(ReportRefused("duplicate_id", "this report id is already used", "id"))
                continue
            ack = ReportAck(id=row.client_id, report_id=row.id, received_at=row.received_at, status=row.status)
            item.future.set_result((ack, row.client_id in new and unique[row.client_id] is item))
        if new:
            # One bus message per committed batch; each worker hands operators one report_new per report.
            reports = [
                report_json(values, new[values["client_id"]].id) for values in rows if values["client_id"] in new
            ]
            # `seq`: the report's number in the operator feed (none for exercise reports, which operators never see).
            events = sorted((feed.report_new(r, numbers[r["id"]]) for r in reports if r["id"] in numbers), key=_seq)
            if not events:
                return
            # In its own task: an unreachable Redis must not hold up the next batch.
            message = {"type": "report_batch", "events": events}
            task = asyncio.create_task(self.bus.publish(REPORTS_CHANNEL, message))
            self.publishing.add(task)
            task.add_done_callback(self.publishing.discard)
