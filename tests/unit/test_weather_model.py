"""The internal vigilance model: colours, phenomena, intervals, outlooks, identities, snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from crieur.weather.model import (
    Color,
    DocumentIdentity,
    Interval,
    Phenomenon,
    Source,
    Vigilance,
    VigilanceSnapshot,
    combine,
)

T0 = datetime(2025, 7, 6, 6, 0, tzinfo=UTC)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def vigilance(*laps: tuple[float, float, Color], dep: str = "45", phen: Phenomenon = Phenomenon.CANICULE) -> Vigilance:
    return Vigilance(
        departement=dep,
        phenomenon=phen,
        timeline=tuple(Interval(begin=hours(a), end=hours(b), color=c) for a, b, c in laps),
        source=Source.METEOFRANCE,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1, Color.GREEN),
        ("2", Color.YELLOW),
        (3, Color.ORANGE),
        (" 4 ", Color.RED),
        (0, Color.UNKNOWN),
        (-1, Color.UNKNOWN),
        (5, Color.UNKNOWN),
        ("rouge", Color.UNKNOWN),
        (None, Color.UNKNOWN),
        (True, Color.UNKNOWN),
        (3.0, Color.UNKNOWN),
    ],
)
def test_colour_ids_outside_1_to_4_are_unknown(raw: object, expected: Color) -> None:
    assert Color.from_level(raw) is expected


def test_unknown_ranks_below_green_and_is_never_an_alert() -> None:
    assert Color.UNKNOWN.rank < Color.GREEN.rank < Color.YELLOW.rank < Color.ORANGE.rank < Color.RED.rank
    assert [c for c in Color if c.is_alert] == [Color.ORANGE, Color.RED]
    assert max([Color.UNKNOWN, Color.YELLOW], key=lambda c: c.rank) is Color.YELLOW


def test_phenomenon_ids_follow_the_vigilance_table() -> None:
    # reference/weather.md, "Ids": 1 Vent violent … 9 Vagues-submersion.
    table = {
        1: "Vent violent",
        2: "Pluie-inondation",
        3: "Orages",
        4: "Crues",
        5: "Neige-verglas",
        6: "Canicule",
        7: "Grand froid",
        8: "Avalanches",
        9: "Vagues-submersion",
    }
    for number, label in table.items():
        phenomenon = Phenomenon.from_meteofrance_id(str(number))
        assert phenomenon.label == label
        assert phenomenon.meteofrance_id == number
        assert Phenomenon.from_meteofrance_id(number) is phenomenon
    for unknown in ("10", "0", 11, None, "", "x", False):
        assert Phenomenon.from_meteofrance_id(unknown) is Phenomenon.UNKNOWN


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("canicule", Phenomenon.CANICULE),
        ("Grand froid", Phenomenon.GRAND_FROID),
        ("grand-froid", Phenomenon.GRAND_FROID),
        ("NEIGE_VERGLAS", Phenomenon.NEIGE_VERGLAS),
        ("Vagues-submersion", Phenomenon.VAGUES_SUBMERSION),
        ("inondation", Phenomenon.CRUES),
        ("vent violent", Phenomenon.VENT_VIOLENT),
        ("Pluie-Inondation", Phenomenon.PLUIE_INONDATION),
    ],
)
def test_opt_in_names_parse(name: str, expected: Phenomenon) -> None:
    assert Phenomenon.parse(name) is expected


@pytest.mark.parametrize("name", ["unknown", "brouillard", "", "feux de forêt"])
def test_other_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="phénomène inconnu"):
        Phenomenon.parse(name)


def test_times_must_carry_an_offset_and_are_stored_in_utc() -> None:
    with pytest.raises(ValidationError, match="fuseau"):
        Interval(begin=datetime(2025, 7, 6, 8), end=hours(1), color=Color.ORANGE)
    paris_summer = timezone(timedelta(hours=2))
    interval = Interval(begin=datetime(2025, 7, 6, 10, tzinfo=paris_summer), end=hours(5), color=Color.ORANGE)
    assert interval.begin == datetime(2025, 7, 6, 8, tzinfo=UTC)
    assert interval.begin.utcoffset() == timedelta(0)


def test_an_empty_or_reversed_interval_is_refused() -> None:
    with pytest.raises(ValidationError, match="vide ou inversé"):
        Interval(begin=hours(2), end=hours(1), color=Color.ORANGE)
    with pytest.raises(ValidationError, match="vide ou inversé"):
        Interval(begin=hours(2), end=hours(2), color=Color.ORANGE)


def test_our_models_refuse_unknown_fields_and_are_frozen() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        Interval(begin=hours(0), end=hours(1), color=Color.RED, severity="Extreme")  # type: ignore[call-arg]
    item = vigilance((0, 1, Color.ORANGE))
    with pytest.raises(ValidationError):
        item.departement = "13"  # type: ignore[misc]


@pytest.mark.parametrize("code", ["20", "2C", "971", "1", "99", "FRA", "1310"])
def test_only_metropolitan_departement_codes(code: str) -> None:
    with pytest.raises(ValidationError, match="département inconnu"):
        vigilance((0, 1, Color.ORANGE), dep=code)


def test_outlook_takes_the_highest_colour_and_its_span() -> None:
    item = vigilance((0, 4, Color.GREEN), (4, 10, Color.ORANGE), (10, 14, Color.RED), (14, 18, Color.ORANGE))
    whole = item.outlook()
    assert (whole.color, whole.begin, whole.end, whole.until) == (Color.RED, hours(10), hours(14), hours(18))
    assert item.color is Color.RED
    assert item.begin == hours(10)
    assert item.end == hours(14)
    # After the red interval, only orange remains.
    later = item.outlook(hours(15))
    assert (later.color, later.begin, later.end, later.until) == (Color.ORANGE, hours(14), hours(18), hours(18))
    # Once every interval has ended, nothing is in force any more.
    done = item.outlook(hours(18))
    assert (done.color, done.expired) == (Color.GREEN, True)


def test_an_unknown_colour_hides_a_non_alert_but_never_becomes_red() -> None:
    hidden = vigilance((0, 4, Color.GREEN), (4, 8, Color.UNKNOWN))
    assert hidden.outlook().color is Color.UNKNOWN
    assert not hidden.outlook().color.is_alert
    beside_orange = vigilance((0, 4, Color.ORANGE), (4, 8, Color.UNKNOWN))
    outlook = beside_orange.outlook()
    assert (outlook.color, outlook.has_unknown, outlook.end) == (Color.ORANGE, True, hours(4))
    only_unknown = vigilance((0, 8, Color.UNKNOWN))
    assert only_unknown.outlook().color is Color.UNKNOWN


def test_an_open_ended_interval_keeps_the_span_open() -> None:
    item = Vigilance(
        departement="74",
        phenomenon=Phenomenon.AVALANCHES,
        timeline=(Interval(begin=hours(0), end=None, color=Color.ORANGE),),
        source=Source.METEOALARM,
    )
    outlook = item.outlook(hours(1000))
    assert (outlook.color, outlook.end, outlook.until) == (Color.ORANGE, None, None)


def test_combine_joins_timelines_of_the_same_pair_and_sorts_them() -> None:
    j1 = vigilance((18, 42, Color.ORANGE))
    j = vigilance((0, 18, Color.YELLOW))
    other = vigilance((0, 18, Color.RED), dep="13")
    combined = combine([j1, j, other, j])
    assert [v.departement for v in combined] == ["13", "45"]
    assert [(i.begin, i.color) for i in combined[1].timeline] == [(hours(0), Color.YELLOW), (hours(18), Color.ORANGE)]


def test_combine_keeps_distinct_unknown_phenomena_apart() -> None:
    def unknown(raw: str) -> Vigilance:
        return Vigilance(
            departement="45",
            phenomenon=Phenomenon.UNKNOWN,
            timeline=(Interval(begin=hours(0), end=hours(1), color=Color.ORANGE),),
            source=Source.METEOFRANCE,
            raw_phenomenon=raw,
        )

    assert len(combine([unknown("10"), unknown("11"), unknown("10")])) == 2


def test_snapshot_refuses_duplicates_and_mixed_sources() -> None:
    identity = DocumentIdentity(source=Source.METEOFRANCE, product="cartevigilance", update_time=T0)
    item = vigilance((0, 1, Color.ORANGE))
    with pytest.raises(ValidationError, match="en double"):
        VigilanceSnapshot(identity=identity, vigilances=(item, item))
    foreign = item.model_copy(update={"source": Source.METEOALARM})
    with pytest.raises(ValidationError, match="source"):
        VigilanceSnapshot(identity=identity, vigilances=(foreign,))


def test_snapshot_lookup_coverage_and_alerts() -> None:
    identity = DocumentIdentity(source=Source.METEOFRANCE, product="warning-full/45", update_time=T0)
    orange = vigilance((0, 10, Color.ORANGE))
    yellow = vigilance((0, 10, Color.YELLOW), phen=Phenomenon.ORAGES)
    snapshot = VigilanceSnapshot(
        identity=identity,
        vigilances=(orange, yellow),
        coverage=frozenset({("45", Phenomenon.CANICULE), ("45", Phenomenon.ORAGES)}),
    )
    assert snapshot.get("45", Phenomenon.CANICULE) == orange
    assert snapshot.get("13", Phenomenon.CANICULE) is None
    assert snapshot.covers("45", Phenomenon.ORAGES)
    assert not snapshot.covers("13", Phenomenon.CANICULE)
    assert not snapshot.covers("45", Phenomenon.VENT_VIOLENT)
    assert snapshot.alerts(hours(1)) == (orange,)
    assert snapshot.alerts(hours(11)) == ()
    national = VigilanceSnapshot(identity=identity)
    assert national.covers("2B", Phenomenon.AVALANCHES)
    # A snapshot survives a JSON round trip (the poller may keep the last one).
    assert VigilanceSnapshot.model_validate_json(snapshot.model_dump_json()) == snapshot


def test_document_identity_decides_what_is_unchanged() -> None:
    a = DocumentIdentity(source=Source.METEOFRANCE, product="cartevigilance", update_time=T0, snapshot_id="s1")
    assert a.same_document(a.model_copy(update={"etag": '"x"'}))
    assert not a.same_document(a.model_copy(update={"snapshot_id": "s2"}))
    assert not a.same_document(a.model_copy(update={"update_time": hours(1)}))
    assert not a.same_document(a.model_copy(update={"source": Source.METEOALARM}))
    assert not a.same_document(a.model_copy(update={"product": "textesvigilance"}))
    assert not a.same_document(None)
    bare = DocumentIdentity(source=Source.METEOFRANCE, product="cartevigilance")
    assert not bare.same_document(bare)  # nothing to compare: never skip
    assert a.key == "meteofrance:cartevigilance:2025-07-06T06:00:00Z:s1"
