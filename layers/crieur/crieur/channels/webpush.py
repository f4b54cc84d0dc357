"""Web Push channel: a notification to every browser that subscribed on the commune's website.

Browsers subscribe through `POST /public/{commune}/webpush/subscriptions` (no API key); each
subscription is one item `C#<commune>` / `WPS#<sha256(endpoint)>` with its categories (none = all).

Sending encrypts the payload for each subscription with aes128gcm (RFC 8291: ECDH P-256 with the
browser's p256dh, HKDF-SHA256 with its auth secret, one 4096-byte record) and signs a VAPID JWT
(RFC 8292: ES256, aud = the endpoint's origin, 12 h) with the commune's key, then POSTs concurrently,
over HTTP/2 where the push service offers it. It is an `AudienceChannel`: the subscribers are the audience
(recipient id: the subscription id), sent in chunks of 250 (crieur.delivery marks each one done, so a retry
sends only to those that remain). 201 is delivered; 404/410 remove the subscription; 413 and other 4xx are
final for that subscription; 429, 5xx and transport failures are retried (Retry-After honoured).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import AnyUrl, BaseModel, ConfigDict, Field, field_validator

from crieur.channels.base import (
    AudienceChannel,
    ChannelCheck,
    ChannelCredentials,
    ChannelSettings,
    RecipientOutcome,
    RenderedPost,
    RetractUnsupported,
    retry_after_seconds,
)
from crieur.models import Category, Publication
from crieur.outbound import check_public_host
from crieur.render.text import nfc, truncate
from crieur.security import ForbiddenTarget, local_http_allowed, private_targets_allowed

if TYPE_CHECKING:
    from crieur.credentials import CredentialVault
    from crieur.store import Store

TITLE_LIMIT = 65
BODY_LIMIT = 240
PAYLOAD_LIMIT = 3000
RECORD_SIZE = 4096
DEFAULT_TTL_SECONDS = 24 * 3600
VAPID_SECONDS = 12 * 3600
MAX_WORKERS = 50
ALERT_URGENCIES = frozenset({"high", "critical"})
RETRACT = "Une notification envoyée ne peut pas être rappelée."
_TOPIC_CHARS = re.compile(r"[^A-Za-z0-9_-]")


# --- encoding helpers ----------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def endpoint_hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


def public_key_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def load_vapid_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM, or from its raw 32-byte scalar in base64url (what web-push tools print)."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ValueError("La clé VAPID doit être une clé P-256 (prime256v1).")
        return key
    raw = b64url_decode(text)
    if len(raw) != 32:
        raise ValueError("La clé VAPID doit être en PEM, ou 32 octets en base64url.")
    return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())


def vapid_public_key(private_key: str) -> str:
    """The applicationServerKey a page passes to pushManager.subscribe (base64url, uncompressed point)."""
    return b64url(public_key_bytes(load_vapid_key(private_key).public_key()))


# --- RFC 8291: aes128gcm --------------------------------------------------------------------------------


def _hmac(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869) for one output block, as RFC 8291 uses it."""
    prk = _hmac(salt, ikm)
    return _hmac(prk, info + b"\x01")[:length]


def content_keys(
    ecdh_secret: bytes, auth_secret: bytes, ua_public: bytes, as_public: bytes, salt: bytes
) -> tuple[bytes, bytes]:
    """(CEK, NONCE) of RFC 8291 §3.4 and RFC 8188 §2.2."""
    key_info = b"WebPush: info\x00" + ua_public + as_public
    ikm = _hkdf(auth_secret, ecdh_secret, key_info, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    return cek, nonce


def encrypt(
    plaintext: bytes,
    ua_public: bytes,
    auth_secret: bytes,
    *,
    as_private: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
    record_size: int = RECORD_SIZE,
) -> bytes:
    """The aes128gcm body (header + one record) for a subscription; `as_private` and `salt` for test vectors."""
    if len(plaintext) + 1 + 16 > record_size:
        raise ValueError("payload too large for one record")
    as_private = as_private or ec.generate_private_key(ec.SECP256R1())
    salt = salt or os.urandom(16)
    as_public = public_key_bytes(as_private.public_key())
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    ecdh_secret = as_private.exchange(ec.ECDH(), ua_key)
    cek, nonce = content_keys(ecdh_secret, auth_secret, ua_public, as_public, salt)
    record = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)  # last record: delimiter 2, no padding
    header = salt + struct.pack("!IB", record_size, len(as_public)) + as_public
    return header + record


