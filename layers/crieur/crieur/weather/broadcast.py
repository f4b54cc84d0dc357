"""Automatic weather-alert broadcasts (issue 5): one poller tick, and the communes' opt-in.

A tick reads the official vigilance (Météo-France first, MeteoAlarm when it fails or is not
configured), diffs it against the stored national state and, for each event, publishes a French alert
through the ordinary publish use case for every commune of the département that opted in. A broadcast
is claimed per (commune, event) before publishing, so a re-run, a second source or two concurrent ticks
never send the same alert twice. When a vigilance ends, the "fin de vigilance" notice is published and
the alert's own posts are retracted wherever the network allows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from aws_lambda_powertools import Logger

from crieur.errors import CrieurError, InvalidInput, NotFound
from crieur.models import Link, PublicationRequest, WeatherAlertSettings
from crieur.store import Store
from crieur.weather.diff import DiffResult, EventKind, StoredAlert, VigilanceEvent, diff, expire
from crieur.weather.errors import WeatherSourceError
from crieur.weather.model import Color, DocumentIdentity, Phenomenon, VigilanceSnapshot
from crieur.weather.templates import render

if TYPE_CHECKING:
    from crieur.service import PublicationService

logger = Logger(child=True)


class VigilanceSource(Protocol):
    def fetch_if_changed(self, previous: DocumentIdentity | None) -> VigilanceSnapshot | None: ...


@dataclass
class TickReport:
    source: str | None
    events: int = 0
    published: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def wants(settings: WeatherAlertSettings, event: VigilanceEvent) -> bool:
    """Whether a commune's opt-in covers this event (ends follow the alert they close)."""
    if not settings.enabled:
        return False
    if settings.phenomena is not None and event.phenomenon.value not in settings.phenomena:
        return False
    color = event.previous_color if event.color.rank < Color.ORANGE.rank else event.color
    return color is not None and color.rank >= Color(settings.min_color).rank


@dataclass
class WeatherAlerts:
    store: Store
    publications: Callable[[], PublicationService]
    """Called by a tick that publishes or retracts an alert: a quiet tick does not load the publishing use case."""
    sources: Callable[[], list[tuple[str, Callable[[], VigilanceSource]]]]
    """(name, factory) in order of preference: Météo-France, then MeteoAlarm."""
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    # --- the commune's opt-in ---------------------------------------------------------------------------

    def settings(self, commune: str) -> WeatherAlertSettings:
        return self.store.get_weather_settings(commune) or WeatherAlertSettings()

    def configure(self, commune: str, settings: WeatherAlertSettings) -> WeatherAlertSettings:
        found = self.store.get_commune(commune)
        if found is None:
            raise NotFound(f"Aucune commune {commune}.")
        configured = {record.channel for record in self.store.list_channels(commune) if record.enabled}
        problems = [
            (f"channels.{color}[{index}]", f"Le canal « {name} » n'est pas configuré ou est désactivé.")
            for color, names in settings.channels.items()
            for index, name in enumerate(names)
            if name not in configured
        ]
        if problems:
            raise InvalidInput(problems)
        self.store.put_weather_settings(commune, found.departement, settings)
        return settings

    # --- the poller tick --------------------------------------------------------------------------------

    def tick(self) -> TickReport:
        now = self.clock()
        raw_alerts, raw_documents = self.store.weather_state()
        state = [StoredAlert.model_validate(alert) for alert in raw_alerts]
        documents = {name: DocumentIdentity.model_validate(doc) for name, doc in raw_documents.items()}
        report = TickReport(source=None)
        result: DiffResult | None = None
        for name, make in self.sources():
            try:
                snapshot = make().fetch_if_changed(documents.get(name))
            except WeatherSourceError as failure:
                logger.warning("vigilance source failed", extra={"source": name, "error": str(failure)})
                report.errors.append(f"{name}: {failure}")
                continue
            report.source = name
            if snapshot is not None:
                documents[name] = snapshot.identity
                result = diff(state, snapshot, now)
            break
        if report.source is None:
            logger.error("no vigilance source answered: no broadcast this tick", extra={"errors": report.errors})
            return report
        if result is None:  # the document did not change: only alerts whose end has passed are closed
            result = expire(state, now)
        for warning in result.warnings:
            logger.warning(warning)
        report.events = len(result.events)
        for event in result.events:
            report.published += self._broadcast(event, now)
        alerts = [alert.model_dump(mode="json") for alert in result.state.values()]
        self.store.save_weather_state(alerts, {name: doc.model_dump(mode="json") for name, doc in documents.items()})
        return report

    def _broadcast(self, event: VigilanceEvent, now: datetime) -> list[str]:
        if event.phenomenon is Phenomenon.UNKNOWN:
            return []
        message = render(event, now=now)
        if message.expires_at is not None and message.expires_at <= now:
            return []  # a late event: the vigilance is already over
        published = []
        for commune, settings in self.store.weather_subscribers(event.departement):
            if not wants(settings, event) or not self.store.claim_broadcast(commune, event.dedupe_key):
                continue
            color = event.color if event.color.is_alert else (event.previous_color or event.color)
            channels = settings.channels.get("red" if color is Color.RED else "orange")
            request = PublicationRequest(
                title=message.title,
                body=message.body,
                category=message.category,
                urgency=message.urgency,
                links=[Link.model_validate({"url": link.url, "label": link.label}) for link in message.links],
                expires_at=message.expires_at,
                channels=channels or None,
            )
            try:
                publication = self.publications().publish(commune, request)
            except CrieurError as refused:
                logger.warning("weather alert not published", extra={"commune": commune, "error": refused.detail})
                self.store.release_broadcast(commune, event.dedupe_key)
                continue
            published.append(publication.id)
            self.store.record_broadcast(commune, event.dedupe_key, event.alert_key, publication.id)
            if event.kind is EventKind.END:
                self._retract_alerts(commune, {event.alert_key, *event.related_keys})
        return published

    def _retract_alerts(self, commune: str, alert_keys: set[str]) -> None:
        """Once the end is announced, the alert posts are removed wherever the network allows it."""
        for publication_id in self.store.broadcasts_of(commune, alert_keys):
            try:
                self.publications().retract(commune, publication_id)
            except CrieurError as refused:  # still being sent, or already retracted by the mairie
                logger.info("alert not retracted", extra={"publication_id": publication_id, "why": refused.detail})
