"""Inline SVG charts for the after-action report page (page.py), built by hand on the server.

No JavaScript, no fonts, no external resources: each function returns markup that is safe to put in the page as is,
because every text and attribute value goes through `escape` (exercise texts come from users). Charts carry
`role="img"`, an `aria-label` and a `<title>`; the page repeats their numbers in tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from tocsin.exercises.schemas import AlertFigures, InjectToAlert, TimelineEntry, TimelineKind

WIDTH = 960
LABEL_CHARS = 38
# Okabe & Ito's palette: told apart by people with the common colour-vision deficiencies.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#8c6d00")
ON_TIME, LATE, MISSING, INK, GRID = "#009e73", "#d55e00", "#b00020", "#1f2933", "#d5dbe1"

LANES: dict[TimelineKind, tuple[str, str]] = {
    TimelineKind.clock: ("Clock", "#6b7280"),
    TimelineKind.inject: ("Injects", "#0072b2"),
    TimelineKind.contingency: ("Contingencies", "#d55e00"),
    TimelineKind.alert: ("Alerts", "#b00020"),
    TimelineKind.scripted: ("Scripted actions", "#009e73"),
    TimelineKind.player_action: ("Player actions", "#e69f00"),
    TimelineKind.triage: ("Triage", "#56b4e9"),
    TimelineKind.observation: ("Observations", "#cc79a7"),
}

Attribute = str | float | None


# ---- formatting (also used by the page's template filters) ----------------------------------------------------------


def format_clock(seconds: float | None) -> str:
    """Scenario time as hh:mm from the start of the exercise."""
    if seconds is None:
        return "—"
    sign = "−" if seconds < 0 else ""
    hours, minutes = divmod(round(abs(seconds) / 60), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def format_number(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    text = f"{value:.{digits}f}"
    return text[: -(digits + 1)] if digits and text.endswith("." + "0" * digits) else text


def format_percent(share: float | None) -> str:
    return "—" if share is None else f"{format_number(share * 100)} %"


def shorten(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# ---- SVG building blocks --------------------------------------------------------------------------------------------


def element(tag: str, attributes: Mapping[str, Attribute], *children: str) -> Markup:
    """One SVG element; attribute values and plain-string children are escaped, Markup children kept."""
    rendered = "".join(
        f' {name}="{escape(format_number(value) if isinstance(value, float) else value)}"'
        for name, value in attributes.items()
        if value is not None
    )
    inner = Markup("").join(escape(child) for child in children)
    return Markup(f"<{tag}{rendered}>{inner}</{tag}>")


def _svg(label: str, height: float, *children: str) -> Markup:
    attributes: dict[str, Attribute] = {
        "role": "img",
        "aria-label": label,
        "viewBox": f"0 0 {WIDTH} {format_number(height)}",
        "class": "chart",
        "font-size": "12",
    }
    return element("svg", attributes, element("title", {}, label), *children)


def _text(x: float, y: float, text: str, *, anchor: str = "start", **extra: Attribute) -> Markup:
    return element("text", {"x": float(x), "y": float(y), "text-anchor": anchor, "fill": INK, **extra}, text)


def _line(x1: float, y1: float, x2: float, y2: float, colour: str = GRID, **extra: Attribute) -> Markup:
    points = {"x1": float(x1), "y1": float(y1), "x2": float(x2), "y2": float(y2)}
    return element("line", {**points, "stroke": colour, **extra})


@dataclass(frozen=True)
class Scale:
    """Maps 0..maximum onto start..start+length (a negative length runs upwards, for a y axis)."""

    maximum: float
    start: float
    length: float

    def __call__(self, value: float) -> float:
        return self.start + self.length * min(max(value, 0.0), self.maximum) / self.maximum


@dataclass(frozen=True)
class Key:
    label: str
    colour: str
    line: bool = False


def _legend(keys: Sequence[Key], x: float, y: float, *, vertical: bool = False) -> Markup:
    parts: list[Markup] = []
    for key in keys:
        if key.line:
            parts.append(_line(x, y - 4, x + 14, y - 4, key.colour, **{"stroke-width": "2", "stroke-dasharray": "4 3"}))
        else:
            parts.append(
                element("rect", {"x": float(x), "y": float(y - 10), "width": "14", "height": "10", "fill": key.colour})
            )
        parts.append(_text(x + 20, y, shorten(key.label, 90)))
        if vertical:
            y += 18
        else:
            x += 40 + 7 * len(key.label)
    return element("g", {"class": "legend"}, *parts)


def nice_step(span: float, most: int, candidates: Sequence[float] = ()) -> float:
    """The smallest round step that cuts span into at most `most` pieces."""
    for step in candidates:
        if span / step <= most:
            return step
    raw = max(span, 1e-9) / most
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _axis(scale: Scale, top: float, bottom: float, ticks: float, label: Callable[[float], str]) -> Markup:
    """Vertical grid lines with their labels under the plot."""
    parts: list[Markup] = []
    count = int(scale.maximum / ticks + 1e-9)
    for index in range(count + 1):
        x = scale(index * ticks)
        parts += [_line(x, top, x, bottom), _text(x, bottom + 14, label(index * ticks), anchor="middle")]
    return element("g", {"class": "axis"}, *parts)


# ---- timeline -------------------------------------------------------------------------------------------------------


def _marker(entry: TimelineEntry, x: float, y: float, colour: str) -> Markup:
    what = f"Inject {entry.number}: {entry.title}" if entry.number is not None else entry.title
    tooltip = f"{format_clock(entry.scenario_seconds)} · {LANES[entry.kind][0]} · {what}"
    if entry.detail:
        tooltip += f" — {shorten(entry.detail, 200)}"
    title = element("title", {}, tooltip)
    common: dict[str, Attribute] = {"class": f"marker marker-{entry.kind.value}", "fill": colour, "stroke": "#fff"}
    if entry.kind is TimelineKind.alert:
        points = f"{x:.1f},{y - 7:.1f} {x + 7:.1f},{y:.1f} {x:.1f},{y + 7:.1f} {x - 7:.1f},{y:.1f}"
        return element("polygon", {**common, "points": points}, title)
    if entry.kind is TimelineKind.contingency:
        points = f"{x:.1f},{y - 7:.1f} {x + 7:.1f},{y + 6:.1f} {x - 7:.1f},{y + 6:.1f}"
        return element("polygon", {**common, "points": points}, title)
    if entry.kind in (TimelineKind.scripted, TimelineKind.player_action, TimelineKind.triage):
        return element("rect", {**common, "x": x - 5, "y": y - 5, "width": "10", "height": "10"}, title)
    return element("circle", {**common, "cx": x, "cy": y, "r": "5.5"}, title)


def timeline_chart(entries: Sequence[TimelineEntry], duration_seconds: float) -> Markup:
    """One lane per kind of entry, scenario time across."""
    kinds = [kind for kind in TimelineKind if any(entry.kind is kind for entry in entries)]
    lane, top, left = 34.0, 8.0, 150.0
    bottom = top + lane * len(kinds)
    end_minutes = max([duration_seconds / 60, 1.0, *(entry.scenario_seconds / 60 for entry in entries)])
    step = nice_step(end_minutes, 12, (5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720))
    scale = Scale(math.ceil(end_minutes / step) * step, left, WIDTH - left - 24)
    parts = [_axis(scale, top, bottom, step, lambda m: format_clock(m * 60))]
    for row, kind in enumerate(kinds):
        label, colour = LANES[kind]
        y = top + lane * row + lane / 2
        parts += [_text(left - 10, y + 4, label, anchor="end"), _line(left, y, WIDTH - 24, y, "#9aa5b1")]
        parts += [_marker(e, scale(e.scenario_seconds / 60), y, colour) for e in entries if e.kind is kind]
    label = f"Timeline of the exercise: {len(entries)} events in {len(kinds)} lanes over scenario time (hh:mm)"
    return _svg(label, bottom + 24, *parts)


# ---- inject to alert ------------------------------------------------------------------------------------------------


def _delay_bar(row: InjectToAlert, scale: Scale, middle: float) -> Markup:
    if row.minutes_to_alert is None:
        return _text(scale.start + 6, middle + 4, "no alert", fill=MISSING, **{"font-weight": "bold"})
    colour = {True: ON_TIME, False: LATE, None: "#6b7280"}[row.on_time]
    verdict = {True: "on time", False: "late", None: "not judged"}[row.on_time]
    shown = f"{format_number(row.minutes_to_alert)} min"
    width = max(scale(row.minutes_to_alert) - scale.start, 1.0)
    bar: dict[str, Attribute] = {"x": scale.start, "y": middle - 8, "width": width, "height": "16", "fill": colour}
    tooltip = element("title", {}, f"{shown} to the first alert ({verdict})")
    return element(
        "g", {}, element("rect", {**bar, "class": "bar"}, tooltip), _text(scale.start + width + 6, middle + 4, shown)
    )


def _delay_row(row: InjectToAlert, scale: Scale, y: float, height: float) -> Markup:
    """One triggering inject: its label, its bar (or "no alert") and its deadline."""
    middle = y + height / 2
    full = f"Inject {row.inject}: {row.inject_title} — {row.action}" + (f" ({row.area})" if row.area else "")
    name = element(
        "text",
        {"x": scale.start - 8, "y": middle + 4, "text-anchor": "end", "fill": INK},
        shorten(f"Inject {row.inject} · {row.area or row.action}"),
        element("title", {}, full),
    )
    deadline = (row.deadline_seconds - row.inject_seconds) / 60
    dash = {"stroke-width": "2", "stroke-dasharray": "4 3", "class": "deadline"}
    mark = element(
        "g",
        {},
        _line(scale(deadline), y + 2, scale(deadline), y + height - 2, INK, **dash),
        element("title", {}, f"Deadline: {format_number(deadline)} min after the inject"),
    )
    return element("g", {"class": "delay"}, name, _delay_bar(row, scale, middle), mark)


def inject_to_alert_chart(rows: Sequence[InjectToAlert]) -> Markup:
    """Minutes from each triggering inject to the first alert, with each row's deadline as a dashed mark."""
    top, row_height, left = 30.0, 30.0, 300.0
    longest = max(
        [1.0, *((r.deadline_seconds - r.inject_seconds) / 60 for r in rows), *(r.minutes_to_alert or 0.0 for r in rows)]
    )
    step = nice_step(longest * 1.1, 8, (1, 2, 5, 10, 15, 20, 30, 60, 120))
    scale = Scale(math.ceil(longest * 1.1 / step) * step, left, WIDTH - left - 80)
    bottom = top + row_height * len(rows)
    keys = [Key("on time", ON_TIME), Key("late", LATE), Key("deadline", INK, line=True)]
    parts = [_legend(keys, left, 14), _axis(scale, top, bottom, step, lambda m: f"{format_number(m)} min")]
    parts += [_delay_row(row, scale, top + index * row_height, row_height) for index, row in enumerate(rows)]
    missing = sum(1 for row in rows if row.minutes_to_alert is None)
    label = f"Minutes from each triggering inject to the first alert: {len(rows)} expected, {missing} with no alert"
    return _svg(label, bottom + 24, *parts)


