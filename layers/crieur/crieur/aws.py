"""boto3 clients, created lazily and once per container (each costs ~70 ms at cold start).

AWS_ENDPOINT_URL (set by the local stack) points every client at moto; nothing here knows about it, except
for the two services moto does not imitate (End User Messaging SMS, SES v2 bulk sending): CRIEUR_SMS_BASE_URL
and CRIEUR_SES_BASE_URL point those at the sandbox's imitations.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SSMProvider
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource
    from mypy_boto3_kms.client import KMSClient
    from mypy_boto3_pinpoint_sms_voice_v2.client import PinpointSMSVoiceV2Client
    from mypy_boto3_scheduler.client import EventBridgeSchedulerClient
    from mypy_boto3_sesv2.client import SESV2Client
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
def dynamodb_client() -> DynamoDBClient:
    """The low-level client, for a function that reads without the store (the authorizer: the resource layer
    costs ~15 ms more to create)."""
    return session().client("dynamodb")  # type: ignore[no-any-return]


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


@cache
def parameters() -> SSMProvider:
    """powertools' SSM parameters (with their cache) on this module's session: powertools' own default provider
    would open a second boto3 session, which reloads botocore's endpoint data (~40 ms of cold start)."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    return SSMProvider(boto3_client=session().client("ssm"))


def _messaging_config() -> Any:
    """No retry inside a call: a throttled send is retried by the queue, recipient by recipient."""
    from botocore.config import Config

    return Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=20)


@cache
def sms() -> PinpointSMSVoiceV2Client:
    """AWS End User Messaging SMS (only crieur.messaging uses it)."""
    endpoint = os.environ.get("CRIEUR_SMS_BASE_URL") or None
    return session().client(  # type: ignore[no-any-return]
        "pinpoint-sms-voice-v2", endpoint_url=endpoint, config=_messaging_config()
    )


@cache
def sesv2() -> SESV2Client:
    """Amazon SES v2 (only crieur.messaging uses it)."""
    endpoint = os.environ.get("CRIEUR_SES_BASE_URL") or None
    return session().client("sesv2", endpoint_url=endpoint, config=_messaging_config())  # type: ignore[no-any-return]


def reset() -> None:
    """Forget every client (tests switch endpoints between cases)."""
    for factory in (session, dynamodb, sns, sqs, kms, scheduler, s3, parameters, sms, sesv2):
        factory.cache_clear()
