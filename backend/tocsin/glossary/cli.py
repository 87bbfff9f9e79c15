"""`tocsin glossary ...`: check the files, load them into the database, write the approved state back, export."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from tocsin import migrate
from tocsin.config import ConfigError, Mode, Settings
from tocsin.db import open_database
from tocsin.errors import AppError
from tocsin.glossary import exchange, files, service
from tocsin.glossary.schemas import ExportFormat

app = typer.Typer(help="The crisis glossary: content files, database, exports.", no_args_is_help=True)

T = TypeVar("T")
DirArgument = Annotated[
    Path | None, typer.Argument(help="the glossary directory (default: TOCSIN_GLOSSARY_DIR or glossary/)")
]


def _settings() -> Settings:
    try:
        return Settings()
    except ConfigError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


def _directory(settings: Settings, given: Path | None) -> Path:
    return given or settings.glossary_dir or files.default_glossary_dir()


def _in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, commit: bool) -> T:
    async def run() -> T:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = open_database(settings.effective_database_url, pool=False)
        try:
            if settings.mode is Mode.embedded:
                await migrate.upgrade(database)
            async with database.sessions() as session:
                result = await work(session)
                if commit:
                    await session.commit()
                return result
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except files.ContentError as exc:
        typer.echo("refused: the glossary files have problems:\n" + "\n".join(exc.problems), err=True)
        raise typer.Exit(1) from None
    except AppError as exc:
        where = f" ({exc.field})" if exc.field else ""
        typer.echo(f"refused: {exc.message}{where}", err=True)
        raise typer.Exit(1) from None


@app.command("check")
def check(directory: DirArgument = None) -> None:
    """Load every concept file through the schema and check the glossary as a whole (no database)."""
    folder = _directory(_settings(), directory)
    try:
        concepts = files.load_directory(folder)
    except files.ContentError as exc:
        typer.echo("\n".join(exc.problems), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{len(concepts)} concepts, all valid")


@app.command("load")
def load(directory: DirArgument = None) -> None:
    """Load the files into the database: new concepts are created, changed ones get a new version."""
    settings = _settings()
    folder = _directory(settings, directory)
    applied = _in_session(settings, lambda session: service.load_files(session, directory=folder), commit=True)
    typer.echo(
        f"created {len(applied.created)}, updated {len(applied.updated)}, deprecated {len(applied.deprecated)}, "
        f"unchanged {len(applied.unchanged)}"
    )


@app.command("write")
def write(directory: DirArgument = None) -> None:
    """Write the approved state back to the files (only files that differ are written)."""
    settings = _settings()
    folder = _directory(settings, directory)
    written = _in_session(settings, lambda session: service.write_files(session, directory=folder), commit=False)
    for concept_id in written:
        typer.echo(f"wrote {files.concepts_dir(folder) / (concept_id + '.yaml')}")
    typer.echo(f"{len(written)} files written")


@app.command("export")
def export(
    fmt: Annotated[ExportFormat, typer.Option("--format", help="ttl, jsonld or csv")] = ExportFormat.ttl,
) -> None:
    """Print the approved glossary as SKOS (Turtle or JSON-LD) or CSV."""
    settings = _settings()
    body = _in_session(
        settings,
        lambda session: exchange.export(session, fmt=fmt, base_url=settings.public_url),
        commit=False,
    )
    sys.stdout.buffer.write(body)
