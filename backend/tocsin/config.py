"""Settings: one object, read from `TOCSIN_*` environment variables.

Embedded mode (the default) needs nothing: a SQLite file under `data_dir`, an in-process bus, the scheduler inside the
serving process, and a secret key generated once and kept in `data_dir`. Production mode refuses to start without a
real secret key and a PostgreSQL URL.
"""

from __future__ import annotations

import ipaddress
import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that people paste from examples. Refused outside embedded mode.
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "tocsin", "demo", "password", "development"})
MIN_SECRET_LENGTH = 32


class Mode(StrEnum):
    embedded = "embedded"
    production = "production"


class ConfigError(RuntimeError):
    """The settings cannot run Tocsin; the message says which variable to fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOCSIN_", extra="ignore")

    mode: Mode = Mode.embedded
    data_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default: SQLite file in data_dir (embedded only)"
    )
    redis_url: str | None = None
    secret_key: SecretStr | None = None
    token_ttl_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    # Failed sign-ins before a lockout, per account and per client address, within one window (auth/limits.py).
    login_failures_per_account: Annotated[int, Field(ge=1, le=1_000)] = 10
    login_failures_per_address: Annotated[int, Field(ge=1, le=100_000)] = 50
    login_window_seconds: Annotated[int, Field(ge=1, le=86_400)] = 900
    # None: run the scheduler inside `tocsin serve` in embedded mode only. Production runs `tocsin scheduler`.
    run_scheduler: bool | None = None
    scheduler_interval_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0

    alerts_dir: Path | None = Field(default=None, description="alert templates; default: the installed copy of alerts/")
    glossary_dir: Path | None = Field(
        default=None, description="glossary content; default: the installed copy of glossary/"
    )
    scenarios_dir: Path | None = Field(
        default=None, description="exercise scenarios; default: the installed copy of scenarios/"
    )

    # Exercises: synthetic citizens connect in-process when the scheduler shares a process with the hub and the
    # population is at most exercise_in_process_max; otherwise over real WebSockets to exercise_citizen_url.
    exercise_citizen_url: str | None = Field(
        default=None, description="ws:// URL of /ws/citizen the synthetic citizens connect to (production)"
    )
    exercise_in_process_max: Annotated[int, Field(ge=0, le=100_000)] = 2_000
    exercise_max_devices: Annotated[int, Field(ge=0, le=100_000)] = 5_000

    # CAP identity of this installation.
    cap_sender: str = "tocsin@localhost"
    cap_sender_name: str = "Tocsin"
    public_url: str = "http://127.0.0.1:8000"
    cap_identifier_prefix: str = "tocsin"

    # Real time and reports (rate limits are per worker; see docs/protocol.md).
    device_messages_per_minute: Annotated[float, Field(gt=0)] = 120
    device_reports_per_minute: Annotated[float, Field(gt=0)] = 10
    ip_reports_per_minute: Annotated[float, Field(gt=0)] = 600
    ip_messages_per_minute: Annotated[float, Field(gt=0)] = 6_000
    ip_new_devices_per_minute: Annotated[float, Field(gt=0)] = 120
    report_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    realtime_poll_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    client_queue_size: Annotated[int, Field(ge=8, le=10_000)] = 64
    citizen_port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        default=None, description="also serve /ws/citizen on this port with the lean websockets listener"
    )
    citizen_host: str = "127.0.0.1"
    trusted_proxies: str = Field(
        default="127.0.0.1", description="reverse proxies whose X-Forwarded-For gives the client's address"
    )
    access_log: bool = False
    # Logging (tocsin/logs.py): secrets are always redacted; client addresses only on request, for debugging.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_client_addresses: bool = False
    ws_implementation: Literal["websockets", "websockets-sansio"] = "websockets-sansio"

    # The main HTTP port (uvicorn): a client must send its request headers within http_header_timeout_seconds of
    # connecting (or of its previous response); an idle keep-alive connection closes after http_keep_alive_seconds;
    # beyond http_max_connections (WebSockets on the main port included) new requests get 503.
    http_header_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    http_keep_alive_seconds: Annotated[int, Field(ge=1, le=300)] = 5
    http_max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000

    # Operations: readiness fails when the scheduler's heartbeat is older than this (production); who may read
    # /metrics (comma-separated networks, e.g. "127.0.0.1/32,10.0.0.0/8"; empty: everyone).
    scheduler_heartbeat_max_age_seconds: Annotated[float, Field(gt=0, le=3600)] = 15.0
    # Embedded: how long a write waits for another process's write lock on the SQLite file before it gives up (503).
    sqlite_busy_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0
    metrics_allowed_networks: str = ""

    # The console's base map (docs/maps.md): unset, the bundled offline base (Natural Earth coasts and borders);
    # a tile URL template ("https://tiles.example.org/{z}/{x}/{y}.png"; its origin is added to the pages'
    # Content-Security-Policy); or a local .pmtiles file, which Tocsin serves itself with HTTP range requests.
    basemap: str | None = None
    basemap_attribution: str = ""
    basemap_max_zoom: Annotated[int, Field(ge=1, le=24)] = 18

    # Bounds on what clients may send.
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    max_cap_bytes: Annotated[int, Field(ge=1024)] = 2_097_152

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.mode is Mode.production:
            if self.secret_key is None:
                raise ConfigError("TOCSIN_SECRET_KEY must be set in production mode")
            value = self.secret_key.get_secret_value()
            if value.lower() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    f"TOCSIN_SECRET_KEY is a placeholder or shorter than {MIN_SECRET_LENGTH} characters; "
                    "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
                )
            if not self.database_url or not self.database_url.startswith("postgresql"):
                raise ConfigError("TOCSIN_DATABASE_URL must name a PostgreSQL database in production mode")
        return self

    @model_validator(mode="after")
    def _metrics_networks_parse(self) -> Settings:
        self.metrics_networks  # noqa: B018 - parsed once here, so a bad value stops the start, not each scrape
        return self

    @cached_property
    def metrics_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The networks that may read /metrics (empty: everyone)."""
        networks = []
        for item in self.metrics_allowed_networks.split(","):
            if not item.strip():
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ConfigError(
                    f"TOCSIN_METRICS_ALLOWED_NETWORKS: {item.strip()!r} is not a network (e.g. 10.0.0.0/8)"
                ) from None
        return tuple(networks)

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tocsin.db').as_posix()}"

    @property
    def scheduler_in_process(self) -> bool:
        if self.run_scheduler is not None:
            return self.run_scheduler
        return self.mode is Mode.embedded

    @cached_property
    def signing_key(self) -> str:
        """The key that signs access tokens.

        In embedded mode without a configured key, one is generated on first start and kept in data_dir, so tokens
        survive a restart and no secret ships with the code.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.mode is not Mode.embedded:  # pragma: no cover - the validator already refused this
            raise ConfigError("TOCSIN_SECRET_KEY must be set")
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key, encoding="utf-8")
        path.chmod(0o600)
        return key
