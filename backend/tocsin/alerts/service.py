"""The life of an alert: draft -> approve -> issue (now or scheduled) -> update / cancel / expire.

Every function takes the session first, flushes, and never commits: the caller commits once and then publishes the
events it got back (publish after commit). Every change is written to the audit log in the same transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend, geo
from tocsin.alerts import areas, cap
from tocsin.alerts.schemas import (
    AlertBody,
    AlertDraftIn,
    AlertEditIn,
    AlertState,
    CapAlert,
    FollowUpIn,
    MsgType,
    Scope,
    Status,
)
from tocsin.config import Settings
from tocsin.errors import Conflict, Forbidden, InvalidInput, NotFound
from tocsin.kernel import audit, exercise_clock
from tocsin.kernel.channels import ALERTS_CHANNEL
from tocsin.kernel.work import UnitOfWork
from tocsin.models import Alert, AlertArea, AlertEvent, AuditEntry, Exercise, User

PUBLIC_STATES = (AlertState.issued, AlertState.updated, AlertState.cancelled, AlertState.expired)
ACTIVE_MSG_TYPES = (MsgType.alert.value, MsgType.update.value)


@dataclass(frozen=True, slots=True)
class AlertEventOut:
    """What goes on the bus after commit."""

    seq: int
    kind: str
    alert_id: uuid.UUID

    def message(self) -> dict[str, Any]:
        return {"type": "alert_event", "seq": self.seq, "kind": self.kind, "alert_id": str(self.alert_id)}


def _queue(work: UnitOfWork, events: list[AlertEventOut]) -> None:
    """Every worker's dispatcher hears of these after commit (and finds them by sequence if it did not)."""
    for event in events:
        work.publish_after_commit(ALERTS_CHANNEL, event.message())


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def cap_content(alert: Alert) -> CapAlert:
    return CapAlert.model_validate(alert.content)


