"""Synthetic documents in the real shapes, for tests and the local sandbox ("orange canicule in the 45").

No real `cartevigilance/encours` payload is public (fixtures/weather/SOURCES.md): `carte_document` follows the
schema documented in reference/weather.md (field names from openHAB's DTOs). `cap_message` and `atom_feed`
follow the real Météo-France-via-MeteoAlarm capture in fixtures/weather/. Nothing here is real data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final
from xml.sax.saxutils import escape

from crieur.weather.departments import METROPOLITAN_DEPARTEMENTS, NUTS3_2013, departement_name
from crieur.weather.model import PARIS, Color, Phenomenon

_COLOR_IDS: Final = {Color.GREEN: 1, Color.YELLOW: 2, Color.ORANGE: 3, Color.RED: 4}
_AWARENESS_TYPES: Final = {
    Phenomenon.VENT_VIOLENT: "1; Wind",
    Phenomenon.NEIGE_VERGLAS: "2; snow-ice",
    Phenomenon.ORAGES: "3; Thunderstorm",
    Phenomenon.CANICULE: "5; high-temperature",
    Phenomenon.GRAND_FROID: "6; low-temperature",
    Phenomenon.VAGUES_SUBMERSION: "7; coastalevent",
    Phenomenon.AVALANCHES: "9; avalanches",
    Phenomenon.CRUES: "12; flooding",
    Phenomenon.PLUIE_INONDATION: "13; rain-flood",
}
_AWARENESS_LEVELS: Final = {
    Color.GREEN: "1; green; Minor",
    Color.YELLOW: "2; yellow; Moderate",
    Color.ORANGE: "3; orange; Severe",
    Color.RED: "4; red; Extreme",
}
_EVERYWHERE: Final = (
    Phenomenon.VENT_VIOLENT,
    Phenomenon.PLUIE_INONDATION,
    Phenomenon.ORAGES,
    Phenomenon.CRUES,
    Phenomenon.NEIGE_VERGLAS,
    Phenomenon.CANICULE,
    Phenomenon.GRAND_FROID,
)
"""Listed for every département; avalanches and vagues-submersion only where an alert asks for them."""


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SampleAlert:
    departement: str
    phenomenon: Phenomenon
    color: Color
    begin: datetime
    end: datetime


def periods_for(update_time: datetime) -> tuple[tuple[str, datetime, datetime], ...]:
    """J: from the update to the next Paris midnight; J1: the following Paris day."""
    local = update_time.astimezone(PARIS)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=PARIS)
    following = datetime.combine(local.date() + timedelta(days=2), time(0), tzinfo=PARIS)
    return (
        ("J", update_time.astimezone(UTC), midnight.astimezone(UTC)),
        ("J1", midnight.astimezone(UTC), following.astimezone(UTC)),
    )


def _laps(begin: datetime, end: datetime, alerts: list[SampleAlert]) -> list[dict[str, Any]]:
    laps: list[dict[str, Any]] = []
    cursor = begin
    for alert in sorted(alerts, key=lambda a: a.begin):
        start, stop = max(alert.begin, begin), min(alert.end, end)
        if stop <= start:
            continue
        if start > cursor:
            laps.append({"begin_time": _z(cursor), "end_time": _z(start), "color_id": 1})
        laps.append({"begin_time": _z(start), "end_time": _z(stop), "color_id": _COLOR_IDS[alert.color]})
        cursor = stop
    if cursor < end:
        laps.append({"begin_time": _z(cursor), "end_time": _z(end), "color_id": 1})
    return laps


def carte_document(
    update_time: datetime,
    alerts: Iterable[SampleAlert] = (),
    *,
    snapshot_id: str = "sample-0001",
    departements: Iterable[str] = METROPOLITAN_DEPARTEMENTS,
) -> dict[str, Any]:
    """A national `cartevigilance/encours` answer ({"product", "meta"}), green except for `alerts`."""
    chosen = list(alerts)
    periods = []
    for echeance, begin, end in periods_for(update_time):
        domains: dict[str, dict[str, Any]] = {}
        for departement in sorted(departements):
            domains[departement] = {"domain_id": departement, "max_color_id": 1, "phenomenon_items": []}
            for phenomenon in _EVERYWHERE:
                domains[departement]["phenomenon_items"].append(_item(departement, phenomenon, begin, end, chosen))
        for alert in chosen:
            if alert.phenomenon in _EVERYWHERE or alert.phenomenon is Phenomenon.UNKNOWN:
                continue
            domain_id = alert.departement + ("10" if alert.phenomenon is Phenomenon.VAGUES_SUBMERSION else "")
            domain = domains.setdefault(domain_id, {"domain_id": domain_id, "max_color_id": 1, "phenomenon_items": []})
            if all(
                item["phenomenon_id"] != str(alert.phenomenon.meteofrance_id) for item in domain["phenomenon_items"]
            ):
                domain["phenomenon_items"].append(_item(alert.departement, alert.phenomenon, begin, end, chosen))
        for domain in domains.values():
            domain["max_color_id"] = max(item["phenomenon_max_color_id"] for item in domain["phenomenon_items"])
        periods.append(
            {
                "echeance": echeance,
                "begin_validity_time": _z(begin),
                "end_validity_time": _z(end),
                "text_items": {"title": "Vigilance météorologique", "text": []},
                "timelaps": {"domain_ids": list(domains.values())},
            }
        )
    return {
        "product": {
            "warning_type": "vigilance",
            "type_cdp": "cdp_carte_externe",
            "version_vigilance": "V6",
            "version_cdp": "1.0.0",
            "update_time": _z(update_time),
            "domain_id": "FRA",
            "global_max_color_id": str(max((_COLOR_IDS.get(a.color, 1) for a in chosen), default=1)),
            "periods": periods,
        },
        "meta": {
            "snapshot_id": snapshot_id,
            "product_datetime": _z(update_time),
            "generation_timestamp": _z(update_time),
        },
    }


def _item(
    departement: str, phenomenon: Phenomenon, begin: datetime, end: datetime, alerts: list[SampleAlert]
) -> dict[str, Any]:
    mine = [a for a in alerts if a.departement == departement and a.phenomenon is phenomenon]
    laps = _laps(begin, end, mine)
    return {
        "phenomenon_id": str(phenomenon.meteofrance_id),
        "phenomenon_max_color_id": max(lap["color_id"] for lap in laps),
        "timelaps_items": laps,
    }


@dataclass(frozen=True)
class SampleCap:
    identifier: str
    sent: datetime
    color: Color
    phenomenon: Phenomenon
    departements: tuple[str, ...]
    onset: datetime
    expires: datetime
    msg_type: str = "Alert"
    references: tuple[tuple[str, datetime], ...] = ()
    all_clear: bool = False
    level: str | None = None
    """Overrides awareness_level (an unknown level, for tests)."""


def cap_message(sample: SampleCap) -> bytes:
    """A CAP 1.2 message shaped like Météo-France's via MeteoAlarm (fr-FR info, NUTS3 2013 geocodes)."""
    level = sample.level or _AWARENESS_LEVELS[sample.color]
    kind = _AWARENESS_TYPES.get(sample.phenomenon, "99; other")
    references = " ".join(f"vigilance@meteo.fr,{ident},{sent.isoformat()}" for ident, sent in sample.references)
    areas = "".join(
        f"<area><areaDesc>{escape(departement_name(dep))}</areaDesc>"
        f"<geocode><valueName>NUTS3</valueName><value>{NUTS3_2013[dep]}</value></geocode></area>"
        for dep in sample.departements
    )
    label = f"Vigilance {sample.color.label} {sample.phenomenon.in_sentence}"
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<identifier>{escape(sample.identifier)}</identifier><sender>vigilance@meteo.fr</sender>"
        f"<sent>{sample.sent.isoformat()}</sent><status>Actual</status><msgType>{sample.msg_type}</msgType>"
        "<scope>Public</scope>"
        + (f"<references>{escape(references)}</references>" if references else "")
        + "<info><language>fr-FR</language><category>Met</category>"
        f"<event>{escape(label)}</event>"
        f"<responseType>{'AllClear' if sample.all_clear else 'Monitor'}</responseType>"
        "<urgency>Future</urgency><severity>Severe</severity><certainty>Likely</certainty>"
        f"<effective>{sample.onset.isoformat()}</effective><onset>{sample.onset.isoformat()}</onset>"
        f"<expires>{sample.expires.isoformat()}</expires><senderName>METEO-FRANCE</senderName>"
        f"<headline>{escape(label)}</headline><web>http://vigilance.meteofrance.com/</web>"
        f"<parameter><valueName>awareness_level</valueName><value>{escape(level)}</value></parameter>"
        f"<parameter><valueName>awareness_type</valueName><value>{escape(kind)}</value></parameter>"
        f"{areas}</info></alert>"
    )
    return xml.encode()


