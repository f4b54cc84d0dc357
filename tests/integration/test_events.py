"""Outbound event webhooks, in-process against moto: the API registers endpoints, the api and deliver
functions queue status events, and the events function posts them signed (respx stands in for endpoints).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from crieur import aws, config
from crieur.billing import billing_month
from crieur.credentials import KmsVault
from crieur.eventhooks.worker import EventDispatcher, retry_schedule
from crieur.events import EVENT_TYPES, EventBatch
from crieur.models import FanoutMessage, utc_now
from crieur.security import verify_webhook
from crieur.store import Store
from infra.local.pollers import lambda_record, settled_receipts
from tests.integration.conftest import Gateway, Stack

HOOK = "https://site.example/hooks/crieur"
INSTANCE = "https://mastodon.example"
RECEIVER = "https://receiver.example/crieur/events"
OTHER = "https://other.example/hooks"
PUBLICATION = {"title": "Coupure d'eau", "body": "Mardi de 9 h à 12 h, rue des Lilas."}


@dataclass
class EventsQueue:
    """The events queue and its function, driven like Lambda's SQS poller would."""

    stack: Stack
    receipts: list[str] = field(default_factory=list)

    @property
    def mapping(self) -> Any:
        function = self.stack.functions.by_logical_id("EventsFunction")
        return next(m for m in self.stack.deployment.event_source_mappings if m.function == function.name)

    def receive(self, wait: float = 0.3) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = (
                aws.sqs()
                .receive_message(
                    QueueUrl=self.mapping.queue_url,
                    MaxNumberOfMessages=10,
                    AttributeNames=["All"],
                    WaitTimeSeconds=0 if found else max(int(wait), 0),
                )
                .get("Messages", [])
            )
            if not page:
                return found
            found += page

    def run(self, *, make_visible: bool = False) -> tuple[list[EventBatch], list[str]]:
        """Runs the events function on what the queue holds; `make_visible` first ends the backoff of the
        messages that failed. Returns the batches it ran and the ids of the messages left for later."""
        if make_visible:
            for receipt in self.receipts:
                aws.sqs().change_message_visibility(
                    QueueUrl=self.mapping.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
                )
            self.receipts.clear()
        messages = self.receive()
        if not messages:
            return [], []
        mapping = self.mapping
        records = [lambda_record(message, mapping.queue_arn, self.stack.deployment.region) for message in messages]
        result = self.stack.functions.invoke(mapping.function, {"Records": records})
        settled = settled_receipts(records, result)
        for record in records:
            if record["receiptHandle"] in settled:
                aws.sqs().delete_message(QueueUrl=mapping.queue_url, ReceiptHandle=record["receiptHandle"])
            else:
                self.receipts.append(record["receiptHandle"])
        batches = [EventBatch.model_validate_json(message["Body"]) for message in messages]
        return batches, [record["messageId"] for record in records if record["receiptHandle"] not in settled]


@pytest.fixture
def events(stack: Stack) -> EventsQueue:
    return EventsQueue(stack)


@pytest.fixture
def web(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.MockRouter]:
    # respx stands in for the providers and the endpoints; their names do not resolve here.
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{INSTANCE}/api/v2/instance").respond(json={"configuration": {"statuses": {"max_characters": 500}}})
        router.post(HOOK).respond(204)
        yield router


@pytest.fixture
def commune(gateway: Gateway) -> str:
    """A fresh commune with webhook and mastodon configured."""
    insee = gateway.new_commune()
    for channel, body in (
        ("webhook", {"settings": {"url": HOOK}, "credentials": {"secret": "whsec_" + "A" * 44}}),
        ("mastodon", {"settings": {"instance_url": INSTANCE}, "credentials": {"access_token": "tok"}}),
    ):
        assert gateway.call("PUT", f"/v1/channels/{channel}", insee, body).status == 200
    return insee


def register(gateway: Gateway, insee: str, url: str, kinds: list[str]) -> dict[str, Any]:
    answer = gateway.call("POST", "/v1/event-endpoints", insee, {"url": url, "events": kinds})
    assert answer.status == 201, answer.body
    return dict(answer.json)


