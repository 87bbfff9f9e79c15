"""Refusals are 4xx JSON naming the field; sizes are bounded; nothing half-written stays behind."""

from __future__ import annotations

from sqlalchemy import func, select

from tests.alerts.factories import alert_body, info
from tests.conftest import Harness
from tocsin.auth.schemas import Role
from tocsin.models import Alert, AlertArea, AuditEntry


async def rows(h: Harness, model: type) -> int:
    async with h.database.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


class TestRefusals:
    async def test_bad_enum_names_its_path(self, harness: Harness) -> None:
        body = alert_body(info=[info(), info(language="fr", severity="Apocalyptic")])
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await harness.user("olga"))
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "info[1].severity"

    async def test_out_of_range_coordinates_name_the_area(self, harness: Harness) -> None:
        bad = {"type": "Polygon", "coordinates": [[[200, 44], [11, 44], [11, 45], [200, 44]]]}
        body = alert_body(info=[info(area=[{"areaDesc": "x"}, {"areaDesc": "y", "geometry": bad}])])
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await harness.user("olga"))
        assert response.status_code == 422
        assert response.json()["error"]["field"].startswith("info[0].area[1].geometry")
        assert "longitude" in response.json()["error"]["message"]

    async def test_unclosed_ring_is_refused(self, harness: Harness) -> None:
        ring = {"type": "Polygon", "coordinates": [[[11, 44], [12, 44], [12, 45], [11, 45]]]}
        body = alert_body(info=[info(area=[{"areaDesc": "x", "geometry": ring}])])
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await harness.user("olga"))
        assert response.status_code == 422
        assert "closed" in response.json()["error"]["message"]

    async def test_too_many_infos_is_refused(self, harness: Harness) -> None:
        body = alert_body(info=[info() for _ in range(33)])
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await harness.user("olga"))
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "info"

    async def test_oversized_text_is_refused(self, harness: Harness) -> None:
        body = alert_body(info=[info(headline="x" * 501)])
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await harness.user("olga"))
        assert response.json()["error"]["field"] == "info[0].headline"

    async def test_expiry_before_onset_is_refused(self, harness: Harness) -> None:
        body = alert_body(info=[info(onset="2030-01-02T00:00:00+01:00", expires="2030-01-01T00:00:00+01:00")])
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await harness.user("olga"))
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "info[0].expires"

    async def test_restricted_scope_needs_restriction(self, harness: Harness) -> None:
        response = await harness.client.post(
            "/api/v1/alerts", json=alert_body(scope="Restricted"), headers=await harness.user("olga")
        )
        assert response.status_code == 422
        assert "restriction" in response.json()["error"]["message"]

    async def test_naive_time_is_refused(self, harness: Harness) -> None:
        body = alert_body(info=[info(expires="2030-01-01T00:00:00")])
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await harness.user("olga"))
        assert response.json()["error"]["field"] == "info[0].expires"

    async def test_body_over_the_limit_is_413_and_writes_nothing(self, harness: Harness) -> None:
        body = alert_body(info=[info(description="x" * 19_000, instruction="y" * 19_000) for _ in range(32)])
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await harness.user("olga"))
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_large"
        assert await rows(harness, Alert) == 0

    async def test_unknown_alert_is_404(self, harness: Harness) -> None:
        response = await harness.client.get(
            "/api/v1/alerts/00000000-0000-0000-0000-000000000000", headers=await harness.user("olga")
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "alert_not_found"

    async def test_refused_import_leaves_no_rows(self, harness: Harness) -> None:
        headers = {**await harness.user("olga", Role.operator), "Content-Type": "application/cap+xml"}
        xml = (
            b'<?xml version="1.0"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>a</identifier>'
            b"<sender>s</sender><sent>2030-01-01T00:00:00+00:00</sent><status>Actual</status>"
            b"<msgType>Alert</msgType><scope>Public</scope><info><category>Met</category><event>e</event>"
            b"<urgency>Expected</urgency><severity>Minor</severity><certainty>Likely</certainty><area>"
            b"<areaDesc>x</areaDesc><polygon>1,1 2,2 3,1</polygon></area></info></alert>"
        )
        response = await harness.client.post("/api/v1/alerts/cap", content=xml, headers=headers)
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "info[0].area[0].polygon[0]"
        assert (await rows(harness, Alert), await rows(harness, AlertArea)) == (0, 0)
        assert await rows(harness, AuditEntry) == 1  # only the account creation
