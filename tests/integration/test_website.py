"""The website channel: feeds, calendar, CAP alerts and widget in the public bucket, served by the API."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from icalendar import Calendar

from crieur.channels.website import WebsiteChannel, WebsiteCredentials, WebsiteSettings
from crieur.models import Publication
from tests.integration.conftest import Answer, Gateway, InProcessFunctions, Stack

ATOM = "{http://www.w3.org/2005/Atom}"
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
HOSTILE = '<script>alert(1)</script> & « émoji 🎉 » "quoted"'
IMAGE = {"url": "https://cdn.example/marche.jpg", "alt": "Étals du marché sous les lampions", "kind": "image"}


@pytest.fixture
def commune(gateway: Gateway) -> str:
    insee = gateway.new_commune()
    answer = gateway.call("PUT", "/v1/channels/website", insee, {"settings": {"title": "Mairie de Test"}})
    assert answer.status == 200, answer.body  # hosted by Crieur: no credentials to give
    return insee


def publish(gateway: Gateway, stack: Stack, insee: str, **fields: Any) -> dict[str, Any]:
    body = {"title": "Marché de Noël", "body": "Place de l'église.", "channels": ["website"], **fields}
    answer = gateway.call("POST", "/v1/publications", insee, body)
    assert answer.status == 201, answer.body
    assert stack.deliver("website") == []
    publication: dict[str, Any] = gateway.call("GET", f"/v1/publications/{answer.json['id']}", insee).json
    assert publication["deliveries"]["website"]["status"] == "sent", publication
    return publication


def parse(text: str) -> ET.Element:
    return ET.fromstring(text.encode())  # noqa: S314 - Crieur's own output, under test


def public(gateway: Gateway, insee: str, name: str) -> Answer:
    return gateway.call("GET", f"/public/{insee}/{name}", None)  # no API key


def test_a_publication_with_an_event_and_an_image_reaches_every_feed(
    gateway: Gateway, stack: Stack, commune: str
) -> None:
    starts = datetime(2031, 12, 13, 14, 0, tzinfo=UTC)
    event = {"starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=4)).isoformat(), "location": "Place"}
    publication = publish(gateway, stack, commune, category="event", media=[IMAGE], event=event)
    delivery = publication["deliveries"]["website"]
    assert delivery["external_id"].startswith("http")
    assert f"/public/{commune}/feed.atom" in delivery["external_id"]
    assert delivery["url"].endswith(f"/public/{commune}/widget.html")

    atom = public(gateway, commune, "feed.atom")
    assert atom.status == 200
    assert atom.headers["Content-Type"].startswith("application/atom+xml")
    root = parse(atom.body)
    (entry,) = root.findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title") == "Marché de Noël"
    enclosure = next(link for link in entry.findall(f"{ATOM}link") if link.get("rel") == "enclosure")
    assert enclosure.get("href") == IMAGE["url"]
    assert enclosure.get("title") == IMAGE["alt"]

    rss = public(gateway, commune, "feed.rss")
    assert rss.headers["Content-Type"].startswith("application/rss+xml")
    (item,) = parse(rss.body).iter("item")
    assert item.findtext("title") == "Marché de Noël"
    assert item.find("enclosure") is not None
    assert IMAGE["alt"] in (item.findtext("description") or "")

    feed = public(gateway, commune, "feed.json")
    assert feed.headers["Content-Type"].startswith("application/feed+json")
    assert feed.json["version"] == "https://jsonfeed.org/version/1.1"
    (json_item,) = feed.json["items"]
    assert json_item["id"] == publication["id"]
    assert json_item["image"] == IMAGE["url"]
    assert json_item["attachments"][0]["title"] == IMAGE["alt"]

    ics = public(gateway, commune, "events.ics")
    assert ics.headers["Content-Type"].startswith("text/calendar")
    calendar = Calendar.from_ical(ics.body)
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Paris"]
    (vevent,) = calendar.walk("VEVENT")
    assert str(vevent["UID"]) == publication["id"]
    start = vevent.decoded("DTSTART")
    assert str(start.tzinfo) == "Europe/Paris"
    assert start == starts
    assert start.hour == 15  # 14:00 UTC is 15:00 in Paris in December

    widget = public(gateway, commune, "widget.html")
    assert widget.headers["Content-Type"].startswith("text/html")
    assert '<html lang="fr">' in widget.body
    assert f'alt="{IMAGE["alt"]}"' in widget.body
    assert 'height="192"' in widget.body  # fixed size: no layout shift
    script = public(gateway, commune, "widget.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "<" not in script.body  # the HTML travels as an escaped JSON string
    assert "document.currentScript" in script.body


def test_a_hostile_title_stays_text_in_every_feed(gateway: Gateway, stack: Stack, commune: str) -> None:
    publish(gateway, stack, commune, title=HOSTILE, body=f"Corps {HOSTILE}", category="alert", urgency="critical")
    for name in ("feed.atom", "alerts.atom"):
        root = parse(public(gateway, commune, name).body)
        assert root.find(f"{ATOM}entry/{ATOM}title").text.endswith(HOSTILE)  # type: ignore[union-attr]
    (item,) = parse(public(gateway, commune, "feed.rss").body).iter("item")
    assert item.findtext("title") == HOSTILE
    assert public(gateway, commune, "feed.json").json["items"][0]["title"] == HOSTILE
    for name in ("feed.atom", "feed.rss", "alerts.atom", "widget.html", "widget.js"):
        assert "<script>" not in public(gateway, commune, name).body, name
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in public(gateway, commune, "widget.html").body


def test_current_alerts_are_cap_entries_and_a_retraction_cancels_them(
    gateway: Gateway, stack: Stack, commune: str
) -> None:
    news = publish(gateway, stack, commune, title="Fête du village")
    alert = publish(gateway, stack, commune, title="Crue de la Vilaine", category="weather", urgency="high")
    root = parse(public(gateway, commune, "alerts.atom").body)
    (entry,) = root.findall(f"{ATOM}entry")
    assert entry.find(f"{ATOM}content").get("type") == "application/cap+xml"  # type: ignore[union-attr]
    cap = entry.find(f"{ATOM}content/{CAP}alert")
    assert cap is not None
    assert cap.findtext(f"{CAP}identifier") == alert["id"]
    assert cap.findtext(f"{CAP}msgType") == "Alert"
    assert cap.findtext(f"{CAP}info/{CAP}category") == "Met"
    assert cap.findtext(f"{CAP}info/{CAP}severity") == "Severe"
    expires = datetime.fromisoformat(cap.findtext(f"{CAP}info/{CAP}expires") or "")
    assert expires > datetime.now(UTC)
    widget = public(gateway, commune, "widget.html").body
    assert widget.index("Crue de la Vilaine") < widget.index("Fête du village")  # alerts first
    assert "Alerte importante" in widget  # urgency as text, not colour only

    assert gateway.call("DELETE", f"/v1/publications/{alert['id']}", commune).status == 202
    assert stack.deliver("website") == []
    assert (
        gateway.call("GET", f"/v1/publications/{alert['id']}", commune).json["deliveries"]["website"]["status"]
        == "retracted"
    )
    ids = [item["id"] for item in public(gateway, commune, "feed.json").json["items"]]
    assert ids == [news["id"]]
    atom = parse(public(gateway, commune, "feed.atom").body)
    assert [e.findtext(f"{ATOM}title") for e in atom.findall(f"{ATOM}entry")] == ["Fête du village"]
    root = parse(public(gateway, commune, "alerts.atom").body)
    (cancel,) = root.findall(f"{ATOM}entry/{ATOM}content/{CAP}alert")
    assert cancel.findtext(f"{CAP}msgType") == "Cancel"
    assert alert["id"] in (cancel.findtext(f"{CAP}references") or "")
    assert "Crue de la Vilaine" not in public(gateway, commune, "widget.html").body


def test_only_known_files_are_served(gateway: Gateway, stack: Stack, commune: str) -> None:
    assert public(gateway, commune, "feed.atom").status == 404  # nothing published yet
    publish(gateway, stack, commune)
    for name in ("index.json", "secret.txt", "..%2Findex.json"):
        answer = public(gateway, commune, name)
        assert answer.status == 404, name
        assert answer.headers["Content-Type"] == "application/problem+json"
    assert public(gateway, "not-a-commune", "feed.atom").status == 404
    assert json.loads(public(gateway, commune, "feed.json").body)["items"]


def test_concurrent_deliveries_for_one_commune_lose_no_entry(
    gateway: Gateway, functions: InProcessFunctions, commune: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivery B commits the index between A's read and A's write: A's conditional write loses, A re-reads
    and re-applies, and the artefacts A leaves include both."""
    for name, value in functions.by_logical_id("DeliverFunction", "website").environment.items():
        monkeypatch.setenv(name, value)
    created = [
        gateway.call("POST", "/v1/publications", commune, {"title": title, "body": "Texte.", "channels": ["website"]})
        for title in ("Premier avis", "Second avis")
    ]
    first, second = (
        Publication.model_validate(gateway.call("GET", f"/v1/publications/{answer.json['id']}", commune).json)
        for answer in created
    )
    adapter = WebsiteChannel(WebsiteSettings(title="Mairie de Test"), WebsiteCredentials(), httpx.Client())
    loads = []
    original_load = WebsiteChannel._load

    def load_then_let_b_in(self: WebsiteChannel, insee: str) -> Any:
        loaded = original_load(self, insee)
        loads.append(insee)
        if len(loads) == 1:  # A has read; B delivers completely before A writes
            WebsiteChannel(WebsiteSettings(title="Mairie de Test"), WebsiteCredentials(), httpx.Client()).send(
                WebsiteChannel.render(adapter, second), delivery_id="b"
            )
        return loaded

    monkeypatch.setattr(WebsiteChannel, "_load", load_then_let_b_in)
    adapter.send(adapter.render(first), delivery_id="a")

    ids = {item["id"] for item in public(gateway, commune, "feed.json").json["items"]}
    assert ids == {first.id, second.id}
    atom = parse(public(gateway, commune, "feed.atom").body)
    assert {e.findtext(f"{ATOM}title") for e in atom.findall(f"{ATOM}entry")} == {"Premier avis", "Second avis"}
