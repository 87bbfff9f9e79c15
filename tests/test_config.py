from __future__ import annotations

from pathlib import Path

import pytest

from tocsin.config import ConfigError, Mode, Settings

PG = "postgresql+asyncpg://tocsin@db/tocsin"


class TestSettings:
    def test_production_refuses_a_missing_secret(self) -> None:
        with pytest.raises(ConfigError, match="TOCSIN_SECRET_KEY must be set"):
            Settings(mode=Mode.production, database_url=PG)

    @pytest.mark.parametrize("secret", ["changeme", "secret", "short-but-not-a-placeholder"])
    def test_production_refuses_placeholder_or_short_secrets(self, secret: str) -> None:
        with pytest.raises(ConfigError, match="placeholder or shorter"):
            Settings(mode=Mode.production, database_url=PG, secret_key=secret)

    def test_production_needs_postgresql(self) -> None:
        with pytest.raises(ConfigError, match="PostgreSQL"):
            Settings(mode=Mode.production, secret_key="x" * 40)

    def test_production_with_real_secret_starts(self) -> None:
        settings = Settings(mode=Mode.production, database_url=PG, secret_key="k" * 48)
        assert settings.signing_key == "k" * 48
        assert settings.scheduler_in_process is False

    def test_embedded_generates_and_keeps_its_key(self, tmp_path: Path) -> None:
        first = Settings(data_dir=tmp_path).signing_key
        second = Settings(data_dir=tmp_path).signing_key
        assert first == second
        assert len(first) >= 48
        assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600

    def test_embedded_defaults(self, tmp_path: Path) -> None:
        settings = Settings(data_dir=tmp_path)
        assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
        assert settings.scheduler_in_process is True
        assert settings.redis_url is None

    def test_environment_prefix(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TOCSIN_TOKEN_TTL_MINUTES", "15")
        assert Settings().token_ttl_minutes == 15


class TestMetricsNetworks:
    def test_networks_are_parsed_once(self) -> None:
        settings = Settings(metrics_allowed_networks="10.0.0.0/8, 127.0.0.1")
        assert [str(network) for network in settings.metrics_networks] == ["10.0.0.0/8", "127.0.0.1/32"]

    def test_a_bad_network_stops_the_start_naming_the_variable(self) -> None:
        with pytest.raises(ConfigError, match="TOCSIN_METRICS_ALLOWED_NETWORKS"):
            Settings(metrics_allowed_networks="10.0.0.0/8,not-a-network")
