"""Where alerts apply: point queries (PostGIS in SQL, SQLite by bounding box then shapely) and the Atom feed."""

from __future__ import annotations

from typing import Any

from lxml import etree

from tests.alerts.factories import INSIDE_FAENZA, OUTSIDE, alert_body, info
from tests.alerts.test_lifecycle import approved_and_issued, draft
from tests.conftest import Harness

ATOM = "{http://www.w3.org/2005/Atom}"

# An L-shaped polygon: its bounding box contains (11.95, 44.35) but the polygon does not.
L_SHAPE = {
    "type": "Polygon",
    "coordinates": [
        [[11.9, 44.3], [12.0, 44.3], [12.0, 44.32], [11.92, 44.32], [11.92, 44.4], [11.9, 44.4], [11.9, 44.3]]
    ],
}


async def features(h: Harness, **params: str | float) -> list[dict[str, Any]]:
    response = await h.client.get("/api/v1/alerts", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "FeatureCollection"
    found: list[dict[str, Any]] = body["features"]
    return found


class TestPointQuery:
    async def test_alert_found_inside_its_polygon_only(self, harness: Harness) -> None:
        alert = await approved_and_issued(harness)
        lon, lat = INSIDE_FAENZA
        inside = await features(harness, active="true", lat=lat, lon=lon)
        assert [f["id"] for f in inside] == [alert["id"]]
        assert inside[0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert inside[0]["properties"]["headline"]["en"] == "Flood warning (en)"
        outside = await features(harness, active="true", lat=OUTSIDE[1], lon=OUTSIDE[0])
        assert outside == []

    async def test_bounding_box_alone_does_not_match(self, harness: Harness) -> None:
        await approved_and_issued(harness, alert_body(info=[info(area=[{"areaDesc": "L", "geometry": L_SHAPE}])]))
        assert await features(harness, active="true", lat=44.35, lon=11.95) == []
        assert len(await features(harness, active="true", lat=44.35, lon=11.91)) == 1

    async def test_circle_area_matches_within_its_radius(self, harness: Harness) -> None:
        circle = {"areaDesc": "Plant", "circles": [{"center": [8.76, 38.50], "radiusKm": 3}]}
        await approved_and_issued(harness, alert_body(info=[info(area=[circle])]))
        assert len(await features(harness, lat=38.50 + 2.5 / 111.32, lon=8.76)) == 1  # 2.5 km north
        assert await features(harness, lat=38.50 + 3.5 / 111.32, lon=8.76) == []  # 3.5 km north

    async def test_drafts_are_not_public(self, harness: Harness) -> None:
        await draft(harness)
        lon, lat = INSIDE_FAENZA
        assert await features(harness, lat=lat, lon=lon) == []
        staff = await harness.client.get(
            "/api/v1/alerts", params={"lat": lat, "lon": lon}, headers=await harness.user("olga")
        )
        assert len(staff.json()["features"]) == 1

    async def test_lat_without_lon_is_refused(self, harness: Harness) -> None:
        response = await harness.client.get("/api/v1/alerts", params={"lat": 44.0})
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "lon"

    async def test_latitude_out_of_range_is_refused(self, harness: Harness) -> None:
        response = await harness.client.get("/api/v1/alerts", params={"lat": 95, "lon": 0})
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "lat"


class TestAtomFeed:
    async def test_feed_lists_active_public_alerts_with_cap_links(self, harness: Harness) -> None:
        alert = await approved_and_issued(harness)
        await draft(harness)
        response = await harness.client.get("/feeds/alerts.atom")
        assert response.headers["content-type"].startswith("application/atom+xml")
        root = etree.fromstring(response.content)
        entries = root.findall(f"{ATOM}entry")
        assert len(entries) == 1
        entry = entries[0]
        assert entry.findtext(f"{ATOM}title") == "Flood warning (en)"
        assert entry.findtext(f"{ATOM}updated")
        link = entry.find(f"{ATOM}link")
        assert link.get("type") == "application/cap+xml"
        assert link.get("href") == f"http://testserver/api/v1/alerts/{alert['id']}/cap"
        cap_response = await harness.client.get(link.get("href").removeprefix("http://testserver"))
        assert cap_response.status_code == 200
