"""CAP 1.2 XML in and out.

In: refuse anything but well-formed CAP 1.2 without a DTD (no external entities, no entity expansion, no network),
validate against the official OASIS schema, then map element by element onto `CapAlert`.
Out: build the XML in schema order from `CapAlert`; times with explicit offsets, polygons in 'lat,lon' order.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import xmlschema
from lxml import etree
from pydantic import ValidationError

from tocsin import geo
from tocsin.alerts.schemas import CapAlert
from tocsin.errors import InvalidInput, PayloadTooLarge

CAP12_NS = "urn:oasis:names:tc:emergency:cap:1.2"
OLD_CAP_NAMESPACES = {
    "urn:oasis:names:tc:emergency:cap:1.1": "1.1",
    "http://www.incident.com/cap/1.0": "1.0",
    "urn:oasis:names:tc:emergency:cap:1.0": "1.0",
}
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
SCHEMA_PATH = Path(__file__).with_name("CAP-v1.2.xsd")
_N = "{" + CAP12_NS + "}"

# Element order within each CAP 1.2 structure (the schema's sequence).
ALERT_TEXT = (
    "identifier",
    "sender",
    "sent",
    "status",
    "msgType",
    "source",
    "scope",
    "restriction",
    "addresses",
)
ALERT_TAIL = ("note", "references", "incidents")
INFO_HEAD = ("language",)
INFO_ENUMS = ("urgency", "severity", "certainty", "audience")
INFO_TIMES = ("effective", "onset", "expires")
INFO_TEXTS = ("senderName", "headline", "description", "instruction", "web", "contact")
RESOURCE_FIELDS = ("resourceDesc", "mimeType", "size", "uri", "derefUri", "digest")


class CapError(InvalidInput):
    code = "invalid_cap"


@cache
def cap_schema() -> xmlschema.XMLSchema:
    # No fallback schemas: the CAP schema admits XML-DSig content laxly, and validating it against a bundled
    # xmldsig schema would refuse real signed alerts that the official schema accepts.
    return xmlschema.XMLSchema(str(SCHEMA_PATH), use_fallback=False)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
    )


# A DTD is refused before parsing, in the encodings XML may come in; the parser is locked down as well.
_DOCTYPE_MARKERS = tuple("<!DOCTYPE".encode(encoding) for encoding in ("utf-8", "utf-16-le", "utf-16-be"))


def parse_xml(data: bytes, max_bytes: int) -> etree._Element:
    """Safely parse untrusted XML: bounded size, and any DTD (the vehicle of XXE and billion laughs) is refused."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"a CAP message is at most {max_bytes} bytes", field="body")
    if not data.strip():
        raise CapError("the body is empty; send a CAP 1.2 XML message", field="body")
    if any(marker in data.upper() for marker in _DOCTYPE_MARKERS):
        raise CapError("DOCTYPE and entity declarations are not allowed in CAP messages", field="body")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise CapError(f"not well-formed XML: {exc.msg}", field="body") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise CapError("DOCTYPE and entity declarations are not allowed in CAP messages", field="body")
    return root


def _check_namespace(root: etree._Element) -> None:
    qname = etree.QName(root)
    if qname.namespace in OLD_CAP_NAMESPACES:
        version = OLD_CAP_NAMESPACES[qname.namespace]
        raise CapError(f"CAP {version} is not supported; send CAP 1.2 (namespace {CAP12_NS})", field="alert")
    if qname.localname != "alert" or qname.namespace != CAP12_NS:
        raise CapError(f"the root element must be <alert> in namespace {CAP12_NS}", field="alert")


def _schema_path(path: str | None) -> str:
    """'/cap:alert/cap:info[1]/cap:area' -> 'alert/info[1]/area' (1-based, as XPath)."""
    if not path:
        return "alert"
    path = re.sub(r"\{[^}]*\}", "", path)  # Clark notation {namespace}local -> local
    parts = [segment.split(":", 1)[-1] for segment in path.strip("/").split("/")]
    return "/".join(parts)


def validate_against_schema(root: etree._Element) -> None:
    for error in cap_schema().iter_errors(root):
        where = _schema_path(error.path)
        reason = (error.reason or str(error.message)).strip()
        raise CapError(f"not valid CAP 1.2 at {where}: {reason}", field=where)


def _text(element: etree._Element, name: str) -> str | None:
    child = element.find(_N + name)
    if child is None:
        return None
    return child.text or ""


def _texts(element: etree._Element, name: str) -> list[str]:
    return [child.text or "" for child in element.findall(_N + name)]


def _named_values(element: etree._Element, name: str) -> list[dict[str, str]]:
    return [
        {"valueName": _text(child, "valueName") or "", "value": _text(child, "value") or ""}
        for child in element.findall(_N + name)
    ]


def _area(element: etree._Element, field: str) -> dict[str, Any]:
    rings = [geo.parse_cap_polygon(text, f"{field}.polygon[{i}]") for i, text in enumerate(_texts(element, "polygon"))]
    circles = [geo.parse_cap_circle(text, f"{field}.circle[{i}]") for i, text in enumerate(_texts(element, "circle"))]
    area: dict[str, Any] = {
        "areaDesc": _text(element, "areaDesc") or "",
        "geometry": geo.rings_to_geojson(rings),
        "circles": [{"center": [c.lon, c.lat], "radiusKm": c.radius_km} for c in circles],
        "geocode": _named_values(element, "geocode"),
    }
    for name in ("altitude", "ceiling"):
        value = _text(element, name)
        area[name] = None if value is None else float(value)
    return area


