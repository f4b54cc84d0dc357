"""Commune isolation, operation by operation of the OpenAPI document (so a new endpoint is covered, or this test
says which of its parameters it does not know yet).

Commune B owns a scheduled and a published publication, a webhook channel with its secret, an inbound source, an
event endpoint and weather settings. Commune A, with its own key, calls every operation with B's identifiers:
each answer is a 404 (never a 403 that would reveal the id exists), no answer carries anything of B's, and at
the end everything of B's reads exactly as before. A also cannot sign a webhook into B's inbound source.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crieur.security import webhook_headers
from tests.integration.conftest import Gateway

B_HOOK = "https://b-mairie.example/hooks/crieur-b"
B_SECRET = "whsec_" + "Qg" * 22
A_SECRET = "whsec_" + "QQ" * 22
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/publications/{publication_id}"): {"title": "Piraté par A"},
    ("PUT", "/v1/channels/{channel}"): {
        "settings": {"url": "https://a.example/hook"},
        "credentials": {"secret": B_SECRET},
    },
    ("POST", "/v1/publications"): {"title": "A", "body": "Publication de A.", "channels": ["webhook"]},
    ("POST", "/v1/previews"): {"title": "A", "body": "Aperçu de A."},
    ("POST", "/v1/event-endpoints"): {"url": "https://a.example/events", "events": ["delivery.failed"]},
    ("POST", "/v1/inbound-sources"): {"name": "Site de A"},
    ("PUT", "/v1/alerts/weather"): {"enabled": False},
}
"""A valid body for each operation that takes one, so that A's request reaches the use case (a 422 on the body
would prove nothing about isolation)."""


def in_hours(hours: int) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


@pytest.fixture
def communes(gateway: Gateway) -> tuple[str, str, dict[str, str]]:
    """A (only a webhook channel of its own, added by the test when needed) and B with one of everything."""
    a, b = gateway.new_commune(), gateway.new_commune()
    hook = {"settings": {"url": B_HOOK}, "credentials": {"secret": B_SECRET}}
    assert gateway.call("PUT", "/v1/channels/webhook", b, hook).status == 200
    scheduled = gateway.call(
        "POST", "/v1/publications", b, {"title": "B", "body": "Programmée.", "publish_at": in_hours(5)}
    )
    assert scheduled.status == 201, scheduled.body
    published = gateway.call("POST", "/v1/publications", b, {"title": "B", "body": "Diffusée."})
    assert published.status == 201, published.body
    source = gateway.call("POST", "/v1/inbound-sources", b, {"name": "Site de B"})
    assert source.status == 201, source.body
    endpoint = gateway.call(
        "POST", "/v1/event-endpoints", b, {"url": "https://b-mairie.example/events", "events": ["delivery.failed"]}
    )
    assert endpoint.status == 201, endpoint.body
    weather = gateway.call("PUT", "/v1/alerts/weather", b, {"enabled": True, "channels": {"orange": ["webhook"]}})
    assert weather.status == 200, weather.body
    ids = {
        "publication_id": scheduled.json["id"],
        "published_id": published.json["id"],
        "source_id": source.json["id"],
        "source_secret": source.json["secret"],
        "endpoint_id": endpoint.json["id"],
        "endpoint_secret": endpoint.json["secret"],
        "channel": "webhook",
    }
    return a, b, ids


def snapshot(gateway: Gateway, b: str, ids: dict[str, str]) -> dict[str, Any]:
    """Everything of B's, as B reads it."""
    reads = {
        "scheduled": f"/v1/publications/{ids['publication_id']}",
        "published": f"/v1/publications/{ids['published_id']}",
        "publications": "/v1/publications",
        "channels": "/v1/channels",
        "webhook": "/v1/channels/webhook",
        "source": f"/v1/inbound-sources/{ids['source_id']}",
        "sources": "/v1/inbound-sources",
        "endpoints": "/v1/event-endpoints",
        "weather": "/v1/alerts/weather",
        "usage": "/v1/usage",
    }
    seen = {}
    for name, path in reads.items():
        answer = gateway.call("GET", path, b)
        assert answer.status == 200, (path, answer.body)
        seen[name] = answer.json
    return seen


def secret_markers(b: str, ids: dict[str, str]) -> list[str]:
    """What must never appear in any answer to A."""
    return [ids["publication_id"], ids["published_id"], ids["source_id"], ids["endpoint_id"], B_HOOK, B_SECRET]


