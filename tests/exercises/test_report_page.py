"""render_report_html: the after-action report as one page. Plain tests read the HTML; browser tests open it in the
system's Chromium through Playwright (never a downloaded browser) and check it draws, escapes and fetches nothing."""

from __future__ import annotations

import importlib.util
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import IN_CI, REPO
from tocsin.exercises.reporting import page
from tocsin.exercises.reporting.page import render_report_html
from tocsin.exercises.schemas import (
    AfterActionReport,
    AlertFigures,
    ExerciseOut,
    ExerciseState,
    ExpectedActionOut,
    ImprovementOut,
    InjectToAlert,
    LintFindingOut,
    ObjectiveRating,
    ObservationKind,
    ObservationOut,
    PopulationFigures,
    Rating,
    ReachPoint,
    ReportFigures,
    ScenarioInfo,
    TimelineEntry,
    TimelineKind,
    Transport,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Dialog, Page, Route

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = "<script>alert(1)</script>"
LINK_IN_TEXT = "https://example.org/oliwa-map"
HEADLINE_A = "Flash flood in Wrzeszcz: move to upper floors"
HEADLINE_B = "Flash flood in Śródmieście: avoid underpasses & the <tunnel> at Gdańsk Główny"
START = datetime(2025, 7, 10, 14, 0, tzinfo=UTC)
ALERT_A, ALERT_B = uuid.UUID(int=0xA), uuid.UUID(int=0xB)
OBJECTIVES = [
    ("O1", "Public information and warning", "Warn residents along the Strzyża and in Oliwa within 25 minutes."),
    ("O2", "Situational assessment", "Triage each wave of citizen reports within 20 minutes."),
    ("O3", "Public information and warning", "Extend the warnings as the water moves to the city centre."),
    ("O4", "Public information and warning", "Answer the media within 30 minutes with facts matching the alerts."),
]


# ---- factory --------------------------------------------------------------------------------------------------------


def _entry(minute: float, kind: TimelineKind, title: str, **extra: Any) -> TimelineEntry:
    return TimelineEntry(
        scenario_seconds=minute * 60, at=START + timedelta(seconds=minute * 6), kind=kind, title=title, **extra
    )


def _timeline() -> list[TimelineEntry]:
    return [
        _entry(0, TimelineKind.clock, "Exercise started", detail="speed 10×"),
        _entry(0, TimelineKind.inject, "IMGW level-3 warning", number=1, to="players", objectives=["O1"]),
        _entry(14, TimelineKind.alert, HEADLINE_A, alert_id=ALERT_A),
        _entry(20, TimelineKind.inject, "Reservoirs on the Strzyża almost full", number=2, to="players"),
        _entry(25, TimelineKind.contingency, "Fire service asks why Oliwa has no warning", number=12),
        _entry(35, TimelineKind.inject, "Water on al. Grunwaldzka", number=3, to="players", objectives=["O2"]),
        _entry(48, TimelineKind.triage, "31 reports triaged", detail="driver in car passed to the fire service"),
        _entry(50, TimelineKind.inject, "Storm drains back up in the city centre", number=4, objectives=["O3"]),
        _entry(55, TimelineKind.scripted, "Tram operator stops line 8"),
        _entry(65, TimelineKind.player_action, "Statement to the news portal", detail="trams stopped, areas warned"),
        _entry(75, TimelineKind.alert, HEADLINE_B, alert_id=ALERT_B),
        _entry(80, TimelineKind.observation, "Evaluator note on the Oliwa warning"),
        _entry(390, TimelineKind.clock, "Exercise finished"),
    ]


def _curve(*points: tuple[float, float]) -> list[ReachPoint]:
    return [ReachPoint(seconds=minute * 60, share=share) for minute, share in points]


def _alerts() -> list[AlertFigures]:
    common = {"event": "Flash flood", "msg_type": "Alert", "need_help": 9}
    first = AlertFigures(
        alert_id=ALERT_A,
        headline=HEADLINE_A,
        issued_seconds=840,
        affected=420,
        reached=401,
        reached_share=401 / 420,
        seconds_to_50=95,
        seconds_to_90=410,
        acknowledged=330,
        ack_rate=330 / 401,
        checked_in=170,
        checkin_rate=170 / 401,
        reach_curve=_curve((0, 0), (1, 0.31), (2, 0.62), (5, 0.84), (7, 0.91), (10, 0.955)),
        **common,
    )
    second = AlertFigures(
        alert_id=ALERT_B,
        headline=HEADLINE_B,
        issued_seconds=4500,
        affected=300,
        reached=240,
        reached_share=0.8,
        seconds_to_50=180,
        seconds_to_90=None,
        acknowledged=150,
        ack_rate=0.625,
        checked_in=60,
        checkin_rate=None,
        reach_curve=_curve((0, 0), (2, 0.28), (3, 0.51), (6, 0.7), (12, 0.8)),
        **common,
    )
    return [first, second]


def _inject_to_alert() -> list[InjectToAlert]:
    def row(
        inject: int,
        action: str,
        area: str,
        start: float,
        deadline: float,
        minutes: float | None,
        on_time: bool | None,
        alert: uuid.UUID | None,
        headline: str | None,
    ) -> InjectToAlert:
        return InjectToAlert(
            inject=inject,
            inject_title=f"Inject {inject} title",
            action=action,
            area=area,
            inject_seconds=start * 60,
            deadline_seconds=deadline * 60,
            alert_id=alert,
            alert_headline=headline,
            minutes_to_alert=minutes,
            on_time=on_time,
        )

    return [
        row(1, "A1", "Wrzeszcz along the Strzyża", 0, 20, 14.0, True, ALERT_A, HEADLINE_A),
        row(1, "A2", "Oliwa along the Oliwa stream", 0, 25, None, False, None, None),
        row(4, "A4", "Śródmieście", 50, 70, 25.0, False, ALERT_B, HEADLINE_B),
    ]


def _actions() -> list[ExpectedActionOut]:
    def action(
        key: str,
        kind: str,
        inject: int,
        deadline: float,
        done: float | None,
        by: str | None,
        on_time: bool | None,
        contingency: int | None = None,
    ) -> ExpectedActionOut:
        return ExpectedActionOut(
            id=key,
            kind=kind,
            description=f"{key}: {kind.replace('_', ' ')} as the scenario asks",
            inject=inject,
            deadline_seconds=deadline * 60,
            done_seconds=None if done is None else done * 60,
            done_by=by,
            on_time=on_time,
            contingency_fired=contingency,
        )

    return [
        action("A1", "issue_alert", 1, 20, 14, "alert", True),
        action("A2", "issue_alert", 1, 25, None, None, False, contingency=12),
        action("A3", "triage_reports", 3, 55, 48, "triage", True),
        action("A4", "issue_alert", 4, 70, 75, "alert", False),
        action("A5", "respond_to_inquiry", 5, 90, 65, "player_action", True),
    ]


def _ratings() -> list[ObjectiveRating]:
    letters = [Rating.S, Rating.P, Rating.M, Rating.U]
    return [
        ObjectiveRating(
            objective=key,
            text=text,
            capability=capability,
            rating=letter,
            rationale=f"Rationale for {key}",
            rated_by="evaluator@gdansk.example",
        )
        for (key, capability, text), letter in zip(OBJECTIVES, letters, strict=True)
    ]


def _observations() -> list[ObservationOut]:
    def note(
        number: int,
        kind: ObservationKind,
        minute: float,
        text: str,
        objective: str | None = None,
        inject: int | None = None,
    ) -> ObservationOut:
        return ObservationOut(
            id=number,
            kind=kind,
            text=text,
            author="evaluator@gdansk.example",
            objective=objective,
            inject=inject,
            scenario_seconds=minute * 60,
            at=START + timedelta(seconds=minute * 6),
        )

    return [
        note(1, ObservationKind.strength, 15, "First warning out 6 minutes before its deadline.", objective="O1"),
        note(
            2,
            ObservationKind.improvement,
            26,
            f"The Oliwa warning never went out. {SCRIPT} See {LINK_IN_TEXT}",
            objective="O1",
            inject=1,
        ),
        note(3, ObservationKind.note, 80, "Operators asked for a second screen.", objective=None, inject=None),
    ]


def _exercise() -> ExerciseOut:
    return ExerciseOut(
        id="ex-7f3a",
        scenario_id="gdansk-flash-flood",
        title="Flash floods in Gdańsk after a cloudburst",
        hazard="flash-flood",
        place="Gdańsk, Pomorskie, Poland",
        state=ExerciseState.finished,
        speed=10,
        scenario_seconds=23_400,
        duration_seconds=23_400,
        progress=1.0,
        devices=1200,
        devices_online=0,
        transport=Transport.in_process,
        injects_fired=14,
        injects_total=15,
        created_by="planner@gdansk.example",
        created_at=START - timedelta(hours=1),
        started_at=START,
        ended_at=START + timedelta(seconds=2340),
    )


def _scenario() -> ScenarioInfo:
    return ScenarioInfo(
        id="gdansk-flash-flood",
        title="Flash floods in Gdańsk after a cloudburst",
        hazard="flash-flood",
        place="Gdańsk, Pomorskie, Poland",
        summary="A storm cell stalls west of the city; streams rise within minutes.",
        objectives=[{"id": key, "capability": capability, "text": text} for key, capability, text in OBJECTIVES],
    )


def _findings() -> list[LintFindingOut]:
    rows = [
        (ALERT_B, HEADLINE_B, "en", "headline", "non_preferred", "flash flood watch", "flash flood warning"),
        (ALERT_A, HEADLINE_A, "pl", "instruction", "explain", "zbiornik retencyjny", "zbiornik retencyjny"),
    ]
    return [
        LintFindingOut(
            alert_id=alert,
            headline=headline,
            language=language,
            field=name,
            kind=kind,
            text=text,
            preferred=preferred,
            concept_id=preferred.replace(" ", "-"),
        )
        for alert, headline, language, name, kind, text, preferred in rows
    ]


def _plan() -> list[ImprovementOut]:
    return [
        ImprovementOut(
            id=1,
            objective="O1",
            issue="Oliwa warning missing",
            owner="CZK duty officer",
            corrective_action="Pre-draft warnings for every flood zone",
            due=date(2025, 9, 1),
        ),
        ImprovementOut(
            id=2,
            objective=None,
            issue="One screen per operator",
            owner="IT",
            corrective_action="Add a second screen",
            due=None,
        ),
    ]


def make_report(**overrides: Any) -> AfterActionReport:
    """A flash-flood exercise in Gdańsk: two alerts, one expected alert missing, all four rating letters."""
    fields: dict[str, Any] = {
        "exercise": _exercise(),
        "scenario": _scenario(),
        "generated_at": START + timedelta(hours=2),
        "timeline": _timeline(),
        "inject_to_alert": _inject_to_alert(),
        "alerts": _alerts(),
        "population": PopulationFigures(
            devices=1200,
            by_area={"strzyza-wrzeszcz": 420, "oliwa": 240, "srodmiescie": 300, "orunia": 240},
            by_language={"pl": 1020, "uk": 108, "en": 48, "ru": 24},
            vulnerable=180,
            lost_connection=147,
            queued_reports_resent=23,
        ),
        "reports": ReportFigures(
            received=80,
            triaged=62,
            by_category={"flooding": 64, "road_blocked": 9, "injured_or_trapped": 5, "power_outage": 2},
            by_status={"new": 18, "in_progress": 20, "resolved": 42},
            median_minutes_to_triage=11.5,
        ),
        "expected_actions": _actions(),
        "glossary_findings": _findings(),
        "ratings": _ratings(),
        "observations": _observations(),
        "strengths": ["Quick first warning for Wrzeszcz (14 min)."],
        "areas_for_improvement": ["No warning for Oliwa; the contingency inject had to prompt the team."],
        "improvement_plan": _plan(),
    }
    return AfterActionReport(**(fields | overrides))


# ---- plain -----------------------------------------------------------------------------------------------------------


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


class TestRenderReportHtml:
    def test_every_section_is_there(self) -> None:
        html = render_report_html(make_report())
        assert html.startswith("<!DOCTYPE html>")
        for section in (
            "summary",
            "objectives",
            "timeline",
            "figures",
            "actions",
            "glossary",
            "observations",
            "strengths",
            "improvements",
            "plan",
        ):
            assert f'<section id="{section}"' in html, section
        assert html.count('role="img"') == 6
        assert "@media print" in html

    def test_refers_to_no_external_resource(self) -> None:
        collector = _Collector()
        collector.feed(render_report_html(make_report()))
        assert not {"script", "link", "img", "iframe", "object", "embed", "audio", "video", "source"} & set(
            collector.tags
        )
        for name, value in collector.attributes:
            if name == "href":
                assert value.startswith("#"), value
            assert "://" not in value, (name, value)
            assert not value.strip().startswith("//"), (name, value)
        style = "".join(collector.styles)
        for construct in ("url(", "@import", "@font-face"):
            assert construct not in style

    def test_escapes_user_text(self) -> None:
        html = render_report_html(make_report())
        assert SCRIPT not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<tunnel>" not in html
        # the headline in the tables and in the chart titles: both escaped
        assert html.count("avoid underpasses &amp; the &lt;tunnel&gt; at") >= 4
        assert LINK_IN_TEXT in html  # a link in a text stays text

    def test_shows_a_dash_for_a_missing_figure_and_not_rated(self) -> None:
        report = make_report()
        report.ratings[3] = report.ratings[3].model_copy(update={"rating": None, "rationale": None})
        html = render_report_html(report)
        assert "not rated" in html
        assert '<td class="num">—</td>' in html  # minutes to 90 % of the second alert

    def test_renders_an_exercise_that_never_started(self) -> None:
        report = make_report(
            timeline=[],
            inject_to_alert=[],
            alerts=[],
            expected_actions=[],
            glossary_findings=[],
            ratings=[],
            observations=[],
            strengths=[],
            areas_for_improvement=[],
            improvement_plan=[],
            reports=ReportFigures(received=0, triaged=0, by_category={}, by_status={}, median_minutes_to_triage=None),
        )
        html = render_report_html(report)
        assert html.count('role="img"') == 1  # only the reports chart, with its zeroes
        assert "No alert went out during the exercise." in html
        assert "not rated yet" in html

    def test_the_template_is_package_data(self) -> None:
        """A wheel carries the page's template: pyproject's package data names where page.py reads it from."""
        package = REPO / "backend" / "tocsin"
        globs = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
        shipped = {path for pattern in globs["package-data"]["tocsin"] for path in package.glob(pattern)}
        assert page.TEMPLATES / "report.html" in shipped


# ---- in Chromium -----------------------------------------------------------------------------------------------------


@dataclass
class OpenedPage:
    page: Page
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _need_chromium() -> None:
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    elif importlib.util.find_spec("playwright") is None:
        reason = "the playwright package is missing (pip install playwright; never `playwright install`)"
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"browser tests need Chromium: {reason} (CI=true: refusing to skip)")
    pytest.skip(f"browser tests need Chromium: {reason}")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-background-networking"]
        )
        yield browser
        browser.close()


