"""SMS channel: one text message per confirmed subscriber, through AWS End User Messaging SMS.

The text is short and useful: the title, the start of the body and the first link (without `https://`),
condensed to fit `COMPOSED_PARTS` parts, or the commune's own `overrides.sms.text` sent as written (refused
beyond `MAX_SMS_PARTS` parts: 422 on publishing, a warning on a preview). It is shaped to GSM-7 when the
commune allows it (default), since one typographic apostrophe turns a 160-character SMS into 70-character
UCS-2 parts; the preview says how many parts shaping saves.

Alerts (category alert or weather, urgency high or critical) are TRANSACTIONAL and go out at once; every
other SMS is PROMOTIONAL and respects the legal quiet hours (crieur.quiet_hours): a chunk that comes up
while sending is not allowed raises `QuietHours`, which the delivery worker turns into a wait that burns no
receive of the chunk's message. One SendTextMessage per recipient (the API takes one), concurrently but paced
to the account's parts per second (CRIEUR_SMS_PARTS_PER_SECOND, shared by the concurrent invocations).
A number that answered STOP is unsubscribed (`removed`). The sender is the commune's registered alphanumeric
sender id: the phone shows it as the sender, so the text does not repeat the commune's name.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, ClassVar

from pydantic import Field, field_validator

from crieur.channels.base import (
    ChannelCheck,
    ChannelCredentials,
    ChannelSettings,
    NotBefore,
    PermanentChannelError,
    RecipientOutcome,
    RenderedPost,
    RetractUnsupported,
    TransientChannelError,
)
from crieur.channels.pacing import Pace, share_of_rate, shared_pace
from crieur.channels.residents import ResidentsChannel
from crieur.models import Publication, utc_now
from crieur.quiet_hours import describe, is_alert, is_quiet, next_allowed
from crieur.render.sms import (
    GSM7_PER_PART,
    GSM7_SINGLE,
    MAX_SMS_PARTS,
    UCS2_PER_PART,
    UCS2_SINGLE,
    SmsText,
    shape_sms,
)
from crieur.render.text import nfc, truncate, url_spans

if TYPE_CHECKING:
    from crieur.messaging import SmsGateway

COMPOSED_PARTS = 2
"""Parts a text composed from the title and body may take (an override may take up to MAX_SMS_PARTS)."""
RATE_VARIABLE = "CRIEUR_SMS_PARTS_PER_SECOND"
DEFAULT_PARTS_PER_SECOND = 20.0
MAX_WORKERS = 8
"""Concurrent SendTextMessage calls: enough to keep the paced rate with ~100 ms per call."""
DEFAULT_TTL_SECONDS = 24 * 3600
MIN_TTL_SECONDS, MAX_TTL_SECONDS = 5, 259_200
"""End User Messaging's TimeToLive bounds (seconds)."""
CHUNK_WIDE_CODES = frozenset({"access_denied", "sender_not_found", "sender_not_registered", "needs_reconnect"})
"""Refusals that concern the commune's sending, not one number: the whole chunk stops."""
RETRACT = "Un SMS envoyé ne peut pas être rappelé."
_SENDER_ID = re.compile(r"[A-Za-z0-9]{3,11}")


class QuietHours(NotBefore):
    """A non-urgent SMS may not go out now: its chunk waits until `at` (UTC), burning no attempt."""

    def __init__(self, at: datetime, now: datetime) -> None:
        message = (
            f"Heures légales de silence (22 h-8 h, dimanches et jours fériés) : envoi {describe(at)}. "
            "Les alertes partent à toute heure."
        )
        super().__init__("quiet_hours", message, at, now)


