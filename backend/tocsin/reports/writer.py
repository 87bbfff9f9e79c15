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
from typing import Any, NamedTuple, cast

import shapely
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tocsin import backend, metrics
from tocsin.bus import Bus
from tocsin.db import Database
from tocsin.kernel.channels import REPORTS_CHANNEL
from tocsin.models import Report
from tocsin.reports import feed
from tocsin.reports.schemas import ReportAck, ReportIn, ReportStatus
from tocsin.resilience import ThrottledLog, database_unreachable

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
        # The writer's own connection, kept from one batch to the next: taking one from the pool for each batch
        # costs a round trip (the pool's pre-ping), which on a busy event loop is several milliseconds of a batch.
        self.connection: AsyncConnection | None = None

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
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()
            self.connection = None

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
        # The first of several sends of one UUID in the same batch wins; the others get its acknowledgement.
        unique: dict[uuid.UUID, _Pending] = {}
        for item in batch:
            unique.setdefault(item.report.id, item)
        rows = _rows(unique, datetime.now(UTC))
        try:
            stored, numbers = await self._commit(rows)
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
        _acknowledge(batch, unique, stored)
        self._announce(rows, stored, numbers)

    async def _commit(self, rows: list[dict[str, Any]]) -> tuple[dict[uuid.UUID, Stored], dict[int, int]]:
        """One transaction: the new reports, and their numbers in the operator feed. Returns every report of the
        batch as stored (new or resent) by client id, and the feed number of each new real report."""
        async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
            kept = self.connection is not None
            try:
                return await self._commit_once(rows)
            except Exception as exc:
                if not (kept and database_unreachable(exc)):
                    raise
            # The connection kept since the last batch had died (the database restarted meanwhile): once more, on a
            # fresh one. Harmless even if the first COMMIT went through: its reports are then found as resends.
            return await self._commit_once(rows)

    async def _commit_once(self, rows: list[dict[str, Any]]) -> tuple[dict[uuid.UUID, Stored], dict[int, int]]:
        try:
            async with self.database.sessions(bind=await self._connect()) as session:
                stored, numbers = await _insert(session, rows)
                await session.commit()
        except BaseException:  # whatever state the connection is in, the next batch starts on a fresh one
            await self._drop_connection()
            raise
        metrics.REPORTS_INGESTED.inc(sum(1 for row in stored.values() if row.new))
        return stored, numbers

    async def _connect(self) -> AsyncConnection:
        """The kept connection, or a fresh one; never one inside a transaction (a session would join that
        transaction, and the COMMIT would not be the session's)."""
        if self.connection is not None and self.connection.in_transaction():
            await self._drop_connection()
        if self.connection is None:
            self.connection = await self.database.engine.connect()
        return self.connection

    async def _drop_connection(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.invalidate()

    def _announce(self, rows: list[dict[str, Any]], stored: dict[uuid.UUID, Stored], numbers: dict[int, int]) -> None:
        """One bus message per committed batch; each worker hands operators one report_new per report.

        Published in a task of its own, not awaited: an unreachable Redis must not hold up the next batch. The fast
        path may therefore lose this message (Redis restarting, the worker stopping before the task ran), and that
        costs a moment, never a report: every real report was numbered in `operator_events` in the transaction that
        stored it, and each worker reads the feed back from the database whenever it sees a skipped number, when the
        bus comes back, and at every poll (realtime/feed.py); consoles resume by `seq`. Exercise reports have no
        number and are not announced: they stay in the exercise (GET /api/v1/reports?exercise_id=)."""
        events = []
        for values in rows:
            report_id = stored[values["client_id"]].id
            if report_id in numbers:  # a new real report
                events.append(feed.report_new(report_json(values, report_id), numbers[report_id]))
        if not events:
            return
        events.sort(key=_seq)
        task = asyncio.create_task(self.bus.publish(REPORTS_CHANNEL, {"type": "report_batch", "events": events}))
        self.publishing.add(task)
        task.add_done_callback(self.publishing.discard)


class Stored(NamedTuple):
    """A report of the batch as the database holds it."""

    client_id: uuid.UUID
    id: int
    device_id: str
    received_at: datetime
    status: str
    new: bool  # stored by this batch, not by an earlier send of the same UUID

    @classmethod
    def of(cls, row: Any, *, new: bool) -> Stored:
        return cls(row.client_id, row.id, row.device_id, row.received_at, row.status, new)


REPORTS = cast(Table, Report.__table__)
STORED_COLUMNS = (REPORTS.c.client_id, REPORTS.c.id, REPORTS.c.device_id, REPORTS.c.received_at, REPORTS.c.status)


def _rows(unique: dict[uuid.UUID, _Pending], received: datetime) -> list[dict[str, Any]]:
    """The batch's rows, in one lock order everywhere (by client id: two batches never wait for each other in a
    cycle). Points are made in one vectorised call."""
    ordered = sorted(unique.values(), key=lambda pending: pending.report.id.int)
    points = shapely.points([(p.report.location.lon, p.report.location.lat) for p in ordered]) if ordered else []
    return [
        {
            "client_id": p.report.id,
            "device_id": p.device_id,
            "category": p.report.category.value,
            "text": p.report.text.strip(),
            "lon": p.report.location.lon,
            "lat": p.report.location.lat,
            "geom": point,
            "severity": p.report.severity,
            "observed_at": p.report.observed_at,
            "received_at": received,
            "status": ReportStatus.new.value,
            "exercise_id": p.exercise_id,
        }
        for p, point in zip(ordered, points, strict=True)
    ]


async def _insert(session: AsyncSession, rows: list[dict[str, Any]]) -> tuple[dict[uuid.UUID, Stored], dict[int, int]]:
    """The batch's new reports, and the feed entries of the real ones among them (not committed)."""
    # A Core insert (not the ORM's bulk insert: nothing here needs the ORM, and it costs per row).
    statement = backend.insert_ignoring_duplicates(REPORTS, session)
    # RETURNING gives the new rows; a resend (the UUID exists) is looked up instead.
    inserted = await session.execute(statement.returning(*STORED_COLUMNS), rows)
    stored = {row.client_id: Stored.of(row, new=True) for row in inserted}
    missing = [values["client_id"] for values in rows if values["client_id"] not in stored]
    if missing:
        query = select(*STORED_COLUMNS).where(REPORTS.c.client_id.in_(missing))
        stored.update({row.client_id: Stored.of(row, new=False) for row in await session.execute(query)})
    # Real reports enter the operator feed in the same transaction; exercise reports never do.
    real = sorted(stored[v["client_id"]].id for v in rows if stored[v["client_id"]].new and not v["exercise_id"])
    numbers = dict(zip(real, await feed.append(session, [(feed.REPORT_NEW, id_) for id_ in real]), strict=True))
    return stored, numbers


def _acknowledge(batch: list[_Pending], unique: dict[uuid.UUID, _Pending], stored: dict[uuid.UUID, Stored]) -> None:
    """Every sender gets the acknowledgement of its report as stored; `created` only for the send that stored it.
    A UUID another device used is refused."""
    for item in batch:
        row = stored[item.report.id]
        if item.future.done():
            continue
        if row.device_id != item.device_id:
            item.future.set_exception(ReportRefused("duplicate_id", "this report id is already used", "id"))
            continue
        ack = ReportAck(id=row.client_id, report_id=row.id, received_at=row.received_at, status=row.status)
        item.future.set_result((ack, row.new and unique[row.client_id] is item))
