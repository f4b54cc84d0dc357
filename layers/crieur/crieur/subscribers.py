"""Citizens who receive the commune's publications by SMS or e-mail: consent, double opt-in, unsubscribe, erasure.

A subscription is one address (an E.164 phone number or an e-mail address) for one medium in one commune.
Personal data never leaves this module in clear but to be sent a message:

- the address (and the secret of its unsubscribe link) is encrypted with AES-256-GCM under the commune's
  data key, itself wrapped by the stack's KMS key with the encryption context {commune, "subscribers"}
  (one KMS call per container and commune, not one per subscriber: a fan-out to 20,000 people decrypts
  locally); the additional data binds each ciphertext to its commune, medium and subscriber;
- lookups and dedupe go through a keyed hash of the normalised address (HMAC-SHA-256 computed by a KMS HMAC
  key, so the key is neither in the table nor in the function's memory): the subscriber id derives from it,
  and the same hash, independent of the commune, finds every commune of an address when SES reports a
  bounce or a complaint, or when a number answers STOP;
- logs, errors and metrics name the commune, the medium and counts, never an address.

Double opt-in: a pending subscription gets a 6-digit code by SMS or a link by e-mail and is sent nothing
else; it expires by itself (DynamoDB TTL) after `CONFIRMATION_SECONDS`. A new request for an address that is
already confirmed becomes a pending change (categories, consent version) that applies only once confirmed,
so nobody can change someone else's choices. Public answers are the same whether or not an address is
subscribed. Unsubscribing deletes everything about the address in the commune (erasure).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

from crieur import aws
from crieur.channels.base import ChannelError
from crieur.errors import InvalidInput, NotFound
from crieur.models import Category, utc_now

if TYPE_CHECKING:
    from crieur.messaging import EmailGateway, SmsGateway
    from crieur.store import Store

logger = Logger(child=True)

Medium = Literal["sms", "email"]
MEDIUMS: tuple[Medium, ...] = ("sms", "email")
ALL_CATEGORIES: tuple[str, ...] = ("news", "event", "works", "alert", "weather", "council", "other")
CONFIRMATION_SECONDS = 48 * 3600
"""How long a code or a link stays valid; an unconfirmed subscription is purged after it."""
MAX_CODE_ATTEMPTS = 5
MAX_CONFIRMATION_SENDS = 3
"""Confirmation messages per address and day: asking again cannot be used to flood someone (or the bill)."""
SEND_WINDOW_SECONDS = 24 * 3600
FRENCH_REGIONS = frozenset({"FR", "GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF", "WF", "PF", "NC"})
"""Metropolitan France and the overseas départements and collectivités."""
GENERIC_ANSWER = (
    "Demande enregistrée. Si l'adresse peut être inscrite, un message de confirmation vient d'être envoyé : "
    "l'inscription ne vaut qu'une fois confirmée."
)
BAD_CODE = "Code incorrect ou expiré : demandez un nouveau code en vous inscrivant à nouveau."


# ------------------------------------------------------------------------------------------------- addresses


def normalise_phone(value: str, *, allow_foreign: bool, field: str = "phone") -> str:
    """An E.164 mobile number (a national French number is read as French); InvalidInput naming `field`."""
    import phonenumbers

    try:
        number = phonenumbers.parse(value, "FR")
    except phonenumbers.NumberParseException:
        raise InvalidInput([(field, "Numéro de téléphone illisible : écrivez par exemple 06 12 34 56 78.")]) from None
    if not phonenumbers.is_valid_number(number) and not value.lstrip().startswith(("+", "00")):
        # A national number of an overseas département (0692 … in La Réunion) is not a metropolitan one.
        for region in sorted(FRENCH_REGIONS - {"FR"}):
            overseas = phonenumbers.parse(value, region)
            if phonenumbers.is_valid_number(overseas):
                number = overseas
                break
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput([(field, "Ce numéro de téléphone n'existe pas : vérifiez-le.")])
    kind = phonenumbers.number_type(number)
    if kind not in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise InvalidInput([(field, "Indiquez un numéro de mobile : les SMS n'arrivent pas sur un fixe.")])
    if not allow_foreign and phonenumbers.region_code_for_number(number) not in FRENCH_REGIONS:
        raise InvalidInput([(field, "La commune n'envoie de SMS qu'aux numéros français (métropole et outre-mer).")])
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@functools.cache
def disposable_domains() -> frozenset[str]:
    text = resources.files("crieur").joinpath("disposable_domains.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def normalise_email(value: str, *, field: str = "email") -> str:
    """A deliverable-looking address in lower case; disposable domains refused."""
    from email_validator import EmailNotValidError, validate_email

    try:
        address = validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise InvalidInput([(field, "Adresse e-mail invalide : vérifiez-la.")]) from None
    domain = address.rpartition("@")[2]
    labels = domain.split(".")
    if any(".".join(labels[index:]) in disposable_domains() for index in range(len(labels) - 1)):
        raise InvalidInput(
            [(field, "Les adresses e-mail jetables ne sont pas acceptées : indiquez une adresse durable.")]
        )
    return address


# ------------------------------------------------------------------------------------------------- models


ConsentVersion = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]


class SubscriptionRequest(BaseModel):
    """Body of POST /public/{commune}/subscriptions."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    phone: Annotated[str, StringConstraints(strip_whitespace=True, min_length=4, max_length=32)] | None = Field(
        default=None, description="Numéro de mobile (06 12 34 56 78 ou +33 6 12 34 56 78)."
    )
    email: EmailStr | None = Field(default=None, max_length=254, description="Adresse e-mail.")
    categories: list[Category] = Field(
        default=[], max_length=len(ALL_CATEGORIES), description="Les sujets choisis (aucun : tous)."
    )
    consent_version: ConsentVersion = Field(description="La version du texte de consentement que la personne a lu.")

    @model_validator(mode="after")
    def _an_address(self) -> SubscriptionRequest:
        if self.phone is None and self.email is None:
            raise ValueError("Indiquez un numéro de mobile, une adresse e-mail, ou les deux.")
        return self