def _info(element: etree._Element, field: str) -> dict[str, Any]:
    info: dict[str, Any] = {"language": _text(element, "language")}
    info["category"] = _texts(element, "category")
    info["event"] = _text(element, "event")
    info["responseType"] = _texts(element, "responseType")
    for name in (*INFO_ENUMS, *INFO_TIMES, *INFO_TEXTS):
        info[name] = _text(element, name)
    info["eventCode"] = _named_values(element, "eventCode")
    info["parameter"] = _named_values(element, "parameter")
    info["resource"] = [
        {name: _text(resource, name) for name in RESOURCE_FIELDS} for resource in element.findall(_N + "resource")
    ]
    info["area"] = [_area(area, f"{field}.area[{i}]") for i, area in enumerate(element.findall(_N + "area"))]
    return info


def element_to_alert(root: etree._Element) -> CapAlert:
    document: dict[str, Any] = {name: _text(root, name) for name in (*ALERT_TEXT, *ALERT_TAIL)}
    document["code"] = _texts(root, "code")
    try:
        document["info"] = [_info(info, f"info[{i}]") for i, info in enumerate(root.findall(_N + "info"))]
    except geo.GeometryError as exc:
        raise CapError(f"{exc.field}: {exc}", field=exc.field) from None
    try:
        return CapAlert.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]).replace(".[", "[")
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
        raise CapError(f"{path or where}: {first['msg']}", field=path or None) from None


def has_signature(root: etree._Element) -> bool:
    return root.find("{" + DSIG_NS + "}Signature") is not None


def parse_cap(data: bytes, max_bytes: int) -> tuple[CapAlert, etree._Element]:
    """Untrusted bytes -> a validated CapAlert (and the parsed tree, for signature checks)."""
    root = parse_xml(data, max_bytes)
    _check_namespace(root)
    validate_against_schema(root)
    return element_to_alert(root), root


# ---- out ---------------------------------------------------------------------------------------------------------


def format_time(value: datetime) -> str:
    """CAP 1.2 dateTime: seconds precision and an explicit offset, never 'Z'."""
    return value.isoformat(timespec="seconds")


def _add(parent: etree._Element, name: str, value: str | None) -> None:
    if value is not None:
        etree.SubElement(parent, _N + name).text = value


def _add_named(parent: etree._Element, name: str, values: list[Any]) -> None:
    for item in values:
        element = etree.SubElement(parent, _N + name)
        _add(element, "valueName", item.valueName)
        _add(element, "value", item.value)


def alert_to_element(alert: CapAlert) -> etree._Element:
    root = etree.Element(_N + "alert", nsmap={None: CAP12_NS})
    values: dict[str, str | None] = {
        "identifier": alert.identifier,
        "sender": alert.sender,
        "sent": format_time(alert.sent),
        "status": alert.status.value,
        "msgType": alert.msgType.value,
        "source": alert.source,
        "scope": alert.scope.value,
        "restriction": alert.restriction,
        "addresses": alert.addresses,
    }
    for name in ALERT_TEXT:
        _add(root, name, values[name])
    for code in alert.code:
        _add(root, "code", code)
    _add(root, "note", alert.note)
    _add(root, "references", alert.references)
    _add(root, "incidents", alert.incidents)
    for info in alert.info:
        element = etree.SubElement(root, _N + "info")
        _add(element, "language", info.language)
        for category in info.category:
            _add(element, "category", category)
        _add(element, "event", info.event)
        for response in info.responseType:
            _add(element, "responseType", response)
        for name in INFO_ENUMS:
            _add(element, name, getattr(info, name))
        _add_named(element, "eventCode", info.eventCode)
        for name in INFO_TIMES:
            value = getattr(info, name)
            _add(element, name, None if value is None else format_time(value))
        for name in INFO_TEXTS:
            _add(element, name, getattr(info, name))
        _add_named(element, "parameter", info.parameter)
        for resource in info.resource:
            res = etree.SubElement(element, _N + "resource")
            for name in RESOURCE_FIELDS:
                value = getattr(resource, name)
                _add(res, name, None if value is None else str(value))
        for area in info.area:
            area_element = etree.SubElement(element, _N + "area")
            _add(area_element, "areaDesc", area.areaDesc)
            for ring in area.polygon_rings():
                _add(area_element, "polygon", geo.format_cap_polygon(ring))
            for circle in area.circles:
                _add(area_element, "circle", geo.format_cap_circle(circle.to_circle()))
            _add_named(area_element, "geocode", area.geocode)
            for name in ("altitude", "ceiling"):
                value = getattr(area, name)
                _add(area_element, name, None if value is None else geo.format_number(value))
    return root


def alert_to_xml(alert: CapAlert) -> bytes:
    return bytes(etree.tostring(alert_to_element(alert), xml_declaration=True, encoding="UTF-8", pretty_print=True))
