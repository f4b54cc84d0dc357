"""MeteoAlarm readers: Atom feed, CAP 1.2, supersession, awareness levels, geocodes, safe XML."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crieur.weather.errors import VigilanceDocumentError
from crieur.weather.meteoalarm import (
    awareness_color,
    awareness_phenomenon,
    parse_atom,
    parse_cap,
    parse_references,
    relevant_entries,
    snapshot_from_cap,
    vigilances_from_cap,
)
from crieur.weather.model import Color, Phenomenon, Source
from crieur.weather.samples import SampleCap, cap_message

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "weather"
NEW_ALERT = "2.49.0.0.250.0.FR.20221207160058.764028"
ALLCLEAR = "2.49.0.0.250.0.FR.20221207060126.964028"
T0 = datetime(2025, 1, 10, 5, 0, tzinfo=UTC)


def fixture(name: str) -> bytes:
    if not FIXTURES.is_dir():
        pytest.skip(f"weather fixtures folder absent: {FIXTURES}")
    return (FIXTURES / name).read_bytes()


def sample(identifier: str, **overrides: object) -> SampleCap:
    values: dict[str, object] = {
        "identifier": identifier,
        "sent": T0,
        "color": Color.ORANGE,
        "phenomenon": Phenomenon.VENT_VIOLENT,
        "departements": ("29", "56"),
        "onset": T0 + timedelta(hours=1),
        "expires": T0 + timedelta(hours=20),
    }
    values.update(overrides)
    return SampleCap(**values)  # type: ignore[arg-type]


def cap(identifier: str, **overrides: object) -> bytes:
    return cap_message(sample(identifier, **overrides))


# -- real samples ------------------------------------------------------------------------------------------------


def test_real_atom_feed() -> None:
    feed = parse_atom(fixture("meteoalarm-france-atom-feed.xml"))
    assert feed.updated == datetime(2022, 12, 8, 0, 36, 8, 851613, tzinfo=UTC)
    assert len(feed.entries) == 12
    assert {e.identifier for e in feed.entries} == {NEW_ALERT, ALLCLEAR}
    assert {e.msg_type for e in feed.entries if e.identifier == NEW_ALERT} == {"Alert"}
    assert {e.msg_type for e in feed.entries if e.identifier == ALLCLEAR} == {"Update"}
    assert {e.departement for e in feed.entries} == {"04", "05", "06", "38", "73", "74"}
    first = feed.entries[0]
    assert (first.area, first.geocodes, first.emma_id) == ("Haute Savoie", (("NUTS3", "FR718"),), "FR035")
    assert first.cap_url == (
        "https://feeds.meteoalarm.org/api/v1/warnings/feeds-france/04d497d4-d114-4d6b-93ba-13fa7ed577fe"
    )
    assert first.expires == datetime(2022, 12, 8, 15, 0, tzinfo=UTC)


def test_relevant_entries_keep_actual_messages_in_force_once_each() -> None:
    feed = parse_atom(fixture("meteoalarm-france-atom-feed.xml"))
    wanted = relevant_entries(feed, datetime(2022, 12, 7, 16, 0, tzinfo=UTC))
    # The AllClear expired at 05:01 and was sent before the live Alert: it cannot supersede it.
    assert list(wanted) == [NEW_ALERT]
    assert relevant_entries(feed, datetime(2022, 12, 9, tzinfo=UTC)) == {}


def test_real_meteo_france_cap_update_allclear() -> None:
    alert = parse_cap(fixture("meteoalarm-france-cap-update-allclear.xml"))
    assert (alert.identifier, alert.sender, alert.status, alert.msg_type) == (
        ALLCLEAR,
        "vigilance@meteo.fr",
        "Actual",
        "Update",
    )
    assert alert.sent == datetime(2022, 12, 7, 5, 1, 26, tzinfo=UTC)
    assert [r.identifier for r in alert.references] == ["2.49.0.0.250.0.FR.20221206160108.315028"]
    assert [i.language for i in alert.infos] == ["fr-FR", "en-GB"]
    info = alert.infos[0]
    assert info.response_types == ("AllClear",)
    assert info.expires == info.effective
    assert info.parameter("awareness_level") == "2; yellow; Moderate"
    assert awareness_color(info.parameter("awareness_level")) is Color.YELLOW
    assert awareness_phenomenon(info.parameter("awareness_type")) is Phenomenon.AVALANCHES
    assert [a.departement for a in info.areas] == ["04", "05", "06", "38", "73", "74"]
    # An AllClear gives no vigilance, whatever the time.
    vigilances, _ = vigilances_from_cap([alert], datetime(2022, 12, 7, 5, 0, tzinfo=UTC))
    assert vigilances == ()


def test_real_canada_cap_update_parses_and_is_not_a_french_vigilance() -> None:
    alert = parse_cap(fixture("cap12-canada-update-allclear.cap.xml"))
    assert alert.msg_type == "Update"
    assert len(alert.references) == 2
    assert alert.sent == datetime(2012, 5, 2, 23, 21, 4, tzinfo=UTC)
    assert alert.infos[0].response_types == ("AllClear",)
    snapshot = snapshot_from_cap([alert], datetime(2012, 5, 2, 23, 30, tzinfo=UTC))
    assert snapshot.vigilances == ()
    assert any("sans awareness_level" in w for w in snapshot.warnings)


def test_oasis_spec_example_parses() -> None:
    alert = parse_cap(fixture("cap12-oasis-spec-example-thunderstorm-KSTO1055887203.cap.xml"))
    assert (alert.identifier, alert.msg_type, alert.scope) == ("KSTO1055887203", "Alert", "Public")
    assert alert.sent == datetime(2003, 6, 17, 21, 57, tzinfo=UTC)
    assert alert.infos[0].areas[0].geocodes[0] == ("SAME", "006109")
    assert alert.infos[0].areas[0].departement is None
    assert snapshot_from_cap([alert], alert.sent).vigilances == ()


# -- awareness ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "color"),
    [
        ("1; green; Minor", Color.GREEN),
        ("2; yellow; Moderate", Color.YELLOW),
        ("2; yellow; Minor", Color.YELLOW),
        ("3; orange; Severe", Color.ORANGE),
        ("4; red; Extreme", Color.RED),
        ("4", Color.RED),
        ("3; red; Extreme", Color.UNKNOWN),
        ("4; purple; Extreme", Color.UNKNOWN),
        ("5; black; Extreme", Color.UNKNOWN),
        ("orange", Color.UNKNOWN),
        ("", Color.UNKNOWN),
        (None, Color.UNKNOWN),
    ],
)
def test_awareness_levels(level: str | None, color: Color) -> None:
    assert awareness_color(level) is color


@pytest.mark.parametrize(
    ("kind", "phenomenon"),
    [
        ("1; Wind", Phenomenon.VENT_VIOLENT),
        ("2; snow-ice", Phenomenon.NEIGE_VERGLAS),
        ("3; Thunderstorm", Phenomenon.ORAGES),
        ("5; high-temperature", Phenomenon.CANICULE),
        ("6; low-temperature", Phenomenon.GRAND_FROID),
        ("7; coastalevent", Phenomenon.VAGUES_SUBMERSION),
        ("9; avalanches", Phenomenon.AVALANCHES),
        ("10; Rain", Phenomenon.PLUIE_INONDATION),
        ("12; flooding", Phenomenon.CRUES),
        ("13; rain-flood", Phenomenon.PLUIE_INONDATION),
        ("4; fog", Phenomenon.UNKNOWN),
        ("8; forest-fire", Phenomenon.UNKNOWN),
        ("42; meteor", Phenomenon.UNKNOWN),
        (None, Phenomenon.UNKNOWN),
    ],
)
def test_awareness_types(kind: str | None, phenomenon: Phenomenon) -> None:
    assert awareness_phenomenon(kind) is phenomenon


# -- message logic -----------------------------------------------------------------------------------------------


def test_an_alert_gives_one_vigilance_per_area() -> None:
    vigilances, warnings = vigilances_from_cap([parse_cap(cap("A1"))], T0)
    assert [(v.departement, v.phenomenon, v.color, v.source) for v in vigilances] == [
        ("29", Phenomenon.VENT_VIOLENT, Color.ORANGE, Source.METEOALARM),
        ("56", Phenomenon.VENT_VIOLENT, Color.ORANGE, Source.METEOALARM),
    ]
    assert (vigilances[0].begin, vigilances[0].end) == (T0 + timedelta(hours=1), T0 + timedelta(hours=20))
    assert warnings == ()


def test_duplicates_are_read_once() -> None:
    message = parse_cap(cap("A1"))
    vigilances, _ = vigilances_from_cap([message, message, parse_cap(cap("A1"))], T0)
    assert len(vigilances) == 2
    assert all(len(v.timeline) == 1 for v in vigilances)


def test_an_update_supersedes_what_it_references() -> None:
    first = parse_cap(cap("A1"))
    update = parse_cap(
        cap("A2", msg_type="Update", color=Color.RED, sent=T0 + timedelta(hours=2), references=(("A1", T0),))
    )
    vigilances, _ = vigilances_from_cap([first, update], T0 + timedelta(hours=3))
    assert {(v.departement, v.color) for v in vigilances} == {("29", Color.RED), ("56", Color.RED)}
    assert all(len(v.timeline) == 1 for v in vigilances)


def test_a_cancel_or_an_allclear_ends_what_it_references() -> None:
    first = parse_cap(cap("A1"))
    cancel = parse_cap(cap("C1", msg_type="Cancel", sent=T0 + timedelta(hours=2), references=(("A1", T0),)))
    assert vigilances_from_cap([first, cancel], T0 + timedelta(hours=3))[0] == ()
    clear = parse_cap(
        cap(
            "U1",
            msg_type="Update",
            color=Color.YELLOW,
            all_clear=True,
            sent=T0 + timedelta(hours=2),
            expires=T0 + timedelta(hours=2),
            references=(("A1", T0),),
        )
    )
    assert vigilances_from_cap([first, clear], T0 + timedelta(hours=3))[0] == ()


def test_expired_and_non_actual_messages_are_ignored() -> None:
    expired = parse_cap(cap("A1", expires=T0 + timedelta(hours=2)))
    assert vigilances_from_cap([expired], T0 + timedelta(hours=2))[0] == ()
    assert len(vigilances_from_cap([expired], T0 + timedelta(hours=1))[0]) == 2
    exercise = parse_cap(cap("A2").replace(b"<status>Actual</status>", b"<status>Exercise</status>"))
    assert exercise.status == "Exercise"
    assert vigilances_from_cap([exercise], T0)[0] == ()


def test_unknown_levels_and_types_are_unknown_never_red() -> None:
    odd_level = parse_cap(cap("A1", color=Color.RED, level="5; black; Extreme"))
    vigilances, warnings = vigilances_from_cap([odd_level], T0)
    assert {v.color for v in vigilances} == {Color.UNKNOWN}
    assert any("niveau inconnu" in w for w in warnings)
    contradicting = parse_cap(cap("A2", color=Color.ORANGE, level="3; red; Extreme"))
    assert {v.color for v in vigilances_from_cap([contradicting], T0)[0]} == {Color.UNKNOWN}
    fog = parse_cap(cap("A3").replace(b"1; Wind", b"4; fog"))
    vigilances, warnings = vigilances_from_cap([fog], T0)
    assert {v.phenomenon for v in vigilances} == {Phenomenon.UNKNOWN}
    snapshot = snapshot_from_cap([fog], T0)
    assert snapshot.alerts(T0) == ()
    assert any("type inconnu" in w for w in warnings)


def test_areas_map_by_nuts_2021_or_emma_id_and_unknown_areas_are_reported() -> None:
    message = (
        cap("A1", departements=("29",))
        .replace(b"<value>FR522</value>", b"<value>FRK28</value>")
        .replace(  # NUTS 2021 Haute-Savoie
            b"</info>",
            b"<area><areaDesc>Savoie</areaDesc><geocode><valueName>EMMA_ID</valueName><value>FR036</value></geocode>"
            b"</area><area><areaDesc>Atlantis</areaDesc><geocode><valueName>NUTS3</valueName><value>FRY10</value>"
            b"</geocode></area></info>",
        )
    )
    vigilances, warnings = vigilances_from_cap([parse_cap(message)], T0)
    assert [v.departement for v in vigilances] == ["73", "74"]
    assert any("Atlantis" in w for w in warnings)


def test_the_french_info_block_decides() -> None:
    message = cap("A1", color=Color.ORANGE).replace(
        b"<info><language>fr-FR</language>",
        b"<info><language>en-GB</language><category>Met</category><event>x</event><urgency>Future</urgency>"
        b"<severity>Extreme</severity><certainty>Likely</certainty>"
        b"<parameter><valueName>awareness_level</valueName><value>4; red; Extreme</value></parameter>"
        b"<parameter><valueName>awareness_type</valueName><value>1; Wind</value></parameter>"
        b"<area><areaDesc>Finistere</areaDesc><geocode><valueName>NUTS3</valueName><value>FR522</value></geocode>"
        b"</area></info><info><language>fr-FR</language>",
    )
    assert {v.color for v in vigilances_from_cap([parse_cap(message)], T0)[0]} == {Color.ORANGE}


def test_snapshot_identity_is_the_set_of_messages() -> None:
    a, b = parse_cap(cap("A1")), parse_cap(cap("B1", departements=("13",)))
    first = snapshot_from_cap([a, b], T0)
    assert first.identity.snapshot_id == snapshot_from_cap([b, a, a], T0).identity.snapshot_id
    assert first.identity.snapshot_id != snapshot_from_cap([a], T0).identity.snapshot_id
    assert first.coverage is None


def test_references_parse() -> None:
    (ref,) = parse_references("vigilance@meteo.fr,2.49.0.0.250.0.FR.1,2022-12-06T16:01:08+01:00")
    assert (ref.sender, ref.identifier, ref.sent) == (
        "vigilance@meteo.fr",
        "2.49.0.0.250.0.FR.1",
        "2022-12-06T16:01:08+01:00",
    )
    with pytest.raises(VigilanceDocumentError, match="référence illisible"):
        parse_references("only-one-part")


# -- malformed and hostile XML -----------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol2;</identifier></alert>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feed xmlns="http://www.w3.org/2005/Atom"><title>&xxe;</title></feed>"""
BARE_DOCTYPE = b"""<?xml version="1.0"?><!DOCTYPE feed SYSTEM "http://example.org/feed.dtd">
<feed xmlns="http://www.w3.org/2005/Atom"></feed>"""


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, EXTERNAL_ENTITY, BARE_DOCTYPE])
def test_dtds_and_entities_are_refused(payload: bytes) -> None:
    with pytest.raises(VigilanceDocumentError, match="DOCTYPE refusé"):
        parse_cap(payload)
    with pytest.raises(VigilanceDocumentError, match="DOCTYPE refusé"):
        parse_atom(payload)


