"""All geometry: GeoJSON in our API, CAP polygons and circles at the CAP boundary, shapely for the decisions.

Order of coordinates, the thing a reader most often gets wrong:
- GeoJSON (RFC 7946) and shapely: (lon, lat).
- CAP 1.2 `<polygon>` and `<circle>`: "lat,lon" pairs separated by spaces; circle radius in kilometres.
Everything is WGS 84 (EPSG:4326). Conversion between the two orders happens here and nowhere else.

Database-specific spatial SQL lives in `tocsin.backend`, not here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from tocsin.geocost import TooIntricate, count_self_crossings

# Bounds on what one alert may carry (CAP sets none; these protect the server and the phones).
MAX_VERTICES_PER_POLYGON = 100_000  # national boundaries in real feeds reach ~40,000
MAX_POLYGONS_PER_AREA = 100
MAX_CIRCLES_PER_AREA = 100
MAX_CIRCLE_RADIUS_KM = 2_000.0
CIRCLE_SEGMENTS = 64  # a 64-gon lies within 0.12 % of the true circle's radius
# The cost of targeting grows with the vertices of a whole message (every area of every info), a circle counting as
# its CIRCLE_SEGMENTS; a 2 MiB CAP file of plain polygons holds ~170,000.
MAX_VERTICES_PER_MESSAGE = 250_000
# Repairing a self-crossing outline costs more than quadratic time in its crossings (a 301-vertex star with ~44,000
# crossings took minutes and 2 GB with the default method). Real feeds cross themselves a few times at most, by a slip
# of the pen or a digitising error; an outline crossing itself more often is refused, not repaired.
MAX_SELF_CROSSINGS = 100
# Corners "on one line" are rarely exactly so in floating point: an outline whose area is below this fraction of its
# squared length is a line (a river corridor 100 km by 100 m has 2.5e-4; a circle 0.08).
DEGENERATE_AREA_RATIO = 1e-9
EARTH_KM_PER_DEGREE_LAT = 111.32


class GeometryError(ValueError):
    """Bad geometry. `field` is relative to the area ('polygon', 'geometry.coordinates[0]')."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Circle:
    lon: float
    lat: float
    radius_km: float


def _check_lon_lat(lon: float, lat: float, field: str) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise GeometryError("coordinates must be finite numbers", field)
    if not -180.0 <= lon <= 180.0:
        raise GeometryError(f"longitude {lon} is outside -180..180", field)
    if not -90.0 <= lat <= 90.0:
        raise GeometryError(f"latitude {lat} is outside -90..90", field)


def _check_ring(ring: Sequence[Sequence[float]], field: str) -> None:
    # Vectorised: a ring of 100,000 positions is checked in milliseconds, on the event loop, during validation.
    if len(ring) < 4:
        raise GeometryError("a polygon ring needs at least 4 positions (first repeated last)", field)
    if len(ring) > MAX_VERTICES_PER_POLYGON:
        raise GeometryError(f"a polygon has at most {MAX_VERTICES_PER_POLYGON} vertices", field)
    if not set(map(type, ring)) <= {list, tuple} or set(map(len, ring)) != {2}:
        raise GeometryError("a position is [longitude, latitude] (CAP polygons carry no altitude)", field)
    if not set(map(type, chain.from_iterable(ring))) <= {int, float}:  # bool is no number
        raise GeometryError("coordinates must be numbers", field)
    positions = np.array(ring, dtype=float)
    wrong = ~np.isfinite(positions).all(axis=1)
    wrong |= (np.abs(positions[:, 0]) > 180.0) | (np.abs(positions[:, 1]) > 90.0)
    if wrong.any():
        lon, lat = positions[int(np.argmax(wrong))]
        _check_lon_lat(float(lon), float(lat), field)
    if list(ring[0]) != list(ring[-1]):
        raise GeometryError("a polygon ring must be closed: its first and last positions must be equal", field)