def publish(gateway: Gateway, insee: str, **fields: Any) -> dict[str, Any]:
    answer = gateway.call("POST", "/v1/publications", insee, {**PUBLICATION, **fields})
    assert answer.status == 201, answer.body
    return dict(answer.json)


def signed(call: Any, secret: str) -> dict[str, Any]:
    """The body of a call to an endpoint, after checking its Standard Webhooks signature."""
    request: httpx.Request = call.request
    verify_webhook([secret], dict(request.headers), request.content)
    assert request.headers["content-type"] == "application/json"
    return dict(json.loads(request.content))


def queued_types(batches: list[EventBatch]) -> list[list[str]]:
    return [[event.type for event in batch.events] for batch in batches]


# --- registration -----------------------------------------------------------------------------------------


def test_an_endpoint_is_registered_with_a_sealed_secret_shown_once(gateway: Gateway, stack: Stack) -> None:
    insee = gateway.new_commune()
    created = register(gateway, insee, RECEIVER, ["publication.published", "delivery.failed"])
    assert created["id"].startswith("evt_")
    assert created["url"] == RECEIVER
    assert created["events"] == ["publication.published", "delivery.failed"]
    secret = created["secret"]
    assert secret.startswith("whsec_")

    listed = gateway.call("GET", "/v1/event-endpoints", insee)
    assert listed.status == 200
    assert [item["id"] for item in listed.json["items"]] == [created["id"]]
    assert "secret" not in listed.json["items"][0]
    assert secret not in listed.body

    item = aws.dynamodb().Table(stack.table).get_item(Key={"pk": f"C#{insee}", "sk": f"EVT#{created['id']}"})["Item"]
    ciphertext = bytes(item["secret"].value)
    assert secret.encode() not in ciphertext
    context = {"commune": insee, "channel": f"events:{created['id']}"}
    opened = aws.kms().decrypt(CiphertextBlob=ciphertext, EncryptionContext=context)
    assert json.loads(opened["Plaintext"]) == {"secret": secret}
    with pytest.raises(aws.kms().exceptions.InvalidCiphertextException):  # not a channel's credentials
        aws.kms().decrypt(CiphertextBlob=ciphertext, EncryptionContext={"commune": insee, "channel": "webhook"})

    stranger = gateway.new_commune()
    assert gateway.call("GET", "/v1/event-endpoints", stranger).json == {"items": []}
    assert gateway.call("DELETE", f"/v1/event-endpoints/{created['id']}", stranger).status == 404
    assert gateway.call("DELETE", f"/v1/event-endpoints/{created['id']}", insee).status == 204
    assert gateway.call("DELETE", f"/v1/event-endpoints/{created['id']}", insee).status == 404
    assert gateway.call("GET", "/v1/event-endpoints", insee).json == {"items": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://receiver.example/x", "events": ["publication.published"]}, "url"),
        ({"url": "https://10.0.0.8/x", "events": ["publication.published"]}, "url"),
        ({"url": RECEIVER, "events": ["publication.deleted"]}, "events[0]"),
        ({"url": RECEIVER, "events": []}, "events"),
        ({"url": RECEIVER, "events": ["delivery.failed", "delivery.failed"]}, "events"),
        ({"url": RECEIVER, "events": ["delivery.failed"], "secret": "whsec_mine"}, "secret"),
    ],
)
def test_a_bad_endpoint_is_a_french_422_naming_the_field(gateway: Gateway, body: dict[str, Any], field: str) -> None:
    insee = gateway.new_commune()
    answer = gateway.call("POST", "/v1/event-endpoints", insee, body)
    assert answer.status == 422, answer.body
    assert field in [error["field"] for error in answer.json["errors"]]
    assert gateway.call("GET", "/v1/event-endpoints", insee).json == {"items": []}


# --- emission and delivery --------------------------------------------------------------------------------


