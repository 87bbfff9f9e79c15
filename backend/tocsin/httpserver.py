"""The main HTTP port's protection against idle and slow clients.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) and answers 503 beyond `limit_concurrency`, but has
no limit on how long a client may take to send its request headers: every byte received cancels the keep-alive timer,
so a client trickling one header byte every few seconds holds its connection for ever (slowloris). This protocol
starts a deadline when a connection opens and when a new request on it begins, and clears it once the headers are
complete; a client that misses it is disconnected.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tocsin.resilience import ThrottledLog

log = logging.getLogger(__name__)
_closed_log = ThrottledLog(log, level=logging.INFO)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on request headers."""

    # Per process: set by `tocsin serve` (and by each worker of `--workers N` when it builds its app).
    header_timeout_seconds: float = 10.0

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:  # the next request on a kept-alive connection
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_seconds, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            _closed_log.failure(
                "slow",
                "closed a connection that sent no complete request headers in %.0fs",
                self.header_timeout_seconds,
            )
            self.transport.close()
