"""Each scenario of the library runs end to end, compressed (3600x), with synthetic citizens, and produces its
after-action report, on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, LiveServer
from tests.exercises.helpers import RUN, load_glossary, planner, timeline, wait_for
from tocsin.exercises.scenario import load_scenario

SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
DEVICES = 80


async def _run(live: LiveServer, path: Path, transport: str = "auto") -> tuple[str, dict[str, Any]]:
    headers = await planner(live)
    await load_glossary(live)
    body = {
        "scenario_id": path.stem,
        "speed": 3600,
        "devices": DEVICES,
        "seed": 11,
        "transport": transport,
        "autoplay": True,  # the scripted player actions play the players' part
    }
    created = await live.client.post("/api/v1/exercises", json=body, headers=headers)
    assert created.status_code == 201, created.text
    exercise_id = created.json()["id"]
    # Bring the population up before the clock runs (as a planner would), then start.
    await wait_for(live, exercise_id, headers, lambda e: e["devices_online"] >= DEVICES * 0.7)
    started = await live.client.post(f"/api/v1/exercises/{exercise_id}/start", headers=headers)
    assert started.status_code == 200, started.text
    await wait_for(live, exercise_id, headers, lambda e: e["state"] == "finished", seconds=90)
    # A deadline, not a measure: the report takes 4-6 s on a busy 2-core machine, past httpx's default 5 s.
    report = await live.client.get(f"/api/v1/exercises/{exercise_id}/report", headers=headers, timeout=60)
    assert report.status_code == 200, report.text
    return exercise_id, report.json()


@pytest.mark.timeout(300)  # a population to bring up, then a whole scenario
@pytest.mark.parametrize("live", [RUN], indirect=True)
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
async def test_scenario_runs_end_to_end(live: LiveServer, path: Path) -> None:
    scenario = load_scenario(path)
    exercise_id, report = await _run(live, path)
    entries = await timeline(live, exercise_id, await planner(live))

    # Every inject fired once, in time order; every scripted action was done, none failed.
    fired = [e for e in entries if e["kind"] == "inject"]
    assert [e["number"] for e in fired] == [i.number for i in scenario.timeline]
    assert [e["scenario_seconds"] for e in fired] == sorted(e["scenario_seconds"] for e in fired)
    scripted = [e for e in entries if e["kind"] == "scripted"]
    assert len(scripted) == len(scenario.scripted_actions)
    assert not [e for e in scripted if e["title"].endswith("failed")], scripted
    assert entries[-1]["title"].startswith("Finished")

    # The alerts went out as Exercise messages of this exercise and reached the synthetic citizens in their areas.
    issued = [a for a in report["alerts"] if a["msg_type"] != "Cancel"]
    assert len(issued) == sum(1 for a in scenario.scripted_actions if a.kind in ("issue_alert", "update_alert"))
    reached = [a for a in issued if a["affected"]]
    assert reached, "no alert covered a synthetic citizen"
    for alert in reached:
        assert 0 < alert["reached"] <= alert["affected"]
        assert alert["acknowledged"] <= alert["reached"] + 5  # devices outside the home area may acknowledge too
    assert any(a["seconds_to_50"] is not None for a in reached)
    alerts = await live.client.get("/api/v1/alerts", params={"exercise_id": exercise_id}, headers=await planner(live))
    features = alerts.json()["features"]
    assert len(features) >= len(issued)
    assert {f["properties"]["status"] for f in features} == {"Exercise"}

    # Report waves produced reports through the protocol; triage scripted actions handled them.
    if any(i.reports for i in scenario.timeline):
        assert report["reports"]["received"] > 0
        assert sum(report["reports"]["by_category"].values()) == report["reports"]["received"]
    if any(a.kind == "triage_reports" for a in scenario.scripted_actions):
        assert report["reports"]["triaged"] > 0

    # The measured figures are there for every triggering inject, and the glossary had something to say.
    triggering = {i.number for i in scenario.timeline if any(a.kind == "issue_alert" for a in i.expected_actions)}
    assert {row["inject"] for row in report["inject_to_alert"]} == triggering
    assert report["glossary_findings"], "no glossary finding on any issued alert"
    assert report["population"]["devices"] == DEVICES
    done = {a["id"] for a in report["expected_actions"] if a["done_seconds"] is not None}
    assert {f for a in scenario.scripted_actions for f in a.fulfils} <= done

    page = await live.client.get(
        f"/api/v1/exercises/{exercise_id}/report", params={"format": "html"}, headers=await planner(live)
    )
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert scenario.title.split(" (")[0] in page.text


@pytest.mark.timeout(300)
@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_digital_breakdown_over_real_websockets(live: LiveServer) -> None:
    """The synthetic citizens on real WebSocket connections; the outage cuts some off, they queue and resend."""
    path = REPO / "scenarios" / "lyon-digital-breakdown.yaml"
    _, report = await _run(live, path, transport="websocket")
    assert report["exercise"]["transport"] == "websocket"
    assert report["population"]["lost_connection"] > 0
    assert report["population"]["queued_reports_resent"] > 0
    assert any(a["reached"] for a in report["alerts"])
