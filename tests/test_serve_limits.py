"""The main port of a real `tocsin serve` closes clients that trickle their request headers, while normal requests
are still served."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REPO
from tests.served import clean_environment, serving

HEADER_TIMEOUT = 2
SLOW_CLIENTS = 30
MAX_CONNECTIONS = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("limits")
    env = clean_environment(
        TOCSIN_DATA_DIR=str(data_dir),
        TOCSIN_HTTP_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        TOCSIN_HTTP_KEEP_ALIVE_SECONDS="2",
        TOCSIN_HTTP_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    )
    env["PYTHONPATH"] = str(REPO / "backend")  # this checkout's code
    with serving([sys.executable, "-m", "tocsin.cli", "serve"], env, REPO, data_dir / "serve.log") as served:
        yield served.base


async def trickle(port: int, closed: asyncio.Event, give_up: float) -> None:
    """Send a request line, then one header byte every 0.3 s; set `closed` when the server hangs up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        while time.monotonic() < give_up:
            writer.write(b"X")
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1024), timeout=0.3) == b"":
                    closed.set()
                    return
            except TimeoutError:
                continue
    except (ConnectionError, OSError):
        closed.set()
    finally:
        writer.close()


class TestSlowClients:
    async def test_header_tricklers_are_closed_and_requests_still_served(self, server: str) -> None:
        port = int(server.rsplit(":", 1)[1])
        give_up = time.monotonic() + HEADER_TIMEOUT + 10
        closed = [asyncio.Event() for _ in range(SLOW_CLIENTS)]
        tasks = [asyncio.create_task(trickle(port, event, give_up)) for event in closed]
        async with httpx.AsyncClient(base_url=server) as client:
            while not all(event.is_set() for event in closed) and time.monotonic() < give_up:
                assert (await client.get("/healthz")).status_code == 200
                await asyncio.sleep(0.2)
        await asyncio.gather(*tasks)
        assert sum(event.is_set() for event in closed) == SLOW_CLIENTS

    async def test_an_idle_kept_alive_connection_is_closed(self, server: str) -> None:
        port = int(server.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        assert head.startswith(b"HTTP/1.1 200")
        # After the response nothing more comes; the server ends the idle connection (EOF) within keep-alive + margin.
        rest = await asyncio.wait_for(reader.read(), timeout=15)
        assert b"HTTP/1.1" not in rest
        writer.close()

    async def test_beyond_the_connection_limit_requests_get_503_until_idle_ones_are_closed(self, server: str) -> None:
        port = int(server.rsplit(":", 1)[1])
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(MAX_CONNECTIONS)]
        try:
            async with httpx.AsyncClient(base_url=server) as client:
                refused = (await client.get("/healthz")).status_code
                deadline = time.monotonic() + HEADER_TIMEOUT + 15
                served = refused
                while served != 200:  # the idle connections sent no headers: the deadline closes them
                    assert time.monotonic() < deadline, "idle connections were not closed"
                    await asyncio.sleep(0.2)
                    served = (await client.get("/healthz")).status_code
        finally:
            for _reader, writer in idle:
                writer.close()
        assert refused == 503
