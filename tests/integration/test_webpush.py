"""The webpush channel: RFC 8291 encryption, the public subscription routes, and fan-out through the
sandbox's push service imitation (which checks VAPID and decrypts like a browser)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import infra.local.imitations
from crieur import aws
from crieur.billing import billing_month
from crieur.channels import ADAPTERS, webpush
from crieur.channels.base import RecipientOutcome, RenderedPost, RetractUnsupported
from crieur.channels.webpush import WebpushChannel, WebpushCredentials, WebpushSettings
from crieur.models import FanoutMessage, Publication, utc_now
from crieur.outbound import guarded_client
from crieur.store import Store
from infra.local.imitations.webpush import WebpushImitation
from infra.local.sandbox import Sandbox
from tests.integration.conftest import Gateway, Stack

# RFC 8291 Appendix A.
PLAINTEXT = b"When I grow up, I want to be a watermelon"
AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
AS_PUBLIC = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
UA_PUBLIC = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
SALT = "DGv6ra1nlYgDCS1FRnbzlw"
BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
    "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"
    "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


def test_rfc8291_appendix_a() -> None:
    as_private = webpush.load_vapid_key(AS_PRIVATE)
    assert webpush.b64url(webpush.public_key_bytes(as_private.public_key())) == AS_PUBLIC
    body = webpush.encrypt(
        PLAINTEXT,
        webpush.b64url_decode(UA_PUBLIC),
        webpush.b64url_decode(AUTH),
        as_private=as_private,
        salt=webpush.b64url_decode(SALT),
    )
    assert webpush.b64url(body) == BODY
    ua_private = ec.derive_private_key(int.from_bytes(webpush.b64url_decode(UA_PRIVATE), "big"), ec.SECP256R1())
    assert webpush.decrypt(webpush.b64url_decode(BODY), ua_private, webpush.b64url_decode(AUTH)) == PLAINTEXT


def test_vapid_key_formats_and_settings() -> None:
    assert webpush.vapid_public_key(AS_PRIVATE) == AS_PUBLIC
    with pytest.raises(ValueError, match="VAPID"):
        WebpushCredentials(vapid_private_key="pas une clé")
    with pytest.raises(ValueError, match="mailto"):
        WebpushSettings(vapid_subject="mairie@example.fr")
    WebpushSettings(vapid_subject="https://mairie.example.fr/contact")


# -- the channel against the imitation -----------------------------------------------------------------------


def publication(
    commune: str, category: str = "news", urgency: str = "normal", pid: str = "pub_01JWEBPUSH"
) -> Publication:
    return Publication.model_validate(
        {
            "title": "Coupure d'eau",
            "body": "Rue de l'Église, mardi de 9 h à 12 h. " * 12,
            "id": pid,
            "commune": commune,
            "status": "publishing",
            "category": category,
            "urgency": urgency,
            "links": [{"url": "https://mairie.example.fr/eau"}],
            "created_at": datetime(2026, 11, 27, tzinfo=UTC),
        }
    )


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    monkeypatch.setattr(infra.local.imitations, "IMITATIONS", [WebpushImitation])
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    box = Sandbox(port=0)
    box.start()
    yield box
    box.stop()


def imitated(sandbox: Sandbox) -> WebpushImitation:
    found = sandbox.imitations["/webpush"]
    assert isinstance(found, WebpushImitation)
    return found


@pytest.fixture
def table(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("CRIEUR_TABLE_NAME", stack.table)
    return Store(stack.table)


def live(sandbox: Sandbox) -> WebpushChannel:
    body = imitated(sandbox).demo_channel()
    return WebpushChannel(
        WebpushSettings.model_validate(body["settings"]),
        WebpushCredentials.model_validate(body["credentials"]),
        httpx.Client(timeout=5),
    )


def subscribe(
    gateway: Gateway, insee: str, subscription: dict[str, object], categories: list[str] | None = None
) -> int:
    answer = gateway.call(
        "POST", f"/public/{insee}/webpush/subscriptions", None, {**subscription, "categories": categories or []}
    )
    return answer.status


def test_subscribe_dedupe_unsubscribe(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    browser = imitated(sandbox).new_subscription()
    assert subscribe(gateway, insee, browser, ["works"]) == 201
    assert subscribe(gateway, insee, browser, ["alert", "works"]) == 200
    [stored] = table.webpush_subscriptions(insee)
    assert stored.id == webpush.endpoint_hash(str(browser["endpoint"]))
    assert stored.categories == ("alert", "works")
    gone = gateway.call("DELETE", f"/public/{insee}/webpush/subscriptions", None, {"endpoint": browser["endpoint"]})
    assert gone.status == 204
    assert table.webpush_subscriptions(insee) == []


def test_bad_subscriptions_are_refused(gateway: Gateway, monkeypatch: pytest.MonkeyPatch, table: Store) -> None:
    insee = gateway.new_commune()
    keys = {"p256dh": UA_PUBLIC, "auth": AUTH}
    monkeypatch.delenv("CRIEUR_ALLOW_PRIVATE_TARGETS", raising=False)
    private = gateway.call(
        "POST", f"/public/{insee}/webpush/subscriptions", None, {"endpoint": "https://127.0.0.1/push/1", "keys": keys}
    )
    assert private.status == 422
    assert "privée" in private.body
    plain = gateway.call(
        "POST", f"/public/{insee}/webpush/subscriptions", None, {"endpoint": "http://push.example/1", "keys": keys}
    )
    assert plain.status == 422
    broken = gateway.call(
        "POST",
        f"/public/{insee}/webpush/subscriptions",
        None,
        {"endpoint": "https://push.example/1", "keys": {"p256dh": "abc", "auth": AUTH}},
    )
    assert broken.status == 422
    assert table.webpush_subscriptions(insee) == []


def test_public_key_route(gateway: Gateway, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ADAPTERS, "webpush", WebpushChannel)  # until the lead registers it
    insee = gateway.new_commune()
    assert gateway.call("GET", f"/public/{insee}/webpush/key", None).status == 404
    stored = gateway.call("PUT", "/v1/channels/webpush", insee, imitated(sandbox).demo_channel())
    assert stored.status == 200, stored.body
    answer = gateway.call("GET", f"/public/{insee}/webpush/key", None)
    assert answer.json == {"publicKey": imitated(sandbox).vapid_public_key()}


def send_all(adapter: WebpushChannel, rendered: RenderedPost) -> dict[str, RecipientOutcome]:
    """The audience in one chunk, by recipient id."""
    return {outcome.recipient: outcome for outcome in adapter.send_chunk(rendered, adapter.audience(rendered))}


def test_fan_out_decrypts_everywhere(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    for _ in range(3):
        assert subscribe(gateway, insee, imitated(sandbox).new_subscription()) == 201
    adapter = live(sandbox)
    rendered = adapter.render(publication(insee, urgency="critical"))
    assert len(adapter.audience(rendered)) == 3
    assert adapter.audience(rendered) == sorted(item.id for item in table.webpush_subscriptions(insee))
    outcomes = send_all(adapter, rendered)
    assert {outcome.result for outcome in outcomes.values()} == {"delivered"}
    shown = imitated(sandbox).received()
    assert len(shown) == 3
    assert all(item["message"] == shown[0]["message"] for item in shown)
    message = shown[0]["message"]
    assert message["tag"] == "pub_01JWEBPUSH"
    assert message["url"] == "https://mairie.example.fr/eau"
    assert len(message["body"]) <= webpush.BODY_LIMIT
    assert message["body"].endswith("…")
    assert {(item["urgency"], item["ttl"], item["topic"]) for item in shown} == {("high", "86400", "pub_01JWEBPUSH")}
    assert "Coupure d&#x27;eau" in imitated(sandbox).page_section()
    with pytest.raises(RetractUnsupported, match="rappelée"):
        adapter.delete("3 destinataires")


def test_gone_subscription_is_deleted(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    browsers = [imitated(sandbox).new_subscription() for _ in range(2)]
    for browser in browsers:
        subscribe(gateway, insee, browser)
    imitated(sandbox).unsubscribe(str(browsers[0]["endpoint"]))
    adapter = live(sandbox)
    outcomes = send_all(adapter, adapter.render(publication(insee)))
    gone = webpush.endpoint_hash(str(browsers[0]["endpoint"]))
    assert outcomes[gone].result == "removed"
    assert outcomes[gone].detail == "erreur 410"
    assert [item.endpoint for item in table.webpush_subscriptions(insee)] == [browsers[1]["endpoint"]]


def test_a_subscription_dropped_since_the_plan_is_removed(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    browsers = [imitated(sandbox).new_subscription() for _ in range(2)]
    for browser in browsers:
        subscribe(gateway, insee, browser)
    adapter = live(sandbox)
    rendered = adapter.render(publication(insee))
    planned = adapter.audience(rendered)
    gateway.call("DELETE", f"/public/{insee}/webpush/subscriptions", None, {"endpoint": browsers[0]["endpoint"]})
    outcomes = {outcome.recipient: outcome.result for outcome in adapter.send_chunk(rendered, planned)}
    assert outcomes == {
        webpush.endpoint_hash(str(browsers[0]["endpoint"])): "removed",
        webpush.endpoint_hash(str(browsers[1]["endpoint"])): "delivered",
    }
    assert len(imitated(sandbox).received()) == 1


def test_a_503_is_retried_for_that_subscription_only(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    browsers = [imitated(sandbox).new_subscription() for _ in range(3)]
    for browser in browsers:
        subscribe(gateway, insee, browser)
    imitated(sandbox).fail(str(browsers[1]["endpoint"]), 503)
    adapter = live(sandbox)
    outcomes = send_all(adapter, adapter.render(publication(insee)))
    failing = webpush.endpoint_hash(str(browsers[1]["endpoint"]))
    assert {recipient: outcome.result for recipient, outcome in outcomes.items()} == {
        **{webpush.endpoint_hash(str(browser["endpoint"])): "delivered" for browser in browsers},
        failing: "retry",
    }
    assert outcomes[failing].detail == "erreur 503"
    assert len(imitated(sandbox).received()) == 2
    assert len(table.webpush_subscriptions(insee)) == 3


def test_a_429_honours_retry_after(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    subscribe(gateway, insee, imitated(sandbox).new_subscription())
    sandbox.inject_fault("webpush", 429, retry_after=42)
    adapter = live(sandbox)
    [outcome] = send_all(adapter, adapter.render(publication(insee))).values()
    assert (outcome.result, outcome.retry_after) == ("retry", 42.0)


def test_413_is_final_for_that_subscription(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    browsers = [imitated(sandbox).new_subscription() for _ in range(2)]
    for browser in browsers:
        subscribe(gateway, insee, browser)
    imitated(sandbox).fail(str(browsers[0]["endpoint"]), 413)
    adapter = live(sandbox)
    outcomes = send_all(adapter, adapter.render(publication(insee)))
    assert sorted(outcome.result for outcome in outcomes.values()) == ["delivered", "refused"]
    assert len(table.webpush_subscriptions(insee)) == 2


def test_categories_filter(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    every, works, alerts = (imitated(sandbox).new_subscription() for _ in range(3))
    subscribe(gateway, insee, every)
    subscribe(gateway, insee, works, ["works"])
    subscribe(gateway, insee, alerts, ["alert"])
    adapter = live(sandbox)
    send_all(adapter, adapter.render(publication(insee, category="works")))
    reached = {item["subscription"] for item in imitated(sandbox).received()}
    assert reached == {str(browser["endpoint"]).rsplit("/", 1)[-1] for browser in (every, works)}


def test_one_vapid_token_per_push_service_serves_a_whole_chunk(
    gateway: Gateway, sandbox: Sandbox, table: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed: list[str] = []

    def vapid_authorization(*args: Any) -> str:
        signed.append(webpush.origin(args[1]))
        return real(*args)

    real = webpush.vapid_authorization
    monkeypatch.setattr(webpush, "vapid_authorization", vapid_authorization)
    insee = gateway.new_commune()
    for _ in range(3):
        subscribe(gateway, insee, imitated(sandbox).new_subscription())
    other_service = {**imitated(sandbox).new_subscription(), "endpoint": "https://push.example.net/push/abc"}
    table.put_webpush_subscription(
        insee,
        webpush.endpoint_hash(other_service["endpoint"]),
        endpoint=other_service["endpoint"],
        p256dh=other_service["keys"]["p256dh"],
        auth=other_service["keys"]["auth"],
        categories=[],
    )
    seen: list[tuple[str, str]] = []

    def push_service(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers["authorization"]))
        return httpx.Response(201)

    body = imitated(sandbox).demo_channel()
    adapter = WebpushChannel(
        WebpushSettings.model_validate(body["settings"]),
        WebpushCredentials.model_validate(body["credentials"]),
        httpx.Client(transport=httpx.MockTransport(push_service)),
    )
    outcomes = send_all(adapter, adapter.render(publication(insee)))
    assert [outcome.result for outcome in outcomes.values()] == ["delivered"] * 4
    by_host: dict[str, set[str]] = {}
    for host, authorization in seen:
        by_host.setdefault(host, set()).add(authorization)
    assert sorted(len(tokens) for tokens in by_host.values()) == [1, 1]
    assert len(set().union(*by_host.values())) == 2  # each service has its own audience (aud)
    assert len(signed) == len(set(signed)) == 2  # one signature per push service and chunk


def test_the_imitation_checks_vapid(sandbox: Sandbox) -> None:
    browser = imitated(sandbox).new_subscription()
    endpoint = str(browser["endpoint"])
    client = httpx.Client(timeout=5)
    assert client.post(endpoint, content=b"x", headers={"TTL": "60"}).status_code == 401
    other = ec.generate_private_key(ec.SECP256R1())
    authorization = webpush.vapid_authorization(other, endpoint, "mailto:a@b.fr", 0)
    assert client.post(endpoint, content=b"x", headers={"Authorization": authorization}).status_code == 403
    key = webpush.load_vapid_key(imitated(sandbox).vapid_private_key())
    expired = webpush.vapid_authorization(key, endpoint, "mailto:a@b.fr", 0)
    answer = client.post(endpoint, content=b"x", headers={"Authorization": expired, "TTL": "60"})
    assert answer.status_code == 401
    assert "exp" in json.loads(answer.content)["error"]


# -- the chunked delivery through the queue and the deliver function ------------------------------------------


def webpush_commune(gateway: Gateway, sandbox: Sandbox, table: Store, subscribers: int) -> tuple[str, list[str]]:
    """A commune with Web Push set up and `subscribers` browsers (written straight to the table, for speed);
    their endpoints, in the audience's order."""
    insee = gateway.new_commune()
    assert gateway.call("PUT", "/v1/channels/webpush", insee, imitated(sandbox).demo_channel()).status == 200
    endpoints = []
    for _ in range(subscribers):
        browser = imitated(sandbox).new_subscription()
        endpoint = str(browser["endpoint"])
        table.put_webpush_subscription(
            insee,
            webpush.endpoint_hash(endpoint),
            endpoint=endpoint,
            p256dh=browser["keys"]["p256dh"],
            auth=browser["keys"]["auth"],
            categories=[],
        )
        endpoints.append(endpoint)
    return insee, sorted(endpoints, key=webpush.endpoint_hash)


