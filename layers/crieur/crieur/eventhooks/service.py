"""Managing a commune's event endpoints: register (the secret is shown once), list, delete."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from crieur.credentials import CredentialVault
from crieur.errors import Conflict, InvalidInput, NotFound
from crieur.eventhooks.model import (
    EventEndpointList,
    EventEndpointRecord,
    EventEndpointRequest,
    EventEndpointView,
    NewEventEndpoint,
)
from crieur.models import utc_now
from crieur.security import new_webhook_secret
from crieur.store import AlreadyExists, Store

ENDPOINT_PREFIX = "evt_"
ENDPOINT_ID = re.compile(r"^evt_[0-9a-f]{20}$")
MAX_ENDPOINTS = 10
"""Per commune: the worker posts to each in turn, so a bound keeps one event's work bounded."""


def new_endpoint_id() -> str:
    return ENDPOINT_PREFIX + secrets.token_hex(10)


def vault_channel(endpoint_id: str) -> str:
    """The `channel` of the KMS encryption context of an endpoint's secret."""
    return f"events:{endpoint_id}"


def _view(record: EventEndpointRecord) -> EventEndpointView:
    return EventEndpointView(
        id=record.id,
        url=record.url,
        events=list(record.events),
        created_at=record.created_at,
    )


@dataclass
class EventEndpoints:
    store: Store
    vault: CredentialVault

    def create(self, commune: str, request: EventEndpointRequest) -> NewEventEndpoint:
        if len(self.store.list_event_endpoints(commune)) >= MAX_ENDPOINTS:
            raise InvalidInput(
                [("url", f"Au plus {MAX_ENDPOINTS} points de réception par commune : supprimez-en un d'abord.")]
            )
        endpoint_id = new_endpoint_id()
        secret = new_webhook_secret()
        record = EventEndpointRecord(
            id=endpoint_id,
            url=str(request.url),
            events=tuple(request.events),
            secret_ciphertext=self.vault.seal(commune, vault_channel(endpoint_id), {"secret": secret}),
            created_at=utc_now(),
        )
        try:
            self.store.create_event_endpoint(commune, record)
        except AlreadyExists as taken:  # 80 random bits: only if the generator is broken
            raise Conflict("Identifiant déjà pris : réessayez.") from taken
        return NewEventEndpoint(**_view(record).model_dump(), secret=secret)

    def list_endpoints(self, commune: str) -> EventEndpointList:
        records = sorted(self.store.list_event_endpoints(commune), key=lambda record: record.created_at)
        return EventEndpointList(items=[_view(record) for record in records])

    def delete(self, commune: str, endpoint_id: str) -> None:
        if not ENDPOINT_ID.match(endpoint_id) or not self.store.delete_event_endpoint(commune, endpoint_id):
            raise NotFound(f"Aucun point de réception {endpoint_id} pour cette commune.")
