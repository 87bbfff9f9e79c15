"""`tocsin exercise run` against a real server: progress and the live timeline, then the summary."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from tests.conftest import PASSWORD, REPO, LiveServer
from tests.exercises.helpers import RUN, planner
from tocsin.cli import app


@pytest.mark.parametrize("live", [RUN], indirect=True)
async def test_run_follows_the_exercise_to_its_end(live: LiveServer, tmp_path: object) -> None:
    await planner(live)  # the account the command signs in with
    url = str(live.client.base_url)
    args = [
        "exercise",
        "run",
        str(REPO / "scenarios" / "heidelberg-blackout.yaml"),
        "--speed",
        "3600",
        "--devices",
        "30",
        "--seed",
        "5",
        "--autoplay",
        "--url",
        url,
        "--user",
        "planner",
        "--poll",
        "0.2",
    ]
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, app, args, env={"TOCSIN_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "started heidelberg-blackout-" in out
    assert "inject" in out
    assert "Finished: end of the scenario" in out
    assert "reports" in out.lower()
    assert "/report?format=html" in out

    listed = await asyncio.to_thread(
        runner.invoke, app, ["exercise", "list", "--url", url, "--user", "planner"], env={"TOCSIN_PASSWORD": PASSWORD}
    )
    assert listed.exit_code == 0
    assert "heidelberg-blackout-" in listed.output
    assert "finished" in listed.output
    wrong = await asyncio.to_thread(
        runner.invoke,
        app,
        ["exercise", "list", "--url", url, "--user", "planner"],
        env={"TOCSIN_PASSWORD": "nope-nope"},
    )
    assert wrong.exit_code == 1
    assert "error" in wrong.output.lower()