# ---- reach curves ---------------------------------------------------------------------------------------------------


def _curve(alert: AlertFigures, x: Scale, y: Scale, colour: str) -> Markup:
    points = sorted(alert.reach_curve, key=lambda point: point.seconds)
    path = " ".join(f"{x(p.seconds / 60):.1f},{y(p.share):.1f}" for p in points)
    dots = [
        element(
            "circle",
            {"cx": x(p.seconds / 60), "cy": y(p.share), "r": "2.5", "fill": colour},
            element(
                "title", {}, f"{alert.headline}: {format_percent(p.share)} after {format_number(p.seconds / 60)} min"
            ),
        )
        for p in points
    ]
    line = element("polyline", {"points": path, "fill": "none", "stroke": colour, "stroke-width": "2"})
    return element("g", {"class": "curve"}, element("title", {}, alert.headline), line, *dots)


def reach_chart(alerts: Sequence[AlertFigures]) -> Markup:
    """Share of the affected devices reached over the scenario minutes after each alert went out."""
    top, plot_height, left = 12.0, 260.0, 70.0
    bottom = top + plot_height
    end_minutes = max([1.0, *(p.seconds / 60 for alert in alerts for p in alert.reach_curve)])
    step = nice_step(end_minutes, 10, (0.5, 1, 2, 5, 10, 15, 30, 60))
    x = Scale(math.ceil(end_minutes / step) * step, left, WIDTH - left - 24)
    y = Scale(1.0, bottom, -plot_height)
    parts = [_axis(x, top, bottom, step, lambda m: f"{format_number(m)} min")]
    for share in (0.0, 0.25, 0.75, 1.0):
        parts += [
            _line(left, y(share), x(x.maximum), y(share)),
            _text(left - 8, y(share) + 4, format_percent(share), anchor="end"),
        ]
    for share in (0.5, 0.9):
        guide = {"stroke-width": "1.5", "stroke-dasharray": "6 4", "class": "guide"}
        parts += [
            _line(left, y(share), x(x.maximum), y(share), INK, **guide),
            _text(left - 8, y(share) + 4, format_percent(share), anchor="end", **{"font-weight": "bold"}),
        ]
    colours = [PALETTE[index % len(PALETTE)] for index in range(len(alerts))]
    parts += [_curve(alert, x, y, colour) for alert, colour in zip(alerts, colours, strict=True)]
    parts.append(_text((left + x(x.maximum)) / 2, bottom + 30, "minutes after the alert went out", anchor="middle"))
    keys = [Key(alert.headline, colour) for alert, colour in zip(alerts, colours, strict=True)]
    parts.append(_legend(keys, left, bottom + 56, vertical=True))
    label = f"Reach of {len(alerts)} alerts: share of affected devices reached over the minutes after issue, "
    return _svg(label + "with 50 % and 90 % guide lines", bottom + 50 + 18 * len(alerts), *parts)


