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

from crieur.store import Store
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
