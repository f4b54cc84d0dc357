"""One SMS alert to 20,000 subscribers, against the sandbox's End User Messaging imitation over loopback HTTP.

The sms channel itself (render, then `send_chunk` per chunk of SmsChannel.chunk_size, each chunk sending
concurrently through crieur.messaging's boto3 client) against the sandbox running in a process of its own (as
the deliver functions and the sandbox run apart in `make run`); its subscribers read from memory: moto's DynamoDB
takes a growing fraction of a second per call on a partition of 20,000 subscribers, which would measure moto
rather than Crieur (the chunk bookkeeping's calls are counted by bench_aws_calls, and the whole path runs in
tests/integration/test_sms_email_channels.py).

- `chunked`: the chunks delivered by as many workers as the template lets the sms queue drive at once
  (MaxConcurrency 2), the account's rate lifted so that the figure is Crieur's own throughput;
- `sequential`: the same SendTextMessage calls one after another, timed on a sample and extrapolated;
- both on bare loopback (CPU-bound: botocore's work per call) and with each answer delayed as AWS's are
  (PROVIDER_LATENCY), where sending concurrently is what makes the difference;
- at the account's real rate (20 parts a second by default) the alert takes `recipients × parts / rate`.

    .venv/bin/python -m benchmarks.bench_sms_fanout     # CRIEUR_BENCH_SMS_SUBSCRIBERS=2000 for a quick run
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, cast

import httpx

from benchmarks import Row, row
from crieur import aws
from crieur.channels.base import RecipientOutcome, RenderedPost
from crieur.channels.sms import DEFAULT_PARTS_PER_SECOND, RATE_VARIABLE, SmsChannel, SmsSettings
from crieur.messaging import SmsGateway
from crieur.models import Publication
from crieur.subscribers import Contact
from infra.local.provision import ROOT

if TYPE_CHECKING:
    from crieur.subscribers import Subscribers

NAME = "sms_fanout"
SUBSCRIBERS = int(os.environ.get("CRIEUR_BENCH_SMS_SUBSCRIBERS", "20000"))
SEQUENTIAL_SAMPLE = 2000
LATENCY_SAMPLE = 200
PROVIDER_LATENCY = 0.04
"""Seconds an End User Messaging answer takes from a Lambda function (same region): what concurrency hides."""
WORKERS = 2
"""The sms queue's MaximumConcurrency in template.yaml: that many chunks are sent at once."""
COMMUNE = "35238"
BUDGET_SECONDS = 120.0
"""Crieur's own time to send the 20,000 SMS to the imitation on this machine (2 shared cores), rate lifted."""
LATENCY_BUDGET_SECONDS = 180.0
"""The same with every answer taking PROVIDER_LATENCY: 16 sends in flight (2 chunks × 8) hide most of it."""
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "eu-west-3",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    RATE_VARIABLE: "1000000",
    "CRIEUR_DELIVER_CONCURRENCY": str(WORKERS),
}


class Directory:
    """The subscribers as the channel reads them (audience, contacts, remove), held in memory."""

    def __init__(self, count: int) -> None:
        self.numbers = {f"sub_{index:06d}": f"+3361{index:07d}" for index in range(count)}

    def audience(self, commune: str, medium: str, category: str) -> list[str]:
        return sorted(self.numbers)

    def contacts(self, commune: str, medium: str, ids: list[str]) -> dict[str, Contact]:
        url = f"http://127.0.0.1:3000/public/{commune}/subscriptions/unsubscribe"
        return {
            identifier: Contact(id=identifier, address=self.numbers[identifier], unsubscribe_url=url)
            for identifier in ids
            if identifier in self.numbers
        }

    def remove(self, commune: str, medium: str, subscriber_id: str, reason: str) -> bool:
        return self.numbers.pop(subscriber_id, None) is not None


SANDBOX = """
import sys
from infra.local.sandbox import Sandbox

box = Sandbox(port=0)
box.start()
print(box.url, flush=True)
sys.stdin.read()  # until the benchmark closes it
box.stop()
"""


@contextmanager
def sandbox() -> Iterator[str]:
    """The sandbox in a process of its own on a free loopback port; this process's SMS client pointed at it."""
    process = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", SANDBOX], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    saved = {name: os.environ.get(name) for name in (*ENVIRONMENT, "CRIEUR_SMS_BASE_URL", "AWS_ENDPOINT_URL")}
    os.environ.update(ENVIRONMENT, CRIEUR_SMS_BASE_URL=f"{url}/sms")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    aws.reset()
    try:
        if not url.startswith("http://"):
            raise RuntimeError("the sandbox did not start")
        yield url
    finally:
        process.stdin.close()
        process.wait(timeout=30)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        aws.reset()


