"""State × snapshot → new / upgrade / update / end events, keys, idempotency, both sources."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from crieur.weather.diff import (
    EventKind,
    StoredAlert,
    VigilanceEvent,
    alert_key,
    diff,
    expire,
    index_state,
)
from crieur.weather.meteoalarm import parse_cap, snapshot_from_cap
from crieur.weather.meteofrance import parse_carte
from crieur.weather.model import (
    Color,
    DocumentIdentity,
    Interval,
    Phenomenon,
    Source,
    Vigilance,
    VigilanceSnapshot,
)
from crieur.weather.samples import SampleAlert, SampleCap, cap_message, carte_document

T0 = datetime(2025, 7, 6, 4, 0, tzinfo=UTC)
CANICULE = Phenomenon.CANICULE


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def snapshot(
    *items: tuple[str, Phenomenon, Iterable[tuple[float, float, Color]]],
    source: Source = Source.METEOFRANCE,
    coverage: frozenset[tuple[str, Phenomenon]] | None = None,
    version: str = "1",
) -> VigilanceSnapshot:
    return VigilanceSnapshot(
        identity=DocumentIdentity(source=source, product="test", snapshot_id=version),
        vigilances=tuple(
            Vigilance(
                departement=dep,
                phenomenon=phen,
                timeline=tuple(Interval(begin=at(a), end=at(b), color=c) for a, b, c in laps),
                source=source,
            )
            for dep, phen, laps in items
        ),
        coverage=coverage,
    )


def kinds(events: Iterable[VigilanceEvent]) -> list[tuple[EventKind, str, str, Color]]:
    return [(e.kind, e.departement, e.phenomenon.value, e.color) for e in events]


ORANGE_45 = ("45", CANICULE, [(0, 6, Color.GREEN), (6, 40, Color.ORANGE), (40, 44, Color.YELLOW)])


def test_orange_appears_new_event_and_state() -> None:
    result = diff({}, snapshot(ORANGE_45), at(1))
    (event,) = result.events
    assert kinds(result.events) == [(EventKind.NEW, "45", "canicule", Color.ORANGE)]
    assert (event.begin, event.end, event.until) == (at(6), at(40), at(40))
    assert event.alert_key == event.dedupe_key == "45:canicule:orange:2025-07-06T10:00Z"
    assert event.related_keys == (event.alert_key,)
    stored = result.state[("45", CANICULE)]
    assert (stored.color, stored.begin, stored.end, stored.alert_keys) == (
        Color.ORANGE,
        at(6),
        at(40),
        (event.alert_key,),
    )
    assert result.changed_departements == {"45"}
    assert result.state_of("45") == (stored,)
    assert result.state_of("13") == ()


def test_yellow_and_green_are_not_broadcast_nor_stored() -> None:
    result = diff(
        {}, snapshot(("45", CANICULE, [(0, 40, Color.YELLOW)]), ("13", CANICULE, [(0, 40, Color.GREEN)])), at(1)
    )
    assert result.events == ()
    assert result.state == {}
    assert result.changed_departements == frozenset()


def test_red_straight_away_is_new_red() -> None:
    result = diff({}, snapshot(("13", Phenomenon.ORAGES, [(2, 8, Color.RED)])), at(1))
    assert kinds(result.events) == [(EventKind.NEW, "13", "orages", Color.RED)]


def test_re_running_on_the_same_snapshot_gives_nothing() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    for later in (1, 2, 5.5, 7, 30):
        again = diff(first.state, snapshot(ORANGE_45), at(later))
        assert again.events == ()
        assert again.state == first.state
        assert again.changed_departements == frozenset()


def test_the_same_inputs_give_the_same_keys() -> None:
    assert diff({}, snapshot(ORANGE_45), at(1)).events == diff({}, snapshot(ORANGE_45), at(1)).events


def test_orange_to_red_is_an_upgrade_with_its_own_key() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    red = ("45", CANICULE, [(0, 6, Color.GREEN), (6, 20, Color.ORANGE), (20, 30, Color.RED), (30, 40, Color.ORANGE)])
    result = diff(first.state, snapshot(red, version="2"), at(8))
    (event,) = result.events
    assert (event.kind, event.color, event.previous_color) == (EventKind.UPGRADE, Color.RED, Color.ORANGE)
    assert (event.begin, event.end, event.until) == (at(20), at(30), at(40))
    assert event.alert_key == event.dedupe_key == alert_key("45", CANICULE, Color.RED, at(20))
    orange_key = first.events[0].alert_key
    assert event.related_keys == (orange_key, event.alert_key)
    assert result.state[("45", CANICULE)].alert_keys == (orange_key, event.alert_key)
    assert result.state[("45", CANICULE)].color is Color.RED
    assert diff(result.state, snapshot(red, version="2"), at(9)).events == ()


def test_red_lowered_to_orange_is_an_update() -> None:
    red = ("45", CANICULE, [(6, 20, Color.ORANGE), (20, 30, Color.RED), (30, 40, Color.ORANGE)])
    first = diff({}, snapshot(red), at(1))
    lowered = ("45", CANICULE, [(6, 40, Color.ORANGE)])
    (event,) = diff(first.state, snapshot(lowered, version="2"), at(21)).events
    assert (event.kind, event.color, event.previous_color) == (EventKind.UPDATE, Color.ORANGE, Color.RED)
    assert event.alert_key == first.events[0].alert_key


def test_changed_times_are_an_update_once() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    longer = ("45", CANICULE, [(0, 6, Color.GREEN), (6, 52, Color.ORANGE)])
    result = diff(first.state, snapshot(longer, version="2"), at(8))
    (event,) = result.events
    assert (event.kind, event.color, event.begin, event.end, event.until) == (
        EventKind.UPDATE,
        Color.ORANGE,
        at(6),
        at(52),
        at(52),
    )
    assert event.alert_key == first.events[0].alert_key
    assert event.dedupe_key.startswith(f"{event.alert_key}#update:orange:")
    assert event.dedupe_key != event.alert_key
    assert diff(result.state, snapshot(longer, version="3"), at(9)).events == ()


def test_a_future_start_that_moves_is_an_update() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    later_start = ("45", CANICULE, [(0, 9, Color.GREEN), (9, 40, Color.ORANGE)])
    (event,) = diff(first.state, snapshot(later_start, version="2"), at(2)).events
    assert (event.kind, event.begin) == (EventKind.UPDATE, at(9))


def test_the_rolling_start_of_a_new_carte_is_not_an_update() -> None:
    # Once the vigilance has begun, each new carte's J period starts later: the weather did not change.
    first = diff({}, snapshot(ORANGE_45), at(1))
    rolled = ("45", CANICULE, [(20, 40, Color.ORANGE), (40, 44, Color.YELLOW)])
    result = diff(first.state, snapshot(rolled, version="2"), at(20))
    assert result.events == ()
    assert result.state[("45", CANICULE)].begin == at(6)


def test_back_to_yellow_ends_it() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    result = diff(first.state, snapshot(("45", CANICULE, [(10, 44, Color.YELLOW)]), version="2"), at(10))
    (event,) = result.events
    assert (event.kind, event.color, event.previous_color, event.reason) == (
        EventKind.END,
        Color.YELLOW,
        Color.ORANGE,
        "lowered",
    )
    assert event.alert_key == first.events[0].alert_key
    assert event.dedupe_key == f"{first.events[0].alert_key}#end"
    assert result.state == {}
    assert result.changed_departements == {"45"}
    assert diff(result.state, snapshot(("45", CANICULE, [(10, 44, Color.YELLOW)]), version="2"), at(11)).events == ()


def test_back_to_green_ends_it() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    (event,) = diff(first.state, snapshot(("45", CANICULE, [(10, 44, Color.GREEN)])), at(10)).events
    assert (event.kind, event.color, event.reason) == (EventKind.END, Color.GREEN, "lowered")


def test_gone_from_a_national_document_ends_it() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    (event,) = diff(first.state, snapshot(("13", CANICULE, [(0, 44, Color.GREEN)])), at(10)).events
    assert (event.kind, event.departement, event.reason) == (EventKind.END, "45", "absent")


def test_a_partial_document_never_ends_what_it_does_not_cover() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    coastal = snapshot(
        ("45", Phenomenon.ORAGES, [(0, 44, Color.GREEN)]),
        coverage=frozenset({("45", Phenomenon.ORAGES)}),
    )
    result = diff(first.state, coastal, at(10))
    assert result.events == ()
    assert result.state == first.state


def test_expired_in_the_document_ends_it() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    stale = ("45", CANICULE, [(6, 20, Color.ORANGE)])
    (event,) = diff(first.state, snapshot(stale, version="2"), at(21)).events
    assert (event.kind, event.reason, event.color) == (EventKind.END, "expired", Color.GREEN)


def test_an_alert_whose_end_has_passed_ends_even_when_the_document_still_shows_it() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    result = diff(first.state, snapshot(ORANGE_45), at(41))
    assert kinds(result.events) == [(EventKind.END, "45", "canicule", Color.GREEN)]
    assert result.events[0].reason == "expired"
    assert result.state == {}


def test_a_late_extension_continues_the_episode() -> None:
    # The stored end has passed, but the new carte extends it from before that end: one episode, an update.
    first = diff({}, snapshot(ORANGE_45), at(1))
    extended = ("45", CANICULE, [(30, 60, Color.ORANGE)])
    (event,) = diff(first.state, snapshot(extended, version="2"), at(40.5)).events
    assert (event.kind, event.begin, event.until) == (EventKind.UPDATE, at(6), at(60))


def test_a_new_episode_after_the_end_is_end_then_new() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    next_one = ("45", CANICULE, [(48, 60, Color.ORANGE)])
    result = diff(first.state, snapshot(next_one, version="2"), at(41))
    assert kinds(result.events) == [
        (EventKind.END, "45", "canicule", Color.GREEN),
        (EventKind.NEW, "45", "canicule", Color.ORANGE),
    ]
    assert result.events[1].alert_key == alert_key("45", CANICULE, Color.ORANGE, at(48))


def test_expire_without_a_document() -> None:
    first = diff({}, snapshot(ORANGE_45, ("13", Phenomenon.ORAGES, [(2, 8, Color.RED)])), at(1))
    assert expire(first.state, at(7)).events == ()
    result = expire(first.state, at(8))
    assert kinds(result.events) == [(EventKind.END, "13", "orages", Color.GREEN)]
    assert set(result.state) == {("45", CANICULE)}
    assert result.changed_departements == {"13"}
    assert expire(result.state, at(8)).events == ()


def test_unknown_colour_no_broadcast_a_warning_and_the_state_kept() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    unknown = ("45", CANICULE, [(0, 44, Color.UNKNOWN)])
    result = diff(first.state, snapshot(unknown, version="2"), at(8))
    assert result.events == ()
    assert result.state == first.state
    assert any("couleur inconnue" in w for w in result.warnings)
    fresh = diff({}, snapshot(unknown), at(8))
    assert fresh.events == ()
    assert fresh.state == {}
    assert fresh.warnings


def test_unknown_colour_next_to_orange_does_not_raise_it() -> None:
    mixed = ("45", CANICULE, [(6, 20, Color.ORANGE), (20, 30, Color.UNKNOWN)])
    result = diff({}, snapshot(mixed), at(1))
    assert kinds(result.events) == [(EventKind.NEW, "45", "canicule", Color.ORANGE)]
    assert result.events[0].end == at(20)
    assert any("couleur inconnue ignorée" in w for w in result.warnings)


def test_unknown_phenomenon_no_broadcast_a_warning() -> None:
    item = Vigilance(
        departement="45",
        phenomenon=Phenomenon.UNKNOWN,
        timeline=(Interval(begin=at(0), end=at(10), color=Color.RED),),
        source=Source.METEOFRANCE,
        raw_phenomenon="10",
    )
    odd = VigilanceSnapshot(identity=DocumentIdentity(source=Source.METEOFRANCE, product="t"), vigilances=(item,))
    result = diff({}, odd, at(1))
    assert result.events == ()
    assert result.state == {}
    assert any("phénomène inconnu '10'" in w for w in result.warnings)


def test_both_sources_agreeing_give_one_key() -> None:
    """The same orange canicule in the 45 read from Météo-France and from MeteoAlarm."""
    begin, end = datetime(2025, 7, 6, 10, 0, tzinfo=UTC), datetime(2025, 7, 7, 20, 0, tzinfo=UTC)
    carte = parse_carte(carte_document(T0, [SampleAlert("45", CANICULE, Color.ORANGE, begin, end)]))
    message = SampleCap(
        identifier="2.49.0.0.250.0.FR.20250706060000.1",
        sent=T0,
        color=Color.ORANGE,
        phenomenon=CANICULE,
        departements=("45",),
        onset=begin,
        expires=end,
    )
    cap = snapshot_from_cap([parse_cap(cap_message(message))], at(1))
    from_mf = diff({}, carte, at(1))
    from_ma = diff({}, cap, at(1))
    assert [e.dedupe_key for e in from_mf.events] == [e.dedupe_key for e in from_ma.events]
    assert len({e.dedupe_key for e in (*from_mf.events, *from_ma.events)}) == 1
    # After one source has been processed, the other adds nothing; and back again.
    assert diff(from_mf.state, cap, at(2)).events == ()
    assert diff(from_ma.state, carte, at(2)).events == ()


def test_stored_alerts_round_trip_through_json_and_refuse_what_is_not_an_alert() -> None:
    state = diff({}, snapshot(ORANGE_45), at(1)).state
    (stored,) = state.values()
    assert StoredAlert.model_validate_json(stored.model_dump_json()) == stored
    assert index_state([StoredAlert.model_validate(stored.model_dump(mode="json"))]) == state
    with pytest.raises(ValidationError, match="orange et rouge"):
        stored.model_validate({**stored.model_dump(), "color": "yellow"})
    with pytest.raises(ValidationError, match="orange et rouge"):
        stored.model_validate({**stored.model_dump(), "color": "unknown"})
    with pytest.raises(ValidationError, match="jamais gardé"):
        stored.model_validate({**stored.model_dump(), "phenomenon": "unknown"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        stored.model_validate({**stored.model_dump(), "extra": 1})


def test_diff_accepts_a_list_of_stored_alerts() -> None:
    first = diff({}, snapshot(ORANGE_45), at(1))
    assert diff(list(first.state.values()), snapshot(ORANGE_45), at(2)).events == ()


def test_keys_are_utc_to_the_minute() -> None:
    from zoneinfo import ZoneInfo

    paris = datetime(2025, 7, 6, 12, 0, 59, tzinfo=ZoneInfo("Europe/Paris"))
    assert alert_key("2A", CANICULE, Color.RED, paris) == "2A:canicule:red:2025-07-06T10:00Z"
