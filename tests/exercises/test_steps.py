"""A scripted player action is one part of its step's unit of work: when it fails, what it wrote rolls back to a
savepoint and what it queued is never published; the step still commits its "... failed" line."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import Harness
from tests.exercises.helpers import planner, short_scenario
from tocsin import backend
from tocsin.exercises.scenario import Scenario
from tocsin.exercises.simulation import actions, steps
from tocsin.exercises.simulation.timetable import Item
from tocsin.kernel import exercise_clock as clock
from tocsin.kernel.work import unit_of_work
from tocsin.models import Exercise, ExerciseEvent

SCRIPTED = [{"at": "0:02", "kind": "respond_to_inquiry", "fulfils": ["A1"], "note": "Sirens in the Borgo"}]
ITEM = Item("scripted:0", 120.0, "scripted", 0)


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    def subscribe(self, channel: str, handler: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        pass

    def on_resubscribed(self, callback: Callable[[], Awaitable[None]]) -> None:
        pass

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        self.published.append((channel, message))

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


async def _running_exercise(harness: Harness) -> str:
    body = {"scenario": short_scenario(scripted_actions=SCRIPTED), "devices": 0, "autoplay": True, "start": True}
    created = await harness.client.post("/api/v1/exercises", json=body, headers=await planner(harness))
    assert created.status_code == 201, created.text
    exercise_id: str = created.json()["id"]
    return exercise_id


async def _perform_step(harness: Harness, exercise_id: str, bus: RecordingBus) -> None:
    playbook = steps.Playbook(harness.app.state.settings, harness.app.state.templates_dir)
    async with unit_of_work(harness.database, bus) as work:
        row = await backend.get_for_update(work.session, Exercise, exercise_id)
        assert row is not None
        scenario = Scenario.model_validate(row.scenario)
        await steps.perform_scripted(work, exercise=row, scenario=scenario, item=ITEM, playbook=playbook)


async def _entries(harness: Harness, exercise_id: str) -> list[tuple[str, str, str | None]]:
    async with harness.database.sessions() as session:
        rows = await session.execute(
            select(ExerciseEvent.key, ExerciseEvent.title, ExerciseEvent.detail)
            .where(ExerciseEvent.exercise_id == exercise_id, ExerciseEvent.kind != "clock")
            .order_by(ExerciseEvent.id)
        )
        return [(key, title, detail) for key, title, detail in rows]


async def test_a_failed_action_leaves_only_its_failure(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    exercise_id = await _running_exercise(harness)

    async def half_done(job: actions.Scripted) -> tuple[str, uuid.UUID | None]:
        await clock.record(job.session, job.exercise, key="half-done", kind="triage", title="Half done")
        job.work.publish_after_commit("tocsin:test", {"half": "done"})
        raise actions.ActionFailed("the river level is missing")

    monkeypatch.setattr(actions, "perform", half_done)
    bus = RecordingBus()
    await _perform_step(harness, exercise_id, bus)
    assert await _entries(harness, exercise_id) == [
        ("scripted:0", "Respond to inquiry failed", "the river level is missing")
    ]
    assert bus.published == []


async def test_a_done_action_is_published_after_its_commit(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    exercise_id = await _running_exercise(harness)

    async def done(job: actions.Scripted) -> tuple[str, uuid.UUID | None]:
        await clock.record(job.session, job.exercise, key="triaged", kind="triage", title="Triaged")
        job.work.publish_after_commit("tocsin:test", {"triaged": 1})
        return "triaged", None

    monkeypatch.setattr(actions, "perform", done)
    bus = RecordingBus()
    await _perform_step(harness, exercise_id, bus)
    assert await _entries(harness, exercise_id) == [
        ("triaged", "Triaged", None),
        ("scripted:0", "Respond to inquiry", "Sirens in the Borgo"),
    ]
    assert bus.published == [("tocsin:test", {"triaged": 1})]
