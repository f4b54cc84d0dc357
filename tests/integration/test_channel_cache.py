"""A deliver container reads a channel's settings once a minute (ARCHITECTURE.md §8: cached parameter reads), and
never sends with a credential the mairie replaced: a refused credential reads the channel again, and when it
changed meanwhile (a reconnection this container had not seen), the delivery is tried again with the new one
instead of failing and marking the channel for reconnection."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx

from tests.integration.conftest import Gateway, Stack

INSTANCE = "https://mastodon.example"


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.MockRouter]:
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{INSTANCE}/api/v2/instance").respond(json={"configuration": {"statuses": {"max_characters": 500}}})
        yield router


def connect(gateway: Gateway, commune: str, token: str) -> None:
    body = {"settings": {"instance_url": INSTANCE}, "credentials": {"access_token": token}}
    assert gateway.call("PUT", "/v1/channels/mastodon", commune, body).status == 200


def publish(gateway: Gateway, commune: str) -> str:
    answer = gateway.call(
        "POST", "/v1/publications", commune, {"title": "Fête", "body": "Samedi.", "channels": ["mastodon"]}
    )
    assert answer.status == 201, answer.body
    return str(answer.json["id"])


def noted(reads: list[str], name: str, read: Callable[..., Any]) -> Callable[..., Any]:
    def reading(*args: Any) -> Any:
        reads.append(name)
        return read(*args)

    return reading


def delivery(gateway: Gateway, commune: str, publication_id: str) -> dict[str, Any]:
    return dict(gateway.call("GET", f"/v1/publications/{publication_id}", commune).json["deliveries"]["mastodon"])


def test_settings_are_read_once_and_a_replaced_credential_is_never_used(
    gateway: Gateway, stack: Stack, providers: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    commune = gateway.new_commune()
    connect(gateway, commune, "old")
    old = providers.post(f"{INSTANCE}/api/v1/statuses", headers={"Authorization": "Bearer old"})
    old.side_effect = [  # good for the first post; then the mairie replaces it, and Mastodon revokes it
        httpx.Response(200, json={"id": "8", "url": None}),
        httpx.Response(401, json={"error": "The access token is invalid"}),
    ]
    new = providers.post(f"{INSTANCE}/api/v1/statuses", headers={"Authorization": "Bearer new"}).respond(
        json={"id": "9", "url": None}
    )
    worker = stack.worker("mastodon")
    reads: list[str] = []
    read = worker.store.get_channel

    def counted(commune: str, channel: Any) -> Any:
        reads.append(channel)
        return read(commune, channel)

    monkeypatch.setattr(worker.store, "get_channel", counted)  # the store the API uses too, in this process
    first = publish(gateway, commune)
    assert stack.deliver("mastodon") == []
    assert delivery(gateway, commune, first)["status"] == "sent"
    assert reads == ["mastodon"]

    connect(gateway, commune, "new")  # through the API: this worker's cache has not seen it
    second = publish(gateway, commune)
    reads.clear()
    assert len(stack.deliver("mastodon")) == 1  # refused with the cached token: read again, tried again
    assert reads == ["mastodon"]
    retrying = delivery(gateway, commune, second)
    assert (retrying["status"], retrying["error"]["code"]) == ("retrying", "credentials_changed")
    assert gateway.call("GET", "/v1/channels/mastodon", commune).json["needs_reconnect"] is False

    reads.clear()
    assert stack.deliver("mastodon", make_visible=True) == []
    assert delivery(gateway, commune, second)["status"] == "sent"
    assert (old.call_count, new.call_count) == (2, 1)
    assert reads == []  # the settings read after the refusal serve the next attempt


def test_a_warm_delivery_reads_neither_its_publication_nor_its_channel(
    gateway: Gateway, stack: Stack, providers: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """§8: a claim and a result write. The publication comes in its message, the settings from the cache."""
    commune = gateway.new_commune()
    connect(gateway, commune, "token")
    providers.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "1", "url": None})
    publish(gateway, commune)
    assert stack.deliver("mastodon") == []  # a first delivery fills the cache
    worker = stack.worker("mastodon")
    reads: list[str] = []
    for name in ("get_publication", "get_channel", "fanout_state"):
        monkeypatch.setattr(worker.store, name, noted(reads, name, getattr(worker.store, name)))
    second = publish(gateway, commune)
    assert stack.deliver("mastodon") == []
    assert reads == []
    assert delivery(gateway, commune, second)["status"] == "sent"
