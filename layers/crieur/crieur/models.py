"""Pydantic models of the public contract (ARCHITECTURE.md §4).

Request models refuse unknown fields. Error messages are in French: a mairie secretary reads them.
Times are stored in UTC; a naive time is Paris wall time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from crieur.security import local_http_allowed

PARIS = ZoneInfo("Europe/Paris")

ChannelName = Literal[
    "facebook",
    "instagram",
    "x",
    "mastodon",
    "bluesky",
    "website",
    "wordpress",
    "push",
    "webpush",
    "sms",
    "email",
    "webhook",
]
"""Every channel of the contract (ARCHITECTURE.md §5). Which ones work is crieur.channels.ADAPTERS."""

Category = Literal["news", "event", "works", "alert", "weather", "council", "other"]
Urgency = Literal["normal", "high", "critical"]
MediaKind = Literal["image", "video"]
PublicationStatus = Literal[
    "scheduled", "publishing", "published", "partially_published", "failed", "cancelled", "retracted"
]
DeliveryStatus = Literal[
    "pending",
    "sending",
    "sent",
    "retrying",
    "failed",
    "skipped",
    "cancelled",
    "retracted",
    "retract_unsupported",
]
FINAL_DELIVERY_STATUSES: frozenset[str] = frozenset(
    {"sent", "failed", "skipped", "cancelled", "retracted", "retract_unsupported"}
)


def _require_https(url: AnyUrl) -> AnyUrl:
    """https only; plain http only for loopback where private targets are allowed (the local sandbox)."""
    if url.scheme != "https" and not local_http_allowed(url.scheme, url.host):
        raise ValueError("L'adresse doit commencer par https:// (les liens non chiffrés sont refusés).")
    if not url.host:
        raise ValueError("L'adresse ne contient pas de nom de domaine.")
    return url


HttpsUrl = Annotated[AnyUrl, AfterValidator(_require_https)]
NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def as_utc(value: datetime, *, strict: bool = False) -> datetime:
    """A naive datetime is Paris wall time; every stored time is UTC.

    `strict` refuses a Paris wall time that does not exist (02:30 when the clocks go forward) or that
    happens twice (02:30 when they go back) instead of silently choosing one.
    """
    if value.tzinfo is None:
        if strict:
            earlier, later = value.replace(tzinfo=PARIS, fold=0), value.replace(tzinfo=PARIS, fold=1)
            if earlier.utcoffset() != later.utcoffset():
                round_trip = earlier.astimezone(UTC).astimezone(PARIS).replace(tzinfo=None)
                if round_trip != value:
                    raise ValueError(
                        f"{value:%d/%m/%Y à %H:%M} n'existe pas à Paris (passage à l'heure d'été) : "
                        "choisissez une autre heure ou précisez le décalage (+01:00 ou +02:00)."
                    )
                raise ValueError(
                    f"{value:%d/%m/%Y à %H:%M} a lieu deux fois à Paris (passage à l'heure d'hiver) : "
                    "précisez le décalage, +02:00 pour la première ou +01:00 pour la seconde."
                )
        value = value.replace(tzinfo=PARIS)
    return value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Link(StrictModel):
    url: HttpsUrl
    label: Annotated[str, StringConstraints(max_length=200)] | None = None


class Media(StrictModel):
    url: HttpsUrl
    alt: Annotated[str, StringConstraints(min_length=1, max_length=1500)] = Field(
        description="Texte alternatif, obligatoire (accessibilité)."
    )
    kind: MediaKind = "image"


class Event(StrictModel):
    starts_at: datetime
    ends_at: datetime | None = None
    location: Annotated[str, StringConstraints(max_length=300)] | None = None

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value) if value else value

    @model_validator(mode="after")
    def _ends_after_start(self) -> Event:
        if self.ends_at is not None and self.ends_at < self.starts_at:
            raise ValueError("La fin de l'événement (ends_at) précède son début (starts_at).")
        return self


class ChannelOverride(StrictModel):
    text: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]


class PublicationContent(StrictModel):
    """The fields a commune writes, shared by the request and the stored publication."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=140)]
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]
    category: Category = "news"
    urgency: Urgency = "normal"
    links: Annotated[list[Link], Field(max_length=10)] = []
    media: Annotated[list[Media], Field(max_length=10)] = []
    event: Event | None = Field(default=None, validate_default=True)
    channels: Annotated[list[ChannelName], Field(min_length=1)] | None = None
    overrides: dict[ChannelName, ChannelOverride] = {}
    publish_at: datetime | None = None
    expires_at: datetime | None = Field(default=None, validate_default=True)

    @field_validator("publish_at", "expires_at")
    @classmethod
    def _utc(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return as_utc(value, strict=info.field_name == "publish_at") if value else value


MAX_SCHEDULE_AHEAD = timedelta(days=366)


class PublicationRequest(PublicationContent):
    """What a commune sends to publish: the content plus the checks that only hold at request time."""

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, channels: list[ChannelName] | None) -> list[ChannelName] | None:
        if channels is not None and len(set(channels)) != len(channels):
            raise ValueError("Un canal est cité deux fois.")
        return channels

    @field_validator("publish_at")
    @classmethod
    def _in_the_future(cls, publish_at: datetime | None) -> datetime | None:
        if publish_at is None:
            return None
        now = utc_now()
        if publish_at <= now:
            raise ValueError("L'heure de publication (publish_at) est déjà passée : publiez sans publish_at.")
        if publish_at > now + MAX_SCHEDULE_AHEAD:
            raise ValueError("Une publication se programme au plus un an à l'avance.")
        return publish_at

    # Cross-field checks are field validators so that the error names the field to correct.
    @field_validator("event")
    @classmethod
    def _event_for_events(cls, event: Event | None, info: ValidationInfo) -> Event | None:
        if info.data.get("category") == "event" and event is None:
            raise ValueError("Une publication de catégorie « event » doit préciser l'événement (event).")
        return event

    @field_validator("expires_at")
    @classmethod
    def _not_expired(cls, expires_at: datetime | None) -> datetime | None:
        if expires_at is not None and as_utc(expires_at) <= utc_now():
            raise ValueError("La date d'expiration (expires_at) est déjà passée.")
        return expires_at

    @field_validator("overrides")
    @classmethod
    def _overrides_for_targets(
        cls, overrides: dict[ChannelName, ChannelOverride], info: ValidationInfo
    ) -> dict[ChannelName, ChannelOverride]:
        targets = info.data.get("channels")
        stray = sorted(set(overrides) - set(targets)) if targets else []
        if stray:
            raise ValueError(f"Personnalisation pour un canal non visé : {', '.join(stray)}.")
        return overrides


