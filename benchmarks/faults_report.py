"""What `faults.py` observed, compared with the database (the source of truth), as tables and a one-line summary.

Pure functions over plain data, so they can be checked without running the topology.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass
class DeviceDelivery:
    """One device's alerts, against every alert issued after it first connected."""

    received: set[str]
    missing: set[str]  # never arrived, not even in a snapshot
    snapshot_only: set[str]  # only in a snapshot, never as an `alert` message
    duplicated: list[str]  # alert ids received again as `alert` messages
    out_of_order: int  # `alert` messages whose seq was not above every seq before them (duplicates aside)
    replayed: int  # `alert` messages received as replay after a reconnect


def device_delivery(
    received: Sequence[tuple[int, str, str]], snapshot_ids: set[str], issued: dict[str, int], first_seq: int | None
) -> DeviceDelivery:
    """`received`: (seq, alert id, live|replay) in arrival order; `issued`: alert id -> seq from the database."""
    expected = {alert_id for alert_id, seq in issued.items() if first_seq is not None and seq > first_seq}
    got: set[str] = set()
    duplicated: list[str] = []
    out_of_order = 0
    highest = -1
    for seq, alert_id, _ in received:
        if alert_id in got:
            duplicated.append(alert_id)
        elif seq <= highest:
            out_of_order += 1
        got.add(alert_id)
        highest = max(highest, seq)
    not_received = expected - got
    return DeviceDelivery(
        received=got,
        missing=not_received - snapshot_ids,
        snapshot_only=not_received & snapshot_ids,
        duplicated=duplicated,
        out_of_order=out_of_order,
        replayed=sum(1 for _, _, how in received if how == "replay"),
    )


def phase_at(moment: float, timeline: Sequence[tuple[str, float, float]]) -> str:
    for name, start, end in timeline:
        if start <= moment < end:
            return name
    return timeline[-1][0] if timeline and moment >= timeline[-1][2] else "setup"


def connected_at(moment: float, intervals: Iterable[Sequence[float]], margin: float = 1.0) -> bool:
    """Whether a feed had been connected for `margin` seconds around `moment` (a report committed at the edge of a
    reconnect is not counted against the server)."""
    return any(start + margin <= moment <= end - margin for start, end in intervals)


@dataclass
class PhaseRow:
    reports_acked: int = 0
    reports_stored: int = 0
    reports_lost: int = 0
    feed_missed_connected: Counter[str] = field(default_factory=Counter)
    feed_missed_disconnected: Counter[str] = field(default_factory=Counter)
    alerts_issued: int = 0
    alerts_acknowledged_not_issued: int = 0
    deliveries_missing: int = 0
    deliveries_snapshot_only: int = 0


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def reports_by_phase(
    timeline: Sequence[tuple[str, float, float]],
    acked: dict[str, float],
    stored: dict[str, float],
    feeds: dict[str, tuple[dict[str, float], list[list[float]]]],
) -> dict[str, PhaseRow]:
    """Per phase: reports acknowledged, stored, lost (acknowledged, not stored), and per feed the stored reports it
    never showed, split by whether it was connected at the time."""
    rows: dict[str, PhaseRow] = {"setup": PhaseRow(), **{name: PhaseRow() for name, _, _ in timeline}}
    for report_id, moment in acked.items():
        row = rows[phase_at(moment, timeline)]
        row.reports_acked += 1
        row.reports_lost += report_id not in stored
    for report_id, moment in stored.items():
        row = rows[phase_at(moment, timeline)]
        row.reports_stored += 1
        for name, (seen, intervals) in feeds.items():
            if report_id in seen or not intervals or moment < intervals[0][0]:
                continue
            target = row.feed_missed_connected if connected_at(moment, intervals) else row.feed_missed_disconnected
            target[name] += 1
    return rows


@dataclass
class AlertRow:
    label: str
    seq: int | None
    devices_received: int
    messages: int
    snapshot_only: int
    missing: int
    api_delivered: int | None
    api_in_area: int | None
    devices_acked: int
    api_acknowledged: int | None
    db_acknowledged: int

    @property
    def reach_wrong(self) -> bool:
        return self.api_delivered != self.devices_received or self.api_acknowledged != self.devices_acked


def runs_per_second(samples: Sequence[tuple[float, int]], window: float) -> list[tuple[float, float]]:
    """From (time, cumulative count) samples, the rate over each trailing window, stamped with the window's end.
    A count that went down (statistics reset) starts over."""
    rates = []
    start = 0
    for end in range(1, len(samples)):
        if samples[end][1] < samples[end - 1][1]:
            start = end
            continue
        while start < end and samples[end][0] - samples[start + 1][0] >= window:
            start += 1
        elapsed = samples[end][0] - samples[start][0]
        if elapsed >= window:
            rates.append((samples[end][0], (samples[end][1] - samples[start][1]) / elapsed))
    return rates


def summary_line(problems: Sequence[str]) -> str:
    if not problems:
        return "faults: OK - nothing acknowledged was lost, every alert reached every device once and in order"
    return "faults: FAIL - " + "; ".join(problems)
