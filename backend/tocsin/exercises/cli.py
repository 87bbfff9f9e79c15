"""`tocsin exercise ...`: run tabletop exercises through a server's exercises API (a client; no database here).

The HTTP part is `ExerciseClient` (in `client.py`); what is printed comes from the pure functions below, so the
wording is tested without a server. Progress is a rich bar on a terminal and plain lines anywhere else (CI, pipes,
CliRunner).
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.text import Text

from tocsin.exercises.client import ApiError, CommandError, ExerciseClient, Verb
from tocsin.exercises.schemas import (
    ENDED_STATES,
    MAX_SPEED,
    MIN_SPEED,
    ExerciseOut,
    ExerciseState,
    ScenarioSummary,
    TimelineEntry,
    Transport,
)

app = typer.Typer(
    help="Tabletop exercises on a Tocsin server: run a scenario, follow it, get the report.", no_args_is_help=True
)

DEFAULT_URL = "http://127.0.0.1:8000"
MAX_MISSED_POLLS = 20  # consecutive polls lost to a network or gateway error before `run` gives up
EXIT_INTERRUPTED = 130  # Ctrl-C (after stopping the exercise), as shells report SIGINT


# ---- pure helpers: what is printed ---------------------------------------------------------------------------------


def format_error(message: str, field: str | None = None) -> str:
    return f"error: {message} (field {field})" if field else f"error: {message}"


def format_clock(seconds: float) -> str:
    """Scenario time as H:MM (minutes rounded down)."""
    minutes = max(0, int(seconds // 60))
    return f"{minutes // 60}:{minutes % 60:02d}"


def format_speed(speed: float) -> str:
    return f"x{speed:g}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole // 60, 60)
    return f"{hours} h {rest:02d} min"


def format_share(share: float | None) -> str:
    return "n/a" if share is None else f"{round(share * 100)} %"


def status_text(exercise: ExerciseOut) -> str:
    clock = f"{format_clock(exercise.scenario_seconds)} / {format_clock(exercise.duration_seconds)}"
    return f"{clock}  {format_speed(exercise.speed)}  {exercise.state.value}"


def timeline_line(entry: TimelineEntry) -> str:
    number = f"#{entry.number}" if entry.number is not None else ""
    to = f"  (to {entry.to})" if entry.to else ""
    return f"{format_clock(entry.scenario_seconds):>6}  {entry.kind.value:<13} {number:>4}  {entry.title}{to}"


def exercise_line(exercise: ExerciseOut) -> str:
    clock = f"{format_clock(exercise.scenario_seconds)} / {format_clock(exercise.duration_seconds)}"
    return f"{exercise.id}  {exercise.state.value:<8}  {clock}  {format_speed(exercise.speed):>6}  {exercise.title}"


def exercise_details(exercise: ExerciseOut) -> list[str]:
    rows = [
        ("id", exercise.id),
        ("scenario", f"{exercise.scenario_id}: {exercise.title}"),
        ("place", f"{exercise.place} ({exercise.hazard})"),
        ("state", status_text(exercise)),
        ("injects", f"{exercise.injects_fired} of {exercise.injects_total} fired"),
        ("devices", f"{exercise.devices} synthetic, transport {exercise.transport.value}"),
        ("created", f"{exercise.created_at.isoformat()} by {exercise.created_by}"),
        ("started", exercise.started_at.isoformat() if exercise.started_at else "-"),
        ("ended", exercise.ended_at.isoformat() if exercise.ended_at else "-"),
    ]
    if exercise.join_token:
        rows.append(("join token", exercise.join_token))
    return [f"{label:<11} {value}" for label, value in rows]


def scenario_line(scenario: ScenarioSummary) -> str:
    figures = (
        f"{format_clock(scenario.duration_seconds):>6}  {scenario.injects:>3} injects  {scenario.population:>6} people"
    )
    return f"{scenario.id:<28} {figures}  {scenario.title}"


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def alert_line(alert: dict[str, Any]) -> str:
    """One alert of the report: when it went out, whom it reached, how fast, how many acknowledged."""
    issued = format_clock(_number(alert.get("issued_seconds")) or 0.0)
    reach = f"reached {format_share(_number(alert.get('reached_share')))}"
    reach += f" ({_count(alert.get('reached'))} of {_count(alert.get('affected'))} devices)"
    times = f"50 % in {format_duration(_number(alert.get('seconds_to_50')))}"
    times += f", 90 % in {format_duration(_number(alert.get('seconds_to_90')))}"
    acks = f"ack rate {format_share(_number(alert.get('ack_rate')))}"
    return f"{issued:>6}  {alert.get('msg_type') or '':<7} {alert.get('headline', '')}: {reach}, {times}, {acks}"


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def summary_lines(report: dict[str, Any], *, json_url: str, html_url: str) -> list[str]:
    """The after-action report in a few lines (the HTML page has the rest); tolerant of missing figures."""
    exercise = _mapping(report.get("exercise"))
    reports = _mapping(report.get("reports"))
    alerts = [alert for alert in report.get("alerts") or [] if isinstance(alert, dict)]
    when = format_clock(_number(exercise.get("scenario_seconds")) or 0.0)
    return [
        f"{exercise.get('title', '')}: {exercise.get('state', '?')} at {when} scenario time",
        f"  injects fired:   {_count(exercise.get('injects_fired'))} of {_count(exercise.get('injects_total'))}",
        f"  alerts issued:   {len(alerts)}",
        *(f"  {alert_line(alert)}" for alert in alerts),
        f"  citizen reports: {_count(reports.get('received'))} received, {_count(reports.get('triaged'))} triaged",
        f"  report (JSON):   {json_url}",
        f"  report (HTML):   {html_url}",
    ]


def exercise_body(
    scenario: str,
    *,
    speed: float,
    devices: int | None,
    seed: int | None,
    transport: Transport,
    autoplay: bool = False,
) -> dict[str, Any]:
    """ExerciseIn for `run`: a scenario file's document when the argument names a file, else a library id."""
    path = Path(scenario)
    body: dict[str, Any] = {"speed": speed, "transport": transport.value, "start": True}
    if autoplay:
        body["autoplay"] = True
    if path.is_file():
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise CommandError(f"{path}: cannot read the scenario: {exc}") from None
        if not isinstance(document, dict):
            raise CommandError(f"{path}: a scenario file holds one YAML mapping")
        body["scenario"] = json.loads(json.dumps(document, default=str))  # YAML dates become ISO strings
    elif path.suffix in (".yaml", ".yml") or "/" in scenario or "\\" in scenario:
        raise CommandError(f"no such file: {scenario}")
    else:
        body["scenario_id"] = scenario
    if devices is not None:
        body["devices"] = devices
    if seed is not None:
        body["seed"] = seed
    return body


