"""Deployment settings read from the environment (set by template.yaml, or by the local stack).

Each factory imports what it builds: a function pays at cold start for the adapters its requests use only
(crieur.events and its models, httpx, the scheduler…), not for every one a Crieur function may use.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from crieur.credentials import KmsVault
    from crieur.events import SqsEvents
    from crieur.fanout import SnsFanout
    from crieur.schedule import EventBridgeScheduling
    from crieur.store import Store
    from crieur.subscribers import Subscribers
    from crieur.weather.broadcast import VigilanceSource
    from crieur.weather.meteofrance import MeteoFranceCredentials


def required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set (template.yaml sets it)")
    return value


@cache
def store() -> Store:
    from crieur.store import Store

    return Store(required("CRIEUR_TABLE_NAME"))


@cache
def vault() -> KmsVault:
    from crieur.credentials import KmsVault

    return KmsVault(os.environ.get("CRIEUR_KMS_KEY_ID"))


@cache
def subscribers() -> Subscribers:
    """SMS and e-mail subscribers: addresses sealed under the commune's data key, found by a KMS HMAC."""
    from crieur.subscribers import KmsSubscriberKeys, Subscribers

    keys = KmsSubscriberKeys(store(), os.environ.get("CRIEUR_KMS_KEY_ID"), os.environ.get("CRIEUR_LOOKUP_KEY_ID"))
    base_url = os.environ.get("CRIEUR_PUBLIC_BASE_URL", "http://127.0.0.1:3000")
    return Subscribers(store(), keys, public_base_url=base_url)


@cache
def fanout() -> SnsFanout:
    from crieur.fanout import SnsFanout

    return SnsFanout(required("CRIEUR_TOPIC_ARN"))


@cache
def events() -> SqsEvents:
    """The events queue (status events for the communes' endpoints), on every function that emits them."""
    from crieur.events import SqsEvents

    return SqsEvents(required("CRIEUR_EVENTS_QUEUE_URL"))


@cache
def http() -> httpx.Client:
    """The guarded HTTP client every adapter uses, one per container (CRIEUR_HTTP_TIMEOUT_SECONDS, default 10,
    is a knob of the local stack's soak)."""
    from crieur.outbound import guarded_client

    return guarded_client(float(os.environ.get("CRIEUR_HTTP_TIMEOUT_SECONDS", "10")))


@cache
def scheduling() -> EventBridgeScheduling:
    from crieur.schedule import EventBridgeScheduling

    return EventBridgeScheduling(
        group=required("CRIEUR_SCHEDULE_GROUP"),
        release_function_arn=required("CRIEUR_RELEASE_FUNCTION_ARN"),
        role_arn=required("CRIEUR_SCHEDULER_ROLE_ARN"),
        dead_letter_arn=required("CRIEUR_SCHEDULE_DLQ_ARN"),
    )


def meteofrance_credentials() -> MeteoFranceCredentials | None:
    """The Météo-France portal credentials, a JSON SecureString in SSM (cached 5 minutes); None when unset."""
    from aws_lambda_powertools.utilities.parameters import GetParameterError

    from crieur import aws
    from crieur.weather.meteofrance import MeteoFranceCredentials

    name = os.environ.get("CRIEUR_METEOFRANCE_PARAMETER")
    if not name:
        return None
    try:
        value = aws.parameters().get(name, decrypt=True, max_age=300)
    except GetParameterError:
        return None
    return MeteoFranceCredentials.model_validate_json(str(value))


def meteofrance_source() -> VigilanceSource:
    from crieur.weather.meteofrance import MeteoFranceSource

    return MeteoFranceSource(http(), None, meteofrance_credentials())


def meteoalarm_source() -> VigilanceSource:
    from crieur.weather.meteoalarm import MeteoAlarmSource

    return MeteoAlarmSource(http())


def vigilance_sources() -> list[tuple[str, Callable[[], VigilanceSource]]]:
    """Météo-France first; MeteoAlarm when it fails or is not configured (each source's module is imported by
    the tick that asks it: MeteoAlarm's parser is not loaded while Météo-France answers)."""
    return [("meteofrance", meteofrance_source), ("meteoalarm", meteoalarm_source)]
