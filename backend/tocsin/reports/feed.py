"""The operator feed's record: every new real report and every status change of one, numbered in commit order.

The number (`seq`) is the cursor of `/ws/operator`: each event carries it, and a console or a worker that missed
events (a reconnect, a Redis restart, a lost publish) reads everything after its cursor from here. Entries are
written in the transaction that stores the report or its status; exercise reports get none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.models import OperatorEvent, Report

OPERATOR_EVENTS = cast(Table, OperatorEvent.__table__)
REPORT_NEW = "report_new"
REPORT_STATUS = "report_status"


async def append(session: AsyncSession, entries: list[tuple[str, int]]) -> list[int]:
    """Number (kind, report_id) entries after every committed one; returns their numbers, in order."""
    if not entries:
        return []
    await backend.lock_operator_feed(session)
    last = await latest(session)
    now = datetime.now(UTC)
    seqs = list(range(last + 1, last + 1 + len(entries)))
    rows = [
        {"seq": seq, "kind": kind, "report_id": report_id, "created_at": now}
        for seq, (kind, report_id) in zip(seqs, entries, strict=True)
    ]
    await session.execute(insert(OPERATOR_EVENTS), rows)  # Core: the ORM's bulk insert costs time per row
    return seqs


async def latest(session: AsyncSession) -> int:
    return int((await session.execute(select(func.coalesce(func.max(OperatorEvent.seq), 0)))).scalar_one())


def report_new(report: dict[str, Any], seq: int) -> dict[str, Any]:
    return {"type": REPORT_NEW, "seq": seq, "report": report}


def report_status(row: Report, seq: int | None) -> dict[str, Any]:
    """A status change as operators see it (no device id)."""
    return {
        "type": REPORT_STATUS,
        "seq": seq,
        "report_id": row.id,
        "client_id": str(row.client_id),
        "status": row.status,
        "reason": row.status_reason,
        "by": row.status_by,
        "at": row.status_at.isoformat() if row.status_at else None,
        "duplicate_of": row.duplicate_of,
    }


def report_content(row: Report) -> dict[str, Any]:
    return {
        "id": row.id,
        "client_id": str(row.client_id),
        "category": row.category,
        "text": row.text,
        "location": {"lon": row.lon, "lat": row.lat},
        "severity": row.severity,
        "observed_at": row.observed_at.isoformat(),
        "received_at": row.received_at.isoformat(),
        "status": row.status,
        "exercise_id": row.exercise_id,
    }


async def events_after(session: AsyncSession, seq: int, *, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` feed events after `seq`, in order, as they go on the wire. A new report is shown as it is now
    (its status may have moved on since); events of purged reports are left out."""
    query = (
        select(OperatorEvent.seq, OperatorEvent.kind, Report)
        .join(Report, Report.id == OperatorEvent.report_id)
        .where(OperatorEvent.seq > seq)
        .order_by(OperatorEvent.seq)
        .limit(limit)
    )
    events = []
    for number, kind, row in (await session.execute(query)).all():
        events.append(report_new(report_content(row), number) if kind == REPORT_NEW else report_status(row, number))
    return events