def is_active(alert: Alert, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (
        alert.state == AlertState.issued
        and alert.msg_type in ACTIVE_MSG_TYPES
        and (alert.expires_at is None or alert.expires_at > now)
    )


def _expires_at(message: CapAlert) -> datetime | None:
    times = [info.expires for info in message.info if info.expires is not None]
    return max(times).astimezone(UTC) if times else None


def _reference_of(alert: Alert) -> str:
    return f"{alert.sender},{alert.identifier},{cap.format_time(cap_content(alert).sent)}"


async def _get(session: AsyncSession, alert_id: uuid.UUID, *, for_update: bool = False) -> Alert:
    """`for_update`: lock the row, then read it fresh, so two workers cannot both move an alert out of one state."""
    query = select(Alert).where(Alert.id == alert_id)
    if for_update:
        await backend.lock_row(session, Alert.__table__, alert_id)
        query = query.execution_options(populate_existing=True)
        if backend.is_postgres(backend.dialect_of(session)):
            query = query.with_for_update()
    alert = (await session.execute(query)).scalar_one_or_none()
    if alert is None:
        raise NotFound(f"no alert {alert_id}", code="alert_not_found")
    return alert


async def get_alert(session: AsyncSession, *, alert_id: uuid.UUID) -> Alert:
    return await _get(session, alert_id)


async def _replace_areas(session: AsyncSession, alert: Alert, shapes: list[areas.AreaShape]) -> None:
    await session.execute(delete(AlertArea).where(AlertArea.alert_id == alert.id))
    for shape in shapes:
        box = geo.bbox(shape.geometry) if shape.geometry is not None else (None, None, None, None)
        session.add(
            AlertArea(
                alert_id=alert.id,
                info_index=shape.info_index,
                area_index=shape.area_index,
                area_desc=shape.area_desc,
                geom=shape.geometry,
                min_lon=box[0],
                min_lat=box[1],
                max_lon=box[2],
                max_lat=box[3],
            )
        )


def _check_circles(body: AlertBody) -> None:
    for i, info in enumerate(body.info):
        for j, area in enumerate(info.area):
            for k, circle in enumerate(area.circles):
                try:
                    geo.check_circle(circle.to_circle(), "center")
                except geo.GeometryError as exc:
                    raise InvalidInput(str(exc), field=f"info[{i}].area[{j}].circles[{k}].{exc.field}") from None


def _check_times(message: CapAlert) -> None:
    for i, info in enumerate(message.info):
        if info.expires is not None and info.onset is not None and info.expires <= info.onset:
            raise InvalidInput("expires must be after onset", field=f"info[{i}].expires")
        if info.expires is not None and info.effective is not None and info.expires <= info.effective:
            raise InvalidInput("expires must be after effective", field=f"info[{i}].expires")


async def _store_new(
    session: AsyncSession,
    *,
    message: CapAlert,
    author: User,
    origin: str,
    action: str,
    template_id: str | None = None,
    exercise_id: str | None = None,
    original_xml: str | None = None,
    signed: bool = False,
    references_alert_id: uuid.UUID | None = None,
    alert_id: uuid.UUID | None = None,
) -> Alert:
    shapes = await areas.area_shapes(message, cap_names=origin == "imported")
    now = utcnow()
    alert = Alert(
        id=alert_id or backend.new_uuid(),
        identifier=message.identifier,
        sender=message.sender,
        sent=message.sent,
        status=message.status.value,
        msg_type=message.msgType.value,
        scope=message.scope.value,
        state=AlertState.draft.value,
        origin=origin,
        template_id=template_id,
        content=message.model_dump(mode="json"),
        original_xml=original_xml,
        signed=signed,
        references_alert_id=references_alert_id,
        exercise_id=exercise_id,
        author_id=author.id,
        expires_at=_expires_at(message),
        created_at=now,
        updated_at=now,
    )
    session.add(alert)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Conflict(
            f"an alert from {message.sender} with identifier {message.identifier} exists already",
            field="identifier",
            code="duplicate_alert",
        ) from None
    await _replace_areas(session, alert, shapes)
    detail = {"identifier": alert.identifier, "status": alert.status, "msgType": alert.msg_type}
    await audit.record(session, actor=author, action=action, alert_id=alert.id, detail=detail)
    return alert


async def _check_exercise(session: AsyncSession, *, status: str, exercise_id: str | None) -> Exercise | None:
    """Exercise messages belong to an exercise that has not ended; no other message belongs to one."""
    if exercise_id is None:
        return None
    if status != Status.exercise:
        raise InvalidInput("only an alert with status Exercise belongs to an exercise", field="exercise_id")
    # FOR SHARE on PostgreSQL: a stop waits for this transaction, and then ends what it issued.
    statement = select(Exercise).where(Exercise.id == exercise_id).with_for_update(read=True)
    exercise = (await session.execute(statement)).scalar_one_or_none()
    if exercise is None:
        raise InvalidInput(f"no exercise '{exercise_id}'", field="exercise_id")
    if exercise.state in exercise_clock.ENDED:
        raise Conflict(f"the exercise '{exercise_id}' has ended", field="exercise_id", code="exercise_ended")
    return exercise


def _message_from_body(
    body: AlertBody,
    *,
    alert_id: uuid.UUID,
    settings: Settings,
    msg_type: MsgType,
    references: str | None = None,
    sent: datetime | None = None,
) -> CapAlert:
    _check_circles(body)
    fields = body.model_dump(exclude={"exercise_id"})
    message = CapAlert.model_validate(
        {
            **fields,
            "identifier": f"{settings.cap_identifier_prefix}-{alert_id}",
            "sender": settings.cap_sender,
            "sent": sent or utcnow(),
            "msgType": msg_type,
            "references": references,
        }
    )
    _check_times(message)
    return message


async def create_draft(
    session: AsyncSession,
    *,
    body: AlertDraftIn,
    author: User,
    settings: Settings,
    origin: str = "drafted",
    template_id: str | None = None,
) -> Alert:
    await _check_exercise(session, status=body.status.value, exercise_id=body.exercise_id)
    alert_id = backend.new_uuid()
    message = _message_from_body(body, alert_id=alert_id, settings=settings, msg_type=MsgType.alert)
    return await _store_new(
        session,
        message=message,
        author=author,
        origin=origin,
        action="create",
        template_id=template_id,
        exercise_id=body.exercise_id,
        alert_id=alert_id,
    )


async def import_cap(session: AsyncSession, *, data: bytes, author: User, settings: Settings) -> Alert:
    """A CAP 1.2 message from elsewhere becomes a draft here; an Actual one still needs a second person to approve."""
    # Parsing and schema validation of a 2 MiB message take seconds of CPU: not on the event loop.
    message, root = await asyncio.to_thread(cap.parse_cap, data, settings.max_cap_bytes)
    _check_times(message)
    return await _store_new(
        session,
        message=message,
        author=author,
        origin="imported",
        action="import",
        original_xml=data.decode(root.getroottree().docinfo.encoding or "utf-8", errors="replace"),
        signed=cap.has_signature(root),
    )


async def edit_draft(
    session: AsyncSession, *, alert_id: uuid.UUID, body: AlertEditIn, actor: User, settings: Settings
) -> Alert:
    alert = await _get(session, alert_id, for_update=True)
    if alert.state not in (AlertState.draft, AlertState.approved):
        raise Conflict(
            f"an alert in state '{alert.state}' cannot be edited; start an update instead",
            code="not_editable",
        )
    current = cap_content(alert)
    _check_circles(body)
    if alert.references_alert_id is not None and (body.status != current.status or body.scope != current.scope):
        # An Update or Cancel speaks for the alert it follows: a Test "cancel" must not end a real alert.
        field = "status" if body.status != current.status else "scope"
        raise InvalidInput(f"an {current.msgType.value} keeps the {field} of the alert it follows", field=field)
    await _check_exercise(session, status=body.status.value, exercise_id=alert.exercise_id)
    message = CapAlert.model_validate(
        {
            **current.model_dump(),
            **body.model_dump(),
            "identifier": current.identifier,
            "sender": current.sender,
            "sent": current.sent,
            "msgType": current.msgType,
            "references": current.references,
        }
    )
    _check_times(message)
    shapes = await areas.area_shapes(message)
    was_approved = alert.state == AlertState.approved
    alert.content = message.model_dump(mode="json")
    alert.status, alert.scope = message.status.value, message.scope.value
    alert.expires_at = _expires_at(message)
    alert.state = AlertState.draft.value  # an edit needs a fresh approval
    alert.approved_by_id = None
    alert.approved_at = None
    alert.updated_at = utcnow()
    alert.original_xml = None  # no longer what the sender signed and sent
    alert.signed = False
    await _replace_areas(session, alert, shapes)
    await audit.record(
        session, actor=actor, action="edit", alert_id=alert.id, detail={"approval_withdrawn": was_approved}
    )
    return alert


async def approve(session: AsyncSession, *, alert_id: uuid.UUID, approver: User) -> Alert:
    alert = await _get(session, alert_id, for_update=True)
    if alert.state != AlertState.draft:
        raise Conflict(f"only drafts can be approved; this alert is '{alert.state}'", code="not_approvable")
    if alert.status == Status.actual and (alert.author_id == approver.id or await _wrote(session, alert, approver)):
        raise Forbidden(
            "two-person rule: an Actual alert must be approved by someone who did not write or edit it",
            code="two_person_rule",
        )
    alert.state = AlertState.approved.value
    alert.approved_by_id = approver.id
    alert.approved_at = utcnow()
    alert.updated_at = alert.approved_at
    await audit.record(session, actor=approver, action="approve", alert_id=alert.id)
    return alert


async def issue(
    work: UnitOfWork,
    *,
    alert_id: uuid.UUID,
    issuer: User,
    at: datetime | None = None,
) -> Alert:
    """Issue now, or schedule for `at`. An Actual alert must have been approved (by someone other than its author)."""
    session = work.session
    alert = await _get(session, alert_id, for_update=True)
    if alert.state not in (AlertState.draft, AlertState.approved):
        raise Conflict(f"an alert in state '{alert.state}' cannot be issued", code="not_issuable")
    if alert.status == Status.draft:
        raise Conflict("a CAP message with status Draft is not actionable and cannot be issued", code="not_issuable")
    if alert.status == Status.actual and alert.state != AlertState.approved:
        raise Forbidden(
            "an Actual alert must be approved by a second person before it is issued",
            code="approval_required",
        )
    if not await _follows_an_active_alert(session, alert):
        raise Conflict(
            "the alert this message follows is no longer active (updated, cancelled or expired)", code="not_active"
        )
    await _check_exercise(session, status=alert.status, exercise_id=alert.exercise_id)
    now = utcnow()
    if at is not None and at.astimezone(UTC) > now:
        alert.state = AlertState.scheduled.value
        alert.scheduled_for = at.astimezone(UTC)
        alert.issued_by_id = issuer.id
        alert.updated_at = now
        await audit.record(
            session,
            actor=issuer,
            action="schedule",
            alert_id=alert.id,
            detail={"at": alert.scheduled_for.isoformat()},
        )
        return alert
    _queue(work, await _send(session, alert, issuer=issuer, now=now))
    return alert


async def _send(session: AsyncSession, alert: Alert, *, issuer: User | None, now: datetime) -> list[AlertEventOut]:
    """The moment a message goes out: stamp it, end what it replaces, take the next delivery sequence number."""
    exercise = await _check_exercise(session, status=alert.status, exercise_id=alert.exercise_id)
    message = cap_content(alert)
    if alert.origin != "imported":
        message = message.model_copy(update={"sent": now})
        alert.content = message.model_dump(mode="json")
        alert.sent = now
    alert.state = AlertState.issued.value
    alert.issued_at = now
    alert.updated_at = now
    if issuer is not None:
        alert.issued_by_id = issuer.id
    action = {"Update": "update", "Cancel": "cancel"}.get(alert.msg_type, "issue")
    if alert.references_alert_id is not None and alert.msg_type in ("Update", "Cancel"):
        ended = AlertState.updated if alert.msg_type == "Update" else AlertState.cancelled
        await session.execute(
            update(Alert)
            .where(Alert.id == alert.references_alert_id, Alert.state == AlertState.issued.value)
            .values(state=ended.value, ended_at=now, updated_at=now)
        )
    event = await _append_event(session, alert_id=alert.id, kind="issued", now=now)
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
    await audit.record(
        session,
        actor=issuer,
        action=action,
        alert_id=alert.id,
        detail={"identifier": alert.identifier, "seq": event.seq},
        at=now,
    )
    return [event]


async def _append_event(session: AsyncSession, *, alert_id: uuid.UUID, kind: str, now: datetime) -> AlertEventOut:
    await backend.lock_delivery_sequence(session)
    row = AlertEvent(alert_id=alert_id, kind=kind, at=now)
    session.add(row)
    await session.flush()
    return AlertEventOut(seq=row.seq, kind=kind, alert_id=alert_id)


async def start_follow_up(
    session: AsyncSession,
    *,
    alert_id: uuid.UUID,
    kind: Literal["update", "cancel"],
    body: FollowUpIn,
    author: User,
    settings: Settings,
) -> Alert:
    """A new draft message (Update or Cancel) whose `references` names the earlier messages, as CAP 1.2 requires."""
    earlier = await _get(session, alert_id)
    if earlier.state != AlertState.issued or earlier.msg_type == "Cancel":
        raise Conflict(
            f"only an issued alert can be updated or cancelled; this one is '{earlier.state}'",
            code="not_active",
        )
    current = cap_content(earlier)
    chain = " ".join(part for part in (current.references, _reference_of(earlier)) if part)
    base = AlertBody.model_validate(
        {
            **current.model_dump(include=set(AlertBody.model_fields)),
            "info": [i.model_dump() for i in body.info] if body.info else [i.model_dump() for i in current.info],
            "note": body.note if body.note is not None else current.note,
        }
    )
    new_id = backend.new_uuid()
    msg_type = MsgType.update if kind == "update" else MsgType.cancel
    message = _message_from_body(base, alert_id=new_id, settings=settings, msg_type=msg_type, references=chain)
    return await _store_new(
        session,
        message=message,
        author=author,
        origin="drafted",
        action=f"{kind}_draft",
        alert_id=new_id,
        references_alert_id=earlier.id,
        exercise_id=earlier.exercise_id,
        template_id=earlier.template_id,
    )


async def discard(session: AsyncSession, *, alert_id: uuid.UUID, actor: User) -> Alert:
    alert = await _get(session, alert_id, for_update=True)
    if alert.state not in (AlertState.draft, AlertState.approved, AlertState.scheduled):
        raise Conflict(f"an alert in state '{alert.state}' cannot be discarded", code="not_discardable")
    was = alert.state
    alert.state = AlertState.discarded.value
    alert.updated_at = utcnow()
    await audit.record(session, actor=actor, action="discard", alert_id=alert.id, detail={"was": was})
    return alert


# ---- scheduled work (idempotent: what is due is recomputed from our tables every run) ----------------------------


async def issue_due(work: UnitOfWork, *, now: datetime | None = None) -> int:
    """Send the scheduled alerts whose time came; returns how many went out."""
    session = work.session
    now = now or utcnow()
    due = (
        (
            await session.execute(
                select(Alert)
                .where(Alert.state == AlertState.scheduled.value, Alert.scheduled_for <= now)
                .order_by(Alert.scheduled_for)
                .limit(100)
            )
        )
        .scalars()
        .all()
    )
    events: list[AlertEventOut] = []
    for candidate in due:
        alert = await _get(session, candidate.id, for_update=True)  # a discard may have won the race: check again
        if alert.state != AlertState.scheduled:
            continue
        reason = None
        if not await _follows_an_active_alert(session, alert):
            reason = "the alert it follows ended before its scheduled time"
        else:
            try:
                await _check_exercise(session, status=alert.status, exercise_id=alert.exercise_id)
            except (InvalidInput, Conflict) as refused:  # its exercise ended: this one goes, the others go on
                reason = refused.message
        if reason is not None:
            alert.state = AlertState.discarded.value
            alert.updated_at = now
            detail = {"reason": reason}
            await audit.record(session, actor=None, action="discard", alert_id=alert.id, detail=detail, at=now)
            continue
        issuer = None if alert.issued_by_id is None else await session.get(User, alert.issued_by_id)
        events += await _send(session, alert, issuer=issuer, now=now)
    _queue(work, events)
    return len(events)


async def _follows_an_active_alert(session: AsyncSession, alert: Alert) -> bool:
    """An Update or Cancel goes out only while the message it follows is still the current one."""
    if alert.references_alert_id is None:
        return True
    earlier = await session.get(Alert, alert.references_alert_id)
    return earlier is not None and earlier.state == AlertState.issued


async def _wrote(session: AsyncSession, alert: Alert, user: User) -> bool:
    """Did this user write or edit the alert's content? (The audit log records every edit.)"""
    found = await session.execute(
        select(AuditEntry.id)
        .where(
            AuditEntry.alert_id == alert.id,
            AuditEntry.actor_id == user.id,
            AuditEntry.action.in_(("create", "import", "edit", "update_draft", "cancel_draft")),
        )
        .limit(1)
    )
    return found.first() is not None


async def end_exercise_alerts(work: UnitOfWork, *, exercise_id: str) -> int:
    """When an exercise stops: its issued alerts end now (devices drop them), its unsent ones are discarded.
    Returns how many issued alerts ended."""
    session = work.session
    now = utcnow()
    rows = (
        await session.execute(
            select(Alert)
            .where(
                Alert.exercise_id == exercise_id,
                Alert.state.in_(
                    [s.value for s in (AlertState.draft, AlertState.approved, AlertState.scheduled, AlertState.issued)]
                ),
            )
            .with_for_update()
        )
    ).scalars()
    events: list[AlertEventOut] = []
    for alert in rows:
        was = alert.state
        alert.updated_at = now
        if was == AlertState.issued:
            alert.state = AlertState.expired.value
            alert.ended_at = now
            events.append(await _append_event(session, alert_id=alert.id, kind="expired", now=now))
        else:
            alert.state = AlertState.discarded.value
        detail = {"reason": f"exercise {exercise_id} ended", "was": was}
        await audit.record(session, actor=None, action="end_exercise", alert_id=alert.id, detail=detail, at=now)
    _queue(work, events)
    return len(events)


async def expire_due(work: UnitOfWork, *, now: datetime | None = None) -> int:
    """End the issued alerts whose `expires` passed; returns how many."""
    session = work.session
    now = now or utcnow()
    due = (
        (
            await session.execute(
                select(Alert).where(Alert.state == AlertState.issued.value, Alert.expires_at <= now).limit(500)
            )
        )
        .scalars()
        .all()
    )
    events: list[AlertEventOut] = []
    for candidate in due:
        # Two schedulers (or a run that overlaps itself) may pick the same alert: the one that locks it first expires
        # it; the other finds it no longer issued and leaves it (one state change, one event, one audit entry).
        alert = await _get(session, candidate.id, for_update=True)
        if alert.state != AlertState.issued:
            continue
        alert.state = AlertState.expired.value
        alert.ended_at = now
        alert.updated_at = now
        events.append(await _append_event(session, alert_id=alert.id, kind="expired", now=now))
        await audit.record(
            session,
            actor=None,
            action="expire",
            alert_id=alert.id,
            detail={"expires_at": alert.expires_at.isoformat() if alert.expires_at else None},
            at=now,
        )
    _queue(work, events)
    return len(events)


# ---- queries --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertQuery:
    active: bool | None = None
    lat: float | None = None
    lon: float | None = None
    status: Status | None = None
    state: AlertState | None = None
    public_only: bool = True
    exercise_id: str | None = None
    limit: int = 100
    offset: int = 0


async def find_alerts(session: AsyncSession, *, query: AlertQuery) -> Sequence[Alert]:
    now = utcnow()
    statement = select(Alert).order_by(Alert.created_at.desc(), Alert.id)
    if query.public_only:
        statement = statement.where(
            Alert.status == Status.actual.value,
            Alert.scope == Scope.public.value,
            Alert.state.in_([s.value for s in PUBLIC_STATES]),
        )
    if query.active is True:
        statement = statement.where(
            Alert.state == AlertState.issued.value,
            Alert.msg_type.in_(ACTIVE_MSG_TYPES),
            or_(Alert.expires_at.is_(None), Alert.expires_at > now),
        )
    elif query.active is False:
        statement = statement.where(
            or_(
                Alert.state != AlertState.issued.value,
                Alert.msg_type.not_in(ACTIVE_MSG_TYPES),
                Alert.expires_at <= now,
            )
        )
    if query.status is not None:
        statement = statement.where(Alert.status == query.status.value)
    if query.state is not None:
        statement = statement.where(Alert.state == query.state.value)
    if query.exercise_id is not None:
        statement = statement.where(Alert.exercise_id == query.exercise_id)
    dialect = backend.dialect_of(session)
    if query.lat is not None and query.lon is not None:
        covers = backend.area_covers_point_sql(
            AlertArea.geom,
            (AlertArea.min_lon, AlertArea.min_lat, AlertArea.max_lon, AlertArea.max_lat),
            query.lon,
            query.lat,
            dialect,
        )
        statement = statement.where(exists(select(AlertArea.id).where(AlertArea.alert_id == Alert.id, covers)))
        if backend.needs_exact_check(dialect):
            candidates = (await session.execute(statement)).scalars().all()
            exact = await _exactly_covering(session, candidates, query.lon, query.lat)
            return exact[query.offset : query.offset + query.limit]
    statement = statement.limit(query.limit).offset(query.offset)
    return (await session.execute(statement)).scalars().all()


async def _exactly_covering(session: AsyncSession, alerts: Sequence[Alert], lon: float, lat: float) -> list[Alert]:
    """SQLite: the bounding boxes matched; decide with shapely."""
    if not alerts:
        return []
    areas = await areas_of(session, alert_ids=[a.id for a in alerts])
    hits = {
        alert_id for alert_id, geometries in areas.items() if any(geo.covers_point(g, lon, lat) for g in geometries)
    }
    return [a for a in alerts if a.id in hits]


async def areas_of(session: AsyncSession, *, alert_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    rows = (
        await session.execute(
            select(AlertArea.alert_id, AlertArea.geom).where(
                AlertArea.alert_id.in_(alert_ids), AlertArea.geom.is_not(None)
            )
        )
    ).all()
    found: dict[uuid.UUID, list[Any]] = {}
    for alert_id, geometry in rows:
        found.setdefault(alert_id, []).append(geometry)
    return found


async def count_events(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(AlertEvent))).scalar_one())
