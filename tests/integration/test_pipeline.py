"""The handlers in-process against moto in server mode (over real HTTP), resources from template.yaml.

API → DynamoDB + SNS → per-channel SQS → deliver, with respx standing in for the providers.
"""

from __future__ import annotations

import json
from typing import Any, get_args

import httpx
import pytest
import respx

from crieur import aws
from crieur.billing import billing_month
from crieur.models import ChannelName, utc_now
from crieur.security import api_key_id, hash_api_key
from tests.integration.conftest import Gateway, Stack

HOOK = "https://site.example/hooks/crieur"
INSTANCE = "https://mastodon.example"
PUBLICATION = {"title": "Coupure d'eau", "body": "Mardi de 9 h à 12 h, rue des Lilas."}


@pytest.fixture
def commune(gateway: Gateway) -> str:
    """A fresh commune with webhook and mastodon configured."""
    insee = gateway.new_commune()
    assert (
        gateway.call(
            "PUT",
            "/v1/channels/webhook",
            insee,
            {"settings": {"url": HOOK}, "credentials": {"secret": "whsec_" + "A" * 44}},
        ).status
        == 200
    )
    assert (
        gateway.call(
            "PUT",
            "/v1/channels/mastodon",
            insee,
            {"settings": {"instance_url": INSTANCE}, "credentials": {"access_token": "tok"}},
        ).status
        == 200
    )
    return insee


