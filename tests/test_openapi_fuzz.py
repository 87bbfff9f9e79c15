"""Schemathesis over our own OpenAPI document, on both backends: no server errors, and responses as documented.

A real uvicorn server runs in a thread (its own event loop); schemathesis calls it over loopback with an admin's
and an operator's token. The budget is bounded and the examples derandomized, so a run is the same every time.
Each operation runs as its own Hypothesis test, positive and negative examples, and every operation's findings are
reported together. (`schemathesis.pytest.from_fixture(...).parametrize()` would be the usual way in; with pytest 9.2
it fails at collection: it sets `node._nodeid`, which pytest's Function no longer has.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PASSWORD, _truncate, make_settings
from tocsin.auth import service as users
from tocsin.auth.schemas import Role, UserCreate
from tocsin.db import open_database
from tocsin.main import create_app
from tocsin.testing import free_port

EXAMPLES_PER_OPERATION = 8
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


async def _create_accounts(database_url: str) -> None:
    database = open_database(database_url, pool=False)
    try:
        async with database.sessions() as session:
            await users.create_user(
                session, data=UserCreate(username="fuzz-admin", password=PASSWORD, roles=list(Role))
            )
            await users.create_user(
                session, data=UserCreate(username="fuzz-operator", password=PASSWORD, roles=[Role.operator])
            )
            await session.commit()
    finally:
        await database.dispose()


async def _clean(database_url: str) -> None:
    database = open_database(database_url, pool=False)
    try:
        await _truncate(database)
    finally:
        await database.dispose()


class ThreadedServer:
    """uvicorn in a thread of its own, so the synchronous schemathesis test can call it."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive(), "the server stopped while starting"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    asyncio.run(_create_accounts(database_url))
    # The scheduler runs in-process so that /readyz is ready: its 503 is an answer, not a server error.
    app = create_app(make_settings(database_url, tmp_path, run_scheduler=True), migrate_on_start=False)
    try:
        with ThreadedServer(app) as base_url:
            tokens = {}
            for name in ("fuzz-admin", "fuzz-operator"):
                answer = httpx.post(f"{base_url}/api/v1/auth/token", data={"username": name, "password": PASSWORD})
                assert answer.status_code == 200, answer.text
                tokens[name] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
            yield base_url, tokens
    finally:
        asyncio.run(_clean(database_url))


def _fuzz_operation(operation: Any, mode: GenerationMode, base_url: str, tokens: list[dict[str, str]]) -> int:
    tried = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        nonlocal tried
        tried += 1
        for headers in tokens:
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    run()
    return tried


def test_every_operation_answers_as_documented(
    served: tuple[str, dict[str, dict[str, str]]], database_url: str
) -> None:
    base_url, tokens = served
    api = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    started, tried, failures = time.monotonic(), 0, []
    for result in api.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                tried += _fuzz_operation(operation, mode, base_url, list(tokens.values()))
            except Unsatisfiable:
                continue  # nothing in this operation can be made invalid (no parameters, or free-form strings)
            except (Exception, BaseExceptionGroup) as failure:  # every operation's findings, not only the first
                failures.append(f"{operation.label} ({mode.value}): {str(failure)[:1500]}")
    backend = database_url.split(":")[0]
    print(f"schemathesis on {backend}: {tried} examples in {time.monotonic() - started:.0f} s, {len(failures)} failing")
    assert not failures, "\n\n".join(failures)
    assert tried >= 300, f"only {tried} examples: the document lost operations, or generation failed"
