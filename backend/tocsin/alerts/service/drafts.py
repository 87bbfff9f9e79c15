"""Writing an alert's content: a new draft (drafted, from a template, imported as CAP, or an Update / Cancel of an
issued alert) and the edit of a draft. Every function adds to the caller's transaction and never commits."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend, geo
from tocsin.alerts import areas, cap
from tocsin.alerts.schemas import AlertBody, AlertDraftIn, AlertEditIn, AlertState, CapAlert, FollowUpIn, MsgType
from tocsin.alerts.service.guards import check_exercise, lock_alert
from tocsin.alerts.service.queries import cap_content, get_alert, utcnow
from tocsin.alerts.transitions import AlertAction, move, require
from tocsin.config import Settings
from tocsin.errors import Conflict, InvalidInput
from tocsin.kernel import audit
from tocsin.models import Alert, AlertArea, User


def _expires_at(message: CapAlert) -> datetime | None:
    times = [info.expires for info in message.info if info.expires is not None]
    return max(times).astimezone(UTC) if times else None


def _reference_of(alert: Alert) -> str:
    return f"{alert.sender},{alert.identifier},{cap.format_time(cap_content(alert).sent)}"


async def _replace_areas(session: AsyncSession, alert_id: uuid.UUID, shapes: list[areas.AreaShape]) -> None:
    await session.execute(delete(AlertArea).where(AlertArea.alert_id == alert_id))
    for shape in shapes:
        box = geo.bbox(shape.geometry) if shape.geometry is not None else (None, None, None, None)
        session.add(
            AlertArea(
                alert_id=alert_id,
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


def _row_of(message: CapAlert, *, alert_id: uuid.UUID, origin: str, author: User) -> dict[str, Any]:
    """A new draft's columns that come from its message."""
    now = utcnow()
    return {
        "id": alert_id,
        "identifier": message.identifier,
        "sender": message.sender,
        "sent": message.sent,
        "status": message.status.value,
        "msg_type": message.msgType.value,
        "scope": message.scope.value,
        "state": AlertState.draft.value,
        "origin": origin,
        "content": message.model_dump(mode="json"),
        "author_id": author.id,
        "expires_at": _expires_at(message),
        "created_at": now,
        "updated_at": now,
    }


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
    """Insert the new draft unless an alert from the same sender with the same identifier exists (a 409 then).
    Insert-or-ignore refuses only this message: the caller's transaction, and what it did before, go on."""
    shapes = await areas.area_shapes(message, cap_names=origin == "imported")
    alert_id = alert_id or backend.new_uuid()
    row = _row_of(message, alert_id=alert_id, origin=origin, author=author)
    row |= {
        "template_id": template_id,
        "exercise_id": exercise_id,
        "original_xml": original_xml,
        "signed": signed,
        "references_alert_id": references_alert_id,
    }
    if not await backend.insert_or_ignore(session, Alert, row):
        raise Conflict(
            f"an alert from {message.sender} with identifier {message.identifier} exists already",
            field="identifier",
            code="duplicate_alert",
        )
    alert = await get_alert(session, alert_id=alert_id)
    await _replace_areas(session, alert.id, shapes)
    detail = {"identifier": alert.identifier, "status": alert.status, "msgType": alert.msg_type}
    await audit.record(session, actor=author, action=action, alert_id=alert.id, detail=detail)
    return alert


def _message_from_body(
    body: AlertBody,
    *,
    alert_id: uuid.UUID,
    settings: Settings,
    msg_type: MsgType,
    references: str | None = None,
) -> CapAlert:
    _check_circles(body)
    fields = body.model_dump(exclude={"exercise_id"})
    message = CapAlert.model_validate(
        {
            **fields,
            "identifier": f"{settings.cap_identifier_prefix}-{alert_id}",
            "sender": settings.cap_sender,
            "sent": utcnow(),
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
    await check_exercise(session, status=body.status.value, exercise_id=body.exercise_id)
    alert_id = backend.new_uuid()
    message = _message_from_body(body, alert_id=alert_id, settings=settings, msg_type=MsgType.alert)
    return await _store_new(
        session,
        message=message,
        author=author,
        origin=origin,
        action="create",
        alert_id=alert_id,
        template_id=template_id,
        exercise_id=body.exercise_id,
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


def _check_keeps_chain(alert: Alert, current: CapAlert, body: AlertEditIn) -> None:
    if alert.references_alert_id is not None and (body.status != current.status or body.scope != current.scope):
        # An Update or Cancel speaks for the alert it follows: a Test "cancel" must not end a real alert.
        field = "status" if body.status != current.status else "scope"
        raise InvalidInput(f"an {current.msgType.value} keeps the {field} of the alert it follows", field=field)


def _edited_message(current: CapAlert, body: AlertEditIn) -> CapAlert:
    """The message with the edit's content; what identifies the message and its place in a chain stays."""
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
    return message


async def edit_draft(
    session: AsyncSession, *, alert_id: uuid.UUID, body: AlertEditIn, actor: User, settings: Settings
) -> Alert:
    alert = await lock_alert(session, alert_id)
    require(AlertAction.edit, alert.state)
    current = cap_content(alert)
    _check_circles(body)
    _check_keeps_chain(alert, current, body)
    await check_exercise(session, status=body.status.value, exercise_id=alert.exercise_id)
    message = _edited_message(current, body)
    shapes = await areas.area_shapes(message)
    was = move(alert, AlertAction.edit)  # an edit needs a fresh approval
    alert.content = message.model_dump(mode="json")
    alert.status, alert.scope = message.status.value, message.scope.value
    alert.expires_at = _expires_at(message)
    alert.approved_by_id = None
    alert.approved_at = None
    alert.updated_at = utcnow()
    alert.original_xml = None  # no longer what the sender signed and sent
    alert.signed = False
    await _replace_areas(session, alert.id, shapes)
    detail = {"approval_withdrawn": was == AlertState.approved}
    await audit.record(session, actor=actor, action="edit", alert_id=alert.id, detail=detail)
    return alert


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
    earlier = await get_alert(session, alert_id=alert_id)
    # Once issued, the follow-up moves the earlier alert on (issued -> updated / cancelled): it must still be able to.
    require(AlertAction.update if kind == "update" else AlertAction.cancel, earlier.state)
    if earlier.msg_type == MsgType.cancel:
        raise Conflict(
            f"only an issued alert can be updated or cancelled; this one is '{earlier.state}'", code="not_active"
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
