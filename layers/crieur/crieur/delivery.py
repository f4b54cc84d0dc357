"""The deliver use case: one queued publication action for one channel, delivered at most once.

Per message: claim the delivery (a conditional write), render and send through the channel adapter,
record the outcome, and count it on the publication. Transient failures come back later through the
queue; on the queue's last receive they are recorded `failed`, so nothing waits forever in a DLQ.

A channel that reaches many recipients (`AudienceChannel`: Web Push, SMS, e-mail) is delivered in chunks.
The publish message claims the delivery, renders once, asks the adapter for its audience, writes the chunks
and records the plan (chunks and recipients) on the delivery, then queues one chunk message per chunk on
the channel's own queue. A crash anywhere in between redelivers the publish message: the recorded plan is
kept (never recomputed), and the chunks not completed are queued again. Each chunk message claims its
chunk (a lease), sends only to the recipients not yet marked done, marks each outcome, and comes back
through the queue for the recipients to retry; on its last receive those count failed. A chunk completes
once (a conditional write, in one transaction with its counts on the delivery and its usage line), and
the chunk that completes the plan settles the delivery: `sent` when anyone received it, else `failed`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from crieur.billing import PriceList, billing_month, price_list
from crieur.channels import build_adapter
from crieur.channels.base import (
    AudienceChannel,
    ChannelError,
    NotBefore,
    PermanentChannelError,
    PostChannel,
    RecipientOutcome,
    RenderedPost,
    RetractUnsupported,
    SentPost,
    SkipDelivery,
    TransientChannelError,
)
from crieur.credentials import CredentialVault
from crieur.events import NO_EVENTS, Event, Events, channel_needs_reconnect, emit, settled
from crieur.fanout import ChunkQueue
from crieur.models import ChannelName, DeliveryError, FanoutMessage, Publication, utc_now
from crieur.redaction import secret_values, secrets_hidden
from crieur.store import ChannelRecord, Claim, Metering, Outcome, RecipientResult, Store

if TYPE_CHECKING:
    import httpx

logger = Logger(child=True)

MAX_VISIBILITY_SECONDS = 12 * 3600
MAX_BACKOFF_SECONDS = 15 * 60
AnyChannel = PostChannel[Any, Any] | AudienceChannel[Any, Any]
NO_AUDIENCE = "Aucun abonné ne reçoit ce canal pour l'instant : rien n'a été envoyé."
UNKNOWN_OUTCOME_CODES = frozenset({"timeout", "unreachable", "internal_error"})
"""Failures that do not say whether the provider made the post (no answer, or a fault of ours after the call):
the next attempt looks the post up before posting again, and the last one is never recorded `failed` without
that lookup (the message goes on to the dead-letter queue, whose reading looks it up)."""
DEAD_LETTER_TRIES = 3
"""Readings of a dead letter whose lookup fails before its delivery is recorded `failed` without it."""
RETRY_NOTE = re.compile(r"\s*:?\s*nouvel essai automatique( plus tard)?\s*\.?\s*$", re.IGNORECASE)


class NoPostFound(Exception):
    """A dead letter's delivery: no post was found on the provider, and none is made now."""


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
    chunks: ChunkQueue
    """The channel's own queue, for the chunk messages of a delivery to many recipients."""
    max_receive_count: int = 5
    retry_base_seconds: int = 10
    lease_seconds: int = 60
    prices: Callable[[], PriceList] = price_list
    events: Events = NO_EVENTS
    """Status events for the commune's endpoints: one SQS message per outcome, never waited on."""
    channel_cache_seconds: float = 60.0
    """How long this container trusts the channel's settings it read (a refused credential reads them again)."""
    _channels: dict[str, tuple[float, ChannelRecord | None]] = field(default_factory=dict, init=False, repr=False)

    def handle(self, message: FanoutMessage, receive_count: int) -> RetryLater | None:
        if message.action == "retract":
            return self.retract(message, receive_count)
        if message.chunk is not None:
            return self.deliver_chunk(message, message.chunk, receive_count)
        return self.deliver(message, receive_count)

    def dead_letter(self, message: FanoutMessage, receive_count: int) -> RetryLater | None:
        """A message whose last receive ended without an outcome (its worker was killed, the provider's answer
        was lost), which SQS then moved to the channel's dead-letter queue, read by this same function: what it
        was doing ends now, by itself. A publication: `sent` when the post is found on the provider, else
        `failed` with the last error; a chunk: its pending recipients count failed and the chunk completes; a
        retraction: the post stays, with the reason (`retract_failed`). `receive_count` is the dead letter's
        (see _dead_letter_try). RetryLater: read it again later (another worker holds it, a lookup failed)."""
        logger.warning(
            "dead letter received",
            extra={"publication_id": message.publication_id, "action": message.action, "chunk": message.chunk},
        )
        if message.action == "retract":
            return self.retract(message, receive_count, dead_letter=True)
        if message.chunk is not None:
            return self.deliver_chunk(message, message.chunk, receive_count, dead_letter=True)
        return self.deliver(message, receive_count, dead_letter=True)

    def deliver(self, message: FanoutMessage, receive_count: int, *, dead_letter: bool = False) -> RetryLater | None:
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
        look_up = dead_letter or _outcome_unknown(claim)

        notices: list[Event] = []
        publication: Publication | None = None

        def finish(outcome: Outcome, metering: Metering | None = None, **fields: Any) -> None:
            """The outcome, its usage line and its count on the publication: one transaction (crieur.store)."""
            written, ended = self.store.finish_delivery(
                commune, publication_id, channel, token, outcome, metering=metering, seen=publication, **fields
            )
            if written:
                notices.extend(settled(commune, publication_id, channel, outcome, ended))

        retry: RetryLater | None = None
        try:
            with secrets_hidden() as secrets:
                adapter, publication = self._adapter(commune, publication_id, secrets, given=message.publication)
                rendered = adapter.render(publication)
                sent = self._post(adapter, rendered, message, token, look_up=look_up, post=not dead_letter)
        except SkipDelivery as skip:
            finish("skipped", error=DeliveryError(code=skip.code, message=skip.message))
        except PermanentChannelError as permanent:
            logger.info("delivery failed", extra={"publication_id": publication_id, "code": permanent.code})
            notices.extend(self._note_reconnect(commune, permanent, publication_id))
            finish("failed", error=_error(permanent.code, permanent.message, permanent.provider_message))
        except NoPostFound:
            finish("failed", error=self._given_up(claim))
        except Exception as failure:  # transient, or an unexpected fault: both retried a bounded number of times
            code, text, detail, wait = self._transient(failure, publication_id)
            final = self._last_failure(receive_count, code, text, dead_letter=dead_letter, unknown=look_up)
            if final is not None:
                finish("failed", error=_error(code, final, detail))
            else:
                self.store.record_delivery(
                    commune,
                    publication_id,
                    channel,
                    token,
                    "retrying",
                    error=_error(code, text, detail),
                    outcome_unknown=look_up or code in UNKNOWN_OUTCOME_CODES,
                )
                retry = RetryLater(self._backoff(receive_count, wait), code)
        else:
            if sent is not None:
                post, metering = sent
                finish("sent", metering, external_id=post.external_id, url=post.url)
        emit(self.events, notices)  # one SQS message at most; an endpoint down never reaches this path
        return retry

    def _post(
        self,
        adapter: AnyChannel,
        rendered: RenderedPost,
        message: FanoutMessage,
        token: str,
        *,
        look_up: bool = False,
        post: bool = True,
    ) -> tuple[SentPost, Metering] | None:
        """Posts once on a PostChannel, with what it costs; plans and queues the chunks of an AudienceChannel
        (None: they settle it). `look_up`: the last attempt's outcome is unknown, the post it may have made is
        looked up first (and billed as if posted now); `post` False (a dead letter): NoPostFound rather than post,
        except on a channel whose provider deduplicates on `delivery_id` itself (it has no lookup: see
        PostChannel.find_sent), where one more attempt with the same id tells the outcome without a second post."""
        if isinstance(adapter, AudienceChannel):
            self._plan(adapter, rendered, message, token, plan=post)
            return None
        delivery_id = f"{message.publication_id}-{self.channel}"
        found = adapter.find_sent(rendered, delivery_id=delivery_id) if look_up else None
        if found is None and not post and type(adapter).find_sent is not PostChannel.find_sent:
            raise NoPostFound(delivery_id)
        if found is not None:
            logger.info("post found on the provider", extra={"publication_id": message.publication_id})
        try:
            sent = found or adapter.send(rendered, delivery_id=delivery_id)
        except PermanentChannelError as refused:
            if refused.code == "needs_reconnect" and self._reconnected(message.commune):
                raise TransientChannelError(
                    "credentials_changed",
                    "Les identifiants du canal ont changé pendant l'envoi : nouvel essai avec les nouveaux.",
                    retry_after=1,
                ) from refused
            raise
        # Billed with the outcome, in one transaction: a crash before it redelivers the message, the provider's
        # idempotency keeps one post, and the usage line (keyed by publication, unit and channel) is written once.
        unit, price = self.prices().delivery(self.channel, rendered.text)
        return sent, Metering(month=billing_month(utc_now()), unit=unit, unit_price=price)

    # --- deliveries to many recipients ----------------------------------------------------------------------

    def _plan(
        self,
        adapter: AudienceChannel[Any, Any],
        rendered: RenderedPost,
        message: FanoutMessage,
        token: str,
        *,
        plan: bool = True,
    ) -> None:
        """Records the plan once (SkipDelivery when nobody is to be reached), then queues its open chunks.
        `plan` False (a dead letter): a delivery not planned yet is not planned now (NoPostFound)."""
        commune, publication_id, channel = message.commune, message.publication_id, self.channel
        state = self.store.fanout_state(commune, publication_id, channel)
        if state is not None and state.queued:
            return  # a redelivered publish message: every chunk is queued already
        if state is not None and state.chunks_total is not None:
            numbers = self.store.incomplete_chunks(commune, publication_id, channel, state.chunks_total)
        elif not plan:
            raise NoPostFound(f"{publication_id}-{channel}")
        else:
            audience = adapter.audience(rendered)
            if not audience:
                raise SkipDelivery(NO_AUDIENCE)
            size = adapter.chunk_size
            planned = [audience[start : start + size] for start in range(0, len(audience), size)]
            if not self.store.plan_fanout(commune, publication_id, channel, token, planned):
                return  # another worker holds the delivery now, and plans it
            numbers = list(range(len(planned)))
            logger.info(
                "delivery planned in chunks",
                extra={"publication_id": publication_id, "recipients": len(audience), "chunks": len(planned)},
            )
        chunk_messages = [message.model_copy(update={"chunk": number, "publication": None}) for number in numbers]
        self.chunks.send(chunk_messages)  # without the publication: ten of them go in one SQS call (256 KB)
        self.store.mark_fanout_queued(commune, publication_id, channel, token)

    def deliver_chunk(
        self, message: FanoutMessage, chunk: int, receive_count: int, *, dead_letter: bool = False
    ) -> RetryLater | None:
        """Sends one chunk to its recipients not yet done; see the module docstring. A dead letter sends nothing:
        the recipients not done count failed, and the chunk completes."""
        commune, publication_id, channel = message.commune, message.publication_id, self.channel
        token = uuid.uuid4().hex
        claim = self.store.claim_chunk(
            commune, publication_id, channel, chunk, token=token, lease_seconds=self.lease_seconds
        )
        if claim.outcome == "missing":
            logger.warning("no such chunk", extra={"publication_id": publication_id, "chunk": chunk})
            return None
        if claim.outcome == "final":  # a duplicate, or a crash before the delivery was settled
            emit(self.events, self._settle_fanout(commune, publication_id))
            return None
        if claim.outcome == "busy":
            return RetryLater(self.lease_seconds, f"another worker holds chunk {chunk}")

        done = self.store.recipient_results(commune, publication_id, channel, chunk)
        pending = [recipient for recipient in claim.recipients if recipient not in done]
        notices: list[Event] = []
        try:
            send = self._give_up_chunk if dead_letter else self._send_chunk
            outcomes = send(commune, publication_id, pending, notices) if pending else []
        except NotBefore as wait:
            self.store.release_chunk(commune, publication_id, channel, chunk, token)
            return self._wait_until(message, wait, receive_count)
        last = dead_letter or receive_count >= self.max_receive_count
        marks: list[tuple[str, RecipientResult, int]] = []
        waits: list[float | None] = []
        for outcome in outcomes:
            if outcome.result == "retry" and not last:
                waits.append(outcome.retry_after)
            elif outcome.result == "delivered":
                marks.append((outcome.recipient, "delivered", outcome.units))
            else:
                marks.append((outcome.recipient, "failed" if outcome.result == "retry" else outcome.result, 0))
        self.store.mark_recipients(commune, publication_id, channel, chunk, marks)
        if waits:
            self.store.release_chunk(commune, publication_id, channel, chunk, token)
            emit(self.events, notices)
            known = [wait for wait in waits if wait is not None]
            return RetryLater(self._backoff(receive_count, max(known) if known else None), f"{len(waits)} to retry")

        results = {**done, **{recipient: (result, units) for recipient, result, units in marks}}
        delivered = [results[recipient] for recipient in claim.recipients if results[recipient][0] == "delivered"]
        units = sum(units for _, units in delivered)
        failures = sorted({outcome.detail for outcome in outcomes if outcome.result != "delivered" and outcome.detail})
        metering = None
        if units:
            unit, price = self.prices().per_recipient(channel)
            metering = Metering(month=billing_month(utc_now()), unit=unit, unit_price=price, quantity=units)
        if self.store.complete_chunk(
            commune,
            publication_id,
            channel,
            chunk,
            token,
            sent=len(delivered),
            failed=len(claim.recipients) - len(delivered),
            failure="; ".join(failures)[:500] or None,
            metering=metering,
        ):
            notices.extend(self._settle_fanout(commune, publication_id))
        emit(self.events, notices)
        return None

    def _give_up_chunk(
        self, commune: str, publication_id: str, pending: list[str], notices: list[Event]
    ) -> list[RecipientOutcome]:
        """A dead letter's chunk: its pending recipients are not tried again (the last try's outcome is unknown)."""
        given_up = f"abandon après {self.max_receive_count} tentatives sans réponse"
        return [RecipientOutcome(recipient, "refused", detail=given_up) for recipient in pending]

    def _send_chunk(
        self, commune: str, publication_id: str, pending: list[str], notices: list[Event]
    ) -> list[RecipientOutcome]:
        """One outcome per pending recipient: a failure of the whole chunk applies to each of them."""
        try:
            with secrets_hidden() as secrets:
                # Read afresh for each chunk (one read per chunk of many recipients): a channel removed or
                # disabled during the fan-out stops it.
                adapter, publication = self._adapter(commune, publication_id, secrets, fresh=True)
                if not isinstance(adapter, AudienceChannel):
                    raise PermanentChannelError("not_an_audience", f"{adapter.label} n'envoie pas par destinataire.")
                sent = adapter.send_chunk(adapter.render(publication), pending)
        except NotBefore:
            raise  # nothing failed: the chunk waits (deliver_chunk)
        except SkipDelivery as skip:  # the channel was removed or disabled since the plan
            return [RecipientOutcome(recipient, "refused", detail=_short(skip)) for recipient in pending]
        except PermanentChannelError as permanent:  # nobody of this chunk can be reached
            notices.extend(self._note_reconnect(commune, permanent, publication_id))
            return [RecipientOutcome(recipient, "refused", detail=_short(permanent)) for recipient in pending]
        except Exception as failure:
            code, text, _, wait = self._transient(failure, publication_id)
            return [RecipientOutcome(recipient, "retry", wait, f"{code}: {text}") for recipient in pending]
        answered = {outcome.recipient: outcome for outcome in sent}
        return [
            answered.get(recipient) or RecipientOutcome(recipient, "retry", detail="sans réponse de l'adaptateur")
            for recipient in pending
        ]

    def _wait_until(self, message: FanoutMessage, wait: NotBefore, receive_count: int) -> RetryLater | None:
        """A chunk that may not be sent yet (SMS quiet hours, maybe days away) waits without using up its
        receives: on its first receive it comes back when allowed (12 hours at most, SQS's longest visibility);
        a later receive hands over to a fresh copy of the message, whose receive count starts again."""
        logger.info("chunk waits", extra={"publication_id": message.publication_id, "until": wait.at.isoformat()})
        note = DeliveryError(code=wait.code, message=wait.message)
        self.store.note_fanout(message.commune, message.publication_id, self.channel, note)
        if receive_count <= 1:
            return RetryLater(int(min(max(wait.retry_after or 0, 1), MAX_VISIBILITY_SECONDS)), wait.code)
        self.chunks.send([message])
        return None

    def _settle_fanout(self, commune: str, publication_id: str) -> list[Event]:
        """Once every chunk completed: the delivery's outcome, counted once on the publication."""
        channel = self.channel
        state = self.store.fanout_state(commune, publication_id, channel)
        if state is None or not state.complete or state.recipients is None:
            return []
        outcome: Outcome = "sent" if state.recipients.sent else "failed"
        if state.status in ("sending", "retrying"):
            error = None
            if outcome == "failed":
                reason = f" Raison : {state.failure}" if state.failure else ""
                failed = _count(state.recipients.failed)
                error = DeliveryError(
                    code="no_recipient_reached",
                    message=f"Aucun destinataire n'a reçu le message ({failed} en échec).{reason}",
                )
            sent = state.recipients.sent
            external_id = f"{_count(sent)} destinataire{'s' if sent > 1 else ''}" if outcome == "sent" else None
            written, ended = self.store.settle_fanout(
                commune, publication_id, channel, outcome, external_id=external_id, error=error
            )
            if not written:
                return []  # another worker settled it (and counted it, in the same transaction)
        elif state.status != outcome:
            return []
        else:  # settled already (a duplicate): make sure it was counted
            ended = self.store.settle(commune, publication_id, channel, outcome)
        return settled(commune, publication_id, channel, outcome, ended)

    def retract(self, message: FanoutMessage, receive_count: int, *, dead_letter: bool = False) -> RetryLater | None:
        """Deletes one sent post: `retracted`, `retract_unsupported`, or still `sent` with the reason (a dead
        letter: without calling the provider again, with the last attempt's error)."""
        commune, publication_id, channel = message.commune, message.publication_id, self.channel
        token = uuid.uuid4().hex
        claim, external_id = self.store.claim_retraction(commune, publication_id, channel, token, self.lease_seconds)
        if claim.outcome == "busy":
            return RetryLater(self.lease_seconds, "another worker is retracting this post")
        if claim.outcome != "claimed" or external_id is None:
            return None

        def finish(status: str | None, error: DeliveryError | None = None) -> None:
            self.store.record_retraction(commune, publication_id, channel, token, status=status, error=error)

        if dead_letter:
            last = claim.error
            reason = f" Dernière erreur : {_without_retry_note(last.message)}" if last else ""
            given_up = f"Le retrait a été abandonné après {self.max_receive_count} essais sans réponse.{reason}"
            finish(None, _error("retract_failed", given_up, last.provider_message if last else None))
            return None
        try:
            with secrets_hidden() as secrets:
                adapter, _ = self._adapter(commune, publication_id, secrets)
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

    def _last_failure(
        self, receive_count: int, code: str, text: str, *, dead_letter: bool, unknown: bool
    ) -> str | None:
        """The failed delivery's message when this transient failure is its last, else None (retried later).
        A last receive whose outcome is unknown is not the last failure: its message goes on to the dead-letter
        queue, whose reading looks the post up."""
        if dead_letter:
            if _dead_letter_try(receive_count, self.max_receive_count) < DEAD_LETTER_TRIES:
                return None
            return (
                f"Abandon après {self.max_receive_count} tentatives, sans avoir pu vérifier auprès du service si la "
                f"publication y a été faite. Dernière erreur : {_without_retry_note(text)}"
            )
        if receive_count < self.max_receive_count or unknown or code in UNKNOWN_OUTCOME_CODES:
            return None
        return f"Échec après {receive_count} tentatives. Dernière erreur : {text}"

    def _given_up(self, claim: Claim) -> DeliveryError:
        """Why a dead letter's delivery failed, the last attempt's error kept."""
        tries = f"Abandon après {self.max_receive_count} tentatives"
        last = claim.error
        if claim.status == "sending":  # the last attempt's worker died before writing its outcome
            earlier = f" Erreur précédente : {_without_retry_note(last.message)}" if last else ""
            text = f"{tries} : la dernière a été interrompue avant que la réponse du service soit enregistrée.{earlier}"
            return _error("interrupted", text, last.provider_message if last else None)
        if last is None:
            return _error("interrupted", f"{tries}, sans réponse enregistrée.", None)
        text = f"{tries}. Dernière erreur : {_without_retry_note(last.message)}"
        return _error(last.code, text, last.provider_message)

    def _adapter(
        self,
        commune: str,
        publication_id: str,
        secrets: list[str],
        *,
        fresh: bool = False,
        given: Publication | None = None,
    ) -> tuple[AnyChannel, Publication]:
        """The channel's adapter and the publication (`given`: the one its message carried, else read); the
        credentials it opens are added to `secrets`. The channel's settings come from this container's cache
        unless `fresh`."""
        carried = given is not None and (given.commune, given.id) == (commune, publication_id)
        publication = given if carried else self.store.get_publication(commune, publication_id)
        record = self._channel_record(commune, fresh=fresh)
        if publication is None:
            raise PermanentChannelError("missing_publication", "Publication introuvable.")
        if record is None or not record.enabled:
            raise SkipDelivery("Le canal a été retiré ou désactivé avant l'envoi.")
        credentials = (
            self.vault.open(commune, self.channel, record.credentials_ciphertext)
            if record.credentials_ciphertext
            else None
        )
        secrets.extend(secret_values(credentials))
        adapter = build_adapter(self.channel, record.settings, credentials, self.http)
        if not isinstance(adapter, PostChannel | AudienceChannel):
            raise TypeError(f"{type(adapter).__name__} is neither a PostChannel nor an AudienceChannel")
        return adapter, publication

    def _channel_record(self, commune: str, *, fresh: bool = False) -> ChannelRecord | None:
        """The channel's settings, read once per `channel_cache_seconds` in this container (§8: a cached
        parameter read; `fresh`: read now); their credentials' decryption is cached by the vault, per ciphertext."""
        cached = self._channels.get(commune)
        if cached is not None and cached[0] > time.monotonic() and not fresh:
            return cached[1]
        record = self.store.get_channel(commune, self.channel)
        self._channels[commune] = (time.monotonic() + self.channel_cache_seconds, record)
        return record

    def _reconnected(self, commune: str) -> bool:
        """After a refused credential, the channel read again: True when its settings or credentials changed since
        this container read them (a reconnection it had not seen: the next attempt uses the new ones)."""
        used = self._channels.pop(commune, (0.0, None))[1]
        fresh = self._channel_record(commune)

        def what_is_used(record: ChannelRecord) -> tuple[bool, dict[str, Any], bytes | None]:
            return record.enabled, record.settings, record.credentials_ciphertext

        return used is not None and (fresh is None or what_is_used(fresh) != what_is_used(used))

    def _note_reconnect(self, commune: str, refused: PermanentChannelError, publication_id: str) -> list[Event]:
        """A refused token marks the channel, so the next publication warns instead of failing again; the
        marking (not every refusal) is a channel.needs_reconnect event. The cached settings are forgotten."""
        self._channels.pop(commune, None)
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


