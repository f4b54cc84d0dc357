"""One Web Push notification to 10,000 browsers, against the sandbox's push service imitation over loopback HTTP.

The imitation runs in this process (it checks each VAPID header and decrypts each message as a browser would);
the senders run in worker processes, as Lambda invocations would, each with its own HTTP client:
`chunked`: the real `WebpushChannel.send_chunk` over every chunk of `chunk_size` subscriptions, the chunks spread
over `INVOCATIONS` parallel invocations (the deliver function's default MaxConcurrency), each chunk sending
concurrently; `sequential`: one invocation that encrypts and POSTs to the subscriptions one after another.
The store is an in-memory stand-in holding the subscriptions (the benchmark times the pushes, not DynamoDB).

On loopback a push costs no network time: both senders are bound by the imitation (one Python process
answering every push), so the loopback speed-up says little. A real push service answers in tens of
milliseconds, which a one-by-one sender waits for each time: the second run adds that wait to every answer
(the sandbox's delay fault, `LATENCY_SECONDS`), the sequential sender timed on a sample and extrapolated.

    .venv/bin/python -m benchmarks.bench_webpush_fanout      # CRIEUR_BENCH_WEBPUSH_SUBSCRIBERS=2000 for a quick run
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

from benchmarks import Row, row
from crieur.channels.webpush import (
    Subscription,
    WebpushChannel,
    WebpushCredentials,
    WebpushSettings,
    b64url_decode,
    encrypt,
    endpoint_hash,
    load_vapid_key,
    vapid_authorization,
)
from crieur.models import Publication
from crieur.outbound import guarded_client
from infra.local.imitations.webpush import WebpushImitation
from infra.local.sandbox import Sandbox

NAME = "webpush_fanout"
SUBSCRIBERS = int(os.environ.get("CRIEUR_BENCH_WEBPUSH_SUBSCRIBERS", "10000"))
INVOCATIONS = 5
"""Parallel deliver invocations (infra/channel.yaml MaxConcurrency's default)."""
BUDGET_SECONDS = 60.0
"""Issue 4: 10,000 subscribers take seconds, not minutes (on this machine: 2 shared cores, sender and imitation)."""
COMMUNE = "35238"
RECEIVES = 5
"""A chunk message's receives (infra/channel.yaml maxReceiveCount): its recipients to retry go again on the next."""
LATENCY_SECONDS = 0.02
"""A push service's answer time from a Lambda in Paris (FCM, Mozilla, Apple: tens of milliseconds)."""
SAMPLE = min(SUBSCRIBERS, 500)
"""Pushes the sequential sender is timed on when each answer takes LATENCY_SECONDS (then extrapolated)."""


class MemorySubscriptions:
    """The part of the store `send_chunk` reads and writes, in memory."""

    def __init__(self, subscriptions: list[Subscription]) -> None:
        self.by_id = {subscription.id: subscription for subscription in subscriptions}

    def webpush_subscriptions_among(self, commune: str, subscription_ids: list[str]) -> list[Subscription]:
        return [self.by_id[item] for item in subscription_ids if item in self.by_id]

    def delete_webpush_subscription(self, commune: str, subscription_id: str) -> bool:
        return self.by_id.pop(subscription_id, None) is not None


def publication() -> Publication:
    return Publication.model_validate(
        {
            "id": "pub_01JBENCHWEBPUSH",
            "commune": COMMUNE,
            "status": "publishing",
            "title": "Coupure d'eau",
            "body": "Rue de l'Église, mardi de 9 h à 12 h : prévoyez des réserves.",
            "links": [{"url": "https://www.example.fr/eau"}],
            "urgency": "high",
            "created_at": datetime.now(UTC),
        }
    )


def channel(demo: dict[str, Any], subscriptions: list[Subscription]) -> WebpushChannel:
    adapter = WebpushChannel(
        WebpushSettings.model_validate(demo["settings"]),
        WebpushCredentials.model_validate(demo["credentials"]),
        guarded_client(),
    )
    adapter.store = MemorySubscriptions(subscriptions)  # type: ignore[assignment]
    return adapter


def invocation(demo: dict[str, Any], chunks: list[list[Subscription]]) -> dict[str, int]:
    """One deliver invocation handed these chunk messages: render, then `send_chunk` each chunk in turn; the
    recipients a chunk must retry are sent again at once, as the chunk's next receive would (`retried`)."""
    adapter = channel(demo, [subscription for chunk in chunks for subscription in chunk])
    results: dict[str, int] = {}
    for chunk in chunks:
        rendered = adapter.render(publication())
        pending = [subscription.id for subscription in chunk]
        for receive in range(1, RECEIVES + 1):
            outcomes = adapter.send_chunk(rendered, pending)
            pending = [outcome.recipient for outcome in outcomes if outcome.result == "retry"]
            for outcome in outcomes:
                result = "retried" if outcome.result == "retry" and receive < RECEIVES else outcome.result
                results[result] = results.get(result, 0) + 1
            if not pending:
                break
    adapter.http.close()
    return results


def one_by_one(demo: dict[str, Any], subscriptions: list[Subscription]) -> dict[str, int]:
    """The sequential sender: the same encryption and VAPID header, one POST after another, one connection."""
    adapter = channel(demo, subscriptions)
    payload = adapter.render(publication()).payload
    key = load_vapid_key(adapter.credentials.vapid_private_key)
    plaintext = json.dumps(payload["message"], ensure_ascii=False, separators=(",", ":")).encode()
    authorization = vapid_authorization(key, subscriptions[0].endpoint, adapter.settings.vapid_subject, time.time())
    headers = {
        "TTL": str(payload["ttl"]),
        "Urgency": str(payload["urgency"]),
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
        "Authorization": authorization,
    }
    results: dict[str, int] = {}
    with adapter.http as http:
        for subscription in subscriptions:
            body = encrypt(plaintext, b64url_decode(subscription.p256dh), b64url_decode(subscription.auth))
            status = http.post(subscription.endpoint, content=body, headers=headers).status_code
            outcome = "delivered" if status == 201 else f"status {status}"
            results[outcome] = results.get(outcome, 0) + 1
    return results


def warm(_: int) -> int:
    """Starts a worker process (its imports), as a warm Lambda container is."""
    return os.getpid()


def subscribe(imitation: WebpushImitation, count: int) -> list[Subscription]:
    subscriptions = []
    for _ in range(count):
        browser = imitation.new_subscription()
        endpoint = str(browser["endpoint"])
        keys = browser["keys"]
        subscriptions.append(Subscription(endpoint_hash(endpoint), endpoint, keys["p256dh"], keys["auth"], ()))
    return sorted(subscriptions, key=lambda subscription: subscription.id)


def timed(pool: ProcessPoolExecutor, work: list[tuple[Any, ...]], target: Any) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    totals: dict[str, int] = {}
    for results in pool.map(target, *zip(*work, strict=True)):
        for outcome, count in results.items():
            totals[outcome] = totals.get(outcome, 0) + count
    return time.perf_counter() - started, totals


def run() -> list[Row]:
    os.environ["CRIEUR_ALLOW_PRIVATE_TARGETS"] = "1"  # the imitation listens on loopback (inherited by the workers)
    sandbox = Sandbox(port=0)
    sandbox.start()
    try:
        imitation = sandbox.imitations["/webpush"]
        assert isinstance(imitation, WebpushImitation)
        demo = imitation.demo_channel()
        subscriptions = subscribe(imitation, SUBSCRIBERS)
        size = WebpushChannel.chunk_size
        chunks = [subscriptions[start : start + size] for start in range(0, len(subscriptions), size)]
        shares = [chunks[index::INVOCATIONS] for index in range(INVOCATIONS)]  # as the queue's pollers spread them
        with ProcessPoolExecutor(INVOCATIONS, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(warm, range(INVOCATIONS * 2)))
            loopback = timed(pool, [(demo, share) for share in shares], invocation)
            loopback_sequential = timed(pool, [(demo, subscriptions)], one_by_one)
            # Every answer from now on (retries included) waits LATENCY_SECONDS.
            sandbox.inject_fault("webpush", delay_seconds=LATENCY_SECONDS, count=2 * (SUBSCRIBERS + SAMPLE))
            latency = timed(pool, [(demo, share) for share in shares], invocation)
            latency_sample = timed(pool, [(demo, subscriptions[:SAMPLE])], one_by_one)
        shown = len(imitation.received())
    finally:
        sandbox.stop()
    latency_sequential = (latency_sample[0] / SAMPLE * SUBSCRIBERS, latency_sample[1])
    ms = f"{LATENCY_SECONDS * 1000:g} ms"
    return [
        row(NAME, "subscriptions", SUBSCRIBERS, "browsers"),
        row(NAME, "chunks", len(chunks), f"of {size}"),
        row(NAME, "parallel invocations", INVOCATIONS, "invocations"),
        *scenario("loopback", loopback, loopback_sequential, SUBSCRIBERS),
        *scenario(f"{ms} answers", latency, latency_sequential, SAMPLE, sampled=True),
        row(NAME, "decrypted by the imitation", shown, "notifications", ok=shown >= 3 * SUBSCRIBERS + SAMPLE),
    ]


def scenario(
    label: str,
    chunked: tuple[float, dict[str, int]],
    sequential: tuple[float, dict[str, int]],
    sequential_pushes: int,
    *,
    sampled: bool = False,
) -> list[Row]:
    """The rows of one run: both senders' seconds for every subscription, and the speed-up."""
    chunked_seconds, chunked_results = chunked
    sequential_seconds, sequential_results = sequential
    delivered = chunked_results.get("delivered", 0)
    reached = sequential_results.get("delivered", 0)
    how = f"measured on {sequential_pushes}, extrapolated" if sampled else "one by one"
    return [
        row(NAME, f"{label}: chunked, delivered", delivered, "notifications", ok=delivered == SUBSCRIBERS),
        row(
            NAME,
            f"{label}: chunked, time to fan out",
            round(chunked_seconds, 2),
            "s",
            budget=BUDGET_SECONDS,
            ok=chunked_seconds <= BUDGET_SECONDS,
        ),
        row(NAME, f"{label}: chunked, throughput", round(delivered / chunked_seconds), "notifications/s"),
        row(NAME, f"{label}: chunked, sent again (retried)", chunked_results.get("retried", 0), "notifications"),
        row(NAME, f"{label}: sequential, delivered", reached, "notifications", ok=reached == sequential_pushes),
        row(NAME, f"{label}: sequential, time ({how})", round(sequential_seconds, 2), "s"),
        row(NAME, f"{label}: chunked speed-up over sequential", round(sequential_seconds / chunked_seconds, 2), "x"),
    ]


if __name__ == "__main__":
    for item in run():
        print(f"{item['metric']:<60} {item['value']!s:>10} {item['unit']}")
