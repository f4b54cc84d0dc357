"""Exactly-once metering under concurrency: a replayed unit is not billed twice, and a transaction cancelled
for another reason (a conflict on the month's counters, a throttle) is retried, never taken for a replay.

Every cancellation used to be read as "already recorded": in DynamoDB, a delivery whose metering transaction
conflicted with another's on the month's counters (every delivery of a commune updates that item) would be
recorded `sent` without its usage line. (`make soak` checks that every post has its usage line.)"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from crieur.store import FINAL_WRITE_ATTEMPTS, Metering, Store
from infra.local.provision import Deployment


def meter(store: Store) -> bool:
    return store.meter("35238", "pub_conflict", "2026-11", unit="post", channel="mastodon", unit_price=Decimal("0.01"))


def test_a_replayed_unit_is_not_billed_twice(aws_env: None, deployment: Deployment) -> None:
    store = Store(deployment.outputs["TableName"])
    assert meter(store) is True
    assert meter(store) is False
    assert (
        len([line for line in store.usage_lines("35238", "2026-11") if line["publication_id"] == "pub_conflict"]) == 1
    )


@pytest.mark.parametrize("reason", ["TransactionConflict", "ThrottlingError"])
def test_a_cancelled_transaction_that_is_no_replay_is_raised(
    aws_env: None, deployment: Deployment, monkeypatch: pytest.MonkeyPatch, reason: str
) -> None:
    store = Store(deployment.outputs["TableName"])

    def cancelled(items: list[dict[str, Any]]) -> None:
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
                "CancellationReasons": [{"Code": "None"}, {"Code": reason}, {"Code": "None"}],
            },
            "TransactWriteItems",
        )

    monkeypatch.setattr(store, "_transact", cancelled)
    with pytest.raises(ClientError):
        meter(store)


@pytest.mark.parametrize(("reason", "tries"), [("TransactionConflict", FINAL_WRITE_ATTEMPTS), ("ThrottlingError", 1)])
def test_a_delivery_whose_final_write_keeps_being_cancelled_raises(
    aws_env: None, deployment: Deployment, monkeypatch: pytest.MonkeyPatch, reason: str, tries: int
) -> None:
    """A delivery's outcome, usage line and count (one transaction): a conflict is tried again at once, a
    lasting one or a throttle is raised (the message comes back), never read as "already billed"."""
    store = Store(deployment.outputs["TableName"])
    attempts: list[int] = []

    def cancelled(items: list[dict[str, Any]]) -> None:
        attempts.append(len(items))
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
                "CancellationReasons": [{"Code": "None"}, {"Code": "None"}, {"Code": "None"}, {"Code": reason}],
            },
            "TransactWriteItems",
        )

    monkeypatch.setattr(store, "_transact", cancelled)
    monkeypatch.setattr("crieur.store.time.sleep", lambda _: None)
    metering = Metering(month="2026-11", unit="delivery", unit_price=Decimal("0.01"))
    with pytest.raises(ClientError):
        store.finish_delivery("35238", "pub_conflict", "mastodon", "token", "sent", metering=metering)
    assert len(attempts) == tries
    assert set(attempts) == {4}  # the outcome, the publication, the usage line and the month's counters, each time