class CodeConfirmation(BaseModel):
    """Body of POST /public/{commune}/subscriptions/confirm."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    phone: Annotated[str, StringConstraints(strip_whitespace=True, min_length=4, max_length=32)]
    code: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$")] = Field(
        description="Le code à 6 chiffres reçu par SMS."
    )


class UnsubscribeRequest(BaseModel):
    """Body of DELETE /public/{commune}/subscriptions."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    phone: Annotated[str, StringConstraints(strip_whitespace=True, min_length=4, max_length=32)] | None = None
    email: EmailStr | None = Field(default=None, max_length=254)

    @model_validator(mode="after")
    def _an_address(self) -> UnsubscribeRequest:
        if self.phone is None and self.email is None:
            raise ValueError("Indiquez le numéro ou l'adresse e-mail à désinscrire.")
        return self


class SubscriptionAccepted(BaseModel):
    """The same answer whatever the address's state: nothing tells whether it was already subscribed."""

    message: str = GENERIC_ANSWER
    confirmation: dict[Medium, Literal["code", "link"]] = Field(
        description="Comment confirmer : un code reçu par SMS, un lien reçu par e-mail."
    )


class Confirmed(BaseModel):
    status: Literal["confirmed"] = "confirmed"
    message: str = "Inscription confirmée : vous recevrez les messages de la commune."


class MediumCounts(BaseModel):
    confirmed: int = 0
    pending: int = 0
    categories: dict[str, int] = Field(default={}, description="Inscrits confirmés par sujet.")


class SubscriberCounts(BaseModel):
    """GET /v1/subscribers: what a commune may see of its subscribers, counts only."""

    sms: MediumCounts
    email: MediumCounts


class Contact(BaseModel):
    """A confirmed subscriber's address, decrypted to be sent one message."""

    id: str
    address: str = Field(repr=False)
    unsubscribe_url: str = Field(repr=False)


