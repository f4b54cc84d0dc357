"""Mastodon channel: POST /api/v1/statuses on the commune's instance, images uploaded with their alt text."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any, ClassVar

import httpx
from pydantic import AnyUrl, field_validator

from crieur.channels.base import (
    ChannelCheck,
    ChannelCredentials,
    ChannelSettings,
    MediaDecision,
    PermanentChannelError,
    PostChannel,
    RenderedPost,
    SentPost,
    TransientChannelError,
    call_provider,
)
from crieur.channels.lookup import CLOCK_MARGIN_SECONDS, LOOKUP_PAGES, comparable, lookup_failures
from crieur.channels.webhook import check_target_url
from crieur.models import Media, Publication
from crieur.render.text import compose, weighted_length

DEFAULT_MAX_CHARACTERS = 500
DEFAULT_MAX_MEDIA_ATTACHMENTS = 4
DEFAULT_IMAGE_SIZE_LIMIT = 16 * 1024 * 1024
URL_WEIGHT = 23
INSTANCE_CACHE_SECONDS = 3600
IMAGE_TYPES: dict[str, str] = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
VIDEO_REASON = "Vidéo : Crieur ne publie pas encore de vidéos sur Mastodon."
POLL_DELAYS: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0)
"""Waits before each look at an upload still being processed: about five seconds in all."""
LOOKUP_SIZE = 40
"""Statuses per page of the lookup (Mastodon's most)."""
STATUS_FIELDS = ("status", "visibility", "language")
"""The rendered payload's fields that POST /api/v1/statuses takes as they are."""


@dataclass(frozen=True)
class InstanceLimits:
    """What GET /api/v2/instance says about statuses and media, with Mastodon's defaults where it is silent."""

    max_characters: int = DEFAULT_MAX_CHARACTERS
    max_media_attachments: int = DEFAULT_MAX_MEDIA_ATTACHMENTS
    image_size_limit: int = DEFAULT_IMAGE_SIZE_LIMIT

    @classmethod
    def from_instance(cls, document: Any) -> InstanceLimits:
        configuration = document.get("configuration") if isinstance(document, dict) else None
        if not isinstance(configuration, dict):
            return cls()
        statuses = configuration.get("statuses") or {}
        media = configuration.get("media_attachments") or {}

        def number(section: Any, key: str, default: int) -> int:
            try:
                value = int(section.get(key, default)) if isinstance(section, dict) else default
            except (TypeError, ValueError):
                return default
            return value if value > 0 else default

        return cls(
            max_characters=number(statuses, "max_characters", DEFAULT_MAX_CHARACTERS),
            max_media_attachments=number(statuses, "max_media_attachments", DEFAULT_MAX_MEDIA_ATTACHMENTS),
            image_size_limit=number(media, "image_size_limit", DEFAULT_IMAGE_SIZE_LIMIT),
        )


_instance_limits: dict[str, tuple[float, InstanceLimits]] = {}
"""Per instance base URL: (monotonic expiry, limits). One GET /api/v2/instance per hour per instance."""
_account_ids: dict[tuple[str, str], str] = {}
"""Per (instance base URL, access token): the account's id, so that a lookup reads verify_credentials once."""


class MastodonSettings(ChannelSettings):
    instance_url: AnyUrl

    _https = field_validator("instance_url")(check_target_url)

    @property
    def base(self) -> str:
        return str(self.instance_url).rstrip("/")


class MastodonCredentials(ChannelCredentials):
    access_token: str


def _weight(size: int) -> str:
    """A size as the mairie reads it: « 16 Mo », « 17,2 Mo », « 48 Ko »."""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} Ko"
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0").replace(".", ",") + " Mo"


