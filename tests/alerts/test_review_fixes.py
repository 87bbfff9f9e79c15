"""Holes a review found in the alert life, closed: each test is the attack or the bad input it describes."""

from __future__ import annotations

import asyncio
import json

from tests.alerts.factories import FAENZA, alert_body, info
from tests.alerts.samples import own
from tests.alerts.test_lifecycle import approved_and_issued, draft
from tests.conftest import Harness
from tocsin.auth.schemas import Role


class TestTwoPersonRule:
    async def test_a_follow_up_cannot_change_status_to_skip_approval(self, harness: Harness) -> None:
        alert = await approved_and_issued(harness)
        approver = await harness.user("anna", Role.approver)
        cancel = (await harness.client.post(f"/api/v1/alerts/{alert['id']}/cancel", headers=approver)).json()
        as_test = await harness.client.put(
            f"/api/v1/alerts/{cancel['id']}", json=alert_body(status="Test"), headers=approver
        )
        assert as_test.status_code == 422
        assert as_test.json()["error"]["field"] == "status"

    async def test_whoever_edited_an_actual_alert_cannot_approve_it(self, harness: Harness) -> None:
        alert = await draft(harness)
        approver = await harness.user("mark", Role.approver)
        rewritten = alert_body(info=[info(headline="Rewritten by the approver")])
        assert (
            await harness.client.put(f"/api/v1/alerts/{alert['id']}", json=rewritten, headers=approver)
        ).status_code == 200
        response = await harness.client.post(f"/api/v1/alerts/{alert['id']}/approve", headers=approver)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "two_person_rule"


class TestStateRaces:
    async def test_concurrent_issue_calls_issue_once(self, harness: Harness) -> None:
        alert = await draft(harness)
        approver = await harness.user("anna", Role.approver)
        await harness.client.post(f"/api/v1/alerts/{alert['id']}/approve", headers=approver)
        responses = await asyncio.gather(
            *(harness.client.post(f"/api/v1/alerts/{alert['id']}/issue", headers=approver) for _ in range(4))
        )
        assert sorted(r.status_code for r in responses) == [200, 409, 409, 409]
        log = await harness.client.get("/api/v1/audit", params={"alert_id": alert["id"]}, headers=approver)
        assert [e["action"] for e in log.json()].count("issue") == 1

    async def test_a_cancel_of_an_already_updated_alert_is_refused(self, harness: Harness) -> None:
        alert = await approved_and_issued(harness)
        operator, approver = await harness.user("olga"), await harness.user("anna", Role.approver)
        update = (await harness.client.post(f"/api/v1/alerts/{alert['id']}/update", headers=operator)).json()
        cancel = (await harness.client.post(f"/api/v1/alerts/{alert['id']}/cancel", headers=operator)).json()
        for follow_up in (update, cancel):
            await harness.client.post(f"/api/v1/alerts/{follow_up['id']}/approve", headers=approver)
        assert (await harness.client.post(f"/api/v1/alerts/{update['id']}/issue", headers=approver)).status_code == 200
        late = await harness.client.post(f"/api/v1/alerts/{cancel['id']}/issue", headers=approver)
        assert late.status_code == 409
        assert late.json()["error"]["code"] == "not_active"


class TestBadInput:
    async def test_control_characters_are_refused_by_field(self, harness: Harness) -> None:
        body = alert_body(info=[info(headline="Flood\x01warning")])
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await harness.user("olga"))
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "info[0].headline"

    async def test_positions_with_altitude_are_refused(self, harness: Harness) -> None:
        ring = [[x, y, 10.0] for x, y in FAENZA["coordinates"][0]]
        area = {"areaDesc": "x", "geometry": {"type": "Polygon", "coordinates": [ring]}}
        response = await harness.client.post(
            "/api/v1/alerts", json=alert_body(info=[info(area=[area])]), headers=await harness.user("olga")
        )
        assert response.status_code == 422
        assert "altitude" in response.json()["error"]["message"]

    async def test_nan_altitude_is_refused(self, harness: Harness) -> None:
        body = json.dumps(alert_body(info=[info(area=[{"areaDesc": "x", "geometry": FAENZA, "altitude": 1.5}])]))
        response = await harness.client.post(
            "/api/v1/alerts",
            content=body.replace("1.5", "NaN"),
            headers={**await harness.user("olga"), "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "info[0].area[0].altitude"


class TestWhatThePublicSees:
    async def test_original_bytes_come_back_in_their_encoding(self, harness: Harness) -> None:
        path = own("valid/selestat-storm-test-iso-8859-1.xml")
        headers = {**await harness.user("olga", Role.operator), "Content-Type": "application/cap+xml"}
        alert = (await harness.client.post("/api/v1/alerts/cap", content=path.read_bytes(), headers=headers)).json()
        original = await harness.client.get(f"/api/v1/alerts/{alert['id']}/cap/original", headers=headers)
        assert original.content == path.read_bytes()

    async def test_anonymous_readers_do_not_see_staff_names(self, harness: Harness) -> None:
        alert = await approved_and_issued(harness)
        public = (await harness.client.get(f"/api/v1/alerts/{alert['id']}")).json()
        assert (public["author"], public["approved_by"], public["approved_at"]) == (None, None, None)
        staff = await harness.client.get(f"/api/v1/alerts/{alert['id']}", headers=await harness.user("olga"))
        assert staff.json()["author"]["username"] == "olga"
