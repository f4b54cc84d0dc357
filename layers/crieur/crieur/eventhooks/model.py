"""Event endpoints: what the API shows of them, and what the store keeps (the secret sealed with KMS)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from crieur.events import EventType
from crieur.models import HttpsUrl, StrictModel
from crieur.security import private_targets_allowed


class EventEndpointRequest(StrictModel):
    """Body of POST /v1/event-endpoints."""

    url: HttpsUrl = Field(description="Adresse https qui recevra les événements (POST signés).")
    events: Annotated[list[EventType], Field(min_length=1)] = Field(description="Les événements souhaités.")

    @field_validator("url")
    @classmethod
    def _public(cls, url: HttpsUrl) -> HttpsUrl:
        """A literal private address is refused now; a name is checked at each send (it may change)."""
        try:
            address = ipaddress.ip_address((url.host or "").strip("[]"))
        except ValueError:
            return url
        if not address.is_global and not private_targets_allowed():
            raise ValueError("L'adresse doit être publique (adresse privée ou locale refusée).")
        return url

    @field_validator("events")
    @classmethod
    def _unique(cls, events: list[EventType]) -> list[EventType]:
        if len(set(events)) != len(events):
            raise ValueError("Un événement est cité deux fois.")
        return events


class EventEndpointView(BaseModel):
    id: str
    url: str
    events: list[EventType]
    created_at: datetime


class EventEndpointList(BaseModel):
    items: list[EventEndpointView]


class NewEventEndpoint(EventEndpointView):
    """The answer to the creation: the only time the secret is shown."""

    secret: str = Field(
        description="Secret de signature whsec_… (Standard Webhooks) : affiché une seule fois, à garder côté récepteur."
    )


@dataclass(frozen=True)
class EventEndpointRecord:
    id: str
    url: str
    events: tuple[str, ...]
    secret_ciphertext: bytes
    """KMS ciphertext of {"secret": "whsec_…"}, context {commune, channel: "events:<endpoint id>"}."""
    created_at: datetime


AttemptState = Literal["pending", "delivered", "failed", "gone"]
"""pending (not yet, or to retry), delivered (2xx), failed (given up), gone (the endpoint was deleted)."""


@dataclass(frozen=True)
class EndpointAttempt:
    state: AttemptState = "pending"
    attempts: int = 0
    status_code: int | None = None
    error: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class EventDeliveryRecord:
    """One event, as the worker first built it: the body every endpoint gets, and each endpoint's state."""

    event_id: str
    type: str
    body: str
    """The JSON body, built once so that a retry sends the same bytes (only the signature's timestamp moves)."""
    endpoints: dict[str, EndpointAttempt] = field(default_factory=dict)
