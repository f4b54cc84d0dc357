"""DynamoDB single-table repository: the only module that knows key shapes (ARCHITECTURE.md §3).

Every commune-owned item lives under `C#<commune>`, so no query can cross communes.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from crieur import aws
from crieur.apikeys import api_key_item
from crieur.models import (
    ChannelName,
    Commune,
    Delivery,
    DeliveryError,
    Publication,
    PublicationContent,
    PublicationStatus,
    RecipientCounts,
    WeatherAlertSettings,
    utc_now,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

    from crieur.channels.webpush import Subscription
    from crieur.eventhooks.model import EndpointAttempt, EventDeliveryRecord, EventEndpointRecord
    from crieur.inbound.model import InboundSourceRecord, SealedSecret
    from crieur.subscribers import SubscriberRecord

ClaimOutcome = Literal["claimed", "final", "busy", "missing"]
Outcome = Literal["sent", "failed", "skipped"]
RecipientResult = Literal["delivered", "refused", "removed", "failed"]
"""What became of one recipient of a chunked delivery (`failed`: still retryable on the last receive)."""
COMPLETE_ATTEMPTS = 4
"""A chunk's completion is tried again at once on a transaction conflict, then left to its message's retry."""
FINAL_WRITE_ATTEMPTS = 8
"""A delivery's final write is tried again at once on a conflict or after another delivery settled meanwhile."""
BATCH_GET = 100
"""BatchGetItem reads at most 100 keys."""
MARKER_SECONDS = 30 * 24 * 3600
"""Chunks and recipient markers outlive any retry of their delivery, then expire (`ttl`)."""


class InvalidCursor(ValueError):
    pass


class AlreadyExists(Exception):
    pass


def _commune_pk(commune: str) -> str:
    return f"C#{commune}"


def _publication_sk(publication_id: str) -> str:
    return f"P#{publication_id}"


def _delivery_sk(publication_id: str, channel: str) -> str:
    return f"P#{publication_id}#D#{channel}"


def _chunk_sk(publication_id: str, channel: str, chunk: int) -> str:
    return f"FC#{publication_id}#{channel}#{chunk:05d}"


def _recipient_prefix(publication_id: str, channel: str, chunk: int) -> str:
    return f"FR#{publication_id}#{channel}#{chunk:05d}#"