@dataclass(frozen=True)
class SubscriberRecord:
    """One stored subscription (crieur.store keeps it under the commune's key)."""

    id: str
    medium: Medium
    status: Literal["pending", "confirmed"]
    lookup: str
    sealed: bytes
    unsubscribe_hash: str
    categories: tuple[str, ...]
    consent_version: str
    consent_at: str
    created_at: str
    confirmed_at: str | None = None
    pending_categories: tuple[str, ...] | None = None
    pending_consent_version: str | None = None
    pending_consent_at: str | None = None
    secret_hash: str | None = None
    attempts: int = 0
    pending_until: int | None = None
    sends: int = 0
    sends_since: int | None = None
    version: int = 1

    def pending_valid(self, now: int) -> bool:
        return self.secret_hash is not None and self.pending_until is not None and now < self.pending_until

    @property
    def ttl(self) -> int | None:
        """Purge time of a subscription never confirmed; a confirmed one stays."""
        return self.pending_until if self.status == "pending" else None


# ------------------------------------------------------------------------------------------------- keys


class SubscriberKeys(Protocol):
    def lookup(self, medium: Medium, address: str) -> str:
        """The keyed hash of a normalised address (hex), the same in every commune."""
        ...

    def data_key(self, commune: str) -> bytes:
        """The commune's 32-byte key for subscriber data."""
        ...


class KmsSubscriberKeys:
    """Data keys wrapped by the credentials KMS key, lookups by a KMS HMAC key; both cached per container."""

    def __init__(self, store: Store, encryption_key_id: str | None, lookup_key_id: str | None) -> None:
        self.store = store
        self.encryption_key_id = encryption_key_id
        self.lookup_key_id = lookup_key_id
        self._data_keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def lookup(self, medium: Medium, address: str) -> str:
        if not self.lookup_key_id:
            raise RuntimeError("CRIEUR_LOOKUP_KEY_ID is not set: template.yaml gives it to the functions that need it")
        mac = aws.kms().generate_mac(
            KeyId=self.lookup_key_id, Message=f"{medium}\0{address}".encode(), MacAlgorithm="HMAC_SHA_256"
        )["Mac"]
        return mac.hex()

    def data_key(self, commune: str) -> bytes:
        with self._lock:
            if commune in self._data_keys:
                return self._data_keys[commune]
        context = {"commune": commune, "channel": "subscribers"}
        wrapped = self.store.subscriber_data_key(commune)
        if wrapped is None:
            if not self.encryption_key_id:
                raise RuntimeError("CRIEUR_KMS_KEY_ID is not set: this function may not create a data key")
            generated = aws.kms().generate_data_key(
                KeyId=self.encryption_key_id, KeySpec="AES_256", EncryptionContext=context
            )
            wrapped = self.store.add_subscriber_data_key(commune, generated["CiphertextBlob"])
        plaintext = aws.kms().decrypt(CiphertextBlob=wrapped, EncryptionContext=context)["Plaintext"]
        with self._lock:
            self._data_keys[commune] = plaintext
        return plaintext


# ------------------------------------------------------------------------------------------------- the service


@dataclass(frozen=True)
class _Ask:
    """One address's subscription request, as `subscribe` validated it."""

    commune: str
    commune_name: str
    medium: Medium
    address: str = field(repr=False)
    settings: dict[str, object]
    categories: tuple[str, ...]
    consent_version: str
    base_url: str | None


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def subscriber_id(commune: str, lookup: str) -> str:
    """Stable per commune and address, meaningless without the KMS HMAC key."""
    digest = hashlib.sha256(f"{commune}\0{lookup}".encode()).digest()
    return "sub_" + base64.b32encode(digest[:15]).decode().lower()


