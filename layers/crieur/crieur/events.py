"""Status events for the communes' own endpoints (outbound event webhooks): the port and its SQS adapter.

Whatever emits (the api, release and weather functions, each channel's deliver function) sends at most ONE
SQS message per occurrence, carrying references only (ids, a channel, a reason); the events worker
(functions/events, crieur.eventhooks) reads the commune's endpoints and the publication, signs and posts.
So an endpoint that is down or slow never touches the publish path, and emitting never fails it: a message
that cannot be queued is logged and dropped (`emit`).

Event ids are derived from what happened (the publication's final status, a delivery that failed, the month
a budget was reached), so an occurrence seen twice (a redelivered message after a crash) keeps one id and
the worker sends it once per endpoint; the `webhook-id` it signs with is stable per (event, endpoint).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict

from crieur import aws
from crieur.models import utc_now

logger = Logger(child=True)

EventType = Literal[
    "publication.published",
    "publication.partially_published",
    "publication.failed",
    "delivery.failed",
    "channel.needs_reconnect",
    "usage.budget_reached",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

_FINAL_STATUS_EVENTS: dict[str, EventType] = {
    "published": "publication.published",
    "partially_published": "publication.partially_published",
    "failed": "publication.failed",
}


class Event(BaseModel):
    """One occurrence, as queued: references only; the worker builds the body the endpoints receive."""

    model_config = ConfigDict(extra="ignore")

    id: str
    type: EventType
    commune: str
    occurred_at: datetime
    publication_id: str | None = None
    channel: str | None = None
    data: dict[str, Any] = {}
    """What the store cannot tell the worker later (a reconnection reason, the budget at that moment)."""


class EventBatch(BaseModel):
    """The body of one events-queue message: what one occurrence produced (a delivery that failed and the
    publication it ended, say)."""

    model_config = ConfigDict(extra="ignore")

    events: list[Event]


class Events(Protocol):
    def send(self, events: list[Event]) -> None: ...


class SqsEvents:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, events: list[Event]) -> None:
        aws.sqs().send_message(QueueUrl=self.queue_url, MessageBody=EventBatch(events=events).model_dump_json())


class NoEvents:
    """For code paths built without an events queue (tests, tools): emits nothing."""

    def send(self, events: list[Event]) -> None:
        return None


NO_EVENTS = NoEvents()


def emit(port: Events, events: Iterable[Event | None]) -> bool:
    """Queues what happened in one message; never raises (publishing must not fail for a status event).
    False when there was something to queue and it could not be."""
    batch = [event for event in events if event is not None]
    if not batch:
        return True
    try:
        port.send(batch)
    except Exception:
        logger.exception(
            "status events not queued", extra={"event_ids": [e.id for e in batch], "types": [e.type for e in batch]}
        )
        return False
    return True


def event_id(*parts: str) -> str:
    """A stable id for one occurrence (the same parts give the same id)."""
    return "msg_" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def publication_finished(commune: str, publication_id: str, status: str | None) -> Event | None:
    """publication.published / partially_published / failed, once the publication's final status is known."""
    kind = _FINAL_STATUS_EVENTS.get(status or "")
    if kind is None:
        return None
    return Event(
        id=event_id(kind, commune, publication_id),
        type=kind,
        commune=commune,
        occurred_at=utc_now(),
        publication_id=publication_id,
    )


def delivery_failed(commune: str, publication_id: str, channel: str) -> Event:
    return Event(
        id=event_id("delivery.failed", commune, publication_id, channel),
        type="delivery.failed",
        commune=commune,
        occurred_at=utc_now(),
        publication_id=publication_id,
        channel=channel,
    )


def settled(commune: str, publication_id: str, channel: str, outcome: str, final: str | None) -> list[Event]:
    """What a channel's final outcome tells the endpoints: its failure, and the publication's end."""
    found: list[Event] = []
    if outcome == "failed":
        found.append(delivery_failed(commune, publication_id, channel))
    finished = publication_finished(commune, publication_id, final)
    if finished is not None:
        found.append(finished)
    return found


def channel_needs_reconnect(commune: str, channel: str, reason: str, publication_id: str | None) -> Event:
    """Emitted when a channel becomes marked (not again while it stays marked): one id per marking."""
    return Event(
        id=event_id("channel.needs_reconnect", commune, channel, uuid.uuid4().hex),
        type="channel.needs_reconnect",
        commune=commune,
        occurred_at=utc_now(),
        publication_id=publication_id,
        channel=channel,
        data={"reason": reason},
    )


def budget_reached(commune: str, month: str, publication_id: str, budget_eur: float, spent_eur: float) -> Event:
    """Once per commune and month (the store's claim, and this id, keep it so)."""
    return Event(
        id=event_id("usage.budget_reached", commune, month),
        type="usage.budget_reached",
        commune=commune,
        occurred_at=utc_now(),
        publication_id=publication_id,
        data={"month": month, "budget_eur": budget_eur, "spent_eur": spent_eur},
    )
