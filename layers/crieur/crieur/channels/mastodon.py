"""Mastodon channel: POST /api/v1/statuses on the commune's instance."""

from __future__ import annotations

import time
from typing import ClassVar

from pydantic import AnyUrl, field_validator

from crieur.channels.base import (
    Channel,
    ChannelCheck,
    ChannelCredentials,
    ChannelSettings,
    PermanentChannelError,
    RenderedPost,
    SentPost,
    call_provider,
)
from crieur.channels.webhook import check_target_url
from crieur.models import Publication
from crieur.render.text import compose, weighted_length

DEFAULT_MAX_CHARACTERS = 500
URL_WEIGHT = 23
INSTANCE_CACHE_SECONDS = 3600
_instance_limits: dict[str, tuple[float, int]] = {}


class MastodonSettings(ChannelSettings):
    instance_url: AnyUrl

    _https = field_validator("instance_url")(check_target_url)

    @property
    def base(self) -> str:
        return str(self.instance_url).rstrip("/")


class MastodonCredentials(ChannelCredentials):
    access_token: str


class MastodonChannel(Channel[MastodonSettings, MastodonCredentials]):
    name: ClassVar = "mastodon"
    label: ClassVar = "Mastodon"
    settings_model: ClassVar = MastodonSettings
    credentials_model: ClassVar = MastodonCredentials

    def max_length(self) -> int:
        """The instance's own limit (GET /api/v2/instance), cached an hour; 500 when it does not say."""
        cached = _instance_limits.get(self.settings.base)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        limit = DEFAULT_MAX_CHARACTERS
        try:
            response = self.http.get(f"{self.settings.base}/api/v2/instance")
            if response.is_success:
                statuses = response.json().get("configuration", {}).get("statuses", {})
                limit = int(statuses.get("max_characters", DEFAULT_MAX_CHARACTERS))
        except Exception:
            return limit
        _instance_limits[self.settings.base] = (time.monotonic() + INSTANCE_CACHE_SECONDS, limit)
        return limit

    def measure(self, text: str) -> int:
        return weighted_length(text, URL_WEIGHT)

    def render(self, publication: Publication) -> RenderedPost:
        override = publication.overrides.get("mastodon")
        limit = self.max_length()
        text = compose(publication, limit, self.measure, override=override.text if override else None, hashtag=True)
        return RenderedPost(
            text=text,
            length=self.measure(text),
            limit=limit,
            payload={"status": text, "visibility": "public", "language": "fr"},
        )

    def _authorization(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.access_token}"}

    def send(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost:
        # Mastodon honours Idempotency-Key for an hour: a retry after a crash cannot post twice.
        request = self.http.build_request(
            "POST",
            f"{self.settings.base}/api/v1/statuses",
            json=rendered.payload,
            headers={**self._authorization(), "Idempotency-Key": delivery_id},
        )
        status = call_provider(self.http, self.label, request).json()
        return SentPost(external_id=str(status["id"]), url=status.get("url"))

    def delete(self, external_id: str) -> None:
        request = self.http.build_request(
            "DELETE", f"{self.settings.base}/api/v1/statuses/{external_id}", headers=self._authorization()
        )
        try:
            call_provider(self.http, self.label, request)
        except PermanentChannelError as refused:
            if refused.http_status != 404:  # already deleted (by hand, or by an earlier attempt): done
                raise

    def check(self) -> ChannelCheck:
        request = self.http.build_request(
            "GET", f"{self.settings.base}/api/v1/accounts/verify_credentials", headers=self._authorization()
        )
        account = call_provider(self.http, self.label, request).json()
        return ChannelCheck(
            ok=True, account=f"@{account.get('acct', '?')}", message="Le compte Mastodon est joignable et autorisé."
        )
