"""What one request may cost: self-crossing outlines answered at once (repaired or refused), zero-area polygons
refused naming the field, a vertex budget per message, and the heavy parts off the event loop."""

from __future__ import annotations

import asyncio
import math
import sys
import threading
from types import FrameType
from typing import Any

import pytest
from shapely.geometry import Point
from sqlalchemy import select

from tests.alerts.factories import alert_body, info
from tests.conftest import Harness, LiveServer
from tests.exercises.helpers import short_scenario
from tests.waiting import wait_until
from tocsin import geo
from tocsin.auth.schemas import Role
from tocsin.models import Alert, AlertArea

CAP_TYPE = {"Content-Type": "application/cap+xml"}
HEAVY_SECONDS = 90  # a deadline, not a measure: the 2 MiB import takes ~2 s alone, far longer on a busy CI machine


def star(vertices: int, skip: int) -> list[list[float]]:
    """A closed ring ({vertices/skip} star polygon around Faenza): every edge crosses nearly every other one."""
    ring = [
        [
            round(11.88 + 0.01 * math.cos(2 * math.pi * i * skip / vertices), 6),
            round(44.29 + 0.01 * math.sin(2 * math.pi * i * skip / vertices), 6),
        ]
        for i in range(vertices)
    ]
    return [*ring, ring[0]]


STARS = {101: star(100, 49), 301: star(300, 149)}  # positions, first repeated last: as the issue counted them
BOWTIE = [[11.87, 44.28], [11.89, 44.30], [11.89, 44.28], [11.87, 44.30], [11.87, 44.28]]  # crosses itself once
FLAT_SQUARE = [[11.87, 44.28], [11.89, 44.28], [11.89, 44.30], [11.87, 44.30], [11.87, 44.28]]
FLAT = [[11.87, 44.28], [11.88, 44.29], [11.89, 44.30], [11.87, 44.28]]  # its corners on one line


def polygon(ring: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [ring]}


def cap_xml(*polygons: list[list[float]], areas: str = "") -> bytes:
    texts = "".join(f"<polygon>{geo.format_cap_polygon(ring)}</polygon>" for ring in polygons)
    return (
        '<?xml version="1.0"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>geometry-1</identifier>'
        "<sender>geo@example.org</sender><sent>2030-01-01T00:00:00+00:00</sent><status>Actual</status>"
        "<msgType>Alert</msgType><scope>Public</scope><info><category>Met</category><event>Flood</event>"
        "<urgency>Expected</urgency><severity>Minor</severity><certainty>Likely</certainty>"
        f"<area><areaDesc>Faenza</areaDesc>{texts}</area>{areas}</info></alert>"
    ).encode()


async def draft(h: Harness, geometry: dict[str, Any]) -> Any:
    body = alert_body()
    body["info"][0]["area"][0]["geometry"] = geometry
    headers = await h.user("olga", Role.operator)
    return await h.client.post("/api/v1/alerts", json=body, headers=headers, timeout=HEAVY_SECONDS)


async def import_cap(h: Harness, xml: bytes) -> Any:
    headers = {**await h.user("olga", Role.operator), **CAP_TYPE}
    return await h.client.post("/api/v1/alerts/cap", content=xml, headers=headers, timeout=HEAVY_SECONDS)


async def stored(h: Harness) -> tuple[int, list[Any]]:
    async with h.database.sessions() as session:
        alerts = len((await session.execute(select(Alert.id))).all())
        areas = list((await session.execute(select(AlertArea.geom))).scalars())
    return alerts, areas