def test_commune_a_can_never_reach_commune_b_through_any_operation(
    gateway: Gateway, communes: tuple[str, str, dict[str, str]]
) -> None:
    a, b, ids = communes
    before = snapshot(gateway, b, ids)
    document = gateway.call("GET", "/v1/openapi.json", None).json
    guarded = 0
    for template, item in document["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == [{}]:
                continue  # public operations: the next tests
            guarded += 1
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
            unknown = [name for name in names if name not in ids]
            assert not unknown, f"{method.upper()} {template}: say which of B's ids to try for {unknown}"
            path = template
            for name in names:
                path = path.replace("{" + name + "}", ids[name])
            body = BODIES.get((method.upper(), template))
            if "requestBody" in operation:
                assert body is not None, f"{method.upper()} {template}: add a valid body to BODIES"
            answer = gateway.call(method.upper(), path, a, body)
            where = f"{method.upper()} {path}"
            assert answer.status < 500, (where, answer.body)
            assert answer.status != 403, where
            for marker in secret_markers(b, ids):
                assert marker not in answer.body or marker in path, (where, marker)
            if set(names) - {"channel"}:  # a channel name is not B's: A's own settings are under it
                assert answer.status == 404, (where, answer.status, answer.body)
            # Each id of B's, tried in every id slot of this operation, is unknown to A as well.
            for name in names:
                if name == "channel":
                    continue
                for other in ("publication_id", "published_id", "source_id", "endpoint_id"):
                    crossed = template
                    for slot in names:
                        crossed = crossed.replace("{" + slot + "}", ids[other] if slot == name else ids[slot])
                    assert gateway.call(method.upper(), crossed, a, body).status == 404, (method, crossed)
    assert guarded >= 20
    assert snapshot(gateway, b, ids) == before


def test_b_usage_and_lists_never_show_in_a(gateway: Gateway, communes: tuple[str, str, dict[str, str]]) -> None:
    a, b, _ = communes
    usage_b = gateway.call("GET", "/v1/usage", b).json
    usage_a = gateway.call("GET", "/v1/usage", a).json
    assert usage_b["lines"], usage_b
    assert usage_a["lines"] == []
    csv = gateway.call("GET", "/v1/usage?format=csv", a).body
    assert b not in csv
    assert "Publication" not in csv
    assert gateway.call("GET", "/v1/publications", a).json["items"] == []
    assert gateway.call("GET", "/v1/inbound-sources", a).json["items"] == []
    assert gateway.call("GET", "/v1/event-endpoints", a).json["items"] == []
    assert gateway.call("GET", "/v1/publications?status=scheduled", a).json["items"] == []


def test_a_cannot_sign_a_webhook_into_b(gateway: Gateway, communes: tuple[str, str, dict[str, str]]) -> None:
    a, b, ids = communes
    own = gateway.call("POST", "/v1/inbound-sources", a, {"name": "Site de A", "signed_only": True}).json
    body = json.dumps({"title": "Faux", "body": "Message de A au nom de B."}).encode()
    attempts = [
        (f"/v1/inbound/{b}/{ids['source_id']}", own["secret"]),  # B's source, A's secret
        (f"/v1/inbound/{b}/{own['id']}", own["secret"]),  # A's source under B's code
        (f"/v1/inbound/{a}/{ids['source_id']}", ids["source_secret"]),  # B's source under A's code
    ]
    for path, secret in attempts:
        headers = {**webhook_headers(secret, "msg_cross", body), "content-type": "application/json"}
        answer = gateway.call("POST", path, None, raw=body.decode(), headers=headers)
        assert answer.status in (401, 404), (path, answer.status, answer.body)
    items = gateway.call("GET", "/v1/publications", b).json["items"]
    assert all("Faux" not in item["title"] for item in items)
    assert gateway.call("GET", "/v1/publications", a).json["items"] == []


def test_a_cursor_of_b_lists_nothing_of_b(gateway: Gateway, communes: tuple[str, str, dict[str, str]]) -> None:
    a, b, _ = communes
    page = gateway.call("GET", "/v1/publications?limit=1", b).json
    assert page["next_cursor"], page
    crossed = gateway.call("GET", f"/v1/publications?limit=1&cursor={page['next_cursor']}", a)
    assert crossed.status in (200, 422), crossed.body
    if crossed.status == 200:
        assert crossed.json["items"] == []


def test_every_guarded_operation_refuses_a_missing_wrong_or_revoked_key(
    gateway: Gateway, communes: tuple[str, str, dict[str, str]]
) -> None:
    a, _, ids = communes
    revoked = gateway.communes.create_key(a).key
    gateway.communes.revoke_key(a, revoked)
    document = gateway.call("GET", "/v1/openapi.json", None).json
    checked = 0
    for template, item in document["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == [{}]:
                continue
            path = template
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    path = path.replace("{" + parameter["name"] + "}", ids[parameter["name"]])
            body = BODIES.get((method.upper(), template))
            assert gateway.call(method.upper(), path, None, body).status == 401, (method, path)  # no header
            for key in ("crieur_not-a-key", revoked):
                answer = gateway.call(method.upper(), path, None, body, headers={"authorization": f"Bearer {key}"})
                assert answer.status == 401, (method, path, answer.body)
                assert answer.json["title"] == "Clé d'API manquante ou invalide"
            checked += 1
    assert checked >= 20
