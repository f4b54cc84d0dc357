"""Deployment settings read from the environment (set by template.yaml, or by the local stack)."""

from __future__ import annotations

import os
from functools import cache

import httpx

from crieur.credentials import KmsVault
from crieur.fanout import SnsFanout
from crieur.schedule import EventBridgeScheduling
from crieur.security import guarded_client
from crieur.store import Store


def required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set (template.yaml sets it)")
    return value


@cache
def store() -> Store:
    return Store(required("CRIEUR_TABLE_NAME"))


@cache
def vault() -> KmsVault:
    return KmsVault(os.environ.get("CRIEUR_KMS_KEY_ID"))


@cache
def fanout() -> SnsFanout:
    return SnsFanout(required("CRIEUR_TOPIC_ARN"))


@cache
def http() -> httpx.Client:
    """The guarded HTTP client every adapter uses, one per container."""
    return guarded_client()


@cache
def scheduling() -> EventBridgeScheduling:
    return EventBridgeScheduling(
        group=required("CRIEUR_SCHEDULE_GROUP"),
        release_function_arn=required("CRIEUR_RELEASE_FUNCTION_ARN"),
        role_arn=required("CRIEUR_SCHEDULER_ROLE_ARN"),
        dead_letter_arn=required("CRIEUR_SCHEDULE_DLQ_ARN"),
    )