# ---- following a running exercise ----------------------------------------------------------------------------------


class FollowView:
    """A progress bar of scenario time with the timeline printed above it, or plain lines when not interactive."""

    def __init__(self, console: Console, exercise: ExerciseOut) -> None:
        self._console = console
        self._shown: tuple[ExerciseState, float] | None = None
        self._progress: Progress | None = None
        if console.is_interactive:
            self._progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                TextColumn("{task.fields[status]}", markup=False),
                console=console,
            )
            title = textwrap.shorten(exercise.title, 32, placeholder="...")  # leave the bar room on 80 columns
            total = max(exercise.duration_seconds, 1)
            self._task = self._progress.add_task(title, total=total, status=status_text(exercise))

    def __enter__(self) -> FollowView:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def line(self, text: str) -> None:
        self._console.print(Text(text))

    def update(self, exercise: ExerciseOut) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=exercise.scenario_seconds, status=status_text(exercise))
        elif self._shown != (exercise.state, exercise.speed):
            self._shown = (exercise.state, exercise.speed)
            self.line(f"status {status_text(exercise)}")


def watch(client: ExerciseClient, exercise: ExerciseOut, *, console: Console, poll: float) -> ExerciseOut:
    """Poll until the exercise ends; print each new timeline entry once. Returns the ended exercise."""
    cursor, missed = 0, 0
    with FollowView(console, exercise) as view:
        while True:
            try:
                exercise = client.exercise(exercise.id)
                page = client.timeline(exercise.id, after=cursor)  # after the state: holds the entries up to it
            except ApiError as exc:
                missed += 1
                if not exc.transient or missed >= MAX_MISSED_POLLS:
                    raise
                if missed == 1:
                    view.line(f"({exc.message}; trying again)")
            else:
                missed, cursor = 0, page.next
                for entry in page.entries:
                    view.line(timeline_line(entry))
                view.update(exercise)
                if exercise.state in ENDED_STATES:
                    return exercise
            time.sleep(poll)


def follow(client: ExerciseClient, exercise: ExerciseOut, *, console: Console, poll: float) -> int:
    """Follow to the end and print the summary; Ctrl-C stops the exercise (nothing is asked). The exit code."""
    try:
        ended = watch(client, exercise, console=console, poll=poll)
    except KeyboardInterrupt:
        console.print(Text(f"interrupted: stopping exercise {exercise.id}"))
        ended = client.control(exercise.id, "stop")
        console.print(Text(f"stopped exercise {ended.id} at {format_clock(ended.scenario_seconds)} scenario time"))
        _print_summary(client, ended.id)
        return EXIT_INTERRUPTED
    _print_summary(client, ended.id)
    if ended.state is ExerciseState.finished:
        return 0
    typer.echo(f"the exercise was {ended.state.value} before the end of the scenario", err=True)
    return 1


def _print_summary(client: ExerciseClient, exercise_id: str) -> None:
    json_url, html_url = client.report_urls(exercise_id)
    for line in summary_lines(client.report(exercise_id), json_url=json_url, html_url=html_url):
        typer.echo(line)


# ---- commands ------------------------------------------------------------------------------------------------------

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
            _print_summary(client, exercise_id)


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
