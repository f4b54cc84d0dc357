"""A delivery's final write is one transaction (ARCHITECTURE.md §8: a claim and a result write): its outcome, its
usage line and its count on the publication, with the publication's final status when it is the last to settle.

The worker guesses from the publication it read before sending whether it is the last; the transaction's
conditions check the guess, so a stale read (deliveries of the same publication settling meanwhile) costs a
second attempt, never a wrong count. A lost claim writes nothing; a usage line already written is not added twice.
"""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest

from crieur.models import Delivery, Publication, utc_now
from crieur.store import Metering, Store
from infra.local.provision import Deployment

MONTH = "2026-11"
POST = Metering(month=MONTH, unit="delivery", unit_price=Decimal("0.0100"))


def new_publication(store: Store, channels: list[str], commune: str = "35238") -> Publication:
    now = utc_now()
    publication = Publication(
        title="Travaux",
        body="Rue des Lilas fermée mardi.",
        id=f"pub_{uuid.uuid4().hex}",
        commune=commune,
        status="publishing",
        created_at=now,
        channels=channels,  # type: ignore[arg-type]
        deliveries={channel: Delivery(status="pending", updated_at=now) for channel in channels},
    )
    store.create_publication(publication)
    return publication


def claimed(store: Store, publication: Publication, channel: str) -> str:
    token = uuid.uuid4().hex
    assert store.claim_delivery(publication.commune, publication.id, channel, token, 60).outcome == "claimed"
    return token


def head(store: Store, publication: Publication) -> dict[str, Any]:
    item = store.table.get_item(Key={"pk": f"C#{publication.commune}", "sk": f"P#{publication.id}"})["Item"]
    return dict(item)


def lines(store: Store, publication: Publication) -> list[dict[str, Any]]:
    return [line for line in store.usage_lines(publication.commune, MONTH) if line["publication_id"] == publication.id]


def test_the_last_to_settle_sets_the_final_status_from_a_stale_read(
    aws_env: None, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(deployment.outputs["TableName"])

    def no_read(*_: Any) -> None:
        raise AssertionError("the publication came back with the failed condition: no read")

    monkeypatch.setattr(store, "_progress", no_read)
    publication = new_publication(store, ["mastodon", "webhook", "x"])
    seen = publication  # every worker read it while all three were pending
    tokens = {channel: claimed(store, publication, channel) for channel in publication.channels or []}
    assert store.finish_delivery(
        "35238", publication.id, "mastodon", tokens["mastodon"], "sent", metering=POST, seen=seen
    ) == (True, None)
    assert store.finish_delivery("35238", publication.id, "webhook", tokens["webhook"], "failed", seen=seen) == (
        True,
        None,
    )
    # x read the publication with two deliveries pending: it is the last, its transaction finds out
    assert store.finish_delivery("35238", publication.id, "x", tokens["x"], "sent", metering=POST, seen=seen) == (
        True,
        "partially_published",
    )
    shown = store.get_publication("35238", publication.id)
    assert shown is not None
    assert shown.status == "partially_published"
    assert {channel: delivery.status for channel, delivery in shown.deliveries.items()} == {
        "mastodon": "sent",
        "webhook": "failed",
        "x": "sent",
    }
    assert shown.billed_ht_eur == 0.02
    stored = head(store, publication)
    assert (stored["sent_count"], stored["failed_count"], stored["settled"]) == (2, 1, {"mastodon", "webhook", "x"})
    assert len(lines(store, publication)) == 2


def test_a_wrong_guess_of_being_the_last_is_read_again(aws_env: None, deployment: Deployment) -> None:
    store = Store(deployment.outputs["TableName"])
    publication = new_publication(store, ["mastodon", "webhook"])
    tokens = {channel: claimed(store, publication, channel) for channel in ("mastodon", "webhook")}
    # The read shows webhook sent, but its count is not written yet: mastodon is not the last.
    seen = publication.model_copy(
        update={"deliveries": {**publication.deliveries, "webhook": Delivery(status="sent", updated_at=utc_now())}}
    )
    assert store.finish_delivery("35238", publication.id, "mastodon", tokens["mastodon"], "sent", seen=seen) == (
        True,
        None,
    )
    assert head(store, publication)["status"] == "publishing"
    assert store.finish_delivery("35238", publication.id, "webhook", tokens["webhook"], "sent", seen=publication) == (
        True,
        "published",
    )
    assert head(store, publication)["status"] == "published"


def test_a_lost_claim_writes_and_bills_nothing(aws_env: None, deployment: Deployment) -> None:
    store = Store(deployment.outputs["TableName"])
    publication = new_publication(store, ["mastodon"])
    claimed(store, publication, "mastodon")
    written = store.finish_delivery(
        "35238", publication.id, "mastodon", "another-token", "sent", metering=POST, seen=publication
    )
    assert written == (False, None)
    assert lines(store, publication) == []
    stored = head(store, publication)
    assert "settled" not in stored
    assert "billed_ht" not in stored


def test_a_delivery_billed_by_an_earlier_attempt_is_not_billed_twice(aws_env: None, deployment: Deployment) -> None:
    """A usage line written before (an attempt metered, then its worker died before its outcome): the outcome
    and the count are written, the line is not added again."""
    store = Store(deployment.outputs["TableName"])
    publication = new_publication(store, ["mastodon"])
    assert store.meter("35238", publication.id, MONTH, unit="delivery", channel="mastodon", unit_price=POST.unit_price)
    token = claimed(store, publication, "mastodon")
    assert store.finish_delivery(
        "35238", publication.id, "mastodon", token, "sent", metering=POST, seen=publication
    ) == (True, "published")
    assert len(lines(store, publication)) == 1
    assert head(store, publication)["billed_ht"] == Decimal("0.0100")


def test_concurrent_deliveries_of_one_publication_settle_it_once(
    aws_env: None, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight workers finish at once, each with the publication read while all were pending: one of them is the
    last, and finds out. DynamoDB runs transactions in isolation (serializable); moto does not (it checks, then
    writes, and restores a backup of the table when one fails), so the test gives it that isolation, as the local
    stack's moto does (infra/local/motoserver.py serves DynamoDB's requests one at a time)."""
    isolated = threading.Lock()
    transact = Store._transact

    def in_isolation(self: Store, items: list[dict[str, Any]]) -> None:
        with isolated:
            transact(self, items)

    monkeypatch.setattr(Store, "_transact", in_isolation)
    store = Store(deployment.outputs["TableName"])
    channels = ["bluesky", "facebook", "instagram", "mastodon", "webhook", "wordpress", "x", "push"]
    publication = new_publication(store, channels, commune="35047")
    tokens = {channel: claimed(store, publication, channel) for channel in channels}
    results: dict[str, tuple[bool, str | None]] = {}
    start = threading.Barrier(len(channels))

    def deliver(channel: str) -> None:
        start.wait()
        results[channel] = Store(store.table_name).finish_delivery(
            "35047", publication.id, channel, tokens[channel], "sent", metering=POST, seen=publication
        )

    threads = [threading.Thread(target=deliver, args=(channel,)) for channel in channels]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(written for written, _ in results.values())
    assert [final for _, final in results.values() if final is not None] == ["published"]
    stored = head(store, publication)
    assert (stored["status"], stored["sent_count"], stored["settled"]) == ("published", len(channels), set(channels))
    assert stored["billed_ht"] == POST.unit_price * len(channels)
    assert len(lines(store, publication)) == len(channels)