class Subscribers:
    """The subscription use cases (public API, commune counts) and what the sms and email channels need."""

    def __init__(
        self,
        store: Store,
        keys: SubscriberKeys,
        *,
        sms: SmsGateway | None = None,
        email: EmailGateway | None = None,
        public_base_url: str = "http://127.0.0.1:3000",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.keys = keys
        self._sms = sms
        self._email = email
        self.public_base_url = public_base_url.rstrip("/")
        self._now = clock

    # -- plumbing --------------------------------------------------------------------------------------------

    def _epoch(self) -> int:
        return int(self._now().timestamp())

    def _iso(self) -> str:
        return str(self._now().isoformat())

    @property
    def sms(self) -> SmsGateway:
        if self._sms is None:
            from crieur.messaging import SmsGateway

            self._sms = SmsGateway()
        return self._sms

    @property
    def email(self) -> EmailGateway:
        if self._email is None:
            from crieur.messaging import EmailGateway

            self._email = EmailGateway()
        return self._email

    def _seal(self, commune: str, medium: Medium, identifier: str, address: str, unsubscribe: str) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = secrets.token_bytes(12)
        plaintext = json.dumps({"address": address, "unsubscribe": unsubscribe}).encode()
        aad = f"{commune}\0{medium}\0{identifier}".encode()
        return nonce + AESGCM(self.keys.data_key(commune)).encrypt(nonce, plaintext, aad)

    def _open(self, commune: str, record: SubscriberRecord) -> tuple[str, str]:
        """(address, unsubscribe secret)."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        aad = f"{commune}\0{record.medium}\0{record.id}".encode()
        plaintext = AESGCM(self.keys.data_key(commune)).decrypt(record.sealed[:12], record.sealed[12:], aad)
        opened = json.loads(plaintext)
        return str(opened["address"]), str(opened["unsubscribe"])

    def unsubscribe_url(self, commune: str, record: SubscriberRecord, secret: str, base_url: str | None = None) -> str:
        base = (base_url or self.public_base_url).rstrip("/")
        return f"{base}/public/{commune}/subscriptions/unsubscribe?token={record.medium}.{record.id}.{secret}"

    def _channel_settings(self, commune: str, medium: Medium, field: str) -> dict[str, object]:
        record = self.store.get_channel(commune, medium)
        if record is None or not record.enabled:
            what = "de SMS" if medium == "sms" else "d'e-mails"
            raise InvalidInput([(field, f"La commune n'envoie pas {what} à ses habitants.")])
        return dict(record.settings)

    # -- subscribing -----------------------------------------------------------------------------------------

    def subscribe(
        self, commune: str, request: SubscriptionRequest, base_url: str | None = None
    ) -> SubscriptionAccepted:
        """Records the request and sends the confirmation (a code by SMS, a link by e-mail)."""
        found = self.store.get_commune(commune)
        if found is None:
            raise NotFound("Commune inconnue.")
        categories = tuple(sorted(set(request.categories) or ALL_CATEGORIES))
        planned: list[tuple[Medium, str, dict[str, object]]] = []
        if request.phone is not None:
            settings = self._channel_settings(commune, "sms", "phone")
            allow_foreign = bool(settings.get("allow_foreign_numbers", False))
            planned.append(("sms", normalise_phone(request.phone, allow_foreign=allow_foreign), settings))
        if request.email is not None:
            settings = self._channel_settings(commune, "email", "email")
            planned.append(("email", normalise_email(str(request.email)), settings))
        confirmation: dict[Medium, Literal["code", "link"]] = {}
        for medium, address, settings in planned:
            self._request(
                _Ask(commune, found.name, medium, address, settings, categories, request.consent_version, base_url)
            )
            confirmation[medium] = "code" if medium == "sms" else "link"
        return SubscriptionAccepted(confirmation=confirmation)

    def _request(self, ask: _Ask) -> None:
        commune, medium = ask.commune, ask.medium
        lookup = self.keys.lookup(medium, ask.address)
        identifier = subscriber_id(commune, lookup)
        now = self._epoch()
        existing = self.store.get_subscriber(commune, medium, identifier)
        if existing is not None and existing.status == "pending" and not existing.pending_valid(now):
            self.store.delete_subscriber(commune, medium, identifier)  # expired, not purged yet: start again
            existing = None
        in_window = (
            existing is not None
            and existing.sends_since is not None
            and now - existing.sends_since < SEND_WINDOW_SECONDS
        )
        sends = (existing.sends if existing is not None and in_window else 0) + 1
        if sends > MAX_CONFIRMATION_SENDS:
            logger.info("confirmation not sent: too many requests", extra={"commune": commune, "medium": medium})
            return
        secret = f"{secrets.randbelow(10**6):06d}" if medium == "sms" else secrets.token_urlsafe(24)
        pending: dict[str, Any] = {
            "pending_categories": ask.categories,
            "pending_consent_version": ask.consent_version,
            "pending_consent_at": self._iso(),
            "secret_hash": _hash(commune, identifier, secret),
            "attempts": 0,
            "pending_until": now + CONFIRMATION_SECONDS,
            "sends": sends,
            "sends_since": existing.sends_since if existing is not None and in_window else now,
        }
        if existing is None:
            unsubscribe = secrets.token_urlsafe(24)
            record = SubscriberRecord(
                id=identifier,
                medium=medium,
                status="pending",
                lookup=lookup,
                sealed=self._seal(commune, medium, identifier, ask.address, unsubscribe),
                unsubscribe_hash=_hash(commune, identifier, unsubscribe),
                categories=ask.categories,
                consent_version=ask.consent_version,
                consent_at=self._iso(),
                created_at=self._iso(),
                **pending,
            )
        else:
            record = replace(existing, version=existing.version + 1, **pending)
        previous = None if existing is None else existing.version
        if not self.store.save_subscriber(commune, record, previous_version=previous):
            logger.info("concurrent subscription request ignored", extra={"commune": commune, "medium": medium})
            return
        try:
            if medium == "sms":
                self._send_code(ask, secret, identifier)
            else:
                self._send_link(ask, secret, record)
        except ChannelError as failed:
            # The answer stays the same (nothing revealed); the person may ask again.
            logger.warning("confirmation not sent", extra={"commune": commune, "medium": medium, "code": failed.code})

    def _send_code(self, ask: _Ask, code: str, identifier: str) -> None:
        hours = CONFIRMATION_SECONDS // 3600
        body = (
            f"{ask.commune_name} : votre code de confirmation est {code}. Valable {hours} h. "
            "Ignorez ce SMS si vous n'avez rien demandé."
        )
        self.sms.send_text(
            ask.address,
            body,
            sender_id=str(ask.settings.get("sender_id", "")),
            transactional=True,
            max_price=None,
            ttl_seconds=3600,
            context={"purpose": "confirmation", "subscriber": identifier},
        )

    def _send_link(self, ask: _Ask, token_secret: str, record: SubscriberRecord) -> None:
        import html

        base = (ask.base_url or self.public_base_url).rstrip("/")
        link = f"{base}/public/{ask.commune}/subscriptions/confirm?token=email.{record.id}.{token_secret}"
        _, unsubscribe = self._open(ask.commune, record)
        hours = CONFIRMATION_SECONDS // 3600
        subject = f"Confirmez votre inscription aux messages de {ask.commune_name}"
        text = (
            f"Bonjour,\n\nPour recevoir par e-mail les messages de {ask.commune_name}, confirmez votre inscription "
            f"en ouvrant ce lien (valable {hours} heures) :\n{link}\n\n"
            "Si vous n'avez rien demandé, ignorez ce message : vous ne recevrez rien d'autre.\n"
        )
        page = (
            '<!DOCTYPE html><html lang="fr"><body>'
            f"<p>Bonjour,</p><p>Pour recevoir par e-mail les messages de {html.escape(ask.commune_name)}, "
            f'<a href="{html.escape(link)}">confirmez votre inscription</a> (lien valable {hours} heures).</p>'
            "<p>Si vous n'avez rien demandé, ignorez ce message : vous ne recevrez rien d'autre.</p></body></html>"
        )
        reply_to = ask.settings.get("reply_to")
        self.email.send_one(
            str(ask.settings.get("from_address", "")),
            ask.address,
            subject,
            text,
            page,
            reply_to=str(reply_to) if reply_to else None,
            unsubscribe_url=self.unsubscribe_url(ask.commune, record, unsubscribe, base),
        )

    # -- confirming ------------------------------------------------------------------------------------------

    def _apply(self, commune: str, record: SubscriberRecord) -> None:
        confirmed = replace(
            record,
            status="confirmed",
            categories=record.pending_categories or record.categories,
            consent_version=record.pending_consent_version or record.consent_version,
            consent_at=record.pending_consent_at or record.consent_at,
            confirmed_at=self._iso(),
            pending_categories=None,
            pending_consent_version=None,
            pending_consent_at=None,
            secret_hash=None,
            attempts=0,
            pending_until=None,
            version=record.version + 1,
        )
        if not self.store.save_subscriber(commune, confirmed, previous_version=record.version):
            raise InvalidInput([("code", BAD_CODE)])
        logger.info("subscription confirmed", extra={"commune": commune, "medium": record.medium})

    def confirm_code(self, commune: str, request: CodeConfirmation) -> Confirmed:
        """The code received by SMS; the same refusal for a wrong code, an unknown number or too many tries."""
        try:
            phone = normalise_phone(request.phone, allow_foreign=True)
        except InvalidInput:
            raise InvalidInput([("code", BAD_CODE)]) from None
        identifier = subscriber_id(commune, self.keys.lookup("sms", phone))
        record = self.store.get_subscriber(commune, "sms", identifier)
        if record is None or not record.pending_valid(self._epoch()) or record.attempts >= MAX_CODE_ATTEMPTS:
            raise InvalidInput([("code", BAD_CODE)])
        expected = record.secret_hash or ""
        if not hmac.compare_digest(expected, _hash(commune, identifier, request.code)):
            tried = replace(record, attempts=record.attempts + 1, version=record.version + 1)
            self.store.save_subscriber(commune, tried, previous_version=record.version)
            raise InvalidInput([("code", BAD_CODE)])
        self._apply(commune, record)
        return Confirmed()

    def _by_token(self, commune: str, token: str) -> tuple[SubscriberRecord, str] | None:
        medium, _, rest = token.partition(".")
        identifier, _, secret = rest.partition(".")
        if medium not in MEDIUMS or not identifier.startswith("sub_") or not secret or len(token) > 200:
            return None
        record = self.store.get_subscriber(commune, medium, identifier)
        return (record, secret) if record is not None else None

    def confirm_link(self, commune: str, token: str) -> bool:
        """The link received by e-mail; False when it is wrong, used or expired."""
        found = self._by_token(commune, token)
        if found is None:
            return False
        record, secret = found
        if record.medium != "email" or not record.pending_valid(self._epoch()):
            return False
        if not hmac.compare_digest(record.secret_hash or "", _hash(commune, record.id, secret)):
            return False
        try:
            self._apply(commune, record)
        except InvalidInput:
            return False
        return True

    # -- unsubscribing and erasure ---------------------------------------------------------------------------

    def unsubscribe(self, commune: str, request: UnsubscribeRequest) -> None:
        """Deletes the address's subscriptions in the commune; the same answer whether there were any."""
        if request.phone is not None:
            phone = normalise_phone(request.phone, allow_foreign=True)
            self._erase(commune, "sms", subscriber_id(commune, self.keys.lookup("sms", phone)), "request")
        if request.email is not None:
            address = normalise_email(str(request.email))
            self._erase(commune, "email", subscriber_id(commune, self.keys.lookup("email", address)), "request")

    def unsubscribe_token(self, commune: str, token: str) -> bool:
        """The one-click link (RFC 8058); False when the link is wrong (already used: the data is gone)."""
        found = self._by_token(commune, token)
        if found is None:
            return False
        record, secret = found
        if not hmac.compare_digest(record.unsubscribe_hash, _hash(commune, record.id, secret)):
            return False
        self._erase(commune, record.medium, record.id, "link")
        return True

    def _erase(self, commune: str, medium: Medium, identifier: str, reason: str) -> bool:
        removed = self.store.delete_subscriber(commune, medium, identifier)
        if removed:
            logger.info("subscription removed", extra={"commune": commune, "medium": medium, "reason": reason})
        return removed

    def remove(self, commune: str, medium: Medium, subscriber_id: str, reason: str) -> bool:
        """Erases one subscriber (a number that answered STOP, an address SES refuses); True when it existed."""
        return self._erase(commune, medium, subscriber_id, reason)

    def remove_address(self, medium: Medium, address: str, reason: str) -> int:
        """Erases an address everywhere (SES bounce or complaint, STOP reply); how many subscriptions it had."""
        try:
            normalised = normalise_phone(address, allow_foreign=True) if medium == "sms" else normalise_email(address)
        except InvalidInput:
            normalised = address.strip().lower() if medium == "email" else address.strip()
        lookup = self.keys.lookup(medium, normalised)
        removed = 0
        for commune, identifier in self.store.subscriptions_of_address(medium, lookup):
            removed += self._erase(commune, medium, identifier, reason)
        return removed

    # -- what the commune sees and what the channels send to -------------------------------------------------

    def counts(self, commune: str) -> SubscriberCounts:
        now = self._epoch()
        counts = {medium: MediumCounts(categories=dict.fromkeys(ALL_CATEGORIES, 0)) for medium in MEDIUMS}
        for medium, status, categories, pending_until in self.store.subscriber_summaries(commune):
            if medium not in counts:
                continue
            tally = counts[medium]
            if status == "confirmed":
                tally.confirmed += 1
                for category in categories:
                    if category in tally.categories:
                        tally.categories[category] += 1
            elif pending_until is not None and pending_until > now:
                tally.pending += 1
        return SubscriberCounts(sms=counts["sms"], email=counts["email"])

    def audience(self, commune: str, medium: Medium, category: str) -> list[str]:
        """Confirmed subscribers consenting to `category`, in a stable order (their ids)."""
        return self.store.subscriber_audience(commune, medium, category)

    def contacts(self, commune: str, medium: Medium, ids: list[str]) -> dict[str, Contact]:
        """The decrypted addresses of these subscribers that are still confirmed (the others are left out)."""
        contacts: dict[str, Contact] = {}
        for record in self.store.subscribers_among(commune, medium, ids):
            if record.status != "confirmed":
                continue
            address, unsubscribe = self._open(commune, record)
            contacts[record.id] = Contact(
                id=record.id, address=address, unsubscribe_url=self.unsubscribe_url(commune, record, unsubscribe)
            )
        return contacts


# ------------------------------------------------------------------------------------------------- pages
# What a resident sees after following a link from an e-mail: small, accessible, French HTML pages.

_PAGE_STYLE = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;line-height:1.5}"


