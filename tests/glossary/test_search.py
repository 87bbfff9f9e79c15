"""GET /api/v1/glossary/search and the concept routes, on both backends: across languages, case and accents aside,
German transliterations, typos."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Harness
from tests.glossary.factories import load_content
from tocsin.glossary.schemas import LANGUAGES


async def search(h: Harness, q: str, **params: str) -> list[dict[str, Any]]:
    response = await h.client.get("/api/v1/glossary/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()
    return hits


class TestSearch:
    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("evacuaton", "evacuation"),  # a hidden misspelling
            ("evacuatoin", "evacuation"),  # a typo nobody listed
            ("EVACUATION", "evacuation"),
            ("Überschwemmung", "flood"),
            ("uberschwemmung", "flood"),
            ("ueberschwemmung", "flood"),
            ("evacuacion", "evacuation"),  # accent left out
            ("σεισμος", "earthquake"),  # Greek without its accent
            ("πλημμύρα", "flood"),
            ("shelter-in-place", "shelter-in-place"),
            ("digital breakdown", "digital-breakdown"),
            ("erthquake", "earthquake"),
        ],
    )
    async def test_finds_the_concept(self, harness: Harness, query: str, expected: str) -> None:
        await load_content(harness)
        hits = await search(harness, query)
        assert hits, query
        assert hits[0]["concept_id"] == expected

    async def test_answer_names_the_match_and_the_preferred_label_in_the_asked_language(self, harness: Harness) -> None:
        await load_content(harness)
        hit = (await search(harness, "ueberschwemmung", lang="it"))[0]
        assert hit == {
            "concept_id": "flood",
            "label": "Überschwemmung",
            "lang": "de",
            "kind": "alt",
            "pref": "alluvione",
            "status": "active",
            "replaced_by": None,
            "score": 100.0,
        }

    async def test_exact_matches_come_before_prefixes_and_typos(self, harness: Harness) -> None:
        await load_content(harness)
        hits = await search(harness, "flood", lang="en", limit="10")
        assert hits[0]["concept_id"] == "flood"
        assert hits[0]["score"] == 100.0
        scores = [hit["score"] for hit in hits]
        assert len(hits) > 1
        assert scores[1] < 100.0

    async def test_lang_ranks_that_language_first(self, harness: Harness) -> None:
        await load_content(harness)
        # "terremoto" is the preferred label in Italian and Spanish and an alternative one in Portuguese.
        hit = (await search(harness, "terremoto", lang="pt"))[0]
        assert (hit["concept_id"], hit["lang"], hit["pref"]) == ("earthquake", "pt", "sismo")

    async def test_nothing_matches_nonsense(self, harness: Harness) -> None:
        await load_content(harness)
        assert await search(harness, "xqzvw") == []

    async def test_bounds_are_refused_naming_the_field(self, harness: Harness) -> None:
        for params, field in (
            ({"q": "x" * 201}, "q"),
            ({"q": ""}, "q"),
            ({"q": "?!"}, "q"),
            ({"q": "a", "lang": "sv"}, "lang"),
        ):
            response = await harness.client.get("/api/v1/glossary/search", params=params)
            assert response.status_code == 422, params
            assert response.json()["error"]["field"] == field

    async def test_index_follows_changes(self, harness: Harness) -> None:
        assert await search(harness, "flood") == []
        await load_content(harness)
        assert (await search(harness, "flood"))[0]["concept_id"] == "flood"


class TestConcepts:
    async def test_concept_with_all_its_languages(self, harness: Harness) -> None:
        await load_content(harness)
        response = await harness.client.get("/api/v1/glossary/concepts/all-clear")
        assert response.status_code == 200
        body = response.json()
        assert body["version"] == 1
        assert body["updated_by"] is None  # shown to staff only
        assert list(body["concept"]["terms"]) == list(LANGUAGES)
        assert body["concept"]["terms"]["de"]["pref"] == "Entwarnung"
        staff = await harness.client.get("/api/v1/glossary/concepts/all-clear", headers=await harness.user("olga"))
        assert staff.json()["updated_by"] == "files"

    async def test_unknown_concept_is_404(self, harness: Harness) -> None:
        response = await harness.client.get("/api/v1/glossary/concepts/no-such-thing")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "concept_not_found"

    async def test_list_filters_by_domain(self, harness: Harness) -> None:
        await load_content(harness)
        everything = (await harness.client.get("/api/v1/glossary/concepts")).json()
        assert len(everything) >= 120
        hazards = (await harness.client.get("/api/v1/glossary/concepts", params={"domain": "hazard"})).json()
        assert hazards
        assert all(c["domain"] == "hazard" for c in hazards)
        flood = next(c for c in hazards if c["id"] == "flood")
        assert flood["pref"]["el"] == "πλημμύρα"
