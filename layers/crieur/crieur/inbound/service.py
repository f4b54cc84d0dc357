"""Inbound sources (the sites a commune lets publish by webhook) and the webhook use case.

A source has one or two signing secrets in force: a rotation makes a new one current and keeps the
previous one valid for 24 hours, so the site can be updated without a gap. Each secret is sealed with
the stack's KMS key under the encryption context {commune, channel: "inbound:<source id>"}: a ciphertext
copied to another commune or source no longer opens, and the deliver functions (whose key policy
condition names their own channel) cannot open it at all.

The URL key (`?key=…`) is a weaker fallback for sites that cannot sign: it is random per source, shown
once, stored as SHA-256; it proves nothing about the body, carries no timestamp, and ends up in the
site's configuration and in any log that records URLs. A source created `signed_only` has none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from crieur.credentials import CredentialVault
from crieur.errors import Conflict, CrieurError, InvalidInput, NotFound
from crieur.inbound.model import (
    InboundSourceList,
    InboundSourceRecord,
    InboundSourceRequest,
    InboundSourceView,
    NewInboundSource,
    RotatedSecret,
    SealedSecret,
    SecretInfo,
)
from crieur.inbound.payloads import publication_request
from crieur.models import INSEE_PATTERN, Publication, utc_now
from crieur.security import InvalidSignature, new_webhook_secret, verify_webhook
from crieur.store import AlreadyExists, Store

if TYPE_CHECKING:
    from crieur.service import PublicationService

logger = Logger(child=True)

SOURCE_PREFIX = "src_"
URL_KEY_PREFIX = "inkey_"
ROTATION_OVERLAP = timedelta(hours=24)
SOURCE_ID = re.compile(r"^src_[0-9a-f]{20}$")

Once = Callable[[str, str, dict[str, Any], Callable[[], str]], str]
"""crieur.idempotency.once: (namespace, key, request, create) → the id `create` returned the first time."""


def new_source_id() -> str:
    return SOURCE_PREFIX + secrets.token_hex(10)


def vault_channel(source_id: str) -> str:
    """The `channel` of the KMS encryption context of a source's secrets."""
    return f"inbound:{source_id}"


def hash_url_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def inbound_path(commune: str, source_id: str) -> str:
    return f"/v1/inbound/{commune}/{source_id}"


class InboundRefused(CrieurError):
    """401, the same for an unknown commune or source, a bad signature, a stale timestamp or a wrong key."""

    status = 401
    title = "Webhook refusé"

    def __init__(self) -> None:
        super().__init__(
            "Appel non authentifié : vérifiez l'adresse appelée, le secret de signature (whsec_…) de la source "
            "et l'horloge du site (5 minutes de tolérance), ou la clé d'adresse."
        )


@dataclass(frozen=True)
class Verified:
    webhook_id: str | None
    """The Standard Webhooks message id (always there when signed; optional with the URL key)."""
    signed: bool


