"""Following a running exercise from the command line: a progress bar of scenario time with the timeline printed
above it on a terminal, plain lines anywhere else (CI, pipes, CliRunner); then the after-action summary."""

from __future__ import annotations

import textwrap
import time

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.text import Text

from tocsin.exercise_client.api import ApiError, ExerciseClient
from tocsin.exercise_client.formatting import format_clock, status_text, summary_lines, timeline_line
from tocsin.exercises.schemas import ENDED_STATES, ExerciseOut, ExerciseState

MAX_MISSED_POLLS = 20  # consecutive polls lost to a network or gateway error before `run` gives up
EXIT_INTERRUPTED = 130  # Ctrl-C (after stopping the exercise), as shells report SIGINT


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
        print_summary(client, ended.id)
        return EXIT_INTERRUPTED
    print_summary(client, ended.id)
    if ended.state is ExerciseState.finished:
        return 0
    typer.echo(f"the exercise was {ended.state.value} before the end of the scenario", err=True)
    return 1


def print_summary(client: ExerciseClient, exercise_id: str) -> None:
    json_url, html_url = client.report_urls(exercise_id)
    for line in summary_lines(client.report(exercise_id), json_url=json_url, html_url=html_url):
        typer.echo(line)
