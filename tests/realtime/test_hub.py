"""The hub's fan-out: vectorised matching agrees with point-by-point geometry; a slow device is closed, not waited
for; language choice; exercise isolation."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence

import pytest
from shapely.geometry import Point, box
from shapely.geometry.base import BaseGeometry

from tocsin.db import open_database
from tocsin.realtime.counters import DeliveryRecorder
from tocsin.realtime.hub import Client, Device, Hub, PreparedAlert


def new_hub() -> Hub:
    """A hub whose delivery notes are never written (these tests do not flush): the engine never connects."""
    return Hub(DeliveryRecorder(open_database("sqlite+aiosqlite:///:memory:")))


def prepared(
    seq: int, geometry: object, *, status: str = "Actual", exercise_id: str | None = None, scope: str = "Public"
) -> PreparedAlert:
    alert = PreparedAlert(
        seq=seq,
        alert_id=uuid.uuid4(),
        msg_type="Alert",
        status=status,
        scope=scope,
        exercise_id=exercise_id,
        categories=frozenset({"Met"}),
        severity_rank=3,
        geometry=geometry,
        languages=["en", "fr"],
        bodies={},
    )
    alert.texts = {"en": f"en-{seq}", "fr": f"fr-{seq}"}
    return alert


def connect(
    hub: Hub,
    location: tuple[float, float] | None,
    *,
    queue: int = 64,
    languages: Sequence[str] = (),
    exercise_id: str | None = None,
    places: Sequence[BaseGeometry] = (),
) -> tuple[Client, list[int]]:
    closed: list[int] = []
    device = Device(
        device_id=f"d{uuid.uuid4().hex[:8]}",
        location=location,
        languages=list(languages),
        exercise_id=exercise_id,
        places=list(places),
    )
    client = Client(device, closed.append, queue)
    hub.add(client)
    return client, closed


def drain(client: Client) -> list[str]:
    texts = []
    while not client.queue.empty():
        item = client.queue.get_nowait()
        assert isinstance(item, tuple)
        texts.append(item[1])
    return texts


class TestFanOut:
    def test_vectorised_matching_equals_pointwise(self) -> None:
        hub = new_hub()
        rng = random.Random(7)
        clients = [connect(hub, (rng.uniform(8.3, 8.5), rng.uniform(49.35, 49.45)))[0] for _ in range(5_000)]
        area = Point(8.4, 49.4).buffer(0.03)
        expected = {c.slot for c in clients if area.contains(Point(*c.device.location))}  # type: ignore[misc]
        assert set(hub.matching_slots(area).tolist()) == expected
        assert 0 < len(expected) < 5_000

    def test_places_match_by_intersection(self) -> None:
        hub = new_hub()
        client, _ = connect(hub, None, places=[Point(8.5, 49.5).buffer(0.01)])
        assert hub.matching_slots(box(8.505, 49.49, 8.6, 49.6)).tolist() == [client.slot]

    def test_slow_device_is_closed_with_1013_and_others_keep_receiving(self) -> None:
        hub = new_hub()
        slow, slow_closed = connect(hub, (8.4, 49.4), queue=8)
        fast, fast_closed = connect(hub, (8.4, 49.4), queue=8)
        area = box(8.3, 49.3, 8.5, 49.5)
        received = []
        for seq in range(1, 12):
            hub.fan_out(prepared(seq, area))
            received += drain(fast)
        assert slow_closed == [1013]
        assert fast_closed == []
        assert received == [f"en-{seq}" for seq in range(1, 12)]

    def test_language_and_isolation(self) -> None:
        hub = new_hub()
        french, _ = connect(hub, (8.4, 49.4), languages=["fr-BE"])
        player, _ = connect(hub, (8.4, 49.4), exercise_id="ex-1")
        area = box(8.3, 49.3, 8.5, 49.5)
        hub.fan_out(prepared(1, area))
        hub.fan_out(prepared(2, area, status="Exercise", exercise_id="ex-1"))
        hub.fan_out(prepared(3, area, status="Test"))
        hub.fan_out(prepared(4, area, scope="Restricted"))
        assert drain(french) == ["fr-1"]
        assert drain(player) == ["en-2"]  # a device in an exercise gets its exercise's messages, no real alert

    @pytest.mark.parametrize(
        ("alert_languages", "device_languages", "expected"),
        [
            (["it", "en"], ["de"], "en"),  # neither of the device's: English before the alert's first language
            (["it", "en-GB"], ["de", "fr"], "en-GB"),
            (["it", "en"], [], "en"),
            (["it", "en"], ["de", "it-CH"], "it"),  # the device's own languages first, in its order
            (["it", "fr"], ["de"], "it"),  # no English either: the alert's first
        ],
    )
    def test_language_falls_back_to_english_then_the_first(
        self, alert_languages: list[str], device_languages: list[str], expected: str
    ) -> None:
        alert = prepared(1, box(0, 0, 1, 1))
        alert.languages = alert_languages
        assert alert.language_for(device_languages) == expected

    def test_removed_device_gets_nothing(self) -> None:
        hub = new_hub()
        client, _ = connect(hub, (8.4, 49.4))
        hub.remove(client)
        assert hub.fan_out(prepared(1, box(8.3, 49.3, 8.5, 49.5))) == 0
        assert hub.connected == 0


class TestReplayHold:
    def test_live_messages_wait_during_replay_and_a_replay_that_lags_too_far_is_closed(self) -> None:
        from tocsin.realtime.hub import HELD_LIMIT

        hub = new_hub()
        client, closed = connect(hub, (8.4, 49.4))
        client.held = []
        area = box(8.3, 49.3, 8.5, 49.5)
        hub.fan_out(prepared(1, area))
        assert client.queue.empty()
        assert [seq for seq, _, _ in client.held] == [1]
        for seq in range(2, HELD_LIMIT + 3):
            hub.fan_out(prepared(seq, area))
        assert closed == [1013]
