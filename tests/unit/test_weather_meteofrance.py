"""Météo-France readers: the real samples, the carte shape, and refusal of anything malformed."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crieur.weather.errors import VigilanceDocumentError
from crieur.weather.meteofrance import parse_bulletin, parse_carte, parse_document, parse_warning_full
from crieur.weather.model import Color, Phenomenon, Source
from crieur.weather.samples import SampleAlert, carte_document

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "weather"
UPDATE = datetime(2025, 7, 6, 4, 0, 23, tzinfo=UTC)  # 06:00 in Paris
CANICULE_45 = SampleAlert(
    "45",
    Phenomenon.CANICULE,
    Color.ORANGE,
    datetime(2025, 7, 6, 10, 0, tzinfo=UTC),
    datetime(2025, 7, 7, 20, 0, tzinfo=UTC),
)


def fixture(name: str) -> bytes:
    if not FIXTURES.is_dir():
        pytest.skip(f"weather fixtures folder absent: {FIXTURES}")
    return (FIXTURES / name).read_bytes()


def carte(*alerts: SampleAlert, **kwargs: Any) -> dict[str, Any]:
    return carte_document(UPDATE, alerts, **kwargs)


# -- real samples ------------------------------------------------------------------------------------------------


def test_mobile_warning_13_all_green_covers_only_what_it_lists() -> None:
    snapshot = parse_warning_full(fixture("mf-mobileapi-warning_full_13.json"))
    assert snapshot.source is Source.METEOFRANCE
    assert snapshot.identity.update_time == datetime.fromtimestamp(1635656400, UTC)
    assert {(v.departement, v.phenomenon) for v in snapshot.vigilances} == {
        ("13", p)
        for p in (
            Phenomenon.CRUES,
            Phenomenon.NEIGE_VERGLAS,
            Phenomenon.VENT_VIOLENT,
            Phenomenon.ORAGES,
            Phenomenon.PLUIE_INONDATION,
        )
    }
    assert all(v.color is Color.GREEN for v in snapshot.vigilances)
    assert snapshot.coverage == {(v.departement, v.phenomenon) for v in snapshot.vigilances}
    assert not snapshot.covers("13", Phenomenon.VAGUES_SUBMERSION)
    assert not snapshot.covers("31", Phenomenon.ORAGES)
    assert snapshot.alerts() == ()


def test_mobile_warning_31_all_green() -> None:
    snapshot = parse_warning_full(fixture("mf-mobileapi-warning_full_31.json"))
    assert {v.departement for v in snapshot.vigilances} == {"31"}
    assert len(snapshot.vigilances) == 5
    assert all(v.color is Color.GREEN for v in snapshot.vigilances)


def test_mobile_warning_coastal_1310_is_waves_in_the_13_yellow_then_green() -> None:
    snapshot = parse_warning_full(fixture("mf-mobileapi-warning_full_1310.json"))
    (waves,) = snapshot.vigilances
    assert (waves.departement, waves.phenomenon) == ("13", Phenomenon.VAGUES_SUBMERSION)
    assert [(i.begin, i.end, i.color) for i in waves.timeline] == [
        (datetime.fromtimestamp(1635656400, UTC), datetime.fromtimestamp(1635692400, UTC), Color.YELLOW),
        (datetime.fromtimestamp(1635692400, UTC), datetime.fromtimestamp(1635742800, UTC), Color.GREEN),
    ]
    assert waves.color is Color.YELLOW
    assert snapshot.coverage == {("13", Phenomenon.VAGUES_SUBMERSION)}
    # The coastal document says nothing about the 13's other phenomena.
    assert not snapshot.covers("13", Phenomenon.CANICULE)
    assert snapshot.identity.product == "warning-full/1310"


def test_parse_document_recognises_the_mobile_shape() -> None:
    assert parse_document(fixture("mf-mobileapi-warning_full_1310.json")).vigilances[0].departement == "13"


def test_real_textes_bulletin_is_read_as_texts_never_as_colours() -> None:
    raw = fixture("mf-dpvigilance-textesvigilance-encours-2025-07-06.json")
    bulletin = parse_bulletin(raw)
    assert bulletin.identity.update_time == datetime(2025, 7, 6, 8, 0, 23, tzinfo=UTC)
    assert bulletin.identity.product == "textesvigilance"
    assert len(bulletin.domains) == 105
    assert {"FRA", "ZDF_SUD", "99", "2A", "2B"} <= set(bulletin.domains)
    corsica = bulletin.for_departement("2A", Phenomenon.CANICULE)
    assert any(t.phenomenon is Phenomenon.CANICULE and t.group == "SUIVI" for t in corsica)
    assert all(t.bulletin_level is Color.ORANGE for t in corsica)
    assert any("caniculaire" in t.text for t in corsica)
    # The 13 had dropped to green yet its bulletin still says risk_code 3: a level, not a colour.
    assert [t.bulletin_level for t in bulletin.for_departement("13")] == [Color.ORANGE]
    with pytest.raises(VigilanceDocumentError, match="bulletin"):
        parse_carte(raw)
    with pytest.raises(VigilanceDocumentError, match="bulletin"):
        parse_document(raw)


def test_the_textes_bulletin_as_the_live_api_wraps_it() -> None:
    product = json.loads(fixture("mf-dpvigilance-textesvigilance-encours-2025-07-06.json"))
    wrapped = {"product": product, "meta": {"snapshot_id": "abc-123", "product_datetime": "2025-07-06T08:00:23Z"}}
    bulletin = parse_bulletin(json.dumps(wrapped).encode())
    assert bulletin.identity.snapshot_id == "abc-123"
    assert len(bulletin.texts) == len(parse_bulletin(json.dumps(product)).texts)


# -- the carte ---------------------------------------------------------------------------------------------------


def test_a_national_carte_gives_every_departement_and_the_alert() -> None:
    snapshot = parse_carte(json.dumps(carte(CANICULE_45, snapshot_id="snap-42")).encode(), etag='"e1"')
    assert snapshot.coverage is None
    assert {v.departement for v in snapshot.vigilances} == {f"{n:02d}" for n in range(1, 96) if n != 20} | {
        "2A",
        "2B",
    }
    assert snapshot.identity.snapshot_id == "snap-42"
    assert snapshot.identity.update_time == UPDATE
    assert snapshot.identity.etag == '"e1"'
    (alert,) = snapshot.alerts()
    assert (alert.departement, alert.phenomenon, alert.color) == ("45", Phenomenon.CANICULE, Color.ORANGE)
    # J and J1 joined: one window across midnight.
    assert (alert.begin, alert.end) == (CANICULE_45.begin, CANICULE_45.end)
    assert alert.outlook(UPDATE).until == CANICULE_45.end
    assert snapshot.warnings == ()


def test_the_bare_product_is_accepted_too() -> None:
    document = carte(CANICULE_45)
    snapshot = parse_carte(document["product"])
    assert snapshot.identity.snapshot_id is None
    assert len(snapshot.alerts()) == 1


def test_ids_as_strings_or_numbers() -> None:
    document = carte(CANICULE_45)
    for period in document["product"]["periods"]:
        for domain in period["timelaps"]["domain_ids"]:
            for item in domain["phenomenon_items"]:
                item["phenomenon_id"] = int(item["phenomenon_id"])
                for lap in item["timelaps_items"]:
                    lap["color_id"] = str(lap["color_id"])
    assert [a.departement for a in parse_carte(document).alerts()] == ["45"]


def test_coastal_domain_and_andorra() -> None:
    waves = SampleAlert(
        "2B", Phenomenon.VAGUES_SUBMERSION, Color.RED, CANICULE_45.begin, CANICULE_45.begin + timedelta(hours=6)
    )
    document = carte(waves, departements=[*sorted({f"{n:02d}" for n in range(1, 96) if n != 20}), "2A", "2B", "99"])
    assert any(d["domain_id"] == "2B10" for d in document["product"]["periods"][0]["timelaps"]["domain_ids"])
    assert any(d["domain_id"] == "99" for d in document["product"]["periods"][0]["timelaps"]["domain_ids"])
    snapshot = parse_carte(document)
    (alert,) = snapshot.alerts()
    assert (alert.departement, alert.phenomenon, alert.color) == ("2B", Phenomenon.VAGUES_SUBMERSION, Color.RED)
    assert snapshot.warnings == ()


def test_a_phenomenon_without_chronology_holds_its_max_colour_for_the_period() -> None:
    document = carte()
    item = document["product"]["periods"][0]["timelaps"]["domain_ids"][0]["phenomenon_items"][0]
    item["timelaps_items"] = []
    item["phenomenon_max_color_id"] = 3
    snapshot = parse_carte(document)
    (alert,) = snapshot.alerts()
    period = document["product"]["periods"][0]
    assert alert.begin == datetime.fromisoformat(period["begin_validity_time"])
    assert alert.end == datetime.fromisoformat(period["end_validity_time"])


@pytest.mark.parametrize("color_id", [0, -1, 5, 7, "x", None, "4.0", True])
def test_unknown_colour_ids_are_unknown_never_red(color_id: object) -> None:
    red = SampleAlert("45", Phenomenon.ORAGES, Color.RED, CANICULE_45.begin, CANICULE_45.end)
    document = carte(red)
    replaced = 0
    for period in document["product"]["periods"]:
        for domain in period["timelaps"]["domain_ids"]:
            for item in domain["phenomenon_items"]:
                for lap in item["timelaps_items"]:
                    if lap["color_id"] == 4:
                        lap["color_id"] = color_id
                        replaced += 1
    assert replaced == 2  # the red interval, in J and in J1
    snapshot = parse_carte(document)
    storms = snapshot.get("45", Phenomenon.ORAGES)
    assert storms is not None
    assert Color.RED not in {i.color for i in storms.timeline}
    assert Color.UNKNOWN in {i.color for i in storms.timeline}
    assert storms.color is Color.UNKNOWN
    assert snapshot.alerts() == ()
    assert any("couleur inconnue" in w for w in snapshot.warnings)


def test_unknown_phenomenon_ids_are_unknown() -> None:
    document = carte()
    domain = document["product"]["periods"][0]["timelaps"]["domain_ids"][0]
    extra = copy.deepcopy(domain["phenomenon_items"][0])
    extra["phenomenon_id"] = "10"
    for lap in extra["timelaps_items"]:
        lap["color_id"] = 4
    domain["phenomenon_items"].append(extra)
    snapshot = parse_carte(document)
    (unknown,) = snapshot.unknown_phenomena()
    assert (unknown.departement, unknown.raw_phenomenon, unknown.color) == (domain["domain_id"], "10", Color.RED)
    assert snapshot.alerts() == ()  # unknown phenomena are never broadcast
    assert any("phénomène inconnu '10'" in w for w in snapshot.warnings)


def test_unknown_domains_are_set_aside_with_a_warning() -> None:
    document = carte()
    domains = document["product"]["periods"][0]["timelaps"]["domain_ids"]
    domains.append({**copy.deepcopy(domains[0]), "domain_id": "971"})
    snapshot = parse_carte(document)
    assert any("'971'" in w for w in snapshot.warnings)


# -- malformed, truncated, wrong ---------------------------------------------------------------------------------


def test_every_truncation_of_a_carte_is_refused_whole() -> None:
    text = json.dumps(carte(CANICULE_45), separators=(",", ":"))
    assert parse_carte(text).alerts()
    step = max(1, len(text) // 97)
    for cut in [*range(1, len(text), step), len(text) - 1]:
        with pytest.raises(VigilanceDocumentError, match="JSON illisible ou tronqué"):
            parse_carte(text[:cut])


def _without_departement(code: str) -> dict[str, Any]:
    document = carte()
    for period in document["product"]["periods"]:
        period["timelaps"]["domain_ids"] = [d for d in period["timelaps"]["domain_ids"] if d["domain_id"] != code]
    return document


def _mutated(change: str) -> dict[str, Any]:
    document = carte(CANICULE_45)
    product = document["product"]
    first_period = product["periods"][0]
    first_item = first_period["timelaps"]["domain_ids"][0]["phenomenon_items"][0]
    if change == "no periods":
        product["periods"] = []
    elif change == "no domains":
        first_period["timelaps"]["domain_ids"] = []
    elif change == "naive time":
        product["update_time"] = "2025-07-06T04:00:23"
    elif change == "naive interval":
        first_item["timelaps_items"][0]["begin_time"] = "2025-07-06T04:00:23"
    elif change == "reversed interval":
        lap = first_item["timelaps_items"][0]
        lap["begin_time"], lap["end_time"] = lap["end_time"], lap["begin_time"]
    elif change == "missing phenomenon_items":
        del first_period["timelaps"]["domain_ids"][0]["phenomenon_items"]
    elif change == "timelaps not an object":
        first_period["timelaps"] = []
    elif change == "reversed period":
        first_period["begin_validity_time"], first_period["end_validity_time"] = (
            first_period["end_validity_time"],
            first_period["begin_validity_time"],
        )
    elif change == "other product":
        product["type_cdp"] = "cdp_vignette"
    return document


@pytest.mark.parametrize(
    "change",
    [
        "no periods",
        "no domains",
        "naive time",
        "naive interval",
        "reversed interval",
        "missing phenomenon_items",
        "timelaps not an object",
        "reversed period",
        "other product",
    ],
)
def test_malformed_cartes_are_refused(change: str) -> None:
    with pytest.raises(VigilanceDocumentError) as refused:
        parse_carte(_mutated(change))
    assert refused.value.source == "Météo-France"
    assert "cartevigilance" in str(refused.value)


def test_a_national_carte_missing_departements_is_refused() -> None:
    with pytest.raises(
        VigilanceDocumentError, match=r"incomplète : 1 département\(s\) absent\(s\) de la période J \(2A"
    ):
        parse_carte(_without_departement("2A"))


@pytest.mark.parametrize(
    "payload",
    [b"", b"   ", b"[]", b'"carte"', b"null", b"{", b'{"product": 3}', b'{"product": {}, "meta": []}'],
)
def test_empty_or_non_object_documents_are_refused(payload: bytes) -> None:
    with pytest.raises(VigilanceDocumentError):
        parse_carte(payload)


def test_an_api_error_body_is_refused_with_its_message() -> None:
    with pytest.raises(VigilanceDocumentError, match="900902 Missing Credentials"):
        parse_carte(b'{"code": "900902", "message": "Missing Credentials", "description": "Invalid Credentials"}')


@pytest.mark.parametrize(
    "payload",
    [
        b'{"update_time": 1, "end_validity_time": 2, "domain_id": "13", '
        b'"timelaps": [{"phenomenon_id": 1, "timelaps_items": []}]}',
        b'{"update_time": 1, "end_validity_time": 2, "domain_id": "971", "timelaps": []}',
        b'{"update_time": 1, "end_validity_time": 2, "timelaps": []}',
        b'{"update_time": 1, "end_validity_time": 2, "domain_id": "13", '
        b'"timelaps": [{"phenomenon_id": 1, "timelaps_items": [{"begin_time": 5}]}]}',
    ],
)
def test_malformed_mobile_documents_are_refused(payload: bytes) -> None:
    with pytest.raises(VigilanceDocumentError):
        parse_warning_full(payload)


def test_unknown_shapes_are_refused() -> None:
    with pytest.raises(VigilanceDocumentError, match="forme inconnue"):
        parse_document(b'{"hello": "world"}')
