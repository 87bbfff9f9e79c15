"""The checks an alert's change makes under lock: the alert's row (locked, read afresh), the exercise it belongs
to (share-locked, not ended), the message it follows (still the current one), who wrote it (two-person rule)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import backend
from tocsin.alerts.schemas import MsgType, Status
from tocsin.alerts.service.queries import not_found
from tocsin.alerts.transitions import AlertAction, allows
from tocsin.errors import Conflict, InvalidInput
from tocsin.kernel import exercise_clock
from tocsin.models import Alert, AuditEntry, Exercise, User

# The audit actions that write an alert's content: whoever did one of these may not approve it.
WRITING_ACTIONS = ("create", "import", "edit", "update_draft", "cancel_draft")
_ENDING = {MsgType.update.value: AlertAction.update, MsgType.cancel.value: AlertAction.cancel}


async def lock_alert(session: AsyncSession, alert_id: uuid.UUID) -> Alert:
    """Lock the row, then read it fresh, so two workers cannot both move an alert out of one state.

    An exercise's alert: its exercise's row is share-locked first. A stop locks the exercise, then its alerts
    (end_exercise_alerts); taking them in the same order here means the two wait for each other, never deadlock."""
    exercise_id = (await session.execute(select(Alert.exercise_id).where(Alert.id == alert_id))).scalar_one_or_none()
    if exercise_id is not None:
        await backend.get_for_update(session, Exercise, exercise_id, shared=True)
    alert = await backend.get_for_update(session, Alert, alert_id)
    if alert is None:
        raise not_found(alert_id)
    return alert


async def check_exercise(session: AsyncSession, *, status: str, exercise_id: str | None) -> Exercise | None:
    """Exercise messages belong to an exercise that has not ended; no other message belongs to one."""
    if exercise_id is None:
        return None
    if status != Status.exercise:
        raise InvalidInput("only an alert with status Exercise belongs to an exercise", field="exercise_id")
    # Share-locked: a stop (which locks the exercise for update) waits for this transaction, then ends what it issued.
    exercise = await backend.get_for_update(session, Exercise, exercise_id, shared=True)
    if exercise is None:
        raise InvalidInput(f"no exercise '{exercise_id}'", field="exercise_id")
    if exercise.state in exercise_clock.ENDED:
        raise Conflict(f"the exercise '{exercise_id}' has ended", field="exercise_id", code="exercise_ended")
    return exercise


def ending_action(alert: Alert) -> AlertAction | None:
    """What sending this message does to the one it follows: an Update supersedes it, a Cancel cancels it."""
    if alert.references_alert_id is None:
        return None
    return _ENDING.get(alert.msg_type)


async def follows_an_active_alert(session: AsyncSession, alert: Alert) -> bool:
    """An Update or Cancel goes out only while the message it follows is still the current one."""
    action = ending_action(alert)
    if action is None or alert.references_alert_id is None:
        return True
    earlier = await session.get(Alert, alert.references_alert_id)
    return earlier is not None and allows(action, earlier.state)


async def wrote(session: AsyncSession, alert: Alert, user: User) -> bool:
    """Did this user write or edit the alert's content? (The audit log records every edit.)"""
    found = await session.execute(
        select(AuditEntry.id)
        .where(
            AuditEntry.alert_id == alert.id,
            AuditEntry.actor_id == user.id,
            AuditEntry.action.in_(WRITING_ACTIONS),
        )
        .limit(1)
    )
    return found.first() is not None
