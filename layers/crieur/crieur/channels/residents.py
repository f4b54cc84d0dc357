"""What the sms and email channels share: their audience is the commune's confirmed subscribers of a medium
(crieur.subscribers), who chose the publication's category."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from crieur.channels.base import AudienceChannel, CredentialsT, RenderedPost, SettingsT

if TYPE_CHECKING:
    from crieur.subscribers import Medium, Subscribers


class ResidentsChannel(AudienceChannel[SettingsT, CredentialsT]):
    """One message per confirmed subscriber of `medium`; `render` puts `commune` and `category` in the payload."""

    medium: ClassVar[Medium]
    subscribers: Subscribers | None = None
    """The subscribers' store; the deployment's (crieur.config) unless set."""

    def _subscribers(self) -> Subscribers:
        if self.subscribers is None:
            from crieur import config

            self.subscribers = config.subscribers()
        return self.subscribers

    def audience(self, rendered: RenderedPost) -> list[str]:
        payload = rendered.payload
        return self._subscribers().audience(str(payload["commune"]), self.medium, str(payload["category"]))
