"""Where an alert may go from each state: the one table every state change is checked against.

    draft ──edit──▶ draft          approved ──edit──▶ draft (an edit needs a fresh approval)
    draft ──approve──▶ approved
    draft, approved ──issue──▶ issued            draft, approved ──schedule──▶ scheduled
    scheduled ──issue_scheduled──▶ issued (the scheduler, at its time)
    draft, approved, scheduled ──discard──▶ discarded
    issued ──update──▶ updated     issued ──cancel──▶ cancelled     issued ──expire──▶ expired
    draft, approved, scheduled ──end_exercise──▶ discarded;   issued ──end_exercise──▶ expired

`update` and `cancel` are what happens to an issued alert when the Update or Cancel that follows it goes out; a
follow-up can only be drafted for an alert that can still make that move.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from tocsin.alerts.schemas import AlertState
from tocsin.errors import Conflict
from tocsin.models import Alert


class AlertAction(StrEnum):
    edit = "edit"
    approve = "approve"
    issue = "issue"
    schedule = "schedule"
    issue_scheduled = "issue_scheduled"
    discard = "discard"
    update = "update"
    cancel = "cancel"
    expire = "expire"
    end_exercise = "end_exercise"


@dataclass(frozen=True, slots=True)
class Transition:
    moves: Mapping[AlertState, AlertState]  # allowed source state -> the state it moves to
    refusal: str  # the 409's message, with {state}: the alert's current state
    code: str  # the 409's code


TRANSITIONS: Final[Mapping[AlertAction, Transition]] = {
    AlertAction.edit: Transition(
        {AlertState.draft: AlertState.draft, AlertState.approved: AlertState.draft},
        "an alert in state '{state}' cannot be edited; start an update instead",
        "not_editable",
    ),
    AlertAction.approve: Transition(
        {AlertState.draft: AlertState.approved},
        "only drafts can be approved; this alert is '{state}'",
        "not_approvable",
    ),
    AlertAction.issue: Transition(
        {AlertState.draft: AlertState.issued, AlertState.approved: AlertState.issued},
        "an alert in state '{state}' cannot be issued",
        "not_issuable",
    ),
    AlertAction.schedule: Transition(
        {AlertState.draft: AlertState.scheduled, AlertState.approved: AlertState.scheduled},
        "an alert in state '{state}' cannot be issued",
        "not_issuable",
    ),
    AlertAction.issue_scheduled: Transition(
        {AlertState.scheduled: AlertState.issued}, "an alert in state '{state}' is not scheduled", "not_scheduled"
    ),
    AlertAction.discard: Transition(
        {
            AlertState.draft: AlertState.discarded,
            AlertState.approved: AlertState.discarded,
            AlertState.scheduled: AlertState.discarded,
        },
        "an alert in state '{state}' cannot be discarded",
        "not_discardable",
    ),
    AlertAction.update: Transition(
        {AlertState.issued: AlertState.updated},
        "only an issued alert can be updated or cancelled; this one is '{state}'",
        "not_active",
    ),
    AlertAction.cancel: Transition(
        {AlertState.issued: AlertState.cancelled},
        "only an issued alert can be updated or cancelled; this one is '{state}'",
        "not_active",
    ),
    AlertAction.expire: Transition(
        {AlertState.issued: AlertState.expired}, "an alert in state '{state}' is not issued", "not_active"
    ),
    AlertAction.end_exercise: Transition(
        {
            AlertState.draft: AlertState.discarded,
            AlertState.approved: AlertState.discarded,
            AlertState.scheduled: AlertState.discarded,
            AlertState.issued: AlertState.expired,
        },
        "an alert in state '{state}' has already ended",
        "not_active",
    ),
}


def sources(action: AlertAction) -> tuple[AlertState, ...]:
    """The states `action` may start from (for a query of the alerts it applies to)."""
    return tuple(TRANSITIONS[action].moves)


def allows(action: AlertAction, state: str) -> bool:
    return state in TRANSITIONS[action].moves


def require(action: AlertAction, state: str) -> AlertState:
    """The state `action` moves an alert in `state` to; a 409 with the action's own message and code if it may not."""
    transition = TRANSITIONS[action]
    if state not in transition.moves:
        raise Conflict(transition.refusal.format(state=state), code=transition.code)
    return transition.moves[AlertState(state)]


def move(alert: Alert, action: AlertAction) -> AlertState:
    """Move `alert` by `action` (refused with a 409 if its state does not allow it); returns the state it was in."""
    was = AlertState(alert.state)
    alert.state = require(action, alert.state).value
    return was
