"""Row locks on alerts, on both backends: an issue that runs into an exercise's stop waits for it and is refused,
never deadlocked (both take the exercise's row before the alert's)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from tests.alerts.factories import alert_body
from tests.conftest import Harness
from tests.exercises.helpers import running_exercise
from tests.waiting import wait_until
from tocsin import backend
from tocsin.alerts import service as alerts
from tocsin.auth.schemas import Role
from tocsin.kernel.work import unit_of_work
from tocsin.models import Alert, AuditEntry, Exercise

EXERCISE_ID = "ex-locks"


async def _running_exercise(h: Harness) -> None:
    now = datetime.now(UTC)
    async with h.database.sessions() as session:
        session.add(running_exercise(EXERCISE_ID, devices=0, at=now))
        await session.commit()


async def _someone_waits_for_a_row_lock(h: Harness) -> bool:
    async with h.database.sessions() as session:
        waiting = await session.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
        return bool(waiting.scalar_one())


async def test_an_issue_during_a_stop_waits_for_it_and_is_refused(harness: Harness, is_postgis: bool) -> None:
    await _running_exercise(harness)
    operator = await harness.user("olga", Role.operator)
    approver = await harness.user("anna", Role.approver)
    body = alert_body(status="Exercise", exercise_id=EXERCISE_ID)
    drafted = await harness.client.post("/api/v1/alerts", json=body, headers=operator)
    assert drafted.status_code == 201, drafted.text
    alert_id = uuid.UUID(drafted.json()["id"])

    async with unit_of_work(harness.database, harness.app.state.bus) as stop:
        exercise = await backend.get_for_update(stop.session, Exercise, EXERCISE_ID)  # as a stop does, first
        assert exercise is not None
        exercise.state = "stopped"
        issuing = asyncio.create_task(harness.client.post(f"/api/v1/alerts/{alert_id}/issue", headers=approver))
        if is_postgis:  # (SQLite: the stop holds the database's write lock; the issue cannot get past it)
            await wait_until(lambda: _someone_waits_for_a_row_lock(harness), what="the issue to wait for the stop")
        assert not issuing.done()
        ended = await alerts.end_exercise_alerts(stop, exercise_id=EXERCISE_ID)

    refused = await issuing
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "not_issuable"
    assert ended == 0
    async with harness.database.sessions() as session:
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        assert alert.state == "discarded"
        issued = select(func.count()).where(AuditEntry.alert_id == alert_id, AuditEntry.action == "issue")
        assert (await session.execute(issued)).scalar_one() == 0