def alert() -> Publication:
    return Publication.model_validate(
        {
            "title": "Vigilance rouge orages",
            "body": "Restez chez vous jusqu’à demain 6 h. Ne vous engagez pas sur les routes inondées.",
            "category": "weather",
            "urgency": "critical",
            "links": [{"url": "https://vigilance.meteofrance.fr/"}],
            "id": "pub_01BENCHSMSFANOUT000000000",
            "commune": COMMUNE,
            "status": "publishing",
            "created_at": datetime.now(UTC),
        }
    )


def chunked(channel: SmsChannel, rendered: RenderedPost) -> tuple[float, list[RecipientOutcome]]:
    audience = channel.audience(rendered)
    size = SmsChannel.chunk_size
    chunks = [audience[start : start + size] for start in range(0, len(audience), size)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WORKERS) as workers:
        outcomes = [
            outcome
            for sent in workers.map(lambda chunk: channel.send_chunk(rendered, chunk), chunks)
            for outcome in sent
        ]
    return time.perf_counter() - started, outcomes


def sequential(rendered: RenderedPost, numbers: list[str]) -> float:
    gateway = SmsGateway()
    started = time.perf_counter()
    for number in numbers:
        gateway.send_text(number, rendered.text or "", sender_id="MAIRIE", transactional=True, ttl_seconds=3600)
    return time.perf_counter() - started


def accepted(http: httpx.Client, url: str) -> int:
    """SMS the imitation accepted (answered 200) since the last count, as its /_sandbox/received list shows."""
    items = http.get(f"{url}/_sandbox/received", params={"channel": "sms"}).json()["items"]
    http.delete(f"{url}/_sandbox/received")
    return sum(1 for item in items if item["status"] == HTTPStatus.OK)


def latency(http: httpx.Client, url: str, count: int, seconds: float) -> None:
    """The imitation's next `count` answers wait `seconds` first, as End User Messaging's own do."""
    answer = http.post(f"{url}/_sandbox/faults", json={"channel": "sms", "count": count, "delay_seconds": seconds})
    answer.raise_for_status()


def scenario(
    label: str, http: httpx.Client, url: str, channel: SmsChannel, rendered: RenderedPost, *, delay: float
) -> list[Row]:
    """Chunked over the whole audience, sequential on a sample; the provider answering after `delay` seconds."""
    numbers = list(cast("Directory", channel.subscribers).numbers.values())
    sample_size = min(SUBSCRIBERS, SEQUENTIAL_SAMPLE if not delay else LATENCY_SAMPLE)
    if delay:
        latency(http, url, SUBSCRIBERS, delay)
    seconds, outcomes = chunked(channel, rendered)
    received = accepted(http, url)
    if delay:
        latency(http, url, sample_size, delay)
    sample = sequential(rendered, numbers[:sample_size])
    accepted(http, url)
    http.delete(f"{url}/_sandbox/faults")
    delivered = sum(1 for outcome in outcomes if outcome.result == "delivered")
    extrapolated = sample / sample_size * SUBSCRIBERS
    ok = delivered == received == SUBSCRIBERS
    budget = BUDGET_SECONDS if not delay else LATENCY_BUDGET_SECONDS
    return [
        row(NAME, f"{label}: SMS accepted by the imitation", received, "SMS", budget=SUBSCRIBERS, ok=ok),
        row(NAME, f"{label}: chunked, time to fan out", round(seconds, 1), "s", budget=budget, ok=seconds <= budget),
        row(NAME, f"{label}: chunked, throughput", round(delivered / seconds) if seconds else 0, "SMS/s"),
        row(NAME, f"{label}: sequential, time ({sample_size} measured)", round(extrapolated, 1), "s"),
        row(
            NAME, f"{label}: chunked speed-up over sequential", round(extrapolated / seconds, 1) if seconds else 0, "x"
        ),
    ]


def run() -> list[Row]:
    with sandbox() as url, httpx.Client(timeout=60) as http:
        channel = SmsChannel(SmsSettings(sender_id="MAIRIE"), None, http)
        channel.subscribers = cast("Subscribers", Directory(SUBSCRIBERS))
        rendered = channel.render(alert())
        rows = [
            row(NAME, "subscribers", SUBSCRIBERS, "recipients"),
            row(NAME, "SMS parts each (GSM-7 once shaped)", rendered.parts or 1, "parts"),
            row(
                NAME,
                f"chunks of {SmsChannel.chunk_size}, {WORKERS} at a time",
                -(-SUBSCRIBERS // SmsChannel.chunk_size),
                "chunks",
            ),
            *scenario("loopback", http, url, channel, rendered, delay=0.0),
            *scenario(f"{PROVIDER_LATENCY * 1000:g} ms provider", http, url, channel, rendered, delay=PROVIDER_LATENCY),
        ]
    seconds = SUBSCRIBERS * (rendered.parts or 1) / DEFAULT_PARTS_PER_SECOND
    return [*rows, row(NAME, f"at the account's {DEFAULT_PARTS_PER_SECOND:g} parts/s", round(seconds), "s")]


if __name__ == "__main__":
    for item in run():
        print(f"{item['metric']:<58} {item['value']!s:>10} {item['unit']}")
