"""The after-action report (schemas.AfterActionReport) as one self-contained HTML page, after the HSEEP shape.

The page makes no request of its own: styles are inline, charts are SVG built here (charts.py), there is no script,
and a Content-Security-Policy meta tag forbids scripts and fetches should a text ever slip through. Every text in an
exercise comes from users, so the template autoescapes everything; only the chart markup, escaped by charts.py, is
marked safe.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from tocsin.exercises.reporting.charts import (
    BarGroup,
    bar_chart,
    format_clock,
    format_number,
    format_percent,
    inject_to_alert_chart,
    reach_chart,
    timeline_chart,
)
from tocsin.exercises.schemas import AfterActionReport, ExpectedActionOut, ObservationKind, Rating

TEMPLATES = Path(__file__).resolve().parent / "templates"

RATING_MEANINGS: dict[Rating, tuple[str, str]] = {
    Rating.P: (
        "Performed without challenges",
        "The team did what the objective asks, on time, and nothing it did got in the way of the response.",
    ),
    Rating.S: (
        "Performed with some challenges",
        "The objective was met, but something was slower, less clear or less complete than it should have been; "
        "fixing it would make the response better.",
    ),
    Rating.M: (
        "Performed with major challenges",
        "The objective was met only in part, or met in a way that could have hurt the response or put people at "
        "risk; it needs corrective action.",
    ),
    Rating.U: (
        "Unable to be performed",
        "The team could not do what the objective asks during the exercise.",
    ),
}

FINDING_KINDS = {"deprecated": "deprecated term", "non_preferred": "non-preferred term", "explain": "term to explain"}
OBSERVATION_KINDS = {
    ObservationKind.strength: "Strength",
    ObservationKind.improvement: "Area for improvement",
    ObservationKind.note: "Note",
}


@dataclass(frozen=True)
class ObjectiveRow:
    objective: str
    capability: str
    text: str
    rating: Rating | None
    rationale: str | None
    rated_by: str | None


@dataclass(frozen=True)
class Charts:
    timeline: Markup | None
    inject_to_alert: Markup | None
    reach: Markup | None
    rates: Markup | None
    reports: Markup
    categories: Markup | None


# ---- filters --------------------------------------------------------------------------------------------------------


def format_datetime(value: datetime | None) -> str:
    if value is None:
        return "—"
    zone = f" {value.tzname()}" if value.tzinfo is not None else ""
    return value.strftime("%Y-%m-%d %H:%M") + zone


def dash(value: object) -> str:
    return "—" if value is None or value == "" else str(value)


def words(value: str) -> str:
    """An identifier as words: player_action → player action."""
    return value.replace("_", " ")


def action_status(action: ExpectedActionOut) -> str:
    if action.done_seconds is None:
        return "missing"
    return {True: "on time", False: "late", None: "done"}[action.on_time]


# ---- what the template shows ----------------------------------------------------------------------------------------


def objective_rows(report: AfterActionReport) -> list[ObjectiveRow]:
    """The scenario's objectives with their ratings, then any rated objective the scenario no longer lists."""
    ratings = {rating.objective: rating for rating in report.ratings}
    rows: list[ObjectiveRow] = []
    for objective in report.scenario.objectives:
        key = objective.get("id", "")
        rated = ratings.pop(key, None)
        rows.append(
            ObjectiveRow(
                objective=key,
                capability=objective.get("capability", rated.capability if rated else ""),
                text=objective.get("text", rated.text if rated else ""),
                rating=rated.rating if rated else None,
                rationale=rated.rationale if rated else None,
                rated_by=rated.rated_by if rated else None,
            )
        )
    rows += [
        ObjectiveRow(r.objective, r.capability, r.text, r.rating, r.rationale, r.rated_by) for r in ratings.values()
    ]
    return rows


def summary_figures(report: AfterActionReport) -> list[tuple[str, str]]:
    """The executive summary's headline figures, as (label, value)."""
    exercise, alerts = report.exercise, report.alerts
    statuses = Counter(action_status(action) for action in report.expected_actions)
    affected = sum(alert.affected for alert in alerts)
    ratings = Counter(row.rating for row in report.ratings if row.rating is not None)
    return [
        (
            "Scenario time played",
            f"{format_clock(exercise.scenario_seconds)} of {format_clock(exercise.duration_seconds)}",
        ),
        ("Injects delivered", f"{exercise.injects_fired} of {exercise.injects_total}"),
        ("Synthetic devices", str(exercise.devices)),
        ("Alerts issued", str(len(alerts))),
        ("Expected actions", f"{statuses['on time']} on time, {statuses['late']} late, {statuses['missing']} missing"),
        ("Contingencies fired", str(sum(1 for a in report.expected_actions if a.contingency_fired is not None))),
        ("Affected devices reached", format_percent(sum(a.reached for a in alerts) / affected if affected else None)),
        ("Citizen reports", f"{report.reports.received} received, {report.reports.triaged} triaged"),
        ("Median time to triage", _minutes(report.reports.median_minutes_to_triage)),
        ("Ratings", ", ".join(f"{r.value} {ratings[r]}" for r in Rating) if ratings else "not rated yet"),
        ("Glossary findings", str(len(report.glossary_findings))),
    ]


def _minutes(value: float | None) -> str:
    return "—" if value is None else f"{format_number(value)} min"


def build_charts(report: AfterActionReport) -> Charts:
    alerts, reports = report.alerts, report.reports
    rates = [BarGroup(alert.headline, (alert.ack_rate, alert.checkin_rate)) for alert in alerts]
    categories = sorted(reports.by_category.items(), key=lambda item: (-item[1], item[0]))
    return Charts(
        timeline=timeline_chart(report.timeline, report.exercise.duration_seconds) if report.timeline else None,
        inject_to_alert=inject_to_alert_chart(report.inject_to_alert) if report.inject_to_alert else None,
        reach=reach_chart(alerts) if any(alert.reach_curve for alert in alerts) else None,
        rates=bar_chart(
            "Acknowledgement and check-in rates per alert, as a share of the devices reached",
            rates,
            ("Acknowledged", "Checked in"),
            maximum=1.0,
            value_text=format_percent,
        )
        if alerts
        else None,
        reports=bar_chart(
            f"Citizen reports: {reports.received} received, {reports.triaged} triaged",
            [BarGroup("Received", (reports.received,)), BarGroup("Triaged", (reports.triaged,))],
            ("Reports",),
        ),
        categories=bar_chart(
            "Citizen reports by category",
            [BarGroup(words(name), (count,)) for name, count in categories],
            ("Reports",),
        )
        if categories
        else None,
    )


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        clock=format_clock,
        number=format_number,
        percent=format_percent,
        minutes=_minutes,
        when=format_datetime,
        dash=dash,
        words=words,
        status=action_status,
    )
    return environment


def render_report_html(report: AfterActionReport) -> str:
    """The whole page, one string, no external resources."""
    return (
        _environment()
        .get_template("report.html")
        .render(
            report=report,
            charts=build_charts(report),
            summary=summary_figures(report),
            objectives=objective_rows(report),
            rating_meanings=RATING_MEANINGS,
            finding_kinds=FINDING_KINDS,
            observation_kinds=OBSERVATION_KINDS,
        )
    )