# ---- horizontal bars (grouped) --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BarGroup:
    label: str
    values: tuple[float | None, ...]


def bar_chart(
    label: str,
    groups: Sequence[BarGroup],
    series: Sequence[str],
    *,
    maximum: float | None = None,
    value_text: Callable[[float | None], str] = format_number,
) -> Markup:
    """Horizontal bars, one group per row label and one bar per series; a missing value shows "—"."""
    bar, gap, left = 16.0, 12.0, 260.0
    top = 30.0 if len(series) > 1 else 8.0
    group_height = bar * len(series) + gap
    biggest = max([1.0, *(v for g in groups for v in g.values if v is not None)])
    step = nice_step(maximum if maximum is not None else biggest, 5)
    scale = Scale(maximum if maximum is not None else math.ceil(biggest / step) * step, left, WIDTH - left - 90)
    bottom = top + group_height * len(groups)
    colours = [PALETTE[index % len(PALETTE)] for index in range(len(series))]
    parts = [_axis(scale, top, bottom, step, value_text)]
    if len(series) > 1:
        parts.append(_legend([Key(name, colour) for name, colour in zip(series, colours, strict=True)], left, 14))
    for row, group in enumerate(groups):
        y = top + row * group_height + gap / 2
        name = element(
            "text",
            {"x": left - 8, "y": y + bar * len(series) / 2 + 4, "text-anchor": "end", "fill": INK},
            shorten(group.label),
            element("title", {}, group.label),
        )
        parts.append(name)
        for index, (value, colour) in enumerate(zip(group.values, colours, strict=True)):
            parts.append(
                _bar(scale, y + index * bar, bar - 2, value, colour, f"{group.label} · {series[index]}", value_text)
            )
    return _svg(label, bottom + 24, *parts)


def _bar(
    scale: Scale,
    y: float,
    height: float,
    value: float | None,
    colour: str,
    name: str,
    value_text: Callable[[float | None], str],
) -> Markup:
    shown = value_text(value)
    if value is None:
        return _text(scale.start + 6, y + height - 3, shown)
    width = max(scale(value) - scale.start, 1.0)
    rect: dict[str, Attribute] = {
        "x": scale.start,
        "y": y,
        "width": width,
        "height": float(height),
        "fill": colour,
        "class": "bar",
    }
    return element(
        "g",
        {},
        element("rect", rect, element("title", {}, f"{name}: {shown}")),
        _text(scale.start + width + 6, y + height - 3, shown),
    )