def publish(gateway: Gateway, insee: str) -> str:
    created = gateway.call(
        "POST",
        "/v1/publications",
        insee,
        {"title": "Coupure d'eau", "body": "Mardi, de 9 h à 12 h.", "channels": ["webpush"]},
    )
    assert created.status == 201, created.body
    return str(created.json["id"])


def queued(stack: Stack, publication_id: str) -> list[dict[str, Any]]:
    """The publication's messages on the webpush queue (left there, invisible, for run_deliver); an earlier
    test's message coming back from its backoff is deleted."""
    found: list[dict[str, Any]] = []
    while batch := stack._receive("webpush", wait=0.3):
        for message in batch:
            if Stack.fanout_message(message).publication_id == publication_id:
                found.append(message)
            else:
                aws.sqs().delete_message(
                    QueueUrl=stack.mapping("webpush").queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
    return found


def delivery_of(gateway: Gateway, insee: str, publication_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    shown = gateway.call("GET", f"/v1/publications/{publication_id}", insee).json
    return shown, shown["deliveries"]["webpush"]


def reached(sandbox: Sandbox) -> list[str]:
    return [item["subscription"] for item in imitated(sandbox).received()]


def billed(table: Store, insee: str) -> int:
    lines = table.usage_lines(insee, billing_month(utc_now()))
    return sum(int(line["quantity"]) for line in lines if line["unit"] == "webpush_message")


def test_1200_subscribers_are_five_chunk_messages_all_delivered(
    gateway: Gateway, sandbox: Sandbox, stack: Stack, table: Store
) -> None:
    insee, endpoints = webpush_commune(gateway, sandbox, table, 1200)
    publication_id = publish(gateway, insee)
    assert stack.deliver("webpush") == []  # the publish message: planned and queued, nothing sent yet
    assert reached(sandbox) == []
    _, planning = delivery_of(gateway, insee, publication_id)
    assert planning["status"] == "sending"
    assert planning["recipients"] == {"total": 1200, "sent": 0, "failed": 0}

    chunks = queued(stack, publication_id)
    assert sorted(Stack.fanout_message(message).chunk or 0 for message in chunks) == [0, 1, 2, 3, 4]
    assert stack.run_deliver("webpush", chunks) == []

    assert sorted(reached(sandbox)) == sorted(endpoint.rsplit("/", 1)[-1] for endpoint in endpoints)
    assert [len(table.recipient_results(insee, publication_id, "webpush", n)) for n in range(5)] == [250] * 4 + [200]
    shown, delivery = delivery_of(gateway, insee, publication_id)
    assert delivery["status"] == "sent"
    assert delivery["external_id"] == "1\u202f200 destinataires"
    assert delivery["recipients"] == {"total": 1200, "sent": 1200, "failed": 0}
    assert shown["status"] == "published"
    assert billed(table, insee) == 1200
    assert shown["billed_ht_eur"] == pytest.approx(0.02 + 1200 * 0.0005)  # the publication, then each message


def test_a_chunk_with_500s_retries_only_those_recipients(
    gateway: Gateway, sandbox: Sandbox, stack: Stack, table: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WebpushChannel, "chunk_size", 2)
    insee, endpoints = webpush_commune(gateway, sandbox, table, 5)
    for endpoint in endpoints[:2]:  # both in the first chunk (the audience is ordered by id)
        imitated(sandbox).fail(endpoint, 500)
    publication_id = publish(gateway, insee)
    stack.deliver("webpush")
    chunks = queued(stack, publication_id)
    assert len(chunks) == 3
    retried = stack.run_deliver("webpush", chunks)
    assert retried == [next(m["MessageId"] for m in chunks if Stack.fanout_message(m).chunk == 0)]
    assert len(reached(sandbox)) == 3
    _, delivery = delivery_of(gateway, insee, publication_id)
    assert (delivery["status"], delivery["recipients"]) == ("sending", {"total": 5, "sent": 3, "failed": 0})

    sandbox.clear()
    assert stack.deliver("webpush", make_visible=True) == []
    assert sorted(reached(sandbox)) == sorted(endpoint.rsplit("/", 1)[-1] for endpoint in endpoints[:2])
    _, delivery = delivery_of(gateway, insee, publication_id)
    assert (delivery["status"], delivery["recipients"]) == ("sent", {"total": 5, "sent": 5, "failed": 0})
    assert billed(table, insee) == 5


def test_on_the_last_receive_the_recipients_left_count_failed(
    gateway: Gateway, sandbox: Sandbox, stack: Stack, table: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WebpushChannel, "chunk_size", 2)
    insee, endpoints = webpush_commune(gateway, sandbox, table, 3)
    imitated(sandbox).fail(endpoints[0], 503, count=10)
    publication_id = publish(gateway, insee)
    stack.deliver("webpush")
    assert len(stack.run_deliver("webpush", queued(stack, publication_id))) == 1
    worker = stack.worker("webpush")
    assert worker.handle(FanoutMessage(commune=insee, publication_id=publication_id, chunk=0), 5) is None
    for receipt in stack.receipts.pop("webpush"):  # its message, settled by the call above
        aws.sqs().delete_message(QueueUrl=stack.mapping("webpush").queue_url, ReceiptHandle=receipt)
    shown, delivery = delivery_of(gateway, insee, publication_id)
    assert delivery["status"] == "sent"
    assert delivery["recipients"] == {"total": 3, "sent": 2, "failed": 1}
    assert shown["status"] == "published"
    assert billed(table, insee) == 2


def test_nobody_reached_is_a_failed_delivery_with_the_reason(
    gateway: Gateway, sandbox: Sandbox, stack: Stack, table: Store
) -> None:
    insee, endpoints = webpush_commune(gateway, sandbox, table, 1)
    imitated(sandbox).fail(endpoints[0], 400)
    publication_id = publish(gateway, insee)
    stack.deliver("webpush")
    assert stack.run_deliver("webpush", queued(stack, publication_id)) == []
    shown, delivery = delivery_of(gateway, insee, publication_id)
    assert delivery["status"] == "failed"
    assert delivery["recipients"] == {"total": 1, "sent": 0, "failed": 1}
    assert "Aucun destinataire n'a reçu le message" in delivery["error"]["message"]
    assert "erreur 400" in delivery["error"]["message"]
    assert shown["status"] == "failed"
    assert billed(table, insee) == 0


def test_a_retry_plans_the_audience_again_and_counts_afresh(
    gateway: Gateway, sandbox: Sandbox, stack: Stack, table: Store
) -> None:
    insee, endpoints = webpush_commune(gateway, sandbox, table, 2)
    imitated(sandbox).fail(endpoints[0], 400)
    imitated(sandbox).fail(endpoints[1], 400)
    publication_id = publish(gateway, insee)
    stack.deliver("webpush")
    assert stack.run_deliver("webpush", queued(stack, publication_id)) == []
    assert delivery_of(gateway, insee, publication_id)[1]["status"] == "failed"

    retried = gateway.call("POST", f"/v1/publications/{publication_id}/retry", insee)
    assert retried.status == 202, retried.body
    assert retried.json["deliveries"]["webpush"]["recipients"] is None  # the old plan is forgotten
    assert stack.deliver("webpush") == []
    assert stack.run_deliver("webpush", queued(stack, publication_id)) == []
    shown, delivery = delivery_of(gateway, insee, publication_id)
    assert (delivery["status"], delivery["recipients"]) == ("sent", {"total": 2, "sent": 2, "failed": 0})
    assert shown["status"] == "published"
    assert billed(table, insee) == 2


def test_a_channel_removed_during_the_fan_out_fails_the_rest_with_the_reason(
    gateway: Gateway, sandbox: Sandbox, stack: Stack, table: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WebpushChannel, "chunk_size", 2)
    insee, _ = webpush_commune(gateway, sandbox, table, 3)
    publication_id = publish(gateway, insee)
    stack.deliver("webpush")
    chunks = sorted(queued(stack, publication_id), key=lambda message: Stack.fanout_message(message).chunk or 0)
    assert stack.run_deliver("webpush", chunks[:1]) == []
    assert gateway.call("DELETE", "/v1/channels/webpush", insee).status == 204
    assert stack.run_deliver("webpush", chunks[1:]) == []
    assert len(reached(sandbox)) == 2
    shown, delivery = delivery_of(gateway, insee, publication_id)
    assert (delivery["status"], delivery["recipients"]) == ("sent", {"total": 3, "sent": 2, "failed": 1})
    assert shown["status"] == "published"


def test_a_duplicate_chunk_message_sends_and_counts_nothing_twice(
    gateway: Gateway, sandbox: Sandbox, stack: Stack, table: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WebpushChannel, "chunk_size", 2)
    insee, _ = webpush_commune(gateway, sandbox, table, 3)
    publication_id = publish(gateway, insee)
    stack.deliver("webpush")
    chunks = queued(stack, publication_id)
    first = Stack.fanout_message(chunks[0])
    # While a worker holds a chunk, its duplicate waits; once completed, a duplicate does nothing.
    table.claim_chunk(insee, publication_id, "webpush", first.chunk or 0, token="another", lease_seconds=60)
    worker = stack.worker("webpush")
    busy = worker.handle(first, 1)
    assert busy is not None
    assert "another worker" in busy.reason
    table.release_chunk(insee, publication_id, "webpush", first.chunk or 0, "another")
    assert stack.run_deliver("webpush", chunks) == []
    before = delivery_of(gateway, insee, publication_id)
    assert worker.handle(first, 1) is None
    assert worker.handle(first, 2) is None
    assert len(reached(sandbox)) == 3
    assert delivery_of(gateway, insee, publication_id) == before
    assert before[1]["recipients"] == {"total": 3, "sent": 3, "failed": 0}
    assert billed(table, insee) == 3


def test_a_crash_while_queueing_loses_and_duplicates_no_recipient(
    gateway: Gateway, sandbox: Sandbox, stack: Stack, table: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WebpushChannel, "chunk_size", 2)
    insee, endpoints = webpush_commune(gateway, sandbox, table, 5)
    publication_id = publish(gateway, insee)
    worker = stack.worker("webpush")
    real = worker.chunks

    class CrashAfterOne:
        def send(self, messages: list[FanoutMessage]) -> None:
            real.send(messages[:1])
            raise RuntimeError("the function stopped here")

    monkeypatch.setattr(worker, "chunks", CrashAfterOne())
    assert len(stack.deliver("webpush")) == 1  # the publish message comes back
    monkeypatch.setattr(worker, "chunks", real)
    for receipt in stack.receipts.pop("webpush"):
        aws.sqs().change_message_visibility(
            QueueUrl=stack.mapping("webpush").queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
        )
    waiting = queued(stack, publication_id)
    [again] = [message for message in waiting if Stack.fanout_message(message).chunk is None]
    early = [message for message in waiting if message is not again]
    assert [Stack.fanout_message(message).chunk for message in early] == [0]
    assert stack.run_deliver("webpush", [again]) == []  # the plan is kept; every open chunk is queued again
    chunks = early + queued(stack, publication_id)
    assert sorted(Stack.fanout_message(message).chunk or 0 for message in chunks) == [0, 0, 1, 2]
    assert stack.run_deliver("webpush", chunks) == []
    assert sorted(reached(sandbox)) == sorted(endpoint.rsplit("/", 1)[-1] for endpoint in endpoints)
    _, delivery = delivery_of(gateway, insee, publication_id)
    assert (delivery["status"], delivery["recipients"]) == ("sent", {"total": 5, "sent": 5, "failed": 0})
    assert billed(table, insee) == 5


def test_no_subscriber_skips_the_channel_with_a_reason(
    gateway: Gateway, sandbox: Sandbox, stack: Stack, table: Store
) -> None:
    insee, _ = webpush_commune(gateway, sandbox, table, 0)
    publication_id = publish(gateway, insee)
    assert stack.deliver("webpush") == []
    assert queued(stack, publication_id) == []
    _, delivery = delivery_of(gateway, insee, publication_id)
    assert delivery["status"] == "skipped"
    assert delivery["error"]["message"].startswith("Aucun abonné")
    assert delivery["recipients"] is None


# -- HTTP/2 where the push service offers it ---------------------------------------------------------------------


class Http2PushService:
    """A push service over TLS that offers HTTP/2 (ALPN h2): 201 to every POST, counting connections and
    the streams each carried."""

    def __init__(self, certificate: tuple[Path, Path]) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*certificate)
        self.context.set_alpn_protocols(["h2", "http/1.1"])
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.streams: list[int] = []
        """Per connection, the requests it carried."""
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        with contextlib.suppress(OSError, ssl.SSLError), self.context.wrap_socket(raw, server_side=True) as tls:
            assert tls.selected_alpn_protocol() == "h2"
            index = len(self.streams)
            self.streams.append(0)
            connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            connection.initiate_connection()
            tls.sendall(connection.data_to_send())
            while data := tls.recv(65535):
                for event in connection.receive_data(data):
                    if isinstance(event, h2.events.StreamEnded):
                        self.streams[index] += 1
                        connection.send_headers(event.stream_id, [(":status", "201")], end_stream=True)
                tls.sendall(connection.data_to_send())

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_a_chunk_goes_over_http2_where_the_push_service_offers_it_and_the_guard_still_holds(
    gateway: Gateway, sandbox: Sandbox, table: Store, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Http2PushService(certificate)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # the deployment's client, trusting this service
    insee = gateway.new_commune()
    for number in range(20):
        browser = imitated(sandbox).new_subscription()
        endpoint = f"https://127.0.0.1:{service.port}/push/{number}"
        table.put_webpush_subscription(
            insee,
            webpush.endpoint_hash(endpoint),
            endpoint=endpoint,
            p256dh=browser["keys"]["p256dh"],
            auth=browser["keys"]["auth"],
            categories=[],
        )
    body = imitated(sandbox).demo_channel()
    adapter = WebpushChannel(
        WebpushSettings.model_validate(body["settings"]),
        WebpushCredentials.model_validate(body["credentials"]),
        guarded_client(timeout=5.0),
    )
    try:
        outcomes = send_all(adapter, adapter.render(publication(insee)))
        assert [outcome.result for outcome in outcomes.values()] == ["delivered"] * 20
        assert sum(service.streams) == 20
        assert len(service.streams) < 20  # multiplexed: HTTP/2 streams share connections

        monkeypatch.delenv("CRIEUR_ALLOW_PRIVATE_TARGETS")  # as deployed: the guard checks each new connection
        adapter.http.close()
        adapter.http = guarded_client(timeout=5.0)
        refused = send_all(adapter, adapter.render(publication(insee)))
        assert {outcome.result for outcome in refused.values()} == {"refused"}
        assert sum(service.streams) == 20  # refused before connecting
    finally:
        adapter.http.close()
        service.close()
