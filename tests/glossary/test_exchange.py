"""SKOS (Turtle, JSON-LD) and CSV out and back in, on both backends: the triples, the round trip into an empty
database, proposals from an import, and every bad file refused with the field at fault."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from rdflib import RDF, Graph, Literal, URIRef
from rdflib.namespace import DCTERMS, OWL, SKOS

from tests.conftest import Harness, _truncate
from tests.glossary.factories import content, load_content
from tocsin.auth.schemas import Role
from tocsin.glossary import csvtable, skos
from tocsin.glossary.schemas import Concept

BASE = "http://testserver/api/v1/glossary/concepts/"
TYPES = {"ttl": "text/turtle", "jsonld": "application/ld+json", "csv": "text/csv"}


async def export(h: Harness, fmt: str) -> bytes:
    response = await h.client.get("/api/v1/glossary/export", params={"format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(TYPES[fmt])
    return response.content


async def import_file(
    h: Harness, data: bytes, fmt: str, *, apply: bool = True, reason: str = "round trip", user: str = "gina"
) -> tuple[int, dict[str, Any]]:
    response = await h.client.post(
        "/api/v1/glossary/import",
        params={"reason": reason, "apply": str(apply).lower()},
        content=data,
        headers={**await h.user(user, Role.glossary_editor), "Content-Type": TYPES[fmt]},
    )
    return response.status_code, response.json()


async def concepts_in(h: Harness) -> dict[str, Concept]:
    summaries = (await h.client.get("/api/v1/glossary/concepts")).json()
    found = {}
    for summary in summaries:
        body = (await h.client.get(f"/api/v1/glossary/concepts/{summary['id']}")).json()
        found[summary["id"]] = Concept.model_validate(body["concept"])
    return found


class TestSkosExport:
    @pytest.mark.parametrize("fmt", ["ttl", "jsonld"])
    async def test_triples(self, harness: Harness, fmt: str) -> None:
        await load_content(harness)
        graph = Graph().parse(data=await export(harness, fmt), format="turtle" if fmt == "ttl" else "json-ld")
        flood = URIRef(BASE + "flood")
        scheme = URIRef("http://testserver/api/v1/glossary")
        assert (scheme, RDF.type, SKOS.ConceptScheme) in graph
        assert len(set(graph.subjects(RDF.type, SKOS.Concept))) == len(content())
        assert (flood, RDF.type, SKOS.Concept) in graph
        assert (flood, SKOS.inScheme, scheme) in graph
        assert (flood, SKOS.prefLabel, Literal("Hochwasser", lang="de")) in graph
        assert (flood, SKOS.altLabel, Literal("Überschwemmung", lang="de")) in graph
        assert (flood, SKOS.hiddenLabel, Literal("flod", lang="en")) in graph
        assert len(list(graph.objects(flood, SKOS.prefLabel))) == 9
        assert len(list(graph.objects(flood, SKOS.definition))) == 9
        plain = content()["flood"].term("en").plain
        assert (flood, skos.TOCSIN.plainExplanation, Literal(plain, lang="en")) in graph
        assert (flood, SKOS.broader, URIRef(BASE + "natural-hazard")) in graph
        assert (URIRef(BASE + "natural-hazard"), SKOS.narrower, flood) in graph
        assert (flood, SKOS.related, URIRef(BASE + "heavy-rain")) in graph
        assert (flood, SKOS.notation, Literal("OET-081", datatype=skos.OET_DATATYPE)) in graph
        assert (flood, DCTERMS.source, Literal("EU Floods Directive 2007/60/EC")) in graph
        assert (flood, skos.TOCSIN.domain, Literal("hazard")) in graph
        assert (flood, OWL.deprecated, None) not in graph

    async def test_deprecated_concept_is_marked_and_names_its_replacement(self, harness: Harness) -> None:
        concepts = dict(content())
        river_fields = concepts["river-flood"].model_dump()
        concepts["river-flood"] = Concept.model_validate(
            {**river_fields, "status": "deprecated", "replaced_by": "flood"}
        )
        await load_content(harness, concepts)
        graph = Graph().parse(data=await export(harness, "ttl"), format="turtle")
        river = URIRef(BASE + "river-flood")
        assert (river, OWL.deprecated, Literal(True)) in graph
        assert (river, DCTERMS.isReplacedBy, URIRef(BASE + "flood")) in graph


class TestCsvExport:
    async def test_one_row_per_concept_and_language(self, harness: Harness) -> None:
        await load_content(harness)
        rows = list(csv.DictReader(io.StringIO((await export(harness, "csv")).decode("utf-8"))))
        assert len(rows) == 9 * len(content())
        assert list(rows[0]) == list(csvtable.COLUMNS)
        flood_de = next(r for r in rows if r["id"] == "flood" and r["lang"] == "de")
        assert flood_de["pref"] == "Hochwasser"
        assert flood_de["alt"] == "Überschwemmung | Überflutung"
        assert (flood_de["event_code_name"], flood_de["event_code_value"]) == ("OET:v1.2", "OET-081")
        assert flood_de["broader"] == "natural-hazard"


class TestRoundTrip:
    @pytest.mark.parametrize("fmt", ["ttl", "jsonld", "csv"])
    async def test_export_then_import_into_an_empty_database_gives_the_same_concepts(
        self, harness: Harness, fmt: str
    ) -> None:
        await load_content(harness)
        data = await export(harness, fmt)
        await _truncate(harness.database)
        harness.tokens.clear()
        status, body = await import_file(harness, data, fmt)
        assert status == 200, body
        assert len(body["created"]) == len(content())
        assert body["applied"] is True
        imported = await concepts_in(harness)
        assert set(imported) == set(content())
        for concept_id, original in content().items():
            if fmt == "csv":  # CSV keeps every list's order
                assert imported[concept_id] == original, concept_id
            else:  # RDF keeps no order: the same members
                assert imported[concept_id].canonical() == original.canonical(), concept_id

    @pytest.mark.parametrize("fmt", ["ttl", "jsonld", "csv"])
    async def test_importing_the_export_again_changes_nothing(self, harness: Harness, fmt: str) -> None:
        await load_content(harness)
        status, body = await import_file(harness, await export(harness, fmt), fmt)
        assert status == 200, body
        assert body["created"] == body["updated"] == []
        assert len(body["unchanged"]) == len(content())
        flood = (await harness.client.get("/api/v1/glossary/concepts/flood")).json()
        assert flood["version"] == 1
        assert flood["concept"] == content()["flood"].model_dump(mode="json")


class TestImport:
    async def test_import_without_apply_creates_proposals(self, harness: Harness) -> None:
        await load_content(harness)
        data = await export(harness, "csv")
        text = data.decode("utf-8").replace(",alluvione,inondazione | allagamento,", ",alluvione,inondazione | piena,")
        status, body = await import_file(harness, text.encode("utf-8"), "csv", apply=False, reason="from the regions")
        assert status == 200, body
        assert body["updated"] == ["flood"]
        assert len(body["proposals"]) == 1
        proposal = (
            await harness.client.get(
                f"/api/v1/glossary/proposals/{body['proposals'][0]}", headers=await harness.user("olga")
            )
        ).json()
        assert (proposal["kind"], proposal["status"], proposal["reason"]) == ("update", "pending", "from the regions")
        assert proposal["document"]["terms"]["it"]["alt"] == ["inondazione", "piena"]
        assert (await harness.client.get("/api/v1/glossary/concepts/flood")).json()["version"] == 1
        approve = await harness.client.post(
            f"/api/v1/glossary/proposals/{proposal['id']}/approve",
            headers=await harness.user("ugo", Role.glossary_editor),
        )
        assert approve.status_code == 200, approve.text
        assert (await harness.client.get("/api/v1/glossary/concepts/flood")).json()["version"] == 2

    async def test_only_a_glossary_editor_imports(self, harness: Harness) -> None:
        response = await harness.client.post(
            "/api/v1/glossary/import",
            params={"reason": "x"},
            content=b"id\n",
            headers={**await harness.user("olga", Role.operator), "Content-Type": "text/csv"},
        )
        assert response.status_code == 403

    @pytest.mark.parametrize(
        ("fmt", "data", "field"),
        [
            ("csv", b"id,domain\nflood,hazard\n", "header"),
            ("csv", b"\xff\xfe not utf-8", "file"),
            ("ttl", b"this is not turtle .", "file"),
            ("ttl", b"@prefix skos: <http://www.w3.org/2004/02/skos/core#> .\n<urn:x> a skos:Collection .", "file"),
            ("jsonld", b'{"@context": "https://example.org/context.jsonld", "@id": "urn:x"}', "@context"),
            ("jsonld", b'{"@context": {"@import": "https://example.org/c"}, "@id": "urn:x"}', "@context.@import"),
            ("jsonld", b"[1, 2", "file"),
        ],
    )
    async def test_bad_files_are_refused_naming_the_field(
        self, harness: Harness, fmt: str, data: bytes, field: str
    ) -> None:
        status, body = await import_file(harness, data, fmt)
        assert status == 422, body
        assert body["error"]["field"] == field

    async def test_a_concept_with_a_missing_language_is_refused_by_id_and_field(self, harness: Harness) -> None:
        await load_content(harness)
        data = (await export(harness, "csv")).decode("utf-8")
        lines = [line for line in data.splitlines() if not line.startswith("flood,hazard") or ",el," not in line]
        status, body = await import_file(harness, "\n".join(lines).encode("utf-8"), "csv")
        assert status == 422
        assert body["error"]["field"] == "concepts.flood.terms"
        assert (await harness.client.get("/api/v1/glossary/concepts/flood")).json()["version"] == 1

    async def test_an_import_that_breaks_a_reference_is_refused_whole(self, harness: Harness) -> None:
        await load_content(harness)
        graph = Graph().parse(data=await export(harness, "ttl"), format="turtle")
        graph.add((URIRef(BASE + "flood"), SKOS.broader, URIRef(BASE + "nowhere")))
        status, body = await import_file(harness, graph.serialize(format="turtle").encode("utf-8"), "ttl")
        assert status == 422
        assert body["error"]["field"] == "concepts.flood.broader[1]"

    async def test_unsupported_content_type_and_oversized_file(self, harness: Harness) -> None:
        headers = await harness.user("gina", Role.glossary_editor)
        xml = await harness.client.post(
            "/api/v1/glossary/import",
            params={"reason": "x"},
            content=b"<rdf/>",
            headers={**headers, "Content-Type": "application/rdf+xml"},
        )
        assert xml.status_code == 415
        assert xml.json()["error"]["field"] == "content-type"
        big = await harness.client.post(
            "/api/v1/glossary/import",
            params={"reason": "x"},
            content=b"a" * (5 * 1024 * 1024 + 1),
            headers={**headers, "Content-Type": "text/csv"},
        )
        assert big.status_code == 413
        # Between the JSON limit (1 MiB) and 5 MB the import route still reads the file.
        middle = await harness.client.post(
            "/api/v1/glossary/import",
            params={"reason": "x"},
            content=json.dumps({"@id": "urn:x", "pad": "a" * 2_000_000}).encode(),
            headers={**headers, "Content-Type": "application/ld+json"},
        )
        assert middle.status_code == 422
        assert middle.json()["error"]["field"] == "file"

    async def test_missing_reason_is_refused(self, harness: Harness) -> None:
        response = await harness.client.post(
            "/api/v1/glossary/import",
            content=b"",
            headers={**await harness.user("gina", Role.glossary_editor), "Content-Type": "text/csv"},
        )
        assert response.status_code == 422
        assert response.json()["error"]["field"] == "reason"
