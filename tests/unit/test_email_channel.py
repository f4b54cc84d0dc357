"""The email channel: the message as HTML and text (everything escaped), and how SES answers map to outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
from pydantic import ValidationError

from crieur.channels.base import PermanentChannelError, TransientChannelError
from crieur.channels.email import (
    BULK_SIZE,
    HTML_TEMPLATE,
    TEMPLATE_NAME,
    TEXT_TEMPLATE,
    EmailChannel,
    EmailSettings,
)
from crieur.messaging import BulkDestination, BulkResult
from crieur.models import Publication
from crieur.subscribers import Contact

FROM = "Mairie de Saint-Malo <info@saint-malo.example>"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture(autouse=True)
def unpaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRIEUR_SES_SENDS_PER_SECOND", "1000000")


def publication(**fields: Any) -> Publication:
    return Publication.model_validate(
        {
            "title": "Marché de Noël",
            "body": "Place de la mairie, samedi.",
            "id": "pub_01",
            "commune": "35288",
            "status": "publishing",
            "created_at": datetime(2026, 11, 27, tzinfo=UTC),
            **fields,
        }
    )


class Gateway:
    """Answers like EmailGateway, recording the calls; `answers` says what each call does."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.templates: list[tuple[str, str, str, str]] = []
        self.calls: list[list[BulkDestination]] = []

    def ensure_template(self, name: str, subject: str, html: str, text: str) -> None:
        self.templates.append((name, subject, html, text))

    def send_bulk(self, *args: Any, **kwargs: Any) -> list[BulkResult]:
        destinations = list(args[4])
        self.calls.append(destinations)
        answer = self.answers.pop(0) if self.answers else "sent"
        if isinstance(answer, Exception):
            raise answer
        return [BulkResult(key=d.key, status=answer, code=None if answer == "sent" else "x") for d in destinations]


class Directory:
    def __init__(self, count: int) -> None:
        self.addresses = {f"sub_{index:03d}": f"habitant{index}@example.org" for index in range(count)}

    def audience(self, commune: str, medium: str, category: str) -> list[str]:
        return sorted(self.addresses)

    def contacts(self, commune: str, medium: str, ids: list[str]) -> dict[str, Contact]:
        url = f"https://crieur.example/public/{commune}/subscriptions/unsubscribe?token=email.{{}}"
        return {
            i: Contact(id=i, address=self.addresses[i], unsubscribe_url=url.format(i))
            for i in ids
            if i in self.addresses
        }


def channel(http: httpx.Client, gateway: Gateway, count: int = 3, **settings: Any) -> EmailChannel:
    adapter = EmailChannel(EmailSettings.model_validate({"from_address": FROM, **settings}), None, http)
    adapter.gateway = cast("Any", gateway)
    adapter.subscribers = cast("Any", Directory(count))
    return adapter


# ----------------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("value", [FROM, "info@saint-malo.example", "Mairie <info@mairie.saint-malo.fr>"])
def test_sender_addresses(value: str) -> None:
    assert EmailSettings(from_address=value).from_address == value


@pytest.mark.parametrize("value", ["info", "Mairie <info>", "info@", "@saint-malo.example", "a b@c.fr", "x@localhost"])
def test_bad_sender_addresses_are_refused_in_french(value: str) -> None:
    with pytest.raises(ValidationError, match="Adresse e-mail invalide"):
        EmailSettings(from_address=value)


def test_sender_name_and_address() -> None:
    settings = EmailSettings(from_address=FROM)
    assert (settings.sender_name, settings.sender_address) == ("Mairie de Saint-Malo", "info@saint-malo.example")
    bare = EmailSettings(from_address="info@saint-malo.example")
    assert bare.sender_name == "info@saint-malo.example"


# ----------------------------------------------------------------------------------------------------- the message


def test_everything_from_the_publication_is_escaped(http: httpx.Client) -> None:
    pub = publication(
        title="<b>Fête</b> & bal",
        body='Venez <script>alert("x")</script> voir https://saint-malo.example/fete?a=1&b="2"',
        links=[{"url": "https://saint-malo.example/plan", "label": "Le plan <complet>"}],
        media=[{"url": "https://saint-malo.example/affiche.jpg", "alt": 'L\'affiche "officielle" <grande>'}],
    )
    data = channel(http, Gateway()).render(pub).payload["template_data"]
    page = data["html"]
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<title>&lt;b&gt;Fête&lt;/b&gt; &amp; bal</title>" in page
    assert 'href="https://saint-malo.example/fete?a=1&amp;b=' in page  # the URL stops before the quote
    assert ">Le plan &lt;complet&gt;</a>" in page
    assert 'alt="L&#x27;affiche &quot;officielle&quot; &lt;grande&gt;"' in page
    assert page.startswith('<!doctype html><html lang="fr">')
    assert data["subject"] == "<b>Fête</b> & bal"  # a subject is text, not HTML
    assert "Venez <script>" in data["text"]  # the text part is plain text


