"""The glossary as SKOS, in Turtle and JSON-LD, built and read with rdflib.

Mapping (docs/glossary.md has the table):

- the glossary: `skos:ConceptScheme` at `{public_url}/api/v1/glossary`; concepts without `broader` are its top
  concepts.
- a concept: `skos:Concept` at `{public_url}/api/v1/glossary/concepts/{id}`, `dct:identifier` its id,
  `tocsin:domain` its domain.
- `skos:prefLabel`, `skos:altLabel`, `skos:hiddenLabel`, `skos:definition`: language-tagged literals.
- the plain explanation: `tocsin:plainExplanation` (a sub-property of `skos:note`), language-tagged. Not
  `skos:scopeNote`, which says how a concept is to be used in indexing, not what a citizen should understand.
- `skos:broader` (and its inverse `skos:narrower`, which import ignores), `skos:related`.
- the OASIS event code: `skos:notation "OET-081"^^tocsin:OET-v1.2` (the datatype names the code list).
- sources: `dct:source` literals. A deprecated concept: `owl:deprecated true` and `dct:isReplacedBy`.

RDF keeps no order: lists come back sorted (the service keeps a concept's own order when the members are the same).
Import reads JSON-LD only with inline contexts; a remote `@context` or `@import` is refused, never fetched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError
from rdflib import RDF, RDFS, XSD, BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, OWL, SKOS
from rdflib.term import Node

from tocsin.errors import InvalidInput, field_path
from tocsin.glossary.schemas import LANGUAGES, OET_VALUE_NAME, Concept, ConceptStatus, ExportFormat

TOCSIN = Namespace("https://w3id.org/tocsin/ns#")
OET_DATATYPE = TOCSIN["OET-v1.2"]
SCHEME_PATH = "/api/v1/glossary"
CONCEPT_PATH = "/api/v1/glossary/concepts/"
JSONLD_CONTEXT: dict[str, str] = {
    "skos": str(SKOS),
    "dct": str(DCTERMS),
    "owl": str(OWL),
    "rdfs": str(RDFS),
    "xsd": str(XSD),
    "tocsin": str(TOCSIN),
}
MEDIA_TYPES = {
    ExportFormat.ttl: "text/turtle",
    ExportFormat.jsonld: "application/ld+json",
    ExportFormat.csv: "text/csv",
}


def concept_uri(base_url: str, concept_id: str) -> URIRef:
    return URIRef(base_url.rstrip("/") + CONCEPT_PATH + concept_id)


def to_graph(concepts: Iterable[Concept], *, base_url: str) -> Graph:
    graph = Graph()
    for prefix, namespace in JSONLD_CONTEXT.items():
        graph.bind(prefix, Namespace(namespace))
    scheme = URIRef(base_url.rstrip("/") + SCHEME_PATH)
    graph.add((scheme, RDF.type, SKOS.ConceptScheme))
    graph.add((scheme, DCTERMS.title, Literal("Tocsin crisis glossary", lang="en")))
    plain = TOCSIN.plainExplanation
    graph.add((plain, RDF.type, OWL.AnnotationProperty))
    graph.add((plain, RDFS.subPropertyOf, SKOS.note))
    graph.add((plain, RDFS.label, Literal("plain-language explanation for citizens", lang="en")))
    for concept in concepts:
        _add_concept(graph, concept, scheme, base_url)
    return graph


def _add_concept(graph: Graph, concept: Concept, scheme: URIRef, base_url: str) -> None:
    uri = concept_uri(base_url, concept.id)
    graph.add((uri, RDF.type, SKOS.Concept))
    graph.add((uri, SKOS.inScheme, scheme))
    graph.add((uri, DCTERMS.identifier, Literal(concept.id)))
    graph.add((uri, TOCSIN.domain, Literal(concept.domain.value)))
    if not concept.broader:
        graph.add((uri, SKOS.topConceptOf, scheme))
        graph.add((scheme, SKOS.hasTopConcept, uri))
    for lang in LANGUAGES:
        terms = concept.term(lang)
        graph.add((uri, SKOS.prefLabel, Literal(terms.pref, lang=lang)))
        for label in terms.alt:
            graph.add((uri, SKOS.altLabel, Literal(label, lang=lang)))
        for label in terms.hidden:
            graph.add((uri, SKOS.hiddenLabel, Literal(label, lang=lang)))
        graph.add((uri, SKOS.definition, Literal(terms.definition, lang=lang)))
        graph.add((uri, TOCSIN.plainExplanation, Literal(terms.plain, lang=lang)))
    for ref in concept.broader:
        graph.add((uri, SKOS.broader, concept_uri(base_url, ref)))
        graph.add((concept_uri(base_url, ref), SKOS.narrower, uri))
    for ref in concept.related:
        graph.add((uri, SKOS.related, concept_uri(base_url, ref)))
    if concept.event_code is not None:
        graph.add((uri, SKOS.notation, Literal(concept.event_code.value, datatype=OET_DATATYPE)))
    for source in concept.sources:
        graph.add((uri, DCTERMS.source, Literal(source)))
    if concept.status is ConceptStatus.deprecated and concept.replaced_by is not None:
        graph.add((uri, OWL.deprecated, Literal(True)))
        graph.add((uri, DCTERMS.isReplacedBy, concept_uri(base_url, concept.replaced_by)))


def export(concepts: Iterable[Concept], *, base_url: str, fmt: ExportFormat) -> bytes:
    graph = to_graph(concepts, base_url=base_url)
    if fmt is ExportFormat.ttl:
        return graph.serialize(format="turtle", encoding="utf-8")
    return graph.serialize(format="json-ld", context=JSONLD_CONTEXT, indent=2, encoding="utf-8")


# ---- import -------------------------------------------------------------------------------------------------------


def _refuse_remote_contexts(node: Any, path: str = "") -> None:
    """rdflib would fetch a remote JSON-LD context: refuse any before parsing (no requests leave this server)."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else key
            if key == "@import":
                raise InvalidInput("JSON-LD @import is not accepted; put the context inline", field=here)
            if key == "@context":
                contexts = value if isinstance(value, list) else [value]
                if any(isinstance(item, str) for item in contexts):
                    raise InvalidInput("remote JSON-LD contexts are not fetched; put the context inline", field=here)
            _refuse_remote_contexts(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _refuse_remote_contexts(item, f"{path}[{i}]")


def parse(data: bytes, fmt: ExportFormat) -> Graph:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput("the file is not UTF-8", field="file") from None
    graph = Graph()
    if fmt is ExportFormat.jsonld:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"not JSON: {exc}", field="file") from None
        _refuse_remote_contexts(document)
    try:
        graph.parse(data=text, format="turtle" if fmt is ExportFormat.ttl else "json-ld")
    except InvalidInput:
        raise
    except Exception as exc:  # rdflib's parsers raise many kinds; each is a refusal of the file
        message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"cannot read the {fmt.value} file: {message}", field="file") from None
    return graph