def test_a_published_publication_sends_one_signed_event_to_the_subscribed_endpoints_only(
    gateway: Gateway, stack: Stack, events: EventsQueue, commune: str, web: respx.MockRouter
) -> None:
    web.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "77", "url": f"{INSTANCE}/@m/77"})
    receiver = web.post(RECEIVER).respond(200)
    other = web.post(OTHER).respond(200)
    subscribed = register(gateway, commune, RECEIVER, ["publication.published", "publication.failed"])
    register(gateway, commune, OTHER, ["delivery.failed"])  # not this event
    stranger = gateway.new_commune()
    register(gateway, stranger, OTHER, ["publication.published"])  # not this commune

    created = publish(gateway, commune)
    assert stack.deliver("webhook") == []
    assert events.receive() == []  # one channel to go: nothing final yet
    assert stack.deliver("mastodon") == []

    batches, failed = events.run()
    assert queued_types(batches) == [["publication.published"]]  # ONE message for the whole publication
    assert failed == []
    assert receiver.call_count == 1
    assert other.call_count == 0
    body = signed(receiver.calls[0], subscribed["secret"])
    assert body["type"] == "publication.published"
    assert body["data"]["id"] == created["id"]
    assert body["data"]["commune"] == commune
    assert body["data"]["status"] == "published"
    assert body["data"]["deliveries"]["mastodon"]["url"] == f"{INSTANCE}/@m/77"
    assert receiver.calls[0].request.headers["webhook-id"].endswith("_" + subscribed["id"])

    # The last delivery's message again (SQS at least once): the event is queued again, never re-sent.
    replay = FanoutMessage(commune=commune, publication_id=created["id"])
    assert stack.worker("mastodon").deliver(replay, receive_count=2) is None
    again, _ = events.run()
    assert queued_types(again) == [["publication.published"]]
    assert again[0].events[0].id == batches[0].events[0].id
    assert receiver.call_count == 1


def test_a_failed_channel_sends_delivery_failed_and_partially_published(
    gateway: Gateway, stack: Stack, events: EventsQueue, commune: str, web: respx.MockRouter
) -> None:
    web.post(f"{INSTANCE}/api/v1/statuses").respond(422, json={"error": "Validation failed: Text too long"})
    receiver = web.post(RECEIVER).respond(204)
    endpoint = register(gateway, commune, RECEIVER, ["delivery.failed", "publication.partially_published"])

    created = publish(gateway, commune)
    stack.deliver("webhook")
    stack.deliver("mastodon")
    batches, failed = events.run()
    # The failed delivery and the end it gave the publication: one message.
    assert queued_types(batches) == [["delivery.failed", "publication.partially_published"]]
    assert failed == []

    bodies = {body["type"]: body for body in (signed(call, endpoint["secret"]) for call in receiver.calls)}
    assert set(bodies) == {"delivery.failed", "publication.partially_published"}
    failure = bodies["delivery.failed"]["data"]
    assert failure["publication_id"] == created["id"]
    assert failure["channel"] == "mastodon"
    assert failure["title"] == PUBLICATION["title"]
    assert failure["delivery"]["status"] == "failed"
    assert "Text too long" in failure["delivery"]["error"]["message"]
    ended = bodies["publication.partially_published"]["data"]
    assert ended["status"] == "partially_published"
    assert ended["deliveries"]["webhook"]["status"] == "sent"
    ids = {call.request.headers["webhook-id"] for call in receiver.calls}
    assert len(ids) == 2


def test_an_endpoint_that_is_down_is_retried_and_the_others_are_not_sent_again(
    gateway: Gateway, stack: Stack, events: EventsQueue, commune: str, web: respx.MockRouter
) -> None:
    down = web.post(RECEIVER)
    down.side_effect = [
        httpx.Response(503, text="maintenance"),
        httpx.ConnectError("connection refused"),
        httpx.Response(200),
    ]
    fine = web.post(OTHER).respond(200)
    flaky = register(gateway, commune, RECEIVER, ["publication.published"])
    steady = register(gateway, commune, OTHER, ["publication.published"])

    publish(gateway, commune, channels=["webhook"])
    stack.deliver("webhook")
    _, failed = events.run()
    assert len(failed) == 1
    assert (down.call_count, fine.call_count) == (1, 1)
    assert events.receive() == []  # backing off: the message's visibility was lengthened

    _, failed = events.run(make_visible=True)
    assert len(failed) == 1
    assert (down.call_count, fine.call_count) == (2, 1)

    _, failed = events.run(make_visible=True)
    assert failed == []
    assert (down.call_count, fine.call_count) == (3, 1)
    assert events.receive() == []

    # Every attempt is the same message: same webhook-id and body, each signed anew.
    bodies = [signed(call, flaky["secret"]) for call in down.calls]
    assert bodies[0] == bodies[1] == bodies[2]
    assert len({call.request.headers["webhook-id"] for call in down.calls}) == 1
    assert signed(fine.calls[0], steady["secret"]) == bodies[0]