def decrypt(body: bytes, ua_private: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """What the browser does with an aes128gcm body (the sandbox and tests use it)."""
    salt, (_, id_length) = body[:16], struct.unpack("!IB", body[16:21])
    as_public = body[21 : 21 + id_length]
    ua_public = public_key_bytes(ua_private.public_key())
    as_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public)
    cek, nonce = content_keys(ua_private.exchange(ec.ECDH(), as_key), auth_secret, ua_public, as_public, salt)
    padded = AESGCM(cek).decrypt(nonce, body[21 + id_length :], None).rstrip(b"\x00")
    if not padded.endswith(b"\x02"):
        raise ValueError("not a single last record (padding delimiter 2 missing)")
    return padded[:-1]


# --- RFC 8292: VAPID --------------------------------------------------------------------------------------


def origin(endpoint: str) -> str:
    parts = urllib.parse.urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def vapid_authorization(key: ec.EllipticCurvePrivateKey, endpoint: str, subject: str, now: float) -> str:
    """`vapid t=<ES256 JWT>, k=<public key>` for the endpoint's push service."""
    header = b64url(json.dumps({"typ": "JWT", "alg": "ES256"}, separators=(",", ":")).encode())
    claims = {"aud": origin(endpoint), "exp": int(now) + VAPID_SECONDS, "sub": subject}
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    token = f"{header}.{payload}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    return f"vapid t={token}, k={b64url(public_key_bytes(key.public_key()))}"


# --- subscriptions ----------------------------------------------------------------------------------------


class SubscriptionKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)

    @field_validator("p256dh")
    @classmethod
    def _point(cls, value: str) -> str:
        try:
            raw = b64url_decode(value)
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except (ValueError, TypeError) as invalid:
            raise ValueError("p256dh doit être une clé publique P-256 en base64url.") from invalid
        if len(raw) != 65:
            raise ValueError("p256dh doit être une clé publique P-256 non compressée (65 octets).")
        return value

    @field_validator("auth")
    @classmethod
    def _auth(cls, value: str) -> str:
        try:
            raw = b64url_decode(value)
        except ValueError as invalid:
            raise ValueError("auth doit être en base64url.") from invalid
        if len(raw) != 16:
            raise ValueError("auth doit faire 16 octets.")
        return value


class WebPushSubscriptionRequest(BaseModel):
    """The browser's PushSubscription.toJSON() plus the categories the resident chose (none: all)."""

    model_config = ConfigDict(extra="forbid")

    endpoint: AnyUrl
    expirationTime: float | None = None
    keys: SubscriptionKeys
    categories: list[Category] = Field(default=[], max_length=10)

    @field_validator("endpoint")
    @classmethod
    def _https(cls, url: AnyUrl) -> AnyUrl:
        if len(str(url)) > 2000:
            raise ValueError("Adresse trop longue.")
        if url.scheme != "https" and not local_http_allowed(url.scheme, url.host):
            raise ValueError("L'adresse d'abonnement doit commencer par https://.")
        return url


class WebPushUnsubscribeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    endpoint: AnyUrl


def endpoint_problem(endpoint: AnyUrl) -> str | None:
    """Why Crieur refuses to post to this endpoint (a private or unknown host), in French; None when public."""
    if private_targets_allowed():
        return None
    try:
        check_public_host(endpoint.host or "", endpoint.port or 443)
    except ForbiddenTarget as forbidden:
        return f"Adresse refusée : {forbidden}."
    except httpx.ConnectError as unknown:
        return f"Adresse refusée : {unknown}."
    return None


@dataclass(frozen=True)
class Subscription:
    id: str
    endpoint: str
    p256dh: str
    auth: str
    categories: tuple[str, ...]

    def wants(self, category: str) -> bool:
        return not self.categories or category in self.categories


# --- the channel ------------------------------------------------------------------------------------------


