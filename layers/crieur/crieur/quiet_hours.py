"""The legal quiet hours of non-urgent SMS in France: none between 22:00 and 08:00 (Paris time), on Sundays
or on public holidays. Alerts are transactional and go out at any time; everything else waits for the
next allowed moment.

Public holidays are the national ones (Code du travail, L3133-1): eleven dates, three of which follow
Easter (Easter Monday, Ascension Thursday, Whit Monday). Easter Sunday is computed with the Gregorian
computus (the "anonymous" algorithm of Meeus, Jones and Butcher).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache

from crieur.models import PARIS, Publication

OPENS = time(8, 0)
"""The first allowed minute of an allowed day (Paris wall time)."""
CLOSES = time(22, 0)
"""From this minute (Paris wall time) nothing non-urgent is sent until the next allowed day."""
SUNDAY = 6
ALERT_CATEGORIES = frozenset({"alert", "weather"})
ALERT_URGENCIES = frozenset({"high", "critical"})

_FIXED = {
    (1, 1): "Jour de l'an",
    (5, 1): "Fête du travail",
    (5, 8): "Victoire 1945",
    (7, 14): "Fête nationale",
    (8, 15): "Assomption",
    (11, 1): "Toussaint",
    (11, 11): "Armistice 1918",
    (12, 25): "Noël",
}


def is_alert(publication: Publication) -> bool:
    """An alert (category alert or weather, urgency high or critical) is sent at any hour, as transactional."""
    return publication.category in ALERT_CATEGORIES or publication.urgency in ALERT_URGENCIES


def easter_sunday(year: int) -> date:
    """Easter Sunday of a Gregorian year."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return date(year, month, day + 1)


@cache
def public_holidays(year: int) -> dict[date, str]:
    """France's national public holidays of a year, with their French names."""
    easter = easter_sunday(year)
    holidays = {date(year, month, day): name for (month, day), name in _FIXED.items()}
    holidays[easter + timedelta(days=1)] = "Lundi de Pâques"
    holidays[easter + timedelta(days=39)] = "Ascension"
    holidays[easter + timedelta(days=50)] = "Lundi de Pentecôte"
    return holidays


def is_allowed_day(day: date) -> bool:
    return day.weekday() != SUNDAY and day not in public_holidays(day.year)


def is_quiet(moment: datetime) -> bool:
    """Whether a non-urgent SMS must not go out at this moment (an aware datetime)."""
    local = moment.astimezone(PARIS)
    return not is_allowed_day(local.date()) or not OPENS <= local.time() < CLOSES


def next_allowed(moment: datetime) -> datetime:
    """The moment itself when sending is allowed, else the next 08:00 (Paris) of an allowed day, in UTC."""
    if not is_quiet(moment):
        return moment.astimezone(UTC)
    local = moment.astimezone(PARIS)
    day = local.date() if local.time() < OPENS else local.date() + timedelta(days=1)
    while not is_allowed_day(day):
        day += timedelta(days=1)
    return datetime.combine(day, OPENS, tzinfo=PARIS).astimezone(UTC)


def describe(moment: datetime) -> str:
    """A moment as the mairie reads it: « le lundi 6 avril à 8 h » (Paris time)."""
    from crieur.weather.templates import format_moment

    return format_moment(moment)
