"""What `tocsin exercise ...` prints: pure functions from the API's answers to lines of text, so the wording is
tested without a server; and the body `run` sends (`exercise_body`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tocsin.exercise_client.api import CommandError
from tocsin.exercises.schemas import ExerciseOut, ScenarioSummary, TimelineEntry, Transport


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
