"""HTTP API Lambda authorizer (simple responses): `Authorization: Bearer <key>` → the key's commune.

An unknown or revoked key is let through with an empty commune: the api function then answers 401 with
a French problem body. Refusing here would make API Gateway answer 403 {"message": "Forbidden"}.

It runs before every API request: it loads the key lookup only (crieur.apikeys: one GetItem), not the store
and its models (ARCHITECTURE.md §8).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from crieur import apikeys, config

logger = Logger()


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    commune = apikeys.commune_for_authorization(config.required("CRIEUR_TABLE_NAME"), headers.get("authorization"))
    if commune is None:
        logger.info("unknown key", extra={"route": event.get("routeKey")})
    return {"isAuthorized": True, "context": {"commune": commune or ""}}
