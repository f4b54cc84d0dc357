"""`make soak`: 1,000 publications from 10 communes over 6 channels through the local stack while everything
goes wrong.

The sandbox answers 20 % of the channels' write requests 5xx, holds 5 % past the client's timeout (then
creates the post anyway, as a slow provider does), and starts bursts of 429; deliver workers are killed
between the provider's answer and the status write (their SQS batch comes back). At the end, accounting:

- every publication and every delivery is in a final state;
- no post twice in the sandbox (per publication and provider), and every `sent` delivery has its post;
- the usage lines (what the commune is billed) match the posts the sandbox accepted;
- nothing sits in a channel's DLQ unless its delivery is reported `failed`. Nobody redrives: each channel's
  deliver function reads its own DLQ (the DeadLetters mapping) and settles what a worker killed on the last
  receive, or a last attempt without answer, left there (`sent` when the post is found on the provider, else
  `failed`); the soak counts those readings.

The last line reads `lost: N, duplicated: N, publications: N, deliveries: N`; the exit status is 0 only when
nothing was lost, duplicated or mis-billed. Loopback only, bounded in time (--deadline, 30 minutes by
default: on two cores the local stack delivers a few posts a second); knobs shortened for the run: retry
base 1 s, claim lease 15 s, HTTP timeout 2 s, queue and dead-letter queue visibility 20 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

CHANNELS = ("webhook", "mastodon", "facebook", "x", "bluesky", "wordpress")
FINAL_DELIVERIES = {"sent", "failed", "skipped"}
FINAL_PUBLICATIONS = {"published", "partially_published", "failed"}
KNOBS = {
    "CRIEUR_RETRY_BASE_SECONDS": "1",
    "CRIEUR_LEASE_SECONDS": "15",
    "CRIEUR_HTTP_TIMEOUT_SECONDS": "2",
}
VISIBILITY_SECONDS = 20
"""Longer than the lease: a crashed worker's delivery can be claimed again when its message comes back."""
TOKEN = re.compile(r"\[soak-([0-9a-f]{6})-(\d{4})\]")

Pair = tuple[str, str]
"""(publication id, channel)"""


# ---------------------------------------------------------------- accounting (pure: tested on its own)


@dataclass
class Accounting:
    publications: int
    deliveries: int
    not_final: list[Pair] = field(default_factory=list)
    """Deliveries (or publications, channel "*") not in a final state at the end: lost."""
    sent_without_post: list[Pair] = field(default_factory=list)
    """Reported sent, but the provider has no post: lost."""
    dlq_unreported: list[Pair] = field(default_factory=list)
    """In a dead-letter queue while the delivery does not say failed: lost."""
    duplicates: dict[Pair, int] = field(default_factory=dict)
    """Posts beyond the first, per publication and provider: duplicated."""
    posted_not_sent: list[Pair] = field(default_factory=list)
    """The provider has the post, the commune is told it failed."""
    unbilled: list[Pair] = field(default_factory=list)
    billed_without_post: list[Pair] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return len(self.not_final) + len(self.sent_without_post) + len(self.dlq_unreported)

    @property
    def duplicated(self) -> int:
        return sum(self.duplicates.values())

    @property
    def mismatched(self) -> int:
        return len(self.posted_not_sent) + len(self.unbilled) + len(self.billed_without_post)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.mismatched == 0

    def detail(self) -> str:
        def some(pairs: Iterable[Pair]) -> str:
            shown = [f"{publication}/{channel}" for publication, channel in list(pairs)[:5]]
            return f" ({', '.join(shown)}…)" if shown else ""

        return "\n".join(
            [
                f"not final: {len(self.not_final)}{some(self.not_final)}",
                f"sent without a post: {len(self.sent_without_post)}{some(self.sent_without_post)}",
                f"in a DLQ, not reported failed: {len(self.dlq_unreported)}{some(self.dlq_unreported)}",
                f"duplicate posts: {self.duplicated}{some(self.duplicates)}",
                f"posted but reported failed: {len(self.posted_not_sent)}{some(self.posted_not_sent)}",
                f"posted but not billed: {len(self.unbilled)}{some(self.unbilled)}",
                f"billed without a post: {len(self.billed_without_post)}{some(self.billed_without_post)}",
            ]
        )

    def last_line(self) -> str:
        return (
            f"lost: {self.lost}, duplicated: {self.duplicated}, "
            f"publications: {self.publications}, deliveries: {self.deliveries}"
        )


