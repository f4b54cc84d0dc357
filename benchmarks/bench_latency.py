"""End-to-end latency through the local stack: POST /v1/publications → the post in every channel's sandbox.

The local stack (`make run`'s: moto, each function in its own processes, the SQS pollers, the sandbox, all on
loopback) takes PUBLICATIONS publications from SENDERS concurrent clients on the channels below. A
publication's latency runs from the moment its POST starts to the moment the last of its channels' posts
reached the sandbox (the sandbox's own timestamp); p50/p95/p99 over all of them, and the throughput from the
first POST to the last post. Everything shares this machine's cores, moto included: on AWS each function
scales on its own, so these figures bound the pipeline's overhead from above rather than predict it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from benchmarks import Row, percentile, row

NAME = "latency"
PUBLICATIONS = int(os.environ.get("CRIEUR_BENCH_LATENCY_PUBLICATIONS", "200"))
SENDERS = 4
CHANNELS = ("webhook", "mastodon", "facebook", "x", "bluesky", "wordpress", "push")
WAIT_SECONDS = float(os.environ.get("CRIEUR_BENCH_LATENCY_WAIT_S", "600"))
TOKEN = re.compile(r"\[lat-([0-9a-f]{6})-(\d{4})\]")


def _arrivals(received: list[dict[str, object]], run: str) -> dict[str, dict[str, float]]:
    """Token → channel → when its first accepted post reached the sandbox (epoch seconds)."""
    arrivals: dict[str, dict[str, float]] = {}
    for item in received:
        status = item["status"]
        if item["method"] != "POST" or not isinstance(status, int) or not 200 <= status < 300:
            continue
        found = TOKEN.search(json.dumps(item["body"], ensure_ascii=False))
        if found is None or found.group(1) != run:
            continue
        at = datetime.fromisoformat(str(item["at"]).replace("Z", "+00:00")).timestamp()
        channels = arrivals.setdefault(found.group(2), {})
        channel = str(item["channel"])
        channels[channel] = min(at, channels.get(channel, at))
    return arrivals


def run() -> list[Row]:
    import httpx

    from infra.local.stack import LocalStack

    run_id = uuid.uuid4().hex[:6]
    started_at: dict[str, float] = {}
    lock = threading.Lock()
    with LocalStack(
        api_port=0,
        aws_port=0,
        sandbox_port=0,
        state_file=None,
        stack_name=f"crieur-latency-{run_id}",
        console=lambda label, line: None,
    ) as stack:
        client = httpx.Client(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.demo_api_key}"}, timeout=60
        )

        def publish(number: int) -> None:
            token = f"{number:04d}"
            body = {
                "title": f"[lat-{run_id}-{token}] Travaux rue de la Mairie",
                "body": "La rue de la Mairie sera fermée mardi de 8 h à 12 h. https://www.example.fr/travaux",
                "channels": list(CHANNELS),
            }
            began = time.time()
            answer = client.post("/v1/publications", json=body)
            if answer.status_code == 201:
                with lock:
                    started_at[token] = began

        first = time.time()
        with ThreadPoolExecutor(max_workers=SENDERS) as senders:
            list(senders.map(publish, range(PUBLICATIONS)))
        client.close()
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            arrivals = _arrivals(stack.sandbox.received(), run_id)
            complete = {token: at for token, at in arrivals.items() if token in started_at and len(at) == len(CHANNELS)}
            if len(complete) == len(started_at) or time.monotonic() > deadline:
                break
            time.sleep(1)
    latencies = [max(complete[token].values()) - started_at[token] for token in complete]
    reached = {channel: sum(channel in at for at in arrivals.values()) for channel in CHANNELS}
    rows = [
        row(NAME, "publications", PUBLICATIONS, "", budget=None),
        row(NAME, "channels per publication", len(CHANNELS), ""),
        row(
            NAME,
            "complete (every channel posted)",
            len(complete),
            f"of {PUBLICATIONS}",
            budget=PUBLICATIONS,
            ok=len(complete) == PUBLICATIONS,
        ),
        row(NAME, "posts per channel", ", ".join(f"{channel} {count}" for channel, count in reached.items())),
    ]
    if latencies:
        last = max(max(at.values()) for at in complete.values())
        rows += [
            row(NAME, "p50 publish → all channels sent", percentile(latencies, 0.50), "s"),
            row(NAME, "p95 publish → all channels sent", percentile(latencies, 0.95), "s"),
            row(NAME, "p99 publish → all channels sent", percentile(latencies, 0.99), "s"),
            row(NAME, "throughput", len(complete) / (last - first), "publications/s"),
            row(NAME, "throughput (deliveries)", len(complete) * len(CHANNELS) / (last - first), "posts/s"),
        ]
    return rows
