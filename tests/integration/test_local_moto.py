"""The local stack's moto (infra/local/motoserver.py): DynamoDB transactions back up only what a rollback
needs (so a transaction costs the same in a full table as in an empty one), and still roll back exactly."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from infra.local.motoserver import install_cheap_transaction_backups

TABLE = "local-moto-transactions"


@pytest.fixture
def dynamodb(aws_env: None) -> Iterator[object]:
    """A table of its own in the session's moto server (never `mock_aws`, whose exit would reset the moto state
    that server shares with this process)."""
    install_cheap_transaction_backups()
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    yield client
    client.delete_table(TableName=TABLE)


def key(sort: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": "C#1"}, "sk": {"S": sort}}


def count(client: object, sort: str) -> str | None:
    item = client.get_item(TableName=TABLE, Key=key(sort)).get("Item")  # type: ignore[attr-defined]
    return None if item is None else item.get("n", {}).get("N", "-")


def test_a_cancelled_transaction_rolls_back_updates_puts_and_deletes(dynamodb: object) -> None:
    client = dynamodb
    for sort in ("A", "B", "TAKEN"):
        client.put_item(TableName=TABLE, Item={**key(sort), "n": {"N": "1"}})  # type: ignore[attr-defined]
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(  # type: ignore[attr-defined]
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": key("A"),
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Put": {"TableName": TABLE, "Item": key("NEW")}},
                {"Delete": {"TableName": TABLE, "Key": key("B")}},
                {"Put": {"TableName": TABLE, "Item": key("TAKEN"), "ConditionExpression": "attribute_not_exists(pk)"}},
            ]
        )
    assert cancelled.value.response["CancellationReasons"][3]["Code"] == "ConditionalCheckFailed"
    assert (count(client, "A"), count(client, "NEW"), count(client, "B")) == ("1", None, "1")
    client.transact_write_items(  # type: ignore[attr-defined]
        TransactItems=[
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": key("A"),
                    "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            }
        ]
    )
    assert count(client, "A") == "2"
