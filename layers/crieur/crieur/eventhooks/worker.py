"""The events worker: one queued occurrence → a signed POST to every endpoint of the commune subscribed to it.

The first time an event is handled, its body is built (from the publication as the API shows it, or from
what the event carries) and recorded with the endpoints subscribed at that moment, each `pending`. Each
endpoint's outcome is recorded as it happens: `delivered` (2xx), `failed` (given up: a 4xx other than 429,
a private address, or still failing on the queue's last receive), `gone` (deleted meanwhile). So a retry
(the same message, back after its visibility timeout) posts only to the endpoints still `pending`, with the
same body and the same `webhook-id`. Backoff is exponential (30 s, 2 min, 8 min, 32 min, about 2 h, 8.5 h,
12 h: about 24 hours over 8 receives), never shorter than the endpoint's Retry-After.

Nothing here runs on the publish path: an endpoint that is down or slow only delays this queue.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx
from aws_lambda_powertools import Logger

from crieur.credentials import CredentialVault
from crieur.eventhooks.model import EndpointAttempt, EventDeliveryRecord, EventEndpointRecord
from crieur.eventhooks.service import vault_channel
from crieur.events import Event, EventBatch
from crieur.models import utc_now
from crieur.security import ForbiddenTarget, webhook_headers
from crieur.store import Store

logger = Logger(child=True)

MAX_VISIBILITY_SECONDS = 12 * 3600
"""SQS's ceiling for a message's visibility timeout."""
BACKOFF_FACTOR = 4
TIME_MARGIN_SECONDS = 15.0
"""An endpoint is not tried with less time than this left in the invocation (the client waits 10 s at most)."""
RETENTION = timedelta(days=7)
"""How long an event's record (body, per-endpoint state) is kept: beyond the 24 h of retries."""


@dataclass(frozen=True)
class RetryLater:
    """The message must come back after `after_seconds` (the handler sets its visibility)."""

    after_seconds: int
    reason: str


@dataclass(frozen=True)
class Outcome:
    delivered: bool = False
    retry: bool = False
    """False with `delivered` False: give up on this endpoint for this event."""
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class Owed:
    """An event still owed to some endpoint after this receive."""

    retry_after: float | None = None
    deferred_only: bool = False
    """Only endpoints not tried for lack of time in this invocation: come back soon."""


def backoff_seconds(receive_count: int, base_seconds: int, provider_wait: float | None = None) -> int:
    """`base × 4^(n-1)`, capped at 12 h, and never shorter than what the endpoint asked (Retry-After)."""
    exponential = min(base_seconds * BACKOFF_FACTOR ** (receive_count - 1), MAX_VISIBILITY_SECONDS)
    if provider_wait is not None:
        return int(min(max(provider_wait, exponential), MAX_VISIBILITY_SECONDS))
    return int(exponential)


def retry_schedule(max_receive_count: int, base_seconds: int) -> list[int]:
    """The waits between the receives of a message whose endpoint stays down (one fewer than the receives)."""
    return [backoff_seconds(receive, base_seconds) for receive in range(1, max_receive_count)]


def webhook_id(event_id: str, endpoint_id: str) -> str:
    """Stable per (event, endpoint): a receiver drops a message it already has, as Standard Webhooks asks."""
    return f"{event_id}_{endpoint_id}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _judged(response: httpx.Response) -> Outcome:
    """2xx delivered; 429 and 5xx retried (Retry-After honoured); any other answer given up at once (a 4xx,
    or a 3xx: redirects are not followed)."""
    status = response.status_code
    if response.is_success:
        return Outcome(delivered=True, status_code=status)
    error = f"HTTP {status}: {response.text[:200]}"
    if status == 429 or status >= 500:
        return Outcome(retry=True, status_code=status, error=error, retry_after=_retry_after(response))
    return Outcome(status_code=status, error=error)


def _forever() -> float:
    return math.inf


