"""docs/asyncapi.yaml and the server agree: every message the file says the server receives is handled, the server
sends only message types the file lists, and what it sends validates against the file's schemas."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import jsonschema
import websockets
import yaml

from tests.alerts.factories import INSIDE_FAENZA
from tests.alerts.test_lifecycle import approved_and_issued
from tests.conftest import REPO, LiveServer
from tests.realtime.wsclient import Citizen
from tocsin.auth.schemas import Role
from tocsin.realtime import protocol

SPEC: dict[str, Any] = yaml.safe_load((REPO / "docs" / "asyncapi.yaml").read_text(encoding="utf-8"))
INSIDE = {"lon": INSIDE_FAENZA[0], "lat": INSIDE_FAENZA[1]}


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def payloads(operation: str) -> dict[str, dict[str, Any]]:
    """type -> payload schema, for the messages of one operation."""
    found = {}
    for ref in SPEC["operations"][operation]["messages"]:
        payload = resolve(resolve(ref)["payload"])
        parts = payload.get("allOf", [payload])
        kinds = [resolve(p).get("properties", {}).get("type", {}).get("const") for p in parts]
        kind = next(k for k in kinds if k)
        found[kind] = payload
    return found


def validate(message: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> None:
    assert message["type"] in schemas, f"the server sent a '{message['type']}' the AsyncAPI file does not list"
    jsonschema.validate(message, {**schemas[message["type"]], "components": SPEC["components"]})


class TestSpecMatchesCode:
    def test_citizen_message_types(self) -> None:
        assert set(payloads("receiveFromCitizen")) == set(protocol.CLIENT_TYPES)
        assert set(payloads("sendToCitizen")) == set(protocol.SERVER_TYPES)

    def test_operator_message_types(self) -> None:
        assert set(payloads("receiveFromOperator")) == set(protocol.OPERATOR_CLIENT_TYPES)
        assert set(payloads("sendToOperator")) == set(protocol.OPERATOR_SERVER_TYPES)

    def test_error_codes_are_documented(self) -> None:
        documented = set(resolve(SPEC["components"]["messages"]["error"]["payload"])["properties"]["code"]["enum"])
        source = "".join(p.read_text() for p in (REPO / "backend" / "tocsin").rglob("*.py"))
        import re

        used = set(re.findall(r'ProtocolViolation\(\s*"([a-z_]+)"', source))
        used |= set(re.findall(r'protocol\.error\(\s*"([a-z_]+)"', source))
        used |= set(re.findall(r'ReportRefused\(\s*"([a-z_]+)"', source))
        assert used
        assert used <= documented


class TestServerSpeaksTheSpec:
    async def test_every_client_message_is_handled_and_every_answer_validates(self, live: LiveServer) -> None:
        sent_to_citizen = payloads("sendToCitizen")
        alert = await approved_and_issued(live)
        citizen, first = await Citizen.connect(live.ws_url, location=INSIDE, languages=["en"], last_seq=0)
        received = list(first)
        report_id = str(uuid.uuid4())
        script: list[dict[str, Any]] = [
            {"type": "location", "id": "1", "location": INSIDE},
            {"type": "places", "id": "2", "places": [{"name": "home", "point": INSIDE, "radius_km": 0.3}]},
            {"type": "preferences", "id": "3", "languages": ["it", "en"], "min_severity": "Minor"},
            {"type": "ack_alert", "id": "4", "alert_id": alert["id"]},
            {"type": "received", "id": "6", "alert_ids": [alert["id"]]},
            {"type": "checkin", "id": "5", "alert_id": alert["id"], "status": "safe"},
            {
                "type": "report",
                "id": report_id,
                "category": "smoke",
                "text": "",
                "location": INSIDE,
                "observed_at": datetime.now(UTC).isoformat(),
            },
            {"type": "my_reports", "id": "7"},
            {"type": "ping", "id": "8"},
            {"type": "hello", "id": "9", "device_id": "again-and-again"},
        ]
        assert {m["type"] for m in script} == set(protocol.CLIENT_TYPES)
        for message in script:
            await citizen.send(message)
        received += await citizen.nothing_for(1.5)
        await citizen.close()
        for message in received:
            validate(message, sent_to_citizen)
        errors = [m for m in received if m["type"] == "error"]
        assert [e["code"] for e in errors] == ["already_said_hello"]  # hello is handled: it is refused after the first
        answered = {m.get("id") for m in received}
        assert {"1", "2", "3", "4", "5", "6", report_id, "7", "8", "9"} <= answered
        assert {m["type"] for m in received} >= {"welcome", "alert", "snapshot", "ack", "my_reports", "pong"}

    async def test_operator_feed_validates(self, live: LiveServer) -> None:
        sent_to_operator = payloads("sendToOperator")
        token = (await live.user("olga", Role.operator))["Authorization"].split()[1]
        async with websockets.connect(f"{live.ws_url}/ws/operator") as feed:
            await feed.send(json.dumps({"type": "auth", "token": token}))
            report = {
                "id": str(uuid.uuid4()),
                "device_id": "device-abc",
                "category": "fire",
                "text": "flames",
                "location": INSIDE,
                "observed_at": datetime.now(UTC).isoformat(),
            }
            posted = await live.client.post("/api/v1/reports", json=report)
            await live.client.post(
                f"/api/v1/reports/{posted.json()['report_id']}/status",
                json={"status": "resolved"},
                headers=await live.user("olga"),
            )
            await feed.send(json.dumps({"type": "ping", "id": "p"}))
            await feed.send(json.dumps({"type": "nonsense"}))
            kinds: list[str] = []
            while len(kinds) < 5:
                message = json.loads(await feed.recv())
                validate(message, sent_to_operator)
                kinds.append(message["type"])
        assert sorted(kinds) == sorted(["welcome", "report_new", "report_status", "pong", "error"])
