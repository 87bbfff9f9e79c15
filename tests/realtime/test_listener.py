"""The lean citizen listener (TOCSIN_CITIZEN_PORT): the same protocol on the `websockets` server, the same hub."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import websockets

from tests.alerts.factories import INSIDE_FAENZA
from tests.alerts.test_lifecycle import approved_and_issued
from tests.conftest import LiveServer
from tests.realtime.wsclient import Citizen
from tocsin.testing import free_port

INSIDE = {"lon": INSIDE_FAENZA[0], "lat": INSIDE_FAENZA[1]}
PORT = free_port()
LEAN = pytest.mark.parametrize("live", [{"citizen_port": PORT}], indirect=True)


@LEAN
class TestListener:
    async def test_devices_on_both_endpoints_get_the_alert(self, live: LiveServer) -> None:
        lean, _ = await Citizen.connect(f"ws://127.0.0.1:{PORT}", location=INSIDE)
        asgi, _ = await Citizen.connect(live.ws_url, location=INSIDE)
        alert = await approved_and_issued(live)
        assert (await lean.receive_type("alert"))["alert_id"] == alert["id"]
        assert (await asgi.receive_type("alert"))["alert_id"] == alert["id"]
        await lean.close()
        await asgi.close()

    async def test_report_is_acknowledged(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(f"ws://127.0.0.1:{PORT}")
        report_id = str(uuid.uuid4())
        await citizen.send(
            {
                "type": "report",
                "id": report_id,
                "category": "fire",
                "location": INSIDE,
                "observed_at": datetime.now(UTC).isoformat(),
            }
        )
        assert (await citizen.receive_type("ack"))["id"] == report_id
        await citizen.close()

    async def test_other_paths_are_refused(self, live: LiveServer) -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"ws://127.0.0.1:{PORT}/ws/operator"):
                pass
        assert refused.value.response.status_code == 404

    async def test_oversized_frame_closes_with_1009(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(f"ws://127.0.0.1:{PORT}")
        await citizen.connection.send("x" * 70_000)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await citizen.receive(5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009

    async def test_protocol_errors_close_with_1008(self, live: LiveServer) -> None:
        citizen, _ = await Citizen.connect(f"ws://127.0.0.1:{PORT}")
        for _ in range(5):
            await citizen.send({"type": "nope"})
        for _ in range(5):
            assert (await citizen.receive(5))["code"] == "unknown_type"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await citizen.receive(5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
