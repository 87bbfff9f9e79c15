"""Small helpers for the exercise tests: accounts, a short scenario, waiting on the clock."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import yaml

from tests.conftest import REPO, Harness
from tocsin.auth.schemas import Role
from tocsin.glossary import service as glossary
from tocsin.kernel.work import unit_of_work
from tocsin.models import Exercise

RUN = {"run_scheduler": True, "scheduler_interval_seconds": 0.2}
GLOSSARY = REPO / "glossary"


async def planner(server: Harness) -> dict[str, str]:
    return await server.user("planner", Role.planner)


async def load_glossary(server: Harness) -> None:
    async with unit_of_work(server.database, server.app.state.bus) as work:
        await glossary.load_files_if_empty(work.session, GLOSSARY)


def short_scenario(**changes: Any) -> dict[str, Any]:
    """The Romagna scenario cut to two hours: twelve injects, A1 (warn Borgo Durbecco by 0:05) with a contingency
    at 0:06, no scripted actions."""
    data: dict[str, Any] = yaml.safe_load((REPO / "scenarios" / "romagna-river-flood.yaml").read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    data["id"] = "short-flood"
    data["duration"] = "2:00"
    first = {
        "number": 1,
        "at": "0:01",
        "type": "situation_update",
        "title": "River above threshold",
        "content": "Warn the Borgo.",
        "objectives": ["O1"],
        "expected_actions": [
            {"id": "A1", "kind": "issue_alert", "by": "0:05", "area": "borgo-durbecco", "description": "Warn the Borgo"}
        ],
    }
    later = [
        {
            "number": n,
            "at": f"{n // 6}:{(n % 6) * 10:02d}",
            "type": "situation_update",
            "title": f"Update {n}",
            "content": "More news.",
        }
        for n in range(2, 13)
    ]
    data["timeline"] = [first, *later]
    data["contingencies"] = [
        {
            "if_missing": "A1",
            "at": "0:06",
            "inject": {
                "number": 101,
                "at": "0:06",
                "type": "media_inquiry",
                "title": "Why no warning yet?",
                "content": "A journalist asks why Borgo Durbecco has not been warned.",
            },
        }
    ]
    data["scripted_actions"] = []
    data.update(changes)
    return data


async def wait_for(
    server: Harness,
    exercise_id: str,
    headers: dict[str, str],
    done: Callable[[dict[str, Any]], bool],
    seconds: float = 60,
) -> dict[str, Any]:
    """Poll the exercise until `done(exercise)`; fail after `seconds`."""
    state: dict[str, Any] = {}
    for _ in range(int(seconds / 0.1)):
        response = await server.client.get(f"/api/v1/exercises/{exercise_id}", headers=headers)
        assert response.status_code == 200, response.text
        state = response.json()
        if done(state):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"the exercise did not get there in {seconds}s: {state}")


async def timeline(server: Harness, exercise_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await server.client.get(f"/api/v1/exercises/{exercise_id}/timeline", headers=headers)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def running_exercise(exercise_id: str, *, devices: int = 0, at: datetime | None = None) -> Exercise:
    """An exercise row that is running (scenario clock at 0, two hours long), without a scenario behind it: for tests
    of what other domains do with an exercise's rows."""
    now = at or datetime.now(UTC)
    return Exercise(
        id=exercise_id,
        scenario_id="s",
        title="Drill",
        scenario={"duration": "2:00"},
        state="running",
        speed=1.0,
        clock_seconds=0.0,
        clock_at=now,
        clock_version=0,
        devices=devices,
        seed=1,
        transport="in_process",
        join_token="join-token",
        stats={},
        created_by="pia",
        created_at=now,
    )