def account(
    publications: dict[str, tuple[str, dict[str, str]]],
    posts: Counter[Pair],
    billed: Counter[Pair],
    dead_letters: Iterable[Pair],
) -> Accounting:
    """publications: id → (status, {channel: delivery status}); posts: what each provider accepted (not a
    replay) per publication; billed: usage lines per delivery; dead_letters: the messages left in DLQs."""
    result = Accounting(len(publications), sum(len(deliveries) for _, deliveries in publications.values()))
    for publication_id, (status, deliveries) in publications.items():
        if status not in FINAL_PUBLICATIONS:
            result.not_final.append((publication_id, "*"))
        for channel, delivery in deliveries.items():
            pair = (publication_id, channel)
            posted = posts.get(pair, 0)
            if delivery not in FINAL_DELIVERIES:
                result.not_final.append(pair)
                continue  # still on its way: its post, bill and status are not comparable yet
            if delivery == "sent" and posted == 0:
                result.sent_without_post.append(pair)
            if delivery != "sent" and posted:
                result.posted_not_sent.append(pair)
            if posted > 1:
                result.duplicates[pair] = posted - 1
            if posted and not billed.get(pair):
                result.unbilled.append(pair)
            if billed.get(pair) and not posted:
                result.billed_without_post.append(pair)
    for pair in dead_letters:
        deliveries = publications.get(pair[0], ("", {}))[1]
        if deliveries.get(pair[1]) != "failed":
            result.dlq_unreported.append(pair)
    return result


def accepted_posts(received: Iterable[dict[str, Any]], ids: dict[str, str], run: str) -> Counter[Pair]:
    """The distinct posts each provider holds per publication: accepted writes (2xx, not answered from an
    idempotency key), told apart by the provider's id for them (a WordPress update of the post found by its
    slug is the same post). A post is recognised by the `[soak-<run>-<n>]` token of its title; `ids` maps
    n → publication id."""
    posts: dict[Pair, set[str]] = {}
    for index, item in enumerate(received):
        if item["method"] != "POST" or not 200 <= item["status"] < 300 or item["duplicate"]:
            continue
        for found in TOKEN.finditer(json.dumps(item["body"], ensure_ascii=False)):
            if found.group(1) == run and found.group(2) in ids:
                pair = (ids[found.group(2)], item["channel"])
                posts.setdefault(pair, set()).add(str(item["id"]) if item["id"] else f"request {index}")
                break
    return Counter({pair: len(found) for pair, found in posts.items()})


# ---------------------------------------------------------------- the run


