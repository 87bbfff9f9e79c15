"""Draft -> approve -> issue -> update -> cancel -> expire, with the two-person rule and the audit log, on both
backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree

from tests.alerts.factories import FAENZA, alert_body, info
from tests.conftest import Harness
from tests.waiting import wait_until
from tocsin.alerts import cap
from tocsin.alerts import service as alerts
from tocsin.auth.schemas import Role
from tocsin.kernel.channels import ALERTS_CHANNEL
from tocsin.kernel.work import unit_of_work
from tocsin.scheduler import jobs


async def draft(h: Harness, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await h.client.post(
        "/api/v1/alerts", json=body or alert_body("en", "fr"), headers=await h.user("olga", Role.operator)
    )
    assert response.status_code == 201, response.text
    alert: dict[str, Any] = response.json()
    return alert


async def approved_and_issued(h: Harness, body: dict[str, Any] | None = None) -> dict[str, Any]:
    alert = await draft(h, body)
    approver = await h.user("anna", Role.approver)
    assert (await h.client.post(f"/api/v1/alerts/{alert['id']}/approve", headers=approver)).status_code == 200
    response = await h.client.post(f"/api/v1/alerts/{alert['id']}/issue", headers=approver)
    assert response.status_code == 200, response.text
    issued: dict[str, Any] = response.json()
    return issued


class TestCreateDraft:
    async def test_draft_holds_one_info_per_language(self, harness: Harness) -> None:
        alert = await draft(harness)
        assert alert["state"] == "draft"
        assert [i["language"] for i in alert["cap"]["info"]] == ["en", "fr"]
        assert alert["cap"]["sender"] == "test@tocsin.example"
        assert alert["author"]["username"] == "olga"
        assert alert["marking"] is None

    async def test_planner_cannot_draft(self, harness: Harness) -> None:
        response = await harness.client.post(
            "/api/v1/alerts", json=alert_body(), headers=await harness.user("pia", Role.planner)
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "missing_role"

    async def test_anonymous_cannot_draft(self, harness: Harness) -> None:
        response = await harness.client.post("/api/v1/alerts", json=alert_body())
        assert response.status_code == 401

    async def test_circle_and_parameters_and_event_codes_survive(self, harness: Harness) -> None:
        body = alert_body(
            info=[
                info(
                    eventCode=[{"valueName": "OET:v1.2", "value": "OET-081"}],
                    parameter=[{"valueName": "river", "value": "Lamone"}],
                    resource=[{"resourceDesc": "map", "mimeType": "image/png", "uri": "https://example.org/map.png"}],
                    web="https://example.org/flood",
                    contact="+39 0546 000000",
                    area=[
                        {
                            "areaDesc": "Around the gauge",
                            "circles": [{"center": [11.88, 44.29], "radiusKm": 2.5}],
                        }
                    ],
                )
            ]
        )
        alert = await draft(harness, body)
        xml = (
            await harness.client.get(f"/api/v1/alerts/{alert['id']}/cap", headers=await harness.user("olga"))
        ).content
        root = cap.parse_xml(xml, 10**6)
        cap.validate_against_schema(root)
        ns = {"c": cap.CAP12_NS}
        assert root.xpath("string(//c:circle)", namespaces=ns) == "44.29,11.88 2.5"
        assert root.xpath("string(//c:eventCode/c:value)", namespaces=ns) == "OET-081"
        assert root.xpath("string(//c:resource/c:uri)", namespaces=ns) == "https://example.org/map.png"


class TestApprove:
    async def test_author_cannot_approve_own_actual_alert(self, harness: Harness) -> None:
        both = await harness.user("bea", Role.operator, Role.approver)
        created = await harness.client.post("/api/v1/alerts", json=alert_body(), headers=both)
        response = await harness.client.post(f"/api/v1/alerts/{created.json()['id']}/approve", headers=both)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "two_person_rule"

    async def test_actual_alert_cannot_be_issued_unapproved(self, harness: Harness) -> None:
        alert = await draft(harness)
        response = await harness.client.post(
            f"/api/v1/alerts/{alert['id']}/issue", headers=await harness.user("anna", Role.approver)
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "approval_required"

    async def test_operator_cannot_approve(self, harness: Harness) -> None:
        alert = await draft(harness)
        response = await harness.client.post(
            f"/api/v1/alerts/{alert['id']}/approve", headers=await harness.user("otto", Role.operator)
        )
        assert response.status_code == 403

    async def test_edit_withdraws_approval(self, harness: Harness) -> None:
        alert = await draft(harness)
        approver = await harness.user("anna", Role.approver)
        await harness.client.post(f"/api/v1/alerts/{alert['id']}/approve", headers=approver)
        edited = await harness.client.put(
            f"/api/v1/alerts/{alert['id']}", json=alert_body("en"), headers=await harness.user("olga")
        )
        assert edited.status_code == 200
        assert edited.json()["state"] == "draft"
        assert edited.json()["approved_by"] is None


class TestIssue:
    async def test_issued_alert_is_valid_cap_and_public(self, harness: Harness) -> None:
        alert = await approved_and_issued(harness)
        assert alert["state"] == "issued"
        assert alert["active"] is True
        response = await harness.client.get(f"/api/v1/alerts/{alert['id']}/cap")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/cap+xml")
        root = cap.parse_xml(response.content, 10**6)
        cap.validate_against_schema(root)
        sent = root.findtext(f"{{{cap.CAP12_NS}}}sent")
        assert sent.endswith("+00:00")
        assert etree.QName(root).namespace == cap.CAP12_NS

    async def test_issue_takes_the_next_delivery_sequence_number(self, harness: Harness) -> None:
        await approved_and_issued(harness)
        await approved_and_issued(harness)
        async with harness.database.sessions() as session:
            assert await alerts.count_events(session) == 2

    async def test_exercise_alert_is_marked_and_never_public(self, harness: Harness) -> None:
        alert = await draft(harness, alert_body(status="Exercise"))
        approver = await harness.user("anna", Role.approver)
        issued = await harness.client.post(f"/api/v1/alerts/{alert['id']}/issue", headers=approver)
        assert issued.status_code == 200, issued.text
        assert issued.json()["marking"] == "EXERCISE"
        assert (await harness.client.get(f"/api/v1/alerts/{alert['id']}/cap")).status_code == 404
        public = await harness.client.get("/api/v1/alerts", params={"active": "true"})
        assert public.json()["features"] == []
        feed = await harness.client.get("/feeds/alerts.atom")
        assert alert["id"] not in feed.text
        staff = await harness.client.get(f"/api/v1/alerts/{alert['id']}/cap", headers=approver)
        assert b"<status>Exercise</status>" in staff.content

    async def test_scheduled_alert_is_issued_by_the_scheduler_after_a_restart(self, harness: Harness) -> None:
        alert = await draft(harness)
        approver = await harness.user("anna", Role.approver)
        await harness.client.post(f"/api/v1/alerts/{alert['id']}/approve", headers=approver)
        at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        scheduled = await harness.client.post(f"/api/v1/alerts/{alert['id']}/issue", json={"at": at}, headers=approver)
        assert scheduled.json()["state"] == "scheduled"
        # Nothing lives in the scheduler's memory: a job run later (here, as if after a restart) finds it due.
        async with unit_of_work(harness.database, harness.app.state.bus) as work:
            issued = await alerts.issue_due(work, now=datetime.now(UTC) + timedelta(hours=2))
            queued = work.queued
        assert issued == 1
        assert [message["kind"] for _, message in queued] == ["issued"]
        after = await harness.client.get(f"/api/v1/alerts/{alert['id']}", headers=approver)
        assert after.json()["state"] == "issued"

    async def test_scheduler_job_publishes_after_commit(self, harness: Harness) -> None:
        alert = await draft(harness)
        approver = await harness.user("anna", Role.approver)
        await harness.client.post(f"/api/v1/alerts/{alert['id']}/approve", headers=approver)
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        await harness.client.post(f"/api/v1/alerts/{alert['id']}/issue", json={"at": soon}, headers=approver)
        received: list[dict[str, Any]] = []

        async def collect(message: dict[str, Any]) -> None:
            received.append(message)

        harness.app.state.bus.subscribe("tocsin:alerts", collect)

        async def issued() -> bool:
            await jobs.issue_due_alerts(harness.database, harness.app.state.bus)
            await harness.app.state.bus.drain()
            return bool(received)

        await wait_until(issued, what="the scheduled alert to be issued and published")
        assert received[0]["alert_id"] == alert["id"]
        assert received[0]["kind"] == "issued"


class TestFollowUp:
    async def test_update_references_the_earlier_message_and_supersedes_it(self, harness: Harness) -> None:
        first = await approved_and_issued(harness)
        operator = await harness.user("olga")
        started = await harness.client.post(
            f"/api/v1/alerts/{first['id']}/update",
            json={"info": [info(headline="Water still rising")]},
            headers=operator,
        )
        assert started.status_code == 201, started.text
        update = started.json()
        assert update["msgType"] == "Update"
        sent = datetime.fromisoformat(first["cap"]["sent"]).isoformat()  # CAP form: explicit +00:00
        assert update["cap"]["references"] == f"{first['sender']},{first['identifier']},{sent}"
        approver = await harness.user("anna", Role.approver)
        await harness.client.post(f"/api/v1/alerts/{update['id']}/approve", headers=approver)
        issued = await harness.client.post(f"/api/v1/alerts/{update['id']}/issue", headers=approver)
        assert issued.json()["state"] == "issued"
        earlier = await harness.client.get(f"/api/v1/alerts/{first['id']}", headers=approver)
        assert earlier.json()["state"] == "updated"
        assert earlier.json()["active"] is False

    async def test_cancel_chain_names_every_earlier_message(self, harness: Harness) -> None:
        first = await approved_and_issued(harness)
        operator = await harness.user("olga")
        approver = await harness.user("anna", Role.approver)
        update = (await harness.client.post(f"/api/v1/alerts/{first['id']}/update", headers=operator)).json()
        await harness.client.post(f"/api/v1/alerts/{update['id']}/approve", headers=approver)
        await harness.client.post(f"/api/v1/alerts/{update['id']}/issue", headers=approver)
        cancel = await harness.client.post(
            f"/api/v1/alerts/{update['id']}/cancel", json={"note": "Water receded"}, headers=operator
        )
        assert cancel.status_code == 201
        references = cancel.json()["cap"]["references"].split(" ")
        assert [r.split(",")[1] for r in references] == [first["identifier"], update["identifier"]]
        cancel_id = cancel.json()["id"]
        await harness.client.post(f"/api/v1/alerts/{cancel_id}/approve", headers=approver)
        done = await harness.client.post(f"/api/v1/alerts/{cancel_id}/issue", headers=approver)
        assert done.json()["msgType"] == "Cancel"
        assert done.json()["active"] is False
        ended = await harness.client.get(f"/api/v1/alerts/{update['id']}", headers=approver)
        assert ended.json()["state"] == "cancelled"
        xml = (await harness.client.get(f"/api/v1/alerts/{cancel_id}/cap")).content
        cap.validate_against_schema(cap.parse_xml(xml, 10**6))

    async def test_draft_cannot_be_updated(self, harness: Harness) -> None:
        alert = await draft(harness)
        response = await harness.client.post(f"/api/v1/alerts/{alert['id']}/update", headers=await harness.user("olga"))
        assert response.status_code == 409


class TestExpire:
    async def test_expired_alert_leaves_the_active_set(self, harness: Harness) -> None:
        soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
        alert = await approved_and_issued(harness, alert_body(info=[info(expires=soon)]))
        async with unit_of_work(harness.database, harness.app.state.bus) as work:
            await alerts.expire_due(work, now=datetime.now(UTC) + timedelta(minutes=1))
            queued = work.queued
        assert [(channel, message["kind"]) for channel, message in queued] == [(ALERTS_CHANNEL, "expired")]
        approver = await harness.user("anna", Role.approver)
        after = await harness.client.get(f"/api/v1/alerts/{alert['id']}", headers=approver)
        assert after.json()["state"] == "expired"
        log = await harness.client.get("/api/v1/audit", params={"alert_id": alert["id"]}, headers=approver)
        assert [e["action"] for e in log.json()][:1] == ["expire"]
        assert log.json()[0]["actor"] == "scheduler"


class TestAudit:
    async def test_every_step_is_recorded_with_who(self, harness: Harness) -> None:
        alert = await approved_and_issued(harness)
        approver = await harness.user("anna", Role.approver)
        log = await harness.client.get("/api/v1/audit", params={"alert_id": alert["id"]}, headers=approver)
        steps = [(e["action"], e["actor"]) for e in reversed(log.json())]
        assert steps == [("create", "olga"), ("approve", "anna"), ("issue", "anna")]

    async def test_operators_cannot_read_and_nobody_can_change_it(self, harness: Harness) -> None:
        await approved_and_issued(harness)
        operator = await harness.user("olga")
        assert (await harness.client.get("/api/v1/audit", headers=operator)).status_code == 403
        admin = await harness.user("adam", Role.admin)
        for method in ("post", "put", "patch", "delete"):
            response = await harness.client.request(method.upper(), "/api/v1/audit", headers=admin)
            assert response.status_code == 405


class TestAreas:
    async def test_polygon_with_hole_is_refused_with_its_field(self, harness: Harness) -> None:
        holed = {
            "type": "Polygon",
            "coordinates": [
                FAENZA["coordinates"][0],
                [[11.875, 44.285], [11.876, 44.285], [11.876, 44.286], [11.875, 44.285]],
            ],
        }
        body = alert_body(info=[info(area=[{"areaDesc": "x", "geometry": holed}])])
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await harness.user("olga"))
        assert response.status_code == 422
        assert response.json()["error"]["field"].startswith("info[0].area[0].geometry")
        assert "holes" in response.json()["error"]["message"]
