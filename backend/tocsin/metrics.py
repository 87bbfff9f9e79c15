"""Prometheus metrics of one process, served at `/metrics` (docs/operations.md lists them).

Definitions only, plus the per-route middleware. The hot paths (hub, dispatcher, report writer, bus) call these in
one line each and never await: observing a histogram or adding to a counter is a few hundred nanoseconds.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, ParamSpec, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

P = ParamSpec("P")
R = TypeVar("R")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

CONNECTIONS = Gauge("tocsin_connections", "Open WebSocket connections on this worker", ["kind"])
FANOUT_SECONDS = Histogram(
    "tocsin_fanout_seconds",
    "Time to match one alert event against this worker's devices and queue it",
    buckets=FAST_BUCKETS,
)
REPLAY_SECONDS = Histogram(
    "tocsin_replay_seconds", "Time to replay missed messages to one reconnecting device", buckets=SLOW_BUCKETS
)
DELIVERIES = Counter("tocsin_deliveries", "Alert messages handed to devices (written or queued)")
QUEUE_DROPS = Counter("tocsin_queue_drops", "Connections closed (1013) because their send queue was full")
REPORTS_INGESTED = Counter("tocsin_reports_ingested", "Citizen reports committed (new rows)")
REPORT_INGEST_SECONDS = Histogram(
    "tocsin_report_ingest_seconds", "Time to write one group commit of reports", buckets=SLOW_BUCKETS
)
REPORT_ACK_SECONDS = Histogram(
    "tocsin_report_ack_seconds",
    "Time from a report's arrival to its acknowledgement (or refusal)",
    buckets=SLOW_BUCKETS,
)
BUS_RECONNECTS = Counter("tocsin_bus_reconnects", "Times the Redis subscription was lost and retried")
SCHEDULER_LAG = Gauge("tocsin_scheduler_lag_seconds", "How late the scheduler's last job run started")
SCHEDULER_HEARTBEAT_AGE = Gauge(
    "tocsin_scheduler_heartbeat_age_seconds", "Seconds since the active scheduler last proved it holds its lock"
)
HTTP_REQUESTS = Counter("tocsin_http_requests", "HTTP requests", ["method", "route", "status"])
HTTP_REQUEST_SECONDS = Histogram(
    "tocsin_http_request_seconds", "HTTP request latency", ["method", "route"], buckets=SLOW_BUCKETS
)


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def timed(histogram: Histogram) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Observe how long a coroutine function takes (prometheus_client's own decorator times only until the
    coroutine object is created)."""

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - started)

        return wrapper

    return decorate


def exposition() -> tuple[bytes, str]:
    """The text exposition format of this process's registry."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class RouteMetrics:
    """Counts and times HTTP requests by route template (`/api/v1/alerts/{alert_id}`), never by raw path: raw paths
    would make one time series per alert id. Requests that match no route count as `unmatched`,
    methods other than the usual ones as `other`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            if method not in KNOWN_METHODS:  # the client chooses it: one series per invented method would never end
                method = "other"
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)
