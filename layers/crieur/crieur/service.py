"""Use cases behind the HTTP API: publish, read publications, manage channel settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError
from ulid import ULID

from crieur.channels import ADAPTERS, adapter_for
from crieur.credentials import CredentialVault
from crieur.delivery import fail_undeliverable
from crieur.errors import InvalidInput, NotFound, Unavailable
from crieur.fanout import Fanout
from crieur.models import (
    ChannelConfigRequest,
    ChannelConfigView,
    ChannelList,
    ChannelName,
    Delivery,
    DeliveryError,
    FanoutMessage,
    Publication,
    PublicationPage,
    PublicationRequest,
    PublicationStatus,
    utc_now,
)
from crieur.problems import field_errors
from crieur.store import ChannelRecord, InvalidCursor, Store

logger = Logger(child=True)


def new_publication_id() -> str:
    return f"pub_{ULID()}"


@dataclass
class PublicationService:
    store: Store
    fanout: Fanout
    vault: CredentialVault

    # --- publications -----------------------------------------------------------------------------------

    def publish(self, commune: str, request: PublicationRequest) -> Publication:
        """Stores the publication with one pending delivery per channel, then fans it out once."""
        channels = self._target_channels(commune, request)
        now = utc_now()
        publication = Publication(
            **request.model_dump(exclude={"channels"}),
            channels=channels,
            id=new_publication_id(),
            commune=commune,
            status="publishing",
            created_at=now,
            deliveries={channel: Delivery(status="pending", updated_at=now) for channel in channels},
        )
        self.store.create_publication(publication)
        try:
            self.fanout.send(FanoutMessage(commune=commune, publication_id=publication.id), list(channels))
        except Exception as failure:
            logger.exception("fan-out failed", extra={"publication_id": publication.id})
            error = DeliveryError(
                code="fanout_failed",
                message="La diffusion n'a pas pu démarrer : republiez dans quelques minutes.",
                provider_message=str(failure)[:500],
            )
            for channel in channels:
                fail_undeliverable(self.store, commune, publication.id, channel, error)
            raise Unavailable(
                f"La publication {publication.id} n'a pas pu être diffusée : réessayez dans quelques minutes."
            ) from failure
        logger.info("publication accepted", extra={"publication_id": publication.id, "channels": channels})
        return publication

    def _target_channels(self, commune: str, request: PublicationRequest) -> list[ChannelName]:
        configured = {record.channel: record for record in self.store.list_channels(commune)}
        if request.channels is None:
            targets = [name for name in ADAPTERS if name in configured and configured[name].enabled]
            if not targets:
                raise InvalidInput(
                    [
                        (
                            "channels",
                            "Aucun canal n'est activé pour cette commune : configurez-en un (/v1/channels).",
                        )
                    ]
                )
        else:
            targets = list(request.channels)
            problems = []
            for index, name in enumerate(targets):
                record = configured.get(name)
                if record is None:
                    problems.append(
                        (f"channels[{index}]", f"Le canal « {name} » n'est pas configuré pour cette commune.")
                    )
                elif not record.enabled:
                    problems.append((f"channels[{index}]", f"Le canal « {name} » est désactivé."))
            if problems:
                raise InvalidInput(problems)
        stray = [name for name in request.overrides if name not in targets]
        if stray:
            raise InvalidInput(
                [(f"overrides.{name}", f"Personnalisation pour « {name} », qui n'est pas visé.") for name in stray]
            )
        return targets

    def get_publication(self, commune: str, publication_id: str) -> Publication:
        publication = self.store.get_publication(commune, publication_id)
        if publication is None:
            raise NotFound(f"Aucune publication {publication_id} pour cette commune.")
        return publication

    def list_publications(
        self, commune: str, limit: int, cursor: str | None, status: PublicationStatus | None
    ) -> PublicationPage:
        try:
            items, next_cursor = self.store.list_publications(commune, limit, cursor, status)
        except InvalidCursor as bad:
            raise InvalidInput([("cursor", "Curseur invalide : reprenez la valeur next_cursor telle quelle.")]) from bad
        return PublicationPage(items=items, next_cursor=next_cursor)

    # --- channel settings -------------------------------------------------------------------------------

    def configure_channel(self, commune: str, channel: ChannelName, request: ChannelConfigRequest) -> ChannelConfigView:
        """Validates settings and credentials against the channel's models; credentials are sealed with KMS."""
        adapter = adapter_for(channel)
        problems: list[tuple[str, str]] = []
        settings: dict[str, Any] = {}
        try:
            settings = adapter.settings_model.model_validate(request.settings).model_dump(mode="json")
        except ValidationError as invalid:
            problems += field_errors(invalid.errors(), ("settings",))
        ciphertext = None
        if request.credentials is not None:
            try:
                credentials = adapter.credentials_model.model_validate(request.credentials).model_dump(mode="json")
                ciphertext = self.vault.seal(commune, channel, credentials)
            except ValidationError as invalid:
                problems += field_errors(invalid.errors(), ("credentials",))
        existing = self.store.get_channel(commune, channel)
        if request.credentials is None and (existing is None or existing.credentials_ciphertext is None):
            problems.append(("credentials", "Identifiants obligatoires à la première configuration du canal."))
        if problems:
            raise InvalidInput(problems)
        return _view(self.store.put_channel(commune, channel, request.enabled, settings, ciphertext))

    def channel(self, commune: str, channel: ChannelName) -> ChannelConfigView:
        record = self.store.get_channel(commune, channel)
        if record is None:
            raise NotFound(f"Le canal « {channel} » n'est pas configuré pour cette commune.")
        return _view(record)

    def channels(self, commune: str) -> ChannelList:
        return ChannelList(
            items=[_view(record) for record in self.store.list_channels(commune)], available=list(ADAPTERS)
        )

    def remove_channel(self, commune: str, channel: ChannelName) -> None:
        if not self.store.delete_channel(commune, channel):
            raise NotFound(f"Le canal « {channel} » n'est pas configuré pour cette commune.")


def _view(record: ChannelRecord) -> ChannelConfigView:
    return ChannelConfigView(
        channel=record.channel,
        enabled=record.enabled,
        settings=record.settings,
        credentials_set=record.credentials_ciphertext is not None,
        updated_at=record.updated_at,
    )
