"""An alert's moves after drafting: approve -> issue (now or scheduled) -> ended by an Update, a Cancel, its expiry
or the end of its exercise; or discarded before it went out. Each move is checked against alerts/transitions.py
with the alert's row locked, written to the audit log, and never committed here: the caller's unit of work commits,
then publishes the delivery events queued on it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.alerts.schemas import AlertState, Status
from tocsin.alerts.service import events
from tocsin.alerts.service.events import AlertEventOut
from tocsin.alerts.service.guards import check_exercise, ending_action, follows_an_active_alert, lock_alert, wrote
from tocsin.alerts.service.queries import cap_content, utcnow
from tocsin.alerts.transitions import TRANSITIONS, AlertAction, allows, move, require, sources
from tocsin.errors import Conflict, Forbidden
from tocsin.kernel import audit, exercise_clock
from tocsin.kernel.work import UnitOfWork
from tocsin.models import Alert, Exercise, User


async def approve(session: AsyncSession, *, alert_id: uuid.UUID, approver: User) -> Alert:
    alert = await lock_alert(session, alert_id)
    require(AlertAction.approve, alert.state)
    if alert.status == Status.actual and (alert.author_id == approver.id or await wrote(session, alert, approver)):
        raise Forbidden(
            "two-person rule: an Actual alert must be approved by someone who did not write or edit it",
            code="two_person_rule",
        )
    move(alert, AlertAction.approve)
    alert.approved_by_id = approver.id
    alert.approved_at = utcnow()
    alert.updated_at = alert.approved_at
    await audit.record(session, actor=approver, action="approve", alert_id=alert.id)
    return alert


async def _check_issuable(session: AsyncSession, alert: Alert) -> Exercise | None:
    """Refused with the reason if the alert may not go out; its exercise (share-locked, running), if it has one."""
    require(AlertAction.issue, alert.state)
    if alert.status == Status.draft:
        raise Conflict("a CAP message with status Draft is not actionable and cannot be issued", code="not_issuable")
    if alert.status == Status.actual and alert.state != AlertState.approved:
        raise Forbidden(
            "an Actual alert must be approved by a second person before it is issued",
            code="approval_required",
        )
    if not await follows_an_active_alert(session, alert):
        raise Conflict(
            "the alert this message follows is no longer active (updated, cancelled or expired)", code="not_active"
        )
    return await check_exercise(session, status=alert.status, exercise_id=alert.exercise_id)


async def issue(
    work: UnitOfWork,
    *,
    alert_id: uuid.UUID,
    issuer: User,
    at: datetime | None = None,
) -> Alert:
    """Issue now, or schedule for `at`. An Actual alert must have been approved (by someone other than its author)."""
    session = work.session
    alert = await lock_alert(session, alert_id)
    exercise = await _check_issuable(session, alert)
    now = utcnow()
    if at is not None and at.astimezone(UTC) > now:
        move(alert, AlertAction.schedule)
        alert.scheduled_for = at.astimezone(UTC)
        alert.issued_by_id = issuer.id
        alert.updated_at = now
        detail = {"at": alert.scheduled_for.isoformat()}
        await audit.record(session, actor=issuer, action="schedule", alert_id=alert.id, detail=detail)
        return alert
    sent = await send(session, alert, AlertAction.issue, exercise=exercise, issuer=issuer, now=now)
    events.queue(work, [sent])
    return alert


async def send(
    session: AsyncSession,
    alert: Alert,
    action: AlertAction,
    *,
    exercise: Exercise | None,
    issuer: User | None,
    now: datetime,
) -> AlertEventOut:
    """The moment a message goes out (`action`: issue, or issue_scheduled): stamp it, end what it replaces, take the
    next delivery sequence number. `exercise`: the alert's exercise as the caller checked it (`check_exercise`), still
    share-locked in this transaction."""
    message = cap_content(alert)
    if alert.origin != "imported":
        message = message.model_copy(update={"sent": now})
        alert.content = message.model_dump(mode="json")
        alert.sent = now
    move(alert, action)
    alert.issued_at = now
    alert.updated_at = now
    if issuer is not None:
        alert.issued_by_id = issuer.id
    await _end_followed(session, alert, now)
    event = await events.append_event(session, alert_id=alert.id, kind="issued", now=now)
    if exercise is not None:
        headline = next((info.headline for info in message.info if info.headline), None) or alert.msg_type
        await exercise_clock.record(
            session,
            exercise,
            key=f"alert:{alert.id}",
            kind="alert",
            title=f"{alert.msg_type}: {headline}",
            alert_id=alert.id,
            actor=issuer.username if issuer is not None else None,
        )
    action_name = {"Update": "update", "Cancel": "cancel"}.get(alert.msg_type, "issue")
    detail = {"identifier": alert.identifier, "seq": event.seq}
    await audit.record(session, actor=issuer, action=action_name, alert_id=alert.id, detail=detail, at=now)
    return event


async def _end_followed(session: AsyncSession, alert: Alert, now: datetime) -> None:
    """An Update supersedes, a Cancel cancels the alert it follows, if that one is still current."""
    action = ending_action(alert)
    if action is None:
        return
    for source, target in TRANSITIONS[action].moves.items():
        await session.execute(
            update(Alert)
            .where(Alert.id == alert.references_alert_id, Alert.state == source.value)
            .values(state=target.value, ended_at=now, updated_at=now)
        )


async def discard(session: AsyncSession, *, alert_id: uuid.UUID, actor: User) -> Alert:
    alert = await lock_alert(session, alert_id)
    was = move(alert, AlertAction.discard)
    alert.updated_at = utcnow()
    await audit.record(session, actor=actor, action="discard", alert_id=alert.id, detail={"was": was.value})
    return alert


async def end_exercise_alerts(work: UnitOfWork, *, exercise_id: str) -> int:
    """When an exercise stops: its issued alerts end now (devices drop them), its unsent ones are discarded.
    Returns how many issued alerts ended."""
    session = work.session
    now = utcnow()
    # The exercise's row first (as its stop does): an issue or edit in its exercise, which share-locks that row,
    # either committed before this (and is ended here) or waits, then finds the exercise ended.
    await backend.get_for_update(session, Exercise, exercise_id)
    candidates = await session.execute(
        select(Alert.id).where(
            Alert.exercise_id == exercise_id,
            Alert.state.in_([state.value for state in sources(AlertAction.end_exercise)]),
        )
    )
    ended: list[AlertEventOut] = []
    for alert_id in candidates.scalars().all():
        alert = await lock_alert(session, alert_id)
        if not allows(AlertAction.end_exercise, alert.state):
            continue  # moved on since the query (a discard won the race)
        was = move(alert, AlertAction.end_exercise)
        alert.updated_at = now
        if alert.state == AlertState.expired:
            alert.ended_at = now
            ended.append(await events.append_event(session, alert_id=alert.id, kind="expired", now=now))
        detail = {"reason": f"exercise {exercise_id} ended", "was": was.value}
        await audit.record(session, actor=None, action="end_exercise", alert_id=alert.id, detail=detail, at=now)
    events.queue(work, ended)
    return len(ended)