@contextmanager
def _open(browser: Browser, html: str) -> Iterator[OpenedPage]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = OpenedPage(context.new_page())

    def refuse(route: Route) -> None:
        opened.requests.append(route.request.url)
        route.abort()

    def dismiss(dialog: Dialog) -> None:
        opened.dialogs.append(dialog.message)
        dialog.dismiss()

    opened.page.route("**/*", refuse)
    opened.page.on("request", lambda request: opened.requests.append(f"seen {request.url}"))
    opened.page.on("dialog", dismiss)
    opened.page.on("console", lambda message: opened.errors.append(message.text) if message.type == "error" else None)
    opened.page.on("pageerror", lambda error: opened.errors.append(str(error)))
    opened.page.set_content(html, wait_until="load")
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def opened(chromium: Browser) -> Iterator[OpenedPage]:
    with _open(chromium, render_report_html(make_report())) as page:
        yield page


class TestReportPageInChromium:
    def test_the_request_trap_catches_a_request(self, chromium: Browser) -> None:
        """The trap below is not vacuous: a page that does fetch something is caught."""
        with _open(chromium, '<img src="https://tocsin.invalid/pixel.png" alt="">') as control:
            control.page.wait_for_timeout(100)
            assert any("tocsin.invalid" in url for url in control.requests)

    def test_makes_no_request_and_runs_no_script(self, opened: OpenedPage) -> None:
        page = opened.page
        assert opened.requests == []
        assert opened.dialogs == []
        assert opened.errors == []
        assert page.locator("script").count() == 0
        cell = page.locator("#observations-table td.text", has_text="alert(1)")
        assert cell.is_visible()
        assert SCRIPT in cell.inner_text()
        assert LINK_IN_TEXT in cell.inner_text()
        assert cell.locator("a").count() == 0

    def test_charts_are_drawn(self, opened: OpenedPage) -> None:
        page = opened.page
        charts = page.locator("svg[role=img]")
        assert charts.count() == 6
        for index in range(charts.count()):
            chart = charts.nth(index)
            box = chart.bounding_box()
            assert box is not None
            assert box["width"] > 300, index
            assert box["height"] > 40, index
            assert chart.is_visible()
            assert (chart.get_attribute("aria-label") or "").strip()
        timeline = page.locator("#chart-timeline svg")
        assert timeline.locator(".marker").count() == len(make_report().timeline)
        tooltips = timeline.locator("title").all_text_contents()
        assert any(tip.startswith("00:50 · Injects · Inject 4: Storm drains") for tip in tooltips)
        assert page.locator("#chart-reach polyline").count() == 2
        assert page.locator("#chart-reach .guide").count() == 2
        assert page.locator("#chart-inject-to-alert .bar").count() == 2
        assert page.locator("#chart-inject-to-alert .deadline").count() == 3
        assert page.locator("#chart-rates .bar").count() == 3  # the second alert has no check-in rate: "—"
        box = page.locator("#chart-timeline .marker").first.bounding_box()
        assert box is not None
        assert box["width"] > 0

    def test_chart_texts_are_escaped_text(self, opened: OpenedPage) -> None:
        titles = opened.page.locator("#chart-rates title").all_text_contents()
        assert HEADLINE_B in titles
        assert opened.page.locator("svg tunnel").count() == 0

    def test_ratings_show_their_letters_and_a_legend(self, opened: OpenedPage) -> None:
        page = opened.page
        assert page.locator("#ratings-table td.rating").all_inner_texts() == ["S", "P", "M", "U"]
        legend = page.locator("#rating-legend").inner_text()
        for words in (
            "Performed without challenges",
            "Performed with some challenges",
            "Performed with major challenges",
            "Unable to be performed",
        ):
            assert words in legend

    def test_a_missing_alert_shows_no_alert(self, opened: OpenedPage) -> None:
        page = opened.page
        assert page.locator("#chart-inject-to-alert text", has_text="no alert").is_visible()
        row = page.locator("#inject-to-alert-table tbody tr").nth(1)
        assert "no alert" in row.inner_text()
        assert "—" in row.inner_text()
        assert row.locator("td.verdict").inner_text() == "missing"
        verdicts = page.locator("#inject-to-alert-table td.verdict").all_inner_texts()
        assert verdicts == ["on time", "missing", "late"]
        action = page.locator("#actions-table tbody tr", has=page.locator("th", has_text="A2"))
        assert action.locator("td.status").inner_text() == "missing"
        assert "inject 12" in action.inner_text()
        late = page.locator("#actions-table tbody tr", has=page.locator("th", has_text="A4"))
        assert late.locator("td.status").inner_text() == "late"

    def test_fits_the_window_and_prints(self, opened: OpenedPage) -> None:
        page = opened.page
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.emulate_media(media="print")
        assert not page.locator("nav.contents").is_visible()
        assert page.locator("svg[role=img]").first.is_visible()
        pdf = page.pdf(format="A4")
        assert pdf.startswith(b"%PDF")
        assert len(pdf) > 10_000
        assert opened.requests == []
