"""Automatic weather-alert broadcasts: the commune's opt-in, and poller ticks against moto."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crieur import config
from crieur.service import PublicationService
from crieur.weather.broadcast import WeatherAlerts
from crieur.weather.errors import SourceUnavailable
from crieur.weather.meteofrance import parse_carte
from crieur.weather.model import Color, DocumentIdentity, Phenomenon, VigilanceSnapshot
from crieur.weather.samples import SampleAlert, carte_document
from tests.integration.conftest import Gateway, Stack
from tests.integration.test_pipeline import commune

__all__ = ["commune"]
NOW = datetime.now(UTC).replace(microsecond=0)


def carte(*alerts: SampleAlert, snapshot: str) -> VigilanceSnapshot:
    return parse_carte(carte_document(NOW - timedelta(minutes=5), alerts, snapshot_id=snapshot))


@dataclass
class FakeSource:
    """Stands for a vigilance API: hands out its current document once, then says it is unchanged."""

    document: VigilanceSnapshot | None = None
    failing: bool = False
    calls: list[DocumentIdentity | None] = field(default_factory=list)

    def fetch_if_changed(self, previous: DocumentIdentity | None) -> VigilanceSnapshot | None:
        self.calls.append(previous)
        if self.failing:
            raise SourceUnavailable("meteofrance", "503")
        if self.document is None or (previous is not None and previous.key == self.document.identity.key):
            return None
        return self.document


@pytest.fixture
def sources() -> tuple[FakeSource, FakeSource]:
    return FakeSource(), FakeSource()


@pytest.fixture
def alerts(
    gateway: Gateway, stack: Stack, sources: tuple[FakeSource, FakeSource], monkeypatch: pytest.MonkeyPatch
) -> WeatherAlerts:
    meteofrance, meteoalarm = sources
    weather = next(f for f in stack.deployment.functions.values() if f.logical_id == "WeatherFunction")
    for name, value in weather.environment.items():
        monkeypatch.setenv(name, value)
    store = config.store()
    store.save_weather_state([], {})  # each test starts from a quiet national state
    publications = PublicationService(store=store, fanout=config.fanout(), vault=config.vault(), http=config.http)
    return WeatherAlerts(
        store=store,
        publications=lambda: publications,
        sources=lambda: [("meteofrance", lambda: meteofrance), ("meteoalarm", lambda: meteoalarm)],
        clock=lambda: NOW,
    )


def opt_in(gateway: Gateway, commune: str, **settings: Any) -> dict[str, Any]:
    answer = gateway.call("PUT", "/v1/alerts/weather", commune, {"enabled": True, **settings})
    assert answer.status == 200, answer.body
    return dict(answer.json)


def heatwave(departement: str, color: Color = Color.ORANGE) -> SampleAlert:
    return SampleAlert(departement, Phenomenon.CANICULE, color, NOW - timedelta(hours=1), NOW + timedelta(hours=30))


def weather_publications(gateway: Gateway, commune: str) -> list[dict[str, Any]]:
    items = gateway.call("GET", "/v1/publications?limit=50", commune).json["items"]
    return [item for item in items if item["category"] == "weather"]


def test_the_opt_in_is_validated_and_kept(gateway: Gateway, commune: str) -> None:
    assert gateway.call("GET", "/v1/alerts/weather", commune).json == {
        "enabled": False,
        "min_color": "orange",
        "phenomena": None,
        "channels": {},
    }
    unknown = gateway.call("PUT", "/v1/alerts/weather", commune, {"enabled": True, "phenomena": ["tempête solaire"]})
    assert unknown.status == 422
    assert unknown.json["errors"][0]["field"] == "phenomena"
    not_set_up = gateway.call("PUT", "/v1/alerts/weather", commune, {"enabled": True, "channels": {"red": ["x"]}})
    assert not_set_up.status == 422
    assert not_set_up.json["errors"][0]["field"] == "channels.red[0]"
    kept = opt_in(gateway, commune, phenomena=["Canicule", "grand froid"], channels={"red": ["webhook"]})
    assert kept["phenomena"] == ["canicule", "grand-froid"]
    assert gateway.call("GET", "/v1/alerts/weather", commune).json == kept


def test_an_orange_heatwave_is_broadcast_once_then_its_end(
    gateway: Gateway, stack: Stack, commune: str, alerts: WeatherAlerts, sources: tuple[FakeSource, FakeSource]
) -> None:
    meteofrance, _ = sources
    departement = commune[:2]
    opt_in(gateway, commune)
    meteofrance.document = carte(heatwave(departement), snapshot="orange")

    first = alerts.tick()
    assert first.source == "meteofrance"
    (alert,) = weather_publications(gateway, commune)
    assert alert["id"] in first.published
    assert alert["urgency"] == "high"
    assert "canicule" in alert["title"].lower()
    assert alert["expires_at"] is not None
    assert {"webhook", "mastodon"} == set(alert["deliveries"])
    assert alerts.tick().published == []  # unchanged document: nothing
    meteofrance.document = carte(heatwave(departement), snapshot="orange-again")
    assert alerts.tick().published == []  # same vigilance in a new document: nothing either
    assert len(weather_publications(gateway, commune)) == 1

    meteofrance.document = carte(snapshot="green")
    alerts.tick()
    end, alert = weather_publications(gateway, commune)  # newest first
    assert "fin" in end["title"].lower()
    # The alert's posts are retracted once the end is announced (after its delivery has settled).
    assert alert["status"] in ("publishing", "retracted")


def test_only_the_communes_that_opted_in_for_that_colour_and_phenomenon_get_it(
    gateway: Gateway, commune: str, alerts: WeatherAlerts, sources: tuple[FakeSource, FakeSource]
) -> None:
    meteofrance, _ = sources
    red_only = gateway.new_commune()
    quiet = gateway.new_commune()
    for insee in (red_only, quiet):
        gateway.call(
            "PUT",
            "/v1/channels/webhook",
            insee,
            {"settings": {"url": "https://site.example/h"}, "credentials": {"secret": "whsec_" + "C" * 44}},
        )
    opt_in(gateway, red_only, min_color="red")
    opt_in(gateway, commune, phenomena=["orages"])
    meteofrance.document = carte(*(heatwave(insee[:2]) for insee in (commune, red_only, quiet)), snapshot="wide")
    alerts.tick()
    assert [weather_publications(gateway, insee) for insee in (commune, red_only, quiet)] == [[], [], []]

    meteofrance.document = carte(
        *(heatwave(insee[:2], Color.RED) for insee in (commune, red_only, quiet)), snapshot="red"
    )
    alerts.tick()
    (red,) = weather_publications(gateway, red_only)
    assert red["urgency"] == "critical"
    assert weather_publications(gateway, quiet) == []
    assert weather_publications(gateway, commune) == []  # it only relays thunderstorms


def test_meteoalarm_takes_over_when_meteofrance_fails(
    gateway: Gateway, commune: str, alerts: WeatherAlerts, sources: tuple[FakeSource, FakeSource]
) -> None:
    meteofrance, meteoalarm = sources
    opt_in(gateway, commune)
    meteofrance.failing = True
    meteoalarm.document = carte(heatwave(commune[:2]), snapshot="fallback")
    report = alerts.tick()
    assert report.source == "meteoalarm"
    assert report.errors
    (alert,) = weather_publications(gateway, commune)
    assert alert["id"] in report.published


def test_no_source_no_broadcast(alerts: WeatherAlerts, sources: tuple[FakeSource, FakeSource]) -> None:
    meteofrance, meteoalarm = sources
    meteofrance.failing = meteoalarm.failing = True
    report = alerts.tick()
    assert report.source is None
    assert report.published == []
    assert len(report.errors) == 2