def test_every_truncation_of_a_cap_message_is_refused() -> None:
    whole = cap("A1")
    assert parse_cap(whole).identifier == "A1"
    for cut in range(1, len(whole) - 1, max(1, len(whole) // 60)):
        with pytest.raises(VigilanceDocumentError, match="mal formé ou tronqué"):
            parse_cap(whole[:cut])


def test_truncated_real_feed_is_refused() -> None:
    raw = fixture("meteoalarm-france-atom-feed.xml")
    for cut in (len(raw) // 3, len(raw) // 2, len(raw) - 10):
        with pytest.raises(VigilanceDocumentError, match="flux Atom"):
            parse_atom(raw[:cut])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"<feed xmlns='http://www.w3.org/2005/Atom'/>", "alert CAP 1.2 attendu"),
        (b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x</identifier></alert>", "absent : sent"),
        (
            b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x</identifier><sender>s</sender>"
            b"<sent>2022-12-07T06:01:26</sent><status>Actual</status><msgType>Alert</msgType></alert>",
            "sans fuseau",
        ),
        (
            b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x</identifier><sender>s</sender>"
            b"<sent>hier</sent><status>Actual</status><msgType>Alert</msgType></alert>",
            "date illisible",
        ),
        (b"<alert><identifier>x</identifier></alert>", "alert CAP 1.2 attendu"),
    ],
)
def test_malformed_cap_messages_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(VigilanceDocumentError, match=message):
        parse_cap(payload)


def test_an_atom_entry_without_identifier_is_refused() -> None:
    raw = fixture("meteoalarm-france-atom-feed.xml")
    broken = raw.replace(f"<cap:identifier>{NEW_ALERT}</cap:identifier>".encode(), b"", 1)
    with pytest.raises(VigilanceDocumentError, match="identifier"):
        parse_atom(broken)
