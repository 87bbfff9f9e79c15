"""Operators triage reports: filters and formats, statuses, proposed groups, incidents; the public sees little."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets

from tests.alerts.factories import INSIDE_FAENZA
from tests.conftest import Harness, LiveServer
from tests.realtime.operators import bearer
from tocsin.auth.schemas import Role
from tocsin.reports import service


def body(
    lon: float, lat: float, category: str = "flooding", text: str = "water", device: str = "device-one"
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "device_id": device,
        "category": category,
        "text": text,
        "location": {"lon": lon, "lat": lat},
        "observed_at": datetime.now(UTC).isoformat(),
    }


async def post(h: Harness, *reports: dict[str, Any]) -> list[int]:
    ids = []
    for report in reports:
        response = await h.client.post("/api/v1/reports", json=report)
        assert response.status_code == 201, response.text
        ids.append(response.json()["report_id"])
    return ids


class TestListReports:
    async def test_filters_by_box_category_and_text(self, harness: Harness) -> None:
        near, far, fire = await post(
            harness,
            body(11.88, 44.29, text="Cellar flooded"),
            body(12.5, 45.0),
            body(11.881, 44.291, "fire", "smoke from the roof"),
        )
        operator = await harness.user("olga", Role.operator)
        boxed = await harness.client.get("/api/v1/reports", params={"bbox": "11.8,44.2,11.9,44.3"}, headers=operator)
        assert sorted(r["id"] for r in boxed.json()) == sorted([near, fire])
        by_category = await harness.client.get("/api/v1/reports", params={"category": "fire"}, headers=operator)
        assert [r["id"] for r in by_category.json()] == [fire]
        by_text = await harness.client.get("/api/v1/reports", params={"q": "cellar"}, headers=operator)
        assert [r["id"] for r in by_text.json()] == [near]
        assert far not in [r["id"] for r in by_text.json()]

    async def test_geojson_and_csv(self, harness: Harness) -> None:
        (report_id,) = await post(harness, body(11.88, 44.29, text='=HYPERLINK("x")'))
        operator = await harness.user("olga", Role.operator)
        geojson = await harness.client.get("/api/v1/reports", params={"format": "geojson"}, headers=operator)
        assert geojson.headers["content-type"].startswith("application/geo+json")
        feature = geojson.json()["features"][0]
        assert feature["geometry"] == {"type": "Point", "coordinates": [11.88, 44.29]}
        exported = await harness.client.get("/api/v1/reports", params={"format": "csv"}, headers=operator)
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert rows[0]["id"] == str(report_id)
        assert rows[0]["text"].startswith("'=")  # no formula injection into spreadsheets

    async def test_citizens_and_planners_cannot_triage(self, harness: Harness) -> None:
        assert (await harness.client.get("/api/v1/reports")).status_code == 401
        planner = await harness.user("pia", Role.planner)
        assert (await harness.client.get("/api/v1/reports", headers=planner)).status_code == 403

    async def test_bad_bbox_names_the_field(self, harness: Harness) -> None:
        response = await harness.client.get(
            "/api/v1/reports", params={"bbox": "1,2,3"}, headers=await harness.user("olga")
        )
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "bbox"


class TestStatus:
    async def test_statuses_with_who_and_when(self, harness: Harness) -> None:
        first, second = await post(harness, body(11.88, 44.29), body(11.8801, 44.2901))
        operator = await harness.user("olga", Role.operator)
        refused = await harness.client.post(
            f"/api/v1/reports/{first}/status", json={"status": "dismissed"}, headers=operator
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "reason"
        duplicate = await harness.client.post(
            f"/api/v1/reports/{second}/status", json={"status": "duplicate", "duplicate_of": first}, headers=operator
        )
        assert duplicate.json()["duplicate_of"] == first
        verified = await harness.client.post(
            f"/api/v1/reports/{first}/status", json={"status": "verified"}, headers=operator
        )
        assert verified.json()["status_by"] == "olga"
        assert verified.json()["status_at"] is not None

    async def test_public_sees_only_verified_reports_coarsened_without_text(self, harness: Harness) -> None:
        verified, _ = await post(harness, body(11.88123, 44.29123, text="my address is ..."), body(11.9, 44.3))
        await harness.client.post(
            f"/api/v1/reports/{verified}/status", json={"status": "verified"}, headers=await harness.user("olga")
        )
        public = (await harness.client.get("/api/v1/public/reports")).json()
        assert len(public) == 1
        assert public[0]["location"] == {"lon": 11.885, "lat": 44.295}
        assert "text" not in public[0]


class TestGroups:
    async def test_nearby_reports_of_one_category_are_proposed_as_a_group(self, harness: Harness) -> None:
        lon, lat = INSIDE_FAENZA
        street = await post(harness, body(lon, lat), body(lon + 0.0004, lat), body(lon, lat + 0.0004))
        await post(harness, body(lon + 0.0002, lat, "fire"), body(lon + 0.05, lat + 0.05))
        operator = await harness.user("olga", Role.operator)
        groups = (
            await harness.client.get(
                "/api/v1/reports/groups", params={"distance_m": 100, "min_reports": 3}, headers=operator
            )
        ).json()
        assert [(g["category"], g["report_ids"]) for g in groups] == [("flooding", sorted(street))]
        created = await harness.client.post(
            "/api/v1/incidents",
            json={"title": "Via Roma flooded", "report_ids": groups[0]["report_ids"]},
            headers=operator,
        )
        assert created.status_code == 201
        assert created.json()["category"] == "flooding"
        again = (await harness.client.get("/api/v1/reports/groups", headers=operator)).json()
        assert again == []  # grouped reports are no longer proposed


class TestDbscan:
    @pytest.mark.parametrize(("eps", "expected"), [(100, [0, 0, 0, None]), (10, [None, None, None, None])])
    def test_embedded_clustering_follows_dbscan(self, eps: float, expected: list[int | None]) -> None:
        from tocsin import geo

        lons = [11.88, 11.8804, 11.88, 11.95]
        lats = [44.29, 44.29, 44.2904, 44.29]
        assert geo.dbscan(lons, lats, eps, 3) == expected


class TestOperatorFeed:
    async def test_operator_needs_a_token(self, live: LiveServer) -> None:
        async with websockets.connect(f"{live.ws_url}/ws/operator") as feed:
            await feed.send(json.dumps({"type": "ping"}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await feed.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert "auth" in closed.value.rcvd.reason

    async def test_new_reports_and_status_changes_arrive_live(self, live: LiveServer) -> None:
        token = (await live.user("olga", Role.operator))["Authorization"].split()[1]
        async with websockets.connect(f"{live.ws_url}/ws/operator", additional_headers=bearer(token)) as feed:
            assert json.loads(await feed.recv())["type"] == "welcome"
            (report_id,) = await post(live, body(11.88, 44.29))
            new = json.loads(await feed.recv())
            assert new["type"] == "report_new"
            assert new["report"]["id"] == report_id
            await live.client.post(
                f"/api/v1/reports/{report_id}/status", json={"status": "verified"}, headers=await live.user("olga")
            )
            changed = json.loads(await feed.recv())
            assert (changed["type"], changed["status"], changed["by"]) == ("report_status", "verified", "olga")
            assert "device_id" not in changed

    async def test_purge_keeps_recent_reports(self, harness: Harness) -> None:
        from datetime import timedelta

        await post(harness, body(11.88, 44.29))
        async with harness.database.sessions() as session:
            assert await service.purge(session, older_than=timedelta(days=30)) == (0, 0)

    async def test_purge_deletes_old_feed_entries_but_keeps_the_numbering(self, harness: Harness) -> None:
        from datetime import timedelta

        from sqlalchemy import select

        from tocsin.models import OperatorEvent

        await post(harness, body(11.88, 44.29))
        await post(harness, body(11.89, 44.29))
        async with harness.database.sessions() as session:
            before = list((await session.execute(select(OperatorEvent.seq))).scalars())
            assert len(before) == 2
            await service.purge(session, older_than=timedelta(days=30), now=datetime.now(UTC) + timedelta(days=31))
            await session.commit()
            kept = list((await session.execute(select(OperatorEvent.seq))).scalars())
        assert kept == [max(before)]  # only the newest stays, so the next event is numbered after it
        await post(harness, body(11.90, 44.29))
        async with harness.database.sessions() as session:
            after = sorted((await session.execute(select(OperatorEvent.seq))).scalars())
        assert after == [max(before), max(before) + 1]
