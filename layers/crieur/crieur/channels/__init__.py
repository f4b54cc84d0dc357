"""Channel adapters, one module per provider, all with the interface of `base.Channel`."""

from __future__ import annotations

from typing import Any

from crieur.channels.base import Channel
from crieur.channels.mastodon import MastodonChannel
from crieur.channels.webhook import WebhookChannel
from crieur.models import ChannelName

ADAPTERS: dict[ChannelName, type[Channel[Any, Any]]] = {
    "webhook": WebhookChannel,
    "mastodon": MastodonChannel,
}


def adapter_for(channel: ChannelName) -> type[Channel[Any, Any]]:
    """The channel's adapter; a channel of the contract that Crieur does not serve yet is a 422."""
    if channel not in ADAPTERS:
        from crieur.errors import InvalidInput

        raise InvalidInput([("channel", f"Le canal « {channel} » n'est pas encore disponible dans Crieur.")])
    return ADAPTERS[channel]