class WebpushSettings(ChannelSettings):
    vapid_subject: str = Field(max_length=200)

    @field_validator("vapid_subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if not re.fullmatch(r"mailto:[^@\s]+@[^@\s]+\.[^@\s]+|https://[^\s]+", value):
            raise ValueError("Le contact VAPID doit être « mailto:adresse@commune.fr » ou une adresse https://.")
        return value


class WebpushCredentials(ChannelCredentials):
    vapid_private_key: str

    @field_validator("vapid_private_key")
    @classmethod
    def _key(cls, value: str) -> str:
        try:
            load_vapid_key(value)
        except (ValueError, TypeError) as invalid:
            raise ValueError("Clé VAPID illisible : une clé privée P-256 en PEM ou en base64url.") from invalid
        return value


class WebpushChannel(AudienceChannel[WebpushSettings, WebpushCredentials]):
    """One encrypted message per subscribed browser; see the module docstring.

    The publication id is the Web Push `Topic`: a notification still waiting in the push service is
    replaced rather than shown twice. Nothing can be recalled once shown.
    """

    name: ClassVar = "webpush"
    label: ClassVar = "Les notifications du site"
    settings_model: ClassVar = WebpushSettings
    credentials_model: ClassVar = WebpushCredentials

    store: Store | None = None
    """The subscriptions' store; the deployment's (crieur.config) unless set."""

    def max_length(self) -> int:
        return BODY_LIMIT

    def _store(self) -> Store:
        if self.store is None:
            from crieur import config

            self.store = config.store()
        return self.store

    def render(self, publication: Publication) -> RenderedPost:
        override = publication.overrides.get("webpush")
        source = nfc((override.text if override else publication.body).strip())
        title = truncate(nfc(publication.title), TITLE_LIMIT, len)
        body = truncate(source, BODY_LIMIT, len)
        message: dict[str, Any] = {
            "title": title,
            "body": body,
            "url": str(publication.links[0].url) if publication.links else "",
            "tag": publication.id,
        }
        image = next((medium for medium in publication.media if medium.kind == "image"), None)
        if image is not None:
            message["icon"] = str(image.url)
        if len(json.dumps(message, ensure_ascii=False).encode()) > PAYLOAD_LIMIT:
            message.pop("icon", None)
            message["url"] = ""
        warnings = []
        if body != source:
            warnings.append(f"Le texte est raccourci à {len(body)} caractères pour tenir dans la notification.")
        return RenderedPost(
            text=body,
            length=len(body),
            limit=BODY_LIMIT,
            warnings=warnings,
            payload={
                "message": message,
                "commune": publication.commune,
                "publication_id": publication.id,
                "category": publication.category,
                "urgency": "high" if publication.urgency in ALERT_URGENCIES else "normal",
                "ttl": DEFAULT_TTL_SECONDS,
            },
        )

    def audience(self, rendered: RenderedPost) -> list[str]:
        """The subscriptions that take the publication's category, by id."""
        payload = rendered.payload
        category = str(payload["category"])
        return sorted(
            subscription.id
            for subscription in self._store().webpush_subscriptions(str(payload["commune"]))
            if subscription.wants(category)
        )

    def send_chunk(self, rendered: RenderedPost, recipients: list[str]) -> list[RecipientOutcome]:
        """POSTs to every subscription at once (50 at a time); a subscription gone since is `removed`."""
        payload = rendered.payload
        commune, publication_id = str(payload["commune"]), str(payload["publication_id"])
        store = self._store()
        found = {
            subscription.id: subscription for subscription in store.webpush_subscriptions_among(commune, recipients)
        }
        subscriptions = [found[recipient] for recipient in recipients if recipient in found]
        key = load_vapid_key(self.credentials.vapid_private_key)
        plaintext = json.dumps(payload["message"], ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "TTL": str(payload["ttl"]),
            "Urgency": str(payload["urgency"]),
            "Topic": _TOPIC_CHARS.sub("", publication_id)[:32],
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        now = time.time()
        # One VAPID token per push service (its origin) serves the whole chunk: 12 h of validity.
        services = {origin(subscription.endpoint): subscription.endpoint for subscription in subscriptions}
        authorizations = {
            service: vapid_authorization(key, endpoint, self.settings.vapid_subject, now)
            for service, endpoint in services.items()
        }
        outcomes: list[RecipientOutcome] = []
        if subscriptions:
            with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(subscriptions))) as pool:
                outcomes = list(
                    pool.map(lambda item: self._push(item, plaintext, headers, authorizations), subscriptions)
                )
        for outcome in outcomes:  # the store is written from this thread only
            if outcome.result == "removed":
                store.delete_webpush_subscription(commune, outcome.recipient)
        gone = [
            RecipientOutcome(recipient, "removed", detail="désabonné")
            for recipient in recipients
            if recipient not in found
        ]
        return outcomes + gone

    def _push(
        self, subscription: Subscription, plaintext: bytes, headers: dict[str, str], authorizations: dict[str, str]
    ) -> RecipientOutcome:
        recipient = subscription.id
        try:
            body = encrypt(plaintext, b64url_decode(subscription.p256dh), b64url_decode(subscription.auth))
            authorization = authorizations[origin(subscription.endpoint)]
            response = self.http.post(
                subscription.endpoint, content=body, headers={**headers, "Authorization": authorization}
            )
        except ForbiddenTarget as forbidden:
            return RecipientOutcome(recipient, "refused", detail=str(forbidden)[:200])
        except httpx.HTTPError as failure:
            return RecipientOutcome(recipient, "retry", detail=f"{type(failure).__name__}: {failure}"[:200])
        status = response.status_code
        if status in (200, 201, 202):
            return RecipientOutcome(recipient, "delivered")
        if status in (404, 410):
            return RecipientOutcome(recipient, "removed", detail=f"erreur {status}")
        if status == 429 or status >= 500 or status == 408:
            return RecipientOutcome(recipient, "retry", retry_after_seconds(response), f"erreur {status}")
        return RecipientOutcome(recipient, "refused", detail=f"erreur {status}")  # 413, 400, 403: final for this one

    def delete(self, external_id: str) -> None:
        raise RetractUnsupported(RETRACT)

    def check(self) -> ChannelCheck:
        public = vapid_public_key(self.credentials.vapid_private_key)
        return ChannelCheck(
            ok=True,
            account=f"Clé publique VAPID {public[:16]}…",
            message="La clé VAPID est lisible ; les navigateurs s'abonnent avec sa clé publique.",
        )


