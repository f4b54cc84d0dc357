"""Every accepted publication ends in a visible final state by itself: the channel's dead-letter queue is read by
its own deliver function (the DeadLetters mapping of infra/channel.yaml), and an attempt whose outcome is unknown
(no answer, a worker killed) is looked up on the provider before anything is posted again or recorded failed.

Messages reach the DLQ the way SQS moves them (moto in server mode: a receive past maxReceiveCount), and the
dead letters are read through the deliver function with the records Lambda builds for the DLQ's mapping.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from crieur import aws
from crieur.billing import billing_month
from crieur.channels.base import RenderedPost, SentPost, TransientChannelError
from crieur.channels.mastodon import MastodonChannel
from crieur.channels.webpush import WebpushChannel
from crieur.models import utc_now
from crieur.store import Store
from infra.local.pollers import QueuePoller, lambda_record, settled_receipts
from infra.local.provision import Deployment, EventSourceMapping
from infra.local.sandbox import Sandbox
from tests.integration.conftest import Gateway, Stack
from tests.integration.test_pipeline import HOOK, INSTANCE, commune, publish  # noqa: F401 - the commune fixture
from tests.integration.test_webpush import billed as webpush_billed
from tests.integration.test_webpush import (  # noqa: F401 - the sandbox and table fixtures
    delivery_of,
    imitated,
    queued,
    reached,
    sandbox,
    table,
    webpush_commune,
)
from tests.integration.test_webpush import publish as publish_webpush

STATUSES = f"{INSTANCE}/api/v1/statuses"


class Provider:
    """A Mastodon-like provider; `script` says what its n-th post call (1-based) does: "503" (answers 503, creates
    nothing), "lost" (creates the post, but its answer never arrives: a read timeout), "timeout" (nothing created,
    no answer), "kill" (the worker's container dies during the call); else it creates the post and answers.
    `find_sent` (patched on the adapter) looks the post up as an adapter would."""

    def __init__(self, script: dict[int, str]) -> None:
        self.script = script
        self.calls = 0
        self.posts: list[str] = []
        self.lookups = 0

    def post(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        step = self.script.get(self.calls, "ok")
        if step == "503":
            return httpx.Response(503, json={"error": "down"})
        if step == "kill":
            raise SystemExit("container killed while the provider was answering")
        if step == "timeout":
            raise httpx.ConnectTimeout("no answer", request=request)
        self.posts.append(f"{100 + len(self.posts)}")
        if step == "lost":
            raise httpx.ReadTimeout("the provider answered too late", request=request)
        return httpx.Response(200, json={"id": self.posts[-1], "url": f"{INSTANCE}/@mairie/{self.posts[-1]}"})

    def find_sent(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost | None:
        self.lookups += 1
        if not self.posts:
            return None
        return SentPost(external_id=self.posts[0], url=f"{INSTANCE}/@mairie/{self.posts[0]}")


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.MockRouter]:
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")  # respx's hosts do not resolve here
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{INSTANCE}/api/v2/instance").respond(json={"configuration": {"statuses": {"max_characters": 500}}})
        yield router


def provider(providers: respx.MockRouter, monkeypatch: pytest.MonkeyPatch, **script: str) -> Provider:
    """The imitation, answering Mastodon's status route; `script`: call number (as `_<n>`) → step."""
    imitation = Provider({int(call.removeprefix("_")): step for call, step in script.items()})
    providers.post(STATUSES).mock(side_effect=imitation.post)

    def find_sent(_adapter: MastodonChannel, rendered: RenderedPost, *, delivery_id: str) -> SentPost | None:
        return imitation.find_sent(rendered, delivery_id=delivery_id)

    monkeypatch.setattr(MastodonChannel, "find_sent", find_sent)
    return imitation


def dead_letter_mapping(stack: Stack, channel: str) -> EventSourceMapping:
    """The channel's DeadLetters mapping: the one on the queue its deliver function knows as its DLQ."""
    function = stack.functions.by_logical_id("DeliverFunction", channel)
    arn = function.environment["CRIEUR_DEAD_LETTER_QUEUE_ARN"]
    (mapping,) = [m for m in stack.deployment.event_source_mappings if m.queue_arn == arn]
    assert mapping.function == function.name
    return mapping


def make_visible(stack: Stack, channel: str) -> None:
    for receipt in stack.receipts.pop(channel, []):
        aws.sqs().change_message_visibility(
            QueueUrl=stack.mapping(channel).queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
        )


def move_to_dead_letters(stack: Stack, channel: str) -> None:
    """The receive that finds the message past its maxReceiveCount: SQS moves it to the DLQ, returns nothing."""
    make_visible(stack, channel)
    answer = aws.sqs().receive_message(QueueUrl=stack.mapping(channel).queue_url, MaxNumberOfMessages=10)
    assert answer.get("Messages", []) == []


def dead_letters(mapping: EventSourceMapping) -> list[dict[str, Any]]:
    return list(
        aws.sqs()
        .receive_message(
            QueueUrl=mapping.queue_url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=1,
        )
        .get("Messages", [])
    )


def read_dead_letters(stack: Stack, channel: str, messages: list[dict[str, Any]]) -> list[str]:
    """The deliver function on DLQ records, as the DeadLetters mapping invokes it; the ids it left there."""
    mapping = dead_letter_mapping(stack, channel)
    records = [lambda_record(message, mapping.queue_arn, stack.deployment.region) for message in messages]
    settled = settled_receipts(records, stack.functions.invoke(mapping.function, {"Records": records}))
    for receipt in settled:
        aws.sqs().delete_message(QueueUrl=mapping.queue_url, ReceiptHandle=receipt)
    return [record["messageId"] for record in records if record["receiptHandle"] not in settled]


def usage(stack: Stack, insee: str, channel: str) -> list[dict[str, Any]]:
    return [
        line
        for line in Store(stack.table).usage_lines(insee, billing_month(utc_now()))
        if line.get("channel") == channel
    ]


# ---------------------------------------------------------------- the template's mapping, as the local stack reads it


def test_each_deliver_function_reads_its_queue_then_its_dead_letter_queue(
    deployment: Deployment, aws_env: None
) -> None:
    """`make run` starts one poller per mapping: the DLQ's is one of them, so the local stack behaves like AWS."""
    deliver = [f for f in deployment.functions.values() if f.logical_id.endswith("DeliverFunction")]
    assert len(deliver) >= 10
    for function in deliver:
        mappings = [m for m in deployment.event_source_mappings if m.function == function.name]
        assert len(mappings) == 2, function.logical_id
        queue, dead = mappings  # the queue's first: tests and benchmarks take a function's first mapping
        attributes = aws.sqs().get_queue_attributes(QueueUrl=queue.queue_url, AttributeNames=["RedrivePolicy"])
        assert dead.queue_arn in attributes["Attributes"]["RedrivePolicy"]
        assert function.environment["CRIEUR_DEAD_LETTER_QUEUE_ARN"] == dead.queue_arn
        assert dead.enabled
        assert dead.report_batch_item_failures


# ---------------------------------------------------------------- a worker killed during the last receive


def test_a_worker_killed_during_the_last_receive_is_settled_failed_from_the_dead_letter_queue(
    gateway: Gateway,
    stack: Stack,
    commune: str,  # noqa: F811
    providers: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imitation = provider(providers, monkeypatch, _1="503", _2="503", _3="503", _4="503", _5="kill")
    created = publish(gateway, commune, channels=["mastodon"])
    for _ in range(4):
        make_visible(stack, "mastodon")
        assert len(stack.run_deliver("mastodon", [stack.receive("mastodon")])) == 1
    make_visible(stack, "mastodon")
    last = stack.receive("mastodon")
    with pytest.raises(SystemExit):
        stack.run_deliver("mastodon", [last])
    path = f"/v1/publications/{created['id']}"
    assert gateway.call("GET", path, commune).json["deliveries"]["mastodon"]["status"] == "sending"
    stack.receipts["mastodon"] = [last["ReceiptHandle"]]
    stack.expire_lease(commune, created["id"], "mastodon")  # the lease outlives no worker; SQS's visibility is longer
    move_to_dead_letters(stack, "mastodon")

    # The local stack's poller on the DeadLetters mapping, as `make run` starts it.
    mapping = dead_letter_mapping(stack, "mastodon")
    poller = QueuePoller(mapping, stack.functions.invoke, aws.sqs(), stack.deployment.region)
    poller.start()
    try:
        deadline = time.monotonic() + 60
        while poller.batches == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        poller.stop()
    assert poller.batches == 1

    shown = gateway.call("GET", path, commune).json
    mastodon = shown["deliveries"]["mastodon"]
    assert mastodon["status"] == "failed"
    assert mastodon["error"]["code"] == "interrupted"
    assert mastodon["error"]["message"].startswith("Abandon après 5 tentatives : la dernière a été interrompue")
    assert "Erreur précédente : Mastodon est momentanément indisponible (erreur 503)." in mastodon["error"]["message"]
    assert mastodon["error"]["provider_message"] == "down"
    assert shown["status"] == "failed"  # settled: the publication is final too
    assert imitation.lookups == 1  # the killed attempt's post was looked for first
    assert imitation.calls == 5  # and nothing was posted from the dead letter
    assert dead_letters(mapping) == []
    assert usage(stack, commune, "mastodon") == []


def test_a_dead_letter_whose_delivery_is_already_final_is_only_counted(
    gateway: Gateway,
    stack: Stack,
    commune: str,  # noqa: F811
    providers: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker killed after writing the outcome, before the message was deleted: nothing changes, once."""
    imitation = provider(providers, monkeypatch)
    created = publish(gateway, commune, channels=["mastodon"])
    message = stack.receive("mastodon")
    assert stack.run_deliver("mastodon", [message]) == []
    mapping = dead_letter_mapping(stack, "mastodon")
    aws.sqs().send_message(QueueUrl=mapping.queue_url, MessageBody=message["Body"])
    assert read_dead_letters(stack, "mastodon", dead_letters(mapping)) == []
    shown = gateway.call("GET", f"/v1/publications/{created['id']}", commune).json
    assert (shown["status"], shown["deliveries"]["mastodon"]["status"]) == ("published", "sent")
    assert (imitation.calls, imitation.lookups) == (1, 0)
    assert len(usage(stack, commune, "mastodon")) == 1


# ---------------------------------------------------------------- attempts of unknown outcome


def test_a_timed_out_attempt_that_made_the_post_is_found_not_posted_again(
    gateway: Gateway,
    stack: Stack,
    commune: str,  # noqa: F811
    providers: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """X has no idempotency key: a retry after a timeout that made the post would post it twice (or be refused
    as duplicate content). The worker looks it up first and records it sent, billed once."""
    imitation = provider(providers, monkeypatch, _1="lost")
    created = publish(gateway, commune, channels=["mastodon"])
    assert len(stack.deliver("mastodon")) == 1
    path = f"/v1/publications/{created['id']}"
    retrying = gateway.call("GET", path, commune).json["deliveries"]["mastodon"]
    assert (retrying["status"], retrying["error"]["code"]) == ("retrying", "timeout")

    assert stack.deliver("mastodon", make_visible=True) == []
    shown = gateway.call("GET", path, commune).json
    mastodon = shown["deliveries"]["mastodon"]
    assert (mastodon["status"], mastodon["external_id"], mastodon["error"]) == ("sent", "100", None)
    assert mastodon["url"] == f"{INSTANCE}/@mairie/100"
    assert shown["status"] == "published"
    assert imitation.posts == ["100"]  # posted once
    assert (imitation.calls, imitation.lookups) == (1, 1)
    assert len(usage(stack, commune, "mastodon")) == 1  # billed once


def test_a_retry_after_a_known_failure_posts_without_looking_up(
    gateway: Gateway,
    stack: Stack,
    commune: str,  # noqa: F811
    providers: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imitation = provider(providers, monkeypatch, _1="503")
    created = publish(gateway, commune, channels=["mastodon"])
    assert len(stack.deliver("mastodon")) == 1
    assert stack.deliver("mastodon", make_visible=True) == []
    assert gateway.call("GET", f"/v1/publications/{created['id']}", commune).json["status"] == "published"
    assert (imitation.calls, imitation.lookups, imitation.posts) == (2, 0, ["100"])


def test_a_last_receive_that_times_out_is_looked_up_from_the_dead_letter_queue_not_failed(
    gateway: Gateway,
    stack: Stack,
    commune: str,  # noqa: F811
    providers: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imitation = provider(providers, monkeypatch, _1="503", _2="503", _3="503", _4="503", _5="lost")
    created = publish(gateway, commune, channels=["mastodon"])
    path = f"/v1/publications/{created['id']}"
    assert len(stack.deliver("mastodon")) == 1
    for _ in range(4):  # the 5th and last receive times out after the provider made the post
        assert len(stack.deliver("mastodon", make_visible=True)) == 1
    waiting = gateway.call("GET", path, commune).json["deliveries"]["mastodon"]
    assert (waiting["status"], waiting["error"]["code"]) == ("retrying", "timeout")  # not failed blindly
    assert imitation.lookups == 0  # the attempt before it had failed with an answer (503)

    move_to_dead_letters(stack, "mastodon")
    mapping = dead_letter_mapping(stack, "mastodon")
    found = dead_letters(mapping)
    assert [int(m["Attributes"]["ApproximateReceiveCount"]) for m in found] == [6]  # kept from the queue
    assert read_dead_letters(stack, "mastodon", found) == []
    shown = gateway.call("GET", path, commune).json
    mastodon = shown["deliveries"]["mastodon"]
    assert (mastodon["status"], mastodon["external_id"]) == ("sent", "100")
    assert shown["status"] == "published"
    assert (imitation.calls, imitation.lookups, imitation.posts) == (5, 1, ["100"])
    assert len(usage(stack, commune, "mastodon")) == 1


def test_a_dead_letter_on_a_channel_that_deduplicates_itself_is_sent_once_more_with_the_same_id(
    gateway: Gateway,
    stack: Stack,
    commune: str,  # noqa: F811
    providers: respx.MockRouter,
) -> None:
    """The commune's webhook receives every attempt but its answers are lost (read timeouts): it has no lookup,
    and it drops a webhook-id it has seen (Standard Webhooks), so the dead letter's reading sends once more
    with the same id, and the answer it gets at last says `sent` instead of a failure the site never had."""
    received: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request.headers["webhook-id"])
        if len(received) <= 5:
            raise httpx.ReadTimeout("the site answered too late", request=request)
        return httpx.Response(204)

    providers.post(HOOK).mock(side_effect=receiver)
    created = publish(gateway, commune, channels=["webhook"])
    path = f"/v1/publications/{created['id']}"
    assert len(stack.deliver("webhook")) == 1
    for _ in range(4):
        assert len(stack.deliver("webhook", make_visible=True)) == 1
    assert gateway.call("GET", path, commune).json["deliveries"]["webhook"]["status"] == "retrying"

    move_to_dead_letters(stack, "webhook")
    assert read_dead_letters(stack, "webhook", dead_letters(dead_letter_mapping(stack, "webhook"))) == []
    shown = gateway.call("GET", path, commune).json
    assert (shown["deliveries"]["webhook"]["status"], shown["status"]) == ("sent", "published")
    assert received == [f"{created['id']}-webhook"] * 6
    assert len(usage(stack, commune, "webhook")) == 1


def test_an_attempt_of_unknown_outcome_is_remembered_when_later_attempts_fail_with_an_answer(
    gateway: Gateway,
    stack: Stack,
    commune: str,  # noqa: F811
    providers: respx.MockRouter,
) -> None:
    """The site receives the first attempt but its answer is lost; the next four get a 503 (an answer: known
    failures). The fifth is still not the last word: the first may have been (and was) received, so the dead
    letter sends once more with the same webhook-id, and the delivery ends `sent`, billed once."""
    received: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request.headers["webhook-id"])
        if len(received) == 1:
            raise httpx.ReadTimeout("the site answered too late", request=request)
        return httpx.Response(503 if len(received) <= 5 else 204)

    providers.post(HOOK).mock(side_effect=receiver)
    created = publish(gateway, commune, channels=["webhook"])
    path = f"/v1/publications/{created['id']}"
    assert len(stack.deliver("webhook")) == 1
    for _ in range(4):
        assert len(stack.deliver("webhook", make_visible=True)) == 1
    waiting = gateway.call("GET", path, commune).json["deliveries"]["webhook"]
    assert (waiting["status"], waiting["error"]["code"]) == ("retrying", "provider_unavailable")

    move_to_dead_letters(stack, "webhook")
    assert read_dead_letters(stack, "webhook", dead_letters(dead_letter_mapping(stack, "webhook"))) == []
    shown = gateway.call("GET", path, commune).json
    assert (shown["deliveries"]["webhook"]["status"], shown["status"]) == ("sent", "published")
    assert received == [f"{created['id']}-webhook"] * 6
    assert len(usage(stack, commune, "webhook")) == 1


def test_a_dead_letter_whose_post_is_not_found_fails_with_the_last_error(
    gateway: Gateway,
    stack: Stack,
    commune: str,  # noqa: F811
    providers: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imitation = provider(providers, monkeypatch, **{f"_{n}": "timeout" for n in range(1, 6)})
    created = publish(gateway, commune, channels=["mastodon"])
    assert len(stack.deliver("mastodon")) == 1
    for _ in range(4):
        assert len(stack.deliver("mastodon", make_visible=True)) == 1
    move_to_dead_letters(stack, "mastodon")
    assert read_dead_letters(stack, "mastodon", dead_letters(dead_letter_mapping(stack, "mastodon"))) == []
    shown = gateway.call("GET", f"/v1/publications/{created['id']}", commune).json
    mastodon = shown["deliveries"]["mastodon"]
    assert mastodon["status"] == "failed"
    assert mastodon["error"]["code"] == "timeout"
    assert mastodon["error"]["message"] == (
        "Abandon après 5 tentatives. Dernière erreur : Mastodon n'a pas répondu à temps."
    )
    assert shown["status"] == "failed"
    assert imitation.lookups == 5  # before each retry of an attempt without answer, and from the dead letter
    assert usage(stack, commune, "mastodon") == []


def test_a_dead_letter_whose_lookup_keeps_failing_ends_failed_after_its_tries(
    gateway: Gateway,
    stack: Stack,
    commune: str,  # noqa: F811
    providers: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider(providers, monkeypatch)

    def lookup_down(_adapter: MastodonChannel, rendered: RenderedPost, *, delivery_id: str) -> SentPost | None:
        raise TransientChannelError("unreachable", "Mastodon est injoignable : nouvel essai automatique.")

    monkeypatch.setattr(MastodonChannel, "find_sent", lookup_down)
    created = publish(gateway, commune, channels=["mastodon"])
    message = stack.receive("mastodon")
    aws.sqs().delete_message(QueueUrl=stack.mapping("mastodon").queue_url, ReceiptHandle=message["ReceiptHandle"])
    worker, dead = stack.worker("mastodon"), Stack.fanout_message(message)
    path = f"/v1/publications/{created['id']}"
    assert worker.dead_letter(dead, receive_count=6) is not None  # its first reading: read again later
    assert gateway.call("GET", path, commune).json["deliveries"]["mastodon"]["status"] == "retrying"
    assert worker.dead_letter(dead, receive_count=7) is not None
    assert worker.dead_letter(dead, receive_count=8) is None  # the third: given up, said so
    shown = gateway.call("GET", path, commune).json
    assert shown["deliveries"]["mastodon"]["status"] == "failed"
    assert shown["deliveries"]["mastodon"]["error"]["message"] == (
        "Abandon après 5 tentatives, sans avoir pu vérifier auprès du service si la publication y a été faite. "
        "Dernière erreur : Mastodon est injoignable."
    )
    assert shown["status"] == "failed"


# ---------------------------------------------------------------- chunks and retractions


def test_a_dead_chunk_counts_its_pending_recipients_failed_and_settles_the_delivery(
    gateway: Gateway,
    sandbox: Sandbox,  # noqa: F811
    stack: Stack,
    table: Store,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(WebpushChannel, "chunk_size", 2)
    insee, endpoints = webpush_commune(gateway, sandbox, table, 3)
    imitated(sandbox).fail(endpoints[0], 503, count=10)
    publication_id = publish_webpush(gateway, insee)
    stack.deliver("webpush")
    chunks = queued(stack, publication_id)
    assert len(stack.run_deliver("webpush", chunks)) == 1  # chunk 0: one recipient to retry
    _, delivery = delivery_of(gateway, insee, publication_id)
    # chunk 1 completed; chunk 0 reached one of its two recipients, counted when it completes
    assert (delivery["status"], delivery["recipients"]) == ("sending", {"total": 3, "sent": 1, "failed": 0})
    (stuck,) = [m for m in chunks if Stack.fanout_message(m).chunk == 0]
    for receipt in stack.receipts.pop("webpush"):  # the chunk's message: dead-lettered instead (below)
        aws.sqs().delete_message(QueueUrl=stack.mapping("webpush").queue_url, ReceiptHandle=receipt)
    mapping = dead_letter_mapping(stack, "webpush")
    aws.sqs().send_message(QueueUrl=mapping.queue_url, MessageBody=stuck["Body"])
    sandbox.clear()

    assert read_dead_letters(stack, "webpush", dead_letters(mapping)) == []
    assert reached(sandbox) == []  # the pending recipient is not tried again
    shown, delivery = delivery_of(gateway, insee, publication_id)
    assert delivery["status"] == "sent"
    assert delivery["recipients"] == {"total": 3, "sent": 2, "failed": 1}
    assert shown["status"] == "published"
    assert webpush_billed(table, insee) == 2


def test_a_dead_retraction_leaves_the_post_with_the_reason(
    gateway: Gateway,
    stack: Stack,
    commune: str,  # noqa: F811
    providers: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider(providers, monkeypatch)
    deletion = providers.delete(f"{STATUSES}/100").respond(200, json={})
    created = publish(gateway, commune, channels=["mastodon"])
    assert stack.deliver("mastodon") == []
    path = f"/v1/publications/{created['id']}"
    assert gateway.call("DELETE", path, commune).status in (200, 202)
    retraction = stack.receive("mastodon")
    assert Stack.fanout_message(retraction).action == "retract"
    aws.sqs().delete_message(QueueUrl=stack.mapping("mastodon").queue_url, ReceiptHandle=retraction["ReceiptHandle"])
    mapping = dead_letter_mapping(stack, "mastodon")
    aws.sqs().send_message(QueueUrl=mapping.queue_url, MessageBody=retraction["Body"])

    assert read_dead_letters(stack, "mastodon", dead_letters(mapping)) == []
    mastodon = gateway.call("GET", path, commune).json["deliveries"]["mastodon"]
    assert mastodon["status"] == "sent"  # the post may still be there: the mairie is told
    assert mastodon["error"]["code"] == "retract_failed"
    assert mastodon["error"]["message"].startswith("Le retrait a été abandonné après 5 essais")
    assert deletion.call_count == 0