def _outcome_unknown(claim: Claim) -> bool:
    """An earlier attempt may have made the post: its worker died while sending (the claim took over its expired
    lease), or it failed without an answer that says (the last one, or any before: see Claim.outcome_unknown)."""
    if claim.status == "sending" or claim.outcome_unknown:
        return True
    return claim.status == "retrying" and claim.error is not None and claim.error.code in UNKNOWN_OUTCOME_CODES


def _dead_letter_try(receive_count: int, max_receive_count: int) -> int:
    """Which reading of a dead letter this is (1 for the first). SQS keeps the receive count of a message it
    moves to the DLQ (6 at its first reading there, moto does the same); were it reset, the count itself is it."""
    return receive_count - max_receive_count if receive_count > max_receive_count else receive_count


def _without_retry_note(text: str) -> str:
    """An attempt's message without its "nouvel essai automatique" (there is none after the last), as a sentence."""
    return RETRY_NOTE.sub("", text).rstrip(" .:") + "."


def _error(code: str, message: str, provider_message: str | None) -> DeliveryError:
    return DeliveryError(code=code, message=message, provider_message=provider_message)


def _short(error: ChannelError) -> str:
    return f"{error.code}: {error.message}"[:200]


def _count(number: int) -> str:
    """A number as a mairie reads it: 9 998 (a narrow no-break space between thousands)."""
    return f"{number:,}".replace(",", "\u202f")
