"""The channel adapter interface: every channel module has the same shape.

An adapter is built with the commune's settings and decrypted credentials and an HTTP client, then
`render`s a publication into the payload the provider takes and `delete`s what it sent when the provider
allows. A `PostChannel` makes one post per publication (`send`); an `AudienceChannel` reaches many
recipients, each its own message (`audience`, then `send_chunk` per chunk: see `crieur.delivery`).
Provider failures are raised as `TransientChannelError` (retry later) or `PermanentChannelError` (final,
with a French reason for the mairie); `SkipDelivery` when the channel cannot take this publication at all.
"""

from __future__ import annotations

import email.utils
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from crieur.media import FetchedMedia, MediaFetcher, MediaUnavailable
from crieur.models import ChannelName, Media, Publication
from crieur.security import ForbiddenTarget

if TYPE_CHECKING:
    import httpx


class ChannelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ChannelCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class SentPost(BaseModel):
    external_id: str
    url: str | None = None


class ChannelError(Exception):
    """`response` is the provider's answer to the failed call, when it answered (adapters refine from it)."""

    def __init__(
        self,
        code: str,
        message: str,
        provider_message: str | None = None,
        http_status: int | None = None,
        *,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.provider_message = provider_message
        self.http_status = http_status
        self.response = response


class TransientChannelError(ChannelError):
    """Worth retrying: 5xx, 429, timeouts. `retry_after` in seconds when the provider says."""

    def __init__(
        self,
        code: str,
        message: str,
        provider_message: str | None = None,
        retry_after: float | None = None,
        http_status: int | None = None,
        *,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(code, message, provider_message, http_status, response=response)
        self.retry_after = retry_after


class NotBefore(TransientChannelError):
    """Nothing failed, but nothing may be sent before `at` (UTC), maybe days away (SMS quiet hours): the worker
    waits without counting an attempt, hopping 12 hours at most at a time (SQS's longest visibility)."""

    def __init__(self, code: str, message: str, at: datetime, now: datetime) -> None:
        super().__init__(code, message, retry_after=max(0.0, (at - now).total_seconds()))
        self.at = at


class PermanentChannelError(ChannelError):
    """Retrying cannot help: the publication or the channel's settings must change first."""


class SkipDelivery(ChannelError):
    """The channel cannot take this publication (e.g. no image for Instagram): not an error of anyone's."""

    def __init__(self, message: str) -> None:
        super().__init__("skipped", message)


EPOCH_THRESHOLD = 1e9
"""A reset header below this is a number of seconds to wait; above, an epoch time."""


def retry_after_seconds(response: httpx.Response, now: float | None = None) -> float | None:
    """Retry-After as delta-seconds or HTTP date; on a 429 only, else X-RateLimit-Reset (epoch or ISO time).

    Providers send X-RateLimit-Reset on every answer (the end of the current window): it says when to
    retry only when the limit is what failed.
    """
    now = time.time() if now is None else now
    value = response.headers.get("retry-after")
    if value:
        if value.strip().isdigit():
            return float(value)
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            return None
    reset = (
        response.headers.get("x-ratelimit-reset")
        or response.headers.get("x-rate-limit-reset")
        or response.headers.get("ratelimit-reset")  # Bluesky (epoch seconds) and the IETF draft (delta seconds)
    )
    if reset and response.status_code == 429:
        try:
            value = float(reset)
            return value if value < EPOCH_THRESHOLD else max(0.0, value - now)
        except ValueError:
            at = datetime.fromisoformat(reset.replace("Z", "+00:00"))
            return max(0.0, at.astimezone(UTC).timestamp() - now)
    return None


def provider_message(response: httpx.Response) -> str:
    """The provider's own words about a failure, kept short."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        nested = body.get("error")
        if isinstance(nested, dict) and isinstance(nested.get("message"), str):  # Graph API errors
            return str(nested["message"])[:500]
        listed = body.get("errors")
        if isinstance(listed, list) and listed:  # X API v2: the reasons are in errors[].message
            reasons = [str(item.get("message")) for item in listed if isinstance(item, dict) and item.get("message")]
            if reasons:
                return "; ".join(reasons)[:500]
        if isinstance(body.get("error"), str) and isinstance(body.get("message"), str):  # AT Protocol XRPC
            return f"{body['error']}: {body['message']}"[:500]
        for key in ("error_description", "error", "message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])[:500]
    return str(body)[:500]


def raise_for_provider_status(response: httpx.Response, provider: str) -> None:
    """Classifies an HTTP failure the same way for every provider; channels refine codes they know.

    The raised error keeps the failed answer as `response`, for the channels that read its body or headers.
    """
    if response.is_success:
        return
    detail = provider_message(response)
    status = response.status_code
    if status == 429:
        raise TransientChannelError(
            "rate_limited",
            f"{provider} limite le nombre d'envois : nouvel essai automatique plus tard.",
            detail,
            retry_after_seconds(response),
            status,
            response=response,
        )
    if status >= 500 or status == 408:
        raise TransientChannelError(
            "provider_unavailable",
            f"{provider} est momentanément indisponible (erreur {status}) : nouvel essai automatique.",
            detail,
            retry_after_seconds(response),
            status,
            response=response,
        )
    if status in (401, 403):
        raise PermanentChannelError(
            "needs_reconnect",
            f"{provider} refuse l'accès (erreur {status}) : reconnectez le canal (identifiants expirés ou révoqués).",
            detail,
            status,
            response=response,
        )
    if status == 410:
        raise PermanentChannelError(
            "gone", f"{provider} n'accepte plus ces envois (erreur 410).", detail, status, response=response
        )
    message = f"{provider} a refusé la publication (erreur {status}) : {detail}"
    raise PermanentChannelError("rejected", message, detail, status, response=response)


def call_provider(client: httpx.Client, provider: str, request: httpx.Request) -> httpx.Response:
    """Sends one request and turns transport failures into channel errors."""
    import httpx  # loaded already: the client is one

    try:
        response = client.send(request)
    except ForbiddenTarget as forbidden:
        raise PermanentChannelError(
            "forbidden_target",
            f"Adresse refusée : {forbidden}. Indiquez une adresse publique.",
            str(forbidden),
        ) from forbidden
    except httpx.TimeoutException as timeout:
        raise TransientChannelError(
            "timeout", f"{provider} n'a pas répondu à temps : nouvel essai automatique.", str(timeout)
        ) from timeout
    except httpx.TransportError as transport:
        raise TransientChannelError(
            "unreachable", f"{provider} est injoignable : nouvel essai automatique.", str(transport)
        ) from transport
    raise_for_provider_status(response, provider)
    return response


def provider_base_url(provider: str, default: str) -> str:
    """A provider's host, overridable per deployment with CRIEUR_<PROVIDER>_BASE_URL (the sandbox uses it)."""
    return os.environ.get(f"CRIEUR_{provider.upper()}_BASE_URL", default).rstrip("/")


class RetractUnsupported(ChannelError):
    """The provider offers no way to delete a post (Instagram)."""

    def __init__(self, message: str) -> None:
        super().__init__("retract_unsupported", message)


class MediaDecision(BaseModel):
    """One medium of the publication as a channel takes it: kept, or dropped with a French reason."""

    url: str
    alt: str
    kept: bool
    reason: str | None = None


class RenderedPost(BaseModel):
    """What a channel will send for a publication. Previews show it; `send` posts exactly this."""

    text: str | None = Field(description="Le texte tel que les habitants le liront sur ce canal.")
    length: int | None = Field(default=None, description="Longueur comptée comme le canal la compte.")
    limit: int | None = None
    media: list[MediaDecision] = []
    warnings: list[str] = []
    encoding: Literal["GSM-7", "UCS-2"] | None = None
    """SMS only: the encoding the text is sent in."""
    parts: int | None = None
    """SMS only: the parts billed per recipient."""
    parts_without_shaping: int | None = None
    """SMS only: the parts the text would take without the GSM-7 shaping, when the shaping changed it."""
    payload: dict[str, Any] = Field(default={}, exclude=True)
    """Provider-specific request data, for `send` only (never shown)."""


class ChannelCheck(BaseModel):
    """What POST /v1/channels/{channel}/test reports."""

    ok: bool
    account: str | None = Field(default=None, description="Le compte ou la page que les identifiants ouvrent.")
    message: str
    permissions: list[str] = []


SettingsT = TypeVar("SettingsT", bound=ChannelSettings)
CredentialsT = TypeVar("CredentialsT", bound=ChannelCredentials)


class Channel(ABC, Generic[SettingsT, CredentialsT]):
    """One provider. Subclasses declare their name, settings and credentials models.

    `render` needs no credentials (previews run without them); sending, `delete` and `check` do.
    Every channel is a `PostChannel` or an `AudienceChannel`: the two ways of sending.
    """

    name: ClassVar[ChannelName]
    label: ClassVar[str]
    settings_model: ClassVar[type[ChannelSettings]]
    credentials_model: ClassVar[type[ChannelCredentials]]

    def __init__(
        self,
        settings: SettingsT,
        credentials: CredentialsT | None,
        http: httpx.Client | Callable[[], httpx.Client],
        media: MediaFetcher | None = None,
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self._http = http
        if media is not None:
            self.media = media

    @cached_property
    def http(self) -> httpx.Client:
        """The client, or the one its factory makes on first use: a channel that sends nothing over HTTP (the
        website writes to S3) does not load httpx at cold start (ARCHITECTURE.md §8)."""
        return self._http() if callable(self._http) else self._http

    @cached_property
    def media(self) -> MediaFetcher:
        return MediaFetcher(self.http)

    @property
    def credentials(self) -> CredentialsT:
        if self._credentials is None:
            raise PermanentChannelError(
                "missing_credentials", f"Identifiants {self.label} absents : configurez le canal."
            )
        return self._credentials

    def fetch_media(self, medium: Media) -> FetchedMedia:
        """The medium's bytes (fetched once per invocation): a host that is down is worth a retry
        (TransientChannelError); a medium that cannot be used is a PermanentChannelError with the reason."""
        try:
            return self.media.fetch(medium)
        except MediaUnavailable as unavailable:
            if unavailable.transient:
                raise TransientChannelError(
                    "media_unavailable", f"{unavailable.reason} Nouvel essai automatique.", unavailable.reason
                ) from unavailable
            raise PermanentChannelError("media_unavailable", unavailable.reason, unavailable.reason) from unavailable

    def max_length(self) -> int | None:
        """The channel's text limit, as `measure` counts; None when it has none worth checking."""
        return None

    def measure(self, text: str) -> int:
        return len(text)

    def override_problem(self, text: str) -> str | None:
        """Why a per-channel `overrides.text` cannot be sent as written, in French; None when it fits."""
        limit = self.max_length()
        if limit is not None and self.measure(text) > limit:
            return f"Trop long pour {self.label} : {self.measure(text)} caractères comptés, au plus {limit}."
        return None

    @abstractmethod
    def render(self, publication: Publication) -> RenderedPost:
        """What this channel would post for the publication (raises SkipDelivery when it cannot take it)."""

    @abstractmethod
    def delete(self, external_id: str) -> None:
        """Removes a sent post (retraction); raises RetractUnsupported where the provider cannot."""

    @abstractmethod
    def check(self) -> ChannelCheck:
        """Tries the stored credentials against the provider, sending nothing to the public.

        A refusal is raised as a ChannelError (needs_reconnect for a token problem), as when sending:
        the service turns it into the report and marks the channel.
        """


class PostChannel(Channel[SettingsT, CredentialsT]):
    """A channel that makes one post per publication (a social network, the website, the app's topic)."""

    @abstractmethod
    def send(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost:
        """Posts what `render` produced; `delivery_id` is stable across retries so a retry cannot duplicate."""

    def find_sent(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost | None:
        """The post an earlier attempt made when its outcome is unknown (it timed out, or its worker died between
        the provider's answer and the status write), looked up on the provider; None when there is none.

        The worker asks before posting again after such an attempt, and before recording `failed` for one.
        Providers that deduplicate on `delivery_id` themselves (an idempotency key) need no lookup: the
        default, None, lets the worker post again."""
        return None


@dataclass(frozen=True)
class RecipientOutcome:
    """What became of one recipient of a chunk.

    `delivered`: accepted by the provider (`units` billable units, e.g. SMS parts); `refused`: final for this
    recipient (counted failed); `removed`: the adapter already forgot that recipient (Web Push 404/410, an
    e-mail hard bounce; counted failed); `retry`: worth another try (`retry_after` seconds when the provider
    says), counted failed only once the chunk's message has no receive left.
    """

    recipient: str
    """Opaque recipient id, never an address (no personal data)."""
    result: Literal["delivered", "refused", "removed", "retry"]
    retry_after: float | None = None
    detail: str | None = None
    """Short reason, never personal data."""
    units: int = 1
    """Billable units this recipient cost when delivered (e.g. SMS parts)."""


class AudienceChannel(Channel[SettingsT, CredentialsT]):
    """A channel that reaches many recipients, one message each (Web Push, SMS, e-mail).

    The worker (crieur.delivery) has no `send` for these: it renders once, asks `audience` for the recipient
    ids, records the plan and queues one chunk message per `chunk_size` recipients; each chunk message calls
    `send_chunk` with the recipients of that chunk not yet done (a retry resends only those) and records one
    `RecipientOutcome` per recipient. `send_chunk` reports per-recipient problems as outcomes; it raises a
    `TransientChannelError` only when the whole chunk must wait (the provider is down for everyone) and a
    `PermanentChannelError` when no recipient can be reached (e.g. needs_reconnect: the chunk's recipients
    count failed). `delete` raises RetractUnsupported where a message cannot be recalled; `check` tries the
    credentials, as for every channel.
    """

    chunk_size: ClassVar[int] = 250
    """Recipients per chunk message: a chunk is sent within one invocation, bounded by the provider's rate."""

    @abstractmethod
    def audience(self, rendered: RenderedPost) -> list[str]:
        """The ids of the recipients of this rendered publication, in a stable order (empty: nobody to reach)."""

    @abstractmethod
    def send_chunk(self, rendered: RenderedPost, recipients: list[str]) -> list[RecipientOutcome]:
        """Sends to these recipients (ids from `audience`), one outcome each, in any order."""