class Quiet:
    """The stack's console: counts injected crashes and keeps the logs out of the way (or in a file)."""

    def __init__(self, log_path: str | None) -> None:
        self.crashes = 0
        self.dead_letters = 0
        """Dead letters read by the deliver functions (crieur.delivery logs each)."""
        self._lock = threading.Lock()
        self._file = open(log_path, "w", encoding="utf-8") if log_path else None  # noqa: SIM115

    def __call__(self, label: str, line: str) -> None:
        with self._lock:
            if "CRASH injected" in line:
                self.crashes += 1
            if "dead letter received" in line:
                self.dead_letters += 1
            if self._file is not None:
                self._file.write(f"{label} | {line}\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0912, PLR0915 - one scenario, read top to bottom
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--publications", type=int, default=1000)
    parser.add_argument("--deadline", type=float, default=1800.0, help="seconds for the whole run (default 1800)")
    parser.add_argument("--error-rate", type=float, default=0.20)
    parser.add_argument("--timeout-rate", type=float, default=0.05)
    parser.add_argument("--burst-rate", type=float, default=0.01)
    parser.add_argument("--crash-rate", type=float, default=0.02, help="per post accepted by a provider")
    parser.add_argument("--senders", type=int, default=4, help="concurrent publishers")
    parser.add_argument(
        "--communes", type=int, default=10, help="communes sharing the publications (each its own partition)"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log", help="write the stack's logs to this file")
    args = parser.parse_args(argv)
    # A TERM (timeout, CI) stops the stack cleanly too: its `finally` ends every worker process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    deadline = started + args.deadline

    os.environ.update(KNOBS)
    os.environ["CRIEUR_FAULT_CRASH_AFTER_SEND"] = str(args.crash_rate)
    import httpx

    from crieur.billing import billing_month
    from crieur.models import utc_now
    from crieur.store import Store
    from infra.local.sandbox import Chaos
    from infra.local.stack import LocalStack

    console = Quiet(args.log)
    run = uuid.uuid4().hex[:6]
    _say(f"soak {run}: starting the local stack…")
    stack = LocalStack(
        api_port=0, aws_port=0, sandbox_port=0, state_file=None, stack_name=f"crieur-soak-{run}", console=console
    )
    try:
        _lift_account_limits()  # before the sandbox builds its imitations
        stack.start()
        assert stack.deployment is not None
        # moto's server is not thread-safe everywhere: a request that races another is answered 500 and
        # retried by botocore; its traceback would bury the soak's output.
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        sqs = _sqs(stack)
        queues = {}
        for channel in CHANNELS:
            for mapping in (_mapping(stack, channel), _mapping(stack, channel, dead_letters=True)):
                sqs.set_queue_attributes(
                    QueueUrl=mapping.queue_url, Attributes={"VisibilityTimeout": str(VISIBILITY_SECONDS)}
                )
            queues[channel] = _mapping(stack, channel, dead_letters=True).queue_url
        chaos = Chaos(
            channels=frozenset(CHANNELS),
            error_rate=args.error_rate,
            timeout_rate=args.timeout_rate,
            timeout_seconds=float(KNOBS["CRIEUR_HTTP_TIMEOUT_SECONDS"]) + 0.5,
            burst_rate=args.burst_rate,
            seed=args.seed,
        )
        keys = {stack.demo_insee: stack.demo_api_key, **_more_communes(stack, args.communes - 1)}
        stack.sandbox.set_chaos(chaos)
        _say(f"soak {run}: {args.publications} publications from {len(keys)} communes on {', '.join(CHANNELS)}")
        communes = list(keys)
        ids: dict[str, str] = {}
        owner: dict[str, str] = {}
        refused: list[str] = []
        lock = threading.Lock()
        client = httpx.Client(base_url=stack.api_url, timeout=60)

        def publish(number: int) -> None:
            token = f"{number:04d}"
            body = {
                "title": f"[soak-{run}-{token}] Coupure d'eau",
                "body": f"Coupure d'eau rue de la Mairie, avis numéro {number}. Merci de votre compréhension.",
                "channels": list(CHANNELS),
            }
            commune = communes[number % len(communes)]
            headers = {"Idempotency-Key": f"soak-{run}-{token}", "Authorization": f"Bearer {keys[commune]}"}
            for _attempt in range(3):
                try:
                    answer = client.post("/v1/publications", json=body, headers=headers)
                except httpx.HTTPError:
                    continue
                if answer.status_code == 201:
                    with lock:
                        ids[token] = answer.json()["id"]
                        owner[answer.json()["id"]] = commune
                    return
            with lock:
                refused.append(token)

        def progress(final: int | None = None) -> None:
            elapsed = time.monotonic() - started
            extra = f", final {final}/{len(ids)}" if final is not None else ""
            _say(
                f"  {elapsed:5.0f} s: published {len(ids)}/{args.publications}{extra}; faults {dict(chaos.drawn)}, "
                f"crashes {console.crashes}, dead letters read {console.dead_letters}"
            )

        senders = ThreadPoolExecutor(max_workers=args.senders)
        try:
            futures = [senders.submit(publish, number) for number in range(args.publications)]
            while not all(future.done() for future in futures):
                time.sleep(5)
                progress()
        finally:
            senders.shutdown(cancel_futures=True)  # on a TERM too: the publications not sent yet are dropped
        client.close()

        store = Store(stack.outputs["TableName"])
        pending = set(ids.values())
        states: dict[str, tuple[str, dict[str, str]]] = {}
        while pending and time.monotonic() < deadline:
            for publication_id in list(pending):
                publication = store.get_publication(owner[publication_id], publication_id)
                if publication is None:
                    continue
                state: tuple[str, dict[str, str]] = (
                    publication.status,
                    {name: d.status for name, d in publication.deliveries.items()},
                )
                states[publication_id] = state
                if state[0] in FINAL_PUBLICATIONS and set(state[1].values()) <= FINAL_DELIVERIES:
                    pending.discard(publication_id)
            progress(len(ids) - len(pending))
            if pending:
                time.sleep(5)
        stack.sandbox.set_chaos(None)

        for publication_id in ids.values():
            if publication_id not in states:
                states[publication_id] = ("missing", {})
        months = {billing_month(utc_now())}
        billed: Counter[Pair] = Counter()
        for commune, month in ((commune, month) for commune in communes for month in months):
            for line in store.usage_lines(commune, month):
                if line.get("channel") in CHANNELS and line.get("publication_id") in states:
                    billed[(str(line["publication_id"]), str(line["channel"]))] += 1
        # Read after the states and the usage lines: a post comes before its usage line, which comes before
        # the final status, so every delivery final in `states` has its traces in these.
        by_token = {token: publication_id for token, publication_id in ids.items()}
        posts = accepted_posts(stack.sandbox.received(), by_token, run)
        dead = [pair for channel, url in queues.items() for pair in _dead_letters(sqs, url, channel)]
        result = account(states, posts, billed, dead)
        for token in refused:
            result.not_final.append((f"refused publication {token}", "*"))
        print(
            f"soak {run}: {time.monotonic() - started:.0f} s, faults drawn {dict(chaos.drawn)}, "
            f"crashes {console.crashes}"
        )
        statuses = Counter(status for _, deliveries in states.values() for status in deliveries.values())
        print(f"deliveries by status: {dict(statuses)}; DLQ messages: {len(dead)}")
        print(f"dead letters read and settled by the deliver functions: {console.dead_letters}")
        print(result.detail())
        print(result.last_line())
        return 0 if result.ok and not refused else 1
    finally:
        stack.stop()
        console.close()


def _lift_account_limits() -> None:
    """The sandbox has one account per provider, which the soak's communes share; its rate limits are those of
    one account (X: 100 posts per 15 minutes, Mastodon: 300 calls per 5 minutes, Bluesky: 30 sessions per 5
    minutes) and would turn the soak into hours of waiting. Lifted for the soak, whose 429 bursts stand for
    them; `make run` and the tests keep them."""
    from infra.local import sandbox
    from infra.local.imitations import bluesky, x

    sandbox.RATE_LIMIT = 10**9
    x.RATE_LIMITS = dict.fromkeys(x.RATE_LIMITS, 10**9)
    bluesky.SESSION_LIMIT = (10**9, 300)
    bluesky.WRITE_LIMIT = (10**9, 3600)
    bluesky.GLOBAL_LIMIT = (10**9, 300)


def _more_communes(stack: Any, count: int) -> dict[str, str]:
    """`count` more communes (INSEE → API key) with the soak's channels, on the sandbox as the demo's are."""
    import secrets

    import httpx

    from crieur.communes import CommuneService
    from crieur.store import Store

    communes = CommuneService(Store(stack.outputs["TableName"]))
    token = secrets.token_urlsafe(32)
    stack.sandbox.register_mastodon_token(token)
    bodies: dict[str, dict[str, Any]] = {
        "webhook": {
            "enabled": True,
            "settings": {"url": stack.sandbox.webhook_url("demo")},
            "credentials": {"secret": stack.webhook_secret},
        },
        "mastodon": {
            "enabled": True,
            "settings": {"instance_url": stack.sandbox.mastodon_url()},
            "credentials": {"access_token": token},
        },
    }
    for imitation in stack.sandbox.imitations.values():
        body = imitation.demo_channel()
        if body is not None:
            bodies[imitation.channel] = body
    keys = {}
    for number in range(count):
        insee = f"35{number + 1:03d}"
        communes.create_commune(insee, f"Commune d'essai {number + 1}")
        keys[insee] = communes.create_key(insee).key
        with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {keys[insee]}"}) as client:
            for channel in CHANNELS:
                answer = client.put(f"/v1/channels/{channel}", json=bodies[channel], timeout=60)
                if answer.status_code != 200:
                    raise RuntimeError(f"{insee} {channel}: {answer.status_code} {answer.text}")
    return keys


def _sqs(stack: Any) -> Any:
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=stack.aws_endpoint,
        region_name=stack.region,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto takes any credentials
    )


def _mapping(stack: Any, channel: str, *, dead_letters: bool = False) -> Any:
    """The channel's queue mapping, or (`dead_letters`) its dead-letter queue's."""
    function = next(
        f
        for f in stack.deployment.functions.values()
        if f.logical_id.endswith("DeliverFunction") and f.environment.get("CHANNEL") == channel
    )
    dead_letter_arn = function.environment["CRIEUR_DEAD_LETTER_QUEUE_ARN"]
    return next(
        m
        for m in stack.deployment.event_source_mappings
        if m.function == function.name and (m.queue_arn == dead_letter_arn) is dead_letters
    )


def _dead_letters(sqs: Any, url: str, channel: str, visibility: int = 300) -> list[Pair]:
    found: list[Pair] = []
    seen: set[str] = set()
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=visibility).get(
            "Messages", []
        )
        if not batch or all(message["MessageId"] in seen for message in batch):
            return found
        for message in batch:
            if message["MessageId"] in seen:
                continue
            seen.add(message["MessageId"])
            body = json.loads(message["Body"])
            found.append((str(body.get("publication_id")), channel))


if __name__ == "__main__":
    sys.exit(main())
