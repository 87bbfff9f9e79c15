"""The synthetic citizens of an exercise before they connect: who they are and where they live.

Each device lives somewhere in the scenario's areas (by the population's distribution), speaks one of its languages,
may be vulnerable, and may have the app open at all (the scenario's connected_share). The random choices come from
the exercise's seed, so a rerun brings up the same population (but for the device ids: see `build_devices`).
"""

from __future__ import annotations

import asyncio
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from tocsin import geo
from tocsin.exercises.scenario import Scenario
from tocsin.exercises.simulation.links import Link

MAX_SAMPLING_ROUNDS = 50


@dataclass
class SyntheticDevice:
    device_id: str
    area: str
    home: tuple[float, float]
    lang: str
    vulnerable: bool
    connected: bool  # has the app open at all (the scenario's connected_share)
    location: tuple[float, float] = (0.0, 0.0)
    link: Link | None = None
    online: bool = False
    cut_off: bool = False
    last_seq: int | None = None
    received: set[str] = field(default_factory=set)
    pending: dict[str, str] = field(default_factory=dict)  # report id -> message, until acknowledged
    queued_offline: set[str] = field(default_factory=set)
    back_online: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Receipt:
    alert_id: str
    device_id: str
    at: Any
    scenario_seconds: float


def random_points(shape: BaseGeometry, count: int, rng: random.Random) -> list[tuple[float, float]]:
    """Uniform points inside `shape` by rejection in its bounding box (vectorised)."""
    min_x, min_y, max_x, max_y = shape.bounds
    points: list[tuple[float, float]] = []
    generator = np.random.default_rng(rng.randrange(2**32))
    for _ in range(MAX_SAMPLING_ROUNDS):  # a sliver of a polygon must not hold the event loop
        if len(points) >= count:
            break
        xs = generator.uniform(min_x, max_x, max(64, count * 2))
        ys = generator.uniform(min_y, max_y, max(64, count * 2))
        inside = shapely.contains_xy(shape, xs, ys)
        points.extend(zip(xs[inside].tolist(), ys[inside].tolist(), strict=True))
    inside = shape.representative_point()
    points += [(inside.x, inside.y)] * (count - len(points))
    return points[:count]


def _weighted_counts(total: int, shares: list[tuple[str, float]]) -> dict[str, int]:
    """Split `total` by shares, largest remainders first, so the counts add up exactly."""
    weight = sum(share for _, share in shares)
    raw = [(key, total * share / weight) for key, share in shares]
    counts = {key: int(value) for key, value in raw}
    left = total - sum(counts.values())
    for key, _ in sorted(raw, key=lambda kv: kv[1] - int(kv[1]), reverse=True)[:left]:
        counts[key] += 1
    return counts


def build_devices(scenario: Scenario, *, exercise_id: str, count: int, seed: int) -> list[SyntheticDevice]:
    rng = random.Random(seed)
    population = scenario.population
    shapes = {area.id: geo.from_geojson(area.geometry) for area in scenario.areas}
    per_area = _weighted_counts(count, [(s.area, s.share) for s in population.distribution])
    languages = [(language.lang, language.share) for language in population.languages]
    devices: list[SyntheticDevice] = []
    for area, area_count in per_area.items():
        for point in random_points(shapes[area], area_count, rng):
            lang = rng.choices([lang for lang, _ in languages], weights=[share for _, share in languages])[0]
            devices.append(
                SyntheticDevice(
                    # Random, not derived from the exercise: nobody can post as (or read the reports of) a synthetic
                    # citizen by guessing its id. The rest of the population still follows the seed.
                    device_id=f"x-{secrets.token_urlsafe(24)}",
                    area=area,
                    home=point,
                    location=point,
                    lang=lang,
                    vulnerable=rng.random() < population.vulnerable_share,
                    connected=rng.random() < population.behaviour.connected_share,
                )
            )
    return devices
