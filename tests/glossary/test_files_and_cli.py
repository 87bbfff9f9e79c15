"""The files stay the reviewed source: embedded start loads them into an empty glossary; `tocsin glossary load`,
`write`, `export` and `check` (SQLite: these are the embedded-mode paths)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest
import yaml
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.conftest import REPO, make_settings
from tests.glossary.factories import GLOSSARY_DIR, content
from tocsin.cli import app as cli
from tocsin.db import open_database
from tocsin.glossary import files, service
from tocsin.main import create_app
from tocsin.models import GlossaryConcept, GlossaryVersion


@pytest.fixture
def glossary_copy(tmp_path: Path) -> Path:
    target = tmp_path / "glossary"
    shutil.copytree(GLOSSARY_DIR / "concepts", target / "concepts")
    return target


def run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


async def read_versions(url: str, concept_id: str) -> list[GlossaryVersion]:
    database = open_database(url, pool=False)
    try:
        async with database.sessions() as session:
            return list(await service.versions(session, concept_id=concept_id))
    finally:
        await database.dispose()


class TestEmbeddedStart:
    async def test_an_empty_glossary_is_loaded_from_the_files_once(self, tmp_path: Path, glossary_copy: Path) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'start.db'}"
        settings = make_settings(url, tmp_path, glossary_dir=glossary_copy)
        app = create_app(settings, migrate_on_start=True)
        async with LifespanManager(app):
            async with app.state.database.sessions() as session:
                assert await service.count_concepts(session) == len(content())
        (glossary_copy / "concepts" / "flood.yaml").unlink()
        app = create_app(settings, migrate_on_start=True)
        async with LifespanManager(app):
            async with app.state.database.sessions() as session:
                assert await service.count_concepts(session) == len(content())  # not loaded again
                rows = await session.execute(select(func.max(GlossaryConcept.version)))
                assert rows.scalar_one() == 1

    async def test_broken_files_do_not_stop_the_start(
        self, tmp_path: Path, glossary_copy: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        (glossary_copy / "concepts" / "flood.yaml").write_text("id: flood\n", encoding="utf-8")
        url = f"sqlite+aiosqlite:///{tmp_path / 'broken.db'}"
        settings = make_settings(url, tmp_path, glossary_dir=glossary_copy)
        with caplog.at_level(logging.ERROR, logger="tocsin.glossary.service"):
            app = create_app(settings, migrate_on_start=True)
            async with LifespanManager(app):
                async with app.state.database.sessions() as session:
                    assert await service.count_concepts(session) == 0
        assert "flood.yaml" in caplog.text


class TestCommandLine:
    def test_check_load_edit_load_write_export(self, tmp_path: Path, glossary_copy: Path) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'tocsin.db'}"
        env = {"TOCSIN_DATA_DIR": str(tmp_path / "var"), "TOCSIN_DATABASE_URL": url}
        assert f"{len(content())} concepts, all valid" in run(env, "glossary", "check", str(glossary_copy))
        assert f"created {len(content())}," in run(env, "glossary", "load", str(glossary_copy))
        assert "created 0, updated 0," in run(env, "glossary", "load", str(glossary_copy))

        flood_file = glossary_copy / "concepts" / "flood.yaml"
        flood_file.write_text(
            flood_file.read_text(encoding="utf-8").replace("alt: [flooding, inundation]", "alt: [flooding]"),
            encoding="utf-8",
        )
        assert "created 0, updated 1," in run(env, "glossary", "load", str(glossary_copy))
        history = asyncio.run(read_versions(url, "flood"))
        assert [(v.version, v.changed_by, v.reason) for v in history] == [
            (1, "files", "loaded from files"),
            (2, "files", "loaded from files"),
        ]

        # The approved state goes back to the files: only a file that differs is written.
        fresh = tmp_path / "fresh"
        shutil.copytree(GLOSSARY_DIR / "concepts", fresh / "concepts")
        before = {p.name: p.read_bytes() for p in (fresh / "concepts").glob("*.yaml")}
        output = run(env, "glossary", "write", str(fresh))
        assert "1 files written" in output
        after = {p.name: p.read_bytes() for p in (fresh / "concepts").glob("*.yaml")}
        assert [name for name in before if before[name] != after[name]] == ["flood.yaml"]
        assert files.load_concept(fresh / "concepts" / "flood.yaml").term("en").alt == ["flooding"]

        turtle = run(env, "glossary", "export", "--format", "ttl")
        assert "skos:prefLabel" in turtle
        csv_text = run(env, "glossary", "export", "--format", "csv")
        assert csv_text.count("\n") == 9 * len(content()) + 1

    def test_check_reports_every_problem(self, tmp_path: Path, glossary_copy: Path) -> None:
        (glossary_copy / "concepts" / "heavy-rain.yaml").unlink()
        env = {"TOCSIN_DATA_DIR": str(tmp_path / "var")}
        result = CliRunner().invoke(cli, ["glossary", "check", str(glossary_copy)], env=env)
        assert result.exit_code == 1
        assert "no concept 'heavy-rain'" in result.output


class TestProduction:
    def test_compose_loads_the_glossary_after_the_migration(self) -> None:
        services = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
        glossary = services["glossary"]
        assert glossary["command"] == ["tocsin", "glossary", "load"]
        assert glossary["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert glossary["environment"]["TOCSIN_MODE"] == "production"
        assert CliRunner().invoke(cli, ["glossary", "load", "--help"]).exit_code == 0
        dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")  # the wheel carries glossary/ (setup.py)
        assert dockerfile.index("COPY glossary ./glossary") < dockerfile.index("pip install")
