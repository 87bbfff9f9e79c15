"""`tocsin exercise ...`: run tabletop exercises through a server's exercises API (a client; no database here).

The HTTP part is `ExerciseClient` (api.py); what is printed comes from the pure functions of formatting.py, so the
wording is tested without a server; follow.py follows a running exercise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tocsin.exercise_client.api import CommandError, ExerciseClient, Verb
from tocsin.exercise_client.follow import follow, print_summary
from tocsin.exercise_client.formatting import (
    exercise_body,
    exercise_details,
    exercise_line,
    format_error,
    format_speed,
    scenario_line,
)
from tocsin.exercises.schemas import MAX_SPEED, MIN_SPEED, Transport

app = typer.Typer(
    help="Tabletop exercises on a Tocsin server: run a scenario, follow it, get the report.", no_args_is_help=True
)

DEFAULT_URL = "http://127.0.0.1:8000"

UrlOption = Annotated[str, typer.Option("--url", envvar="TOCSIN_URL", help="The Tocsin server")]
UserOption = Annotated[str | None, typer.Option("--user", envvar="TOCSIN_USER", help="Username")]
PasswordOption = Annotated[
    str | None, typer.Option("--password", envvar="TOCSIN_PASSWORD", help="Password (prefer the variable)")
]
IdArgument = Annotated[str, typer.Argument(metavar="ID", help="Exercise id")]
SpeedValue = Annotated[float, typer.Option(min=MIN_SPEED, max=MAX_SPEED, help="Scenario seconds per real second")]


def _open_client(url: str, username: str, password: str) -> ExerciseClient:
    return ExerciseClient(url, username=username, password=password)


def _credentials(user: str | None, password: str | None) -> tuple[str, str]:
    """Asks only on a terminal: scripts and CI get a clear refusal instead of a prompt that never returns."""
    interactive = sys.stdin is not None and sys.stdin.isatty()
    if not user:
        if not interactive:
            raise CommandError("no user: pass --user or set TOCSIN_USER")
        user = str(typer.prompt("User"))
    if not password:
        if not interactive:
            raise CommandError(f"no password for {user}: set TOCSIN_PASSWORD (or pass --password)")
        password = str(typer.prompt(f"Password for {user}", hide_input=True))
    return user, password


@contextmanager
def _errors_reported() -> Iterator[None]:
    try:
        yield
    except CommandError as exc:
        typer.echo(format_error(exc.message, exc.field), err=True)
        raise typer.Exit(1) from None


@contextmanager
def _connected(url: str, user: str | None, password: str | None) -> Iterator[ExerciseClient]:
    with _errors_reported():
        client = _open_client(url, *_credentials(user, password))
        try:
            client.sign_in()
            yield client
        finally:
            client.close()


@app.command("run")
def run(
    scenario: Annotated[str, typer.Argument(metavar="FILE_OR_ID", help="A scenario YAML file or a library id")],
    speed: SpeedValue = 60.0,
    devices: Annotated[int | None, typer.Option(min=0, max=100_000, help="Synthetic devices")] = None,
    seed: Annotated[int | None, typer.Option(min=0, max=2**31, help="Seed for the synthetic population")] = None,
    transport: Annotated[Transport, typer.Option(help="How synthetic devices connect")] = Transport.auto,
    autoplay: Annotated[
        bool, typer.Option("--autoplay", help="Perform the scenario's scripted player actions (demos, tests)")
    ] = False,
    follow_: Annotated[bool, typer.Option("--follow/--no-follow", help="Follow the timeline to the end")] = True,
    poll: Annotated[float, typer.Option(hidden=True, min=0.0)] = 0.5,
    url: UrlOption = DEFAULT_URL,
    user: UserOption = None,
    password: PasswordOption = None,
) -> None:
    """Start an exercise and follow it: progress, live timeline, summary. Ctrl-C stops the exercise."""
    with _errors_reported():
        body = exercise_body(scenario, speed=speed, devices=devices, seed=seed, transport=transport, autoplay=autoplay)
    with _connected(url, user, password) as client:
        exercise = client.create(body)
        typer.echo(
            f"started {exercise.id}: {exercise.title} ({format_speed(exercise.speed)}, {exercise.devices} devices)"
        )
        if not follow_:
            return
        tty = sys.stdout.isatty()
        console = Console(highlight=False, soft_wrap=True, force_terminal=None if tty else False)
        code = follow(client, exercise, console=console, poll=poll)
    raise typer.Exit(code)


@app.command("list")
def list_exercises(url: UrlOption = DEFAULT_URL, user: UserOption = None, password: PasswordOption = None) -> None:
    """List the exercises on the server."""
    with _connected(url, user, password) as client:
        exercises = client.exercises()
    for exercise in exercises:
        typer.echo(exercise_line(exercise))
    if not exercises:
        typer.echo("no exercises")


@app.command("show")
def show(
    exercise_id: IdArgument, url: UrlOption = DEFAULT_URL, user: UserOption = None, password: PasswordOption = None
) -> None:
    """Show one exercise."""
    with _connected(url, user, password) as client:
        exercise = client.exercise(exercise_id)
    typer.echo("\n".join(exercise_details(exercise)))


def _control(verb: Verb, exercise_id: str, url: str, user: str | None, password: str | None) -> None:
    with _connected(url, user, password) as client:
        typer.echo(exercise_line(client.control(exercise_id, verb)))


@app.command("start")
def start(
    exercise_id: IdArgument, url: UrlOption = DEFAULT_URL, user: UserOption = None, password: PasswordOption = None
) -> None:
    """Start the scenario clock of an exercise created with --no-start (its synthetic citizens are up already)."""
    _control("start", exercise_id, url, user, password)


@app.command("pause")
def pause(
    exercise_id: IdArgument, url: UrlOption = DEFAULT_URL, user: UserOption = None, password: PasswordOption = None
) -> None:
    """Pause the scenario clock."""
    _control("pause", exercise_id, url, user, password)


@app.command("resume")
def resume(
    exercise_id: IdArgument, url: UrlOption = DEFAULT_URL, user: UserOption = None, password: PasswordOption = None
) -> None:
    """Resume a paused exercise."""
    _control("resume", exercise_id, url, user, password)


@app.command("stop")
def stop(
    exercise_id: IdArgument, url: UrlOption = DEFAULT_URL, user: UserOption = None, password: PasswordOption = None
) -> None:
    """End an exercise before the scenario's end."""
    _control("stop", exercise_id, url, user, password)