def validate_geojson_area(geometry: dict[str, Any]) -> None:
    """Accepts a GeoJSON Polygon or MultiPolygon without holes (CAP polygons have none)."""
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    if kind not in ("Polygon", "MultiPolygon"):
        raise GeometryError("geometry must be a GeoJSON Polygon or MultiPolygon", "geometry.type")
    if not isinstance(coordinates, list) or not coordinates:
        raise GeometryError("coordinates must be a non-empty array", "geometry.coordinates")
    polygons = [coordinates] if kind == "Polygon" else coordinates
    if len(polygons) > MAX_POLYGONS_PER_AREA:
        raise GeometryError(f"an area has at most {MAX_POLYGONS_PER_AREA} polygons", "geometry.coordinates")
    for index, rings in enumerate(polygons):
        field = "geometry.coordinates" + ("" if kind == "Polygon" else f"[{index}]")
        if not isinstance(rings, list) or not rings:
            raise GeometryError("a polygon needs an exterior ring", field)
        if len(rings) > 1:
            raise GeometryError("polygons with holes cannot be expressed in CAP 1.2; send the exterior ring", field)
        ring = rings[0]
        if not isinstance(ring, list) or not all(isinstance(p, list | tuple) for p in ring):
            raise GeometryError("a ring is an array of [lon, lat] positions", field)
        _check_ring(ring, field + "[0]")


def geojson_polygon_rings(geometry: dict[str, Any] | None) -> list[list[list[float]]]:
    """The exterior rings of a validated Polygon/MultiPolygon, each a list of [lon, lat]."""
    if geometry is None:
        return []
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"][0]]
    return [rings[0] for rings in geometry["coordinates"]]


def rings_to_geojson(rings: list[list[list[float]]]) -> dict[str, Any] | None:
    if not rings:
        return None
    if len(rings) == 1:
        return {"type": "Polygon", "coordinates": [rings[0]]}
    return {"type": "MultiPolygon", "coordinates": [[ring] for ring in rings]}


# ---- CAP text forms -------------------------------------------------------------------------------------------


def parse_cap_polygon(text: str, field: str) -> list[list[float]]:
    """'lat,lon lat,lon ...' -> ring of [lon, lat]. CAP requires at least four pairs, first equal to last."""
    ring: list[list[float]] = []
    for pair in text.split():
        try:
            lat_text, lon_text = pair.split(",")
            lat, lon = float(lat_text), float(lon_text)
        except ValueError:
            raise GeometryError(f"'{pair[:40]}' is not a 'lat,lon' pair", field) from None
        _check_lon_lat(lon, lat, field)
        ring.append([lon, lat])
        if len(ring) > MAX_VERTICES_PER_POLYGON:
            raise GeometryError(f"a polygon has at most {MAX_VERTICES_PER_POLYGON} vertices", field)
    _check_ring(ring, field)
    return ring


def format_number(value: float) -> str:
    """Shortest text that reads back as the same float; no exponent, no trailing '.0'."""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{value:.10f}".rstrip("0").rstrip(".")
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def format_cap_polygon(ring: list[list[float]]) -> str:
    return " ".join(f"{format_number(lat)},{format_number(lon)}" for lon, lat in ring)


def parse_cap_circle(text: str, field: str) -> Circle:
    """'lat,lon radius_km' -> Circle."""
    try:
        centre, radius_text = text.split()
        lat_text, lon_text = centre.split(",")
        lat, lon, radius = float(lat_text), float(lon_text), float(radius_text)
    except ValueError:
        raise GeometryError("a circle is 'lat,lon radius' with the radius in km", field) from None
    _check_lon_lat(lon, lat, field)
    check_radius(radius, field)
    return Circle(lon=lon, lat=lat, radius_km=radius)


def check_radius(radius_km: float, field: str) -> None:
    if not math.isfinite(radius_km) or radius_km < 0 or radius_km > MAX_CIRCLE_RADIUS_KM:
        raise GeometryError(f"the radius must be between 0 and {MAX_CIRCLE_RADIUS_KM:g} km", field)


def check_circle(circle: Circle, field: str) -> None:
    _check_lon_lat(circle.lon, circle.lat, field)
    check_radius(circle.radius_km, field)


def format_cap_circle(circle: Circle) -> str:
    return f"{format_number(circle.lat)},{format_number(circle.lon)} {format_number(circle.radius_km)}"


# ---- decisions ----------------------------------------------------------------------------------------------