def refused(response: Any, field: str, words: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert words in error["message"]


class TestSelfCrossingOutline:
    @pytest.mark.parametrize("positions", sorted(STARS))
    async def test_star_is_refused_through_the_api(self, harness: Harness, positions: int) -> None:
        response = await draft(harness, polygon(STARS[positions]))
        refused(response, "info[0].area[0].geometry.coordinates[0]", "crosses itself")
        assert await stored(harness) == (0, [])

    @pytest.mark.parametrize("positions", sorted(STARS))
    async def test_star_is_refused_on_cap_import(self, harness: Harness, positions: int) -> None:
        response = await import_cap(harness, cap_xml(FLAT_SQUARE, STARS[positions]))
        refused(response, "info[0].area[0].polygon[1]", "crosses itself")
        assert response.json()["error"]["code"] == "invalid_cap"
        assert await stored(harness) == (0, [])

    async def test_outline_crossing_itself_once_is_repaired(self, harness: Harness) -> None:
        response = await draft(harness, polygon(BOWTIE))
        assert response.status_code == 201, response.text
        _, (area,) = await stored(harness)
        assert area.is_valid
        assert area.covers(Point(11.872, 44.29))  # the left lobe
        assert area.covers(Point(11.888, 44.29))  # and the right one
        assert response.json()["cap"]["info"][0]["area"][0]["geometry"] == polygon(BOWTIE)  # kept as sent


class TestZeroArea:
    async def test_polygon_on_one_line_is_refused(self, harness: Harness) -> None:
        refused(await draft(harness, polygon(FLAT)), "info[0].area[0].geometry.coordinates[0]", "no area")
        assert await stored(harness) == (0, [])

    async def test_polygon_of_one_repeated_point_is_refused_in_a_multipolygon(self, harness: Harness) -> None:
        point = [[11.88, 44.29]] * 4
        multi = {"type": "MultiPolygon", "coordinates": [[FLAT_SQUARE], [point]]}
        refused(await draft(harness, multi), "info[0].area[0].geometry.coordinates[1][0]", "no area")

    async def test_zero_area_is_refused_on_cap_import(self, harness: Harness) -> None:
        refused(await import_cap(harness, cap_xml(FLAT)), "info[0].area[0].polygon[0]", "no area")
        assert await stored(harness) == (0, [])

    async def test_zero_area_edit_is_refused_and_the_draft_kept(self, harness: Harness) -> None:
        created = (await draft(harness, polygon(FLAT_SQUARE))).json()
        body = alert_body()
        body["info"] = [info(area=[{"areaDesc": "Faenza", "geometry": polygon(FLAT)}])]
        edited = await harness.client.put(
            f"/api/v1/alerts/{created['id']}", json=body, headers=await harness.user("olga", Role.operator)
        )
        refused(edited, "info[0].area[0].geometry.coordinates[0]", "no area")
        _, (area,) = await stored(harness)
        assert area.area > 0


def comb(teeth: int, *, upright: bool) -> list[list[float]]:
    """A simple outline: `teeth` long thin teeth on a bar. An upright comb and a lying one cross each other at
    every pair of teeth, though neither crosses itself."""
    points: list[tuple[float, float]] = []
    for k in range(teeth):
        x = k / teeth
        points += [(x, 0.0), (x, 1.0), (x + 0.5 / teeth, 1.0), (x + 0.5 / teeth, 0.0)]
    points += [(1.0, -0.1), (0.0, -0.1)]
    ring = [
        [round(11.8 + 0.1 * (a if upright else b), 7), round(44.2 + 0.1 * (b if upright else a), 7)] for a, b in points
    ]
    return [*ring, ring[0]]


class TestOverlayBudget:
    async def test_outlines_crossing_each_other_everywhere_are_refused(self, harness: Harness) -> None:
        one, other = comb(1_500, upright=True), comb(1_500, upright=False)
        response = await draft(harness, {"type": "MultiPolygon", "coordinates": [[one], [other]]})
        refused(response, "info", "too intricate")
        assert await stored(harness) == (0, [])

    async def test_the_same_area_in_each_language_is_fine(self, harness: Harness) -> None:
        body = alert_body("en", "fr", "de")
        for each in body["info"]:
            each["area"] = [{"areaDesc": "Comb", "geometry": polygon(comb(1_500, upright=True))}]
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await harness.user("olga"))
        assert response.status_code == 201, response.text


