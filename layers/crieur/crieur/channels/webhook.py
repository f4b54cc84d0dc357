"""Webhook channel: a Standard Webhooks signed POST of the publication to the commune's URL."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import AnyUrl, field_validator

from crieur.channels.base import (
    ChannelCheck,
    ChannelCredentials,
    ChannelSettings,
    PostChannel,
    RenderedPost,
    SentPost,
    call_provider,
)
from crieur.models import Publication, utc_now
from crieur.security import WEBHOOK_SECRET_PREFIX, local_http_allowed, webhook_headers


def check_target_url(url: AnyUrl) -> AnyUrl:
    """https everywhere; plain http only for loopback where private targets are allowed (the local stack)."""
    if url.scheme != "https" and not local_http_allowed(url.scheme, url.host):
        raise ValueError("L'adresse doit commencer par https://.")
    return url


class WebhookSettings(ChannelSettings):
    url: AnyUrl

    _https = field_validator("url")(check_target_url)


class WebhookCredentials(ChannelCredentials):
    secret: str

    @field_validator("secret")
    @classmethod
    def _whsec(cls, secret: str) -> str:
        if not secret.startswith(WEBHOOK_SECRET_PREFIX) or len(secret) < len(WEBHOOK_SECRET_PREFIX) + 24:
            raise ValueError("Le secret doit être de la forme whsec_… (24 octets ou plus, en base64).")
        return secret


class WebhookChannel(PostChannel[WebhookSettings, WebhookCredentials]):
    name: ClassVar = "webhook"
    label: ClassVar = "Le site destinataire"
    settings_model: ClassVar = WebhookSettings
    credentials_model: ClassVar = WebhookCredentials

    def render(self, publication: Publication) -> RenderedPost:
        data = publication.model_dump(mode="json", exclude={"deliveries", "overrides"})
        return RenderedPost(text=publication.title, payload={"type": "publication.published", "data": data})

    def _post(self, event_type: str, data: dict[str, Any], message_id: str) -> None:
        event = {"type": event_type, "timestamp": utc_now().isoformat(), "data": data}
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        # The same webhook-id on every retry lets the receiver drop duplicates, as the specification asks.
        headers = {"content-type": "application/json", **webhook_headers(self.credentials.secret, message_id, body)}
        request = self.http.build_request("POST", str(self.settings.url), content=body, headers=headers)
        call_provider(self.http, self.label, request)

    def send(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost:
        self._post(rendered.payload["type"], rendered.payload["data"], delivery_id)
        return SentPost(external_id=delivery_id)

    def delete(self, external_id: str) -> None:
        """A webhook cannot be unsent: the receiver is told with a `publication.retracted` event."""
        self._post("publication.retracted", {"id": external_id.rsplit("-", 1)[0]}, f"{external_id}-retract")

    def check(self) -> ChannelCheck:
        self._post("webhook.test", {"message": "Test de Crieur : ce message ne publie rien."}, "test")
        return ChannelCheck(ok=True, account=str(self.settings.url), message="Le site a accepté un envoi de test.")
