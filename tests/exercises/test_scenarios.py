"""Every scenario in scenarios/ loads through the schema, its geometry is valid, and every reference resolves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from tocsin.exercises.scenario import Scenario, check_references, load_scenario, minutes

FILES = sorted((REPO / "scenarios").glob("*.yaml"))
TEMPLATES = {path.stem for path in (REPO / "alerts").glob("*.yaml")}
REQUIRED_PLACES = ["Faenza", "Heidelberg", "Setúbal", "Kalamaria", "Gdańsk", "Karlsruhe"]


class TestScenarioFiles:
    @pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
    def test_loads_and_every_reference_resolves(self, path: Path) -> None:
        scenario = load_scenario(path)
        assert check_references(scenario, TEMPLATES) == []
        assert len(scenario.timeline) >= 12

    @pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
    def test_areas_lie_near_the_place(self, path: Path) -> None:
        from tocsin import geo

        scenario = load_scenario(path)
        lon, lat = scenario.place.centre
        for area in scenario.areas:
            west, south, east, north = geo.bbox(geo.from_geojson(area.geometry))
            assert west - 1 <= lon <= east + 1, area.id
            assert south - 1 <= lat <= north + 1, area.id

    def test_the_seven_scenarios_are_there(self) -> None:
        scenarios = [load_scenario(path) for path in FILES]
        assert len(scenarios) >= 7
        places = " ".join(s.place.name for s in scenarios)
        for place in REQUIRED_PLACES:
            assert place in places, place
        assert any(s.hazard == "digital-breakdown" for s in scenarios)


class TestChecks:
    def test_unknown_area_is_reported(self) -> None:
        scenario = load_scenario(FILES[0])
        broken = scenario.model_copy(deep=True)
        broken.population.distribution[0].area = "atlantis"
        assert "population.distribution: unknown area 'atlantis'" in check_references(broken, TEMPLATES)

    def test_injects_out_of_order_are_reported(self) -> None:
        scenario = load_scenario(FILES[0])
        broken = scenario.model_copy(deep=True)
        broken.timeline[0], broken.timeline[1] = broken.timeline[1], broken.timeline[0]
        if minutes(broken.timeline[0].at) == minutes(broken.timeline[1].at):
            pytest.skip("the first two injects share a time")
        assert "timeline: injects are not in time order" in check_references(broken, TEMPLATES)

    def test_schema_refuses_a_self_intersecting_area(self) -> None:
        data = load_scenario(FILES[0]).model_dump()
        data["areas"][0]["geometry"] = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
        with pytest.raises(ValueError, match="not valid"):
            Scenario.model_validate(data)
