"""The operator feed: signing in without the URL, the cursor and replay, closing when the account changes or the
token expires, and exercise reports kept away from it. Real uvicorn server, real WebSockets, both backends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import websockets

from tests.conftest import LiveServer, make_settings
from tests.exercises.helpers import running_exercise
from tests.realtime.operators import bearer, closed_with, nothing_more, open_feed, read_events
from tests.realtime.test_triage import body, post
from tests.waiting import wait_until
from tocsin.auth.schemas import Role
from tocsin.auth.tokens import ALGORITHM, AUDIENCE
from tocsin.main import create_app
from tocsin.models import Device
from tocsin.testing import free_port


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].split()[1]


class TestSigningIn:
    async def test_a_token_in_the_url_is_refused_with_a_reason(self, live: LiveServer) -> None:
        token = token_of(await live.user("olga", Role.operator))
        async with websockets.connect(f"{live.ws_url}/ws/operator?token={token}") as feed:
            code, reason = await closed_with(feed)
        assert code == 1008
        assert "URL" in reason

    async def test_the_first_message_signs_in_and_resumes(self, live: LiveServer) -> None:
        token = token_of(await live.user("olga", Role.operator))
        (first,) = await post(live, body(11.88, 44.29))
        async with websockets.connect(f"{live.ws_url}/ws/operator") as feed:
            await feed.send(json.dumps({"type": "auth", "token": token, "since": 0}))
            welcome = json.loads(await feed.recv())
            assert (welcome["type"], welcome["user"]) == ("welcome", "olga")
            (replayed,) = await read_events(feed, 1)
        assert (replayed["type"], replayed["report"]["id"], replayed["seq"]) == ("report_new", first, welcome["seq"])

    async def test_a_bad_token_is_refused_with_a_reason(self, live: LiveServer) -> None:
        async with websockets.connect(f"{live.ws_url}/ws/operator", additional_headers=bearer("nonsense")) as feed:
            code, reason = await closed_with(feed)
        assert (code, "invalid or expired" in reason) == (1008, True)

    async def test_a_planner_is_refused(self, live: LiveServer) -> None:
        token = token_of(await live.user("pia", Role.planner))
        async with websockets.connect(f"{live.ws_url}/ws/operator", additional_headers=bearer(token)) as feed:
            code, reason = await closed_with(feed)
        assert (code, "role" in reason) == (1008, True)


class TestCursor:
    async def test_a_console_that_reconnects_with_its_cursor_gets_what_it_missed_once(self, live: LiveServer) -> None:
        olga = await live.user("olga", Role.operator)
        feed, _ = await open_feed(live.ws_url, token_of(olga))
        (first,) = await post(live, body(11.88, 44.29))
        (seen,) = await read_events(feed, 1)
        await feed.close()
        missed = await post(live, body(11.88, 44.29, text="a"), body(11.88, 44.29, text="b"))
        await live.client.post(f"/api/v1/reports/{first}/status", json={"status": "verified"}, headers=olga)
        back, welcome = await open_feed(live.ws_url, token_of(olga), since=seen["seq"])
        replayed = await read_events(back, 3)
        (live_one,) = await post(live, body(11.88, 44.29, text="c"))
        (after,) = await read_events(back, 1)
        rest = await nothing_more(back)
        await back.close()
        assert [(e["type"], e.get("report", {}).get("id", e.get("report_id"))) for e in replayed] == [
            ("report_new", missed[0]),
            ("report_new", missed[1]),
            ("report_status", first),
        ]
        assert [e["seq"] for e in replayed] == [seen["seq"] + 1, seen["seq"] + 2, seen["seq"] + 3]
        assert welcome["seq"] == seen["seq"] + 3
        assert (after["report"]["id"], after["seq"], rest) == (live_one, seen["seq"] + 4, [])

    async def test_a_console_from_a_worker_further_along_gets_each_later_event_once(
        self, live: LiveServer, database_url: str, tmp_path: Path
    ) -> None:
        olga = await live.user("olga", Role.operator)
        # Worker B hears only its own bus and polls the database rarely: it stays behind worker A (`live`).
        async with second_worker(database_url, tmp_path, realtime_poll_seconds=60) as behind:
            await post(behind, body(11.88, 44.29, text="b sets its cursor"))
            on_a, _ = await open_feed(live.ws_url, token_of(olga))
            await post(live, body(11.88, 44.29, text="a1"), body(11.88, 44.29, text="a2"))
            seen_on_a = await read_events(on_a, 2)
            await on_a.close()
            since = seen_on_a[-1]["seq"]
            on_b, welcome = await open_feed(behind.ws_url, token_of(olga), since=since)
            (later,) = await post(behind, body(11.88, 44.29, text="b2"))
            (event,) = await read_events(on_b, 1)
            rest = await nothing_more(on_b)
            await on_b.close()
        assert (event["report"]["id"], event["seq"], rest) == (later, since + 1, [])
        assert welcome["seq"] == since

    async def test_a_since_beyond_a_row_id_is_refused_with_a_reason(self, live: LiveServer) -> None:
        token = token_of(await live.user("olga", Role.operator))
        for since in (2**31, 2**62 - 1):
            async with websockets.connect(
                f"{live.ws_url}/ws/operator?since={since}", additional_headers=bearer(token)
            ) as feed:
                code, reason = await closed_with(feed)
            assert (code, "since" in reason) == (1008, True)


@asynccontextmanager
async def second_worker(database_url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[LiveServer]:
    """Another uvicorn worker on the same database, with its own in-process bus."""
    import uvicorn

    port = free_port()
    app = create_app(make_settings(database_url, tmp_path / "worker-b", **overrides), migrate_on_start=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), what="worker B to start", seconds=30)
    assert not task.done(), "worker B did not start"
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield LiveServer(app=app, client=client, ws_url=f"ws://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task


async def _exercise_device(live: LiveServer) -> str:
    now = datetime.now(UTC)
    async with live.database.sessions() as session:
        session.add(running_exercise("ex-feed", devices=1, at=now))
        await session.flush()
        session.add(
            Device(
                id="x-synthetic",
                places=[],
                languages=["en"],
                categories=[],
                min_severity="Minor",
                exercise_id="ex-feed",
                created_at=now,
                last_seen_at=now,
            )
        )
        await session.commit()
    return "x-synthetic"


class TestExerciseReports:
    async def test_exercise_reports_over_rest_and_their_triage_never_reach_real_operators(
        self, live: LiveServer
    ) -> None:
        olga = await live.user("olga", Role.operator)
        device = await _exercise_device(live)
        feed, _ = await open_feed(live.ws_url, token_of(olga))
        (drill,) = await post(live, body(11.88, 44.29, text="drill flood", device=device))
        changed = await live.client.post(
            f"/api/v1/reports/{drill}/status", json={"status": "dismissed", "reason": "drill"}, headers=olga
        )
        assert changed.status_code == 200, changed.text
        (real,) = await post(live, body(11.88, 44.29, text="real flood"))
        (event,) = await read_events(feed, 1)
        rest = await nothing_more(feed)
        await feed.close()
        assert (event["report"]["id"], rest) == (real, [])
        triage = (await live.client.get("/api/v1/reports", headers=olga)).json()
        assert [r["id"] for r in triage] == [real]
        in_drill = (await live.client.get("/api/v1/reports", params={"exercise_id": "ex-feed"}, headers=olga)).json()
        assert [r["id"] for r in in_drill] == [drill]


class TestAccountChanges:
    async def test_the_feed_closes_when_the_account_changes(self, live: LiveServer) -> None:
        admin = await live.user("root", Role.admin)
        changes = [{"is_active": False}, {"roles": ["planner"]}, {"password": "another long password"}]
        for n, change in enumerate(changes):
            name = f"op{n}"
            token = token_of(await live.user(name, Role.operator))
            user_id = (await live.client.get("/api/v1/auth/me", headers=bearer(token))).json()["id"]
            feed, _ = await open_feed(live.ws_url, token)
            answer = await live.client.patch(f"/api/v1/users/{user_id}", json=change, headers=admin)
            assert answer.status_code == 200, answer.text
            code, reason = await closed_with(feed)
            assert (code, "sign in again" in reason) == (1008, True), change
            again = await live.client.get("/api/v1/auth/me", headers=bearer(token))
            assert again.status_code == 401, change

    async def test_the_feed_closes_when_its_token_expires(self, live: LiveServer) -> None:
        token = token_of(await live.user("olga", Role.operator))
        user_id = (await live.client.get("/api/v1/auth/me", headers=bearer(token))).json()["id"]
        now = datetime.now(UTC)
        claims = {"sub": str(user_id), "ver": 0, "aud": AUDIENCE, "iat": now, "exp": now + timedelta(seconds=2)}
        short = jwt.encode(claims, live.app.state.settings.signing_key, algorithm=ALGORITHM)
        feed, _ = await open_feed(live.ws_url, short)
        code, reason = await closed_with(feed)
        assert (code, "expired" in reason) == (1008, True)
