"""Scheduled work on alerts, run by the scheduler in its own unit of work. Idempotent: what is due is recomputed from
our tables every run, and each alert is locked and checked again before it moves, so two runs at once (two
schedulers, or a run that overlaps itself) move it once: one state change, one event, one audit entry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin.alerts.service import events
from tocsin.alerts.service.events import AlertEventOut
from tocsin.alerts.service.guards import check_exercise, follows_an_active_alert, lock_alert
from tocsin.alerts.service.lifecycle import send
from tocsin.alerts.service.queries import utcnow
from tocsin.alerts.transitions import AlertAction, allows, move, sources
from tocsin.errors import Conflict, InvalidInput
from tocsin.kernel import audit
from tocsin.kernel.work import UnitOfWork
from tocsin.models import Alert, Exercise, User


def _in_states(action: AlertAction) -> list[str]:
    return [state.value for state in sources(action)]


async def issue_due(work: UnitOfWork, *, now: datetime | None = None) -> int:
    """Send the scheduled alerts whose time came; returns how many went out."""
    session = work.session
    now = now or utcnow()
    due = await session.execute(
        select(Alert.id)
        .where(Alert.state.in_(_in_states(AlertAction.issue_scheduled)), Alert.scheduled_for <= now)
        .order_by(Alert.scheduled_for)
        .limit(100)
    )
    sent: list[AlertEventOut] = []
    for alert_id in due.scalars().all():
        alert = await lock_alert(session, alert_id)
        if not allows(AlertAction.issue_scheduled, alert.state):
            continue  # a discard won the race
        reason, exercise = await _why_not_sent(session, alert)
        if reason is not None:
            move(alert, AlertAction.discard)
            alert.updated_at = now
            detail = {"reason": reason}
            await audit.record(session, actor=None, action="discard", alert_id=alert.id, detail=detail, at=now)
            continue
        issuer = None if alert.issued_by_id is None else await session.get(User, alert.issued_by_id)
        sent.append(await send(session, alert, AlertAction.issue_scheduled, exercise=exercise, issuer=issuer, now=now))
    events.queue(work, sent)
    return len(sent)


async def _why_not_sent(session: AsyncSession, alert: Alert) -> tuple[str | None, Exercise | None]:
    """Why a scheduled alert whose time came is discarded instead of sent (None when it goes), and its exercise as
    checked (share-locked), if it has one."""
    if not await follows_an_active_alert(session, alert):
        return "the alert it follows ended before its scheduled time", None
    try:
        return None, await check_exercise(session, status=alert.status, exercise_id=alert.exercise_id)
    except (InvalidInput, Conflict) as refused:  # its exercise ended: this one goes, the others go on
        return refused.message, None


async def expire_due(work: UnitOfWork, *, now: datetime | None = None) -> int:
    """End the issued alerts whose `expires` passed; returns how many."""
    session = work.session
    now = now or utcnow()
    due = await session.execute(
        select(Alert.id).where(Alert.state.in_(_in_states(AlertAction.expire)), Alert.expires_at <= now).limit(500)
    )
    expired: list[AlertEventOut] = []
    for alert_id in due.scalars().all():
        alert = await lock_alert(session, alert_id)
        if not allows(AlertAction.expire, alert.state):
            continue  # another run expired it first
        move(alert, AlertAction.expire)
        alert.ended_at = now
        alert.updated_at = now
        expired.append(await events.append_event(session, alert_id=alert.id, kind="expired", now=now))
        detail = {"expires_at": alert.expires_at.isoformat() if alert.expires_at else None}
        await audit.record(session, actor=None, action="expire", alert_id=alert.id, detail=detail, at=now)
    events.queue(work, expired)
    return len(expired)
