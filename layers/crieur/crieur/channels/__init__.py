"""Channel adapters, one module per provider, all with the interface of `base.Channel`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from pydantic import ValidationError

from crieur.channels.base import Channel, PermanentChannelError
from crieur.models import ChannelName

if TYPE_CHECKING:
    import httpx

    from crieur.media import MediaFetcher


class _Adapters(dict[ChannelName, "type[Channel[Any, Any]] | str"]):
    """Channel → adapter class, given as `module:Class` and imported on first use: a deliver function loads its
    own channel's libraries only (not icalendar, lxml, cryptography… for every channel), which keeps its cold
    start short (ARCHITECTURE.md §8)."""

    def __getitem__(self, channel: ChannelName) -> type[Channel[Any, Any]]:
        found = super().__getitem__(channel)
        if isinstance(found, str):
            module, _, name = found.partition(":")
            found = getattr(importlib.import_module(module), name)
            super().__setitem__(channel, found)
        return found


# Typed as the plain mapping it behaves as (a module path is resolved before anyone sees it).
ADAPTERS = cast(
    dict[ChannelName, type[Channel[Any, Any]]],
    _Adapters(
        {
            "bluesky": "crieur.channels.bluesky:BlueskyChannel",
            "email": "crieur.channels.email:EmailChannel",
            "facebook": "crieur.channels.facebook:FacebookChannel",
            "instagram": "crieur.channels.instagram:InstagramChannel",
            "mastodon": "crieur.channels.mastodon:MastodonChannel",
            "push": "crieur.channels.push:PushChannel",
            "sms": "crieur.channels.sms:SmsChannel",
            "webhook": "crieur.channels.webhook:WebhookChannel",
            "webpush": "crieur.channels.webpush:WebpushChannel",
            "website": "crieur.channels.website:WebsiteChannel",
            "wordpress": "crieur.channels.wordpress:WordpressChannel",
            "x": "crieur.channels.x:XChannel",
        }
    ),
)


def build_adapter(
    channel: ChannelName,
    settings: dict[str, Any],
    credentials: dict[str, str] | None,
    http: httpx.Client | Callable[[], httpx.Client],
    media: MediaFetcher | None = None,
) -> Channel[Any, Any]:
    """The channel's adapter for stored settings (and decrypted credentials, None for a preview); `http` may be
    the client's factory, called by the adapter's first request."""
    adapter = ADAPTERS[channel]
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
