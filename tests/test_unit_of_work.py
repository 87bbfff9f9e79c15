"""The unit of work (tocsin.kernel.work): one commit at the boundary, events only after it, nothing on failure."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import Harness
from tocsin.errors import InvalidInput
from tocsin.kernel import audit
from tocsin.kernel.work import UnitOfWork, WorkDep, unit_of_work
from tocsin.models import AuditEntry

CHANNEL = "tocsin:test-work"


class Heard:
    """A bus subscriber that, on each event, looks in the database for the audit entry the event announces."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.events: list[tuple[dict[str, Any], int]] = []
        self.order: list[str] = []  # as delivered (each handler runs in its own task, and then awaits a query)
        harness.app.state.bus.subscribe(CHANNEL, self.on_event)

    async def on_event(self, message: dict[str, Any]) -> None:
        self.order.append(message["action"])
        self.events.append((message, await entries(self.harness, message["action"])))


async def entries(harness: Harness, action: str) -> int:
    async with harness.database.sessions() as session:
        found = await session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action))
    return int(found or 0)


async def record_and_queue(work: UnitOfWork, action: str) -> None:
    await audit.record(work.session, actor=None, action=action)
    work.publish_after_commit(CHANNEL, {"action": action})


class TestRequestBoundary:
    async def test_the_route_commits_once_then_publishes(self, harness: Harness) -> None:
        heard = Heard(harness)

        async def change(work: WorkDep) -> dict[str, int]:
            await record_and_queue(work, "work_ok")
            return {"queued": len(work.queued)}

        harness.app.add_api_route("/test/work-ok", change, methods=["POST"])
        response = await harness.client.post("/test/work-ok")
        assert response.status_code == 200
        assert response.json() == {"queued": 1}
        await harness.app.state.bus.drain()
        # The subscriber found the row when the event reached it: published after the commit, not before.
        assert heard.events == [({"action": "work_ok"}, 1)]

    async def test_a_route_that_fails_commits_and_publishes_nothing(self, harness: Harness) -> None:
        heard = Heard(harness)

        async def change_then_refuse(work: WorkDep) -> None:
            await record_and_queue(work, "work_refused")
            raise InvalidInput("refused after writing", field="body")

        harness.app.add_api_route("/test/work-refused", change_then_refuse, methods=["POST"])
        response = await harness.client.post("/test/work-refused")
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "body"
        await harness.app.state.bus.drain()
        assert heard.events == []
        assert await entries(harness, "work_refused") == 0


class TestJobBoundary:
    async def test_a_clean_exit_commits_then_publishes(self, harness: Harness) -> None:
        heard = Heard(harness)
        async with unit_of_work(harness.database, harness.app.state.bus) as work:
            await record_and_queue(work, "job_ok")
            assert await entries(harness, "job_ok") == 0  # not visible to others before the boundary commits
        await harness.app.state.bus.drain()
        assert heard.events == [({"action": "job_ok"}, 1)]

    async def test_an_exception_rolls_back_and_publishes_nothing(self, harness: Harness) -> None:
        heard = Heard(harness)

        async def failing_job() -> None:
            async with unit_of_work(harness.database, harness.app.state.bus) as work:
                await record_and_queue(work, "job_failed")
                raise RuntimeError("job failed")

        with pytest.raises(RuntimeError, match="job failed"):
            await failing_job()
        await harness.app.state.bus.drain()
        assert heard.events == []
        assert await entries(harness, "job_failed") == 0

    async def test_events_go_out_in_the_order_they_were_queued(self, harness: Harness) -> None:
        heard = Heard(harness)
        async with unit_of_work(harness.database, harness.app.state.bus) as work:
            for number in range(5):
                await record_and_queue(work, f"job_{number}")
        await harness.app.state.bus.drain()
        assert heard.order == [f"job_{n}" for n in range(5)]
        assert sorted(count for _, count in heard.events) == [1] * 5