def test_an_endpoint_down_for_good_is_given_up_on_the_last_receive(
    gateway: Gateway, stack: Stack, events: EventsQueue, commune: str, web: respx.MockRouter
) -> None:
    down = web.post(RECEIVER).respond(500)
    endpoint = register(gateway, commune, RECEIVER, ["publication.published"])
    publish(gateway, commune, channels=["webhook"])
    stack.deliver("webhook")
    (batch,), _ = events.run()
    for _ in range(6):
        assert len(events.run(make_visible=True)[1]) == 1
    assert events.run(make_visible=True)[1] == []  # the 8th receive: given up, message deleted
    assert down.call_count == 8
    assert events.receive() == []
    record = Store(stack.table).event_delivery(commune, batch.events[0].id)
    assert record is not None
    attempt = record.endpoints[endpoint["id"]]
    assert (attempt.state, attempt.attempts, attempt.status_code) == ("failed", 8, 500)


def test_a_4xx_gives_up_at_once_but_a_429_is_retried(
    gateway: Gateway, stack: Stack, events: EventsQueue, commune: str, web: respx.MockRouter
) -> None:
    gone = web.post(RECEIVER).respond(410)
    busy = web.post(OTHER)
    busy.side_effect = [httpx.Response(429, headers={"Retry-After": "120"}), httpx.Response(200)]
    register(gateway, commune, RECEIVER, ["publication.published"])
    register(gateway, commune, OTHER, ["publication.published"])
    publish(gateway, commune, channels=["webhook"])
    stack.deliver("webhook")
    assert len(events.run()[1]) == 1
    assert events.run(make_visible=True)[1] == []
    assert (gone.call_count, busy.call_count) == (1, 2)


def test_publishing_succeeds_while_the_endpoints_are_down(
    gateway: Gateway, stack: Stack, events: EventsQueue, commune: str, web: respx.MockRouter
) -> None:
    toot = web.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "8", "url": None})
    down = web.post(RECEIVER).mock(side_effect=httpx.ConnectTimeout("no answer"))
    register(gateway, commune, RECEIVER, list(EVENT_TYPES))

    created = publish(gateway, commune)
    assert stack.deliver("webhook") == []
    assert stack.deliver("mastodon") == []
    assert down.call_count == 0  # the publish path never calls an endpoint
    shown = gateway.call("GET", f"/v1/publications/{created['id']}", commune).json
    assert shown["status"] == "published"
    assert toot.call_count == 1
    _, failed = events.run()
    assert len(failed) == 1  # only the events worker waits for the endpoint
    assert down.call_count == 1


def test_publishing_succeeds_while_the_events_queue_is_down(
    gateway: Gateway, stack: Stack, commune: str, web: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    web.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "8", "url": None})
    register(gateway, commune, RECEIVER, list(EVENT_TYPES))

    def unavailable(*_: Any, **__: Any) -> None:
        raise RuntimeError("SQS is down")

    monkeypatch.setattr("crieur.events.SqsEvents.send", unavailable)
    created = publish(gateway, commune)
    assert stack.deliver("webhook") == []
    assert stack.deliver("mastodon") == []
    assert gateway.call("GET", f"/v1/publications/{created['id']}", commune).json["status"] == "published"


