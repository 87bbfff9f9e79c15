"""Every template in alerts/ loads through the schema and renders in every language; drafts start from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.alerts.factories import FAENZA, INSIDE_FAENZA
from tests.conftest import REPO, Harness
from tocsin.alerts import templates
from tocsin.alerts.schemas import Info
from tocsin.auth.schemas import Role
from tocsin.errors import InvalidInput

FILES = sorted((REPO / "alerts").glob("*.yaml"))
REQUIRED = {
    "flood",
    "flash-flood",
    "power-outage",
    "telecom-outage",
    "chemical-release",
    "earthquake",
    "large-fire",
    "all-clear",
}


class TestTemplateFiles:
    def test_required_hazards_are_covered(self) -> None:
        assert REQUIRED <= {path.stem for path in FILES}

    @pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
    def test_template_loads_and_renders_every_language(self, path: Path) -> None:
        template = templates.load_template(path)
        for language in templates.TEMPLATE_LANGUAGES:
            rendered = templates.render_info(template, language, template.examples())
            info = Info.model_validate({**rendered, "area": []})
            assert info.headline
            assert len(info.headline) <= templates.MAX_HEADLINE
            assert info.description
            assert info.instruction
            assert info.event
            assert "{{" not in info.description + info.instruction + info.headline

    def test_missing_variable_is_refused_by_name(self) -> None:
        template = templates.load_template(REPO / "alerts" / "flood.yaml")
        name = sorted(template.variables)[0]
        values = {k: v for k, v in template.examples().items() if k != name}
        with pytest.raises(InvalidInput) as refused:
            templates.render_info(template, "en", values)
        assert refused.value.field == f"variables.{name}"

    def test_undeclared_variable_in_a_text_fails_the_schema(self, tmp_path: Path) -> None:
        source = (REPO / "alerts" / "flood.yaml").read_text(encoding="utf-8")
        broken = source.replace("{{ area_name }}", "{{ nowhere }}", 1)
        (tmp_path / "flood.yaml").write_text(broken, encoding="utf-8")
        with pytest.raises(ValueError, match="nowhere"):
            templates.load_template(tmp_path / "flood.yaml")


class TestFromTemplate:
    async def test_draft_from_template_has_one_info_per_language_over_the_area(self, harness: Harness) -> None:
        operator = await harness.user("olga", Role.operator)
        listing = await harness.client.get("/api/v1/alert-templates", headers=operator)
        flood = next(t for t in listing.json() if t["id"] == "flood")
        values = {name: variable["example"] for name, variable in flood["variables"].items()}
        body = {
            "template": "flood",
            "languages": ["it", "en", "de"],
            "variables": values,
            "area": {"areaDesc": "Faenza", "geometry": FAENZA},
        }
        response = await harness.client.post("/api/v1/alerts/from-template", json=body, headers=operator)
        assert response.status_code == 201, response.text
        alert = response.json()
        assert alert["origin"] == "template"
        assert alert["template_id"] == "flood"
        assert [i["language"] for i in alert["cap"]["info"]] == ["it", "en", "de"]
        assert all(i["area"][0]["areaDesc"] == "Faenza" for i in alert["cap"]["info"])
        assert alert["expires_at"] is not None
        lon, lat = INSIDE_FAENZA
        found = await harness.client.get("/api/v1/alerts", params={"lat": lat, "lon": lon}, headers=operator)
        assert [f["id"] for f in found.json()["features"]] == [alert["id"]]

    async def test_unknown_template_and_language_are_refused(self, harness: Harness) -> None:
        operator = await harness.user("olga", Role.operator)
        area = {"areaDesc": "Faenza", "geometry": FAENZA}
        unknown = await harness.client.post(
            "/api/v1/alerts/from-template", json={"template": "meteor", "area": area}, headers=operator
        )
        assert unknown.status_code == 404
        assert unknown.json()["error"]["field"] == "template"
        language = await harness.client.post(
            "/api/v1/alerts/from-template",
            json={"template": "flood", "languages": ["en", "xx"], "area": area},
            headers=operator,
        )
        assert language.status_code == 422
        assert language.json()["error"]["field"] == "languages[1]"

    async def test_missing_variable_names_it(self, harness: Harness) -> None:
        operator = await harness.user("olga", Role.operator)
        body = {"template": "flood", "area": {"areaDesc": "Faenza", "geometry": FAENZA}}
        response = await harness.client.post("/api/v1/alerts/from-template", json=body, headers=operator)
        assert response.status_code == 422
        assert response.json()["error"]["field"].startswith("variables.")