def circle_polygon(circle: Circle, segments: int = CIRCLE_SEGMENTS) -> BaseGeometry:
    """A polygon approximating the circle on the sphere (local equirectangular scale; exact enough below ~500 km)."""
    if circle.radius_km == 0:
        return Point(circle.lon, circle.lat)
    dlat = circle.radius_km / EARTH_KM_PER_DEGREE_LAT
    cos_lat = max(math.cos(math.radians(circle.lat)), 1e-6)
    dlon = circle.radius_km / (EARTH_KM_PER_DEGREE_LAT * cos_lat)
    angles = [2 * math.pi * i / segments for i in range(segments)]
    ring = [
        (
            max(-180.0, min(180.0, circle.lon + dlon * math.cos(a))),
            max(-90.0, min(90.0, circle.lat + dlat * math.sin(a))),
        )
        for a in angles
    ]
    return Polygon(ring)


def count_vertices(rings: Sequence[Sequence[Sequence[float]]], circle_count: int) -> int:
    """What targeting an area costs, in vertices (see MAX_VERTICES_PER_MESSAGE)."""
    return sum(len(ring) for ring in rings) + CIRCLE_SEGMENTS * circle_count


def _without_repeated_points(ring: Sequence[Sequence[float]]) -> np.ndarray:
    coordinates = np.asarray(ring, dtype=float)
    keep = np.ones(len(coordinates), dtype=bool)
    keep[1:] = np.any(coordinates[1:] != coordinates[:-1], axis=1)
    return coordinates[keep]


def _crossings(rings: Sequence[np.ndarray], limit: int, field: str) -> int:
    try:
        return count_self_crossings(rings, limit)
    except TooIntricate:
        raise GeometryError("the polygon is too intricate: too many of its edges overlap one another", field) from None


def check_overlay_cost(rings: Sequence[Sequence[Sequence[float]]], field: str) -> None:
    """Refuse outlines that overlap one another so much that their union (an area's targeting geometry, an alert's
    outline) would cost too much: the same bounded count, over all of them at once. A ring repeated verbatim (the same
    area in each language) counts once."""
    distinct = {ring.tobytes(): ring for ring in map(_without_repeated_points, rings) if len(ring) >= 4}
    if distinct:
        _crossings(list(distinct.values()), MAX_SELF_CROSSINGS * len(distinct), field)


def check_simple_area(geometry: dict[str, Any]) -> BaseGeometry:
    """A validated GeoJSON area whose outlines must not cross themselves or one another, nor enclose nothing (content
    such as scenario areas is refused, not repaired), checked at bounded cost: GEOS only sees it once the bounded
    count found no crossing."""
    rings = [_without_repeated_points(ring) for ring in geojson_polygon_rings(geometry)]
    if any(len(ring) < 4 for ring in rings) or _crossings(rings, 0, "geometry.coordinates"):
        raise GeometryError("the polygon is not valid: it crosses itself or encloses no area", "geometry.coordinates")
    shape = from_geojson(geometry)
    if not shape.is_valid or shape.area <= DEGENERATE_AREA_RATIO * shape.length**2:
        raise GeometryError("the polygon is not valid (self-intersecting?)", "geometry.coordinates")
    return shape


def area_polygon(ring: Sequence[Sequence[float]], field: str) -> BaseGeometry:
    """The polygon a ring bounds, repaired when it crosses itself a little (real CAP feeds sometimes do); refused
    when it crosses itself too often to repair cheaply, or encloses no area."""
    coordinates = _without_repeated_points(ring)
    if len(coordinates) < 4:
        raise GeometryError("the polygon encloses no area: it has fewer than three distinct corners", field)
    # Count crossings before GEOS sees the ring: its validity check alone takes 11 s on a 100,000-vertex star.
    crossings = _crossings([coordinates], MAX_SELF_CROSSINGS, field)
    if crossings > MAX_SELF_CROSSINGS:
        raise GeometryError(
            f"the polygon crosses itself at more than {MAX_SELF_CROSSINGS} points; send an outline that does not"
            " cross itself",
            field,
        )
    polygon = shapely.polygons(coordinates)
    if crossings or not shapely.is_valid(polygon):
        # 'structure' keeps what any ring encloses and costs ~n log n; the default 'linework' explodes on crossings.
        polygon = shapely.make_valid(polygon, method="structure", keep_collapsed=False)
    if polygon.is_empty or polygon.area <= DEGENERATE_AREA_RATIO * polygon.length**2:
        raise GeometryError("the polygon encloses no area: its corners lie on one line", field)
    return polygon