@dataclass
class InboundSources:
    store: Store
    vault: CredentialVault
    clock: Callable[[], datetime] | None = None
    """Injectable for tests; the current UTC time otherwise."""

    def now(self) -> datetime:
        return self.clock() if self.clock else utc_now()

    # --- management (the commune's API key, or the operator's CLI) -------------------------------------

    def create(self, commune: str, request: InboundSourceRequest) -> NewInboundSource:
        if self.store.get_commune(commune) is None:
            raise NotFound(f"Aucune commune {commune} : créez-la d'abord.")
        now = self.now()
        source_id = new_source_id()
        secret = new_webhook_secret()
        key = None if request.signed_only else URL_KEY_PREFIX + secrets.token_urlsafe(32)
        record = InboundSourceRecord(
            id=source_id,
            name=request.name,
            created_at=now,
            signed_only=request.signed_only,
            key_hash=hash_url_key(key) if key else None,
            secrets=(self._seal(commune, source_id, secret, now),),
        )
        try:
            self.store.create_inbound_source(commune, record)
        except AlreadyExists as taken:  # 80 random bits: only if the generator is broken
            raise Conflict("Identifiant de source déjà pris : réessayez.") from taken
        return NewInboundSource(**self._view(commune, record).model_dump(), secret=secret, key=key)

    def _seal(self, commune: str, source_id: str, secret: str, now: datetime) -> SealedSecret:
        ciphertext = self.vault.seal(commune, vault_channel(source_id), {"secret": secret})
        return SealedSecret(ciphertext=ciphertext, created_at=now)

    def list_sources(self, commune: str) -> InboundSourceList:
        records = sorted(self.store.list_inbound_sources(commune), key=lambda record: record.created_at)
        return InboundSourceList(items=[self._view(commune, record) for record in records])

    def get(self, commune: str, source_id: str) -> InboundSourceView:
        return self._view(commune, self._record(commune, source_id))

    def _record(self, commune: str, source_id: str) -> InboundSourceRecord:
        record = self.store.get_inbound_source(commune, source_id) if SOURCE_ID.match(source_id) else None
        if record is None:
            raise NotFound(f"Aucune source {source_id} pour cette commune.")
        return record

    def rotate(self, commune: str, source_id: str) -> RotatedSecret:
        """A new current secret; the one it replaces stays valid 24 hours, older ones end now."""
        record = self._record(commune, source_id)
        now = self.now()
        expires = now + ROTATION_OVERLAP
        current = next((sealed for sealed in record.secrets if sealed.expires_at is None), None)
        kept = (SealedSecret(current.ciphertext, current.created_at, expires),) if current is not None else ()
        secret = new_webhook_secret()
        rotated = (*kept, self._seal(commune, source_id, secret, now))
        if not self.store.replace_inbound_secrets(commune, source_id, rotated, record.version):
            raise Conflict("Une autre rotation de ce secret vient d'avoir lieu : relisez la source puis réessayez.")
        return RotatedSecret(
            id=source_id,
            secret=secret,
            previous_expires_at=expires,
            secrets=[SecretInfo(created_at=s.created_at, expires_at=s.expires_at) for s in rotated],
        )

    def delete(self, commune: str, source_id: str) -> None:
        if not SOURCE_ID.match(source_id) or not self.store.delete_inbound_source(commune, source_id):
            raise NotFound(f"Aucune source {source_id} pour cette commune.")

    def _view(self, commune: str, record: InboundSourceRecord) -> InboundSourceView:
        now = self.now()
        return InboundSourceView(
            id=record.id,
            name=record.name,
            created_at=record.created_at,
            signed_only=record.signed_only,
            url_key=record.key_hash is not None,
            path=inbound_path(commune, record.id),
            secrets=[
                SecretInfo(created_at=sealed.created_at, expires_at=sealed.expires_at)
                for sealed in record.secrets
                if sealed.in_force(now)
            ],
        )

    # --- authentication of a call --------------------------------------------------------------------

    def authenticate(
        self, commune: str, source_id: str, headers: dict[str, str], body: bytes, url_key: str | None
    ) -> Verified:
        """Who may call: a valid signature by a secret in force, else (if allowed) the URL key.

        Every refusal is the same 401, so that a caller learns nothing about which communes or sources
        exist. A call that carries a signature is judged on it alone: it is never downgraded to the key.
        """
        lowered = {name.lower(): value for name, value in headers.items()}
        record = (
            self.store.get_inbound_source(commune, source_id)
            if INSEE_PATTERN.match(commune) and SOURCE_ID.match(source_id)
            else None
        )
        if record is None:
            raise InboundRefused()
        if "webhook-signature" in lowered:
            now = self.now()
            try:
                in_force = [
                    self.vault.open(commune, vault_channel(source_id), sealed.ciphertext)["secret"]
                    for sealed in record.secrets
                    if sealed.in_force(now)
                ]
                verify_webhook(in_force, lowered, body, now=now.timestamp())
            except InvalidSignature as invalid:
                logger.info("inbound webhook refused", extra={"source": source_id, "reason": str(invalid)})
                raise InboundRefused() from invalid
            except ClientError as sealed_elsewhere:
                if sealed_elsewhere.response.get("Error", {}).get("Code") != "InvalidCiphertextException":
                    raise
                logger.warning("inbound secret does not open", extra={"source": source_id})
                raise InboundRefused() from sealed_elsewhere
            return Verified(webhook_id=lowered["webhook-id"], signed=True)
        if (
            url_key
            and not record.signed_only
            and record.key_hash is not None
            and hmac.compare_digest(hash_url_key(url_key), record.key_hash)
        ):
            return Verified(webhook_id=lowered.get("webhook-id") or None, signed=False)
        raise InboundRefused()


@dataclass
class InboundWebhooks:
    """POST /v1/inbound/{commune}/{source}: authenticate, map, publish once per webhook-id."""

    sources: InboundSources
    publications: PublicationService
    once: Once | None = None
    """crieur.idempotency.once unless replaced (imported lazily: powertools idempotency is not free)."""

    def receive(
        self, commune: str, source_id: str, headers: dict[str, str], body: bytes, url_key: str | None
    ) -> tuple[Publication, bool]:
        """The publication, and whether this call created it (False for a replayed webhook-id)."""
        verified = self.sources.authenticate(commune, source_id, headers, body, url_key)
        created = False

        def create() -> str:
            nonlocal created
            publication = self.publications.publish(commune, publication_request(body))
            created = True
            logger.info(
                "inbound publication",
                extra={"source": source_id, "publication_id": publication.id, "signed": verified.signed},
            )
            return publication.id

        if verified.webhook_id is None:  # URL key without webhook-id: nothing to recognise a replay by
            publication_id = create()
        else:
            publication_id = self._once(commune, source_id, verified.webhook_id, body, create)
        return self.publications.get_publication(commune, publication_id), created

    def _once(self, commune: str, source_id: str, webhook_id: str, body: bytes, create: Callable[[], str]) -> str:
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyValidationError,
        )

        once = self.once or _powertools_once()
        # The namespace cannot meet an Idempotency-Key of POST /v1/publications, keyed on the bare commune code.
        namespace = f"{commune}#inbound#{source_id}"
        fingerprint = {"body_sha256": base64.b64encode(hashlib.sha256(body).digest()).decode()}
        try:
            return once(namespace, webhook_id, fingerprint, create)
        except IdempotencyValidationError as reused:
            message = "Ce webhook-id a déjà servi pour un autre contenu : chaque message doit avoir le sien."
            raise InvalidInput([("webhook-id", message)]) from reused
        except IdempotencyAlreadyInProgressError as busy:
            message = "Ce message (webhook-id) est en cours de traitement : réessayez dans quelques secondes."
            raise Conflict(message) from busy


def _powertools_once() -> Once:
    from crieur.idempotency import once

    return once


def body_bytes(event: dict[str, Any]) -> bytes:
    """The request body exactly as sent (what the signature covers), from an API Gateway v2 event."""
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