@app.command("speed")
def speed(
    exercise_id: IdArgument,
    value: Annotated[float, typer.Argument(metavar="SPEED", min=MIN_SPEED, max=MAX_SPEED, help="1..3600")],
    url: UrlOption = DEFAULT_URL,
    user: UserOption = None,
    password: PasswordOption = None,
) -> None:
    """Change the speed: scenario seconds per real second."""
    with _connected(url, user, password) as client:
        typer.echo(exercise_line(client.set_speed(exercise_id, value)))


@app.command("report")
def report(
    exercise_id: IdArgument,
    html: Annotated[
        Path | None, typer.Option("--html", dir_okay=False, help="Write the HTML report here (- for stdout)")
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", dir_okay=False, help="Write the JSON report here (- for stdout)")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    user: UserOption = None,
    password: PasswordOption = None,
) -> None:
    """Print the after-action summary, or download the report with --html or --json."""
    if html is not None and json_file is not None:
        raise typer.BadParameter("give --html or --json, not both")
    with _connected(url, user, password) as client:
        if html is not None:
            _write(html, client.report_html(exercise_id))
        elif json_file is not None:
            _write(json_file, json.dumps(client.report(exercise_id), indent=2, ensure_ascii=False) + "\n")
        else:
            print_summary(client, exercise_id)


def _write(target: Path, content: str) -> None:
    if str(target) == "-":
        sys.stdout.write(content)
        return
    try:
        target.write_text(content, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {target}: {exc.strerror or exc}") from None
    typer.echo(f"wrote {target}")


@app.command("scenarios")
def scenarios(url: UrlOption = DEFAULT_URL, user: UserOption = None, password: PasswordOption = None) -> None:
    """List the scenarios of the server's library."""
    with _connected(url, user, password) as client:
        library = client.scenarios()
    for scenario in library:
        typer.echo(scenario_line(scenario))
    if not library:
        typer.echo("no scenarios")
