"""CAP 1.2 XML in and out, without a database: every sample, the schema, the attacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from tests.alerts.cap_compare import differences
from tocsin.alerts import cap
from tocsin.alerts.schemas import CapAlert
from tocsin.errors import AppError, PayloadTooLarge

LIMIT = 2_097_152
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "cap" / "samples"
VALID = sorted((SAMPLES / "valid").glob("*")) if SAMPLES.is_dir() else []
INVALID = sorted((SAMPLES / "invalid").glob("*")) if SAMPLES.is_dir() else []
SIGNATURES = sorted((SAMPLES / "signatures").glob("*")) if SAMPLES.is_dir() else []


def round_trip(data: bytes) -> tuple[CapAlert, bytes]:
    message, _ = cap.parse_cap(data, LIMIT)
    exported = cap.alert_to_xml(message)
    return message, exported


class TestParseCap:
    @pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
    def test_valid_sample_round_trips_element_by_element(self, path: Path) -> None:
        data = path.read_bytes()
        _, exported = round_trip(data)
        original = cap.parse_xml(data, LIMIT)
        again = cap.parse_xml(exported, LIMIT)
        cap.validate_against_schema(again)
        assert differences(original, again) == []

    @pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
    def test_export_uses_explicit_offsets_and_closed_lat_lon_polygons(self, path: Path) -> None:
        _, exported = round_trip(path.read_bytes())
        root = cap.parse_xml(exported, LIMIT)
        ns = {"c": cap.CAP12_NS}
        for element in root.xpath("//c:sent|//c:effective|//c:onset|//c:expires", namespaces=ns):
            assert not element.text.endswith("Z")
            assert element.text[-6] in "+-"
        for element in root.xpath("//c:polygon", namespaces=ns):
            pairs = element.text.split()
            assert pairs[0] == pairs[-1]
            lat, lon = (float(x) for x in pairs[0].split(","))
            assert -90 <= lat <= 90
            assert -180 <= lon <= 180

    def test_samples_are_present(self) -> None:
        assert len(VALID) >= 20
        assert len(INVALID) >= 5

    @pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
    def test_invalid_sample_is_refused_with_a_reason(self, path: Path) -> None:
        with pytest.raises(AppError) as refused:
            cap.parse_cap(path.read_bytes(), LIMIT)
        assert 400 <= refused.value.status_code < 500
        assert refused.value.message

    @pytest.mark.parametrize("name", ["google_cap11_earthquake.cap", "google_cap11_weather.cap"])
    def test_cap11_is_named(self, name: str) -> None:
        with pytest.raises(AppError, match=r"CAP 1\.1 is not supported"):
            cap.parse_cap((SAMPLES / "invalid" / name).read_bytes(), LIMIT)

    def test_schema_error_names_the_element_path(self) -> None:
        with pytest.raises(AppError) as refused:
            cap.parse_cap((SAMPLES / "invalid" / "google_invalid.cap").read_bytes(), LIMIT)
        assert refused.value.field == "alert"
        assert "scope" in refused.value.message

    def test_schema_error_inside_info_names_info(self) -> None:
        with pytest.raises(AppError) as refused:
            cap.parse_cap((SAMPLES / "signatures" / "tg_invalid_schema.xml").read_bytes(), LIMIT)
        assert refused.value.field == "alert/info"

    def test_external_entities_are_refused_without_fetching(self) -> None:
        with pytest.raises(AppError, match="DOCTYPE"):
            cap.parse_cap((SAMPLES / "invalid" / "google_xee.cap").read_bytes(), LIMIT)

    def test_billion_laughs_is_refused(self) -> None:
        entities = "".join(f'<!ENTITY l{i} "&l{i - 1};&l{i - 1};&l{i - 1};&l{i - 1};">' for i in range(1, 10))
        bomb = (
            f'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY l0 "lol">{entities}]>'
            f'<alert xmlns="{cap.CAP12_NS}"><identifier>&l9;</identifier></alert>'
        ).encode()
        with pytest.raises(AppError, match="DOCTYPE"):
            cap.parse_cap(bomb, LIMIT)

    def test_oversized_message_is_refused(self) -> None:
        with pytest.raises(PayloadTooLarge):
            cap.parse_cap(b"<" + b"x" * 2048, 1024)

    def test_not_xml_is_refused(self) -> None:
        with pytest.raises(AppError, match="well-formed"):
            cap.parse_cap(b'{"json": true}', LIMIT)

    @pytest.mark.parametrize("path", [p for p in SIGNATURES if "invalid_schema" not in p.name], ids=lambda p: p.name)
    def test_signed_samples_parse_and_signature_is_detected(self, path: Path) -> None:
        message, root = cap.parse_cap(path.read_bytes(), LIMIT)
        assert message.info
        assert cap.has_signature(root) == ("no_signature" not in path.name)

    def test_polygon_order_is_lat_lon_in_cap_and_lon_lat_in_geojson(self) -> None:
        data = (SAMPLES / "valid" / "eden_Flood.xml").read_bytes()
        message, _ = cap.parse_cap(data, LIMIT)
        ring = message.info[0].area[0].polygon_rings()[0]
        assert ring[0] == [96.267, 17.461]  # CAP said "17.461,96.267"

    def test_iso_8859_1_text_survives(self) -> None:
        message, exported = round_trip((SAMPLES / "valid" / "google_earthquake-iso8859-1.cap").read_bytes())
        again = CapAlert.model_validate(message.model_dump(mode="json"))
        assert again == message
        assert etree.fromstring(exported) is not None
