"""API keys in the table: the item `K#<sha256 of the key>` / `KEY` names the key's commune (ARCHITECTURE.md §3).

The authorizer runs before every API request, so its lookup stays light: one GetItem with the low-level client,
none of the store's models (pydantic) nor its resource layer at its cold start (ARCHITECTURE.md §8). The store
writes and deletes these items with `api_key_item`, the one place that knows their shape.
"""

from __future__ import annotations

from crieur import aws
from crieur.security import hash_api_key

BEARER = "bearer "


def api_key_item(key_hash: str) -> dict[str, str]:
    """The primary key of the item that maps a key (by its hash) to its commune."""
    return {"pk": f"K#{key_hash}", "sk": "KEY"}


def commune_for_authorization(table_name: str, header: str | None) -> str | None:
    """The commune a `Bearer <key>` header belongs to, or None for a missing, unknown or revoked key."""
    if not header or not header.lower().startswith(BEARER):
        return None
    key = header[len(BEARER) :].strip()
    if not key:
        return None
    item = aws.dynamodb_client().get_item(
        TableName=table_name,
        Key={name: {"S": value} for name, value in api_key_item(hash_api_key(key)).items()},
        ProjectionExpression="commune",
    )
    found = item.get("Item")
    return found["commune"]["S"] if found else None
