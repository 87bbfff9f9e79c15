"""POST /api/v1/alerts/cap on both backends: every good message in, the same CAP out; every bad one refused whole.

Our own messages always; the real-world corpus beside the checkout too when it is there (`tests/alerts/samples.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.alerts.cap_compare import differences
from tests.alerts.factories import alert_body
from tests.alerts.samples import corpus_file, own, params
from tests.alerts.signing import make_key, sign, signature_holds
from tests.conftest import Harness
from tocsin.alerts import cap
from tocsin.alerts import service as alerts
from tocsin.alerts.schemas import AlertDraftIn
from tocsin.auth import service as users
from tocsin.auth.schemas import Role
from tocsin.errors import Conflict
from tocsin.kernel.work import unit_of_work
from tocsin.models import Alert, AlertArea, AuditEntry

CAP_TYPE = {"Content-Type": "application/cap+xml"}


async def import_file(h: Harness, path: Path) -> tuple[int, dict[str, Any]]:
    return await import_bytes(h, path.read_bytes())


async def import_bytes(h: Harness, data: bytes) -> tuple[int, dict[str, Any]]:
    headers = {**await h.user("olga", Role.operator), **CAP_TYPE}
    response = await h.client.post("/api/v1/alerts/cap", content=data, headers=headers)
    return response.status_code, response.json()


async def count(h: Harness, model: type) -> int:
    async with h.database.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


class TestImportCap:
    @pytest.mark.parametrize("path", params("valid"))
    async def test_valid_message_imports_and_exports_with_nothing_lost(
        self, harness: Harness, path: Path | None
    ) -> None:
        path = corpus_file(path)
        staff = await harness.user("olga", Role.operator)
        status, alert = await import_file(harness, path)
        assert status == 201, alert
        assert alert["state"] == "draft"
        assert alert["origin"] == "imported"
        exported = await harness.client.get(f"/api/v1/alerts/{alert['id']}/cap", headers=staff)
        again = cap.parse_xml(exported.content, 10**7)
        cap.validate_against_schema(again)
        original = cap.parse_xml(path.read_bytes(), 10**7)
        assert differences(original, again) == []
        assert await count(harness, Alert) == 1

    async def test_a_duplicate_refuses_itself_and_keeps_the_callers_earlier_work(self, harness: Harness) -> None:
        data = own("valid/guadiana-wildfire-es-pt.xml").read_bytes()
        assert (await import_bytes(harness, data))[0] == 201
        settings = harness.app.state.settings
        async with unit_of_work(harness.database, harness.app.state.bus) as work:
            author = await users.get_user_by_name(work.session, username="olga")
            assert author is not None
            body = AlertDraftIn.model_validate(alert_body())
            earlier = (await alerts.create_draft(work.session, body=body, author=author, settings=settings)).id
            with pytest.raises(Conflict) as refused:
                await alerts.import_cap(work.session, data=data, author=author, settings=settings)
            assert refused.value.code == "duplicate_alert"
            # the same transaction goes on and commits what it did before the conflict
        async with harness.database.sessions() as session:
            kept = await session.get(Alert, earlier)
            assert kept is not None
            assert kept.state == "draft"
            created = select(func.count()).where(AuditEntry.alert_id == earlier, AuditEntry.action == "create")
            assert (await session.execute(created)).scalar_one() == 1
        assert await count(harness, Alert) == 2

    async def test_signed_original_is_kept_verbatim(self, harness: Harness, cap_samples: Path) -> None:
        path = cap_samples / "valid" / "google_canada_signed.cap"
        status, alert = await import_file(harness, path)
        assert status == 201
        assert alert["signed"] is True
        staff = await harness.user("olga")
        original = await harness.client.get(f"/api/v1/alerts/{alert['id']}/cap/original", headers=staff)
        assert original.content.decode() == path.read_bytes().decode("utf-8")
        exported = await harness.client.get(f"/api/v1/alerts/{alert['id']}/cap", headers=staff)
        assert b"Signature" not in exported.content

    async def test_message_signed_at_test_time_is_kept_verbatim(self, harness: Harness) -> None:
        key = make_key()
        signed = sign(own("valid/moselle-flood-alert.xml").read_bytes(), key)
        status, alert = await import_bytes(harness, signed)
        assert status == 201, alert
        assert alert["signed"] is True
        staff = await harness.user("olga")
        original = await harness.client.get(f"/api/v1/alerts/{alert['id']}/cap/original", headers=staff)
        assert original.content == signed
        assert signature_holds(original.content, key)
        exported = await harness.client.get(f"/api/v1/alerts/{alert['id']}/cap", headers=staff)
        assert b"Signature" not in exported.content
        assert differences(cap.parse_xml(signed, 10**7), cap.parse_xml(exported.content, 10**7)) == []

    async def test_update_and_cancel_chain_imports_with_its_references(self, harness: Harness) -> None:
        staff = await harness.user("olga", Role.operator)
        chain = ["moselle-flood-alert.xml", "moselle-flood-update.xml", "moselle-flood-cancel.xml"]
        for name in chain:
            data = own(f"valid/{name}").read_bytes()
            status, alert = await import_bytes(harness, data)
            assert status == 201, alert
            exported = await harness.client.get(f"/api/v1/alerts/{alert['id']}/cap", headers=staff)
            assert differences(cap.parse_xml(data, 10**7), cap.parse_xml(exported.content, 10**7)) == []
        assert await count(harness, Alert) == 3

    @pytest.mark.parametrize("path", params("invalid"))
    async def test_invalid_message_is_refused_and_nothing_is_written(self, harness: Harness, path: Path | None) -> None:
        status, body = await import_file(harness, corpus_file(path))
        assert 400 <= status < 500
        assert body["error"]["message"]
        assert await count(harness, Alert) == 0
        assert await count(harness, AlertArea) == 0

    async def test_cap11_message_says_so(self, harness: Harness) -> None:
        status, body = await import_file(harness, own("invalid/cap11-namespace.xml"))
        assert status == 422
        assert body["error"]["message"].startswith("CAP 1.1 is not supported")

    async def test_same_message_twice_is_a_conflict(self, harness: Harness) -> None:
        path = own("valid/guadiana-wildfire-es-pt.xml")
        assert (await import_file(harness, path))[0] == 201
        status, body = await import_file(harness, path)
        assert status == 409
        assert body["error"]["code"] == "duplicate_alert"
        assert await count(harness, Alert) == 1

    async def test_json_body_is_refused_with_415(self, harness: Harness) -> None:
        response = await harness.client.post(
            "/api/v1/alerts/cap", json={"x": 1}, headers=await harness.user("olga", Role.operator)
        )
        assert response.status_code == 415

    async def test_imported_actual_alert_needs_a_second_person(self, harness: Harness) -> None:
        both = await harness.user("bea", Role.operator, Role.approver)
        data = own("valid/thessaloniki-earthquake-el-it.xml").read_bytes()
        created = await harness.client.post("/api/v1/alerts/cap", content=data, headers={**both, **CAP_TYPE})
        assert created.json()["status"] == "Actual"
        alert_id = created.json()["id"]
        assert (await harness.client.post(f"/api/v1/alerts/{alert_id}/issue", headers=both)).status_code == 403
        assert (await harness.client.post(f"/api/v1/alerts/{alert_id}/approve", headers=both)).status_code == 403
        other = await harness.user("anna", Role.approver)
        assert (await harness.client.post(f"/api/v1/alerts/{alert_id}/approve", headers=other)).status_code == 200
        issued = await harness.client.post(f"/api/v1/alerts/{alert_id}/issue", headers=both)
        assert issued.json()["state"] == "issued"
