"""Logging for the long-running commands (`tocsin serve` and its workers, `tocsin scheduler`).

- One handler on the root logger, on stderr: readable lines by default, one JSON object per line with
  `TOCSIN_LOG_FORMAT=json`; `TOCSIN_LOG_LEVEL` sets the level of Tocsin's loggers and uvicorn's.
- Every record that reaches it, whatever logger wrote it (ours, uvicorn, websockets, SQLAlchemy...), is redacted:
  bearer tokens, `token=`/`password=`-style values and anything that looks like a JWT never reach the output.
- uvicorn's access log is off unless `TOCSIN_ACCESS_LOG=true`, and the client address that uvicorn puts in its
  WebSocket handshake and access lines is replaced by `-` unless `TOCSIN_LOG_CLIENT_ADDRESSES=true` (for debugging):
  a log must not tie a citizen's address to what they did.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from tocsin.config import Settings

REDACTED = "[redacted]"

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A JWT, whole or cut short: base64url of '{"' starts every header.
    (re.compile(r"eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}"), REDACTED),
    (re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[^\s\"'&,;]+"), rf"\1\2{REDACTED}"),
    # Query strings, form bodies and key=value text: ?token=..., &access_token=..., password=...
    (
        re.compile(r"(?i)\b((?:access_|refresh_|id_)?token|password|passwd|secret|api_?key)(=|%3D)[^\s&\"'#;,]+"),
        rf"\1\2{REDACTED}",
    ),
    # JSON: "access_token": "..."
    (
        re.compile(r'(?i)("(?:(?:access_|refresh_|id_)?token|password|secret)"\s*:\s*")[^"]*"'),
        rf'\1{REDACTED}"',
    ),
)

# "127.0.0.1:50412", "::1:50412", "[::1]:50412", optionally with uvicorn's " - " prefix separator.
_CLIENT_ADDRESS = re.compile(r"^\[?[0-9A-Fa-f:.]*[.:][0-9A-Fa-f:.]*\]?:\d{1,5}( - )?$")


def redact(text: str) -> str:
    """The text with every token, password and JWT-looking string replaced by `[redacted]`."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Renders the record's message (and its exception text) and redacts secrets from it, in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class HideClientAddresses(logging.Filter):
    """Replaces the client address in uvicorn's lines ('127.0.0.1:50412 - "WebSocket /ws/citizen" [accepted]',
    access lines) by '-'. Must run before `RedactSecrets`, which renders the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn") and isinstance(record.args, tuple):
            record.args = tuple(_hide_address(arg) for arg in record.args)
        return True


def _hide_address(value: object) -> object:
    if isinstance(value, str) and _CLIENT_ADDRESS.match(value):
        return "- " if value.endswith(" - ") else "-"
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):  # ('127.0.0.1', 50412)
        return "-"
    return value


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-8s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per line with a fixed set of fields (no `extra`: a library's extras may carry a connection)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def make_handler(
    log_format: str = "text", client_addresses: bool = False, stream: TextIO | None = None
) -> logging.Handler:
    """The handler every record goes through: address hiding, then redaction, then the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    if not client_addresses:
        handler.addFilter(HideClientAddresses())
    handler.addFilter(RedactSecrets())
    return handler


def dict_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` document; also given to uvicorn, which applies it in every worker process."""
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "tocsin": {
                "()": "tocsin.logs.make_handler",
                "log_format": settings.log_format,
                "client_addresses": settings.log_client_addresses,
            }
        },
        "root": {"level": "WARNING", "handlers": ["tocsin"]},
        "loggers": {
            "tocsin": {"level": level},
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": level, "handlers": [], "propagate": settings.access_log},
            # The lean citizen listener says "connection open/closed" per device at INFO: tens of thousands of lines
            # when devices reconnect through an outage, and nothing an operator acts on.
            "websockets": {"level": level if level == "DEBUG" else "WARNING"},
            "apscheduler": {"level": "WARNING"},
        },
    }


def configure(settings: Settings) -> None:
    logging.config.dictConfig(dict_config(settings))
