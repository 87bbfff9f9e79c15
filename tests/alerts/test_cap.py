"""CAP 1.2 XML in and out, without a database: our own messages and the real-world corpus, the schema, the attacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from tests.alerts.cap_compare import differences
from tests.alerts.samples import OWN_INVALID, OWN_VALID, corpus_dir, corpus_file, own, params
from tests.alerts.signing import ThrowAwayKey, make_key, sign
from tocsin.alerts import cap
from tocsin.alerts.schemas import CapAlert, MsgType
from tocsin.errors import AppError, PayloadTooLarge

LIMIT = 2_097_152


def round_trip(data: bytes) -> tuple[CapAlert, bytes]:
    message, _ = cap.parse_cap(data, LIMIT)
    exported = cap.alert_to_xml(message)
    return message, exported


def refusal(path: Path) -> AppError:
    with pytest.raises(AppError) as refused:
        cap.parse_cap(path.read_bytes(), LIMIT)
    return refused.value


@pytest.fixture(scope="module")
def signing_key() -> ThrowAwayKey:
    return make_key()


class TestRoundTrip:
    @pytest.mark.parametrize("path", params("valid"))
    def test_valid_message_round_trips_element_by_element(self, path: Path | None) -> None:
        data = corpus_file(path).read_bytes()
        _, exported = round_trip(data)
        original = cap.parse_xml(data, LIMIT)
        again = cap.parse_xml(exported, LIMIT)
        cap.validate_against_schema(again)
        assert differences(original, again) == []

    @pytest.mark.parametrize("path", params("valid"))
    def test_export_uses_explicit_offsets_and_closed_lat_lon_polygons(self, path: Path | None) -> None:
        _, exported = round_trip(corpus_file(path).read_bytes())
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

    def test_own_messages_cover_what_cap_can_say(self) -> None:
        messages = [cap.parse_cap(path.read_bytes(), LIMIT)[0] for path in OWN_VALID]
        infos = [info for message in messages for info in message.info]
        areas = [area for info in infos for area in info.area]
        assert len({info.language for info in infos}) >= 8
        assert {message.msgType for message in messages} >= {MsgType.alert, MsgType.update, MsgType.cancel}
        assert {message.status.value for message in messages} >= {"Actual", "Exercise", "Test"}
        assert {message.scope.value for message in messages} == {"Public", "Restricted", "Private"}
        assert any(area.geometry for area in areas)
        assert any(area.circles for area in areas)
        assert any(area.geocode and not area.geometry and not area.circles for area in areas)
        assert any(info.resource for info in infos)
        assert len(OWN_INVALID) >= 8

    def test_update_and_cancel_reference_the_chain(self) -> None:
        alert = cap.parse_cap(own("valid/moselle-flood-alert.xml").read_bytes(), LIMIT)[0]
        update = cap.parse_cap(own("valid/moselle-flood-update.xml").read_bytes(), LIMIT)[0]
        cancel = cap.parse_cap(own("valid/moselle-flood-cancel.xml").read_bytes(), LIMIT)[0]

        def reference(message: CapAlert) -> str:
            return f"{message.sender},{message.identifier},{cap.format_time(message.sent)}"

        assert update.references == reference(alert)
        assert cancel.references == f"{reference(alert)} {reference(update)}"

    def test_polygon_order_is_lat_lon_in_cap_and_lon_lat_in_geojson(self) -> None:
        message, _ = cap.parse_cap(own("valid/moselle-flood-alert.xml").read_bytes(), LIMIT)
        ring = message.info[0].area[0].polygon_rings()[0]
        assert ring[0] == [6.3611, 49.5478]  # CAP said "49.5478,6.3611"
        circle = message.info[0].area[1].circles[0]
        assert (tuple(circle.center), circle.radiusKm) == ((6.3679, 49.5445), 1.5)

    def test_iso_8859_1_text_survives(self) -> None:
        message, exported = round_trip(own("valid/selestat-storm-test-iso-8859-1.xml").read_bytes())
        again = CapAlert.model_validate(message.model_dump(mode="json"))
        assert again == message
        assert message.info[0].event == "Tempête"
        assert "Umlaute (ä, ö, ü) und ß" in (message.info[1].description or "")
        assert etree.fromstring(exported).findtext(f"{{{cap.CAP12_NS}}}info/{{{cap.CAP12_NS}}}event") == "Tempête"


class TestRefusals:
    @pytest.mark.parametrize("path", params("invalid"))
    def test_invalid_message_is_refused_with_a_reason(self, path: Path | None) -> None:
        refused = refusal(corpus_file(path))
        assert 400 <= refused.status_code < 500
        assert refused.message

    def test_cap11_is_named(self) -> None:
        assert refusal(own("invalid/cap11-namespace.xml")).message.startswith("CAP 1.1 is not supported")

    def test_schema_error_names_the_element_path(self) -> None:
        refused = refusal(own("invalid/element-order.xml"))
        assert refused.field == "alert"
        assert "scope" in refused.message

    def test_schema_error_inside_info_names_info(self) -> None:
        refused = refusal(own("invalid/bad-enum-inside-info.xml"))
        assert refused.field == "alert/info/urgency"

    @pytest.mark.parametrize("name", ["external-entity.xml", "external-entity-utf-16.xml", "entity-expansion.xml"])
    def test_entity_declarations_are_refused_without_resolving(self, name: str) -> None:
        refused = refusal(own(f"invalid/{name}"))
        assert "DOCTYPE" in refused.message
        assert "root:" not in refused.message

    def test_billion_laughs_is_refused(self) -> None:
        entities = "".join(f'<!ENTITY l{i} "&l{i - 1};&l{i - 1};&l{i - 1};&l{i - 1};">' for i in range(1, 10))
        bomb = (
            f'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY l0 "lol">{entities}]>'
            f'<alert xmlns="{cap.CAP12_NS}"><identifier>&l9;</identifier></alert>'
        ).encode()
        with pytest.raises(AppError, match="DOCTYPE"):
            cap.parse_cap(bomb, LIMIT)

    def test_coordinates_out_of_range_name_the_polygon(self) -> None:
        assert refusal(own("invalid/latitude-out-of-range.xml")).field == "info[0].area[0].polygon[0]"

    def test_oversized_message_is_refused(self) -> None:
        with pytest.raises(PayloadTooLarge):
            cap.parse_cap(b"<" + b"x" * 2048, 1024)

    def test_not_xml_is_refused(self) -> None:
        with pytest.raises(AppError, match="well-formed"):
            cap.parse_cap(b'{"json": true}', LIMIT)


class TestSignedMessages:
    @pytest.mark.parametrize("path", OWN_VALID, ids=lambda p: p.name)
    def test_message_signed_at_test_time_parses_and_round_trips(self, path: Path, signing_key: ThrowAwayKey) -> None:
        signed = sign(path.read_bytes(), signing_key)
        message, root = cap.parse_cap(signed, LIMIT)
        assert cap.has_signature(root)
        exported = cap.alert_to_xml(message)
        assert b"Signature" not in exported
        assert differences(cap.parse_xml(signed, LIMIT), cap.parse_xml(exported, LIMIT)) == []

    @pytest.mark.parametrize("path", [p for p in params("signatures") if "invalid_schema" not in str(p.values[0])])
    def test_corpus_signed_samples_parse_and_signature_is_detected(self, path: Path | None) -> None:
        sample = corpus_file(path)
        message, root = cap.parse_cap(sample.read_bytes(), LIMIT)
        assert message.info
        assert cap.has_signature(root) == ("no_signature" not in sample.name)


class TestCorpus:
    """The real-world corpus beside the checkout: present under CI, and as large as it is described."""

    def test_corpus_is_present(self) -> None:
        samples = corpus_dir()
        assert len(list((samples / "valid").glob("*"))) >= 20
        assert len(list((samples / "invalid").glob("*"))) >= 5

    @pytest.mark.parametrize("name", ["google_cap11_earthquake.cap", "google_cap11_weather.cap"])
    def test_corpus_cap11_is_named(self, name: str) -> None:
        assert refusal(corpus_dir() / "invalid" / name).message.startswith("CAP 1.1 is not supported")

    def test_corpus_external_entities_are_refused_without_fetching(self) -> None:
        assert "DOCTYPE" in refusal(corpus_dir() / "invalid" / "google_xee.cap").message

    def test_corpus_polygon_order(self) -> None:
        message, _ = cap.parse_cap((corpus_dir() / "valid" / "eden_Flood.xml").read_bytes(), LIMIT)
        assert message.info[0].area[0].polygon_rings()[0][0] == [96.267, 17.461]  # CAP said "17.461,96.267"
