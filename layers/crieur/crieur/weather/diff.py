"""Previous state × new snapshot → broadcast events, per (département, phenomenon).

The stored state holds one StoredAlert per (département, phenomenon) in orange or red; green and yellow are
not stored. Events:
- new: orange or red appears (nothing stored);
- upgrade: orange → red;
- update: still orange/red but the times changed, or red lowered to orange;
- end: back to yellow or green, gone from a national document, or the end of the vigilance has passed.

Keys. An alert is named by (département, phenomenon, colour, start), start being the first begin of the
intervals at that colour or above, to the minute, in UTC: the same alert read from Météo-France and from
MeteoAlarm gets the same key, so two runs or two sources never broadcast it twice. Every event has a
`dedupe_key` (the alert key for new/upgrade; alert key + what changed for update; episode key + '#end' for end)
that the broadcast layer records before publishing.

An unknown colour or phenomenon produces no event, keeps the stored state as it is, and a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator

from crieur.weather.model import (
    Color,
    Departement,
    Outlook,
    Phenomenon,
    Source,
    UtcDatetime,
    VigilanceSnapshot,
    _Frozen,
    to_utc,
)


class EventKind(StrEnum):
    NEW = "new"
    UPGRADE = "upgrade"
    UPDATE = "update"
    END = "end"


EndReason = Literal["lowered", "expired", "absent"]


def _minute(moment: datetime | None) -> str:
    return "open" if moment is None else to_utc(moment).strftime("%Y-%m-%dT%H:%MZ")


def alert_key(departement: str, phenomenon: Phenomenon, color: Color, start: datetime) -> str:
    """'2A:canicule:orange:2025-07-06T08:00Z' — the identity of one broadcast alert."""
    return f"{departement}:{phenomenon.value}:{color.value}:{_minute(start)}"


class StoredAlert(_Frozen):
    """What the store keeps per (département, phenomenon) while it is orange or red (item W#<département>)."""

    departement: Departement
    phenomenon: Phenomenon
    color: Color
    begin: UtcDatetime = Field(description="First begin at this colour or above (kept once it has started).")
    end: UtcDatetime | None = Field(description="Last end at this colour or above.")
    until: UtcDatetime | None = Field(description="End of the vigilance (orange or above): the alerts' expires_at.")
    alert_keys: tuple[str, ...] = Field(min_length=1, description="Keys of the alerts broadcast, oldest first.")
    source: Source
    document: str = Field(description="DocumentIdentity.key of the document that last changed it.")

    @field_validator("color")
    @classmethod
    def _alert_only(cls, color: Color) -> Color:
        if not color.is_alert:
            raise ValueError("seules les vigilances orange et rouge sont gardées")
        return color

    @field_validator("phenomenon")
    @classmethod
    def _known_only(cls, phenomenon: Phenomenon) -> Phenomenon:
        if phenomenon is Phenomenon.UNKNOWN:
            raise ValueError("phénomène inconnu : jamais gardé")
        return phenomenon

    @property
    def key(self) -> str:
        """The latest alert broadcast for this episode (the one an update or end refers to)."""
        return self.alert_keys[-1]


class VigilanceEvent(_Frozen):
    kind: EventKind
    departement: Departement
    phenomenon: Phenomenon
    color: Color = Field(description="The colour now: orange/red, or green/yellow for an end (green if unknown).")
    previous_color: Color | None = None
    begin: UtcDatetime | None = None
    end: UtcDatetime | None = None
    until: UtcDatetime | None = Field(default=None, description="End of the vigilance: the publication's expires_at.")
    alert_key: str = Field(description="The alert this event publishes (new, upgrade) or refers to (update, end).")
    related_keys: tuple[str, ...] = Field(default=(), description="Every alert of the episode, to update or retract.")
    dedupe_key: str
    reason: EndReason | None = None
    source: Source
    document: str


State = Mapping[tuple[str, Phenomenon], StoredAlert]


def index_state(alerts: Iterable[StoredAlert]) -> dict[tuple[str, Phenomenon], StoredAlert]:
    return {(alert.departement, alert.phenomenon): alert for alert in alerts}


@dataclass(frozen=True)
class DiffResult:
    events: tuple[VigilanceEvent, ...]
    state: dict[tuple[str, Phenomenon], StoredAlert]
    warnings: tuple[str, ...] = ()
    changed_departements: frozenset[str] = field(default_factory=frozenset)

    def state_of(self, departement: str) -> tuple[StoredAlert, ...]:
        """What to write under W#<département> (an empty tuple clears it)."""
        return tuple(
            sorted(
                (alert for (dep, _), alert in self.state.items() if dep == departement),
                key=lambda alert: alert.phenomenon.value,
            )
        )


@dataclass(frozen=True)
class _Pair:
    """One (département, phenomenon) being decided, and where the decision comes from."""

    departement: str
    phenomenon: Phenomenon
    now: datetime
    source: Source
    document: str


def _end(alert: StoredAlert, reason: EndReason, color: Color, source: Source, document: str) -> VigilanceEvent:
    return VigilanceEvent(
        kind=EventKind.END,
        departement=alert.departement,
        phenomenon=alert.phenomenon,
        color=color,
        previous_color=alert.color,
        begin=alert.begin,
        end=alert.end,
        until=alert.until,
        alert_key=alert.key,
        related_keys=alert.alert_keys,
        dedupe_key=f"{alert.alert_keys[0]}#end",
        reason=reason,
        source=source,
        document=document,
    )


def _ending(pair: _Pair, stored: StoredAlert, outlook: Outlook | None) -> VigilanceEvent:
    if outlook is None:
        return _end(stored, "absent", Color.GREEN, pair.source, pair.document)
    if outlook.expired:
        return _end(stored, "expired", Color.GREEN, pair.source, pair.document)
    return _end(stored, "lowered", outlook.color, pair.source, pair.document)


def _new(pair: _Pair, outlook: Outlook, begin: datetime) -> tuple[VigilanceEvent, StoredAlert]:
    key = alert_key(pair.departement, pair.phenomenon, outlook.color, begin)
    event = VigilanceEvent(
        kind=EventKind.NEW,
        departement=pair.departement,
        phenomenon=pair.phenomenon,
        color=outlook.color,
        begin=begin,
        end=outlook.end,
        until=outlook.until,
        alert_key=key,
        related_keys=(key,),
        dedupe_key=key,
        source=pair.source,
        document=pair.document,
    )
    stored = StoredAlert(
        departement=pair.departement,
        phenomenon=pair.phenomenon,
        color=outlook.color,
        begin=begin,
        end=outlook.end,
        until=outlook.until,
        alert_keys=(key,),
        source=pair.source,
        document=pair.document,
    )
    return event, stored


def _upgrade(pair: _Pair, stored: StoredAlert, outlook: Outlook, begin: datetime) -> tuple[VigilanceEvent, StoredAlert]:
    key = alert_key(pair.departement, pair.phenomenon, outlook.color, begin)
    keys = stored.alert_keys if key in stored.alert_keys else (*stored.alert_keys, key)
    event = VigilanceEvent(
        kind=EventKind.UPGRADE,
        departement=pair.departement,
        phenomenon=pair.phenomenon,
        color=outlook.color,
        previous_color=stored.color,
        begin=begin,
        end=outlook.end,
        until=outlook.until,
        alert_key=key,
        related_keys=keys,
        dedupe_key=key,
        source=pair.source,
        document=pair.document,
    )
    changes = {"color": outlook.color, "begin": begin, "end": outlook.end, "until": outlook.until, "alert_keys": keys}
    return event, stored.model_copy(update={**changes, "source": pair.source, "document": pair.document})


def _update(
    pair: _Pair, stored: StoredAlert, outlook: Outlook, begin_now: datetime
) -> tuple[VigilanceEvent | None, StoredAlert]:
    """Same colour with other times, or red lowered to orange. A begin already passed is kept: the rolling J
    period of each new carte moves it, not the weather."""
    lowered = outlook.color.rank < stored.color.rank
    begin = stored.begin if not lowered and stored.begin <= pair.now else begin_now
    if not lowered and (begin, outlook.end, outlook.until) == (stored.begin, stored.end, stored.until):
        return None, stored
    event = VigilanceEvent(
        kind=EventKind.UPDATE,
        departement=pair.departement,
        phenomenon=pair.phenomenon,
        color=outlook.color,
        previous_color=stored.color,
        begin=begin,
        end=outlook.end,
        until=outlook.until,
        alert_key=stored.key,
        related_keys=stored.alert_keys,
        dedupe_key=(
            f"{stored.key}#update:{outlook.color.value}:{_minute(begin)}:{_minute(outlook.end)}:"
            f"{_minute(outlook.until)}"
        ),
        source=pair.source,
        document=pair.document,
    )
    changes = {"color": outlook.color, "begin": begin, "end": outlook.end, "until": outlook.until}
    return event, stored.model_copy(update={**changes, "source": pair.source, "document": pair.document})


def _decide(
    pair: _Pair, stored: StoredAlert | None, outlook: Outlook | None
) -> tuple[list[VigilanceEvent], StoredAlert | None]:
    events: list[VigilanceEvent] = []
    begin = outlook.begin if outlook is not None and outlook.color.is_alert else None
    over = stored is not None and stored.until is not None and stored.until <= pair.now
    if stored is not None and over and (begin is None or stored.until is None or begin > stored.until):
        # The stored episode is over; whatever the document says next is a new alert.
        events.append(_end(stored, "expired", Color.GREEN, pair.source, pair.document))
        stored = None
    if outlook is None or begin is None:
        if stored is not None:
            events.append(_ending(pair, stored, outlook))
        return events, None
    if stored is None:
        event, stored = _new(pair, outlook, begin)
    elif outlook.color.rank > stored.color.rank:
        event, stored = _upgrade(pair, stored, outlook, begin)
    else:
        maybe, stored = _update(pair, stored, outlook, begin)
        if maybe is None:
            return events, stored
        event = maybe
    events.append(event)
    return events, stored


def _unknown_warnings(snapshot: VigilanceSnapshot, now: datetime) -> list[str]:
    warnings = []
    for vigilance in snapshot.unknown_phenomena():
        color = vigilance.outlook(now).color
        if color.is_alert or color is Color.UNKNOWN:
            warnings.append(
                f"{vigilance.departement} : phénomène inconnu {vigilance.raw_phenomenon!r} ({color.value}) : "
                "aucune diffusion"
            )
    return warnings


def diff(previous: State | Iterable[StoredAlert], snapshot: VigilanceSnapshot, now: datetime) -> DiffResult:
    """Events and the new state. Pure: the same inputs give the same result, and re-running with the state
    it returned gives no event."""
    now = to_utc(now)
    state = dict(previous) if isinstance(previous, Mapping) else index_state(previous)
    before = dict(state)
    events: list[VigilanceEvent] = []
    warnings = _unknown_warnings(snapshot, now)

    pairs = set(state) | {(v.departement, v.phenomenon) for v in snapshot.vigilances}
    for departement, phenomenon in sorted(pairs, key=lambda pair: (pair[0], pair[1].value)):
        if phenomenon is Phenomenon.UNKNOWN or not snapshot.covers(departement, phenomenon):
            continue
        vigilance = snapshot.get(departement, phenomenon)
        outlook = vigilance.outlook(now) if vigilance is not None else None
        if vigilance is not None and outlook is not None and outlook.color is Color.UNKNOWN:
            raw = sorted({i.raw_color or "?" for i in vigilance.timeline if i.color is Color.UNKNOWN})
            warnings.append(f"{departement} {phenomenon.value} : couleur inconnue {raw} : aucune diffusion, état gardé")
            continue
        if outlook is not None and outlook.has_unknown:
            warnings.append(f"{departement} {phenomenon.value} : une couleur inconnue ignorée")
        pair = _Pair(departement, phenomenon, now, snapshot.source, snapshot.identity.key)
        decided, stored = _decide(pair, state.get((departement, phenomenon)), outlook)
        events.extend(decided)
        if stored is None:
            state.pop((departement, phenomenon), None)
        else:
            state[(departement, phenomenon)] = stored

    changed = frozenset(
        dep for dep, phen in set(state) | set(before) if state.get((dep, phen)) != before.get((dep, phen))
    )
    return DiffResult(events=tuple(events), state=state, warnings=tuple(warnings), changed_departements=changed)


def expire(previous: State | Iterable[StoredAlert], now: datetime, *, document: str = "expiry") -> DiffResult:
    """End the stored alerts whose vigilance end has passed, without a new document (the poller calls it when
    the source's document is unchanged, so that an end is never missed while the source is silent)."""
    now = to_utc(now)
    state = dict(previous) if isinstance(previous, Mapping) else index_state(previous)
    events = [
        _end(alert, "expired", Color.GREEN, alert.source, document)
        for _, alert in sorted(state.items(), key=lambda item: (item[0][0], item[0][1].value))
        if alert.until is not None and alert.until <= now
    ]
    for event in events:
        del state[(event.departement, event.phenomenon)]
    return DiffResult(
        events=tuple(events), state=state, changed_departements=frozenset(event.departement for event in events)
    )