class TestVertexBudget:
    async def test_message_over_the_budget_is_refused_before_any_work(self, harness: Harness) -> None:
        circles = [{"center": [11.88, 44.29], "radiusKm": 1 + k / 100} for k in range(100)]
        areas = [{"areaDesc": f"ring {n}", "circles": circles} for n in range(40)]  # 4,000 circles: 256,000
        body = alert_body()
        body["info"][0]["area"] = areas
        response = await harness.client.post("/api/v1/alerts", json=body, headers=await harness.user("olga"))
        refused(response, "info", f"at most {geo.MAX_VERTICES_PER_MESSAGE} vertices")
        assert await stored(harness) == (0, [])


def running_in_another_thread(function_name: str) -> bool:
    """True while a thread other than this one (the event loop's) is inside `function_name`."""
    loop_thread = threading.get_ident()
    for thread_id, frame in sys._current_frames().items():
        walker: FrameType | None = frame
        while thread_id != loop_thread and walker is not None:
            if walker.f_code.co_name == function_name:
                return True
            walker = walker.f_back
    return False


def big_cap() -> bytes:
    """Just under the 2 MiB limit: 64 areas of 460 geocodes each; its schema validation takes seconds."""
    geocodes = "".join(f"<geocode><valueName>ISTAT</valueName><value>{n:06d}</value></geocode>" for n in range(460))
    areas = "".join(f"<area><areaDesc>District {k}</areaDesc>{geocodes}</area>" for k in range(63))
    xml = cap_xml(FLAT_SQUARE, areas=areas)
    assert 1_900_000 < len(xml) <= 2_097_152
    return xml


def big_outline() -> dict[str, Any]:
    """A valid outline of 40,000 vertices (a national boundary has about as many)."""
    n = 40_000
    ring = [
        [round(11.88 + 0.2 * math.cos(2 * math.pi * i / n), 5), round(44.29 + 0.2 * math.sin(2 * math.pi * i / n), 5)]
        for i in range(n)
    ]
    return polygon([*ring, ring[0]])


class TestHeavyWorkOffTheEventLoop:
    pytestmark = pytest.mark.timeout(4 * HEAVY_SECONDS)

    @pytest.mark.parametrize(
        ("kind", "heavy_part"), [("cap", "validate_against_schema"), ("outline", "targeting_geometry")]
    )
    async def test_health_is_answered_while_a_heavy_request_runs(
        self, live: LiveServer, kind: str, heavy_part: str
    ) -> None:
        """Ordering, not time: once the heavy part is running, a health check is answered before the heavy request
        is. With that work on the event loop, this test could not even look until the heavy part was over."""
        if kind == "cap":
            request = import_cap(live, big_cap())
        else:
            request = draft(live, big_outline())
        heavy = asyncio.create_task(request)
        await wait_until(
            lambda: running_in_another_thread(heavy_part) or heavy.done(),
            what=f"{heavy_part} to start",
            seconds=HEAVY_SECONDS,
        )
        assert not heavy.done(), f"{heavy_part} never ran off the event loop"
        health = await live.client.get("/healthz")
        assert health.status_code == 200
        assert not heavy.done()
        response = await heavy
        assert response.status_code == 201, response.text


class TestScenarioAreas:
    @pytest.mark.parametrize("ring", [STARS[301], FLAT], ids=["star", "flat"])
    async def test_an_area_that_crosses_itself_or_is_flat_is_refused(
        self, harness: Harness, ring: list[list[float]]
    ) -> None:
        scenario = short_scenario()
        scenario["areas"][0]["geometry"] = polygon(ring)
        response = await harness.client.post(
            "/api/v1/exercises", json={"scenario": scenario}, headers=await harness.user("pia", Role.planner)
        )
        assert response.status_code == 422, response.text
        field = response.json()["error"]["field"]
        assert field.startswith("scenario.areas")
        assert field.endswith("geometry")
