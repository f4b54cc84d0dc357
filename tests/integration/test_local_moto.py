"""The local stack's moto (infra/local/motoserver.py): DynamoDB transactions back up only what a rollback
needs, so they cost the same in a full table as in an empty one, and still roll back exactly."""

from __future__ import annotations

import time
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.local.motoserver import install_cheap_transaction_backups


@pytest.fixture
def dynamodb() -> Iterator[object]:
    install_cheap_transaction_backups()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-3")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def key(sort: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": "C#1"}, "sk": {"S": sort}}


def count(client: object, sort: str) -> str | None:
    item = client.get_item(TableName="t", Key=key(sort)).get("Item")  # type: ignore[attr-defined]
    return None if item is None else item.get("n", {}).get("N", "-")


def test_a_cancelled_transaction_rolls_back_updates_puts_and_deletes(dynamodb: object) -> None:
    client = dynamodb
    for sort in ("A", "B", "TAKEN"):
        client.put_item(TableName="t", Item={**key(sort), "n": {"N": "1"}})  # type: ignore[attr-defined]
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(  # type: ignore[attr-defined]
            TransactItems=[
                {
                    "Update": {
                        "TableName": "t",
                        "Key": key("A"),
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Put": {"TableName": "t", "Item": key("NEW")}},
                {"Delete": {"TableName": "t", "Key": key("B")}},
                {"Put": {"TableName": "t", "Item": key("TAKEN"), "ConditionExpression": "attribute_not_exists(pk)"}},
            ]
        )
    assert cancelled.value.response["CancellationReasons"][3]["Code"] == "ConditionalCheckFailed"
    assert (count(client, "A"), count(client, "NEW"), count(client, "B")) == ("1", None, "1")
    client.transact_write_items(  # type: ignore[attr-defined]
        TransactItems=[
            {
                "Update": {
                    "TableName": "t",
                    "Key": key("A"),
                    "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            }
        ]
    )
    assert count(client, "A") == "2"


def test_a_transaction_does_not_slow_down_as_the_table_fills(dynamodb: object) -> None:
    client = dynamodb

    def timed() -> float:
        started = time.perf_counter()
        client.transact_write_items(TransactItems=[{"Put": {"TableName": "t", "Item": key(f"T{started}")}}])  # type: ignore[attr-defined]
        return time.perf_counter() - started

    empty = min(timed() for _ in range(3))
    for number in range(3000):
        client.put_item(TableName="t", Item=key(f"P{number}"))  # type: ignore[attr-defined]
    full = min(timed() for _ in range(3))
    assert full < empty * 5 + 0.01  # a deep copy of 3,000 items alone took ~50 ms