def test_a_401_from_a_provider_sends_channel_needs_reconnect_once(
    gateway: Gateway, stack: Stack, events: EventsQueue, commune: str, web: respx.MockRouter
) -> None:
    web.post(f"{INSTANCE}/api/v1/statuses").respond(401, json={"error": "The access token is invalid"})
    receiver = web.post(RECEIVER).respond(200)
    endpoint = register(gateway, commune, RECEIVER, ["channel.needs_reconnect"])

    created = publish(gateway, commune, channels=["mastodon"])
    assert stack.deliver("mastodon") == []
    batches, _ = events.run()
    assert queued_types(batches) == [["channel.needs_reconnect", "delivery.failed", "publication.failed"]]
    (call,) = receiver.calls
    body = signed(call, endpoint["secret"])
    assert body["type"] == "channel.needs_reconnect"
    assert body["data"]["commune"] == commune
    assert body["data"]["channel"] == "mastodon"
    assert body["data"]["publication_id"] == created["id"]
    assert "reconnectez" in body["data"]["reason"]
    assert gateway.call("GET", "/v1/channels/mastodon", commune).json["needs_reconnect"] is True

    # The next publication skips the marked channel: no second refusal, no second event.
    publish(gateway, commune, channels=["mastodon", "webhook"])
    stack.deliver("webhook")
    events.run()
    assert receiver.call_count == 1


def test_usage_budget_reached_is_sent_once_per_month(
    gateway: Gateway, stack: Stack, events: EventsQueue, commune: str, web: respx.MockRouter
) -> None:
    receiver = web.post(RECEIVER).respond(200)
    endpoint = register(gateway, commune, RECEIVER, ["usage.budget_reached"])
    Store(stack.table).set_budget(commune, Decimal("0.01"))

    refused = gateway.call("POST", "/v1/publications", commune, {**PUBLICATION, "channels": ["webhook"]})
    assert refused.status == 402
    first = publish(gateway, commune, channels=["webhook"], urgency="critical")
    second = publish(gateway, commune, channels=["webhook"], category="weather", urgency="high")
    assert first["over_budget"] is second["over_budget"] is True

    batches, _ = events.run()
    assert queued_types(batches) == [["usage.budget_reached"]]
    (call,) = receiver.calls
    body = signed(call, endpoint["secret"])
    assert body["type"] == "usage.budget_reached"
    assert body["data"]["budget_eur"] == 0.01
    assert body["data"]["publication_id"] == first["id"]
    assert body["data"]["month"] == billing_month(utc_now())


def test_the_backoff_is_exponential_over_about_a_day_and_honours_retry_after(
    gateway: Gateway, stack: Stack, events: EventsQueue, commune: str, web: respx.MockRouter
) -> None:
    assert retry_schedule(8, 30) == [30, 120, 480, 1920, 7680, 30720, 43200]  # 23.4 hours in all
    down = web.post(RECEIVER).respond(503)
    register(gateway, commune, RECEIVER, ["publication.published"])
    publish(gateway, commune, channels=["webhook"])
    stack.deliver("webhook")
    (message,) = events.receive()
    batch = EventBatch.model_validate_json(message["Body"])
    worker = EventDispatcher(store=Store(stack.table), vault=KmsVault(None), http=config.http)

    first = worker.handle(batch, receive_count=1)
    assert first is not None
    assert first.after_seconds == 30
    fourth = worker.handle(batch, receive_count=4)
    assert fourth is not None
    assert fourth.after_seconds == 1920
    down.return_value = httpx.Response(429, headers={"Retry-After": "3600"})
    asked = worker.handle(batch, receive_count=2)
    assert asked is not None
    assert asked.after_seconds == 3600  # longer than the 120 s the schedule says: the endpoint's wish wins
    assert worker.handle(batch, receive_count=8) is None  # the last receive: given up
    assert worker.handle(batch, receive_count=1) is None  # and never tried again
    assert down.call_count == 4


def test_an_endpoint_deleted_before_a_retry_is_not_called_again(
    gateway: Gateway, stack: Stack, events: EventsQueue, commune: str, web: respx.MockRouter
) -> None:
    down = web.post(RECEIVER).respond(502)
    endpoint = register(gateway, commune, RECEIVER, ["publication.published"])
    publish(gateway, commune, channels=["webhook"])
    stack.deliver("webhook")
    (batch,), failed = events.run()
    assert len(failed) == 1
    assert gateway.call("DELETE", f"/v1/event-endpoints/{endpoint['id']}", commune).status == 204
    assert events.run(make_visible=True)[1] == []
    assert down.call_count == 1
    record = Store(stack.table).event_delivery(commune, batch.events[0].id)
    assert record is not None
    assert record.endpoints[endpoint["id"]].state == "gone"