# --- the public routes (functions/api: /public/{commune}/webpush/…) ----------------------------------------


def subscribe(store: Store, commune: str, request: WebPushSubscriptionRequest) -> tuple[str, bool]:
    """Stores the browser's subscription (the same endpoint again replaces it): (its id, whether new)."""
    from crieur.errors import InvalidInput, NotFound

    if store.get_commune(commune) is None:
        raise NotFound("Commune inconnue.")
    problem = endpoint_problem(request.endpoint)
    if problem is not None:
        raise InvalidInput([("endpoint", problem)])
    endpoint = str(request.endpoint)
    subscription_id = endpoint_hash(endpoint)
    created = store.put_webpush_subscription(
        commune,
        subscription_id,
        endpoint=endpoint,
        p256dh=request.keys.p256dh,
        auth=request.keys.auth,
        categories=sorted(set(request.categories)),
    )
    return subscription_id, created


def unsubscribe(store: Store, commune: str, request: WebPushUnsubscribeRequest) -> bool:
    return store.delete_webpush_subscription(commune, endpoint_hash(str(request.endpoint)))


_public_keys: dict[tuple[str, bytes], str] = {}
"""(commune, sealed credentials) → VAPID public key: one KMS decryption per container and key."""


def commune_public_key(store: Store, vault: CredentialVault, commune: str) -> str | None:
    """The applicationServerKey of the commune's webpush channel; None when the channel is not set up."""
    record = store.get_channel(commune, "webpush")
    if record is None or not record.enabled or not record.credentials_ciphertext:
        return None
    cache_key = (commune, record.credentials_ciphertext)
    if cache_key not in _public_keys:
        credentials = vault.open(commune, "webpush", record.credentials_ciphertext)
        _public_keys[cache_key] = vapid_public_key(credentials["vapid_private_key"])
    return _public_keys[cache_key]
