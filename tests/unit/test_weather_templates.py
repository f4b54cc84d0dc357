"""French texts: wording, Europe/Paris times across the DST changes, advice, urgency, expiry."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime

import pytest

from crieur.weather.departments import METROPOLITAN_DEPARTEMENTS
from crieur.weather.diff import EventKind, VigilanceEvent, alert_key
from crieur.weather.model import Color, Phenomenon, Source
from crieur.weather.templates import (
    ADVICE,
    COLOR_MEANING,
    TITLE_MAX,
    VIGILANCE_URL,
    alert_message,
    end_message,
    format_moment,
    format_period,
    render,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


BEGIN = utc(2025, 7, 6, 8)
END = utc(2025, 7, 7, 22)


def event(
    kind: EventKind = EventKind.NEW,
    color: Color = Color.ORANGE,
    *,
    departement: str = "2A",
    phenomenon: Phenomenon = Phenomenon.CANICULE,
    begin: datetime = BEGIN,
    end: datetime = END,
    until: datetime | None = None,
    previous: Color | None = None,
    reason: str | None = None,
) -> VigilanceEvent:
    key = alert_key(departement, phenomenon, color if color.is_alert else Color.ORANGE, begin)
    return VigilanceEvent(
        kind=kind,
        departement=departement,
        phenomenon=phenomenon,
        color=color,
        previous_color=previous,
        begin=begin,
        end=end,
        until=until or end,
        alert_key=key,
        related_keys=(key,),
        dedupe_key=key,
        reason=reason,  # type: ignore[arg-type]
        source=Source.METEOFRANCE,
        document="test",
    )


def last_sunday(year: int, month: int) -> date:
    last = calendar.monthrange(year, month)[1]
    return max(date(year, month, d) for d in range(last - 6, last + 1) if date(year, month, d).weekday() == 6)


def test_the_dst_dates_used_below_are_the_last_sundays() -> None:
    assert last_sunday(2026, 3) == date(2026, 3, 29)
    assert last_sunday(2026, 10) == date(2026, 10, 25)


# -- new orange, the whole message -------------------------------------------------------------------------------


def test_new_orange_canicule() -> None:
    message = render(event())
    assert message.title == "Vigilance orange canicule : Corse-du-Sud (2A)"
    assert message.body.startswith(
        "Météo-France place la Corse-du-Sud (2A) en vigilance orange canicule "
        "du dimanche 6 juillet à 10 h au lundi 7 juillet à minuit."
    )
    assert COLOR_MEANING[Color.ORANGE] in message.body
    assert "- Buvez de l'eau régulièrement" in message.body
    assert "0 800 06 66 66" in message.body
    assert message.body.rstrip().endswith(f"Carte et bulletins de vigilance : {VIGILANCE_URL}")
    assert message.urgency == "high"
    assert message.category == "weather"
    assert message.expires_at == utc(2025, 7, 7, 22)
    assert [(link.url, link.label) for link in message.links] == [(VIGILANCE_URL, "Carte de vigilance Météo-France")]


def test_once_begun_it_reads_until() -> None:
    message = render(event(), now=utc(2025, 7, 6, 9))
    assert "en vigilance orange canicule jusqu'au lundi 7 juillet à minuit." in message.body


def test_red_is_critical_and_says_when_orange_follows() -> None:
    message = render(
        event(
            EventKind.UPGRADE,
            Color.RED,
            previous=Color.ORANGE,
            phenomenon=Phenomenon.ORAGES,
            departement="13",
            begin=utc(2025, 9, 1, 12),
            end=utc(2025, 9, 1, 18),
            until=utc(2025, 9, 2, 4),
        )
    )
    assert message.title == "Vigilance rouge orages : Bouches-du-Rhône (13)"
    assert message.body.startswith(
        "Météo-France relève la vigilance orages de l'orange au rouge pour les Bouches-du-Rhône (13) : "
        "vigilance rouge orages le lundi 1er septembre, de 14 h à 20 h."
    )
    assert "La vigilance reste ensuite orange jusqu'au mardi 2 septembre à 6 h." in message.body
    assert COLOR_MEANING[Color.RED] in message.body
    assert message.urgency == "critical"
    assert message.expires_at == utc(2025, 9, 2, 4)


def test_update_and_lowering() -> None:
    update = render(event(EventKind.UPDATE, previous=Color.ORANGE, end=utc(2025, 7, 8, 22)), now=utc(2025, 7, 7))
    assert update.title == "Vigilance orange canicule : Corse-du-Sud (2A), mise à jour"
    assert update.body.startswith(
        "Mise à jour de Météo-France : vigilance orange canicule pour la Corse-du-Sud (2A) "
        "jusqu'au mardi 8 juillet à minuit."
    )
    lowered = render(event(EventKind.UPDATE, Color.ORANGE, previous=Color.RED, departement="75"))
    assert lowered.title == "Vigilance canicule abaissée en orange : Paris (75)"
    assert lowered.body.startswith("Météo-France abaisse la vigilance canicule du rouge à l'orange pour Paris (75) :")
    assert lowered.urgency == "high"


def test_end_messages() -> None:
    lowered = render(event(EventKind.END, Color.YELLOW, previous=Color.ORANGE, reason="lowered", departement="01"))
    assert lowered.title == "Fin de vigilance orange canicule : Ain (01)"
    assert lowered.body.startswith("Météo-France lève la vigilance orange canicule pour l'Ain (01).")
    assert "reste en vigilance jaune" in lowered.body
    assert lowered.urgency == "normal"
    assert lowered.expires_at is None
    assert lowered.links[0].url == VIGILANCE_URL
    green = end_message(event(EventKind.END, Color.GREEN, previous=Color.RED, reason="absent", departement="13"))
    assert green.title == "Fin de vigilance rouge canicule : Bouches-du-Rhône (13)"
    assert "jaune" not in green.body
    expired = end_message(event(EventKind.END, Color.GREEN, previous=Color.ORANGE, reason="expired"))
    assert expired.body.startswith(
        "La vigilance orange canicule pour la Corse-du-Sud (2A) a pris fin le lundi 7 juillet à minuit."
    )


def test_every_phenomenon_has_advice_for_orange_and_red() -> None:
    for phenomenon in Phenomenon:
        if phenomenon is Phenomenon.UNKNOWN:
            assert phenomenon not in ADVICE
            continue
        for color in (Color.ORANGE, Color.RED):
            advice = ADVICE[phenomenon][color]
            assert 3 <= len(advice) <= 8
            assert all(line.endswith(".") and line[0].isupper() for line in advice)
            body = render(event(color=color, phenomenon=phenomenon)).body
            assert all(f"- {line}" in body for line in advice)


def test_titles_fit_everywhere() -> None:
    for departement in METROPOLITAN_DEPARTEMENTS:
        for phenomenon in Phenomenon:
            if phenomenon is Phenomenon.UNKNOWN:
                continue
            messages = [
                render(event(EventKind.NEW, Color.RED, departement=departement, phenomenon=phenomenon)),
                render(
                    event(
                        EventKind.UPDATE,
                        Color.ORANGE,
                        previous=Color.RED,
                        departement=departement,
                        phenomenon=phenomenon,
                    )
                ),
                render(
                    event(
                        EventKind.UPDATE,
                        Color.ORANGE,
                        previous=Color.ORANGE,
                        departement=departement,
                        phenomenon=phenomenon,
                    )
                ),
                render(
                    event(
                        EventKind.END,
                        Color.YELLOW,
                        previous=Color.ORANGE,
                        reason="lowered",
                        departement=departement,
                        phenomenon=phenomenon,
                    )
                ),
            ]
            for message in messages:
                assert 1 <= len(message.title) <= TITLE_MAX
                assert len(message.body) <= 10_000
                assert departement in message.title


def test_no_alert_text_for_unknown_or_non_alert_colours() -> None:
    with pytest.raises(ValueError, match="pas une alerte"):
        alert_message(event(color=Color.YELLOW))
    with pytest.raises(ValueError, match="pas une alerte"):
        alert_message(event(color=Color.UNKNOWN))
    with pytest.raises(ValueError, match="pas une alerte"):
        alert_message(event(phenomenon=Phenomenon.UNKNOWN))
    with pytest.raises(ValueError, match="pas une fin"):
        end_message(event())


# -- when: Paris wall time -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("begin", "end", "text"),
    [
        (utc(2025, 7, 6, 8), utc(2025, 7, 6, 16), "le dimanche 6 juillet, de 10 h à 18 h"),
        (utc(2025, 7, 6, 8, 30), utc(2025, 7, 7, 4, 15), "du dimanche 6 juillet à 10 h 30 au lundi 7 juillet à 6 h 15"),
        (utc(2025, 7, 5, 22), utc(2025, 7, 6, 22), "le dimanche 6 juillet, de 0 h à minuit"),
        (utc(2025, 1, 31, 23), utc(2025, 2, 1, 12), "le samedi 1er février, de 0 h à 13 h"),
        (
            utc(2025, 12, 31, 17),
            utc(2026, 1, 1, 5),
            "du mercredi 31 décembre 2025 à 18 h au jeudi 1er janvier 2026 à 6 h",
        ),
        (utc(2025, 12, 1, 5), utc(2025, 12, 2, 23), "du lundi 1er décembre à 6 h au mardi 2 décembre à minuit"),
    ],
)
def test_periods(begin: datetime, end: datetime, text: str) -> None:
    assert format_period(begin, end) == text


def test_open_and_started_periods() -> None:
    assert format_period(utc(2025, 7, 6, 8), None) == "à partir du dimanche 6 juillet à 10 h"
    assert format_period(utc(2025, 7, 6, 8), None, now=utc(2025, 7, 6, 9)) == "jusqu'à nouvel ordre"
    assert format_period(utc(2025, 7, 6, 8), utc(2025, 7, 6, 16), now=utc(2025, 7, 6, 8)) == (
        "jusqu'au dimanche 6 juillet à 18 h"
    )
    assert format_period(utc(2025, 7, 6, 8), utc(2025, 7, 6, 16), now=utc(2025, 7, 6, 7)) == (
        "le dimanche 6 juillet, de 10 h à 18 h"
    )


def test_last_sunday_of_march_clocks_go_forward() -> None:
    # 29 March 2026: 02:00 CET becomes 03:00 CEST (01:00 UTC). Before it Paris is UTC+1, after it UTC+2.
    assert format_period(utc(2026, 3, 28, 22), utc(2026, 3, 29, 4)) == (
        "du samedi 28 mars à 23 h au dimanche 29 mars à 6 h"
    )
    assert format_period(utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30)) == "le dimanche 29 mars, de 1 h 30 à 3 h 30"
    # The 23-hour day is still "de 0 h à minuit".
    assert format_period(utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)) == "le dimanche 29 mars, de 0 h à minuit"
    # The same UTC times one week earlier are one hour earlier in Paris.
    assert format_period(utc(2026, 3, 21, 22), utc(2026, 3, 22, 4)) == (
        "du samedi 21 mars à 23 h au dimanche 22 mars à 5 h"
    )
    assert format_moment(utc(2026, 3, 29, 1)) == "le dimanche 29 mars à 3 h"


def test_last_sunday_of_october_clocks_go_back() -> None:
    # 25 October 2026: 03:00 CEST becomes 02:00 CET (01:00 UTC): 2 h 30 happens twice, and says which.
    assert format_period(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)) == (
        "le dimanche 25 octobre, de 2 h 30 (heure d'été) à 2 h 30 (heure d'hiver)"
    )
    assert format_moment(utc(2026, 10, 25, 1)) == "le dimanche 25 octobre à 2 h (heure d'hiver)"
    assert format_moment(utc(2026, 10, 25, 0)) == "le dimanche 25 octobre à 2 h (heure d'été)"
    # Times that occur once are not annotated, and the 25-hour day is "de 0 h à minuit".
    assert format_period(utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)) == "le dimanche 25 octobre, de 0 h à minuit"
    assert format_period(utc(2026, 10, 24, 20), utc(2026, 10, 25, 5)) == (
        "du samedi 24 octobre à 22 h au dimanche 25 octobre à 6 h"
    )


def test_a_message_across_the_october_change() -> None:
    message = render(
        event(
            phenomenon=Phenomenon.VENT_VIOLENT,
            departement="29",
            begin=utc(2026, 10, 24, 20),
            end=utc(2026, 10, 25, 11),
        ),
        now=utc(2026, 10, 24, 12),
    )
    assert "du samedi 24 octobre à 22 h au dimanche 25 octobre à 12 h." in message.body
    assert message.expires_at == utc(2026, 10, 25, 11)
    assert message.body.startswith("Météo-France place le Finistère (29) en vigilance orange vent violent")