def publish(gateway: Gateway, insee: str, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    answer = gateway.call("POST", "/v1/publications", insee, {**PUBLICATION, **fields}, headers=headers)
    assert answer.status == 201, answer.body
    assert answer.headers["Location"] == f"/v1/publications/{answer.json['id']}"
    return answer.json


# --- authorizer -------------------------------------------------------------------------------------------


def test_authorizer_maps_key_to_commune_and_refuses_others(gateway: Gateway) -> None:
    insee = gateway.new_commune()
    key = gateway.keys[insee]
    assert gateway.authorize(f"Bearer {key}") == {"isAuthorized": True, "context": {"commune": insee}}
    nobody = {"isAuthorized": True, "context": {"commune": ""}}  # the api answers 401 in French
    assert gateway.authorize("Bearer crieur_not-a-key") == nobody
    assert gateway.authorize(None) == nobody
    assert gateway.authorize(key) == nobody  # no Bearer scheme
    gateway.communes.revoke_key(insee, api_key_id(hash_api_key(key)))
    assert gateway.authorize(f"Bearer {key}") == nobody


def test_unknown_or_revoked_keys_get_a_french_401(gateway: Gateway) -> None:
    insee = gateway.new_commune()
    assert gateway.call("GET", "/v1/channels", insee).status == 200
    gateway.communes.revoke_key(insee, gateway.keys[insee])  # by the key itself
    gateway.local.cache.clear()  # API Gateway keeps an authorizer answer up to ReauthorizeEvery (300 s)
    answer = gateway.call("GET", "/v1/channels", insee)
    assert answer.status == 401
    assert answer.json["title"] == "Clé d'API manquante ou invalide"
    # A request without any Authorization header never reaches the functions (identity source missing).
    assert gateway.call("GET", "/v1/channels", None).status == 401
    # A bad key is refused before the body is even looked at.
    assert gateway.call("POST", "/v1/publications", insee, {"nonsense": True}).status == 401


# --- channels ---------------------------------------------------------------------------------------------


def test_channel_credentials_are_sealed_write_only_and_bound_to_the_commune(gateway: Gateway, stack: Stack) -> None:
    insee = gateway.new_commune()
    secret = "whsec_" + "B" * 44
    answer = gateway.call(
        "PUT", "/v1/channels/webhook", insee, {"settings": {"url": HOOK}, "credentials": {"secret": secret}}
    )
    assert answer.status == 200
    assert answer.json["credentials_set"] is True
    assert secret not in answer.body
    listed = gateway.call("GET", "/v1/channels", insee)
    assert [item["channel"] for item in listed.json["items"]] == ["webhook"]
    assert secret not in listed.body

    item = aws.dynamodb().Table(stack.table).get_item(Key={"pk": f"C#{insee}", "sk": "CH#webhook"})["Item"]
    ciphertext = bytes(item["credentials"].value)
    assert secret.encode() not in ciphertext
    plain = aws.kms().decrypt(CiphertextBlob=ciphertext, EncryptionContext={"commune": insee, "channel": "webhook"})
    assert json.loads(plain["Plaintext"]) == {"secret": secret}
    with pytest.raises(aws.kms().exceptions.InvalidCiphertextException):
        aws.kms().decrypt(CiphertextBlob=ciphertext, EncryptionContext={"commune": "99999", "channel": "webhook"})

    # Settings change without credentials keeps the stored ones.
    assert gateway.call("PUT", "/v1/channels/webhook", insee, {"enabled": False, "settings": {"url": HOOK}}).json[
        "credentials_set"
    ]


def test_channel_settings_are_validated_per_channel(gateway: Gateway) -> None:
    insee = gateway.new_commune()
    answer = gateway.call(
        "PUT", "/v1/channels/webhook", insee, {"settings": {"url": "ftp://x"}, "credentials": {"secret": "nope"}}
    )
    assert answer.status == 422
    fields = {error["field"] for error in answer.json["errors"]}
    assert fields == {"settings.url", "credentials.secret"}
    assert gateway.call("PUT", "/v1/channels/myspace", insee, {"settings": {}}).status == 422
    no_sender = gateway.call("PUT", "/v1/channels/email", insee, {"settings": {}})
    assert no_sender.status == 422
    assert no_sender.json["errors"] == [{"field": "settings.from_address", "message": "Ce champ est obligatoire."}]
    assert set(gateway.call("GET", "/v1/channels", insee).json["available"]) == set(get_args(ChannelName))
    first_time = gateway.call("PUT", "/v1/channels/mastodon", insee, {"settings": {"instance_url": INSTANCE}})
    assert first_time.json["errors"] == [
        {"field": "credentials", "message": "Identifiants obligatoires à la première configuration du canal."}
    ]
    assert gateway.call("GET", "/v1/channels/mastodon", insee).status == 404
    assert gateway.call("DELETE", "/v1/channels/mastodon", insee).status == 404


# --- publish ----------------------------------------------------------------------------------------------


def test_publish_stores_and_fans_out_one_message_per_channel_queue(
    gateway: Gateway, stack: Stack, commune: str
) -> None:
    created = publish(gateway, commune)
    assert created["status"] == "publishing"
    assert set(created["deliveries"]) == {"webhook", "mastodon"}
    assert {d["status"] for d in created["deliveries"].values()} == {"pending"}
    for channel in ("webhook", "mastodon"):
        bodies = [json.loads(m["Body"]) for m in stack.drain(channel)]
        assert [body | {"publication": None} for body in bodies] == [
            {"action": "publish", "commune": commune, "publication_id": created["id"], "publication": None}
        ]
        carried = [(body["publication"]["id"], body["publication"]["body"]) for body in bodies]
        assert carried == [(created["id"], created["body"])]  # its deliveries need not read it

    only_webhook = publish(gateway, commune, channels=["webhook"])
    assert [json.loads(m["Body"])["publication_id"] for m in stack.drain("webhook")] == [only_webhook["id"]]
    assert stack.drain("mastodon") == []


def test_idempotency_key_replay_creates_nothing(gateway: Gateway, stack: Stack, commune: str) -> None:
    first = publish(gateway, commune, headers={"Idempotency-Key": "k-1"})
    again = publish(gateway, commune, headers={"Idempotency-Key": "k-1"})
    assert again["id"] == first["id"]
    assert len(stack.drain("webhook")) == 1
    listed = gateway.call("GET", "/v1/publications", commune).json["items"]
    assert [p["id"] for p in listed] == [first["id"]]
    other_body = gateway.call(
        "POST", "/v1/publications", commune, {**PUBLICATION, "title": "Autre"}, headers={"Idempotency-Key": "k-1"}
    )
    assert other_body.status == 422
    assert other_body.json["errors"][0]["field"] == "Idempotency-Key"


def test_publish_refuses_channels_the_commune_has_not_configured(gateway: Gateway) -> None:
    insee = gateway.new_commune()
    nothing = gateway.call("POST", "/v1/publications", insee, PUBLICATION)
    assert nothing.status == 422
    assert nothing.json["errors"][0]["field"] == "channels"
    named = gateway.call("POST", "/v1/publications", insee, {**PUBLICATION, "channels": ["mastodon"]})
    assert named.status == 422
    assert named.json["errors"] == [
        {"field": "channels[0]", "message": "Le canal « mastodon » n'est pas configuré pour cette commune."}
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**PUBLICATION, "colour": "red"}, "colour"),
        ({**PUBLICATION, "links": [{"url": "http://insecure.example"}]}, "links[0].url"),
        ({**PUBLICATION, "media": [{"url": "https://x.example/a.jpg"}]}, "media[0].alt"),
        ({**PUBLICATION, "channels": ["myspace"]}, "channels[0]"),
        ({"body": "sans titre"}, "title"),
    ],
)
def test_bad_input_is_a_french_problem_naming_the_field(
    gateway: Gateway, commune: str, body: dict[str, Any], field: str
) -> None:
    answer = gateway.call("POST", "/v1/publications", commune, body)
    assert answer.status == 422
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json["title"] == "Données invalides"
    assert field in [error["field"] for error in answer.json["errors"]]


