"""Logging of a real `tocsin serve` (embedded, its own data dir, a free loopback port): Tocsin's own lines print,
readable or as JSON; no token and no client address reach the output, whatever logger wrote the line. The operator
feed is opened with the token in its URL on purpose: redaction is the defence in depth behind keeping it out."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import REPO
from tests.served import Served, clean_environment, serving
from tests.waiting import wait_until_sync
from tocsin.logs import make_handler, redact

PASSWORD = "correct horse battery"
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXRoYXQtaXMtbG9uZy1lbm91Z2g"


def server_environment(data_dir: Path, **settings: str) -> dict[str, str]:
    env = clean_environment(TOCSIN_DATA_DIR=str(data_dir), **settings)
    env["PYTHONPATH"] = str(REPO / "backend")  # this checkout's code, whatever the virtualenv points at
    return env


def add_operator(env: dict[str, str], cwd: Path) -> None:
    command = [sys.executable, "-m", "tocsin.cli", "users", "add", "olga", "--role", "operator", "--password-stdin"]
    done = subprocess.run(command, env=env, cwd=cwd, input=PASSWORD + "\n", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


async def traffic(served: Served) -> tuple[str, list[int]]:
    """Sign in, call the API with the token in a header and in a query string, open the operator feed with the token
    in its URL and a citizen's socket; return the token and the client ports of the sockets."""
    async with httpx.AsyncClient(base_url=served.base) as client:
        signed_in = await client.post("/api/v1/auth/token", data={"username": "olga", "password": PASSWORD})
        token = signed_in.json()["access_token"]
        assert (await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        await client.get(f"/api/v1/alerts?token={token}")
    ws = f"ws://127.0.0.1:{served.port}"
    ports = []
    try:
        async with websockets.connect(f"{ws}/ws/operator?token={token}") as operator:
            ports.append(operator.local_address[1])
    except websockets.InvalidStatus:
        pass  # a server that no longer takes the token in the URL refuses it: the handshake line is logged all the same
    async with websockets.connect(f"{ws}/ws/citizen") as citizen:
        ports.append(citizen.local_address[1])
        await citizen.send(json.dumps({"type": "hello", "device_id": str(uuid.uuid4())}))
        await citizen.recv()
    return token, ports


def run_server(tmp_path: Path, **settings: str) -> tuple[str, str, list[int], int]:
    env = server_environment(tmp_path / "data", **settings)
    add_operator(env, tmp_path)
    with serving([sys.executable, "-m", "tocsin.cli", "serve"], env, tmp_path, tmp_path / "serve.log") as served:
        token, ports = asyncio.run(traffic(served))
    return served.text(), token, ports, served.port


def assert_no_secret_and_no_client(output: str, token: str, client_ports: list[int], server_port: int) -> None:
    assert token not in output
    for part in token.split("."):
        assert part[:12] not in output
    assert "eyJ" not in output
    assert {int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", output)} <= {server_port}
    assert "('127.0.0.1'" not in output
    for port in client_ports:
        assert f":{port}" not in output
        assert f", {port})" not in output


class TestServeLogs:
    def test_readable_lines_without_tokens_or_client_addresses(self, tmp_path: Path) -> None:
        output, token, ports, server_port = run_server(tmp_path)
        assert re.search(r"INFO +tocsin\.cli: starting Tocsin in embedded mode \(sqlite\)", output), output
        assert re.search(r"INFO +tocsin\.glossary\.service: loaded \d+ glossary concepts", output), output
        assert '- "WebSocket /ws/citizen" [accepted]' in output, output
        assert '"WebSocket /ws/operator?token=[redacted]"' in output, output
        assert_no_secret_and_no_client(output, token, ports, server_port)

    def test_json_lines(self, tmp_path: Path) -> None:
        output, token, ports, server_port = run_server(tmp_path, TOCSIN_LOG_FORMAT="json")
        entries = [json.loads(line) for line in output.splitlines() if line.strip()]
        assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
        messages = {(entry["logger"], entry["message"].split(" ")[0]) for entry in entries}
        assert ("tocsin.glossary.service", "loaded") in messages
        assert ("tocsin.cli", "starting") in messages
        assert_no_secret_and_no_client(output, token, ports, server_port)

    def test_client_addresses_can_be_turned_on_for_debugging(self, tmp_path: Path) -> None:
        output, token, ports, _ = run_server(tmp_path, TOCSIN_LOG_CLIENT_ADDRESSES="true")
        assert f'127.0.0.1:{ports[-1]} - "WebSocket /ws/citizen" [accepted]' in output, output
        assert token not in output


class TestSchedulerLogs:
    def test_scheduler_prints_its_own_lines(self, tmp_path: Path) -> None:
        env = server_environment(tmp_path / "data")
        tocsin = [sys.executable, "-m", "tocsin.cli"]
        subprocess.run([*tocsin, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120)
        output = tmp_path / "scheduler.log"
        with output.open("wb") as sink:
            process = subprocess.Popen([*tocsin, "scheduler"], env=env, cwd=tmp_path, stdout=sink, stderr=sink)
            try:

                def acquired() -> bool:
                    assert process.poll() is None, output.read_text()
                    return "scheduler: lock acquired" in output.read_text()

                wait_until_sync(acquired, what="the scheduler to take its lock", seconds=60)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        text = output.read_text()
        assert re.search(r"INFO +tocsin\.cli: starting the Tocsin scheduler in embedded mode", text), text
        assert re.search(r"INFO +tocsin\.scheduler\.leader: scheduler: lock acquired", text), text


class TestRedaction:
    @pytest.mark.parametrize(
        ("text", "kept"),
        [
            (f"Authorization: Bearer {JWT}", "Authorization: Bearer [redacted]"),
            ("Authorization: bearer opaque-token-value", "Authorization: bearer [redacted]"),
            (f"GET /ws/operator?token={JWT}&x=1", "GET /ws/operator?token=[redacted]&x=1"),
            ("POST body username=olga&password=hunter2hunter2", "POST body username=olga&password=[redacted]"),
            ('{"access_token": "abc.def.ghi", "token_type": "bearer"}', '{"access_token": "[redacted]"'),
            (f"cut short: {JWT[:30]}", "cut short: [redacted]"),
        ],
    )
    def test_secrets_are_replaced(self, text: str, kept: str) -> None:
        redacted = redact(text)
        assert kept in redacted
        assert "hunter2" not in redacted
        assert "eyJ" not in redacted

    def test_any_logger_and_its_exceptions_are_redacted(self) -> None:
        stream = StringIO()
        logger = logging.getLogger("some.library.test_logs")
        logger.propagate = False
        logger.addHandler(make_handler(stream=stream))
        try:
            try:
                raise ValueError(f"bad token {JWT}")
            except ValueError:
                logger.exception("request to %s failed", f"/x?access_token={JWT}")
        finally:
            logger.handlers.clear()
        output = stream.getvalue()
        assert "some.library.test_logs: request to /x?access_token=[redacted] failed" in output
        assert "ValueError: bad token [redacted]" in output
        assert "eyJ" not in output

    @pytest.mark.parametrize(("client_addresses", "shown"), [(False, "-"), (True, "203.0.113.9:41234")])
    def test_access_line_hides_the_client_unless_asked(self, client_addresses: bool, shown: str) -> None:
        stream = StringIO()
        handler = make_handler(client_addresses=client_addresses, stream=stream)
        args = ("203.0.113.9:41234", "GET", f"/feeds/alerts.atom?token={JWT}", "1.1", 200)
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)
        handler.handle(record)
        assert stream.getvalue().endswith(f'{shown} - "GET /feeds/alerts.atom?token=[redacted] HTTP/1.1" 200\n')
