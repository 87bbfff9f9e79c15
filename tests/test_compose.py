"""docker-compose.yml describes production. No Docker engine runs here, so its structure is checked instead:
services, images, that every command it runs exists in our CLI, and that no secret has a default."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import REPO
from tocsin.cli import app

COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]


class TestCompose:
    def test_production_services_are_there(self) -> None:
        assert {"db", "redis", "migrate", "api", "scheduler"} <= set(SERVICES)
        assert SERVICES["db"]["image"].startswith("postgis/postgis:15")
        assert SERVICES["redis"]["image"].startswith("redis:7")

    def test_several_api_workers_and_exactly_one_scheduler(self) -> None:
        command = SERVICES["api"]["command"]
        workers = int(command[command.index("--workers") + 1])
        assert workers > 1
        assert SERVICES["scheduler"]["deploy"]["replicas"] == 1
        assert SERVICES["api"]["environment"]["TOCSIN_RUN_SCHEDULER"] == "false"

    def test_app_services_run_in_production_mode_on_postgis_and_redis(self) -> None:
        for name in ("migrate", "api", "scheduler"):
            environment = SERVICES[name]["environment"]
            assert environment["TOCSIN_MODE"] == "production"
            assert environment["TOCSIN_DATABASE_URL"].startswith("postgresql+asyncpg://")
            assert environment["TOCSIN_DATABASE_URL"].endswith("@db:5432/tocsin")
            assert environment["TOCSIN_REDIS_URL"] == "redis://redis:6379/0"

    def test_secrets_have_no_default(self) -> None:
        text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
        for variable in ("TOCSIN_SECRET_KEY", "TOCSIN_DB_PASSWORD"):
            uses = re.findall(r"\$\{" + variable + r"([^}]*)\}", text)
            assert uses, variable
            assert all(use.startswith(":?") for use in uses), f"{variable} must be required, not defaulted"

    def test_workers_wait_for_the_migration(self) -> None:
        for name in ("api", "scheduler"):
            assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"

    @pytest.mark.parametrize("service", ["migrate", "api", "scheduler"])
    def test_command_exists_in_the_cli(self, service: str) -> None:
        command = SERVICES[service]["command"]
        assert command[0] == "tocsin"
        words = [w for w in command[1:] if not w.startswith("-")][:2]
        subcommand = words[:2] if words[0] == "db" else words[:1]
        result = CliRunner().invoke(app, [*subcommand, "--help"])
        assert result.exit_code == 0, result.output
        for option in (w for w in command if w.startswith("--")):
            assert option in result.output
