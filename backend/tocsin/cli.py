"""The `tocsin` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from fastapi import FastAPI

from tocsin import demo, logs, migrate, resilience
from tocsin.alerts import cap
from tocsin.alerts import service as alerts
from tocsin.alerts.templates import default_templates_dir, load_templates
from tocsin.auth import service as users
from tocsin.auth.schemas import Role, UserCreate
from tocsin.bus import create_bus
from tocsin.config import ConfigError, Settings
from tocsin.db import Database, open_database
from tocsin.errors import AppError
from tocsin.exercise_client import commands as exercise_commands
from tocsin.exercises.simulation.runner import ExerciseRunner
from tocsin.glossary import cli as glossary_cli
from tocsin.httpserver import HeaderTimeoutProtocol
from tocsin.main import create_app
from tocsin.scheduler.leader import run_standalone

# Compression off: many small messages to many clients (the websockets docs: ~14 KiB vs ~64 KiB per connection).
# Frames above this are refused by the server before our handler sees them (close 1009).
WS_MAX_SIZE = 65_536

log = logging.getLogger("tocsin.cli")

app = typer.Typer(
    help="Tocsin: crisis communication between civil-protection authorities and citizens.",
    no_args_is_help=True,
)
users_app = typer.Typer(help="Operator accounts.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts: CAP import and export, templates.", no_args_is_help=True)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(alerts_app, name="alerts")
app.add_typer(db_app, name="db")
app.add_typer(glossary_cli.app, name="glossary")
app.add_typer(exercise_commands.app, name="exercise")


def _settings() -> Settings:
    try:
        return Settings()
    except ConfigError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


async def _with_database(settings: Settings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = open_database(settings.effective_database_url, pool=False)
    await migrate.upgrade(database) if settings.mode.value == "embedded" else None
    return database


def app_from_environment() -> FastAPI:
    """The app for each worker of `tocsin serve --workers N` (which also sets compression off and frame limits;
    run it through `tocsin serve`, not plain uvicorn)."""
    settings = Settings()
    HeaderTimeoutProtocol.header_timeout_seconds = settings.http_header_timeout_seconds
    return create_app(settings)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="API worker processes (production)")] = 1,
    demo_data: Annotated[bool, typer.Option("--demo", help="Create demo accounts and print their passwords")] = False,
) -> None:
    """Serve the API (and, in embedded mode, run the scheduler in the same process)."""
    settings = _settings()
    logs.configure(settings)
    if "public_url" not in settings.model_fields_set:  # links and hints name the address actually served
        settings = settings.model_copy(update={"public_url": f"http://{host}:{port}"})
    database_kind = settings.effective_database_url.split(":", 1)[0].split("+", 1)[0]  # never the credentials
    log.info(
        "starting Tocsin in %s mode (%s) on http://%s:%d, %d worker(s)",
        settings.mode,
        database_kind,
        host,
        port,
        workers,
    )
    if demo_data:
        asyncio.run(_seed_demo(settings))
    HeaderTimeoutProtocol.header_timeout_seconds = settings.http_header_timeout_seconds
    if workers > 1:
        if settings.scheduler_in_process:
            typer.echo("several workers: set TOCSIN_RUN_SCHEDULER=false and run `tocsin scheduler` once", err=True)
            raise typer.Exit(2)
        uvicorn.run(
            "tocsin.cli:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            **_uvicorn_options(settings),
        )
        return
    uvicorn.run(create_app(settings), host=host, port=port, **_uvicorn_options(settings))


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "ws": settings.ws_implementation,
        "ws_per_message_deflate": False,
        "ws_max_size": WS_MAX_SIZE,
        "log_level": settings.log_level,
        "log_config": logs.dict_config(settings),  # applied again by uvicorn in each worker process
        "backlog": 4096,
        # No access log by default: it would tie addresses to requests (logs.py hides addresses and redacts tokens).
        "access_log": settings.access_log,
        "proxy_headers": True,
        "forwarded_allow_ips": settings.trusted_proxies,
        # Slow and idle clients: a deadline on request headers, on idle keep-alive, and a bound on connections.
        "http": HeaderTimeoutProtocol,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "limit_concurrency": settings.http_max_connections,
        # --workers: each worker imports the whole app before it answers the supervisor's first ping; on a loaded
        # machine that takes longer than uvicorn's 5 s, and the worker would be killed and restarted for ever.
        "timeout_worker_healthcheck": 30,
    }


async def _seed_demo(settings: Settings) -> None:
    database = await _with_database(settings)
    try:
        async with database.sessions() as session:
            credentials = await demo.seed(session, settings)
            await session.commit()
    finally:
        await database.dispose()
    typer.echo("")
    typer.echo(f"Tocsin demo accounts (also in {demo.credentials_file(settings)}):")
    for name, password in credentials.items():
        typer.echo(f"  {name:9} {password}   roles: {', '.join(r.value for r in demo.DEMO_ACCOUNTS[name])}")
    typer.echo(f"Sign in: curl -d 'username=operator&password=...' {settings.public_url}/api/v1/auth/token")
    typer.echo(f"API docs: {settings.public_url}/docs\n")


@app.command()
def scheduler() -> None:
    """Run the one scheduler (production): scheduled issue, expiry, retention and exercises. A second one waits as a
    standby."""
    settings = _settings()
    logs.configure(settings)
    log.info("starting the Tocsin scheduler in %s mode", settings.mode)

    async def run() -> None:
        database = open_database(settings.effective_database_url)
        # Started while PostgreSQL or Redis is down: wait for them (and say so), never exit.
        await resilience.wait_until_available("database", lambda: resilience.probe_database(database))
        if settings.redis_url:
            redis_url = settings.redis_url
            await resilience.wait_until_available("redis", lambda: resilience.probe_redis(redis_url))
        bus = create_bus(settings.redis_url)
        templates_dir = settings.alerts_dir or default_templates_dir()
        exercises = ExerciseRunner(database, bus, settings, templates_dir)  # subscribes before the bus starts
        await bus.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_standalone(
                database, bus, settings.scheduler_interval_seconds, stop, settings.report_retention_days, exercises
            )
        finally:
            await bus.stop()
            await database.dispose()

    asyncio.run(run())


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Create or migrate the schema (run once before starting production workers)."""
    settings = _settings()

    async def run() -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = open_database(settings.effective_database_url, pool=False)
        try:
            await migrate.upgrade(database, revision)
        finally:
            await database.dispose()

    asyncio.run(run())
    typer.echo(f"database at {revision}")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Username")],
    role: Annotated[list[Role], typer.Option("--role", help="Role (repeat for several)")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin")] = False,
) -> None:
    """Create an account: `tocsin users add NAME --role approver --password-stdin`."""
    settings = _settings()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)

    async def run() -> None:
        database = await _with_database(settings)
        try:
            async with database.sessions() as session:
                await users.create_user(session, data=UserCreate(username=name, password=password, roles=role))
                await session.commit()
        finally:
            await database.dispose()

    try:
        asyncio.run(run())
    except AppError as exc:
        typer.echo(f"refused: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except ValueError as exc:  # pydantic: password too short, bad name
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {name} with roles {', '.join(r.value for r in role)}")


@alerts_app.command("import")
def alerts_import(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="CAP 1.2 XML files")],
    author: Annotated[str, typer.Option(help="Username recorded as the author")],
) -> None:
    """Import CAP 1.2 files as drafts (an Actual alert still needs a second person's approval)."""
    settings = _settings()

    async def run() -> int:
        failures = 0
        database = await _with_database(settings)
        try:
            for path in files:
                async with database.sessions() as session:
                    user = await users.get_user_by_name(session, username=author)
                    if user is None:
                        typer.echo(f"no user {author}", err=True)
                        return len(files)
                    try:
                        alert = await alerts.import_cap(session, data=path.read_bytes(), author=user, settings=settings)
                        await session.commit()
                        typer.echo(f"{path}: imported as {alert.id} ({alert.status} {alert.msg_type})")
                    except AppError as exc:
                        failures += 1
                        typer.echo(f"{path}: refused: {exc.message}", err=True)
        finally:
            await database.dispose()
        return failures

    failures = asyncio.run(run())
    raise typer.Exit(1 if failures else 0)


@alerts_app.command("export")
def alerts_export(alert_id: Annotated[uuid.UUID, typer.Argument(help="Alert id")]) -> None:
    """Print an alert's CAP 1.2 XML."""
    settings = _settings()

    async def run() -> bytes:
        database = await _with_database(settings)
        try:
            async with database.sessions() as session:
                alert = await alerts.get_alert(session, alert_id=alert_id)
                return cap.alert_to_xml(alerts.cap_content(alert))
        finally:
            await database.dispose()

    try:
        sys.stdout.buffer.write(asyncio.run(run()))
    except AppError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from None


@alerts_app.command("templates")
def alerts_templates() -> None:
    """List the alert templates and their languages."""
    settings = _settings()
    for template in load_templates(settings.alerts_dir or default_templates_dir()).values():
        typer.echo(
            json.dumps(
                {"id": template.id, "title": template.title, "languages": list(template.texts)},
                ensure_ascii=False,
            )
        )


@app.command()
def openapi() -> None:
    """Print the OpenAPI document (JSON) of this version's API; web/ generates its API types from it."""
    document = create_app(Settings()).openapi()
    typer.echo(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False))


if __name__ == "__main__":
    app()