class MastodonChannel(PostChannel[MastodonSettings, MastodonCredentials]):
    """Posts a status with up to the instance's number of images, each with its alt text.

    Images are uploaded first (POST /api/v2/media), then attached to the status by id. A retried attempt
    uploads its images again: the uploads of an attempt that failed before its status was created stay
    unattached, and Mastodon deletes unattached media by itself (after a day), so they are harmless and
    nobody sees them. The status itself cannot be posted twice: its Idempotency-Key is the delivery id,
    and Mastodon answers a known key with the status it already made (whatever media ids come with it).

    Mastodon keeps an Idempotency-Key for an hour only, so `find_sent` (which the worker asks after an attempt
    of unknown outcome) looks among the account's statuses since the publication was created: GET
    /api/v1/accounts/verify_credentials once per container for the account's id, then
    /api/v1/accounts/:id/statuses, newest first, LOOKUP_SIZE a page, at most LOOKUP_PAGES pages, for the one
    whose text (its HTML `content` read back as text) is the rendered text, white space aside.
    """

    name: ClassVar = "mastodon"
    label: ClassVar = "Mastodon"
    settings_model: ClassVar = MastodonSettings
    credentials_model: ClassVar = MastodonCredentials
    poll_delays: tuple[float, ...] = POLL_DELAYS

    # -- the instance's limits ---------------------------------------------------------------------------

    def limits(self) -> InstanceLimits:
        """The instance's own limits (GET /api/v2/instance), cached an hour; Mastodon's defaults when silent."""
        cached = _instance_limits.get(self.settings.base)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            response = self.http.get(f"{self.settings.base}/api/v2/instance")
            limits = InstanceLimits.from_instance(response.json()) if response.is_success else InstanceLimits()
        except Exception:
            return InstanceLimits()  # unreachable for now: defaults, and ask again next time
        _instance_limits[self.settings.base] = (time.monotonic() + INSTANCE_CACHE_SECONDS, limits)
        return limits

    def max_length(self) -> int:
        """The instance's text limit; 500 when it does not say."""
        return self.limits().max_characters

    def measure(self, text: str) -> int:
        return weighted_length(text, URL_WEIGHT)

    # -- render ------------------------------------------------------------------------------------------

    def render(self, publication: Publication) -> RenderedPost:
        override = publication.overrides.get("mastodon")
        limits = self.limits()
        text = compose(
            publication, limits.max_characters, self.measure, override=override.text if override else None, hashtag=True
        )
        decisions: list[MediaDecision] = []
        for medium in publication.media:
            kept = sum(decision.kept for decision in decisions)
            decisions.append(self._decide(medium, limits, kept))
        return RenderedPost(
            text=text,
            length=self.measure(text),
            limit=limits.max_characters,
            media=decisions,
            payload={
                "status": text,
                "visibility": "public",
                "language": "fr",
                "media": [{"url": decision.url, "alt": decision.alt} for decision in decisions if decision.kept],
                "since": (publication.created_at - timedelta(seconds=CLOCK_MARGIN_SECONDS)).isoformat(),
            },
        )

    def _decide(self, medium: Media, limits: InstanceLimits, kept: int) -> MediaDecision:
        url, alt = str(medium.url), medium.alt
        reason = self._refusal(medium, limits, kept)
        return MediaDecision(url=url, alt=alt, kept=reason is None, reason=reason)

    def _refusal(self, medium: Media, limits: InstanceLimits, kept: int) -> str | None:
        """Why this medium cannot go with the status, in French; None when it can."""
        if medium.kind == "video":
            return VIDEO_REASON
        if kept >= limits.max_media_attachments:
            return (
                f"Cette instance Mastodon accepte au plus {limits.max_media_attachments} image(s) par message : "
                "celle-ci n'est pas publiée."
            )
        try:
            fetched = self.fetch_media(medium)
        except PermanentChannelError as unavailable:
            return unavailable.message
        if fetched.mime not in IMAGE_TYPES:
            return f"{medium.url} n'est pas une image que Mastodon accepte (JPEG, PNG, GIF ou WebP)."
        if fetched.size > limits.image_size_limit:
            return (
                f"L'image {medium.url} pèse {_weight(fetched.size)} ; cette instance Mastodon en accepte "
                f"au plus {_weight(limits.image_size_limit)} : réduisez-la."
            )
        return None

    # -- send ----------------------------------------------------------------------------------------------

    def _authorization(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.access_token}"}

    def send(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost:
        """Uploads the kept images, then posts the status with their ids.

        Orphan uploads are harmless: when an attempt fails after uploading (or its status already exists
        and the Idempotency-Key answers with it), the new uploads are never attached, and Mastodon removes
        unattached media on its own.
        """
        media: list[dict[str, str]] = rendered.payload.get("media") or []
        media_ids = [self._upload(item) for item in media]
        body: dict[str, Any] = {key: rendered.payload[key] for key in STATUS_FIELDS if key in rendered.payload}
        if media_ids:
            body["media_ids"] = media_ids
        # Mastodon honours Idempotency-Key for an hour: a retry after a crash cannot post twice.
        request = self.http.build_request(
            "POST",
            f"{self.settings.base}/api/v1/statuses",
            json=body,
            headers={**self._authorization(), "Idempotency-Key": delivery_id},
        )
        status = call_provider(self.http, self.label, request).json()
        return SentPost(external_id=str(status["id"]), url=status.get("url"))

    def find_sent(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost | None:
        """The account's status since the publication with the rendered text (see the class docstring); a
        lookup Mastodon does not answer is a TransientChannelError."""
        since = datetime.fromisoformat(rendered.payload["since"])
        wanted = comparable(rendered.payload["status"])
        with lookup_failures(self.label):
            path = f"/api/v1/accounts/{self._account_id()}/statuses"
            params: dict[str, Any] = {"limit": LOOKUP_SIZE, "exclude_replies": "true", "exclude_reblogs": "true"}
            for _ in range(LOOKUP_PAGES):
                statuses = self._get(path, params)
                for status in statuses:
                    if datetime.fromisoformat(status["created_at"]) < since:
                        return None  # newest first: the rest is older than the publication
                    if comparable(status_text(status.get("content") or "")) == wanted:
                        return SentPost(external_id=str(status["id"]), url=status.get("url"))
                if len(statuses) < LOOKUP_SIZE:
                    break
                params["max_id"] = statuses[-1]["id"]
        return None

    def _account_id(self) -> str:
        key = (self.settings.base, self.credentials.access_token)
        if key not in _account_ids:
            _account_ids[key] = str(self._get("/api/v1/accounts/verify_credentials")["id"])
        return _account_ids[key]

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        request = self.http.build_request(
            "GET", f"{self.settings.base}{path}", params=params, headers=self._authorization()
        )
        return call_provider(self.http, self.label, request).json()

    def _upload(self, item: dict[str, str]) -> str:
        """POST /api/v2/media with the image and its alt text; the attachment's id once Mastodon has processed it."""
        fetched = self.fetch_media(Media.model_validate({"url": item["url"], "alt": item["alt"], "kind": "image"}))
        extension = IMAGE_TYPES.get(fetched.mime, "bin")
        request = self.http.build_request(
            "POST",
            f"{self.settings.base}/api/v2/media",
            data={"description": item["alt"]},
            files={"file": (f"image.{extension}", fetched.content, fetched.mime)},
            headers=self._authorization(),
        )
        response = call_provider(self.http, self.label, request)
        attachment: dict[str, Any] = response.json()
        media_id = str(attachment["id"])
        if response.status_code == httpx.codes.ACCEPTED or not attachment.get("url"):
            self._wait_processed(media_id, item["url"])
        return media_id

    def _wait_processed(self, media_id: str, url: str) -> None:
        """Polls GET /api/v1/media/:id (206 while processing) until its `url` is set, a few seconds at most."""
        for delay in self.poll_delays:
            time.sleep(delay)
            request = self.http.build_request(
                "GET", f"{self.settings.base}/api/v1/media/{media_id}", headers=self._authorization()
            )
            if call_provider(self.http, self.label, request).json().get("url"):
                return
        raise TransientChannelError(
            "media_processing",
            f"Mastodon traite encore l'image {url} : nouvel essai automatique.",
            f"media {media_id} still processing",
        )

    # -- delete and check ------------------------------------------------------------------------------------

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


class _StatusText(HTMLParser):
    """A status's HTML `content` read back as the text posted: paragraphs and line breaks become new lines;
    links keep their whole address (Mastodon hides part of it in spans, not from the text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "p" and self.parts:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def status_text(content: str) -> str:
    """The text of a status as Mastodon renders it in `content`."""
    parser = _StatusText()
    parser.feed(content)
    parser.close()
    return "".join(parser.parts)
