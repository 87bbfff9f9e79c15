"""benchmarks/faults.py: its options and the pure checks it applies to what it observed (the fault run itself is a
benchmark, run by hand: it starts its own PostgreSQL cluster and takes minutes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import faults  # noqa: E402
from faults_report import device_delivery, reports_by_phase, runs_per_second  # noqa: E402


def test_parse_args_defaults_to_every_fault_and_200_devices() -> None:
    args = faults.parse_args([])
    assert args.faults == list(faults.FAULTS)
    assert args.timing.devices == 200


def test_parse_args_quick_with_chosen_faults_keeps_the_fixed_order() -> None:
    args = faults.parse_args(["--quick", "--faults", "pg-restart,worker-kill", "--devices", "10"])
    assert args.faults == ["worker-kill", "pg-restart"]
    assert args.timing.devices == 10
    assert args.timing.outage == faults.QUICK.outage


def test_parse_args_refuses_an_unknown_fault() -> None:
    with pytest.raises(SystemExit):
        faults.parse_args(["--faults", "disk-full"])


def test_device_delivery_finds_missing_duplicated_out_of_order_and_snapshot_only() -> None:
    issued = {"a": 3, "b": 4, "c": 5, "d": 6, "old": 1}
    received = [(3, "a", "live"), (5, "c", "live"), (4, "b", "replay"), (5, "c", "replay")]
    found = device_delivery(received, snapshot_ids={"d"}, issued=issued, first_seq=2)
    assert found.missing == set()
    assert found.snapshot_only == {"d"}
    assert found.duplicated == ["c"]
    assert found.out_of_order == 1
    assert found.replayed == 2
    assert "old" not in found.received  # issued before the device first connected: not expected


def test_device_delivery_reports_an_alert_that_never_arrived() -> None:
    found = device_delivery([(3, "a", "live")], snapshot_ids=set(), issued={"a": 3, "b": 4}, first_seq=0)
    assert found.missing == {"b"}


def test_reports_by_phase_counts_lost_reports_and_feed_misses_by_connection() -> None:
    timeline = [("baseline", 0.0, 10.0), ("redis-restart", 10.0, 20.0)]
    acked = {"r1": 1.0, "r2": 12.0, "r3": 13.0}
    stored = {"r1": 1.0, "r3": 13.0, "r4": 15.0}
    feed = ({"r1": 1.5}, [[0.0, 14.0], [16.0, 30.0]])
    rows = reports_by_phase(timeline, acked, stored, {"feed-1": feed})
    assert rows["redis-restart"].reports_lost == 1  # r2: acknowledged, never stored
    assert rows["redis-restart"].feed_missed_connected["feed-1"] == 1  # r3, while connected
    assert rows["redis-restart"].feed_missed_disconnected["feed-1"] == 1  # r4, between two connections
    assert rows["baseline"].reports_lost == 0


def test_runs_per_second_over_a_window_and_after_a_reset() -> None:
    samples = [(float(t), 2 * t) for t in range(12)] + [(12.0, 0), (13.0, 1)]
    rates = runs_per_second(samples, window=10.0)
    assert rates == [(10.0, 2.0), (11.0, 2.0)]