def test_paragraphs_images_videos_and_links(http: httpx.Client) -> None:
    pub = publication(
        body="Premier paragraphe.\nSuite.\n\nSecond paragraphe.",
        links=[{"url": "https://saint-malo.example/marche"}],
        media=[
            {"url": "https://saint-malo.example/a.jpg", "alt": "Les chalets illuminés"},
            {"url": "https://saint-malo.example/b.mp4", "alt": "La parade", "kind": "video"},
        ],
    )
    rendered = channel(http, Gateway()).render(pub)
    page = rendered.payload["template_data"]["html"]
    assert '<p style="margin:0 0 1rem">Premier paragraphe.<br>Suite.</p>' in page
    assert '<p style="margin:0 0 1rem">Second paragraphe.</p>' in page
    assert 'alt="Les chalets illuminés"' in page
    assert ">Vidéo : La parade</a>" in page
    text = rendered.text
    assert text is not None
    assert text.startswith("Marché de Noël\n==============\n\nPremier paragraphe.")
    assert "[Image : Les chalets illuminés] https://saint-malo.example/a.jpg" in text
    assert "[Vidéo : La parade] https://saint-malo.example/b.mp4" in text
    assert "\nhttps://saint-malo.example/marche" in text


def test_alerts_say_so(http: httpx.Client) -> None:
    rendered = channel(http, Gateway()).render(publication(category="weather", urgency="critical"))
    data = rendered.payload["template_data"]
    assert data["subject"] == "Alerte : Marché de Noël"
    assert ">Alerte</p>" in data["html"]
    assert data["text"].startswith("ALERTE - Marché de Noël")


def test_footer_names_the_sender_and_the_template_carries_the_unsubscribe_link(http: httpx.Client) -> None:
    data = channel(http, Gateway()).render(publication()).payload["template_data"]
    assert data["footer"] == "Vous recevez ce message car vous êtes abonné(e) aux informations de Mairie de Saint-Malo."
    assert '<a href="{{unsubscribe_url}}"' in HTML_TEMPLATE
    assert "Se désabonner en un clic : {{{unsubscribe_url}}}" in TEXT_TEMPLATE


def test_an_override_replaces_the_body(http: httpx.Client) -> None:
    pub = publication(overrides={"email": {"text": "Texte pour les abonnés."}}, channels=["email"])
    assert "Texte pour les abonnés." in channel(http, Gateway()).render(pub).payload["template_data"]["text"]


def test_without_reply_to_a_warning(http: httpx.Client) -> None:
    assert channel(http, Gateway()).render(publication()).warnings
    assert channel(http, Gateway(), reply_to="accueil@saint-malo.example").render(publication()).warnings == []


# ----------------------------------------------------------------------------------------------------- sending


def test_bulk_calls_of_fifty_with_one_click_headers(http: httpx.Client) -> None:
    gateway = Gateway()
    adapter = channel(http, gateway, count=120)
    rendered = adapter.render(publication())
    audience = adapter.audience(rendered)
    outcomes = adapter.send_chunk(rendered, audience)
    assert [len(call) for call in gateway.calls] == [BULK_SIZE, BULK_SIZE, 20]
    assert gateway.templates[0][0] == TEMPLATE_NAME
    assert {outcome.result for outcome in outcomes} == {"delivered"}
    first = gateway.calls[0][0]
    assert first.template_data == {
        "unsubscribe_url": f"https://crieur.example/public/35288/subscriptions/unsubscribe?token=email.{first.key}"
    }
    assert first.headers == {
        "List-Unsubscribe": f"<{first.template_data['unsubscribe_url']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_per_destination_answers_become_outcomes(http: httpx.Client) -> None:
    gateway = Gateway("permanent")
    adapter = channel(http, gateway, count=2)
    rendered = adapter.render(publication())
    outcomes = adapter.send_chunk(rendered, ["sub_000", "sub_001", "sub_gone"])
    assert {(o.recipient, o.result) for o in outcomes} == {
        ("sub_000", "refused"),
        ("sub_001", "refused"),
        ("sub_gone", "removed"),  # unsubscribed since the audience was taken
    }


def test_a_throttled_call_leaves_its_recipients_to_retry(http: httpx.Client) -> None:
    gateway = Gateway("sent", TransientChannelError("rate_limited", "Trop d'e-mails.", retry_after=2.0))
    adapter = channel(http, gateway, count=60)
    rendered = adapter.render(publication())
    outcomes = adapter.send_chunk(rendered, adapter.audience(rendered))
    assert sum(o.result == "delivered" for o in outcomes) == 50
    retried = [o for o in outcomes if o.result == "retry"]
    assert len(retried) == 10
    assert {(o.retry_after, o.detail) for o in retried} == {(2.0, "rate_limited")}


def test_a_refused_sender_fails_the_chunk_or_leaves_the_rest_to_retry(http: httpx.Client) -> None:
    refused = PermanentChannelError("sending_paused", "L'envoi d'e-mails est en pause.")
    adapter = channel(http, Gateway(refused), count=60)
    rendered = adapter.render(publication())
    with pytest.raises(PermanentChannelError):
        adapter.send_chunk(rendered, adapter.audience(rendered))
    adapter = channel(http, Gateway("sent", refused), count=60)
    outcomes = adapter.send_chunk(rendered, adapter.audience(rendered))
    assert sum(o.result == "delivered" for o in outcomes) == 50
    assert {o.detail for o in outcomes if o.result == "retry"} == {"sending_paused"}
