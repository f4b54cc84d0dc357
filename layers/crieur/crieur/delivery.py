"""The deliver use case: one queued publication action for one channel, delivered at most once.

Per message: claim the delivery (a conditional write), render and send through the channel adapter,
record the outcome, and count it on the publication. Transient failures come back later through the
queue; on the queue's last receive they are recorded `failed`, so nothing waits forever in a DLQ.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from aws_lambda_powertools import Logger

from crieur.billing import PriceList, billing_month, price_list
from crieur.channels import build_adapter
from crieur.channels.base import (
    Channel,
    PermanentChannelError,
    PostChannel,
    RetractUnsupported,
    SkipDelivery,
    TransientChannelError,
)
from crieur.credentials import CredentialVault
from crieur.events import NO_EVENTS, Event, Events, channel_needs_reconnect, emit, settled
from crieur.models import ChannelName, DeliveryError, FanoutMessage, Publication, utc_now
from crieur.store import Outcome, Store

logger = Logger(child=True)

MAX_VISIBILITY_SECONDS = 12 * 3600
MAX_BACKOFF_SECONDS = 15 * 60


@dataclass(frozen=True)
class RetryLater:
    """The message must come back after `after_seconds` (the handler sets its visibility)."""

    after_seconds: int
    reason: str


def fail_undeliverable(
    store: Store, commune: str, publication_id: str, channel: str, error: DeliveryError
) -> list[Event]:
    """Records `failed` for a delivery that never reached its worker, and counts it; returns the status
    events to emit (the caller sends them in one message)."""
    token = uuid.uuid4().hex
    if store.claim_delivery(commune, publication_id, channel, token, lease_seconds=60).outcome == "claimed":
        store.record_delivery(commune, publication_id, channel, token, "failed", error=error)
    final = store.settle(commune, publication_id, channel, "failed")
    return settled(commune, publication_id, channel, "failed", final)


@dataclass
class DeliveryWorker:
    store: Store
    vault: CredentialVault
    channel: ChannelName
    http: Callable[[], httpx.Client]
    max_receive_count: int = 5
    retry_base_seconds: int = 10
    lease_seconds: int = 60
    prices: Callable[[], PriceList] = price_list
    events: Events = NO_EVENTS
    """Status events for the commune's endpoints: one SQS message per outcome, never waited on."""

    def handle(self, message: FanoutMessage, receive_count: int) -> RetryLater | None:
        if message.action == "retract":
            return self.retract(message, receive_count)
        return self.deliver(message, receive_count)

    def deliver(self, message: FanoutMessage, receive_count: int) -> RetryLater | None:
        commune, publication_id, channel = message.commune, message.publication_id, self.channel
        token = uuid.uuid4().hex
        claim = self.store.claim_delivery(commune, publication_id, channel, token, self.lease_seconds)
        if claim.outcome == "missing":
            logger.warning("no such delivery", extra={"publication_id": publication_id})
            return None
        if claim.outcome == "final":
            # A redelivered message after a crash: make sure the outcome was counted (and its events
            # queued: their ids are stable, so the events worker sends each once), send nothing.
            if claim.status in ("sent", "failed", "skipped"):
                ended = self.store.settle(commune, publication_id, channel, claim.status)  # type: ignore[arg-type]
                emit(self.events, settled(commune, publication_id, channel, claim.status, ended))
            return None
        if claim.outcome == "busy":
            return RetryLater(self.lease_seconds, "another worker holds this delivery")

        notices: list[Event] = []

        def finish(outcome: Outcome, **fields: Any) -> None:
            if self.store.record_delivery(commune, publication_id, channel, token, outcome, **fields):
                ended = self.store.settle(commune, publication_id, channel, outcome)
                notices.extend(settled(commune, publication_id, channel, outcome, ended))

        retry: RetryLater | None = None
        try:
            adapter, publication = self._adapter(commune, publication_id)
            if not isinstance(adapter, PostChannel):
                raise PermanentChannelError("unsupported", f"{adapter.label} : envoi par lots à venir.")
            rendered = adapter.render(publication)
            sent = adapter.send(rendered, delivery_id=f"{publication_id}-{channel}")
            # Billed before the outcome is written: a crash in between redelivers the message, the
            # provider's idempotency keeps one post, and the usage line (keyed by publication, unit and
            # channel) is not added twice.
            prices = self.prices()
            unit, price = prices.delivery(channel, rendered.text)
            self.store.meter(
                commune, publication_id, billing_month(utc_now()), unit=unit, channel=channel, unit_price=price
            )
        except SkipDelivery as skip:
            finish("skipped", error=DeliveryError(code=skip.code, message=skip.message))
        except PermanentChannelError as permanent:
            logger.info("delivery failed", extra={"publication_id": publication_id, "code": permanent.code})
            notices.extend(self._note_reconnect(commune, permanent, publication_id))
            finish("failed", error=_error(permanent.code, permanent.message, permanent.provider_message))
        except Exception as failure:  # transient, or an unexpected fault: both retried a bounded number of times
            code, text, detail, wait = self._transient(failure, publication_id)
            if receive_count >= self.max_receive_count:
                final = f"Échec après {receive_count} tentatives. Dernière erreur : {text}"
                finish("failed", error=_error(code, final, detail))
            else:
                self.store.record_delivery(
                    commune, publication_id, channel, token, "retrying", error=_error(code, text, detail)
                )
                retry = RetryLater(self._backoff(receive_count, wait), code)
        else:
            finish("sent", external_id=sent.external_id, url=sent.url)
        emit(self.events, notices)  # one SQS message at most; an endpoint down never reaches this path
        return retry

    def retract(self, message: FanoutMessage, receive_count: int) -> RetryLater | None:
        """Deletes one sent post: `retracted`, `retract_unsupported`, or still `sent` with the reason."""
        commune, publication_id, channel = message.commune, message.publication_id, self.channel
        token = uuid.uuid4().hex
        claim, external_id = self.store.claim_retraction(commune, publication_id, channel, token, self.lease_seconds)
        if claim.outcome == "busy":
            return RetryLater(self.lease_seconds, "another worker is retracting this post")
        if claim.outcome != "claimed" or external_id is None:
            return None

        def finish(status: str | None, error: DeliveryError | None = None) -> None:
            self.store.record_retraction(commune, publication_id, channel, token, status=status, error=error)

        try:
            adapter, _ = self._adapter(commune, publication_id)
            adapter.delete(external_id)
        except RetractUnsupported as unsupported:
            finish("retract_unsupported", _error(unsupported.code, unsupported.message, None))
        except PermanentChannelError as permanent:
            emit(self.events, self._note_reconnect(commune, permanent, publication_id))
            failure = f"Le retrait a échoué : {permanent.message}"
            finish(None, _error("retract_failed", failure, permanent.provider_message))
        except Exception as failure:
            code, text, detail, wait = self._transient(failure, publication_id)
            if receive_count >= self.max_receive_count:
                finish(
                    None, _error("retract_failed", f"Le retrait a échoué après {receive_count} essais : {text}", detail)
                )
                return None
            finish(None, _error(code, f"Retrait en attente : {text}", detail))
            return RetryLater(self._backoff(receive_count, wait), code)
        else:
            finish("retracted")
        return None

    def _adapter(self, commune: str, publication_id: str) -> tuple[Channel[Any, Any], Publication]:
        publication = self.store.get_publication(commune, publication_id)
        record = self.store.get_channel(commune, self.channel)
        if publication is None:
            raise PermanentChannelError("missing_publication", "Publication introuvable.")
        if record is None or not record.enabled:
            raise SkipDelivery("Le canal a été retiré ou désactivé avant l'envoi.")
        credentials = (
            self.vault.open(commune, self.channel, record.credentials_ciphertext)
            if record.credentials_ciphertext
            else None
        )
        return build_adapter(self.channel, record.settings, credentials, self.http()), publication

    def _note_reconnect(self, commune: str, refused: PermanentChannelError, publication_id: str) -> list[Event]:
        """A refused token marks the channel, so the next publication warns instead of failing again; the
        marking (not every refusal) is a channel.needs_reconnect event."""
        if refused.code == "needs_reconnect" and self.store.set_reconnect_reason(
            commune, self.channel, refused.message
        ):
            return [channel_needs_reconnect(commune, self.channel, refused.message, publication_id)]
        return []

    @staticmethod
    def _transient(failure: Exception, publication_id: str) -> tuple[str, str, str | None, float | None]:
        if isinstance(failure, TransientChannelError):
            return failure.code, failure.message, failure.provider_message, failure.retry_after
        logger.exception("unexpected delivery fault", extra={"publication_id": publication_id})
        return "internal_error", "Erreur interne de Crieur.", repr(failure)[:500], None

    def _backoff(self, receive_count: int, provider_wait: float | None) -> int:
        if provider_wait is not None:
            return int(min(max(provider_wait, 1), MAX_VISIBILITY_SECONDS))
        return int(min(self.retry_base_seconds * 2 ** (receive_count - 1), MAX_BACKOFF_SECONDS))


def _error(code: str, message: str, provider_message: str | None) -> DeliveryError:
    return DeliveryError(code=code, message=message, provider_message=provider_message)
