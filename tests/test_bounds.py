"""Numbers and times the database cannot hold are refused with 4xx naming the field, on both backends, never 500.

Ids are INTEGER columns (2**31-1 at most on PostgreSQL, 2**63-1 on SQLite); times must have a UTC value in years
1900..9999 (`9999-12-31T23:59:59-14:00` is valid ISO 8601 but is in year 10000 in UTC).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets
from sqlalchemy import func, select

from tests.alerts.factories import alert_body, info
from tests.conftest import Harness, LiveServer
from tests.realtime.test_citizen import report
from tests.realtime.wsclient import Citizen
from tocsin.auth.schemas import Role
from tocsin.models import Alert, Report

TOO_BIG = [2**31, 2**63]
EXTREME_TIMES = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
STRING_PARAMETERS = {"concept_id": "flood", "exercise_id": "no-such-exercise", "objective": "O1"}


def integer_path_operations(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, path, parameter) for every operation with an integer path parameter in the OpenAPI document."""
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
                    found.append((method, path, parameter["name"]))
    return found


async def admin(harness: Harness) -> dict[str, str]:
    return await harness.user("root", *Role)


def assert_refused(response: Any, field: str) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.json()["error"]["field"] == field, response.text


async def count(harness: Harness, model: type) -> int:
    async with harness.database.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


class TestIdsInPaths:
    @pytest.mark.parametrize("number", TOO_BIG)
    async def test_every_integer_path_parameter_refuses_what_no_row_can_have(
        self, harness: Harness, number: int
    ) -> None:
        operations = integer_path_operations(harness.app.openapi())
        assert len(operations) >= 6, operations  # users, glossary versions and proposals, report status
        headers = await admin(harness)
        for method, path, name in operations:
            url = path.replace("{" + name + "}", str(number))
            for other, value in STRING_PARAMETERS.items():
                url = url.replace("{" + other + "}", value)
            response = await harness.client.request(method, url, headers=headers)
            assert_refused(response, name)


class TestIdsInQueriesAndBodies:
    @pytest.mark.parametrize("number", TOO_BIG)
    async def test_audit_cursor(self, harness: Harness, number: int) -> None:
        response = await harness.client.get("/api/v1/audit", params={"before_id": number}, headers=await admin(harness))
        assert_refused(response, "before_id")

    @pytest.mark.parametrize("number", TOO_BIG)
    async def test_exercise_timeline_cursor(self, harness: Harness, number: int) -> None:
        response = await harness.client.get(
            "/api/v1/exercises/x/timeline", params={"after": number}, headers=await admin(harness)
        )
        assert_refused(response, "after")

    @pytest.mark.parametrize("number", TOO_BIG)
    async def test_report_list_offset(self, harness: Harness, number: int) -> None:
        response = await harness.client.get("/api/v1/reports", params={"offset": number}, headers=await admin(harness))
        assert_refused(response, "offset")

    @pytest.mark.parametrize("number", TOO_BIG)
    async def test_report_status_duplicate_of(self, harness: Harness, number: int) -> None:
        response = await harness.client.post(
            "/api/v1/reports/1/status",
            json={"status": "duplicate", "duplicate_of": number},
            headers=await admin(harness),
        )
        assert_refused(response, "duplicate_of")

    @pytest.mark.parametrize("number", TOO_BIG)
    async def test_incident_report_ids(self, harness: Harness, number: int) -> None:
        response = await harness.client.post(
            "/api/v1/incidents", json={"title": "flood", "report_ids": [number]}, headers=await admin(harness)
        )
        assert_refused(response, "report_ids[0]")


class TestExtremeTimes:
    @pytest.mark.parametrize("moment", EXTREME_TIMES)
    async def test_alert_draft(self, harness: Harness, moment: str) -> None:
        body = alert_body(info=[info(expires=moment)])
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await admin(harness))
        assert_refused(response, "info[0].expires")
        assert await count(harness, Alert) == 0

    @pytest.mark.parametrize("moment", EXTREME_TIMES)
    async def test_scheduled_issue(self, harness: Harness, moment: str) -> None:
        headers = await admin(harness)
        created = await harness.client.post("/api/v1/alerts", json=alert_body(status="Test"), headers=headers)
        assert created.status_code == 201, created.text
        url = f"/api/v1/alerts/{created.json()['id']}/issue"
        assert_refused(await harness.client.post(url, json={"at": moment}, headers=headers), "at")

    @pytest.mark.parametrize("moment", EXTREME_TIMES)
    @pytest.mark.parametrize("bound", ["since", "until"])
    async def test_report_filter(self, harness: Harness, moment: str, bound: str) -> None:
        response = await harness.client.get("/api/v1/reports", params={bound: moment}, headers=await admin(harness))
        assert_refused(response, bound)

    @pytest.mark.parametrize("moment", EXTREME_TIMES)
    async def test_rest_report(self, live: LiveServer, moment: str) -> None:
        body = {k: v for k, v in report(observed_at=moment).items() if k != "type"} | {"device_id": "far-future"}
        response = await live.client.post("/api/v1/reports", json=body)
        assert_refused(response, "observed_at")
        assert await count(live, Report) == 0

    @pytest.mark.parametrize("moment", EXTREME_TIMES)
    async def test_websocket_report_is_a_final_error_naming_the_field(self, live: LiveServer, moment: str) -> None:
        citizen, _ = await Citizen.connect(live.ws_url)
        bad = report(observed_at=moment)
        await citizen.send(bad)
        error = await citizen.receive_type("error")
        assert (error["code"], error["field"], error["id"]) == ("invalid", "observed_at", bad["id"])
        good = report(observed_at=datetime.now(UTC).isoformat())  # the connection goes on
        await citizen.send(good)
        assert (await citizen.receive_type("ack"))["id"] == good["id"]
        await citizen.close()
        assert await count(live, Report) == 1

    async def test_websocket_hello_last_seq(self, live: LiveServer) -> None:
        async with websockets.connect(f"{live.ws_url}/ws/citizen", compression=None) as connection:
            hello = {"type": "hello", "device_id": f"dev-{uuid.uuid4().hex[:8]}", "last_seq": 2**63}
            await connection.send(json.dumps(hello))
            answer = json.loads(await connection.recv())
        assert (answer["type"], answer["field"]) == ("error", "last_seq")