def atom_feed(samples: Iterable[tuple[SampleCap, str]], updated: datetime) -> bytes:
    """The France Atom feed listing each (message, CAP URL) once per area, as the real feed does."""
    entries = []
    for sample, url in samples:
        for dep in sample.departements:
            entries.append(
                "<entry>"
                f"<cap:geocode><valueName>NUTS3</valueName><value>{NUTS3_2013[dep]}</value></cap:geocode>"
                f"<cap:areaDesc>{escape(departement_name(dep))}</cap:areaDesc>"
                f"<cap:sent>{sample.sent.isoformat()}</cap:sent><cap:expires>{sample.expires.isoformat()}</cap:expires>"
                f"<cap:effective>{sample.onset.isoformat()}</cap:effective><cap:onset>{sample.onset.isoformat()}</cap:onset>"
                f"<cap:message_type>{sample.msg_type}</cap:message_type><cap:status>Actual</cap:status>"
                f"<cap:identifier>{escape(sample.identifier)}</cap:identifier>"
                f'<link href="{escape(url)}" type="application/cap+xml"/>'
                f"<id>{escape(url)}?index_area={dep}</id><title>{escape(sample.phenomenon.label)}</title>"
                f"<updated>{_z(sample.sent)}</updated></entry>"
            )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:cap="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<id>tag:meteoalarm.org,2021-02-19:FR</id><title>Meteoalarm</title><updated>{_z(updated)}</updated>"
        + "".join(entries)
        + "</feed>"
    ).encode()