def targeting_geometry(
    rings: Sequence[Sequence[Sequence[float]]],
    circles: Sequence[Circle],
    ring_fields: Sequence[str] | None = None,
) -> BaseGeometry | None:
    """The area a device must lie in to be targeted: the union of the polygons and the circles. `ring_fields` names
    each ring in errors (default 'polygon[k]', as in CAP). CPU-bound: call it off the event loop."""
    parts: list[BaseGeometry] = [
        area_polygon(ring, ring_fields[k] if ring_fields is not None else f"polygon[{k}]")
        for k, ring in enumerate(rings)
    ]
    parts.extend(circle_polygon(circle) for circle in circles)
    if not parts:
        return None
    union = shapely.union_all(parts)
    return union if not union.is_empty else None


def union_geometries(geometries: Sequence[BaseGeometry]) -> BaseGeometry | None:
    if not geometries:
        return None
    return shapely.union_all(list(geometries))


def bbox(geometry: BaseGeometry) -> tuple[float, float, float, float]:
    min_lon, min_lat, max_lon, max_lat = geometry.bounds
    return float(min_lon), float(min_lat), float(max_lon), float(max_lat)


def covers_point(geometry: BaseGeometry, lon: float, lat: float) -> bool:
    """True when the point lies inside or on the boundary."""
    return bool(geometry.covers(Point(lon, lat)))


def to_geojson(geometry: BaseGeometry | None) -> dict[str, Any] | None:
    return None if geometry is None else dict(mapping(geometry))


def from_geojson(geometry: dict[str, Any]) -> BaseGeometry:
    return shape(geometry)


def to_ewkb_hex(geometry: BaseGeometry) -> str:
    """Hex EWKB with SRID 4326: PostGIS reads it as geometry input, SQLite stores it as text."""
    return str(shapely.to_wkb(shapely.set_srid(geometry, 4326), hex=True, include_srid=True))


def from_wkb_hex(value: str | bytes) -> BaseGeometry:
    return shapely.from_wkb(value)


def local_metres(lons: Sequence[float], lats: Sequence[float]) -> tuple[list[float], list[float]]:
    """Equirectangular projection around the points' mean latitude: metres, good to ~0.5 % across a city."""
    lat0 = math.radians(sum(lats) / len(lats)) if lats else 0.0
    kx = 111_320.0 * math.cos(lat0)
    return [lon * kx for lon in lons], [lat * 110_574.0 for lat in lats]


def dbscan(lons: Sequence[float], lats: Sequence[float], eps_m: float, min_points: int) -> list[int | None]:
    """Cluster label per point (None for noise), with PostGIS ST_ClusterDBSCAN's rules: a core point has at least
    `min_points` points (itself included) within `eps_m`; clusters are core points linked within eps, plus the border
    points within eps of a core point."""
    if not lons:
        return []
    xs, ys = local_metres(lons, lats)
    points = shapely.points(xs, ys)
    tree = shapely.STRtree(points)
    pairs = tree.query(points, predicate="dwithin", distance=eps_m)
    neighbours: list[list[int]] = [[] for _ in xs]
    for i, j in zip(pairs[0], pairs[1], strict=True):
        neighbours[int(i)].append(int(j))
    core = [len(n) >= min_points for n in neighbours]
    parent = list(range(len(xs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, near in enumerate(neighbours):
        if core[i]:
            for j in near:
                if core[j]:
                    parent[find(i)] = find(j)
    labels: list[int | None] = [None] * len(xs)
    roots: dict[int, int] = {}
    for i in range(len(xs)):
        if core[i]:
            labels[i] = roots.setdefault(find(i), len(roots))
    for i, near in enumerate(neighbours):
        if not core[i]:
            attached = next((labels[j] for j in near if core[j]), None)
            labels[i] = attached
    return labels
