"""`tocsin exercise`: the printed wording (pure functions), the HTTP client, and `run` against an in-memory API
(httpx.MockTransport; no server, no database)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from typer.testing import CliRunner

from tocsin.exercise_client import api as exercise_client
from tocsin.exercise_client import commands, follow, formatting
from tocsin.exercises.schemas import ExerciseOut, ExerciseState, TimelineEntry, TimelineKind, Transport

BASE = "http://tocsin.test"
ENV = {"TOCSIN_USER": "planner", "TOCSIN_PASSWORD": "correct horse battery", "TOCSIN_URL": BASE}
Handler = Callable[[httpx.Request], httpx.Response]


def exercise_json(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "ex1",
        "scenario_id": "romagna-river-flood",
        "title": "River flooding at Faenza",
        "hazard": "flood",
        "place": "Faenza, Italy",
        "state": "running",
        "speed": 60.0,
        "scenario_seconds": 0.0,
        "duration_seconds": 3600,
        "progress": 0.0,
        "devices": 200,
        "transport": "auto",
        "injects_fired": 0,
        "injects_total": 2,
        "created_by": "planner",
        "created_at": "2025-10-01T12:00:00+00:00",
        "started_at": "2025-10-01T12:00:00+00:00",
        "ended_at": None,
    }
    return data | changes


def entry(seconds: float, kind: str, title: str, **changes: Any) -> TimelineEntry:
    at = datetime(2025, 10, 1, 12, tzinfo=UTC)
    return TimelineEntry(scenario_seconds=seconds, at=at, kind=TimelineKind(kind), title=title, **changes)


ALERT = {
    "headline": "Flood warning Borgo Durbecco",
    "msg_type": "Alert",
    "issued_seconds": 1500.0,
    "affected": 120,
    "reached": 110,
    "reached_share": 0.9167,
    "seconds_to_50": 40.0,
    "seconds_to_90": 250.0,
    "ack_rate": 0.613,
}
REPORT = {
    "exercise": exercise_json(state="finished", scenario_seconds=3600.0, injects_fired=2),
    "alerts": [ALERT],
    "reports": {"received": 12, "triaged": 9},
}


class TestFormatting:
    @pytest.mark.parametrize(
        ("seconds", "expected"), [(0, "0:00"), (59.9, "0:00"), (3930, "1:05"), (36000, "10:00"), (-5, "0:00")]
    )
    def test_format_clock(self, seconds: float, expected: str) -> None:
        assert formatting.format_clock(seconds) == expected

    @pytest.mark.parametrize(
        ("seconds", "expected"),
        [(None, "n/a"), (40.2, "40 s"), (250, "4 min 10 s"), (600, "10 min"), (3900, "1 h 05 min")],
    )
    def test_format_duration(self, seconds: float | None, expected: str) -> None:
        assert formatting.format_duration(seconds) == expected

    def test_format_speed_and_share(self) -> None:
        assert [formatting.format_speed(60.0), formatting.format_speed(1.5), formatting.format_speed(3600)] == [
            "x60",
            "x1.5",
            "x3600",
        ]
        assert [formatting.format_share(0.9167), formatting.format_share(0), formatting.format_share(None)] == [
            "92 %",
            "0 %",
            "n/a",
        ]

    def test_format_error_names_the_field(self) -> None:
        assert formatting.format_error("too fast", "speed") == "error: too fast (field speed)"
        assert formatting.format_error("not found") == "error: not found"

    def test_timeline_line_of_an_inject(self) -> None:
        line = formatting.timeline_line(entry(3930, "inject", "Lamone passes threshold 2", number=3, to="players"))
        assert line == "  1:05  inject          #3  Lamone passes threshold 2  (to players)"

    def test_timeline_line_without_number_or_role(self) -> None:
        assert (
            formatting.timeline_line(entry(0, "clock", "started at x60"))
            == "  0:00  clock               started at x60"
        )

    def test_status_line_and_details(self) -> None:
        exercise = ExerciseOut.model_validate(exercise_json(scenario_seconds=1830, speed=120, state="paused"))
        assert formatting.status_text(exercise) == "0:30 / 1:00  x120  paused"
        assert formatting.exercise_line(exercise) == "ex1  paused    0:30 / 1:00    x120  River flooding at Faenza"
        details = formatting.exercise_details(exercise)
        assert "injects     0 of 2 fired" in details
        assert "ended       -" in details

    def test_alert_line(self) -> None:
        assert formatting.alert_line(ALERT) == (
            "  0:25  Alert   Flood warning Borgo Durbecco: reached 92 % (110 of 120 devices), "
            "50 % in 40 s, 90 % in 4 min 10 s, ack rate 61 %"
        )

    def test_summary_lines(self) -> None:
        lines = formatting.summary_lines(REPORT, json_url="J", html_url="H")
        assert lines[0] == "River flooding at Faenza: finished at 1:00 scenario time"
        assert "  injects fired:   2 of 2" in lines
        assert "  alerts issued:   1" in lines
        assert lines[3].startswith("    0:25  Alert   Flood warning")
        assert "  citizen reports: 12 received, 9 triaged" in lines
        assert lines[-2:] == ["  report (JSON):   J", "  report (HTML):   H"]

    def test_summary_of_a_sparse_report_does_not_fail(self) -> None:
        lines = formatting.summary_lines({"alerts": [{"reached_share": None}]}, json_url="J", html_url="H")
        assert "  alerts issued:   1" in lines
        assert "reached n/a (0 of 0 devices), 50 % in n/a" in lines[3]


class TestErrorFromResponse:
    def test_our_error_body(self) -> None:
        body = {"error": {"code": "invalid", "message": "too fast", "field": "speed"}}
        error = exercise_client.error_from_response(httpx.Response(422, json=body))
        assert (error.message, error.field, error.status, error.transient) == ("too fast", "speed", 422, False)

    def test_fastapi_detail(self) -> None:
        error = exercise_client.error_from_response(httpx.Response(404, json={"detail": "Not Found"}))
        assert (error.message, error.field) == ("Not Found", None)

    def test_a_proxy_page_is_not_quoted_and_is_transient(self) -> None:
        page = httpx.Response(502, text="<html><body>Bad Gateway</body></html>", headers={"content-type": "text/html"})
        error = exercise_client.error_from_response(page)
        assert (error.message, error.transient) == ("HTTP 502 Bad Gateway", True)


class TestExerciseBody:
    def test_a_file_is_sent_whole(self, tmp_path: Path) -> None:
        path = tmp_path / "drill.yaml"
        path.write_text("id: drill\nstarts: 2025-10-01\nduration: '1:00'\n", encoding="utf-8")
        body = formatting.exercise_body(str(path), speed=60, devices=None, seed=7, transport=Transport.websocket)
        assert body == {
            "scenario": {"id": "drill", "starts": "2025-10-01", "duration": "1:00"},
            "speed": 60,
            "seed": 7,
            "transport": "websocket",
            "start": True,
        }

    def test_autoplay_only_when_asked(self) -> None:
        asked = formatting.exercise_body(
            "drill", speed=1, devices=0, seed=None, transport=Transport.auto, autoplay=True
        )
        assert asked["autoplay"] is True
        assert "autoplay" not in formatting.exercise_body(
            "drill", speed=1, devices=0, seed=None, transport=Transport.auto
        )

    def test_anything_else_is_a_library_id(self) -> None:
        body = formatting.exercise_body("romagna-river-flood", speed=1, devices=0, seed=None, transport=Transport.auto)
        assert body["scenario_id"] == "romagna-river-flood"
        assert body["devices"] == 0
        assert "scenario" not in body

    def test_a_missing_file_is_not_taken_for_an_id(self, tmp_path: Path) -> None:
        with pytest.raises(exercise_client.CommandError, match="no such file"):
            formatting.exercise_body("scenarios/nope.yaml", speed=1, devices=None, seed=None, transport=Transport.auto)

    def test_a_file_that_is_not_a_mapping(self, tmp_path: Path) -> None:
        path = tmp_path / "list.yaml"
        path.write_text("- a\n- b\n", encoding="utf-8")
        with pytest.raises(exercise_client.CommandError, match="one YAML mapping"):
            formatting.exercise_body(str(path), speed=1, devices=None, seed=None, transport=Transport.auto)


def client_for(handler: Handler) -> exercise_client.ExerciseClient:
    return exercise_client.ExerciseClient(
        BASE, username="planner", password="pw", transport=httpx.MockTransport(handler)
    )


class TestExerciseClient:
    def test_signs_in_again_when_the_token_expired(self) -> None:
        tokens = iter(["t1", "t2"])
        seen: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            if request.url.path == exercise_client.TOKEN_PATH:
                assert b"username=planner" in request.content
                return httpx.Response(200, json={"access_token": next(tokens), "token_type": "bearer"})
            seen.append(request.headers["authorization"])
            if request.headers["authorization"] == "Bearer t1":
                return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "token expired"}})
            return httpx.Response(200, json=exercise_json())

        client = client_for(handler)
        client.sign_in()
        assert client.exercise("ex1").state is ExerciseState.running
        assert seen == ["Bearer t1", "Bearer t2"]
        client.close()

    def test_connection_refused_names_the_url(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

        client = client_for(handler)
        with pytest.raises(exercise_client.ApiError, match="cannot connect to http://tocsin.test") as caught:
            client.sign_in()
        assert caught.value.transient
        client.close()

    def test_timeline_passes_the_cursor(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            assert request.url.raw_path == b"/api/v1/exercises/ex%2F1/timeline?after=4"
            assert request.url.params["after"] == "4"
            return httpx.Response(200, json={"entries": [], "next": 4})

        client = client_for(handler)
        assert client.timeline("ex/1", after=4).next == 4
        assert client.report_urls("ex1")[1] == f"{BASE}/api/v1/exercises/ex1/report?format=html"
        client.close()


class FakeApi:
    """The exercises API in memory: every GET of the exercise moves its clock on by half an hour."""

    def __init__(self, *, ends: str = "finished", interrupt_at_poll: int | None = None) -> None:
        self.ends = ends
        self.interrupt_at_poll = interrupt_at_poll
        self.polls = 0
        self.seconds = 0.0
        self.state = "running"
        self.created: dict[str, Any] | None = None
        self.stopped = False
        self.timeline = [
            entry(0, "clock", "started at x60").model_dump(mode="json"),
            entry(60, "inject", "Lamone passes threshold 2", number=1, to="players").model_dump(mode="json"),
            entry(2400, "alert", "Flood warning Borgo Durbecco").model_dump(mode="json"),
        ]

    def exercise(self) -> dict[str, Any]:
        return exercise_json(state=self.state, scenario_seconds=self.seconds)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == exercise_client.TOKEN_PATH:
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        assert request.headers["authorization"] == "Bearer t"
        if (method, path) == ("POST", "/api/v1/exercises"):
            self.created = json.loads(request.content)
            return httpx.Response(201, json=self.exercise())
        if (method, path) == ("GET", "/api/v1/exercises/ex1"):
            return self.poll()
        if (method, path) == ("GET", "/api/v1/exercises/ex1/timeline"):
            after = int(request.url.params.get("after", "0"))
            visible = [e for e in self.timeline if e["scenario_seconds"] <= self.seconds]
            return httpx.Response(200, json={"entries": visible[after:], "next": len(visible)})
        if (method, path) == ("POST", "/api/v1/exercises/ex1/stop"):
            self.stopped, self.state = True, "stopped"
            return httpx.Response(200, json=self.exercise())
        if (method, path) == ("GET", "/api/v1/exercises/ex1/report"):
            return httpx.Response(200, json=REPORT | {"exercise": self.exercise()})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": f"no route {path}"}})

    def poll(self) -> httpx.Response:
        self.polls += 1
        if self.polls == self.interrupt_at_poll:
            raise KeyboardInterrupt
        self.seconds = min(self.seconds + 1800, 3600)
        if self.seconds >= 3600:
            self.state = self.ends
        return httpx.Response(200, json=self.exercise())


def invoke(monkeypatch: pytest.MonkeyPatch, api: FakeApi, *args: str, env: dict[str, str] = ENV) -> Any:
    def open_client(url: str, username: str, password: str) -> exercise_client.ExerciseClient:
        transport = httpx.MockTransport(api)
        return exercise_client.ExerciseClient(url, username=username, password=password, transport=transport)

    monkeypatch.setattr(commands, "_open_client", open_client)
    return CliRunner().invoke(commands.app, list(args), env=env)


class TestRunCommand:
    def test_follows_to_the_end_and_prints_the_summary(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        path = tmp_path / "drill.yaml"
        path.write_text("id: drill\n", encoding="utf-8")
        api = FakeApi()
        result = invoke(monkeypatch, api, "run", str(path), "--speed", "600", "--poll", "0")
        assert result.exit_code == 0, result.output
        assert api.created == {"scenario": {"id": "drill"}, "speed": 600.0, "transport": "auto", "start": True}
        lines = result.stdout.splitlines()
        assert lines[0] == "started ex1: River flooding at Faenza (x60, 200 devices)"
        assert "  0:01  inject          #1  Lamone passes threshold 2  (to players)" in lines
        assert lines.count("  0:40  alert               Flood warning Borgo Durbecco") == 1  # printed once
        assert "status 0:30 / 1:00  x60  running" in lines
        assert "status 1:00 / 1:00  x60  finished" in lines
        assert "  alerts issued:   1" in lines
        assert f"  report (HTML):   {BASE}/api/v1/exercises/ex1/report?format=html" in lines

    def test_stopped_by_someone_else_exits_1(self, monkeypatch: pytest.MonkeyPatch) -> None:
        result = invoke(monkeypatch, FakeApi(ends="stopped"), "run", "romagna-river-flood", "--poll", "0")
        assert result.exit_code == 1
        assert "stopped before the end of the scenario" in result.stderr

    def test_ctrl_c_stops_the_exercise(self, monkeypatch: pytest.MonkeyPatch) -> None:
        api = FakeApi(interrupt_at_poll=2)
        result = invoke(monkeypatch, api, "run", "romagna-river-flood", "--poll", "0")
        assert api.stopped
        assert result.exit_code == follow.EXIT_INTERRUPTED
        assert "stopped exercise ex1 at 0:30 scenario time" in result.stdout

    def test_no_follow_returns_at_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        api = FakeApi()
        result = invoke(monkeypatch, api, "run", "romagna-river-flood", "--no-follow")
        assert result.exit_code == 0
        assert api.polls == 0

    def test_speed_out_of_range_is_refused_locally(self, monkeypatch: pytest.MonkeyPatch) -> None:
        api = FakeApi()
        result = invoke(monkeypatch, api, "run", "romagna-river-flood", "--speed", "4000")
        assert result.exit_code == 2
        assert api.created is None

    def test_missing_password_fails_without_prompting(self, monkeypatch: pytest.MonkeyPatch) -> None:
        env = ENV | {"TOCSIN_PASSWORD": ""}
        result = invoke(monkeypatch, FakeApi(), "list", env=env)
        assert result.exit_code == 1
        assert result.stderr == "error: no password for planner: set TOCSIN_PASSWORD (or pass --password)\n"

    def test_api_errors_are_printed_with_their_field(self, monkeypatch: pytest.MonkeyPatch) -> None:
        result = invoke(monkeypatch, FakeApi(), "show", "nope")
        assert result.exit_code == 1
        assert result.stderr == "error: no route /api/v1/exercises/nope\n"


def test_follow_view_on_a_terminal_prints_lines_above_the_bar() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, force_interactive=True, width=100)
    exercise = ExerciseOut.model_validate(exercise_json(scenario_seconds=1800))
    with follow.FollowView(console, exercise) as view:
        view.line("  0:01  inject          #1  Lamone passes threshold 2")
        view.update(exercise)
    assert "Lamone passes threshold 2" in out.getvalue()
    assert "0:30 / 1:00  x60  running" in out.getvalue()


def test_the_client_imports_nothing_of_the_server() -> None:
    """The client talks HTTP and prints: importing it loads no database, ORM, web framework or service."""
    probe = "import sys, tocsin.exercise_client.commands; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(done.stdout.split())
    server_side = {"sqlalchemy", "fastapi", "starlette", "tocsin.db", "tocsin.models", "tocsin.bus"}
    assert not loaded & server_side
    assert not {name for name in loaded if name.endswith((".service", ".router"))}
