"""POST /api/v1/glossary/lint and GET /api/v1/alerts/{id}/lint on both backends: deprecated and non-preferred terms,
terms to explain, inflected forms in every language."""

from __future__ import annotations

from typing import Any

import pytest

from tests.alerts.factories import alert_body, info
from tests.conftest import Harness
from tests.glossary.factories import content, load_content
from tocsin.auth.schemas import Role
from tocsin.glossary.schemas import Concept, ConceptStatus


async def lint(h: Harness, text: str, lang: str) -> list[dict[str, Any]]:
    response = await h.client.post("/api/v1/glossary/lint", json={"text": text, "lang": lang})
    assert response.status_code == 200, response.text
    findings: list[dict[str, Any]] = response.json()["findings"]
    for finding in findings:
        assert text[finding["start"] : finding["end"]] == finding["text"]
    return findings


def spans(findings: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(f["text"], f["kind"], f["concept_id"]) for f in findings]


class TestInflectedForms:
    @pytest.mark.parametrize(
        ("lang", "text", "span", "preferred"),
        [
            ("en", "Evacuations of the lower town start at 18:00.", "Evacuations", "evacuation"),
            ("fr", "Les évacuations du quartier commencent à 18 h.", "évacuations", "évacuation"),
            ("de", "Die Evakuierungen im Stadtteil beginnen um 18 Uhr.", "Evakuierungen", "Evakuierung"),
            ("it", "Le evacuazioni del quartiere iniziano alle 18.", "evacuazioni", "evacuazione"),
            ("es", "Las evacuaciones del barrio empiezan a las 18.", "evacuaciones", "evacuación"),
            ("nl", "De evacuaties beginnen om 18 uur.", "evacuaties", "evacuatie"),
            ("pt", "As evacuações começam às 18 horas.", "evacuações", "evacuação"),
            ("pl", "Ewakuacji mieszkańców nie przewidziano.", "Ewakuacji", "ewakuacja"),
            ("el", "Η εκκένωση ξεκινά στις 18:00.", "εκκένωση", "εκκένωση"),
        ],
    )
    async def test_an_inflected_term_is_explained(
        self, harness: Harness, lang: str, text: str, span: str, preferred: str
    ) -> None:
        await load_content(harness)
        findings = await lint(harness, text, lang)
        assert spans(findings) == [(span, "explain", "evacuation")]
        assert findings[0]["preferred"] == preferred
        assert findings[0]["plain"] == content()["evacuation"].term(lang).plain

    @pytest.mark.parametrize(
        ("lang", "text", "span"),
        [
            ("en", "Floods are expected along the river.", "Floods"),
            ("fr", "Des inondations sont attendues.", "inondations"),
            ("de", "Überschwemmungen werden erwartet.", "Überschwemmungen"),
            ("it", "Sono previste alluvioni in pianura.", "alluvioni"),
            ("es", "Se esperan inundaciones en la costa.", "inundaciones"),
            ("pl", "Możliwe są powodzie w dolinach.", "powodzie"),
            ("el", "Αναμένονται πλημμύρες στην πεδιάδα.", "πλημμύρες"),
        ],
    )
    async def test_an_inflected_hazard_term_is_found(self, harness: Harness, lang: str, text: str, span: str) -> None:
        await load_content(harness)
        findings = await lint(harness, text, lang)
        assert [(f["text"], f["concept_id"]) for f in findings] == [(span, "flood")]

    async def test_multi_word_term_with_an_inflected_word(self, harness: Harness) -> None:
        await load_content(harness)
        findings = await lint(harness, "Residents shelter in places of safety; they are sheltered in place.", "en")
        assert spans(findings) == [("shelter in places", "explain", "shelter-in-place")]
        findings = await lint(harness, "They were sheltered in place.", "en")
        assert spans(findings) == [("sheltered in place", "explain", "shelter-in-place")]

    async def test_an_alternative_label_written_exactly_is_non_preferred(self, harness: Harness) -> None:
        await load_content(harness)
        findings = await lint(harness, "Residents are sheltering in place until noon.", "en")
        assert spans(findings) == [("sheltering in place", "non_preferred", "shelter-in-place")]
        assert findings[0]["preferred"] == "shelter in place"


