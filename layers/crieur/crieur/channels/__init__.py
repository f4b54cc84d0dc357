"""Channel adapters, one module per provider, all with the interface of `base.Channel`."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from crieur.channels.base import Channel, PermanentChannelError
from crieur.channels.bluesky import BlueskyChannel
from crieur.channels.facebook import FacebookChannel
from crieur.channels.instagram import InstagramChannel
from crieur.channels.mastodon import MastodonChannel
from crieur.channels.push import PushChannel
from crieur.channels.webhook import WebhookChannel
from crieur.channels.webpush import WebpushChannel
from crieur.channels.website import WebsiteChannel
from crieur.channels.wordpress import WordpressChannel
from crieur.channels.x import XChannel
from crieur.media import MediaFetcher
from crieur.models import ChannelName

ADAPTERS: dict[ChannelName, type[Channel[Any, Any]]] = {
    "bluesky": BlueskyChannel,
    "facebook": FacebookChannel,
    "instagram": InstagramChannel,
    "mastodon": MastodonChannel,
    "push": PushChannel,
    "webhook": WebhookChannel,
    "webpush": WebpushChannel,
    "website": WebsiteChannel,
    "wordpress": WordpressChannel,
    "x": XChannel,
}


def adapter_for(channel: ChannelName) -> type[Channel[Any, Any]]:
    """The channel's adapter; a channel of the contract that Crieur does not serve yet is a 422."""
    if channel not in ADAPTERS:
        from crieur.errors import InvalidInput

        raise InvalidInput([("channel", f"Le canal « {channel} » n'est pas encore disponible dans Crieur.")])
    return ADAPTERS[channel]


def build_adapter(
    channel: ChannelName,
    settings: dict[str, Any],
    credentials: dict[str, str] | None,
    http: httpx.Client,
    media: MediaFetcher | None = None,
) -> Channel[Any, Any]:
    """The channel's adapter for stored settings (and decrypted credentials, None for a preview)."""
    adapter = adapter_for(channel)
    try:
        return adapter(
            adapter.settings_model.model_validate(settings),
            adapter.credentials_model.model_validate(credentials) if credentials is not None else None,
            http,
            media,
        )
    except ValidationError as invalid:
        raise PermanentChannelError(
            "invalid_settings",
            f"Les réglages du canal {adapter.label} ne sont plus valides : reconfigurez-le.",
            str(invalid),
        ) from invalid