def _page(title: str, body: str) -> str:
    import html

    return (
        '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title><style>{_PAGE_STYLE}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>\n"
    )


def confirmation_page(confirmed: bool) -> str:
    if confirmed:
        return _page(
            "Inscription confirmée",
            "<p>Vous recevrez désormais par e-mail les messages de la commune. Chaque message contient un lien "
            "pour vous désinscrire en un clic.</p>",
        )
    return _page(
        "Lien invalide ou expiré",
        f"<p>Ce lien de confirmation n'est plus valable (il l'est {CONFIRMATION_SECONDS // 3600} heures et ne sert "
        "qu'une fois). Inscrivez-vous à nouveau pour en recevoir un autre.</p>",
    )


def unsubscribe_form_page(token: str) -> str:
    """The link in an e-mail only shows a button: link scanners open links, and must not unsubscribe anyone."""
    import html

    return _page(
        "Se désinscrire",
        "<p>Vous ne recevrez plus aucun message de la commune à cette adresse, et vos données seront effacées.</p>"
        f'<form method="post" action="?token={html.escape(token)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Me désinscrire</button></form>',
    )


def unsubscribed_page(done: bool) -> str:
    if done:
        return _page("Désinscription faite", "<p>Vous ne recevrez plus de messages de la commune à cette adresse.</p>")
    return _page(
        "Lien invalide",
        "<p>Ce lien de désinscription n'est plus valable : l'adresse est sans doute déjà désinscrite.</p>",
    )