def _conditional_failed(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code")
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


def _conflicted(error: ClientError) -> bool:
    """A transaction cancelled because a concurrent one wrote one of its items."""
    reasons: list[dict[str, Any]] = error.response.get("CancellationReasons") or []  # type: ignore[assignment]
    return any(reason.get("Code") == "TransactionConflict" for reason in reasons)


def _first_condition_failed(error: ClientError) -> bool:
    """A transaction cancelled because its first item's condition failed (a usage line already written), not
    because it conflicted with a concurrent transaction on a shared item or was throttled."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return False
    reasons: list[dict[str, Any]] = error.response.get("CancellationReasons") or []  # type: ignore[assignment]
    return bool(reasons) and reasons[0].get("Code") == "ConditionalCheckFailed"


def _returned_item(error: ClientError, index: int) -> dict[str, Any] | None:
    """The item a cancelled transaction's item `index` returned (ReturnValuesOnConditionCheckFailure), if any."""
    from boto3.dynamodb.types import TypeDeserializer

    reasons: list[dict[str, Any]] = error.response.get("CancellationReasons") or []  # type: ignore[assignment]
    raw = reasons[index].get("Item") if index < len(reasons) else None
    if not raw:
        return None
    deserialize: Callable[[Any], Any] = TypeDeserializer().deserialize  # the wire format: no resource on errors
    return {
        name: deserialize(value) if isinstance(value, dict) and len(value) == 1 else value
        for name, value in raw.items()
    }


def _progress_of(head: dict[str, Any] | None) -> Progress | None:
    """A publication's count from its head item; None without a publication there (or only its billed cost)."""
    return Progress.of_head(head) if head and "channel_count" in head and "status" in head else None


def _condition_failed_at(error: ClientError) -> int | None:
    """The index of the first transaction item whose condition failed, if any."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons: list[dict[str, Any]] = error.response.get("CancellationReasons") or []  # type: ignore[assignment]
    return next((index for index, reason in enumerate(reasons) if reason.get("Code") == "ConditionalCheckFailed"), None)


@dataclass(frozen=True)
class ChannelRecord:
    channel: ChannelName
    enabled: bool
    settings: dict[str, Any]
    credentials_ciphertext: bytes | None
    updated_at: datetime
    reconnect_reason: str | None = None
    """Set when the provider refused the credentials: the next publication skips the channel."""


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    token: str = ""
    attempts: int = 0
    status: str | None = None
    """The status found: before this claim when `claimed` (a crashed worker's `sending`, a `retrying`…), else now."""
    error: DeliveryError | None = None
    """When `claimed`: the last attempt's error, if it left one."""
    outcome_unknown: bool = False
    """When `claimed`: some earlier attempt ended without saying whether the provider made the post (kept until
    the delivery ends, whatever later attempts answered: that post may still be there)."""


@dataclass(frozen=True)
class ChunkClaim:
    outcome: ClaimOutcome
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class FanoutState:
    """A chunked delivery as its item records it (crieur.delivery)."""

    status: str
    chunks_total: int | None
    """None until the plan is recorded."""
    chunks_done: int = 0
    queued: bool = False
    """Every chunk message was queued once."""
    recipients: RecipientCounts | None = None
    failure: str | None = None
    """The last reason a recipient was not reached (no personal data)."""

    @property
    def complete(self) -> bool:
        return self.chunks_total is not None and self.chunks_done >= self.chunks_total


@dataclass(frozen=True)
class Metering:
    """One usage line, written in the transaction of what it pays for: a publication's creation or release,
    a delivery's outcome, a chunk's completion."""

    month: str
    unit: str
    unit_price: Decimal
    quantity: int = 1

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class Progress:
    """How far a publication's deliveries are counted (its head item): what a delivery's final write needs to
    count itself and, when it is the last, to set the publication's final status in the same transaction."""

    status: str
    channel_count: int
    settled: frozenset[str]
    sent: int = 0
    failed: int = 0

    @classmethod
    def of_head(cls, head: dict[str, Any]) -> Progress:
        settled: Any = head.get("settled", set())
        return cls(
            status=str(head["status"]),
            channel_count=int(str(head["channel_count"])),
            settled=frozenset(str(channel) for channel in settled),
            sent=int(str(head.get("sent_count", 0))),
            failed=int(str(head.get("failed_count", 0))),
        )

    @classmethod
    def guessed(cls, publication: Publication) -> Progress:
        """What a publication read earlier suggests (its deliveries' final statuses); a write's conditions check
        it before relying on it."""
        final = {
            channel: delivery.status
            for channel, delivery in publication.deliveries.items()
            if delivery.status in ("sent", "failed", "skipped")
        }
        outcomes = list(final.values())
        return cls(
            status=publication.status,
            channel_count=len(publication.deliveries),
            settled=frozenset(final),
            sent=outcomes.count("sent"),
            failed=outcomes.count("failed"),
        )

    def counting(self, channel: str, outcome: Outcome) -> Progress:
        return Progress(
            status=self.status,
            channel_count=self.channel_count,
            settled=self.settled | {channel},
            sent=self.sent + (outcome == "sent"),
            failed=self.failed + (outcome == "failed"),
        )

    def final(self) -> PublicationStatus | None:
        """The publication's final status once every delivery is counted."""
        return _final_status(self.sent, self.failed) if len(self.settled) >= self.channel_count else None


class Store:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def table(self) -> Table:
        return aws.dynamodb().Table(self.table_name)

    def _query_all(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item a query matches, page after page."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.table.query(**query)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            query = {**query, "ExclusiveStartKey": page["LastEvaluatedKey"]}

    def _commune_items(self, commune: str, prefix: str, *, consistent: bool = False) -> list[dict[str, Any]]:
        """A commune's items of one kind (their sort keys start with `prefix`)."""
        from boto3.dynamodb.conditions import Key

        condition = Key("pk").eq(_commune_pk(commune)) & Key("sk").begins_with(prefix)
        return self._query_all({"KeyConditionExpression": condition, "ConsistentRead": consistent})

    def _transact(self, items: list[dict[str, Any]]) -> None:
        aws.dynamodb().meta.client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]

    # --- communes and keys ------------------------------------------------------------------------------

    def create_commune(self, commune: Commune) -> None:
        try:
            self.table.put_item(
                Item={
                    "pk": _commune_pk(commune.insee),
                    "sk": "COMMUNE",
                    "type": "commune",
                    "doc": commune.model_dump_json(),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _conditional_failed(error):
                raise AlreadyExists(commune.insee) from error
            raise

    def get_commune(self, insee: str) -> Commune | None:
        item = self.table.get_item(Key={"pk": _commune_pk(insee), "sk": "COMMUNE"}).get("Item")
        return Commune.model_validate_json(str(item["doc"])) if item else None

    def add_api_key(self, commune: str, key_id: str, key_hash: str) -> None:
        now = utc_now().isoformat()
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": {**api_key_item(key_hash), "commune": commune, "key_id": key_id},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": {
                            "pk": _commune_pk(commune),
                            "sk": f"KEY#{key_id}",
                            "key_hash": key_hash,
                            "created_at": now,
                        },
                    }
                },
            ]
        )

    def revoke_api_key(self, commune: str, key_id: str) -> bool:
        listed = self.table.get_item(Key={"pk": _commune_pk(commune), "sk": f"KEY#{key_id}"}).get("Item")
        if not listed:
            return False
        self._transact(
            [
                {
                    "Delete": {
                        "TableName": self.table_name,
                        "Key": api_key_item(str(listed["key_hash"])),
                    }
                },
                {
                    "Delete": {
                        "TableName": self.table_name,
                        "Key": {"pk": _commune_pk(commune), "sk": f"KEY#{key_id}"},
                    }
                },
            ]
        )
        return True

    # --- channel settings -------------------------------------------------------------------------------

    def put_channel(
        self,
        commune: str,
        channel: ChannelName,
        enabled: bool,
        settings: dict[str, Any],
        credentials_ciphertext: bytes | None,
    ) -> ChannelRecord:
        """Writes a channel's settings; `None` credentials keep the stored ones."""
        now = utc_now()
        names = {"#enabled": "enabled", "#settings": "settings", "#updated": "updated_at"}
        values: dict[str, Any] = {
            ":enabled": enabled,
            ":settings": json.dumps(settings),
            ":updated": now.isoformat(),
        }
        expression = "SET #enabled = :enabled, #settings = :settings, #updated = :updated"
        if credentials_ciphertext is not None:
            # New credentials are the reconnection the mairie was asked for.
            expression += ", credentials = :credentials REMOVE reconnect_reason"
            values[":credentials"] = credentials_ciphertext
        item = self.table.update_item(
            Key={"pk": _commune_pk(commune), "sk": f"CH#{channel}"},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
        return self._channel_record(item)

    @staticmethod
    def _channel_record(item: dict[str, Any]) -> ChannelRecord:
        credentials = item.get("credentials")
        return ChannelRecord(
            channel=str(item["sk"]).removeprefix("CH#"),  # type: ignore[arg-type]
            enabled=bool(item["enabled"]),
            settings=json.loads(str(item["settings"])),
            credentials_ciphertext=bytes(credentials.value if hasattr(credentials, "value") else credentials)
            if credentials is not None
            else None,
            updated_at=datetime.fromisoformat(str(item["updated_at"])),
            reconnect_reason=str(item["reconnect_reason"]) if item.get("reconnect_reason") else None,
        )

    def set_reconnect_reason(self, commune: str, channel: str, reason: str | None) -> bool:
        """Marks (or, with None, clears) a channel whose credentials the provider refused.

        True when this call changed the mark (a channel newly marked, or a mark cleared): the
        channel.needs_reconnect event is emitted once per marking, not for every refusal."""
        try:
            old = self.table.update_item(
                Key={"pk": _commune_pk(commune), "sk": f"CH#{channel}"},
                ConditionExpression="attribute_exists(pk)",
                ReturnValues="UPDATED_OLD",
                **(
                    {
                        "UpdateExpression": "SET reconnect_reason = :reason",
                        "ExpressionAttributeValues": {":reason": reason},
                    }
                    if reason
                    else {"UpdateExpression": "REMOVE reconnect_reason"}
                ),
            ).get("Attributes", {})
        except ClientError as error:
            if not _conditional_failed(error):  # the channel was removed meanwhile: nothing to mark
                raise
            return False
        return bool(reason) != bool(old.get("reconnect_reason"))

    def get_channel(self, commune: str, channel: ChannelName) -> ChannelRecord | None:
        item = self.table.get_item(Key={"pk": _commune_pk(commune), "sk": f"CH#{channel}"}).get("Item")
        return self._channel_record(item) if item else None

    def list_channels(self, commune: str) -> list[ChannelRecord]:
        return [self._channel_record(item) for item in self._commune_items(commune, "CH#")]

    def delete_channel(self, commune: str, channel: ChannelName) -> bool:
        old = self.table.delete_item(
            Key={"pk": _commune_pk(commune), "sk": f"CH#{channel}"}, ReturnValues="ALL_OLD"
        ).get("Attributes")
        return old is not None

    # --- publications and deliveries --------------------------------------------------------------------

    def create_publication(self, publication: Publication, *, fee: Metering | None = None) -> None:
        """The publication, one pending delivery per target channel and, when it goes out at once, its `fee` (the
        usage line and the month's counters), in one transaction."""
        pk = _commune_pk(publication.commune)
        content = PublicationContent.model_validate(
            publication.model_dump(include=set(PublicationContent.model_fields))
        )
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": {
                        "pk": pk,
                        "sk": _publication_sk(publication.id),
                        "type": "publication",
                        "gsi1pk": f"{pk}#P",
                        "gsi1sk": publication.id,
                        "id": publication.id,
                        "status": publication.status,
                        "created_at": publication.created_at.isoformat(),
                        "doc": content.model_dump_json(),
                        "channel_count": len(publication.deliveries),
                        "version": 1,
                        **(
                            {"cost_estimate_eur": Decimal(str(publication.cost_estimate_eur))}
                            if publication.cost_estimate_eur is not None
                            else {}
                        ),
                        **({"over_budget": True} if publication.over_budget else {}),
                        **({"billed_ht": fee.amount} if fee is not None else {}),
                        **_initially_settled(publication),
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        for channel, delivery in publication.deliveries.items():
            items.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": {
                            "pk": pk,
                            "sk": _delivery_sk(publication.id, channel),
                            "type": "delivery",
                            "status": delivery.status,
                            "attempts": 0,
                            "updated_at": delivery.updated_at.isoformat(),
                            **({"error": delivery.error.model_dump(exclude_none=True)} if delivery.error else {}),
                        },
                    }
                }
            )
        if fee is not None:
            items += self._usage_items(publication.commune, publication.id, None, fee)
        self._transact(items)

    def get_publication(self, commune: str, publication_id: str) -> Publication | None:
        from boto3.dynamodb.conditions import Key

        items = self.table.query(
            KeyConditionExpression=Key("pk").eq(_commune_pk(commune))
            & Key("sk").begins_with(_publication_sk(publication_id)),
            ConsistentRead=True,
        )["Items"]
        head = next((item for item in items if item.get("type") == "publication"), None)
        if head is None or head["sk"] != _publication_sk(publication_id):
            return None
        deliveries = {
            str(item["sk"]).rsplit("#D#", 1)[1]: self._delivery(item)
            for item in items
            if item.get("type") == "delivery"
        }
        return self._publication(commune, head, deliveries)

    @staticmethod
    def _delivery(item: dict[str, Any]) -> Delivery:
        error = item.get("error")
        return Delivery(
            status=item["status"],
            attempts=int(item.get("attempts", 0)),
            external_id=item.get("external_id"),
            url=item.get("url"),
            error=DeliveryError.model_validate(error) if error else None,
            updated_at=datetime.fromisoformat(str(item["updated_at"])),
            recipients=_recipient_counts(item),
        )

    @staticmethod
    def _publication(commune: str, head: dict[str, Any], deliveries: dict[str, Delivery]) -> Publication:
        return Publication.model_validate(
            {
                **json.loads(str(head["doc"])),
                "id": head["id"],
                "commune": commune,
                "status": head["status"],
                "created_at": head["created_at"],
                "deliveries": deliveries,
                "cost_estimate_eur": float(head["cost_estimate_eur"]) if "cost_estimate_eur" in head else None,
                "billed_ht_eur": float(head["billed_ht"]) if "billed_ht" in head else 0.0,
                "over_budget": bool(head.get("over_budget", False)),
            }
        )

    def list_publications(
        self, commune: str, limit: int, cursor: str | None, status: PublicationStatus | None
    ) -> tuple[list[Publication], str | None]:
        """Newest first (ids are ULIDs, so they sort by time). The cursor is opaque to clients."""
        from boto3.dynamodb.conditions import Attr, Key

        partition = f"{_commune_pk(commune)}#P"
        query: dict[str, Any] = {
            "IndexName": "gsi1",
            "KeyConditionExpression": Key("gsi1pk").eq(partition),
            "ScanIndexForward": False,
            # One more than asked tells whether a next page exists. A status filter applies after the
            # read: read more per request so that a page is rarely short.
            "Limit": max(limit + 1, 50) if status else limit + 1,
        }
        if status:
            query["FilterExpression"] = Attr("status").eq(status)
        start = _decode_cursor(cursor, partition) if cursor else None
        heads: list[dict[str, Any]] = []
        while len(heads) <= limit:
            if start:
                query["ExclusiveStartKey"] = start
            page = self.table.query(**query)
            heads.extend(page["Items"])
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        next_cursor = None
        if len(heads) > limit:
            last = heads[limit - 1]
            next_cursor = _encode_cursor({name: last[name] for name in ("pk", "sk", "gsi1pk", "gsi1sk")})
        ids = [str(head["id"]) for head in heads[:limit]]
        if status or not ids:  # a filtered page is not contiguous: its range may hold many other publications
            publications = [self.get_publication(commune, publication_id) for publication_id in ids]
            return [p for p in publications if p is not None], next_cursor
        return self._publications_between(commune, ids), next_cursor

    def _publications_between(self, commune: str, ids: list[str]) -> list[Publication]:
        """The publications `ids` (newest first, contiguous), with their deliveries, read in one query of the
        range of sort keys they span instead of one query each."""
        from boto3.dynamodb.conditions import Key

        span = Key("sk").between(_publication_sk(ids[-1]), _publication_sk(ids[0]) + "#~")
        items = self._query_all(
            {"KeyConditionExpression": Key("pk").eq(_commune_pk(commune)) & span, "ConsistentRead": True}
        )
        heads = {str(item["id"]): item for item in items if item.get("type") == "publication"}
        deliveries: dict[str, dict[str, Delivery]] = {publication_id: {} for publication_id in heads}
        for item in items:
            if item.get("type") == "delivery":
                publication_id, _, channel = str(item["sk"]).removeprefix("P#").partition("#D#")
                deliveries.setdefault(publication_id, {})[channel] = self._delivery(item)
        return [self._publication(commune, heads[i], deliveries[i]) for i in ids if i in heads]

    def claim_delivery(self, commune: str, publication_id: str, channel: str, token: str, lease_seconds: int) -> Claim:
        """pending|retrying (or a crashed worker's expired sending) → sending, for this worker only."""
        now = int(time.time())
        try:
            item = self.table.update_item(
                Key={"pk": _commune_pk(commune), "sk": _delivery_sk(publication_id, channel)},
                UpdateExpression="SET #s = :sending, lease_until = :lease, claim_token = :token, "
                "updated_at = :updated ADD attempts :one",
                ConditionExpression="attribute_exists(pk) AND (#s IN (:pending, :retrying) "
                "OR (#s = :sending AND lease_until < :now))",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":sending": "sending",
                    ":pending": "pending",
                    ":retrying": "retrying",
                    ":lease": now + lease_seconds,
                    ":now": now,
                    ":token": token,
                    ":updated": utc_now().isoformat(),
                    ":one": 1,
                },
                ReturnValues="ALL_OLD",
            )["Attributes"]
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            current = self.table.get_item(
                Key={"pk": _commune_pk(commune), "sk": _delivery_sk(publication_id, channel)},
                ConsistentRead=True,
            ).get("Item")
            if current is None:
                return Claim("missing")
            state = str(current["status"])
            return Claim("busy" if state == "sending" else "final", status=state)
        last_error: Any = item.get("error")
        return Claim(
            "claimed",
            token=token,
            attempts=int(str(item.get("attempts", 0))) + 1,
            status=str(item["status"]),
            error=DeliveryError.model_validate(last_error) if last_error else None,
            outcome_unknown=bool(item.get("outcome_unknown")),
        )

    def record_delivery(
        self,
        commune: str,
        publication_id: str,
        channel: str,
        token: str,
        status: str,
        *,
        external_id: str | None = None,
        url: str | None = None,
        error: DeliveryError | None = None,
        outcome_unknown: bool = False,
    ) -> bool:
        """Writes the outcome while this worker's claim still holds. False when another worker took over.
        `outcome_unknown`: this or an earlier attempt may have made the post (see Claim); never unset."""
        update = self._outcome_update(
            commune,
            publication_id,
            channel,
            token,
            status,
            external_id=external_id,
            url=url,
            error=error,
            outcome_unknown=outcome_unknown,
        )
        return self._update_if(update.pop("Key"), **update)

    def _outcome_update(
        self,
        commune: str,
        publication_id: str,
        channel: str,
        token: str,
        status: str,
        *,
        external_id: str | None,
        url: str | None,
        error: DeliveryError | None,
        outcome_unknown: bool = False,
    ) -> dict[str, Any]:
        """The update writing a delivery's outcome, on the condition that this worker's claim still holds."""
        values: dict[str, Any] = {":status": status, ":updated": utc_now().isoformat(), ":token": token}
        names = {"#s": "status", "#updated": "updated_at", "#lease": "lease_until"}
        assignments = ["#s = :status", "#updated = :updated"]
        if outcome_unknown:
            names["#unknown"] = "outcome_unknown"
            values[":unknown"] = True
            assignments.append("#unknown = :unknown")
        removals = ["#lease"]
        for name, value in (
            ("external_id", external_id),
            ("url", url),
            ("error", error.model_dump(exclude_none=True) if error else None),
        ):
            names[f"#{name}"] = name
            if value is None:
                if name == "error":  # an outcome replaces the last attempt's error; ids and URLs stay
                    removals.append(f"#{name}")
                else:
                    del names[f"#{name}"]
                continue
            assignments.append(f"#{name} = :{name}")
            values[f":{name}"] = value
        return {
            "Key": {"pk": _commune_pk(commune), "sk": _delivery_sk(publication_id, channel)},
            "UpdateExpression": f"SET {', '.join(assignments)} REMOVE {', '.join(removals)}",
            "ConditionExpression": "claim_token = :token",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def finish_delivery(
        self,
        commune: str,
        publication_id: str,
        channel: str,
        token: str,
        outcome: Outcome,
        *,
        external_id: str | None = None,
        url: str | None = None,
        error: DeliveryError | None = None,
        metering: Metering | None = None,
        seen: Publication | None = None,
    ) -> tuple[bool, PublicationStatus | None]:
        """A claimed delivery's outcome, its usage line and its count on the publication (with the publication's
        final status when it is the last to settle), in ONE transaction: all of them, or none.

        The outcome's condition (this worker's claim still holds) comes first: when it fails, nothing is written
        and the answer is (False, None). `seen` is the publication as read before sending: it tells whether this
        delivery is likely the last one; the transaction's conditions check it, and a wrong guess (another
        delivery settled meanwhile) is read again and retried. A usage line already written (a replay of a
        delivery metered by an earlier attempt) is not added again. Returns (written, the final status once known).
        """
        update = self._outcome_update(
            commune, publication_id, channel, token, outcome, external_id=external_id, url=url, error=error
        )
        return self._write_final(commune, publication_id, channel, outcome, update, metering=metering, seen=seen)

    def _write_final(
        self,
        commune: str,
        publication_id: str,
        channel: str,
        outcome: Outcome,
        delivery_update: dict[str, Any],
        *,
        metering: Metering | None,
        seen: Publication | None,
    ) -> tuple[bool, PublicationStatus | None]:
        """One transaction: `delivery_update` (its condition first), the publication's count and cost, the usage
        line and the month's counters; retried at once on a conflict or a wrong guess of the publication's count."""
        progress = Progress.guessed(seen) if seen is not None else None
        read = False
        attempts = 0
        while True:
            if progress is None and not read:
                progress, read = self._progress(commune, publication_id), True
            settle, final = (None, None) if progress is None else self._settle_update(progress, channel, outcome)
            publication = self._publication_update(commune, publication_id, settle, metering)
            items = [{"Update": {"TableName": self.table_name, **delivery_update}}]
            if publication is not None:  # when its condition fails, the publication as it is comes back with it
                items.append(
                    {
                        "Update": {
                            "TableName": self.table_name,
                            **publication,
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    }
                )
            line = len(items)
            if metering is not None:
                items += self._usage_items(commune, publication_id, channel, metering)
            try:
                self._transact(items)
            except ClientError as error:
                failed = _condition_failed_at(error)
                if failed == 0:  # the claim was lost: another worker writes the outcome
                    return False, None
                attempts += 1
                if attempts == FINAL_WRITE_ATTEMPTS:
                    raise  # conflicts that last: the message comes back, nothing is lost
                if failed == 1 and publication is not None:  # another delivery settled meanwhile: count again
                    progress = _progress_of(_returned_item(error, 1))
                    read = progress is not None
                elif failed == line:
                    metering = None  # billed already by an earlier attempt (a replay): never twice
                elif _conflicted(error):
                    time.sleep(0.05 * 2**attempts)  # deliveries of one commune share the month's counters
                else:
                    raise  # a throttle: the message comes back
            else:
                return True, final

    def _progress(self, commune: str, publication_id: str) -> Progress | None:
        head = self.table.get_item(
            Key={"pk": _commune_pk(commune), "sk": _publication_sk(publication_id)}, ConsistentRead=True
        ).get("Item")
        return _progress_of(head)

    @staticmethod
    def _settle_update(
        progress: Progress, channel: str, outcome: Outcome
    ) -> tuple[tuple[list[str], list[str], list[str], dict[str, Any]], PublicationStatus | None]:
        """The publication's part of a delivery's final write, as (SET, ADD, conditions, values), and the final
        status it sets. Its conditions hold only while `progress` is right about what matters: not the last
        delivery (whatever the others do meanwhile), or the last one with these counts."""
        sets: list[str] = []
        adds: list[str] = []
        conditions = ["attribute_exists(pk)"]
        values: dict[str, Any] = {":name": channel}
        after = progress
        if channel in progress.settled:  # counted already (a replay): at most the final status is left to set
            conditions.append("contains(settled, :name)")
        else:
            adds += ["settled :channel", f"{outcome}_count :one"]
            values.update({":channel": {channel}, ":one": 1})
            conditions.append("NOT contains(settled, :name)")
            after = progress.counting(channel, outcome)
        final = after.final()
        if final is None:
            if channel not in progress.settled:
                conditions.append("(attribute_not_exists(settled) OR size(settled) < :others)")
                values[":others"] = progress.channel_count - 1
            return (sets, adds, conditions, values), None
        conditions.append(
            "attribute_exists(settled) AND size(settled) = :size"
            if progress.settled
            else "attribute_not_exists(settled)"
        )
        if progress.settled:
            values[":size"] = len(progress.settled)
        for name, count in (("sent_count", progress.sent), ("failed_count", progress.failed)):
            conditions.append(f"{name} = :{name}" if count else f"(attribute_not_exists({name}) OR {name} = :zero)")
            values[f":{name}" if count else ":zero"] = count
        conditions.append("#s = :status")
        values[":status"] = progress.status
        if progress.status == "publishing":
            sets.append("#s = :final")
            values[":final"] = final
        return (sets, adds, conditions, values), final

    @staticmethod
    def _publication_update(
        commune: str,
        publication_id: str,
        settle: tuple[list[str], list[str], list[str], dict[str, Any]] | None,
        metering: Metering | None,
    ) -> dict[str, Any] | None:
        """The one update of the publication a transaction may make: its count (`settle`) and its cost."""
        sets, adds, conditions, values = settle or ([], [], [], {})
        if metering is not None:
            adds = [*adds, "billed_ht :billed"]
            values = {**values, ":billed": metering.amount}
        if not sets and not adds:
            return None
        clauses = [f"SET {', '.join(sets)}" if sets else "", f"ADD {', '.join(adds)}" if adds else ""]
        expression = " ".join(clause for clause in clauses if clause)
        update: dict[str, Any] = {
            "Key": {"pk": _commune_pk(commune), "sk": _publication_sk(publication_id)},
            "UpdateExpression": expression,
            "ExpressionAttributeValues": values,
        }
        if conditions:
            update["ConditionExpression"] = " AND ".join(conditions)
        if "#s" in update["UpdateExpression"] + update.get("ConditionExpression", ""):
            update["ExpressionAttributeNames"] = {"#s": "status"}
        return update

    def finish_if_settled(self, commune: str, publication_id: str) -> PublicationStatus | None:
        """Sets the final status of a publication whose every delivery is already settled (all skipped)."""
        head = self.table.get_item(
            Key={"pk": _commune_pk(commune), "sk": _publication_sk(publication_id)}, ConsistentRead=True
        ).get("Item")
        return self._finalize(commune, publication_id, head) if head else None

    def settle(self, commune: str, publication_id: str, channel: str, outcome: Outcome) -> PublicationStatus | None:
        """Counts a channel's final outcome once; when every channel is settled, sets the final status.

        Idempotent: the `settled` set makes a replay (a redelivered message) count nothing twice.
        Returns the publication's final status once known.
        """
        key = {"pk": _commune_pk(commune), "sk": _publication_sk(publication_id)}
        try:
            head = self.table.update_item(
                Key=key,
                UpdateExpression="ADD settled :channel, #count :one",
                ConditionExpression="attribute_exists(pk) AND NOT contains(settled, :name)",
                ExpressionAttributeNames={"#count": f"{outcome}_count"},
                ExpressionAttributeValues={":channel": {channel}, ":name": channel, ":one": 1},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            found = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
            if found is None:
                return None
            head = found
        return self._finalize(commune, publication_id, head)

    def _finalize(self, commune: str, publication_id: str, head: dict[str, Any]) -> PublicationStatus | None:
        settled: Any = head.get("settled", set())
        if len(settled) < int(str(head["channel_count"])):
            return None
        final = _final_status(int(str(head.get("sent_count", 0))), int(str(head.get("failed_count", 0))))
        self._update_if(  # another worker may have written it first
            {"pk": _commune_pk(commune), "sk": _publication_sk(publication_id)},
            UpdateExpression="SET #s = :final",
            ConditionExpression="#s = :publishing",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":final": final, ":publishing": "publishing"},
        )
        return final

    def _update_if(self, key: dict[str, Any], **update: Any) -> bool:
        """One conditional update; False when its condition does not hold."""
        try:
            self.table.update_item(Key=key, **update)
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    # --- chunked deliveries (crieur.delivery: channels that reach many recipients) ---------------------------
    # On the delivery item: the plan (`chunks_total`, `recipients_total`, `queued`) and what the completed
    # chunks added up (`chunks_done`, `recipients_sent`, `recipients_failed`, `failure`).
    # `FC#<publication>#<channel>#<chunk>`: one chunk's recipient ids, its claim and, once, its completion.
    # `FR#<publication>#<channel>#<chunk>#<recipient>`: that recipient is done (its result and billed units).

    def fanout_state(self, commune: str, publication_id: str, channel: str) -> FanoutState | None:
        item = self.table.get_item(
            Key={"pk": _commune_pk(commune), "sk": _delivery_sk(publication_id, channel)}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return FanoutState(
            status=str(item["status"]),
            chunks_total=int(str(item["chunks_total"])) if "chunks_total" in item else None,
            chunks_done=int(str(item.get("chunks_done", 0))),
            queued=bool(item.get("queued", False)),
            recipients=_recipient_counts(item),
            failure=str(item["failure"]) if item.get("failure") else None,
        )

    def plan_fanout(self, commune: str, publication_id: str, channel: str, token: str, chunks: list[list[str]]) -> bool:
        """Writes the chunks, then records the plan on the delivery while this worker's claim holds, once.

        Chunks written by a worker that crashed before recording its plan are overwritten (the plan's count
        says which are part of it). False when the claim was lost or a plan already exists."""
        pk = _commune_pk(commune)
        expires = int(time.time()) + MARKER_SECONDS
        with self.table.batch_writer() as batch:
            for number, recipients in enumerate(chunks):
                batch.put_item(
                    Item={
                        "pk": pk,
                        "sk": _chunk_sk(publication_id, channel, number),
                        "type": "chunk",
                        "recipients": recipients,
                        "ttl": expires,
                    }
                )
        return self._update_if(
            {"pk": pk, "sk": _delivery_sk(publication_id, channel)},
            UpdateExpression="SET chunks_total = :chunks, recipients_total = :recipients, chunks_done = :zero, "
            "recipients_sent = :zero, recipients_failed = :zero, updated_at = :updated",
            ConditionExpression="claim_token = :token AND attribute_not_exists(chunks_total)",
            ExpressionAttributeValues={
                ":chunks": len(chunks),
                ":recipients": sum(len(recipients) for recipients in chunks),
                ":zero": 0,
                ":updated": utc_now().isoformat(),
                ":token": token,
            },
        )

    def mark_fanout_queued(self, commune: str, publication_id: str, channel: str, token: str) -> None:
        """Every chunk message was queued: a redelivered publish message has nothing left to do."""
        self._update_if(
            {"pk": _commune_pk(commune), "sk": _delivery_sk(publication_id, channel)},
            UpdateExpression="SET queued = :true",
            ConditionExpression="claim_token = :token",
            ExpressionAttributeValues={":true": True, ":token": token},
        )

    def incomplete_chunks(self, commune: str, publication_id: str, channel: str, chunks_total: int) -> list[int]:
        """The chunks of the plan not completed yet."""
        prefix = f"FC#{publication_id}#{channel}#"
        completed = {
            int(str(item["sk"]).removeprefix(prefix))
            for item in self._query_all(
                {
                    "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                    "FilterExpression": "attribute_exists(completed_at)",
                    "ProjectionExpression": "sk",
                    "ExpressionAttributeValues": {":pk": _commune_pk(commune), ":prefix": prefix},
                    "ConsistentRead": True,
                }
            )
        }
        return [number for number in range(chunks_total) if number not in completed]

    def claim_chunk(
        self, commune: str, publication_id: str, channel: str, chunk: int, *, token: str, lease_seconds: int
    ) -> ChunkClaim:
        """One worker at a time per chunk (a lease, as for deliveries); `final` once it completed."""
        key = {"pk": _commune_pk(commune), "sk": _chunk_sk(publication_id, channel, chunk)}
        now = int(time.time())
        try:
            item = self.table.update_item(
                Key=key,
                UpdateExpression="SET lease_until = :lease, claim_token = :token ADD attempts :one",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(completed_at) "
                "AND (attribute_not_exists(lease_until) OR lease_until < :now)",
                ExpressionAttributeValues={":lease": now + lease_seconds, ":token": token, ":one": 1, ":now": now},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            current = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
            if current is None:
                return ChunkClaim("missing")
            return ChunkClaim("final" if "completed_at" in current else "busy")
        recipients: Any = item["recipients"]
        return ChunkClaim("claimed", tuple(str(recipient) for recipient in recipients))

    def note_fanout(self, commune: str, publication_id: str, channel: str, note: DeliveryError) -> None:
        """Says why a chunked delivery still sending waits (SMS legal hours); its outcome replaces the note."""
        self._update_if(
            {"pk": _commune_pk(commune), "sk": _delivery_sk(publication_id, channel)},
            UpdateExpression="SET #error = :note, updated_at = :updated",
            ConditionExpression="#s IN (:sending, :retrying)",
            ExpressionAttributeNames={"#s": "status", "#error": "error"},
            ExpressionAttributeValues={
                ":note": note.model_dump(exclude_none=True),
                ":updated": utc_now().isoformat(),
                ":sending": "sending",
                ":retrying": "retrying",
            },
        )

    def release_chunk(self, commune: str, publication_id: str, channel: str, chunk: int, token: str) -> None:
        """Ends this worker's lease early, so the chunk's next receive can claim it at once."""
        self._update_if(
            {"pk": _commune_pk(commune), "sk": _chunk_sk(publication_id, channel, chunk)},
            UpdateExpression="REMOVE lease_until",
            ConditionExpression="claim_token = :token",
            ExpressionAttributeValues={":token": token},
        )

    def recipient_results(
        self, commune: str, publication_id: str, channel: str, chunk: int
    ) -> dict[str, tuple[RecipientResult, int]]:
        """The chunk's recipients already done: id → (result, billed units)."""
        prefix = _recipient_prefix(publication_id, channel, chunk)
        return {
            str(item["sk"]).removeprefix(prefix): (item["result"], int(str(item.get("units", 0))))
            for item in self._commune_items(commune, prefix, consistent=True)
        }

    def mark_recipients(
        self,
        commune: str,
        publication_id: str,
        channel: str,
        chunk: int,
        results: list[tuple[str, RecipientResult, int]],
    ) -> None:
        """Marks recipients done (id, result, billed units), 25 to a write: a retry of the chunk skips them."""
        pk = _commune_pk(commune)
        prefix = _recipient_prefix(publication_id, channel, chunk)
        expires = int(time.time()) + MARKER_SECONDS
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for recipient, result, units in results:
                batch.put_item(
                    Item={"pk": pk, "sk": prefix + recipient, "result": result, "units": units, "ttl": expires}
                )

    def complete_chunk(
        self,
        commune: str,
        publication_id: str,
        channel: str,
        chunk: int,
        token: str,
        *,
        sent: int,
        failed: int,
        failure: str | None,
        metering: Metering | None,
    ) -> bool:
        """Completes a chunk exactly once, in one transaction: the chunk, its counts added to the delivery,
        and the usage it cost. False when it was completed already or another worker holds it."""
        pk = _commune_pk(commune)
        chunk_key = {"pk": pk, "sk": _chunk_sk(publication_id, channel, chunk)}
        counts = "ADD chunks_done :one, recipients_sent :sent, recipients_failed :failed SET updated_at = :updated"
        values: dict[str, Any] = {":one": 1, ":sent": sent, ":failed": failed, ":updated": utc_now().isoformat()}
        if failure:
            counts += ", failure = :failure"
            values[":failure"] = failure
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": chunk_key,
                    "UpdateExpression": "SET completed_at = :now, sent = :sent, failed = :failed REMOVE lease_until",
                    "ConditionExpression": "claim_token = :token AND attribute_not_exists(completed_at)",
                    "ExpressionAttributeValues": {
                        ":now": utc_now().isoformat(),
                        ":sent": sent,
                        ":failed": failed,
                        ":token": token,
                    },
                }
            },
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": {"pk": pk, "sk": _delivery_sk(publication_id, channel)},
                    "UpdateExpression": counts,
                    "ExpressionAttributeValues": values,
                }
            },
        ]
        if metering is not None and metering.quantity:
            items += self._meter_items(commune, publication_id, channel, metering, part=f"{chunk:05d}")
        attempts = 0
        while True:
            try:
                self._transact(items)
            except ClientError as error:
                if _first_condition_failed(error):  # the chunk: completed already, or its claim was lost
                    return False
                attempts += 1
                if not _conflicted(error) or attempts == COMPLETE_ATTEMPTS:
                    raise  # a throttle, or conflicts that last: the chunk's message comes back, nothing is lost
                time.sleep(0.05 * 2**attempts)  # chunks completing at once share the delivery and month counters
            else:
                return True

    def settle_fanout(
        self,
        commune: str,
        publication_id: str,
        channel: str,
        status: Outcome,
        *,
        external_id: str | None = None,
        error: DeliveryError | None = None,
    ) -> tuple[bool, PublicationStatus | None]:
        """Writes a chunked delivery's outcome once every chunk completed, with its count on the publication, in
        one transaction (as `finish_delivery`); (False, None) when it was written already."""
        values: dict[str, Any] = {
            ":status": status,
            ":updated": utc_now().isoformat(),
            ":sending": "sending",
            ":retrying": "retrying",
        }
        assignments = ["#s = :status", "updated_at = :updated"]
        if external_id is not None:
            assignments.append("external_id = :external_id")
            values[":external_id"] = external_id
        if error is not None:
            assignments.append("#error = :error")
            values[":error"] = error.model_dump(exclude_none=True)
        update = {
            "Key": {"pk": _commune_pk(commune), "sk": _delivery_sk(publication_id, channel)},
            "UpdateExpression": f"SET {', '.join(assignments)} REMOVE lease_until" + ("" if error else ", #error"),
            "ConditionExpression": "#s IN (:sending, :retrying) AND chunks_done >= chunks_total",
            "ExpressionAttributeNames": {"#s": "status", "#error": "error"},
            "ExpressionAttributeValues": values,
        }
        return self._write_final(commune, publication_id, channel, status, update, metering=None, seen=None)

    # --- scheduling -------------------------------------------------------------------------------------

    def scheduled_version(self, commune: str, publication_id: str) -> int | None:
        """The version of a publication while it is scheduled (each edit increments it), else None."""
        head = self.table.get_item(
            Key={"pk": _commune_pk(commune), "sk": _publication_sk(publication_id)}, ConsistentRead=True
        ).get("Item")
        if head is None or head["status"] != "scheduled":
            return None
        return int(str(head.get("version", 1)))

    def edit_scheduled(
        self, commune: str, publication_id: str, content: PublicationContent, version: int
    ) -> int | None:
        """Replaces a scheduled publication's content; the new version, or None if it is no longer scheduled."""
        try:
            head = self.table.update_item(
                Key={"pk": _commune_pk(commune), "sk": _publication_sk(publication_id)},
                UpdateExpression="SET doc = :doc ADD version :one",
                ConditionExpression="#s = :scheduled AND version = :version",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":doc": content.model_dump_json(),
                    ":one": 1,
                    ":scheduled": "scheduled",
                    ":version": version,
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if _conditional_failed(error):
                return None
            raise
        return int(str(head["version"]))

    def release_scheduled(self, commune: str, publication_id: str, version: int, *, fee: Metering) -> bool:
        """scheduled (at this version) → publishing, once, with its `fee` in the same transaction: a second
        firing or an edited-away version is refused, and bills nothing."""
        release = {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": _commune_pk(commune), "sk": _publication_sk(publication_id)},
                "UpdateExpression": "SET #s = :publishing ADD billed_ht :billed",
                "ConditionExpression": "#s = :scheduled AND version = :version",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {
                    ":publishing": "publishing",
                    ":scheduled": "scheduled",
                    ":version": version,
                    ":billed": fee.amount,
                },
            }
        }
        try:
            self._transact([release, *self._usage_items(commune, publication_id, None, fee)])
        except ClientError as error:
            if _first_condition_failed(error):
                return False
            raise  # a conflict on the month's counters, a throttle: the scheduler tries again
        return True

    def cancel_scheduled(self, commune: str, publication_id: str, channels: list[str]) -> bool:
        """scheduled → cancelled, with every delivery, in one transaction; False if no longer scheduled."""
        now = utc_now().isoformat()
        pk = _commune_pk(commune)
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": {"pk": pk, "sk": _publication_sk(publication_id)},
                    "UpdateExpression": "SET #s = :cancelled",
                    "ConditionExpression": "#s = :scheduled",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":cancelled": "cancelled", ":scheduled": "scheduled"},
                }
            },
            *(
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": {"pk": pk, "sk": _delivery_sk(publication_id, channel)},
                        "UpdateExpression": "SET #s = :cancelled, updated_at = :now",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":cancelled": "cancelled", ":now": now},
                    }
                }
                for channel in channels
            ),
        ]
        try:
            self._transact(items)
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    # --- usage and billing ------------------------------------------------------------------------------

    def meter(
        self,
        commune: str,
        publication_id: str,
        month: str,
        *,
        unit: str,
        channel: str | None,
        unit_price: Decimal,
        quantity: int = 1,
        part: str | None = None,
    ) -> bool:
        """Records one billed unit, exactly once: an append-only usage line (its key says which unit of
        which publication, so a replay or a second worker cannot add it again), the month's counters and
        the publication's actual cost, in one transaction. False when it was already recorded. (A delivery,
        a publication's creation or release meter in their own transaction: see `Metering`.)"""
        metering = Metering(month=month, unit=unit, unit_price=unit_price, quantity=quantity)
        try:
            self._transact(self._meter_items(commune, publication_id, channel, metering, part))
        except ClientError as error:
            if _first_condition_failed(error):
                return False
            raise  # a conflict with another transaction on the month's counters, a throttle: retried, never dropped
        return True

    def credit(self, commune: str, publication_id: str, metering: Metering) -> None:
        """Cancels a unit billed for nothing (a publication whose one SNS message could not be sent), once: a
        credit line of the opposite quantity beside the usage line (both stay: the lines are append-only)."""
        self.meter(
            commune,
            publication_id,
            metering.month,
            unit=metering.unit,
            channel=None,
            unit_price=metering.unit_price,
            quantity=-metering.quantity,
            part="credit",
        )

    def _meter_items(
        self, commune: str, publication_id: str, channel: str | None, metering: Metering, part: str | None = None
    ) -> list[dict[str, Any]]:
        """The usage line (once: `part` tells apart the lines of one publication's chunks), the month's
        counters and the publication's cost, as transaction items."""
        return [
            *self._usage_items(commune, publication_id, channel, metering, part),
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": {"pk": _commune_pk(commune), "sk": _publication_sk(publication_id)},
                    "UpdateExpression": "ADD billed_ht :amount",
                    "ExpressionAttributeValues": {":amount": metering.amount},
                }
            },
        ]

    def _usage_items(
        self, commune: str, publication_id: str, channel: str | None, metering: Metering, part: str | None = None
    ) -> list[dict[str, Any]]:
        """The usage line (its condition first: a replay cannot add it twice) and the month's counters; the
        publication's `billed_ht` is the caller's, in the one update of the publication its transaction makes."""
        pk = _commune_pk(commune)
        amount = metering.amount
        line = {
            "pk": pk,
            "sk": f"UL#{metering.month}#{publication_id}#{metering.unit}#{channel or '-'}"
            + (f"#{part}" if part else ""),
            "publication_id": publication_id,
            "unit": metering.unit,
            "channel": channel or "",
            "quantity": metering.quantity,
            "unit_price": metering.unit_price,
            "amount": amount,
            "at": utc_now().isoformat(),
        }
        return [
            {"Put": {"TableName": self.table_name, "Item": line, "ConditionExpression": "attribute_not_exists(pk)"}},
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": {"pk": pk, "sk": f"U#{metering.month}"},
                    "UpdateExpression": "ADD amount_ht :amount, #units :quantity",
                    "ExpressionAttributeNames": {"#units": f"units_{metering.unit}"},
                    "ExpressionAttributeValues": {":amount": amount, ":quantity": metering.quantity},
                }
            },
        ]

    def month_amount_ht(self, commune: str, month: str) -> Decimal:
        item = self.table.get_item(Key={"pk": _commune_pk(commune), "sk": f"U#{month}"}, ConsistentRead=True).get(
            "Item"
        )
        return Decimal(str(item.get("amount_ht", 0))) if item else Decimal(0)

    def usage_lines(self, commune: str, month: str) -> list[dict[str, Any]]:
        return self._commune_items(commune, f"UL#{month}#", consistent=True)

    def set_budget(self, commune: str, monthly_eur: Decimal | None) -> None:
        """A commune's monthly budget (TTC); None removes it."""
        key = {"pk": _commune_pk(commune), "sk": "COMMUNE"}
        if monthly_eur is None:
            self.table.update_item(Key=key, UpdateExpression="REMOVE monthly_budget_eur")
        else:
            self.table.update_item(
                Key=key,
                UpdateExpression="SET monthly_budget_eur = :budget",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":budget": monthly_eur},
            )

    def budget(self, commune: str) -> Decimal | None:
        item = self.table.get_item(Key={"pk": _commune_pk(commune), "sk": "COMMUNE"}).get("Item")
        value = item.get("monthly_budget_eur") if item else None
        return Decimal(str(value)) if value is not None else None

    def list_communes(self) -> list[str]:
        """Every commune's INSEE code (the operator's monthly export; a scan, never on a request path)."""
        from boto3.dynamodb.conditions import Attr

        scan: dict[str, Any] = {"FilterExpression": Attr("sk").eq("COMMUNE"), "ProjectionExpression": "pk"}
        found: list[str] = []
        while True:
            page = self.table.scan(**scan)
            found += [str(item["pk"]).removeprefix("C#") for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return sorted(found)
            scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- weather alerts ---------------------------------------------------------------------------------

    def put_weather_settings(self, commune: str, departement: str, settings: WeatherAlertSettings) -> None:
        """The commune's opt-in, and its entry in the département's list of subscribers when enabled."""
        doc = settings.model_dump_json()
        subscriber = {"pk": f"WOPT#{departement}", "sk": _commune_pk(commune)}
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": {"pk": _commune_pk(commune), "sk": "ALERTS#weather", "doc": doc},
                }
            },
            {"Put": {"TableName": self.table_name, "Item": {**subscriber, "commune": commune, "doc": doc}}}
            if settings.enabled
            else {"Delete": {"TableName": self.table_name, "Key": subscriber}},
        ]
        self._transact(items)

    def get_weather_settings(self, commune: str) -> WeatherAlertSettings | None:
        item = self.table.get_item(Key={"pk": _commune_pk(commune), "sk": "ALERTS#weather"}).get("Item")
        return WeatherAlertSettings.model_validate_json(str(item["doc"])) if item else None

    def weather_subscribers(self, departement: str) -> list[tuple[str, WeatherAlertSettings]]:
        from boto3.dynamodb.conditions import Key

        items = self._query_all({"KeyConditionExpression": Key("pk").eq(f"WOPT#{departement}")})
        return [(str(item["commune"]), WeatherAlertSettings.model_validate_json(str(item["doc"]))) for item in items]

    def weather_state(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """The national vigilance state (stored alerts) and the last document seen per source."""
        item = self.table.get_item(Key={"pk": "W#FR", "sk": "STATE"}, ConsistentRead=True).get("Item")
        if not item:
            return [], {}
        return json.loads(str(item["alerts"])), json.loads(str(item["documents"]))

    def save_weather_state(self, alerts: list[dict[str, Any]], documents: dict[str, dict[str, Any]]) -> None:
        self.table.put_item(
            Item={
                "pk": "W#FR",
                "sk": "STATE",
                "alerts": json.dumps(alerts),
                "documents": json.dumps(documents),
                "updated_at": utc_now().isoformat(),
            }
        )

    def _claim_once(self, commune: str, sort_key: str) -> bool:
        """True for the first caller only: a marker item written if absent."""
        try:
            self.table.put_item(
                Item={"pk": _commune_pk(commune), "sk": sort_key, "created_at": utc_now().isoformat()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def claim_broadcast(self, commune: str, dedupe_key: str) -> bool:
        """True once per (commune, vigilance event): a re-run or a second source never broadcasts twice."""
        return self._claim_once(commune, f"WX#{dedupe_key}")

    def record_broadcast(self, commune: str, dedupe_key: str, alert_key: str, publication_id: str) -> None:
        """Which publication a claimed broadcast became, so that the end of the vigilance can retract it."""
        self.table.update_item(
            Key={"pk": _commune_pk(commune), "sk": f"WX#{dedupe_key}"},
            UpdateExpression="SET alert_key = :alert, publication_id = :publication",
            ExpressionAttributeValues={":alert": alert_key, ":publication": publication_id},
        )

    def broadcasts_of(self, commune: str, alert_keys: set[str]) -> list[str]:
        """The publications a commune broadcast for these alerts (the alert, its upgrades and updates)."""
        return [
            str(item["publication_id"])
            for item in self._commune_items(commune, "WX#")
            if item.get("alert_key") in alert_keys and item.get("publication_id")
        ]

    def release_broadcast(self, commune: str, dedupe_key: str) -> None:
        """Forgets a claim whose publication could not be created, so the next tick tries again."""
        self.table.delete_item(Key={"pk": _commune_pk(commune), "sk": f"WX#{dedupe_key}"})

    # --- outbound event webhooks (crieur.events, crieur.eventhooks) -------------------------------------
    # `C#<commune>` / `EVT#<endpoint id>`: URL, event types, the KMS-sealed `whsec_` secret.
    # `C#<commune>` / `EVM#<event id>`: one event's body and each endpoint's delivery state (expires: `ttl`).
    # `C#<commune>` / `EVB#<yyyy-mm>`: usage.budget_reached was emitted for that month.

    def create_event_endpoint(self, commune: str, endpoint: EventEndpointRecord) -> None:
        try:
            self.table.put_item(
                Item={
                    "pk": _commune_pk(commune),
                    "sk": f"EVT#{endpoint.id}",
                    "type": "event_endpoint",
                    "id": endpoint.id,
                    "url": endpoint.url,
                    "events": list(endpoint.events),
                    "secret": endpoint.secret_ciphertext,
                    "created_at": endpoint.created_at.isoformat(),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _conditional_failed(error):
                raise AlreadyExists(endpoint.id) from error
            raise

    def list_event_endpoints(self, commune: str) -> list[EventEndpointRecord]:
        return [self._event_endpoint(item) for item in self._commune_items(commune, "EVT#", consistent=True)]

    @staticmethod
    def _event_endpoint(item: dict[str, Any]) -> EventEndpointRecord:
        from crieur.eventhooks.model import EventEndpointRecord  # the events function's: not every function's import

        secret = item["secret"]
        return EventEndpointRecord(
            id=str(item["id"]),
            url=str(item["url"]),
            events=tuple(str(name) for name in item["events"]),
            secret_ciphertext=bytes(secret.value if hasattr(secret, "value") else secret),
            created_at=datetime.fromisoformat(str(item["created_at"])),
        )

    def delete_event_endpoint(self, commune: str, endpoint_id: str) -> bool:
        old = self.table.delete_item(
            Key={"pk": _commune_pk(commune), "sk": f"EVT#{endpoint_id}"}, ReturnValues="ALL_OLD"
        ).get("Attributes")
        return old is not None

    def event_delivery(self, commune: str, event_id: str) -> EventDeliveryRecord | None:
        item: dict[str, Any] | None = self.table.get_item(
            Key={"pk": _commune_pk(commune), "sk": f"EVM#{event_id}"}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        from crieur.eventhooks.model import EventDeliveryRecord

        return EventDeliveryRecord(
            event_id=event_id,
            type=str(item["event_type"]),
            body=str(item["body"]),
            endpoints={str(key): self._endpoint_attempt(value) for key, value in item.get("endpoints", {}).items()},
        )

    @staticmethod
    def _endpoint_attempt(value: dict[str, Any]) -> EndpointAttempt:
        from crieur.eventhooks.model import EndpointAttempt

        return EndpointAttempt(
            state=value["state"],
            attempts=int(str(value.get("attempts", 0))),
            status_code=int(str(value["status_code"])) if value.get("status_code") is not None else None,
            error=str(value["error"]) if value.get("error") else None,
            at=datetime.fromisoformat(str(value["at"])) if value.get("at") else None,
        )

    @staticmethod
    def _endpoint_attempt_item(attempt: EndpointAttempt) -> dict[str, Any]:
        return {
            "state": attempt.state,
            "attempts": attempt.attempts,
            **({"status_code": attempt.status_code} if attempt.status_code is not None else {}),
            **({"error": attempt.error} if attempt.error else {}),
            **({"at": attempt.at.isoformat()} if attempt.at else {}),
        }

    def start_event_delivery(self, commune: str, delivery: EventDeliveryRecord, expires_at: int) -> EventDeliveryRecord:
        """Records an event's body and target endpoints the first time; the record already there otherwise
        (a duplicate message of the same event got there first)."""
        try:
            self.table.put_item(
                Item={
                    "pk": _commune_pk(commune),
                    "sk": f"EVM#{delivery.event_id}",
                    "type": "event_delivery",
                    "event_type": delivery.type,
                    "body": delivery.body,
                    "endpoints": {
                        key: self._endpoint_attempt_item(attempt) for key, attempt in delivery.endpoints.items()
                    },
                    "ttl": expires_at,
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            existing = self.event_delivery(commune, delivery.event_id)
            if existing is not None:
                return existing
            raise
        return delivery

    def record_event_attempt(self, commune: str, event_id: str, endpoint_id: str, attempt: EndpointAttempt) -> None:
        """One endpoint's state for one event (the others' are untouched: two workers may write side by side)."""
        self.table.update_item(
            Key={"pk": _commune_pk(commune), "sk": f"EVM#{event_id}"},
            UpdateExpression="SET #endpoints.#endpoint = :attempt",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#endpoints": "endpoints", "#endpoint": endpoint_id},
            ExpressionAttributeValues={":attempt": self._endpoint_attempt_item(attempt)},
        )

    def claim_budget_event(self, commune: str, month: str) -> bool:
        """True once per commune and month: the first publication sent over budget emits usage.budget_reached."""
        return self._claim_once(commune, f"EVB#{month}")

    def release_budget_event(self, commune: str, month: str) -> None:
        """Forgets a claim whose event could not be queued, so the next publication over budget tries again."""
        self.table.delete_item(Key={"pk": _commune_pk(commune), "sk": f"EVB#{month}"})

    # --- retraction -------------------------------------------------------------------------------------

    def reopen_failed(self, commune: str, publication_id: str, channels: list[str]) -> bool:
        """Failed deliveries → pending again and the publication → publishing, in one transaction: the
        channels leave the `settled` set and the failed count, so their new outcomes are counted once.

        A chunked delivery forgets its plan, its chunks and its recipients' marks (none was delivered, or it
        would not have failed), so the retry plans the audience afresh. False when the state changed meanwhile."""
        pk = _commune_pk(commune)
        for channel in channels:
            stale = self._commune_items(commune, f"FC#{publication_id}#{channel}#") + self._commune_items(
                commune, f"FR#{publication_id}#{channel}#"
            )
            with self.table.batch_writer() as batch:
                for item in stale:
                    batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
        items: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": {"pk": pk, "sk": _publication_sk(publication_id)},
                    "UpdateExpression": "SET #s = :publishing DELETE settled :channels ADD failed_count :minus",
                    "ConditionExpression": "#s IN (:failed, :partial)",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {
                        ":publishing": "publishing",
                        ":channels": set(channels),
                        ":minus": -len(channels),
                        ":failed": "failed",
                        ":partial": "partially_published",
                    },
                }
            }
        ]
        for channel in channels:
            items.append(
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": {"pk": pk, "sk": _delivery_sk(publication_id, channel)},
                        "UpdateExpression": "SET #s = :pending, updated_at = :updated REMOVE #error, lease_until, "
                        "claim_token, chunks_total, chunks_done, recipients_total, recipients_sent, "
                        "recipients_failed, queued, failure",
                        "ConditionExpression": "#s = :failed",
                        "ExpressionAttributeNames": {"#s": "status", "#error": "error"},
                        "ExpressionAttributeValues": {
                            ":pending": "pending",
                            ":failed": "failed",
                            ":updated": utc_now().isoformat(),
                        },
                    }
                }
            )
        try:
            self._transact(items)
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def start_retraction(self, commune: str, publication_id: str) -> bool:
        """publishing is over → retracted (the mairie's decision); False when the state does not allow it."""
        return self._update_if(
            {"pk": _commune_pk(commune), "sk": _publication_sk(publication_id)},
            UpdateExpression="SET #s = :retracted",
            ConditionExpression="#s IN (:published, :partial, :failed)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":retracted": "retracted",
                ":published": "published",
                ":partial": "partially_published",
                ":failed": "failed",
            },
        )

    def claim_retraction(
        self, commune: str, publication_id: str, channel: str, token: str, lease_seconds: int
    ) -> tuple[Claim, str | None]:
        """A sent delivery, for this worker to delete; with the post's external id."""
        now = int(time.time())
        key = {"pk": _commune_pk(commune), "sk": _delivery_sk(publication_id, channel)}
        try:
            item = self.table.update_item(
                Key=key,
                UpdateExpression="SET retract_lease = :lease, retract_token = :token ADD retract_attempts :one",
                ConditionExpression="#s = :sent AND (attribute_not_exists(retract_lease) OR retract_lease < :now)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":sent": "sent",
                    ":lease": now + lease_seconds,
                    ":token": token,
                    ":now": now,
                    ":one": 1,
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            current = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
            if current is None:
                return Claim("missing"), None
            state = str(current["status"])
            return Claim("busy" if state == "sent" else "final", status=state), None
        last_error: Any = item.get("error")  # the last retraction attempt's (a sent delivery keeps no error)
        claim = Claim(
            "claimed",
            token=token,
            attempts=int(str(item["retract_attempts"])),
            error=DeliveryError.model_validate(last_error) if last_error else None,
        )
        return claim, str(item["external_id"])

    def record_retraction(
        self,
        commune: str,
        publication_id: str,
        channel: str,
        token: str,
        *,
        status: str | None,
        error: DeliveryError | None,
    ) -> bool:
        """retracted / retract_unsupported; or, with `status` None, the post stays sent with the failure."""
        assignments = ["updated_at = :updated"]
        values: dict[str, Any] = {":token": token, ":updated": utc_now().isoformat()}
        removals = ["retract_lease"]
        if status is not None:
            assignments.append("#s = :status")
            values[":status"] = status
        if error is not None:
            assignments.append("#error = :error")
            values[":error"] = error.model_dump(exclude_none=True)
        else:
            removals.append("#error")
        return self._update_if(
            {"pk": _commune_pk(commune), "sk": _delivery_sk(publication_id, channel)},
            UpdateExpression=f"SET {', '.join(assignments)} REMOVE {', '.join(removals)}",
            ConditionExpression="retract_token = :token",
            ExpressionAttributeNames={"#s": "status", "#error": "error"} if status is not None else {"#error": "error"},
            ExpressionAttributeValues=values,
        )

    # --- inbound webhook sources ------------------------------------------------------------------------
    # `C#<commune>` / `SRC#<source id>`: name, flags, the URL key's SHA-256, the KMS-sealed signing secrets.

    def create_inbound_source(self, commune: str, source: InboundSourceRecord) -> None:
        item: dict[str, Any] = {
            "pk": _commune_pk(commune),
            "sk": f"SRC#{source.id}",
            "type": "inbound_source",
            "id": source.id,
            "name": source.name,
            "created_at": source.created_at.isoformat(),
            "signed_only": source.signed_only,
            "secrets": _sealed_items(source.secrets),
            "version": source.version,
        }
        if source.key_hash is not None:
            item["key_hash"] = source.key_hash
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if _conditional_failed(error):
                raise AlreadyExists(source.id) from error
            raise

    def get_inbound_source(self, commune: str, source_id: str) -> InboundSourceRecord | None:
        """Read consistently: a secret rotated a moment ago signs at once."""
        key = {"pk": _commune_pk(commune), "sk": f"SRC#{source_id}"}
        item = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        return _inbound_source(item) if item else None

    def list_inbound_sources(self, commune: str) -> list[InboundSourceRecord]:
        return [_inbound_source(item) for item in self._commune_items(commune, "SRC#")]

    def replace_inbound_secrets(
        self, commune: str, source_id: str, secrets: tuple[SealedSecret, ...], version: int
    ) -> bool:
        """The source's secrets after a rotation; False when another rotation came first (or it was deleted)."""
        return self._update_if(
            {"pk": _commune_pk(commune), "sk": f"SRC#{source_id}"},
            UpdateExpression="SET secrets = :secrets ADD version :one",
            ConditionExpression="version = :version",
            ExpressionAttributeValues={":secrets": _sealed_items(secrets), ":one": 1, ":version": version},
        )

    def delete_inbound_source(self, commune: str, source_id: str) -> bool:
        old = self.table.delete_item(
            Key={"pk": _commune_pk(commune), "sk": f"SRC#{source_id}"}, ReturnValues="ALL_OLD"
        ).get("Attributes")
        return old is not None

    # --- web push subscriptions (crieur.channels.webpush) -----------------------------------------------
    # `C#<commune>` / `WPS#<sha256(endpoint)>`: one browser's subscription (the same browser again: the
    # same item).

    def put_webpush_subscription(
        self, commune: str, subscription_id: str, *, endpoint: str, p256dh: str, auth: str, categories: list[str]
    ) -> bool:
        """Stores (or replaces) a subscription; True when it is new."""
        old = self.table.put_item(
            Item={
                "pk": _commune_pk(commune),
                "sk": f"WPS#{subscription_id}",
                "type": "webpush_subscription",
                "endpoint": endpoint,
                "p256dh": p256dh,
                "auth": auth,
                "categories": list(categories),
                "updated_at": utc_now().isoformat(),
            },
            ReturnValues="ALL_OLD",
        ).get("Attributes")
        return old is None

    def delete_webpush_subscription(self, commune: str, subscription_id: str) -> bool:
        old = self.table.delete_item(
            Key={"pk": _commune_pk(commune), "sk": f"WPS#{subscription_id}"}, ReturnValues="ALL_OLD"
        ).get("Attributes")
        return old is not None

    def webpush_subscriptions(self, commune: str) -> list[Subscription]:
        return [_subscription(item) for item in self._commune_items(commune, "WPS#")]

    def webpush_subscriptions_among(self, commune: str, subscription_ids: list[str]) -> list[Subscription]:
        """The subscriptions of these ids that still exist (100 to a read), in no particular order."""
        pk = _commune_pk(commune)
        found: list[Subscription] = []
        for start in range(0, len(subscription_ids), BATCH_GET):
            keys: list[dict[str, Any]] = [
                {"pk": pk, "sk": f"WPS#{subscription_id}"}
                for subscription_id in subscription_ids[start : start + BATCH_GET]
            ]
            while keys:
                answer: Any = aws.dynamodb().batch_get_item(
                    RequestItems={self.table_name: {"Keys": keys, "ConsistentRead": True}}
                )
                found += [_subscription(item) for item in answer["Responses"].get(self.table_name, [])]
                keys = list(answer.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", []))
        return found

    # --- SMS and e-mail subscribers (crieur.subscribers) ------------------------------------------------
    # `C#<commune>` / `SUBKEY`: the commune's data key for subscriber data, wrapped by KMS.
    # `C#<commune>` / `S#<medium>#<subscriber id>`: one address's subscription (address encrypted); gsi1
    # `SA#<medium>#<keyed hash of the address>` / `C#<commune>` finds an address's communes; `ttl` purges
    # a subscription never confirmed.

    def subscriber_data_key(self, commune: str) -> bytes | None:
        item = self.table.get_item(Key={"pk": _commune_pk(commune), "sk": "SUBKEY"}, ConsistentRead=True).get("Item")
        return _binary(item["wrapped"]) if item else None

    def add_subscriber_data_key(self, commune: str, wrapped: bytes) -> bytes:
        """Stores the wrapped key unless one exists; answers the one that is stored (the first wins a race)."""
        try:
            self.table.put_item(
                Item={
                    "pk": _commune_pk(commune),
                    "sk": "SUBKEY",
                    "wrapped": wrapped,
                    "created_at": utc_now().isoformat(),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if not _conditional_failed(error):
                raise
            stored = self.subscriber_data_key(commune)
            assert stored is not None
            return stored
        return wrapped

    def get_subscriber(self, commune: str, medium: str, subscriber_id: str) -> SubscriberRecord | None:
        item = self.table.get_item(
            Key={"pk": _commune_pk(commune), "sk": f"S#{medium}#{subscriber_id}"}, ConsistentRead=True
        ).get("Item")
        return _subscriber(item) if item else None

    def save_subscriber(self, commune: str, record: SubscriberRecord, *, previous_version: int | None) -> bool:
        """Writes the whole subscription if it is still at `previous_version` (None: if absent); False otherwise."""
        item: dict[str, Any] = {
            "pk": _commune_pk(commune),
            "sk": f"S#{record.medium}#{record.id}",
            "type": "subscriber",
            "gsi1pk": f"SA#{record.medium}#{record.lookup}",
            "gsi1sk": _commune_pk(commune),
            "medium": record.medium,
            "status": record.status,
            "sealed": record.sealed,
            "unsubscribe_hash": record.unsubscribe_hash,
            "categories": list(record.categories),
            "consent_version": record.consent_version,
            "consent_at": record.consent_at,
            "created_at": record.created_at,
            "attempts": record.attempts,
            "sends": record.sends,
            "version": record.version,
        }
        optional = {
            "confirmed_at": record.confirmed_at,
            "pending_categories": list(record.pending_categories) if record.pending_categories is not None else None,
            "pending_consent_version": record.pending_consent_version,
            "pending_consent_at": record.pending_consent_at,
            "secret_hash": record.secret_hash,
            "pending_until": record.pending_until,
            "sends_since": record.sends_since,
            "ttl": record.ttl,
        }
        item.update({name: value for name, value in optional.items() if value is not None})
        if previous_version is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "version = :previous",
                "ExpressionAttributeValues": {":previous": previous_version},
            }
        try:
            self.table.put_item(Item=item, **condition)
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise
        return True

    def delete_subscriber(self, commune: str, medium: str, subscriber_id: str) -> bool:
        old = self.table.delete_item(
            Key={"pk": _commune_pk(commune), "sk": f"S#{medium}#{subscriber_id}"}, ReturnValues="ALL_OLD"
        ).get("Attributes")
        return old is not None

    def subscriber_audience(self, commune: str, medium: str, category: str) -> list[str]:
        """Ids of the confirmed subscribers of a medium who chose `category`, in key order (stable)."""
        from boto3.dynamodb.conditions import Attr, Key

        items = self._query_all(
            {
                "KeyConditionExpression": Key("pk").eq(_commune_pk(commune)) & Key("sk").begins_with(f"S#{medium}#"),
                "FilterExpression": Attr("status").eq("confirmed") & Attr("categories").contains(category),
                "ProjectionExpression": "sk",
            }
        )
        return [str(item["sk"]).removeprefix(f"S#{medium}#") for item in items]

    def subscriber_summaries(self, commune: str) -> list[tuple[str, str, tuple[str, ...], int | None]]:
        """(medium, status, categories, end of the pending confirmation) of each subscription, nothing personal."""
        from boto3.dynamodb.conditions import Key

        items = self._query_all(
            {
                "KeyConditionExpression": Key("pk").eq(_commune_pk(commune)) & Key("sk").begins_with("S#"),
                "ProjectionExpression": "medium, #status, categories, pending_until",
                "ExpressionAttributeNames": {"#status": "status"},
            }
        )
        return [
            (
                str(item["medium"]),
                str(item["status"]),
                tuple(str(category) for category in item.get("categories") or []),
                int(item["pending_until"]) if "pending_until" in item else None,
            )
            for item in items
        ]

    def subscribers_among(self, commune: str, medium: str, subscriber_ids: list[str]) -> list[SubscriberRecord]:
        """The subscriptions of these ids that still exist (100 to a read), in no particular order."""
        pk = _commune_pk(commune)
        found: list[SubscriberRecord] = []
        for start in range(0, len(subscriber_ids), BATCH_GET):
            keys: list[dict[str, Any]] = [
                {"pk": pk, "sk": f"S#{medium}#{subscriber_id}"}
                for subscriber_id in dict.fromkeys(subscriber_ids[start : start + BATCH_GET])
            ]
            while keys:
                answer: Any = aws.dynamodb().batch_get_item(
                    RequestItems={self.table_name: {"Keys": keys, "ConsistentRead": True}}
                )
                found += [_subscriber(item) for item in answer["Responses"].get(self.table_name, [])]
                keys = list(answer.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", []))
        return found

    def subscriptions_of_address(self, medium: str, lookup: str) -> list[tuple[str, str]]:
        """(commune, subscriber id) of every subscription of an address, found by its keyed hash."""
        from boto3.dynamodb.conditions import Key

        items = self._query_all(
            {
                "IndexName": "gsi1",
                "KeyConditionExpression": Key("gsi1pk").eq(f"SA#{medium}#{lookup}"),
                "ProjectionExpression": "pk, sk",
            }
        )
        return [(str(item["pk"]).removeprefix("C#"), str(item["sk"]).removeprefix(f"S#{medium}#")) for item in items]


def _sealed_items(secrets: tuple[SealedSecret, ...]) -> list[dict[str, Any]]:
    return [
        {
            "ciphertext": sealed.ciphertext,
            "created_at": sealed.created_at.isoformat(),
            **({"expires_at": sealed.expires_at.isoformat()} if sealed.expires_at else {}),
        }
        for sealed in secrets
    ]


def _inbound_source(item: dict[str, Any]) -> InboundSourceRecord:
    from crieur.inbound.model import InboundSourceRecord, SealedSecret  # the API's: not every function's import

    def binary(value: Any) -> bytes:
        return bytes(value.value if hasattr(value, "value") else value)

    return InboundSourceRecord(
        id=str(item["id"]),
        name=str(item["name"]),
        created_at=datetime.fromisoformat(str(item["created_at"])),
        signed_only=bool(item["signed_only"]),
        key_hash=str(item["key_hash"]) if item.get("key_hash") else None,
        secrets=tuple(
            SealedSecret(
                ciphertext=binary(sealed["ciphertext"]),
                created_at=datetime.fromisoformat(str(sealed["created_at"])),
                expires_at=datetime.fromisoformat(str(sealed["expires_at"])) if sealed.get("expires_at") else None,
            )
            for sealed in item.get("secrets", [])
        ),
        version=int(str(item.get("version", 1))),
    )


def _binary(value: Any) -> bytes:
    """A Binary attribute as bytes (boto3 wraps them)."""
    return bytes(value.value) if hasattr(value, "value") else bytes(value)


def _subscriber(item: dict[str, Any]) -> SubscriberRecord:
    from crieur.subscribers import SubscriberRecord

    def optional_int(name: str) -> int | None:
        return int(item[name]) if name in item else None

    def optional_str(name: str) -> str | None:
        return str(item[name]) if name in item else None

    pending = item.get("pending_categories")
    return SubscriberRecord(
        id=str(item["sk"]).split("#", 2)[2],
        medium=item["medium"],
        status=item["status"],
        lookup=str(item["gsi1pk"]).split("#", 2)[2],
        sealed=_binary(item["sealed"]),
        unsubscribe_hash=str(item["unsubscribe_hash"]),
        categories=tuple(str(category) for category in item.get("categories") or []),
        consent_version=str(item["consent_version"]),
        consent_at=str(item["consent_at"]),
        created_at=str(item["created_at"]),
        confirmed_at=optional_str("confirmed_at"),
        pending_categories=tuple(str(category) for category in pending) if pending is not None else None,
        pending_consent_version=optional_str("pending_consent_version"),
        pending_consent_at=optional_str("pending_consent_at"),
        secret_hash=optional_str("secret_hash"),
        attempts=int(item.get("attempts", 0)),
        pending_until=optional_int("pending_until"),
        sends=int(item.get("sends", 0)),
        sends_since=optional_int("sends_since"),
        version=int(item.get("version", 1)),
    )


def _subscription(item: dict[str, Any]) -> Subscription:
    from crieur.channels.webpush import Subscription

    return Subscription(
        id=str(item["sk"]).removeprefix("WPS#"),
        endpoint=str(item["endpoint"]),
        p256dh=str(item["p256dh"]),
        auth=str(item["auth"]),
        categories=tuple(str(category) for category in item.get("categories") or []),
    )


def _recipient_counts(item: dict[str, Any]) -> RecipientCounts | None:
    if "recipients_total" not in item:
        return None
    return RecipientCounts(
        total=int(str(item["recipients_total"])),
        sent=int(str(item.get("recipients_sent", 0))),
        failed=int(str(item.get("recipients_failed", 0))),
    )


def _final_status(sent: int, failed: int) -> PublicationStatus:
    """Skipped channels (nothing they could take) count neither way; nothing sent at all is a failure."""
    if sent == 0:
        return "failed"
    return "partially_published" if failed else "published"


def _initially_settled(publication: Publication) -> dict[str, Any]:
    """Deliveries created final (skipped before any attempt) are counted from the start."""
    skipped = {channel for channel, delivery in publication.deliveries.items() if delivery.status == "skipped"}
    return {"settled": skipped, "skipped_count": len(skipped)} if skipped else {}


def _encode_cursor(key: dict[str, Any]) -> str:
    plain = {name: (int(value) if isinstance(value, Decimal) else value) for name, value in key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, partition: str) -> dict[str, Any]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error) as bad:
        raise InvalidCursor(cursor) from bad
    if (
        not isinstance(decoded, dict)
        or set(decoded) != {"pk", "sk", "gsi1pk", "gsi1sk"}
        or decoded["gsi1pk"] != partition
    ):
        raise InvalidCursor(cursor)
    return decoded