def test_malformed_and_oversized_json_are_refused(gateway: Gateway, commune: str) -> None:
    malformed = gateway.call("POST", "/v1/publications", commune, raw="{not json")
    assert malformed.status == 422
    assert malformed.json["errors"][0]["field"] == "body"
    assert malformed.json["errors"][0]["message"].startswith("JSON invalide")
    huge = gateway.call("POST", "/v1/publications", commune, raw=json.dumps({**PUBLICATION, "body": "x" * 300_000}))
    assert huge.status == 413
    assert huge.json["errors"] == [{"field": "body", "message": "Au plus 256 Kio."}]


def test_a_body_that_is_not_json_is_a_french_415(gateway: Gateway, commune: str) -> None:
    answer = gateway.call(
        "POST",
        "/v1/publications",
        commune,
        raw="title=x",
        headers={"content-type": "text/csv"},
    )
    assert answer.status == 415
    assert answer.json["errors"][0]["field"] == "Content-Type"


def test_another_communes_publication_is_not_found(gateway: Gateway, commune: str) -> None:
    created = publish(gateway, commune)
    stranger = gateway.new_commune()
    answer = gateway.call("GET", f"/v1/publications/{created['id']}", stranger)
    assert answer.status == 404
    assert answer.json["status"] == 404
    assert gateway.call("GET", f"/v1/publications/{created['id']}", commune).status == 200


def test_list_is_newest_first_with_a_cursor(gateway: Gateway, commune: str) -> None:
    ids = [publish(gateway, commune, title=f"Avis {n}")["id"] for n in range(3)]
    first = gateway.call("GET", "/v1/publications?limit=2", commune).json
    assert [p["id"] for p in first["items"]] == ids[::-1][:2]
    rest = gateway.call("GET", f"/v1/publications?limit=2&cursor={first['next_cursor']}", commune).json
    assert [p["id"] for p in rest["items"]] == ids[:1]
    assert rest["next_cursor"] is None
    everything = gateway.call("GET", "/v1/publications?limit=3", commune).json
    assert len(everything["items"]) == 3
    assert everything["next_cursor"] is None  # a full page says whether more follow
    assert gateway.call("GET", "/v1/publications?cursor=garbage", commune).json["errors"][0]["field"] == "cursor"
    assert gateway.call("GET", "/v1/publications?limit=0", commune).json["errors"][0]["field"] == "limit"
    assert gateway.call("GET", "/v1/publications?status=publishing", commune).json["items"][0]["id"] == ids[-1]


def test_health_and_openapi(gateway: Gateway) -> None:
    assert gateway.call("GET", "/v1/health", None).json == {"status": "ok"}
    spec = gateway.call("GET", "/v1/openapi.json", None).json
    assert spec["openapi"].startswith("3.1")
    assert {"/v1/publications", "/v1/publications/{publication_id}", "/v1/channels/{channel}"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    docs = gateway.call("GET", "/v1/docs", None)
    assert docs.status == 200
    assert "swagger" in docs.body.lower()


# --- deliver ----------------------------------------------------------------------------------------------


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch) -> respx.MockRouter:
    # respx stands in for the providers; their names do not resolve here, so skip the address guard.
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{INSTANCE}/api/v2/instance").respond(json={"configuration": {"statuses": {"max_characters": 500}}})
        # The lookup after an attempt of unknown outcome (a worker killed): the account has no status yet.
        router.get(f"{INSTANCE}/api/v1/accounts/verify_credentials").respond(json={"id": "1"})
        # Any account id: the adapter caches each token's account id for its container (here, the process).
        router.get(url__regex=rf"{INSTANCE}/api/v1/accounts/[^/]+/statuses", name="lookup").respond(json=[])
        yield router


