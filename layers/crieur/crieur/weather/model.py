"""The one vigilance model both sources map to (Météo-France carte and MeteoAlarm CAP).

Per (département, phenomenon): a timeline of intervals, each with a colour. Everything after the readers
(diff, templates, broadcast) works on this model only, so both sources share one code path.

Colours: 1 vert, 2 jaune, 3 orange, 4 rouge (reference/weather.md). Anything else is `unknown`, which ranks
*below* green: an unknown colour never triggers, upgrades nor ends an alert.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Final
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from crieur.weather.departments import METROPOLITAN_DEPARTEMENTS

PARIS: Final = ZoneInfo("Europe/Paris")


def to_utc(value: datetime) -> datetime:
    """Aware datetimes only, normalised to UTC: a vigilance time without an offset is a malformed document."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("heure sans fuseau horaire : refusée")
    return value.astimezone(UTC)


def _check_departement(code: str) -> str:
    if code not in METROPOLITAN_DEPARTEMENTS:
        raise ValueError(f"département inconnu : {code!r} (01-95, 2A, 2B)")
    return code


UtcDatetime = Annotated[datetime, AfterValidator(to_utc)]
Departement = Annotated[str, AfterValidator(_check_departement)]


class Color(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        """1 green … 4 red; 0 for unknown, so that max() never picks an unknown colour over a known one."""
        return _COLOR_RANKS[self]

    @property
    def is_alert(self) -> bool:
        """Orange and red are broadcast; green, yellow and unknown are not."""
        return self in (Color.ORANGE, Color.RED)

    @property
    def label(self) -> str:
        """French adjective: 'orange', 'rouge', 'jaune', 'verte', 'inconnue' (agrees with 'vigilance')."""
        return _COLOR_LABELS[self]

    @classmethod
    def from_level(cls, value: object) -> Color:
        """Météo-France color_id / CAP awareness level 1-4; anything else (0, -1, 5, 'x', null, true) is unknown."""
        if isinstance(value, bool) or value is None:
            return cls.UNKNOWN
        text = str(value).strip()
        return _LEVEL_COLORS.get(text, cls.UNKNOWN)


_COLOR_RANKS: Final = MappingProxyType(
    {Color.UNKNOWN: 0, Color.GREEN: 1, Color.YELLOW: 2, Color.ORANGE: 3, Color.RED: 4}
)
_COLOR_LABELS: Final = MappingProxyType(
    {
        Color.GREEN: "verte",
        Color.YELLOW: "jaune",
        Color.ORANGE: "orange",
        Color.RED: "rouge",
        Color.UNKNOWN: "inconnue",
    }
)
_LEVEL_COLORS: Final = MappingProxyType({"1": Color.GREEN, "2": Color.YELLOW, "3": Color.ORANGE, "4": Color.RED})


class Phenomenon(StrEnum):
    """Names as in the vigilance table (reference/weather.md): what the commune opt-in lists."""

    VENT_VIOLENT = "vent-violent"
    PLUIE_INONDATION = "pluie-inondation"
    ORAGES = "orages"
    CRUES = "crues"
    NEIGE_VERGLAS = "neige-verglas"
    CANICULE = "canicule"
    GRAND_FROID = "grand-froid"
    AVALANCHES = "avalanches"
    VAGUES_SUBMERSION = "vagues-submersion"
    UNKNOWN = "unknown"

    @property
    def label(self) -> str:
        """As Météo-France writes it in the table: 'Vent violent', 'Grand froid'."""
        return _PHENOMENON_LABELS[self]

    @property
    def in_sentence(self) -> str:
        """As it reads after 'vigilance orange': 'canicule', 'vent violent', 'grand froid'."""
        return _PHENOMENON_LABELS[self].lower()

    @property
    def meteofrance_id(self) -> int | None:
        return _PHENOMENON_IDS.get(self)

    @classmethod
    def from_meteofrance_id(cls, value: object) -> Phenomenon:
        """'6' or 6 → canicule; anything outside 1-9 is unknown."""
        if isinstance(value, bool) or value is None:
            return cls.UNKNOWN
        return _IDS_PHENOMENON.get(str(value).strip(), cls.UNKNOWN)

    @classmethod
    def parse(cls, name: str) -> Phenomenon:
        """A name from an opt-in: the slug, the French label, without accents or case ('Grand froid',
        'grand-froid', 'inondation' for crues). ValueError for anything else, `unknown` included."""
        key = _normalise(name)
        found = _PHENOMENON_NAMES.get(key)
        if found is None:
            choices = ", ".join(p.value for p in cls if p is not cls.UNKNOWN)
            raise ValueError(f"phénomène inconnu : {name!r} (valeurs possibles : {choices})")
        return found


def _normalise(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.strip().lower())
    ascii_only = "".join(char for char in decomposed if not unicodedata.combining(char))
    return "-".join(ascii_only.replace("_", " ").replace("-", " ").split())


_PHENOMENON_LABELS: Final = MappingProxyType(
    {
        Phenomenon.VENT_VIOLENT: "Vent violent",
        Phenomenon.PLUIE_INONDATION: "Pluie-inondation",
        Phenomenon.ORAGES: "Orages",
        Phenomenon.CRUES: "Crues",
        Phenomenon.NEIGE_VERGLAS: "Neige-verglas",
        Phenomenon.CANICULE: "Canicule",
        Phenomenon.GRAND_FROID: "Grand froid",
        Phenomenon.AVALANCHES: "Avalanches",
        Phenomenon.VAGUES_SUBMERSION: "Vagues-submersion",
        Phenomenon.UNKNOWN: "Phénomène inconnu",
    }
)
_PHENOMENON_IDS: Final = MappingProxyType(
    {
        Phenomenon.VENT_VIOLENT: 1,
        Phenomenon.PLUIE_INONDATION: 2,
        Phenomenon.ORAGES: 3,
        Phenomenon.CRUES: 4,
        Phenomenon.NEIGE_VERGLAS: 5,
        Phenomenon.CANICULE: 6,
        Phenomenon.GRAND_FROID: 7,
        Phenomenon.AVALANCHES: 8,
        Phenomenon.VAGUES_SUBMERSION: 9,
    }
)
_IDS_PHENOMENON: Final = MappingProxyType({str(number): phenomenon for phenomenon, number in _PHENOMENON_IDS.items()})
_PHENOMENON_NAMES: Final = MappingProxyType(
    {
        **{_normalise(p.value): p for p in _PHENOMENON_IDS},
        **{_normalise(label): p for p, label in _PHENOMENON_LABELS.items() if p is not Phenomenon.UNKNOWN},
        "inondation": Phenomenon.CRUES,
        "inondations": Phenomenon.CRUES,
        "vent": Phenomenon.VENT_VIOLENT,
        "orage": Phenomenon.ORAGES,
        "avalanche": Phenomenon.AVALANCHES,
        "vague-submersion": Phenomenon.VAGUES_SUBMERSION,
    }
)


class Source(StrEnum):
    METEOFRANCE = "meteofrance"
    METEOALARM = "meteoalarm"

    @property
    def label(self) -> str:
        return "Météo-France" if self is Source.METEOFRANCE else "MeteoAlarm"


class _Frozen(BaseModel):
    """Our own data: immutable, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Interval(_Frozen):
    """One colour over [begin, end). `end` is None only when a CAP message gives no expiry."""

    begin: UtcDatetime
    end: UtcDatetime | None = None
    color: Color
    raw_color: str | None = Field(default=None, description="The colour id as received, kept for logs.")

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if self.end is not None and self.end <= self.begin:
            raise ValueError(f"intervalle vide ou inversé : {self.begin.isoformat()} → {self.end.isoformat()}")
        return self


@dataclass(frozen=True)
class Outlook:
    """What a vigilance says from `now` on.

    color: the highest known colour still to come (or in force); `unknown` when an unknown colour id hides
        whether it is an alert (the known colours are all below orange); green when every interval has ended.
    begin/end: the span of the intervals at that colour or above (first begin, last end; end None = open).
    until: the end of the span at orange or above, i.e. when the vigilance ends; None when not an alert.
    """

    color: Color
    begin: datetime | None
    end: datetime | None
    until: datetime | None
    has_unknown: bool
    expired: bool


def _span(intervals: Iterable[Interval]) -> tuple[datetime | None, datetime | None]:
    chosen = list(intervals)
    if not chosen:
        return None, None
    begin = min(interval.begin for interval in chosen)
    ends = [interval.end for interval in chosen]
    end = None if any(value is None for value in ends) else max(value for value in ends if value is not None)
    return begin, end


class Vigilance(_Frozen):
    """One département × one phenomenon, as one source's document says it."""

    departement: Departement
    phenomenon: Phenomenon
    timeline: tuple[Interval, ...] = Field(min_length=1)
    source: Source
    raw_phenomenon: str | None = Field(default=None, description="The phenomenon id as received.")

    @field_validator("timeline")
    @classmethod
    def _sorted(cls, timeline: tuple[Interval, ...]) -> tuple[Interval, ...]:
        return tuple(sorted(timeline, key=lambda interval: interval.begin))

    def outlook(self, now: datetime | None = None) -> Outlook:
        """The colour and times from `now` on (the whole document when `now` is None)."""
        live = [i for i in self.timeline if now is None or i.end is None or i.end > now]
        known = [i for i in live if i.color is not Color.UNKNOWN]
        has_unknown = len(known) != len(live)
        if not live:
            return Outlook(Color.GREEN, None, None, None, has_unknown=False, expired=True)
        if not known:
            begin, end = _span(live)
            return Outlook(Color.UNKNOWN, begin, end, None, has_unknown=True, expired=False)
        top = max((i.color for i in known), key=lambda color: color.rank)
        begin, end = _span(i for i in known if i.color.rank >= top.rank)
        until = _span(i for i in known if i.color.is_alert)[1] if top.is_alert else None
        color = Color.UNKNOWN if has_unknown and not top.is_alert else top
        return Outlook(color, begin, end, until, has_unknown=has_unknown, expired=False)

    @property
    def color(self) -> Color:
        """The highest colour of the document for this département and phenomenon."""
        return self.outlook().color

    @property
    def begin(self) -> datetime | None:
        return self.outlook().begin

    @property
    def end(self) -> datetime | None:
        return self.outlook().end


class DocumentIdentity(_Frozen):
    """Which document a snapshot came from; an unchanged identity lets the poller skip the work."""

    source: Source
    product: str = Field(description="cartevigilance, warning-full, textesvigilance or meteoalarm-atom.")
    update_time: UtcDatetime | None = None
    snapshot_id: str | None = None
    etag: str | None = None

    @property
    def key(self) -> str:
        stamp = self.update_time.strftime("%Y-%m-%dT%H:%M:%SZ") if self.update_time else "-"
        return f"{self.source}:{self.product}:{stamp}:{self.snapshot_id or '-'}"

    def same_document(self, other: DocumentIdentity | None) -> bool:
        """Same source, product, snapshot id and update time (whichever both sides know). ETags aside."""
        if other is None or (other.source, other.product) != (self.source, self.product):
            return False
        compared = False
        if self.snapshot_id is not None and other.snapshot_id is not None:
            if self.snapshot_id != other.snapshot_id:
                return False
            compared = True
        if self.update_time is not None and other.update_time is not None:
            if self.update_time != other.update_time:
                return False
            compared = True
        return compared


class VigilanceSnapshot(_Frozen):
    """Every vigilance one document gives.

    coverage: the (département, phenomenon) pairs the document speaks for. None means a national document:
    every metropolitan département, every phenomenon; a pair it does not list is green (not concerned).
    A single-département document (the mobile `warning/full`) only covers what it lists, so that reading it
    can never end another département's alert.
    """

    identity: DocumentIdentity
    vigilances: tuple[Vigilance, ...] = ()
    coverage: frozenset[tuple[Departement, Phenomenon]] | None = None
    warnings: tuple[str, ...] = ()

    _index: dict[tuple[str, Phenomenon], Vigilance] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> VigilanceSnapshot:
        index: dict[tuple[str, Phenomenon], Vigilance] = {}
        for vigilance in self.vigilances:
            if vigilance.source is not self.identity.source:
                raise ValueError(f"vigilance de source {vigilance.source} dans un document {self.identity.source}")
            if vigilance.phenomenon is Phenomenon.UNKNOWN:
                continue
            key = (vigilance.departement, vigilance.phenomenon)
            if key in index:
                raise ValueError(f"vigilance en double : {key[0]} {key[1]} (fusionnez les intervalles)")
            index[key] = vigilance
        self._index = index
        return self

    @property
    def source(self) -> Source:
        return self.identity.source

    def get(self, departement: str, phenomenon: Phenomenon) -> Vigilance | None:
        return self._index.get((departement, phenomenon))

    def covers(self, departement: str, phenomenon: Phenomenon) -> bool:
        return self.coverage is None or (departement, phenomenon) in self.coverage

    def unknown_phenomena(self) -> tuple[Vigilance, ...]:
        return tuple(v for v in self.vigilances if v.phenomenon is Phenomenon.UNKNOWN)

    def alerts(self, now: datetime | None = None) -> tuple[Vigilance, ...]:
        """Orange and red vigilances still in force or to come at `now`, known phenomena only."""
        return tuple(v for v in self._index.values() if v.outlook(now).color.is_alert)


def combine(vigilances: Iterable[Vigilance]) -> tuple[Vigilance, ...]:
    """One vigilance per (département, phenomenon): timelines of the same pair are joined (J and J1 periods,
    a département and its coastal domain, several CAP messages). Unknown phenomena stay apart per raw id."""
    grouped: dict[tuple[str, Phenomenon, str | None, Source], list[Interval]] = {}
    for vigilance in vigilances:
        raw = vigilance.raw_phenomenon if vigilance.phenomenon is Phenomenon.UNKNOWN else None
        grouped.setdefault((vigilance.departement, vigilance.phenomenon, raw, vigilance.source), []).extend(
            vigilance.timeline
        )
    combined = []
    for (departement, phenomenon, raw, source), intervals in grouped.items():
        unique = sorted(set(intervals), key=lambda i: (i.begin, i.end or i.begin, i.color.rank))
        combined.append(
            Vigilance(
                departement=departement,
                phenomenon=phenomenon,
                timeline=tuple(unique),
                source=source,
                raw_phenomenon=raw,
            )
        )
    return tuple(sorted(combined, key=lambda v: (v.departement, v.phenomenon.value, v.raw_phenomenon or "")))
