"""AWS calls per publication, counted with botocore's `before-call` event on every client the code creates.

Phases, in one provisioned world (benchmarks.world): a publication through the API (authorizer + api),
each channel's delivery of it, a scheduled publication released by the `release` function, and one
weather tick. Counted in a warm container (a first publication warms caches: the price list, decrypted
credentials, clients), as most invocations are; the cold figures are in the JSON too.

Budgets, as ARCHITECTURE.md §8 states them: "a publish costs at most one transaction and one SNS publish; a
delivery at most a claim, a result write and cached parameter reads". Counted in a warm container, where a
cached read costs nothing: every call made there counts, reads included (a read still made is not cached).
A release is a publish. A delivery's outputs are not counted against it: the website channel's S3 feeds are
what it delivers (like another channel's provider call), and SQS messages are what it hands on (status events,
chunk messages); they are listed on their own row.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from benchmarks import Row, row
from benchmarks.moto import function_named
from benchmarks.world import World, world

NAME = "aws_calls"
PUBLISH_BUDGET = Counter({"dynamodb.TransactWriteItems": 1, "sns.Publish": 1})
"""§8: a publish costs at most one transaction and one SNS publish."""
DELIVERY_BUDGET = 2
"""§8: a claim and a result write; cached parameter reads (price list, channel settings, decrypted credentials)
are free, so none is left in a warm container."""
OUTPUTS = ("s3.", "sqs.")
"""What a delivery produces rather than costs: the website's feeds, status events and chunk messages."""


@dataclass
class Phase:
    """What one step cost: AWS calls by `service.Operation`, invocations and their wall time in this process."""

    calls: Counter[str] = field(default_factory=Counter)
    invocations: int = 0
    seconds: float = 0.0
    transact_items: int = 0
    """Items written by TransactWriteItems calls (each costs twice a plain write in DynamoDB)."""

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def per_invocation(self, calls: Counter[str] | None = None) -> float:
        return sum((self.calls if calls is None else calls).values()) / max(1, self.invocations)

    def costs(self) -> Counter[str]:
        """The calls a delivery's budget counts (its outputs left out)."""
        return Counter({op: n for op, n in self.calls.items() if not op.startswith(OUTPUTS)})

    def outputs(self) -> Counter[str]:
        return self.calls - self.costs()


class CallCounter:
    """Counts the calls made while a label is set (inside a function's invocation), per label."""

    def __init__(self) -> None:
        self.label: str | None = None
        self.phases: dict[str, Phase] = {}

    def before_call(self, event_name: str, params: dict[str, Any] | None = None, **_: Any) -> None:
        if self.label is None:
            return
        _, service, operation = event_name.split(".", 2)
        phase = self.phases.setdefault(self.label, Phase())
        phase.calls[f"{service}.{operation}"] += 1
        phase.transact_items += len((params or {}).get("TransactItems") or [])

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Every botocore client created meanwhile reports its calls here (crieur.aws, powertools, boto3)."""
        import botocore.session

        original = botocore.session.Session.create_client
        counter = self

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            client.meta.events.register("before-call", counter.before_call)
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
        try:
            yield
        finally:
            botocore.session.Session.create_client = original  # type: ignore[method-assign]

    def wrap(self, built: World, labels: dict[str, str], prefix: str) -> None:
        """Labels each invocation `prefix` + the function's label, timing it."""
        invoke = type(built.functions).invoke

        def counted(name: str, event: dict[str, Any]) -> Any:
            label = f"{prefix}{labels[name]}"
            phase = self.phases.setdefault(label, Phase())
            self.label = label
            started = time.perf_counter()
            try:
                return invoke(built.functions, name, event)
            finally:
                phase.seconds += time.perf_counter() - started
                phase.invocations += 1
                self.label = None

        built.functions.invoke = counted  # type: ignore[method-assign]


def _labels(built: World) -> dict[str, str]:
    labels = {}
    for function in built.deployment.functions.values():
        channel = function.environment.get("CHANNEL")
        labels[function.name] = (
            f"deliver {channel}" if channel else function.logical_id.removesuffix("Function").lower()
        )
    return labels


def _deliver_all(built: World) -> None:
    for channel in built.channels:
        messages = built.queued(channel)
        if messages:
            built.deliver(channel, messages)