def test_delivery_end_to_end_in_process(
    gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter
) -> None:
    hook = providers.post(HOOK).respond(204)
    toot = providers.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "77", "url": f"{INSTANCE}/@m/77"})
    created = publish(gateway, commune)
    assert stack.deliver("webhook") == []
    assert stack.deliver("mastodon") == []
    shown = gateway.call("GET", f"/v1/publications/{created['id']}", commune).json
    assert shown["status"] == "published"
    assert shown["deliveries"]["mastodon"] | {"updated_at": None} == {
        "status": "sent",
        "attempts": 1,
        "external_id": "77",
        "url": f"{INSTANCE}/@m/77",
        "error": None,
        "updated_at": None,
        "recipients": None,  # a count for the channels that reach many recipients only
    }
    assert shown["deliveries"]["webhook"]["status"] == "sent"
    assert hook.call_count == 1
    assert toot.call_count == 1


def test_transient_failure_is_retried_then_sent(
    gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter
) -> None:
    toot = providers.post(f"{INSTANCE}/api/v1/statuses")
    toot.side_effect = [httpx.Response(503, json={"error": "busy"}), httpx.Response(200, json={"id": "9", "url": None})]
    created = publish(gateway, commune, channels=["mastodon"])
    failures = stack.deliver("mastodon")
    assert len(failures) == 1
    retrying = gateway.call("GET", f"/v1/publications/{created['id']}", commune).json
    assert retrying["deliveries"]["mastodon"]["status"] == "retrying"
    assert retrying["deliveries"]["mastodon"]["error"]["code"] == "provider_unavailable"
    assert retrying["status"] == "publishing"
    assert stack.deliver("mastodon", make_visible=True) == []
    done = gateway.call("GET", f"/v1/publications/{created['id']}", commune).json
    assert done["deliveries"]["mastodon"]["status"] == "sent"
    assert done["deliveries"]["mastodon"]["attempts"] == 2
    assert done["status"] == "published"


def test_transient_failure_on_the_last_receive_is_failed(
    gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter
) -> None:
    providers.post(f"{INSTANCE}/api/v1/statuses").respond(500, json={"error": "down"})
    providers.post(HOOK).respond(204)
    created = publish(gateway, commune)
    stack.deliver("webhook")
    for _ in range(4):
        assert len(stack.deliver("mastodon", make_visible=True)) == 1
    assert stack.deliver("mastodon", make_visible=True) == []  # 5th receive: recorded failed, message deleted
    shown = gateway.call("GET", f"/v1/publications/{created['id']}", commune).json
    mastodon = shown["deliveries"]["mastodon"]
    assert mastodon["status"] == "failed"
    assert mastodon["error"]["message"].startswith("Échec après 5 tentatives")
    assert mastodon["error"]["provider_message"] == "down"
    assert shown["status"] == "partially_published"


def test_provider_4xx_fails_at_once(gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter) -> None:
    providers.post(f"{INSTANCE}/api/v1/statuses").respond(422, json={"error": "Validation failed: Text too long"})
    created = publish(gateway, commune, channels=["mastodon"])
    assert stack.deliver("mastodon") == []
    shown = gateway.call("GET", f"/v1/publications/{created['id']}", commune).json
    assert shown["deliveries"]["mastodon"]["status"] == "failed"
    assert shown["deliveries"]["mastodon"]["attempts"] == 1
    assert "Text too long" in shown["deliveries"]["mastodon"]["error"]["message"]
    assert shown["status"] == "failed"


