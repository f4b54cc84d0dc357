from datetime import UTC, date, datetime, timedelta

import pytest

from crieur.models import PARIS
from crieur.quiet_hours import describe, easter_sunday, is_quiet, next_allowed, public_holidays


def paris(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (1818, date(1818, 3, 22)),  # the earliest possible date
        (1943, date(1943, 4, 25)),  # the latest possible date
        (2000, date(2000, 4, 23)),
        (2008, date(2008, 3, 23)),
        (2019, date(2019, 4, 21)),
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2038, date(2038, 4, 25)),
    ],
)
def test_easter_sunday(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter
    assert easter.weekday() == 6


def test_the_eleven_national_holidays_of_2026() -> None:
    assert public_holidays(2026) == {
        date(2026, 1, 1): "Jour de l'an",
        date(2026, 4, 6): "Lundi de Pâques",
        date(2026, 5, 1): "Fête du travail",
        date(2026, 5, 8): "Victoire 1945",
        date(2026, 5, 14): "Ascension",
        date(2026, 5, 25): "Lundi de Pentecôte",
        date(2026, 7, 14): "Fête nationale",
        date(2026, 8, 15): "Assomption",
        date(2026, 11, 1): "Toussaint",
        date(2026, 11, 11): "Armistice 1918",
        date(2026, 12, 25): "Noël",
    }


def test_easter_based_holidays_move_with_easter() -> None:
    holidays = public_holidays(2027)
    assert holidays[date(2027, 3, 29)] == "Lundi de Pâques"
    assert holidays[date(2027, 5, 6)] == "Ascension"
    assert holidays[date(2027, 5, 17)] == "Lundi de Pentecôte"
    assert date(2027, 4, 6) not in holidays  # 2026's Easter Monday is an ordinary Tuesday in 2027


@pytest.mark.parametrize(
    ("moment", "quiet"),
    [
        (paris(2026, 11, 27, 7, 59), True),  # a Friday, before 8:00
        (paris(2026, 11, 27, 8, 0), False),
        (paris(2026, 11, 27, 21, 59), False),
        (paris(2026, 11, 27, 22, 0), True),
        (paris(2026, 11, 28, 12, 0), False),  # Saturday daytime is allowed
        (paris(2026, 11, 29, 12, 0), True),  # Sunday
        (paris(2026, 12, 25, 12, 0), True),  # Christmas, a Friday
        (paris(2026, 4, 6, 12, 0), True),  # Easter Monday
        (paris(2026, 5, 14, 12, 0), True),  # Ascension Thursday
        (paris(2026, 5, 25, 12, 0), True),  # Whit Monday
        (paris(2026, 5, 26, 12, 0), False),
    ],
)
def test_is_quiet(moment: datetime, quiet: bool) -> None:
    assert is_quiet(moment) is quiet
    assert is_quiet(moment.astimezone(UTC)) is quiet  # the same instant, whatever its offset


def test_an_allowed_moment_is_kept() -> None:
    moment = paris(2026, 11, 27, 10, 30)
    assert next_allowed(moment) == moment.astimezone(UTC)


@pytest.mark.parametrize(
    ("moment", "opens"),
    [
        (paris(2026, 11, 27, 6, 0), paris(2026, 11, 27, 8, 0)),  # early morning: the same day
        (paris(2026, 11, 26, 22, 30), paris(2026, 11, 27, 8, 0)),  # evening: the next morning
        (paris(2026, 11, 28, 22, 0), paris(2026, 11, 30, 8, 0)),  # Saturday night: Monday, over the Sunday
        # Easter Saturday night: over Sunday and Easter Monday, to Tuesday morning (58 hours later).
        (paris(2026, 4, 4, 22, 0), paris(2026, 4, 7, 8, 0)),
        (paris(2026, 5, 13, 23, 0), paris(2026, 5, 15, 8, 0)),  # the eve of Ascension
        (paris(2026, 12, 24, 22, 15), paris(2026, 12, 26, 8, 0)),  # Christmas Eve: Saturday the 26th
        (paris(2026, 12, 31, 23, 0), paris(2027, 1, 2, 8, 0)),  # New Year's Eve, across the year
    ],
)
def test_next_allowed(moment: datetime, opens: datetime) -> None:
    at = next_allowed(moment)
    assert at == opens
    assert at.tzinfo == UTC
    assert not is_quiet(at)
    assert is_quiet(at - timedelta(minutes=1))


def test_eight_oclock_is_paris_time_across_daylight_saving() -> None:
    # The night the clocks go forward (29 March 2026, a Sunday): Monday 8:00 is 06:00 UTC (summer time).
    assert next_allowed(paris(2026, 3, 28, 23, 0)) == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)
    # The night they go back (25 October 2026, a Sunday): Monday 8:00 is 07:00 UTC (winter time).
    assert next_allowed(paris(2026, 10, 24, 23, 0)) == datetime(2026, 10, 26, 7, 0, tzinfo=UTC)


def test_describe_in_french() -> None:
    assert describe(datetime(2026, 4, 7, 6, 0, tzinfo=UTC)) == "le mardi 7 avril à 8 h"
