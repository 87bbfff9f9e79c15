"""What a new user sees: `tocsin serve --demo` in embedded mode, from nothing, answering on a real port; the
scheduler inside it issues a scheduled alert by itself."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.alerts.factories import alert_body
from tocsin.testing import free_port, wait_healthy, without_tocsin_settings


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp("embedded")
    port = free_port()
    env = without_tocsin_settings(TOCSIN_DATA_DIR=str(data_dir), TOCSIN_PUBLIC_URL=f"http://127.0.0.1:{port}")
    log = (data_dir / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tocsin.cli", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).parents[1],
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, seconds=60, log=data_dir / "serve.log")
        output = (data_dir / "serve.log").read_text()
        accounts = r"^\s+(operator|approver|planner|evaluator|admin)\s+(\S+)\s+roles:"
        credentials = dict(re.findall(accounts, output, re.M))
        yield base, credentials
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def token(base: str, username: str, password: str) -> dict[str, str]:
    response = httpx.post(f"{base}/api/v1/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


class TestEmbeddedServer:
    def test_prints_demo_accounts_that_can_sign_in(self, server: tuple[str, dict[str, str]]) -> None:
        base, credentials = server
        assert set(credentials) == {"operator", "approver", "planner", "evaluator", "admin"}
        me = httpx.get(f"{base}/api/v1/auth/me", headers=token(base, "admin", credentials["admin"]))
        assert "admin" in me.json()["roles"]

    def test_templates_are_loaded(self, server: tuple[str, dict[str, str]]) -> None:
        base, credentials = server
        listing = httpx.get(f"{base}/api/v1/alert-templates", headers=token(base, "operator", credentials["operator"]))
        assert {"flood", "earthquake", "all-clear"} <= {t["id"] for t in listing.json()}

    def test_in_process_scheduler_issues_a_scheduled_alert(self, server: tuple[str, dict[str, str]]) -> None:
        base, credentials = server
        operator = token(base, "operator", credentials["operator"])
        approver = token(base, "approver", credentials["approver"])
        alert = httpx.post(f"{base}/api/v1/alerts", json=alert_body("en"), headers=operator).json()
        httpx.post(f"{base}/api/v1/alerts/{alert['id']}/approve", headers=approver).raise_for_status()
        at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        scheduled = httpx.post(f"{base}/api/v1/alerts/{alert['id']}/issue", json={"at": at}, headers=approver)
        assert scheduled.json()["state"] == "scheduled"
        deadline = time.monotonic() + 30
        state = "scheduled"
        while state == "scheduled" and time.monotonic() < deadline:
            time.sleep(0.5)
            state = httpx.get(f"{base}/api/v1/alerts/{alert['id']}", headers=approver).json()["state"]
        assert state == "issued"
        feed = httpx.get(f"{base}/feeds/alerts.atom")
        assert alert["id"] in feed.text