class SmsSettings(ChannelSettings):
    sender_id: str = Field(
        description="Nom d'expéditeur affiché sur le téléphone, enregistré dans AWS : 3 à 11 lettres ou chiffres "
        "(au moins une lettre), par exemple MAIRIE35.",
    )
    allow_gsm7_shaping: bool = Field(
        default=True,
        description="Remplacer ’ « » … et les lettres absentes du GSM-7 (ê, ç…) pour payer moins de parties.",
    )
    allow_foreign_numbers: bool = Field(
        default=False, description="Accepter les numéros hors de France (métropole et outre-mer)."
    )
    max_price_per_part: Annotated[Decimal, Field(gt=0, lt=100, decimal_places=5)] | None = Field(
        default=None,
        description="Prix maximal d'une partie, en dollars US (MaxPrice d'AWS) : un SMS plus cher n'est pas envoyé.",
    )

    @field_validator("sender_id")
    @classmethod
    def _sender_id(cls, value: str) -> str:
        if not _SENDER_ID.fullmatch(value) or not any(char.isalpha() for char in value):
            raise ValueError(
                "L'expéditeur doit faire 3 à 11 caractères, lettres sans accent ou chiffres, dont au moins une "
                "lettre (par exemple MAIRIE35)."
            )
        return value


class SmsCredentials(ChannelCredentials):
    """None: the stack's IAM role sends (ARCHITECTURE.md §5)."""


def is_french_number(number: str) -> bool:
    """An E.164 number of metropolitan France or of an overseas département or collectivité."""
    import phonenumbers

    from crieur.subscribers import FRENCH_REGIONS

    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number)) in FRENCH_REGIONS
    except phonenumbers.NumberParseException:
        return False


def short_url(url: str) -> str:
    """A link as a phone shows it and still opens it: without `https://` (nor a lone trailing slash)."""
    if not url.startswith("https://"):
        return url
    bare = url.removeprefix("https://")
    return bare[:-1] if bare.endswith("/") and bare.count("/") == 1 else bare


def _short_urls(text: str) -> str:
    for start, end in reversed(url_spans(text)):
        text = text[:start] + short_url(text[start:end]) + text[end:]
    return text


def _capacity(encoding: str, parts: int) -> int:
    """Septets (GSM-7) or UTF-16 units (UCS-2) that fit in `parts` parts."""
    if encoding == "GSM-7":
        return GSM7_SINGLE if parts == 1 else GSM7_PER_PART * parts
    return UCS2_SINGLE if parts == 1 else UCS2_PER_PART * parts


def compose_sms(publication: Publication, allow_shaping: bool) -> tuple[SmsText, bool]:
    """The SMS as it will be sent, and whether the body had to be cut to fit COMPOSED_PARTS parts."""
    override = publication.overrides.get("sms")
    if override is not None:
        return shape_sms(nfc(override.text.strip()), allow_shaping), False
    title = nfc(publication.title).strip()
    link = short_url(str(publication.links[0].url)) if publication.links else ""
    body = _short_urls(re.sub(r"\n\s*\n+", "\n", nfc(publication.body).strip()))

    def assemble(cut: str) -> str:
        return "\n".join(part for part in (title, cut, link if link not in cut else "") if part)

    def parts(cut: str) -> int:
        # Crieur's own ellipsis is "..." so that a cut never turns a GSM-7 text into UCS-2.
        return shape_sms(assemble(cut[:-1] + "..." if cut.endswith("…") else cut), allow_shaping).parts

    if parts(body) <= COMPOSED_PARTS:
        return shape_sms(assemble(body), allow_shaping), False
    if parts("") > COMPOSED_PARTS:
        link = ""  # a long link would crowd out everything: the title alone, as written
        return shape_sms(assemble(""), allow_shaping), True
    cut = truncate(body, COMPOSED_PARTS, parts)
    if parts(cut) > COMPOSED_PARTS:
        cut = ""  # not even an ellipsis fits beside the title and the link (a body that opens with a long link)
    return shape_sms(assemble(cut[:-1] + "..." if cut.endswith("…") else cut), allow_shaping), True


def parts_problem(sms: SmsText) -> str | None:
    """Why this SMS is refused (more than MAX_SMS_PARTS parts), in French; None when it may be sent."""
    if sms.parts <= MAX_SMS_PARTS:
        return None
    return (
        f"Ce SMS ferait {sms.parts} parties ({sms.encoding}, {sms.length} caractères comptés) : au plus "
        f"{MAX_SMS_PARTS} ({_capacity(sms.encoding, MAX_SMS_PARTS)} caractères en {sms.encoding}). Raccourcissez-le."
    )


