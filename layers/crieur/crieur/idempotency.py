"""`Idempotency-Key` on POST /v1/publications, with powertools idempotency over DynamoDB.

A replay with the same key (per commune) returns the first publication and creates nothing; the same
key with a different body is refused. Records live 24 hours.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from crieur.config import required

RECORD_SECONDS = 24 * 3600


@cache
def config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath="[commune, key]",
        payload_validation_jmespath="request",
        expires_after_seconds=RECORD_SECONDS,
    )


@cache
def _persistence() -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(table_name=required("CRIEUR_IDEMPOTENCY_TABLE_NAME"))


def once(commune: str, key: str, request: dict[str, Any], create: Callable[[], str]) -> str:
    """Runs `create` (which returns the new publication id) at most once per (commune, key)."""

    @idempotent_function(  # type: ignore[untyped-decorator]
        data_keyword_argument="command", config=config(), persistence_store=_persistence()
    )
    def create_publication(command: dict[str, Any]) -> dict[str, str]:
        return {"id": create()}

    return str(create_publication(command={"commune": commune, "key": key, "request": request})["id"])