class DeliveryError(BaseModel):
    code: str
    message: str = Field(description="Explication en français pour la mairie.")
    provider_message: str | None = Field(default=None, description="Le message d'origine du fournisseur.")


class RecipientCounts(BaseModel):
    """Where a delivery to many recipients (Web Push, SMS, e-mail) stands, recipient by recipient."""

    total: int = Field(description="Destinataires visés.")
    sent: int = Field(description="Destinataires qui ont reçu le message.")
    failed: int = Field(description="Destinataires qui ne l'ont pas reçu (refus, abonnement expiré, échecs répétés).")


class Delivery(BaseModel):
    status: DeliveryStatus
    attempts: int = 0
    external_id: str | None = None
    url: str | None = None
    error: DeliveryError | None = None
    updated_at: datetime
    recipients: RecipientCounts | None = Field(
        default=None, description="Canaux à destinataires multiples : le décompte, une fois l'envoi planifié."
    )


class Publication(PublicationContent):
    """A stored publication, as the API answers it."""

    id: str
    commune: str
    status: PublicationStatus
    created_at: datetime
    deliveries: dict[str, Delivery] = {}
    cost_estimate_eur: float | None = Field(default=None, description="Coût estimé TTC avant l'envoi, en euros.")
    billed_ht_eur: float = Field(default=0.0, description="Ce qui a réellement été facturé, hors taxes.")
    over_budget: bool = Field(default=False, description="Envoyée malgré le budget (alerte météo ou critique).")


class PublicationPage(BaseModel):
    items: list[Publication]
    next_cursor: str | None = None


INSEE_PATTERN = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")


def departement_of(insee: str) -> str:
    """Département code from an INSEE commune code (97x/98x overseas use three characters)."""
    if not INSEE_PATTERN.match(insee):
        raise ValueError(f"Code INSEE invalide : {insee!r} (5 caractères, par exemple 35238 ou 2A004).")
    return insee[:3] if insee.startswith(("97", "98")) else insee[:2]


class Commune(StrictModel):
    insee: Annotated[str, StringConstraints(pattern=INSEE_PATTERN.pattern)]
    name: NonBlank
    departement: str
    created_at: datetime = Field(default_factory=utc_now)


class ChannelConfigRequest(StrictModel):
    """Body of PUT /v1/channels/{channel}. Omitted credentials keep the ones already stored."""

    enabled: bool = True
    settings: dict[str, Any] = {}
    credentials: dict[str, str] | None = None


