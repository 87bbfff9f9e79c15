"""The targeting geometry of an alert's areas, computed off the event loop with the cost of the whole message bounded
first; an area that cannot be repaired cheaply is refused with the field that names it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tocsin import geo
from tocsin.alerts.schemas import Area, CapAlert
from tocsin.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class AreaShape:
    info_index: int
    area_index: int
    area_desc: str
    geometry: Any  # shapely geometry, or None for an area of geocodes only


def _ring_fields(area: Area, cap_names: bool) -> list[str]:
    """How errors name each polygon of an area: as in the CAP XML it came in, or as in our JSON."""
    count = len(area.polygon_rings())
    if cap_names:
        return [f"polygon[{k}]" for k in range(count)]
    if area.geometry is not None and area.geometry["type"] == "Polygon":
        return ["geometry.coordinates[0]"]
    return [f"geometry.coordinates[{k}][0]" for k in range(count)]


def _area_shapes(message: CapAlert, cap_names: bool) -> list[AreaShape]:
    """The targeting geometry of every area, with the whole message's cost bounded first. CPU-bound: run it off the
    event loop (`area_shapes`)."""
    vertices = sum(geo.count_vertices(a.polygon_rings(), len(a.circles)) for info in message.info for a in info.area)
    if vertices > geo.MAX_VERTICES_PER_MESSAGE:
        raise InvalidInput(
            f"the areas of one message have at most {geo.MAX_VERTICES_PER_MESSAGE} vertices in all (a circle counts"
            f" {geo.CIRCLE_SEGMENTS}); this one has {vertices}",
            field="info",
            code="invalid_cap" if cap_names else None,
        )
    try:
        geo.check_overlay_cost([ring for info in message.info for a in info.area for ring in a.polygon_rings()], "info")
    except geo.GeometryError as exc:
        raise InvalidInput(f"info: {exc}", field="info", code="invalid_cap" if cap_names else None) from None
    shapes = []
    for i, info in enumerate(message.info):
        for j, area in enumerate(info.area):
            circles = [c.to_circle() for c in area.circles]
            try:
                geometry = geo.targeting_geometry(area.polygon_rings(), circles, _ring_fields(area, cap_names))
            except geo.GeometryError as exc:
                field = f"info[{i}].area[{j}].{exc.field}"
                raise InvalidInput(f"{field}: {exc}", field=field, code="invalid_cap" if cap_names else None) from None
            shapes.append(AreaShape(i, j, area.areaDesc, geometry))
    return shapes


async def area_shapes(message: CapAlert, *, cap_names: bool = False) -> list[AreaShape]:
    return await asyncio.to_thread(_area_shapes, message, cap_names)