def test_retry_sends_again_where_it_failed_only(
    gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter
) -> None:
    providers.post(HOOK).respond(200)
    toots = providers.post(f"{INSTANCE}/api/v1/statuses")
    toots.side_effect = [
        httpx.Response(401, json={"error": "The access token is invalid"}),
        httpx.Response(200, json={"id": "77", "url": f"{INSTANCE}/@mairie/77"}),
    ]
    created = publish(gateway, commune, channels=["webhook", "mastodon"])
    assert stack.deliver("webhook") == []
    assert stack.deliver("mastodon") == []
    path = f"/v1/publications/{created['id']}"
    assert gateway.call("GET", path, commune).json["status"] == "partially_published"

    answer = gateway.call("POST", f"{path}/retry", commune)
    assert answer.status == 202, answer.body
    assert answer.json["status"] == "publishing"
    assert answer.json["deliveries"]["mastodon"]["status"] == "pending"
    assert answer.json["deliveries"]["mastodon"].get("error") is None
    assert answer.json["deliveries"]["webhook"]["status"] == "sent"
    assert stack.drain("webhook") == []  # only the failed channel goes out again
    assert stack.deliver("mastodon") == []

    shown = gateway.call("GET", path, commune).json
    assert shown["deliveries"]["mastodon"]["status"] == "sent"
    assert shown["deliveries"]["mastodon"]["external_id"] == "77"
    assert shown["status"] == "published"
    assert toots.call_count == 2
    again = gateway.call("POST", f"{path}/retry", commune)
    assert again.status == 409
    assert again.headers["Content-Type"] == "application/problem+json"


def test_retry_is_refused_while_publishing_and_for_another_commune(gateway: Gateway, commune: str) -> None:
    created = publish(gateway, commune, channels=["mastodon"])
    path = f"/v1/publications/{created['id']}/retry"
    busy = gateway.call("POST", path, commune)
    assert busy.status == 409
    assert "en cours" in busy.json["detail"]
    assert gateway.call("POST", path, gateway.new_commune()).status == 404


def test_redelivered_message_never_sends_twice(
    gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter
) -> None:
    toot = providers.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "5", "url": None})
    created = publish(gateway, commune, channels=["mastodon"])
    message = stack.receive("mastodon")
    stack.run_deliver("mastodon", [message])
    stack.run_deliver("mastodon", [message])  # the same message again (SQS at-least-once)
    assert toot.call_count == 1
    assert gateway.call("GET", f"/v1/publications/{created['id']}", commune).json["status"] == "published"


def test_crash_between_provider_call_and_status_write_does_not_post_twice(
    gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies after Mastodon accepted the status; the redelivery looks for the status first (the
    account's statuses do not list it yet here), posts with the same Idempotency-Key, and the post is billed
    once, with its outcome (one transaction: nothing was billed before the crash)."""
    toot = providers.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "6", "url": None})
    created = publish(gateway, commune, channels=["mastodon"])
    message = stack.receive("mastodon")
    worker = stack.worker("mastodon")
    real_finish = worker.store.finish_delivery

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise SystemExit("container killed")

    def delivery_lines() -> list[dict[str, Any]]:
        lines = worker.store.usage_lines(commune, billing_month(utc_now()))
        return [line for line in lines if line["publication_id"] == created["id"] and line["channel"] == "mastodon"]

    monkeypatch.setattr(worker.store, "finish_delivery", crash)
    with pytest.raises(SystemExit):
        worker.deliver(stack.fanout_message(message), receive_count=1)
    monkeypatch.setattr(worker.store, "finish_delivery", real_finish)
    stuck = gateway.call("GET", f"/v1/publications/{created['id']}", commune).json
    assert stuck["deliveries"]["mastodon"]["status"] == "sending"
    assert stuck["billed_ht_eur"] == pytest.approx(0.02)  # the publication's fee only
    assert delivery_lines() == []

    stack.expire_lease(commune, created["id"], "mastodon")
    assert providers["lookup"].call_count == 0
    assert worker.deliver(stack.fanout_message(message), receive_count=2) is None
    assert providers["lookup"].call_count == 1  # the crashed attempt's outcome was unknown
    keys = {call.request.headers["Idempotency-Key"] for call in toot.calls}
    assert keys == {f"{created['id']}-mastodon"}
    shown = gateway.call("GET", f"/v1/publications/{created['id']}", commune).json
    assert shown["deliveries"]["mastodon"]["status"] == "sent"
    assert shown["status"] == "published"
    assert len(delivery_lines()) == 1
    assert worker.deliver(stack.fanout_message(message), receive_count=3) is None  # a replay after the write
    assert len(delivery_lines()) == 1