def _id_of(graph: Graph, node: Node) -> str:
    identifier = graph.value(node, DCTERMS.identifier)
    if identifier is not None:
        return str(identifier)
    text = str(node)
    return text.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def _language(literal: Node) -> str | None:
    if not isinstance(literal, Literal) or literal.language is None:
        return None
    primary = literal.language.split("-")[0].lower()
    return primary if primary in LANGUAGES else None


def _texts(graph: Graph, node: Node, predicate: URIRef) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for literal in graph.objects(node, predicate):
        lang = _language(literal)
        if lang is not None:
            found.setdefault(lang, []).append(str(literal))
    return {lang: sorted(values) for lang, values in found.items()}


def _one(values: dict[str, list[str]], lang: str, what: str, concept_id: str) -> str | None:
    items = values.get(lang, [])
    if len(items) > 1:
        raise InvalidInput(
            f"concept '{concept_id}' has {len(items)} {what} values in '{lang}'; it may have one",
            field=f"concepts.{concept_id}.terms.{lang}.{what}",
        )
    return items[0] if items else None


def _document(graph: Graph, node: Node, ids: Mapping[Node, str]) -> dict[str, Any]:
    concept_id = ids[node]
    prefs = _texts(graph, node, SKOS.prefLabel)
    alts = _texts(graph, node, SKOS.altLabel)
    hiddens = _texts(graph, node, SKOS.hiddenLabel)
    definitions = _texts(graph, node, SKOS.definition)
    plains = _texts(graph, node, TOCSIN.plainExplanation)
    terms: dict[str, Any] = {}
    for lang in LANGUAGES:
        if lang not in prefs and lang not in definitions:
            continue  # reported by the schema as a missing language
        terms[lang] = {
            "pref": _one(prefs, lang, "pref", concept_id),
            "alt": alts.get(lang, []),
            "hidden": hiddens.get(lang, []),
            "definition": _one(definitions, lang, "definition", concept_id),
            "plain": _one(plains, lang, "plain", concept_id),
        }

    def refs(predicate: URIRef) -> list[str]:
        return sorted(ids.get(target, _id_of(graph, target)) for target in graph.objects(node, predicate))

    replaced = refs(DCTERMS.isReplacedBy)
    deprecated = graph.value(node, OWL.deprecated)
    notations = [n for n in graph.objects(node, SKOS.notation) if isinstance(n, Literal) and n.datatype == OET_DATATYPE]
    domain = graph.value(node, TOCSIN.domain)
    return {
        "id": concept_id,
        "domain": None if domain is None else str(domain),
        "status": "deprecated" if isinstance(deprecated, Literal) and deprecated.toPython() is True else "active",
        "replaced_by": replaced[0] if replaced else None,
        "broader": refs(SKOS.broader),
        "related": refs(SKOS.related),
        "event_code": {"valueName": OET_VALUE_NAME, "value": str(notations[0])} if notations else None,
        "sources": sorted(str(source) for source in graph.objects(node, DCTERMS.source)),
        "terms": terms,
    }


def concepts_from_graph(graph: Graph) -> dict[str, Concept]:
    nodes = sorted((node for node in graph.subjects(RDF.type, SKOS.Concept) if not isinstance(node, BNode)), key=str)
    if not nodes:
        raise InvalidInput("the file holds no skos:Concept", field="file")
    ids = {node: _id_of(graph, node) for node in nodes}
    concepts: dict[str, Concept] = {}
    for node in nodes:
        concept_id = ids[node]
        if concept_id in concepts:
            raise InvalidInput(f"two concepts have the id '{concept_id}'", field=f"concepts.{concept_id}")
        try:
            concepts[concept_id] = Concept.model_validate(_document(graph, node, ids))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = field_path(tuple(error.get("loc", ())))
            field = f"concepts.{concept_id}" + (f".{where}" if where else "")
            raise InvalidInput(f"{field}: {error['msg']}", field=field) from None
    return concepts


def import_concepts(data: bytes, fmt: ExportFormat) -> dict[str, Concept]:
    return concepts_from_graph(parse(data, fmt))
