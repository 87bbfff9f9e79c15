"""The alert transition table (alerts/transitions.py): every action's allowed source states and where each goes,
and the refusal (409, with the action's own message and code) of every other move."""

from __future__ import annotations

import pytest

from tocsin.alerts.schemas import AlertState
from tocsin.alerts.transitions import TRANSITIONS, AlertAction, allows, move, require, sources
from tocsin.errors import Conflict
from tocsin.models import Alert

S = AlertState
EXPECTED: dict[AlertAction, dict[AlertState, AlertState]] = {
    AlertAction.edit: {S.draft: S.draft, S.approved: S.draft},
    AlertAction.approve: {S.draft: S.approved},
    AlertAction.issue: {S.draft: S.issued, S.approved: S.issued},
    AlertAction.schedule: {S.draft: S.scheduled, S.approved: S.scheduled},
    AlertAction.issue_scheduled: {S.scheduled: S.issued},
    AlertAction.discard: {S.draft: S.discarded, S.approved: S.discarded, S.scheduled: S.discarded},
    AlertAction.update: {S.issued: S.updated},
    AlertAction.cancel: {S.issued: S.cancelled},
    AlertAction.expire: {S.issued: S.expired},
    AlertAction.end_exercise: {
        S.draft: S.discarded,
        S.approved: S.discarded,
        S.scheduled: S.discarded,
        S.issued: S.expired,
    },
}

# What the API answers when a route's move is refused (tests/alerts/test_lifecycle.py checks these over HTTP too).
REFUSALS = {
    AlertAction.edit: ("an alert in state 'issued' cannot be edited; start an update instead", "not_editable"),
    AlertAction.approve: ("only drafts can be approved; this alert is 'issued'", "not_approvable"),
    AlertAction.issue: ("an alert in state 'issued' cannot be issued", "not_issuable"),
    AlertAction.schedule: ("an alert in state 'issued' cannot be issued", "not_issuable"),
    AlertAction.discard: ("an alert in state 'issued' cannot be discarded", "not_discardable"),
}


def an_alert(state: AlertState) -> Alert:
    return Alert(state=state.value)


class TestTable:
    def test_every_action_has_exactly_its_moves(self) -> None:
        assert set(TRANSITIONS) == set(AlertAction)
        assert {action: dict(t.moves) for action, t in TRANSITIONS.items()} == EXPECTED

    @pytest.mark.parametrize("action", list(AlertAction))
    def test_sources_are_the_states_an_action_starts_from(self, action: AlertAction) -> None:
        assert set(sources(action)) == set(EXPECTED[action])
        for state in AlertState:
            assert allows(action, state.value) == (state in EXPECTED[action])

    @pytest.mark.parametrize("state", [S.updated, S.cancelled, S.expired, S.discarded])
    def test_an_ended_alert_goes_nowhere(self, state: AlertState) -> None:
        assert not any(allows(action, state.value) for action in AlertAction)


class TestRequire:
    @pytest.mark.parametrize("action", list(AlertAction))
    def test_an_allowed_move_gives_its_target(self, action: AlertAction) -> None:
        for source, target in EXPECTED[action].items():
            assert require(action, source.value) == target

    @pytest.mark.parametrize("action", list(AlertAction))
    def test_every_other_move_is_refused_with_the_actions_code(self, action: AlertAction) -> None:
        for state in set(AlertState) - set(EXPECTED[action]):
            with pytest.raises(Conflict) as refused:
                require(action, state.value)
            assert refused.value.status_code == 409
            assert refused.value.code == TRANSITIONS[action].code
            assert f"'{state.value}'" in refused.value.message

    @pytest.mark.parametrize(("action", "refusal"), REFUSALS.items())
    def test_the_routes_refusals_keep_their_words(self, action: AlertAction, refusal: tuple[str, str]) -> None:
        with pytest.raises(Conflict) as refused:
            require(action, S.issued.value)
        assert (refused.value.message, refused.value.code) == refusal

    def test_follow_up_refusal(self) -> None:
        for action in (AlertAction.update, AlertAction.cancel):
            with pytest.raises(Conflict) as refused:
                require(action, S.draft.value)
            assert refused.value.message == "only an issued alert can be updated or cancelled; this one is 'draft'"
            assert refused.value.code == "not_active"


class TestMove:
    def test_moves_the_alert_and_says_where_it_was(self) -> None:
        alert = an_alert(S.approved)
        assert move(alert, AlertAction.edit) == S.approved
        assert alert.state == S.draft.value

    def test_end_of_exercise_expires_an_issued_alert_and_discards_an_unsent_one(self) -> None:
        issued, scheduled = an_alert(S.issued), an_alert(S.scheduled)
        move(issued, AlertAction.end_exercise)
        move(scheduled, AlertAction.end_exercise)
        assert (issued.state, scheduled.state) == (S.expired.value, S.discarded.value)

    def test_a_refused_move_leaves_the_state(self) -> None:
        alert = an_alert(S.issued)
        with pytest.raises(Conflict):
            move(alert, AlertAction.approve)
        assert alert.state == S.issued.value
