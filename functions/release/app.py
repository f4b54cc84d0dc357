"""EventBridge Scheduler target: releases a scheduled publication at its time."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from crieur import config
from crieur.models import ReleaseRequest
from crieur.service import PublicationService

logger = Logger()


@cache
def service() -> PublicationService:
    return PublicationService(
        store=config.store(), fanout=config.fanout(), vault=config.vault(), http=config.http, events=config.events()
    )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    release = ReleaseRequest.model_validate(event)
    return {"released": service().release(release), "publication_id": release.publication_id}
