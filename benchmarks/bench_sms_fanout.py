"""One SMS alert to 20,000 subscribers, against the sandbox's End User Messaging imitation over loopback HTTP.

`chunked`: the real path (benchmarks.world: moto, the API, the sms deliver function in-process): the publish
message plans the audience in chunks of SmsChannel.chunk_size, then each chunk message is delivered as Lambda
would hand it over (one per invocation), each chunk sending concurrently. The account's rate limit is lifted
(CRIEUR_SMS_PARTS_PER_SECOND) so that the figure is Crieur's own cost; at the account's real rate (20 parts a
second by default) the alert takes `recipients × parts / rate` seconds, reported too.
`sequential`: the same SendTextMessage calls one after another, without chunks nor threads, timed on a sample
and extrapolated to the audience.

    .venv/bin/python -m benchmarks.bench_sms_fanout      # CRIEUR_BENCH_SMS_SUBSCRIBERS=2000 for a quick run
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from benchmarks import Row, row
from benchmarks.world import INSEE, World, world
from crieur.channels.sms import DEFAULT_PARTS_PER_SECOND, RATE_VARIABLE
from crieur.messaging import SmsGateway
from crieur.render.sms import count_parts
from crieur.store import Store
from crieur.subscribers import ALL_CATEGORIES, KmsSubscriberKeys, SubscriberRecord, Subscribers, subscriber_id
from infra.local.imitations.sms import SmsImitation

NAME = "sms_fanout"
SUBSCRIBERS = int(os.environ.get("CRIEUR_BENCH_SMS_SUBSCRIBERS", "20000"))
SEQUENTIAL_SAMPLE = min(SUBSCRIBERS, 1000)
UNLIMITED = "1000000"
BUDGET_SECONDS = 600.0
"""Crieur's own time to fan the alert out on this machine (2 shared cores), rate limit lifted."""
TITLE = "Vigilance rouge orages"
BODY = "Restez chez vous jusqu'à demain 6 h. Ne vous engagez pas sur les routes inondées."
ALERT: dict[str, Any] = {"body": BODY, "category": "weather", "urgency": "critical", "channels": ["sms"]}


def numbers(count: int) -> list[str]:
    return [f"+3361{index:07d}" for index in range(count)]


def seed(built: World, count: int) -> float:
    """`count` confirmed SMS subscribers of the commune, sealed as crieur.subscribers seals them; seconds taken."""
    started = time.perf_counter()
    outputs = built.deployment.outputs
    store = Store(outputs["TableName"])
    keys = KmsSubscriberKeys(store, outputs["CredentialsKeyArn"], outputs.get("SubscriberLookupKeyArn"))
    service = Subscribers(store, keys)
    now = datetime.now(UTC).isoformat()
    for number in numbers(count):
        lookup = hashlib.sha256(number.encode()).hexdigest()  # the real one is a KMS HMAC: not needed to send
        identifier = subscriber_id(INSEE, lookup)
        unsubscribe = secrets.token_urlsafe(24)
        record = SubscriberRecord(
            id=identifier,
            medium="sms",
            status="confirmed",
            lookup=lookup,
            sealed=service._seal(
                INSEE, "sms", identifier, number, unsubscribe
            ),  # bulk seeding, as subscribe + confirm would
            unsubscribe_hash=hashlib.sha256(unsubscribe.encode()).hexdigest(),
            categories=ALL_CATEGORIES,
            consent_version="bench",
            consent_at=now,
            created_at=now,
            confirmed_at=now,
        )
        store.save_subscriber(INSEE, record, previous_version=None)
    return time.perf_counter() - started


def fan_out(built: World) -> tuple[float, dict[str, Any], int]:
    """Publishes the alert and delivers every message of the sms queue; (seconds, the delivery, invocations)."""
    deliver = next(
        function for function in built.deployment.functions.values() if function.environment.get("CHANNEL") == "sms"
    )
    deliver.environment[RATE_VARIABLE] = UNLIMITED
    started = time.perf_counter()
    publication = built.publish(TITLE, **ALERT)
    invocations = 0
    while messages := built.queued("sms"):
        for message in messages:
            built.deliver("sms", [message])
            invocations += 1
    seconds = time.perf_counter() - started
    shown = json.loads(built.call("GET", f"/v1/publications/{publication['id']}").body)
    return seconds, dict(shown["deliveries"]["sms"]), invocations


def sequential(built: World, count: int, body: str) -> float:
    """Seconds for `count` SendTextMessage calls one after another."""
    gateway = SmsGateway()
    started = time.perf_counter()
    for number in numbers(count):
        gateway.send_text(number, body, sender_id="MAIRIE", transactional=True, ttl_seconds=3600)
    return time.perf_counter() - started


def run() -> list[Row]:
    with world(channels=("sms",)) as built:
        seeding = seed(built, SUBSCRIBERS)
        seconds, delivery, invocations = fan_out(built)
        imitation = built.sandbox.imitations["/sms"]
        assert isinstance(imitation, SmsImitation)
        sent = [message for message in imitation.messages() if message["body"].startswith(TITLE)]
        sample = sequential(built, SEQUENTIAL_SAMPLE, str(sent[0]["body"]) if sent else BODY)
    delivered = len(sent)
    counts = delivery.get("recipients") or {}
    parts = count_parts(sent[0]["body"]) if sent else 1
    at_rate = SUBSCRIBERS * parts / DEFAULT_PARTS_PER_SECOND
    extrapolated = sample / SEQUENTIAL_SAMPLE * SUBSCRIBERS
    return [
        row(NAME, "subscribers", SUBSCRIBERS, "recipients"),
        row(NAME, "seeding (not part of the fan-out)", round(seeding, 1), "s"),
        row(NAME, "SMS received by the imitation", delivered, "SMS", budget=SUBSCRIBERS, ok=delivered == SUBSCRIBERS),
        row(NAME, "delivery status", str(delivery["status"]), "", ok=delivery["status"] == "sent"),
        row(NAME, "recipients counted sent", int(counts.get("sent", 0)), "recipients"),
        row(NAME, "deliver invocations (publish + chunks)", invocations, "invocations"),
        row(
            NAME,
            "chunked: time to fan out",
            round(seconds, 1),
            "s",
            budget=BUDGET_SECONDS,
            ok=seconds <= BUDGET_SECONDS,
        ),
        row(NAME, "chunked: throughput", round(delivered / seconds, 1) if seconds else 0, "SMS/s"),
        row(NAME, f"sequential: time (measured on {SEQUENTIAL_SAMPLE}, extrapolated)", round(extrapolated, 1), "s"),
        row(NAME, "sequential: throughput", round(SEQUENTIAL_SAMPLE / sample, 1) if sample else 0, "SMS/s"),
        row(NAME, "chunked speed-up over sequential", round(extrapolated / seconds, 2) if seconds else 0, "x"),
        row(NAME, f"at the account's {DEFAULT_PARTS_PER_SECOND:g} parts/s ({parts} part(s) each)", round(at_rate), "s"),
    ]


if __name__ == "__main__":
    for item in run():
        print(f"{item['metric']:<58} {item['value']!s:>12} {item['unit']}")
