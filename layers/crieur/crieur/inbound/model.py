"""The inbound sources: what the API shows of them, and what the store keeps (secrets sealed with KMS)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from crieur.models import StrictModel


class InboundSourceRequest(StrictModel):
    """Body of POST /v1/inbound-sources."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = Field(
        description="Le site qui publiera, par exemple « Site de la mairie »."
    )
    signed_only: bool = Field(
        default=False,
        description="Refuser la clé dans l'adresse (?key=…) : seuls les appels signés sont acceptés.",
    )


class SecretInfo(BaseModel):
    """A signing secret in force, without the secret itself."""

    created_at: datetime
    expires_at: datetime | None = Field(
        default=None, description="Fin de validité d'un ancien secret après une rotation (24 heures)."
    )


class InboundSourceView(BaseModel):
    id: str
    name: str
    created_at: datetime
    signed_only: bool
    url_key: bool = Field(description="Une clé d'adresse (?key=…, repli plus faible) est acceptée.")
    path: str = Field(description="Où le site envoie ses appels (POST).")
    secrets: list[SecretInfo] = Field(description="Les secrets de signature en vigueur (leurs dates seulement).")


class InboundSourceList(BaseModel):
    items: list[InboundSourceView]


class NewInboundSource(InboundSourceView):
    """The answer to the creation: the only time the secret and the URL key are shown."""

    secret: str = Field(description="Secret de signature whsec_… : affiché une seule fois, à copier dans le site.")
    key: str | None = Field(
        default=None,
        description="Clé d'adresse pour les sites qui ne savent pas signer (affichée une seule fois) ; "
        "absente avec signed_only.",
    )


class RotatedSecret(BaseModel):
    id: str
    secret: str = Field(description="Le nouveau secret whsec_… : affiché une seule fois.")
    previous_expires_at: datetime = Field(description="L'ancien secret reste valide jusqu'à cette heure.")
    secrets: list[SecretInfo]


@dataclass(frozen=True)
class SealedSecret:
    ciphertext: bytes
    """KMS ciphertext of {"secret": "whsec_…"}, context {commune, channel: "inbound:<source id>"}."""
    created_at: datetime
    expires_at: datetime | None = None

    def in_force(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class InboundSourceRecord:
    id: str
    name: str
    created_at: datetime
    signed_only: bool
    key_hash: str | None
    """SHA-256 of the URL key, None when the source is signed only."""
    secrets: tuple[SealedSecret, ...]
    version: int = 1
    """Incremented by each rotation, so that two concurrent rotations cannot lose a secret."""