class ChannelConfigView(BaseModel):
    channel: ChannelName
    enabled: bool
    settings: dict[str, Any]
    credentials_set: bool
    needs_reconnect: bool = False
    reconnect_reason: str | None = Field(default=None, description="Pourquoi reconnecter le canal, en français.")
    updated_at: datetime


class ChannelList(BaseModel):
    items: list[ChannelConfigView]
    available: list[ChannelName] = Field(description="Les canaux que Crieur sait servir.")


class FanoutMessage(BaseModel):
    """The one SNS message a publication action sends; its `channels` attribute routes it to queues."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["publish", "retract"] = "publish"
    commune: str
    publication_id: str
    chunk: int | None = Field(default=None, ge=0)
    """A channel reaching many recipients: which chunk of the delivery's plan this message sends (crieur.delivery
    queues one per chunk on the channel's own queue); None for the publication action itself."""
    publication: Publication | None = None
    """The publication as it went out, when the message can carry it (crieur.fanout): its deliveries do not read
    it again (ARCHITECTURE.md §8). Its content no longer changes once it goes out. None on retractions and chunk
    messages, and when it does not fit in a message."""

    @field_validator("publication", mode="wrap")
    @classmethod
    def _readable_or_none(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Publication | None:
        """A copy this version cannot read (written by a newer one, during a deployment) is dropped: the delivery
        reads the publication instead of failing its message."""
        try:
            publication: Publication | None = handler(value)
        except ValidationError:
            return None
        return publication


class MediaPreview(BaseModel):
    url: str
    alt: str
    kept: bool
    reason: str | None = None


class ChannelPreview(BaseModel):
    """What one channel would receive, computed by the same code that sends."""

    text: str | None = None
    length: int | None = None
    limit: int | None = None
    media: list[MediaPreview] = []
    warnings: list[str] = []
    skipped: str | None = Field(default=None, description="Pourquoi ce canal ne prendrait pas la publication.")
    encoding: Literal["GSM-7", "UCS-2"] | None = Field(default=None, description="SMS : l'encodage du texte envoyé.")
    parts: int | None = Field(default=None, description="SMS : parties facturées par destinataire.")
    parts_without_shaping: int | None = Field(
        default=None, description="SMS : parties sans l'adaptation des caractères, quand elle a changé le texte."
    )
    recipients: int | None = Field(
        default=None, description="Notifications web, SMS, e-mail : les abonnés qui le recevraient maintenant."
    )


class Preview(BaseModel):
    channels: dict[str, ChannelPreview]
    cost_estimate_eur: float = Field(description="Coût estimé TTC de cette publication, en euros.")


class UsageLine(BaseModel):
    unit: str
    channel: str | None
    quantity: int
    unit_price_eur: float
    amount_ht_eur: float


class UsageReport(BaseModel):
    commune: str
    month: str
    currency: Literal["EUR"] = "EUR"
    lines: list[UsageLine]
    total_ht_eur: float
    vat_rate: float
    vat_eur: float
    total_ttc_eur: float
    budget_eur: float | None = None


class PublicationEdit(StrictModel):
    """Body of PATCH /v1/publications/{id}: the fields to change while the publication is scheduled."""

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=140)] | None = None
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)] | None = None
    category: Category | None = None
    urgency: Urgency | None = None
    links: Annotated[list[Link], Field(max_length=10)] | None = None
    media: Annotated[list[Media], Field(max_length=10)] | None = None
    event: Event | None = None
    overrides: dict[ChannelName, ChannelOverride] | None = None
    publish_at: datetime | None = None
    expires_at: datetime | None = None


class ReleaseRequest(BaseModel):
    """What the EventBridge Scheduler schedule of a publication hands to `release`."""

    model_config = ConfigDict(extra="forbid")

    commune: str
    publication_id: str
    version: int
    channels: list[str] | None = None
    """The channels its release sends to (every delivery of the publication): no read before the SNS message."""


AlertColor = Literal["orange", "red"]


class WeatherAlertSettings(StrictModel):
    """Body of PUT /v1/alerts/weather: which official vigilances the commune relays, and where."""

    enabled: bool = False
    min_color: AlertColor = "orange"
    phenomena: list[str] | None = Field(
        default=None, description="Phénomènes relayés (ex. canicule, orages) ; tous si absent."
    )
    channels: dict[AlertColor, Annotated[list[ChannelName], Field(min_length=1)]] = Field(
        default={}, description="Canaux par couleur ; tous les canaux activés si absent."
    )

    @field_validator("phenomena")
    @classmethod
    def _known_phenomena(cls, phenomena: list[str] | None) -> list[str] | None:
        if phenomena is None:
            return None
        from crieur.weather.model import Phenomenon

        return sorted({Phenomenon.parse(name).value for name in phenomena})