class TestFindings:
    async def test_non_preferred_terms_get_the_preferred_one(self, harness: Harness) -> None:
        await load_content(harness)
        findings = await lint(harness, "Desalojo de la zona. Fin de alerta a las 20.", "es")
        assert spans(findings) == [
            ("Desalojo", "non_preferred", "evacuation"),
            ("Fin de alerta", "explain", "all-clear"),
        ]
        assert findings[0]["preferred"] == "evacuación"

    async def test_a_misspelling_listed_as_hidden_label_is_non_preferred(self, harness: Harness) -> None:
        await load_content(harness)
        findings = await lint(harness, "Evacuaton of the valley.", "en")
        assert spans(findings) == [("Evacuaton", "non_preferred", "evacuation")]

    async def test_the_longest_match_wins_and_a_concept_is_explained_once(self, harness: Harness) -> None:
        await load_content(harness)
        text = "The evacuation order covers the valley. The evacuation order stays. Evacuation starts now."
        findings = await lint(harness, text, "en")
        assert spans(findings) == [
            ("evacuation order", "explain", "evacuation-order"),
            ("Evacuation", "explain", "evacuation"),
        ]

    async def test_every_use_of_a_deprecated_term_points_at_the_replacement(self, harness: Harness) -> None:
        concepts = dict(content())
        river = concepts["river-flood"].model_dump()
        concepts["river-flood"] = Concept.model_validate(
            {**river, "status": ConceptStatus.deprecated, "replaced_by": "flood"}
        )
        await load_content(harness, concepts)
        findings = await lint(harness, "A river flood is possible. Another river flood follows.", "en")
        assert spans(findings) == [
            ("river flood", "deprecated", "river-flood"),
            ("river flood", "deprecated", "river-flood"),
        ]
        assert findings[0]["preferred"] == "flood"
        assert findings[0]["replaced_by"] == "flood"

    async def test_a_term_does_not_run_across_a_sentence_break(self, harness: Harness) -> None:
        await load_content(harness)
        findings = await lint(harness, "Leave before the evacuation. Order is kept by the police.", "en")
        assert spans(findings) == [("evacuation", "explain", "evacuation")]

    async def test_plain_text_has_no_findings(self, harness: Harness) -> None:
        await load_content(harness)
        assert await lint(harness, "Please keep calm and check on your neighbours.", "en") == []
        assert await lint(harness, "", "en") == []

    async def test_hyphen_and_apostrophe_forms_match(self, harness: Harness) -> None:
        await load_content(harness)
        assert spans(await lint(harness, "All-clear at 20:00.", "en")) == [("All-clear", "explain", "all-clear")]
        assert spans(await lint(harness, "Fin d’alerte à 20 h.", "fr")) == [("Fin d’alerte", "explain", "all-clear")]

    async def test_bounds_are_refused_naming_the_field(self, harness: Harness) -> None:
        too_long = await harness.client.post("/api/v1/glossary/lint", json={"text": "a" * 20_001, "lang": "en"})
        assert too_long.status_code == 422
        assert too_long.json()["error"]["field"] == "text"
        unknown = await harness.client.post("/api/v1/glossary/lint", json={"text": "flood", "lang": "sv"})
        assert unknown.status_code == 422
        assert unknown.json()["error"]["field"] == "lang"


class TestAlertLint:
    async def test_findings_per_info_and_field_in_each_language(self, harness: Harness) -> None:
        await load_content(harness)
        body = alert_body(
            info=[
                info(
                    "it-IT", headline="Allerta alluvioni", description="Possibili evacuazioni.", instruction="Salite."
                ),
                info("en", headline="Flood warning", description="Evacuations may follow.", instruction="Go up."),
                info("sv-SE", headline="Översvämning", description="Evakuering.", instruction="Gå upp."),
            ]
        )
        operator = await harness.user("olga", Role.operator)
        created = await harness.client.post("/api/v1/alerts", json=body, headers=operator)
        assert created.status_code == 201, created.text
        response = await harness.client.get(f"/api/v1/alerts/{created.json()['id']}/lint", headers=operator)
        assert response.status_code == 200, response.text
        infos = response.json()["infos"]
        assert [(i["index"], i["language"], i["lang"]) for i in infos] == [
            (0, "it-IT", "it"),
            (1, "en", "en"),
            (2, "sv-SE", None),
        ]
        italian = infos[0]["fields"]
        assert [(f["text"], f["concept_id"]) for f in italian["headline"]] == [
            ("Allerta", "alert"),
            ("alluvioni", "flood"),
        ]
        assert [(f["text"], f["concept_id"]) for f in italian["description"]] == [("evacuazioni", "evacuation")]
        assert italian["instruction"] == []
        english = infos[1]["fields"]
        assert [(f["text"], f["concept_id"]) for f in english["headline"]] == [
            ("Flood", "flood"),
            ("warning", "warning"),
        ]
        assert [(f["text"], f["concept_id"]) for f in english["description"]] == [("Evacuations", "evacuation")]
        assert infos[2]["fields"] == {"headline": [], "description": [], "instruction": []}

    async def test_needs_staff_and_an_existing_alert(self, harness: Harness) -> None:
        created = await harness.client.post(
            "/api/v1/alerts", json=alert_body("en"), headers=await harness.user("olga", Role.operator)
        )
        alert_id = created.json()["id"]
        assert (await harness.client.get(f"/api/v1/alerts/{alert_id}/lint")).status_code == 401
        editor = await harness.user("gina", Role.glossary_editor)
        assert (await harness.client.get(f"/api/v1/alerts/{alert_id}/lint", headers=editor)).status_code == 200
        missing = await harness.client.get("/api/v1/alerts/00000000-0000-0000-0000-000000000000/lint", headers=editor)
        assert missing.status_code == 404
