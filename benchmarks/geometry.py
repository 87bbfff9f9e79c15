"""What one alert's geometry costs, before and after bounding it.

    .venv/bin/python benchmarks/geometry.py [--old-limit 30]

For each shape, the old targeting (shapely.make_valid in its default 'linework' method) runs in a child process that
is killed after --old-limit seconds (the 301-vertex star runs for minutes and takes gigabytes), and the new one
(`tocsin.geo.targeting_geometry`: bounded crossing count, then 'structure' repair, or a refusal) in this process.
Then the parse and schema validation of a 2 MiB CAP message, which now runs off the event loop. Prints seconds.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

import shapely  # noqa: E402
from shapely.geometry import Polygon  # noqa: E402

from tocsin import geo  # noqa: E402
from tocsin.alerts import cap  # noqa: E402

Ring = list[list[float]]


def star(vertices: int, skip: int) -> Ring:
    ring = [
        [
            11.88 + 0.01 * math.cos(2 * math.pi * i * skip / vertices),
            44.29 + 0.01 * math.sin(2 * math.pi * i * skip / vertices),
        ]
        for i in range(vertices)
    ]
    return [*ring, ring[0]]


def circle(vertices: int) -> Ring:
    ring = [
        [11.88 + 0.2 * math.cos(2 * math.pi * i / vertices), 44.29 + 0.2 * math.sin(2 * math.pi * i / vertices)]
        for i in range(vertices)
    ]
    return [*ring, ring[0]]


def old_targeting(ring: Ring) -> None:
    polygon = Polygon(ring)
    shapely.union_all([polygon if polygon.is_valid else shapely.make_valid(polygon)])


def new_targeting(ring: Ring) -> str:
    try:
        geo.targeting_geometry([ring], [])
    except geo.GeometryError as exc:
        return f"refused ({exc})"
    return "accepted"


def timed_in_child(function: Callable[[Ring], None], ring: Ring, limit: float) -> str:
    child = multiprocessing.Process(target=function, args=(ring,))
    started = time.perf_counter()
    child.start()
    child.join(limit)
    if child.is_alive():
        child.kill()
        child.join()
        return f"> {limit:.0f} s (killed)"
    return f"{time.perf_counter() - started:.2f} s"


def big_cap() -> bytes:
    geocodes = "".join(f"<geocode><valueName>ISTAT</valueName><value>{n:06d}</value></geocode>" for n in range(460))
    areas = "".join(f"<area><areaDesc>District {k}</areaDesc>{geocodes}</area>" for k in range(64))
    return (
        '<?xml version="1.0"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>bench</identifier>'
        "<sender>bench@example.org</sender><sent>2030-01-01T00:00:00+00:00</sent><status>Actual</status>"
        "<msgType>Alert</msgType><scope>Public</scope><info><category>Met</category><event>Flood</event>"
        "<urgency>Expected</urgency><severity>Minor</severity><certainty>Likely</certainty>"
        f"{areas}</info></alert>"
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-limit", type=float, default=30.0, help="seconds before the old code is killed")
    args = parser.parse_args()
    shapes = {
        "star, 101 positions": star(100, 49),
        "star, 301 positions": star(300, 149),
        "star, 100,001 positions": star(100_000, 49_999),
        "valid outline, 40,001 positions": circle(40_000),
        "valid outline, 100,001 positions": circle(100_000),
    }
    print(f"{'shape':34} {'old (linework)':>20} {'new':>10}  outcome")
    for name, ring in shapes.items():
        old = timed_in_child(old_targeting, ring, args.old_limit)
        started = time.perf_counter()
        outcome = new_targeting(ring)
        print(f"{name:34} {old:>20} {time.perf_counter() - started:>8.2f} s  {outcome[:60]}")
    data = big_cap()
    started = time.perf_counter()
    cap.parse_cap(data, 2_097_152)
    print(f"CAP parse + schema validation, {len(data):,} bytes: {time.perf_counter() - started:.2f} s (off the loop)")


if __name__ == "__main__":
    main()
