"""Channel adapters against respx stand-ins of the providers' documented APIs."""

import json
from datetime import UTC, datetime

import httpx
import pytest
import respx

from crieur.channels import mastodon
from crieur.channels.base import PermanentChannelError, RenderedPost, TransientChannelError
from crieur.channels.mastodon import MastodonChannel, MastodonCredentials, MastodonSettings
from crieur.channels.webhook import WebhookChannel, WebhookCredentials, WebhookSettings
from crieur.models import Publication
from crieur.render.text import weighted_length
from crieur.security import guarded_client, new_webhook_secret, verify_webhook

INSTANCE = "https://mastodon.example"
EVENT = RenderedPost(text=None, payload={"type": "publication.published", "data": {"a": 1}})


def publication(body: str = "La rue de l'Église est fermée lundi.", **extra: object) -> Publication:
    return Publication.model_validate(
        {
            "title": "Travaux",
            "body": body,
            "id": "pub_01JDELIVERY",
            "commune": "35238",
            "status": "publishing",
            "created_at": datetime(2026, 11, 27, tzinfo=UTC),
            **extra,
        }
    )


@pytest.fixture(autouse=True)
def fresh_instance_cache() -> None:
    mastodon._instance_limits.clear()


@pytest.fixture
def toot() -> MastodonChannel:
    return MastodonChannel(
        MastodonSettings(instance_url=INSTANCE), MastodonCredentials(access_token="tok"), httpx.Client()
    )


@respx.mock
def test_mastodon_posts_with_bearer_and_idempotency_key(toot: MastodonChannel) -> None:
    respx.get(f"{INSTANCE}/api/v2/instance").respond(json={"configuration": {"statuses": {"max_characters": 500}}})
    route = respx.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "1101", "url": f"{INSTANCE}/@mairie/1101"})
    sent = toot.send(toot.render(publication()), delivery_id="pub_01JDELIVERY-mastodon")
    assert (sent.external_id, sent.url) == ("1101", f"{INSTANCE}/@mairie/1101")
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer tok"
    assert request.headers["Idempotency-Key"] == "pub_01JDELIVERY-mastodon"
    assert json.loads(request.content) == {
        "status": "Travaux\n\nLa rue de l'Église est fermée lundi.\n\n#actualité",
        "visibility": "public",
        "language": "fr",
    }


@respx.mock
def test_mastodon_text_fits_the_instance_limit(toot: MastodonChannel) -> None:
    respx.get(f"{INSTANCE}/api/v2/instance").respond(json={"configuration": {"statuses": {"max_characters": 300}}})
    payload = toot.render(publication("mot " * 2000, links=[{"url": "https://mairie.example.fr/" + "p" * 100}]))
    assert weighted_length(payload.payload["status"], 23) <= 300
    assert payload.payload["status"].endswith("p" * 100 + "\n#actualité")


@respx.mock
def test_mastodon_limit_defaults_to_500_when_the_instance_does_not_say(toot: MastodonChannel) -> None:
    respx.get(f"{INSTANCE}/api/v2/instance").respond(503)
    assert toot.max_length() == 500


@respx.mock
@pytest.mark.parametrize(
    ("status", "headers", "error", "code"),
    [
        (503, {}, TransientChannelError, "provider_unavailable"),
        (429, {"Retry-After": "42"}, TransientChannelError, "rate_limited"),
        (401, {}, PermanentChannelError, "needs_reconnect"),
        (422, {}, PermanentChannelError, "rejected"),
    ],
)
def test_mastodon_errors_are_classified(
    toot: MastodonChannel, status: int, headers: dict[str, str], error: type[Exception], code: str
) -> None:
    respx.post(f"{INSTANCE}/api/v1/statuses").respond(status, headers=headers, json={"error": "Nope"})
    with pytest.raises(error) as caught:
        toot.send(RenderedPost(text=None, payload={"status": "x"}), delivery_id="d")
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert caught.value.provider_message == "Nope"  # type: ignore[attr-defined]
    if status == 429:
        assert caught.value.retry_after == 42  # type: ignore[attr-defined]


@respx.mock
def test_mastodon_timeout_is_transient(toot: MastodonChannel) -> None:
    respx.post(f"{INSTANCE}/api/v1/statuses").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TransientChannelError) as caught:
        toot.send(RenderedPost(text=None, payload={"status": "x"}), delivery_id="d")
    assert caught.value.code == "timeout"


@respx.mock
def test_mastodon_delete(toot: MastodonChannel) -> None:
    route = respx.delete(f"{INSTANCE}/api/v1/statuses/1101").respond(json={"id": "1101"})
    toot.delete("1101")
    assert route.called


@respx.mock
def test_webhook_is_signed_as_standard_webhooks_says() -> None:
    secret = new_webhook_secret()
    route = respx.post("https://site.example/hooks/crieur").respond(204)
    channel = WebhookChannel(
        WebhookSettings(url="https://site.example/hooks/crieur"), WebhookCredentials(secret=secret), httpx.Client()
    )
    sent = channel.send(channel.render(publication()), delivery_id="pub_01JDELIVERY-webhook")
    request = route.calls.last.request
    verify_webhook([secret], dict(request.headers), request.content)
    assert request.headers["webhook-id"] == sent.external_id == "pub_01JDELIVERY-webhook"
    body = json.loads(request.content)
    assert body["type"] == "publication.published"
    assert body["data"]["title"] == "Travaux"


@respx.mock
def test_webhook_gone_is_permanent() -> None:
    respx.post("https://site.example/hook").respond(410)
    channel = WebhookChannel(
        WebhookSettings(url="https://site.example/hook"),
        WebhookCredentials(secret=new_webhook_secret()),
        httpx.Client(),
    )
    with pytest.raises(PermanentChannelError):
        channel.send(
            RenderedPost(text=None, payload={"type": "publication.published", "data": {"a": 1}}), delivery_id="d"
        )


def test_webhook_settings_refuse_plain_http_outside_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRIEUR_ALLOW_PRIVATE_TARGETS", raising=False)
    with pytest.raises(ValueError, match="https"):
        WebhookSettings(url="http://site.example/hook")
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    assert str(WebhookSettings(url="http://127.0.0.1:3001/hook").url).startswith("http://")


def test_outbound_requests_to_loopback_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRIEUR_ALLOW_PRIVATE_TARGETS", raising=False)
    channel = WebhookChannel(
        WebhookSettings(url="https://127.0.0.1:9/hook"),
        WebhookCredentials(secret=new_webhook_secret()),
        guarded_client(),
    )
    with pytest.raises(PermanentChannelError) as caught:
        channel.send(
            RenderedPost(text=None, payload={"type": "publication.published", "data": {"a": 1}}), delivery_id="d"
        )
    assert caught.value.code == "forbidden_target"