def _warnings(sms: SmsText, condensed: bool, allow_shaping: bool) -> list[str]:
    plural = "s" if sms.parts > 1 else ""
    warnings = [f"{sms.parts} SMS facturé{plural} par destinataire ({sms.encoding}, {sms.length} caractères comptés)."]
    saved = sms.parts_without_shaping
    if saved is not None and saved > sms.parts:
        warnings.append(f"{sms.parts} partie{plural} au lieu de {saved} grâce à l'adaptation des caractères.")
    if sms.encoding == "UCS-2":
        shown = " ".join(sms.ucs2_characters[:8])
        advice = ""
        shaped = shape_sms(sms.text).parts
        if not allow_shaping and shaped < sms.parts:
            advice = f" L'adaptation des caractères (allow_gsm7_shaping) le ferait tenir en {shaped}."
        warnings.append(f"Caractères hors GSM-7 ({shown}) : 70 caractères par SMS au lieu de 160.{advice}")
    if condensed:
        warnings.append(
            f"Le texte est raccourci pour tenir en {COMPOSED_PARTS} SMS ; pour en envoyer un autre, écrivez-le dans "
            "overrides.sms.text."
        )
    return warnings


class SmsChannel(ResidentsChannel[SmsSettings, SmsCredentials]):
    """One SMS per confirmed subscriber of the publication's category; see the module docstring."""

    name: ClassVar = "sms"
    label: ClassVar = "SMS"
    settings_model: ClassVar = SmsSettings
    credentials_model: ClassVar = SmsCredentials
    medium: ClassVar = "sms"
    chunk_size: ClassVar[int] = 40
    """40 recipients of up to 6 parts at half the account's 20 parts a second (two invocations share it): 24 s at
    worst, within the deliver function's 30 s (tests/integration/test_template.py checks it)."""

    gateway: SmsGateway | None = None
    """End User Messaging; the stack's client unless set."""
    clock = staticmethod(utc_now)

    def _gateway(self) -> SmsGateway:
        if self.gateway is None:
            from crieur.messaging import SmsGateway

            self.gateway = SmsGateway()
        return self.gateway

    # --- rendering ------------------------------------------------------------------------------------------

    def max_length(self) -> int:
        return _capacity("GSM-7", MAX_SMS_PARTS)

    def override_problem(self, text: str) -> str | None:
        return parts_problem(shape_sms(nfc(text.strip()), self.settings.allow_gsm7_shaping))

    def render(self, publication: Publication) -> RenderedPost:
        allow = self.settings.allow_gsm7_shaping
        sms, condensed = compose_sms(publication, allow)
        alert = is_alert(publication)
        now = self.clock()
        ttl = DEFAULT_TTL_SECONDS
        if publication.expires_at is not None:
            left = int((publication.expires_at - now).total_seconds())
            ttl = max(MIN_TTL_SECONDS, min(left, MAX_TTL_SECONDS))
        warnings = _warnings(sms, condensed, allow)
        if not alert and is_quiet(now):
            warnings.append(
                f"Heures légales de silence : ces SMS partiront {describe(next_allowed(now))} "
                "(une alerte partirait à toute heure)."
            )
        return RenderedPost(
            text=sms.text,
            length=sms.length,
            limit=_capacity(sms.encoding, MAX_SMS_PARTS),
            warnings=warnings,
            encoding=sms.encoding,
            parts=sms.parts,
            parts_without_shaping=sms.parts_without_shaping,
            payload={
                "commune": publication.commune,
                "publication_id": publication.id,
                "category": publication.category,
                "transactional": alert,
                "parts": sms.parts,
                "ttl": ttl,
                "expires_at": publication.expires_at.isoformat() if publication.expires_at else None,
            },
        )

    # --- sending --------------------------------------------------------------------------------------------

    def not_before(self, rendered: RenderedPost) -> datetime | None:
        """When a non-urgent SMS may go out, if not now (UTC); None for alerts and allowed moments."""
        now = self.clock()
        if rendered.payload["transactional"] or not is_quiet(now):
            return None
        return next_allowed(now)

    def send_chunk(self, rendered: RenderedPost, recipients: list[str]) -> list[RecipientOutcome]:
        problem = parts_problem(shape_sms(rendered.text or "", self.settings.allow_gsm7_shaping))
        if problem:
            raise PermanentChannelError("too_many_parts", problem)
        payload = rendered.payload
        expires_at = payload.get("expires_at")
        if expires_at and datetime.fromisoformat(str(expires_at)) <= self.clock():
            raise PermanentChannelError(
                "expired", "La publication a expiré avant que ces SMS puissent partir : ils ne sont pas envoyés."
            )
        wait = self.not_before(rendered)
        if wait is not None:
            raise QuietHours(wait, self.clock())
        commune = str(payload["commune"])
        subscribers = self._subscribers()
        contacts = subscribers.contacts(commune, "sms", recipients)
        outcomes = [
            RecipientOutcome(item, "removed", detail="unsubscribed") for item in recipients if item not in contacts
        ]
        allowed = []
        for recipient in recipients:
            contact = contacts.get(recipient)
            if contact is None:
                continue
            if self.settings.allow_foreign_numbers or is_french_number(contact.address):
                allowed.append((recipient, contact.address))
            else:
                outcomes.append(RecipientOutcome(recipient, "refused", detail="foreign_number"))
        pace = shared_pace(share_of_rate(RATE_VARIABLE, DEFAULT_PARTS_PER_SECOND))
        stop: list[PermanentChannelError] = []

        def send(item: tuple[str, str]) -> RecipientOutcome:
            return self._send_one(rendered, item[0], item[1], pace, stop)

        if allowed:
            with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(allowed))) as pool:
                sent = list(pool.map(send, allowed))
            if stop and not any(outcome.result == "delivered" for outcome in sent):
                raise stop[0]
            outcomes.extend(sent)
        for outcome in outcomes:  # the store is written from this thread only
            if outcome.result == "removed" and outcome.detail == "opted_out":
                subscribers.remove(commune, "sms", outcome.recipient, "opted_out")
        return outcomes

    def _send_one(
        self, rendered: RenderedPost, recipient: str, number: str, pace: Pace, stop: list[PermanentChannelError]
    ) -> RecipientOutcome:
        if stop:  # the commune's sending is refused: no point calling again for the others
            return RecipientOutcome(recipient, "retry", detail=stop[0].code)
        payload = rendered.payload
        parts = int(payload["parts"])
        price = self.settings.max_price_per_part
        pace.take(parts)
        try:
            self._gateway().send_text(
                number,
                rendered.text or "",
                sender_id=self.settings.sender_id,
                transactional=bool(payload["transactional"]),
                max_price=str(price) if price is not None else None,
                ttl_seconds=int(payload["ttl"]),
                context={"commune": str(payload["commune"]), "publication": str(payload["publication_id"])},
            )
        except TransientChannelError as transient:
            return RecipientOutcome(recipient, "retry", transient.retry_after, transient.code)
        except PermanentChannelError as permanent:
            if permanent.code == "opted_out":
                return RecipientOutcome(recipient, "removed", detail="opted_out")
            if permanent.code in CHUNK_WIDE_CODES:
                stop.append(permanent)
                return RecipientOutcome(recipient, "retry", detail=permanent.code)
            return RecipientOutcome(recipient, "refused", detail=permanent.code)
        return RecipientOutcome(recipient, "delivered", units=parts)

    def delete(self, external_id: str) -> None:
        raise RetractUnsupported(RETRACT)

    def check(self) -> ChannelCheck:
        """Asks End User Messaging whether the commune's sender id exists in the account for France."""
        sender = self.settings.sender_id
        if not self._gateway().sender_id_exists(sender):
            return ChannelCheck(
                ok=False,
                account=f"Expéditeur {sender}",
                message=f"L'expéditeur {sender} n'est pas enregistré pour la France dans AWS End User Messaging : "
                "demandez à l'administrateur de Crieur de l'enregistrer avant d'envoyer des SMS.",
            )
        return ChannelCheck(
            ok=True,
            account=f"Expéditeur {sender}",
            message="Expéditeur enregistré pour la France : les SMS partiront avec le rôle AWS de Crieur.",
        )