@cache
def measure() -> dict[str, Phase]:
    """Phases keyed `cold …` (first publication), `warm …` (the second, release, weather) and `released …` (the
    deliveries of the released publication, whose message does not carry it)."""
    counter = CallCounter()
    with counter.installed(), world() as built:
        labels = _labels(built)
        for prefix, title in (("cold ", "Première mesure"), ("warm ", "Seconde mesure")):
            counter.wrap(built, labels, prefix)
            built.publish(title)
            _deliver_all(built)
        later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        counter.wrap(built, labels, "schedule ")
        scheduled = built.publish("Mesure programmée", publish_at=later)
        counter.wrap(built, labels, "warm ")
        release = function_named(built.deployment, "ReleaseFunction")
        event = _schedule_input(built, scheduled["id"])  # what EventBridge Scheduler hands to `release`
        if not built.functions.invoke(release.name, event)["released"]:
            raise RuntimeError("release did not release the scheduled publication")
        counter.wrap(built, labels, "released ")
        _deliver_all(built)
        counter.wrap(built, labels, "warm ")
        weather = function_named(built.deployment, "WeatherFunction")
        built.functions.invoke(weather.name, {"source": "aws.scheduler"})
    return counter.phases


def _schedule_input(built: World, publication_id: str) -> dict[str, Any]:
    from crieur import aws

    group = built.deployment.resources["ScheduleGroup"].ref
    schedule = aws.scheduler().get_schedule(Name=f"pub-{publication_id}", GroupName=group)
    event: dict[str, Any] = json.loads(schedule["Target"]["Input"])
    return event


def _shown(phase: Phase, calls: Counter[str] | None = None) -> str:
    """Calls per invocation, by operation."""
    each = max(1, phase.invocations)
    return ", ".join(f"{op} ×{n / each:g}" for op, n in sorted((phase.calls if calls is None else calls).items()))


def _publish_like(label: str, phase: Phase) -> list[Row]:
    """Publish and release: §8's one transaction and one SNS publish, and nothing else in a warm container."""
    each = max(1, phase.invocations)
    ok = not phase.calls - Counter({op: n * each for op, n in PUBLISH_BUDGET.items()})
    return [
        row(
            NAME,
            f"{label}: calls",
            phase.per_invocation(),
            "calls",
            budget=f"{PUBLISH_BUDGET.total()}: 1 TransactWriteItems + 1 SNS Publish, no other call",
            ok=ok,
        ),
        row(NAME, f"{label}: detail", _shown(phase)),
    ]


def rows_from(phases: dict[str, Phase]) -> list[Row]:
    rows = _publish_like("publish (api)", phases["warm api"])
    authorizer = phases.get("warm authorizer")
    if authorizer is not None:  # not cached by API Gateway: a revoked key stops at once
        rows.append(row(NAME, "authorizer (each request)", authorizer.per_invocation(), "calls"))
    rows += _publish_like("release", phases["warm release"])
    for label in sorted(label for label in phases if label.startswith("warm deliver ")):
        phase = phases[label]
        per_delivery = phase.per_invocation(phase.costs())
        channel = label.removeprefix("warm deliver ")
        rows.append(
            row(
                NAME,
                f"deliver {channel}",
                per_delivery,
                "calls",
                budget=f"{DELIVERY_BUDGET}: claim + result write (+ cached parameter reads: none when warm)",
                ok=per_delivery <= DELIVERY_BUDGET,
            )
        )
        rows.append(row(NAME, f"deliver {channel}: detail", _shown(phase, phase.costs())))
        if phase.outputs():
            rows.append(row(NAME, f"deliver {channel}: outputs (not counted)", _shown(phase, phase.outputs())))
    released = [phase for label, phase in phases.items() if label.startswith("released deliver ")]
    if released:
        phase = Phase(
            calls=sum((phase.costs() for phase in released), Counter()),
            invocations=sum(phase.invocations for phase in released),
        )
        rows.append(
            row(
                NAME,
                "deliver, after a release (every channel)",
                phase.per_invocation(),
                "calls",
                budget=f"{DELIVERY_BUDGET}: claim + result write (+ cached parameter reads: none when warm)",
                ok=phase.per_invocation() <= DELIVERY_BUDGET,
            )
        )
        rows.append(row(NAME, "deliver, after a release: detail", _shown(phase)))
    if "warm weather" in phases:
        rows.append(row(NAME, "weather tick (no alert)", phases["warm weather"].total, "calls"))
        rows.append(row(NAME, "weather tick: detail", _shown(phases["warm weather"])))
    return rows


def run() -> list[Row]:
    return rows_from(measure())
