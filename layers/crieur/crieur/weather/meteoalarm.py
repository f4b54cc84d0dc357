"""MeteoAlarm (EUMETNET), the fallback: France's Atom feed and the CAP 1.2 messages it links to.

Facts used (reference/weather.md, fixtures/weather/):
- The feed keeps superseded and expired entries; one entry per (message × area), NUTS3 geocode per entry,
  EMMA_ID only in the entry's link. Entries carry neither `references` nor `awareness_level`.
- The full CAP carries `parameter awareness_level` ("3; orange; Severe") and `awareness_type` ("9; avalanches").
  Decisions are made on awareness_level, never on severity (French yellow is tagged Moderate or Minor).
- Météo-France ends a warning with `msgType Update` + `responseType AllClear` (expires ≈ effective), or with a
  Cancel; either `references` the message(s) it supersedes.

So: keep status=Actual entries; fetch (once per identifier, cached: a CAP message never changes) the messages
still in force plus the later Update/Cancel messages that may supersede them; drop every referenced message,
Cancel and AllClear messages and the expired ones; map the areas' NUTS3 (2013 or 2021) or EMMA_ID geocodes to
départements. A message whose awareness level or type is unknown becomes `unknown`, never red.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import httpx

from crieur.weather.departments import departement_from_emma_id, departement_from_nuts3
from crieur.weather.errors import SourceUnavailable, VigilanceDocumentError, WeatherSourceError
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
from crieur.weather.safexml import UnsafeOrInvalidXml, parse_xml

logger = logging.getLogger(__name__)

SOURCE_NAME: Final = "MeteoAlarm"
DEFAULT_BASE_URL: Final = "https://feeds.meteoalarm.org"
"""The real host; CRIEUR_METEOALARM_BASE_URL overrides it."""
FEED_PATH: Final = "/feeds/meteoalarm-legacy-atom-france"
ATOM: Final = "{http://www.w3.org/2005/Atom}"
CAP: Final = "{urn:oasis:names:tc:emergency:cap:1.2}"
CAP_CACHE_SIZE: Final = 1024

# awareness_type → phenomenon. 9 → avalanches is seen in a real Météo-France message; the others follow
# MeteoAlarm's type list and the Météo-France ↔ MeteoAlarm correspondence given as inferred in
# reference/weather.md. 4 fog, 8 forest-fire and 11 are not Météo-France vigilance phenomena: unknown.
AWARENESS_TYPES: Final = {
    "1": Phenomenon.VENT_VIOLENT,
    "2": Phenomenon.NEIGE_VERGLAS,
    "3": Phenomenon.ORAGES,
    "5": Phenomenon.CANICULE,
    "6": Phenomenon.GRAND_FROID,
    "7": Phenomenon.VAGUES_SUBMERSION,
    "9": Phenomenon.AVALANCHES,
    "10": Phenomenon.PLUIE_INONDATION,
    "12": Phenomenon.CRUES,
    "13": Phenomenon.PLUIE_INONDATION,
}
_COLOR_WORDS: Final = {"green": Color.GREEN, "yellow": Color.YELLOW, "orange": Color.ORANGE, "red": Color.RED}
_EMMA_IN_LINK: Final = re.compile(r"EMMA_ID:([A-Z]{2}\d{3})", re.IGNORECASE)


def base_url_from_env() -> str:
    return (os.environ.get("CRIEUR_METEOALARM_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def _refuse(what: str, message: str) -> VigilanceDocumentError:
    return VigilanceDocumentError(SOURCE_NAME, f"{what} : {message}")


def _text(element: ET.Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    value = element.text.strip()
    return value or None


def _required(parent: ET.Element, tag: str, what: str) -> str:
    value = _text(parent.find(tag))
    if value is None:
        raise _refuse(what, f"élément obligatoire absent : {tag.rpartition('}')[2]}")
    return value


def _time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as wrong:
        raise _refuse(what, f"date illisible : {value!r}") from wrong
    if parsed.tzinfo is None:
        raise _refuse(what, f"date sans fuseau horaire : {value!r}")
    return parsed.astimezone(UTC)


def _required_time(parent: ET.Element, tag: str, what: str) -> datetime:
    value = _time(_required(parent, tag, what), what)
    if value is None:  # _required returned text, so _time parsed it or raised
        raise _refuse(what, f"date absente : {tag}")
    return value


def _xml(data: bytes | str, what: str) -> ET.Element:
    try:
        return parse_xml(data)
    except UnsafeOrInvalidXml as refused:
        raise _refuse(what, str(refused)) from refused


# -- Atom --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AtomEntry:
    """One (CAP message × area) line of the feed."""

    identifier: str
    status: str
    msg_type: str
    sent: datetime | None
    effective: datetime | None
    onset: datetime | None
    expires: datetime | None
    area: str | None
    geocodes: tuple[tuple[str, str], ...]
    emma_id: str | None
    cap_url: str | None
    event: str | None
    severity: str | None

    @property
    def departement(self) -> str | None:
        return _departement(self.geocodes, self.emma_id)


@dataclass(frozen=True)
class AtomFeed:
    updated: datetime | None
    entries: tuple[AtomEntry, ...]


def parse_atom(data: bytes | str) -> AtomFeed:
    what = "flux Atom"
    root = _xml(data, what)
    if root.tag != f"{ATOM}feed":
        raise _refuse(what, f"racine inattendue {root.tag!r} (feed Atom attendu)")
    entries = []
    for index, entry in enumerate(root.findall(f"{ATOM}entry")):
        where = f"{what}, entrée {index + 1}"
        geocodes = tuple(
            (
                _text(code.find(f"{ATOM}valueName")) or _text(code.find("valueName")) or "",
                _text(code.find(f"{ATOM}value")) or _text(code.find("value")) or "",
            )
            for code in entry.findall(f"{CAP}geocode")
        )
        emma_id = None
        cap_url = None
        for link in entry.findall(f"{ATOM}link"):
            href = link.get("href") or ""
            if link.get("type") == "application/cap+xml":
                cap_url = href
            found = _EMMA_IN_LINK.search(href)
            if found:
                emma_id = found.group(1).upper()
        entries.append(
            AtomEntry(
                identifier=_required(entry, f"{CAP}identifier", where),
                status=_required(entry, f"{CAP}status", where),
                msg_type=_required(entry, f"{CAP}message_type", where),
                sent=_time(_text(entry.find(f"{CAP}sent")), where),
                effective=_time(_text(entry.find(f"{CAP}effective")), where),
                onset=_time(_text(entry.find(f"{CAP}onset")), where),
                expires=_time(_text(entry.find(f"{CAP}expires")), where),
                area=_text(entry.find(f"{CAP}areaDesc")),
                geocodes=geocodes,
                emma_id=emma_id,
                cap_url=cap_url,
                event=_text(entry.find(f"{CAP}event")),
                severity=_text(entry.find(f"{CAP}severity")),
            )
        )
    return AtomFeed(updated=_time(_text(root.find(f"{ATOM}updated")), what), entries=tuple(entries))


# -- CAP 1.2 -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapReference:
    sender: str
    identifier: str
    sent: str


@dataclass(frozen=True)
class CapArea:
    description: str | None
    geocodes: tuple[tuple[str, str], ...]

    @property
    def departement(self) -> str | None:
        return _departement(self.geocodes, None)


@dataclass(frozen=True)
class CapInfo:
    language: str
    event: str | None
    response_types: tuple[str, ...]
    urgency: str | None
    severity: str | None
    certainty: str | None
    effective: datetime | None
    onset: datetime | None
    expires: datetime | None
    sender_name: str | None
    headline: str | None
    description: str | None
    instruction: str | None
    web: str | None
    parameters: tuple[tuple[str, str], ...]
    areas: tuple[CapArea, ...]

    def parameter(self, name: str) -> str | None:
        return next((value for key, value in self.parameters if key == name), None)


@dataclass(frozen=True)
class CapAlert:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    scope: str | None
    references: tuple[CapReference, ...]
    infos: tuple[CapInfo, ...]


def _pairs(parent: ET.Element, tag: str) -> tuple[tuple[str, str], ...]:
    return tuple(
        (_text(item.find(f"{CAP}valueName")) or "", _text(item.find(f"{CAP}value")) or "")
        for item in parent.findall(f"{CAP}{tag}")
    )


def parse_references(value: str | None) -> tuple[CapReference, ...]:
    """CAP `references`: space-separated "sender,identifier,sent" triples."""
    references = []
    for triple in (value or "").split():
        parts = triple.split(",")
        if len(parts) != 3:
            raise _refuse("message CAP", f"référence illisible : {triple!r}")
        references.append(CapReference(*parts))
    return tuple(references)


def parse_cap(data: bytes | str) -> CapAlert:
    what = "message CAP"
    root = _xml(data, what)
    if root.tag != f"{CAP}alert":
        raise _refuse(what, f"racine inattendue {root.tag!r} (alert CAP 1.2 attendu)")
    identifier = _required(root, f"{CAP}identifier", what)
    where = f"{what} {identifier}"
    sent = _required_time(root, f"{CAP}sent", where)
    infos = []
    for info in root.findall(f"{CAP}info"):
        infos.append(
            CapInfo(
                language=_text(info.find(f"{CAP}language")) or "en-US",
                event=_text(info.find(f"{CAP}event")),
                response_types=tuple(
                    value for value in (_text(item) for item in info.findall(f"{CAP}responseType")) if value
                ),
                urgency=_text(info.find(f"{CAP}urgency")),
                severity=_text(info.find(f"{CAP}severity")),
                certainty=_text(info.find(f"{CAP}certainty")),
                effective=_time(_text(info.find(f"{CAP}effective")), where),
                onset=_time(_text(info.find(f"{CAP}onset")), where),
                expires=_time(_text(info.find(f"{CAP}expires")), where),
                sender_name=_text(info.find(f"{CAP}senderName")),
                headline=_text(info.find(f"{CAP}headline")),
                description=_text(info.find(f"{CAP}description")),
                instruction=_text(info.find(f"{CAP}instruction")),
                web=_text(info.find(f"{CAP}web")),
                parameters=_pairs(info, "parameter"),
                areas=tuple(
                    CapArea(description=_text(area.find(f"{CAP}areaDesc")), geocodes=_pairs(area, "geocode"))
                    for area in info.findall(f"{CAP}area")
                ),
            )
        )
    return CapAlert(
        identifier=identifier,
        sender=_required(root, f"{CAP}sender", where),
        sent=sent,
        status=_required(root, f"{CAP}status", where),
        msg_type=_required(root, f"{CAP}msgType", where),
        scope=_text(root.find(f"{CAP}scope")),
        references=parse_references(_text(root.find(f"{CAP}references"))),
        infos=tuple(infos),
    )


def awareness_color(value: str | None) -> Color:
    """ "3; orange; Severe" → orange. The number decides; a colour word that contradicts it → unknown."""
    if not value:
        return Color.UNKNOWN
    parts = [part.strip().lower() for part in value.split(";")]
    color = Color.from_level(parts[0])
    if len(parts) > 1 and parts[1] and _COLOR_WORDS.get(parts[1], Color.UNKNOWN) is not color:
        return Color.UNKNOWN
    return color


def awareness_phenomenon(value: str | None) -> Phenomenon:
    """ "9; avalanches" → avalanches; anything not in AWARENESS_TYPES → unknown."""
    if not value:
        return Phenomenon.UNKNOWN
    return AWARENESS_TYPES.get(value.split(";")[0].strip(), Phenomenon.UNKNOWN)


def _departement(geocodes: Iterable[tuple[str, str]], emma_id: str | None) -> str | None:
    codes = list(geocodes)
    for name, value in codes:
        if name.upper().startswith("NUTS"):
            found = departement_from_nuts3(value)
            if found:
                return found
    for name, value in codes:
        if name.upper() == "EMMA_ID":
            found = departement_from_emma_id(value)
            if found:
                return found
    return departement_from_emma_id(emma_id) if emma_id else None


def _vigilance_info(alert: CapAlert) -> CapInfo | None:
    """The French info block when there is one, else the first one carrying an awareness level."""
    with_level = [info for info in alert.infos if info.parameter("awareness_level")]
    french = [info for info in with_level if info.language.lower().startswith("fr")]
    chosen = french or with_level
    return chosen[0] if chosen else None


def vigilances_from_cap(alerts: Iterable[CapAlert], now: datetime) -> tuple[tuple[Vigilance, ...], tuple[str, ...]]:
    """The vigilances in force or to come at `now` from a set of CAP messages, and what was set aside."""
    by_identifier: dict[str, CapAlert] = {}
    for alert in alerts:
        by_identifier.setdefault(alert.identifier, alert)
    actual = [alert for alert in by_identifier.values() if alert.status == "Actual"]
    superseded = {
        reference.identifier
        for alert in actual
        if alert.msg_type in ("Update", "Cancel")
        for reference in alert.references
    }
    vigilances: list[Vigilance] = []
    warnings: list[str] = []
    for alert in sorted(actual, key=lambda item: (item.sent, item.identifier)):
        if alert.identifier in superseded or alert.msg_type not in ("Alert", "Update"):
            continue
        info = _vigilance_info(alert)
        if info is None:
            warnings.append(f"message {alert.identifier} sans awareness_level : ignoré")
            continue
        if "AllClear" in info.response_types:
            continue
        if info.expires is not None and info.expires <= now:
            continue
        begin = info.onset or info.effective or alert.sent
        if info.expires is not None and info.expires <= begin:
            continue
        level = info.parameter("awareness_level")
        kind = info.parameter("awareness_type")
        color = awareness_color(level)
        phenomenon = awareness_phenomenon(kind)
        if color is Color.UNKNOWN:
            warnings.append(f"message {alert.identifier} : niveau inconnu {level!r}, jamais traité comme rouge")
        if phenomenon is Phenomenon.UNKNOWN:
            warnings.append(f"message {alert.identifier} : type inconnu {kind!r} : aucune diffusion")
        interval = Interval(begin=begin, end=info.expires, color=color, raw_color=level)
        for area in info.areas:
            departement = area.departement
            if departement is None:
                warnings.append(f"message {alert.identifier} : zone non reconnue {area.description!r} {area.geocodes}")
                continue
            vigilances.append(
                Vigilance(
                    departement=departement,
                    phenomenon=phenomenon,
                    timeline=(interval,),
                    source=Source.METEOALARM,
                    raw_phenomenon=kind,
                )
            )
    return combine(vigilances), tuple(warnings)


def snapshot_from_cap(
    alerts: Iterable[CapAlert], now: datetime, identity: DocumentIdentity | None = None
) -> VigilanceSnapshot:
    """A national snapshot: a département without a message in force is green for every phenomenon."""
    chosen = list(alerts)
    vigilances, warnings = vigilances_from_cap(chosen, now)
    if identity is None:
        identity = DocumentIdentity(
            source=Source.METEOALARM, product="meteoalarm-cap", snapshot_id=_digest(a.identifier for a in chosen)
        )
    return VigilanceSnapshot(identity=identity, vigilances=vigilances, warnings=warnings)


def _digest(identifiers: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(set(identifiers))).encode()).hexdigest()[:24]


def relevant_entries(feed: AtomFeed, now: datetime) -> dict[str, str | None]:
    """identifier → CAP URL of the messages worth reading at `now`: status Actual and still in force, plus the
    later Update/Cancel messages that may supersede one of them (even expired: an AllClear expires at once)."""
    actual = [entry for entry in feed.entries if entry.status == "Actual"]
    live = [entry for entry in actual if entry.expires is None or entry.expires > now]
    oldest = min((entry.sent for entry in live if entry.sent is not None), default=None)
    chosen = list(live)
    if oldest is not None:
        chosen += [
            entry
            for entry in actual
            if entry.msg_type in ("Update", "Cancel") and entry.sent is not None and entry.sent >= oldest
        ]
    wanted: dict[str, str | None] = {}
    for entry in chosen:
        if wanted.get(entry.identifier) is None:
            wanted[entry.identifier] = entry.cap_url
    return wanted


# -- client ------------------------------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


_SHARED_CAP_CACHE: Final[OrderedDict[str, CapAlert]] = OrderedDict()


class MeteoAlarmSource:
    """Reads the France feed and the CAP messages it links to. No authentication.

    CAP links are followed only under the feed's own host (the real host is rewritten to the configured one,
    so a sandbox serving a real capture works); any other host is refused.
    """

    source: Final = Source.METEOALARM

    def __init__(
        self,
        http: httpx.Client,
        base_url: str | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        cache: MutableMapping[str, CapAlert] | None = None,
    ) -> None:
        self.http = http
        self.base_url = (base_url or base_url_from_env()).rstrip("/")
        self.clock = clock
        self.cache = cache if cache is not None else _SHARED_CAP_CACHE

    @property
    def feed_url(self) -> str:
        return f"{self.base_url}{FEED_PATH}"

    def fetch(self) -> VigilanceSnapshot:
        now = self.clock()
        feed, wanted, identity = self._feed(now)
        return self._snapshot(feed, wanted, identity, now)

    def fetch_if_changed(self, previous: DocumentIdentity | None) -> VigilanceSnapshot | None:
        """None when the set of relevant messages is the one already processed (no CAP is fetched then)."""
        now = self.clock()
        feed, wanted, identity = self._feed(now)
        if identity.same_document(previous):
            return None
        return self._snapshot(feed, wanted, identity, now)

    def _feed(self, now: datetime) -> tuple[AtomFeed, dict[str, str | None], DocumentIdentity]:
        feed = parse_atom(self._get(self.feed_url, "flux Atom").content)
        wanted = relevant_entries(feed, now)
        # The identity is the set of relevant messages: the feed's <updated> moves at every regeneration.
        identity = DocumentIdentity(source=Source.METEOALARM, product="meteoalarm-atom", snapshot_id=_digest(wanted))
        return feed, wanted, identity

    def _snapshot(
        self, feed: AtomFeed, wanted: dict[str, str | None], identity: DocumentIdentity, now: datetime
    ) -> VigilanceSnapshot:
        alerts = [self._cap(identifier, url) for identifier, url in sorted(wanted.items())]
        snapshot = snapshot_from_cap(alerts, now, identity)
        if not feed.entries:
            snapshot = snapshot.model_copy(update={"warnings": (*snapshot.warnings, "flux Atom sans aucune entrée")})
        return snapshot

    def _cap(self, identifier: str, url: str | None) -> CapAlert:
        key = f"{self.base_url}|{identifier}"
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        if not url:
            raise _refuse("flux Atom", f"message {identifier} sans lien CAP : impossible de lire son niveau")
        alert = parse_cap(self._get(self._local(url), f"message CAP {identifier}").content)
        if alert.identifier != identifier:
            raise _refuse("message CAP", f"identifiant {alert.identifier!r} au lieu de {identifier!r}")
        self.cache[key] = alert
        if isinstance(self.cache, OrderedDict):
            while len(self.cache) > CAP_CACHE_SIZE:
                self.cache.popitem(last=False)
        return alert

    def _local(self, url: str) -> str:
        if self.base_url != DEFAULT_BASE_URL and url.startswith(f"{DEFAULT_BASE_URL}/"):
            url = f"{self.base_url}{url.removeprefix(DEFAULT_BASE_URL)}"
        if not url.startswith(f"{self.base_url}/"):
            raise _refuse("flux Atom", f"lien CAP hors de {self.base_url} refusé : {url}")
        return url

    def _get(self, url: str, what: str) -> httpx.Response:
        try:
            response = self.http.get(url)
        except httpx.TimeoutException as timeout:
            raise SourceUnavailable(SOURCE_NAME, f"délai dépassé ({what})") from timeout
        except httpx.TransportError as transport:
            raise SourceUnavailable(SOURCE_NAME, f"injoignable ({what} : {transport})") from transport
        if response.status_code == 200:
            return response
        if response.status_code in (404, 429) or response.status_code >= 500:
            raise SourceUnavailable(SOURCE_NAME, f"HTTP {response.status_code} ({what})")
        raise WeatherSourceError(SOURCE_NAME, f"HTTP {response.status_code} inattendu ({what})")