@dataclass
class EventDispatcher:
    store: Store
    vault: CredentialVault
    http: Callable[[], httpx.Client]
    max_receive_count: int = 8
    retry_base_seconds: int = 30

    def handle(
        self, batch: EventBatch, receive_count: int, time_left: Callable[[], float] = _forever
    ) -> RetryLater | None:
        owed = [found for event in batch.events if (found := self.dispatch(event, receive_count, time_left))]
        if not owed:
            return None
        if all(found.deferred_only for found in owed):
            return RetryLater(1, "out of time in this invocation")
        waits = [found.retry_after for found in owed if found.retry_after is not None]
        after = backoff_seconds(receive_count, self.retry_base_seconds, max(waits) if waits else None)
        return RetryLater(after, "event endpoint unavailable")

    def dispatch(self, event: Event, receive_count: int, time_left: Callable[[], float] = _forever) -> Owed | None:
        """Posts `event` to each endpoint still owed it; what remains owed after this receive, if anything."""
        endpoints = {endpoint.id: endpoint for endpoint in self.store.list_event_endpoints(event.commune)}
        record = self._record(event, endpoints)
        if record is None:
            return None
        last = receive_count >= self.max_receive_count
        retrying, deferred, waits = False, False, []
        for endpoint_id, attempt in sorted(record.endpoints.items()):
            if attempt.state != "pending":
                continue
            endpoint = endpoints.get(endpoint_id)
            if endpoint is None:
                self._note(event, endpoint_id, replace(attempt, state="gone", at=utc_now()))
            elif time_left() < TIME_MARGIN_SECONDS:
                if last:
                    self._give_up(event, endpoint_id, replace(attempt, error="no time left on the last receive"))
                deferred = True
            else:
                outcome = self._attempt(event, endpoint, attempt, record.body, last)
                if outcome is not None:
                    retrying = True
                    waits += [outcome.retry_after] if outcome.retry_after is not None else []
        if retrying:
            return Owed(retry_after=max(waits) if waits else None)
        if deferred and not last:
            return Owed(deferred_only=True)
        return None

    def _record(self, event: Event, endpoints: dict[str, EventEndpointRecord]) -> EventDeliveryRecord | None:
        """The event's record; the first time, its body and the endpoints subscribed now (None: nobody is)."""
        record = self.store.event_delivery(event.commune, event.id)
        if record is not None:
            return record
        targets = sorted(key for key, endpoint in endpoints.items() if event.type in endpoint.events)
        if not targets:
            return None
        first = EventDeliveryRecord(event.id, event.type, self.body(event), {key: EndpointAttempt() for key in targets})
        return self.store.start_event_delivery(
            event.commune, first, expires_at=int(time.time() + RETENTION.total_seconds())
        )

    def _attempt(
        self, event: Event, endpoint: EventEndpointRecord, attempt: EndpointAttempt, body: str, last: bool
    ) -> Outcome | None:
        """One POST, recorded; the outcome when the endpoint is to be tried again, else None."""
        outcome = self._post(event, endpoint, body)
        tried = replace(
            attempt, attempts=attempt.attempts + 1, status_code=outcome.status_code, error=outcome.error, at=utc_now()
        )
        if outcome.delivered:
            self._note(event, endpoint.id, replace(tried, state="delivered"))
        elif not outcome.retry or last:
            self._give_up(event, endpoint.id, tried)
        else:
            self._note(event, endpoint.id, tried)
            return outcome
        return None

    def body(self, event: Event) -> str:
        """What every endpoint receives: `{type, timestamp, data}`, the publication as the API shows it."""
        publication = (
            self.store.get_publication(event.commune, event.publication_id)
            if event.publication_id and (event.type.startswith("publication.") or event.type == "delivery.failed")
            else None
        )
        data: dict[str, Any]
        if event.type.startswith("publication."):
            data = (
                publication.model_dump(mode="json")
                if publication
                else {"id": event.publication_id, "commune": event.commune}
            )
        elif event.type == "delivery.failed":
            delivery = publication.deliveries.get(event.channel or "") if publication else None
            data = {
                "commune": event.commune,
                "publication_id": event.publication_id,
                "title": publication.title if publication else None,
                "channel": event.channel,
                "delivery": delivery.model_dump(mode="json") if delivery else None,
            }
        else:
            data = {
                "commune": event.commune,
                **({"channel": event.channel} if event.channel else {}),
                **({"publication_id": event.publication_id} if event.publication_id else {}),
                **event.data,
            }
        document = {"type": event.type, "timestamp": event.occurred_at.isoformat(), "data": data}
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    def _post(self, event: Event, endpoint: EventEndpointRecord, body: str) -> Outcome:
        try:
            secret = self.vault.open(event.commune, vault_channel(endpoint.id), endpoint.secret_ciphertext)["secret"]
        except Exception as failure:  # KMS throttled or unavailable: try again later
            logger.exception("endpoint secret unreadable", extra={"endpoint_id": endpoint.id})
            return Outcome(retry=True, error=f"secret unreadable: {failure!r}"[:300])
        content = body.encode()
        headers = {
            "content-type": "application/json",
            **webhook_headers(secret, webhook_id(event.id, endpoint.id), content),
        }
        try:
            response = self.http().post(endpoint.url, content=content, headers=headers)
        except ForbiddenTarget as forbidden:
            return Outcome(error=f"forbidden target: {forbidden}"[:300])
        except httpx.TimeoutException:
            return Outcome(retry=True, error="timeout")
        except httpx.TransportError as unreachable:
            return Outcome(retry=True, error=f"unreachable: {unreachable}"[:300])
        return _judged(response)

    def _note(self, event: Event, endpoint_id: str, attempt: EndpointAttempt) -> None:
        self.store.record_event_attempt(event.commune, event.id, endpoint_id, attempt)

    def _give_up(self, event: Event, endpoint_id: str, attempt: EndpointAttempt) -> None:
        self._note(event, endpoint_id, replace(attempt, state="failed", at=attempt.at or utc_now()))
        logger.warning(
            "event endpoint given up",
            extra={
                "event_id": event.id,
                "type": event.type,
                "commune": event.commune,
                "endpoint_id": endpoint_id,
                "attempts": attempt.attempts,
                "status_code": attempt.status_code,
                "error": attempt.error,
            },
        )
