"""Webhook channel: a Standard Webhooks signed POST of the publication to the commune's URL."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import AnyUrl, field_validator

from crieur.channels.base import (
    Channel,
    ChannelCredentials,
    ChannelSettings,
    SentPost,
    call_provider,
)
from crieur.models import Publication, utc_now
from crieur.security import WEBHOOK_SECRET_PREFIX, private_targets_allowed, webhook_headers


def check_target_url(url: AnyUrl) -> AnyUrl:
    """https everywhere; plain http only where private targets are allowed (the local stack)."""
    if url.scheme != "https" and not (url.scheme == "http" and private_targets_allowed()):
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


class WebhookChannel(Channel[WebhookSettings, WebhookCredentials]):
    name: ClassVar = "webhook"
    label: ClassVar = "Le webhook"
    settings_model: ClassVar = WebhookSettings
    credentials_model: ClassVar = WebhookCredentials

    def render(self, publication: Publication) -> dict[str, Any]:
        return {
            "type": "publication.published",
            "timestamp": utc_now().isoformat(),
            "data": publication.model_dump(mode="json", exclude={"deliveries", "overrides"}),
        }

    def send(self, payload: dict[str, Any], *, delivery_id: str) -> SentPost:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        # The same webhook-id on every retry lets the receiver drop duplicates, as the specification asks.
        headers = {
            "content-type": "application/json",
            **webhook_headers(self.credentials.secret, delivery_id, body),
        }
        request = self.http.build_request("POST", str(self.settings.url), content=body, headers=headers)
        call_provider(self.http, "Le site destinataire", request)
        return SentPost(external_id=delivery_id)

    def delete(self, external_id: str) -> None:
        """A webhook cannot be unsent; retraction is announced by the next event instead."""
