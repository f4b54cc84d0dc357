"""boto3 clients, created lazily and once per container (each costs ~70 ms at cold start).

AWS_ENDPOINT_URL (set by the local stack) points every client at moto; nothing here knows about it.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_scheduler.client import EventBridgeSchedulerClient
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient


@cache
def session() -> Any:
    import boto3

    return boto3.session.Session()


@cache
def dynamodb() -> DynamoDBServiceResource:
    return session().resource("dynamodb")  # type: ignore[no-any-return]


@cache
def sns() -> SNSClient:
    return session().client("sns")  # type: ignore[no-any-return]


@cache
def sqs() -> SQSClient:
    return session().client("sqs")  # type: ignore[no-any-return]


@cache
def kms() -> KMSClient:
    return session().client("kms")  # type: ignore[no-any-return]


@cache
def scheduler() -> EventBridgeSchedulerClient:
    return session().client("scheduler")  # type: ignore[no-any-return]


@cache
def s3() -> Any:
    """The public bucket's client (the website channel and GET /public/...)."""
    return session().client("s3")


def reset() -> None:
    """Forget every client (tests switch endpoints between cases)."""
    for factory in (session, dynamodb, sns, sqs, kms, scheduler, s3):
        factory.cache_clear()
