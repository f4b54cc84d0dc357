"""Previews, retraction, channel tests and reconnection, through the handlers against moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from tests.integration.conftest import Gateway, Stack
from tests.integration.test_pipeline import HOOK, INSTANCE, PUBLICATION, commune, publish

__all__ = ["commune"]  # the fixture, shared with the pipeline tests


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.MockRouter]:
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{INSTANCE}/api/v2/instance").respond(json={"configuration": {"statuses": {"max_characters": 60}}})
        yield router


def shown(gateway: Gateway, commune: str, publication_id: str) -> dict[str, Any]:
    answer = gateway.call("GET", f"/v1/publications/{publication_id}", commune)
    assert answer.status == 200
    return dict(answer.json)


def test_preview_shows_each_channel_text_as_it_will_be_sent(
    gateway: Gateway, commune: str, providers: respx.MockRouter
) -> None:
    answer = gateway.call("POST", "/v1/previews", commune, {**PUBLICATION, "body": "mot " * 100})
    assert answer.status == 200
    channels = answer.json["channels"]
    assert set(channels) == {"webhook", "mastodon"}
    mastodon = channels["mastodon"]
    assert mastodon["limit"] == 60
    assert mastodon["length"] <= 60
    assert mastodon["text"].startswith("Coupure d'eau\n\nmot mot")
    assert "…" in mastodon["text"]
    assert channels["webhook"]["text"] == "Coupure d'eau"


def test_preview_is_what_is_sent(gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter) -> None:
    fields = {"body": "Réunion publique " * 20, "channels": ["mastodon"]}
    previewed = gateway.call("POST", "/v1/previews", commune, {**PUBLICATION, **fields}).json["channels"]["mastodon"]
    toot = providers.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "1", "url": None})
    publish(gateway, commune, **fields)
    stack.deliver("mastodon")
    assert "Réunion publique" in previewed["text"]
    assert json.loads(toot.calls.last.request.content)["status"] == previewed["text"]


def test_an_override_longer_than_the_channel_allows_is_refused(
    gateway: Gateway, commune: str, providers: respx.MockRouter
) -> None:
    body = {**PUBLICATION, "channels": ["mastodon"], "overrides": {"mastodon": {"text": "x" * 61}}}
    answer = gateway.call("POST", "/v1/publications", commune, body)
    assert answer.status == 422
    assert answer.json["errors"] == [
        {"field": "overrides.mastodon.text", "message": "Trop long pour Mastodon : 61 caractères comptés, au plus 60."}
    ]
    fits = {**body, "overrides": {"mastodon": {"text": "Coupure d'eau mardi matin https://example.fr/" + "a" * 80}}}
    assert gateway.call("POST", "/v1/previews", commune, fits).status == 200


def test_retraction_deletes_everywhere_it_can(
    gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter
) -> None:
    hook = providers.post(HOOK).respond(204)
    providers.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "42", "url": f"{INSTANCE}/@m/42"})
    deleted = providers.delete(f"{INSTANCE}/api/v1/statuses/42").respond(json={"id": "42"})
    created = publish(gateway, commune)
    stack.deliver("webhook")
    stack.deliver("mastodon")
    assert shown(gateway, commune, created["id"])["status"] == "published"

    answer = gateway.call("DELETE", f"/v1/publications/{created['id']}", commune)
    assert answer.status == 202
    assert answer.json["status"] == "retracted"
    assert stack.deliver("mastodon") == []
    assert stack.deliver("webhook") == []
    after = shown(gateway, commune, created["id"])
    assert after["deliveries"]["mastodon"]["status"] == "retracted"
    assert after["deliveries"]["webhook"]["status"] == "retracted"
    assert deleted.call_count == 1
    assert b"publication.retracted" in hook.calls.last.request.content
    # Asking again changes nothing and sends nothing.
    assert gateway.call("DELETE", f"/v1/publications/{created['id']}", commune).status == 202
    assert stack.drain("mastodon") == []


def test_retraction_failure_stays_visible(
    gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter
) -> None:
    providers.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "43", "url": None})
    providers.delete(f"{INSTANCE}/api/v1/statuses/43").respond(403, json={"error": "This action is not allowed"})
    created = publish(gateway, commune, channels=["mastodon"])
    stack.deliver("mastodon")
    gateway.call("DELETE", f"/v1/publications/{created['id']}", commune)
    stack.deliver("mastodon")
    mastodon = shown(gateway, commune, created["id"])["deliveries"]["mastodon"]
    assert mastodon["status"] == "sent"
    assert mastodon["error"]["code"] == "retract_failed"
    assert mastodon["error"]["message"].startswith("Le retrait a échoué")


def test_a_publication_still_being_sent_cannot_be_retracted(gateway: Gateway, commune: str) -> None:
    created = publish(gateway, commune)
    answer = gateway.call("DELETE", f"/v1/publications/{created['id']}", commune)
    assert answer.status == 409
    assert "en cours" in answer.json["detail"]


def test_a_refused_token_marks_the_channel_and_the_next_publication_skips_it(
    gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter
) -> None:
    providers.post(f"{INSTANCE}/api/v1/statuses").respond(401, json={"error": "The access token was revoked"})
    first = publish(gateway, commune, channels=["mastodon"])
    stack.deliver("mastodon")
    assert shown(gateway, commune, first["id"])["deliveries"]["mastodon"]["error"]["code"] == "needs_reconnect"
    channel = gateway.call("GET", "/v1/channels/mastodon", commune).json
    assert channel["needs_reconnect"] is True
    assert "reconnectez" in channel["reconnect_reason"].lower()

    warned = gateway.call("POST", "/v1/previews", commune, PUBLICATION).json["channels"]["mastodon"]
    assert any("ignoré" in warning for warning in warned["warnings"])
    second = publish(gateway, commune, channels=["mastodon"])
    assert second["deliveries"]["mastodon"]["status"] == "skipped"
    assert second["status"] == "failed"  # nothing could go out
    assert stack.drain("mastodon") == []

    # New credentials are the reconnection.
    gateway.call(
        "PUT",
        "/v1/channels/mastodon",
        commune,
        {"settings": {"instance_url": INSTANCE}, "credentials": {"access_token": "new"}},
    )
    assert gateway.call("GET", "/v1/channels/mastodon", commune).json["needs_reconnect"] is False


def test_channel_test_reports_what_the_credentials_open(
    gateway: Gateway, commune: str, providers: respx.MockRouter
) -> None:
    providers.get(f"{INSTANCE}/api/v1/accounts/verify_credentials").mock(
        side_effect=[httpx.Response(200, json={"acct": "mairie"}), httpx.Response(401, json={"error": "revoked"})]
    )
    good = gateway.call("POST", "/v1/channels/mastodon/test", commune)
    assert good.status == 200
    assert good.json["ok"] is True
    assert good.json["account"] == "@mairie"
    bad = gateway.call("POST", "/v1/channels/mastodon/test", commune).json
    assert bad["ok"] is False
    assert gateway.call("GET", "/v1/channels/mastodon", commune).json["needs_reconnect"] is True
    assert gateway.call("POST", "/v1/channels/facebook/test", commune).status == 404
