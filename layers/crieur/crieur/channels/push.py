"""Push channel: a notification to the commune's mobile app through Firebase Cloud Messaging HTTP v1.

One message per publication, sent to a topic condition rather than to devices: the app subscribes each
device to `commune-<insee>-all` and/or `commune-<insee>-<category>`, and the condition
`'commune-<insee>-all' in topics || 'commune-<insee>-<category>' in topics` reaches a device on both once.
Google fans the message out to every subscriber.

The OAuth2 access token is minted here from the service account (a JWT-bearer grant signed with its RSA
key, RFC 7523, as google-auth does) and posted to the account's `token_uri` through the adapter's own HTTP
client: the same timeouts, address guard and error classes as every other call, and the sandbox can stand
in for Google's token endpoint. It is cached per container until five minutes before it expires.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import AnyUrl, field_validator

from crieur.channels.base import (
    ChannelCheck,
    ChannelCredentials,
    ChannelError,
    ChannelSettings,
    MediaDecision,
    PermanentChannelError,
    PostChannel,
    RenderedPost,
    RetractUnsupported,
    SentPost,
    call_provider,
    provider_base_url,
)
from crieur.channels.webhook import check_target_url
from crieur.models import Media, Publication
from crieur.render.text import nfc, truncate

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_SECONDS = 3600
TOKEN_MARGIN_SECONDS = 300
TITLE_LIMIT = 65
BODY_LIMIT = 240
BODY_BUDGETS: tuple[int, ...] = (BODY_LIMIT, 200, 160, 120, 80, 40)
"""The body is shortened step by step until the topic message fits; below 40 characters the image goes."""
TOPIC_PAYLOAD_LIMIT = 2048
DEFAULT_TTL_SECONDS = 24 * 3600
MAX_TTL_SECONDS = 28 * 24 * 3600
IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})
MAX_IMAGE_BYTES = 1024 * 1024
"""Android shows notification images of at most 1 MB (FCM documentation)."""
ALERT_URGENCIES = frozenset({"high", "critical"})
CHECK_TOPIC = "crieur-verification"
RECONNECT = "Reconnectez l'application : le compte de service n'est plus autorisé sur ce projet Firebase."
RETRACT = "Une notification envoyée ne peut pas être rappelée."
REQUIRED_FIELDS = ("client_email", "private_key", "token_uri")
PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")

_tokens: dict[tuple[str, str, str], tuple[float, str]] = {}
"""(token_uri, client_email, key digest) → (monotonic expiry, access token), for the container's life."""


class PushSettings(ChannelSettings):
    project_id: str

    @field_validator("project_id")
    @classmethod
    def _project(cls, project_id: str) -> str:
        if not PROJECT_ID.fullmatch(project_id):
            raise ValueError(
                "Identifiant de projet Firebase invalide : 6 à 30 caractères, minuscules, chiffres et tirets "
                "(par exemple « mairie-de-rennes »)."
            )
        return project_id


class PushCredentials(ChannelCredentials):
    service_account_json: str

    @field_validator("service_account_json")
    @classmethod
    def _service_account(cls, raw: str) -> str:
        try:
            info = json.loads(raw)
        except ValueError as bad:
            raise ValueError("Le compte de service doit être le fichier JSON téléchargé depuis Google Cloud.") from bad
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ValueError("Ce JSON n'est pas un compte de service (« type »: « service_account » attendu).")
        missing = [key for key in REQUIRED_FIELDS if not isinstance(info.get(key), str) or not info[key]]
        if missing:
            raise ValueError(f"Champ(s) manquant(s) dans le compte de service : {', '.join(missing)}.")
        check_target_url(AnyUrl(info["token_uri"]))
        _private_key(info["private_key"])
        return raw

    @property
    def info(self) -> dict[str, str]:
        info: dict[str, str] = json.loads(self.service_account_json)
        return info


def _private_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as bad:
        raise ValueError("La clé privée du compte de service est illisible.") from bad
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("La clé privée du compte de service doit être une clé RSA.")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def service_account_assertion(info: dict[str, str], now: float) -> str:
    """The RS256 JWT a service account presents to its token_uri (Google's OAuth 2.0 server-to-server flow)."""
    header = {"alg": "RS256", "typ": "JWT", **({"kid": info["private_key_id"]} if info.get("private_key_id") else {})}
    claims = {
        "iss": info["client_email"],
        "scope": SCOPE,
        "aud": info["token_uri"],
        "iat": int(now),
        "exp": int(now) + ASSERTION_SECONDS,
    }
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = _private_key(info["private_key"]).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def topic_condition(commune: str, category: str) -> str:
    return f"'commune-{commune}-all' in topics || 'commune-{commune}-{category}' in topics"


def payload_bytes(message: dict[str, Any]) -> int:
    """What FCM weighs against the 2048-byte topic limit: the notification and data as UTF-8 JSON."""
    counted = {key: message[key] for key in ("notification", "data") if key in message}
    return len(json.dumps(counted, ensure_ascii=False, separators=(",", ":")).encode())


def _weight(size: int) -> str:
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} Ko"
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0").replace(".", ",") + " Mo"


def _fcm_error(response: httpx.Response | None) -> tuple[str | None, str | None]:
    """(status, errorCode) of an FCM error body: {"error": {status, details: [{"@type": …FcmError, errorCode}]}}."""
    if response is None:
        return None, None
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None, None
    if not isinstance(error, dict):
        return None, None
    code = next(
        (
            str(detail.get("errorCode"))
            for detail in error.get("details") or []
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("FcmError")
        ),
        None,
    )
    status = error.get("status")
    return (str(status) if status else None), code


class PushChannel(PostChannel[PushSettings, PushCredentials]):
    """One notification per publication to the app's topics, with title, body, image and a deep link.

    Idempotency: FCM has no idempotency key, so a retried delivery (after a timeout whose message did
    go out) sends again. The publication id is the collapse key everywhere (Android `collapse_key`,
    `apns-collapse-id`, Web Push `Topic`): the second notification replaces the first on each device
    instead of showing twice. Nothing can be recalled: `delete` says so.
    """

    name: ClassVar = "push"
    label: ClassVar = "L'application mobile"
    settings_model: ClassVar = PushSettings
    credentials_model: ClassVar = PushCredentials

    def max_length(self) -> int:
        return BODY_LIMIT

    # -- render ------------------------------------------------------------------------------------------

    def render(self, publication: Publication) -> RenderedPost:
        override = publication.overrides.get("push")
        source = nfc((override.text if override else publication.body).strip())
        title = truncate(nfc(publication.title), TITLE_LIMIT, len)
        decisions: list[MediaDecision] = []
        for medium in publication.media:
            decisions.append(self._decide(medium, any(decision.kept for decision in decisions)))
        image = next((decision for decision in decisions if decision.kept), None)
        warnings: list[str] = []
        for budget in BODY_BUDGETS:
            body = truncate(source, budget, len)
            message = self._message(publication, title, body, image.url if image else None)
            if payload_bytes(message) <= TOPIC_PAYLOAD_LIMIT:
                break
        else:
            if image is None:
                raise self._too_big()
            message = self._message(publication, title, body, None)
            if payload_bytes(message) > TOPIC_PAYLOAD_LIMIT:
                raise self._too_big()
            image.kept = False
            image.reason = "La notification dépasserait 2 048 octets avec cette image : elle part sans image."
        if body != source:
            warnings.append(f"Le texte est raccourci à {len(body)} caractères pour tenir dans la notification.")
        if title != nfc(publication.title):
            warnings.append(f"Le titre est raccourci à {TITLE_LIMIT} caractères, ce qu'affiche un téléphone.")
        return RenderedPost(
            text=body, length=len(body), limit=BODY_LIMIT, media=decisions, warnings=warnings, payload=message
        )

    @staticmethod
    def _too_big() -> PermanentChannelError:
        return PermanentChannelError(
            "too_large",
            "La notification dépasse 2 048 octets, la limite de Firebase pour un envoi à un sujet : "
            "raccourcissez le titre ou l'adresse du premier lien.",
        )

    def _message(self, publication: Publication, title: str, body: str, image: str | None) -> dict[str, Any]:
        alert = publication.urgency in ALERT_URGENCIES
        ttl = self._ttl(publication)
        notification = {"title": title, "body": body, **({"image": image} if image else {})}
        return {
            "condition": topic_condition(publication.commune, publication.category),
            "notification": notification,
            "data": {
                "publication_id": publication.id,
                "url": str(publication.links[0].url) if publication.links else "",
                "category": publication.category,
                "urgency": publication.urgency,
            },
            "android": {
                "priority": "high" if alert else "normal",
                "collapse_key": publication.id,
                "ttl": f"{ttl}s",
            },
            "apns": {"headers": {"apns-priority": "10" if alert else "5", "apns-collapse-id": publication.id}},
            "webpush": {
                "headers": {"Urgency": "high" if alert else "normal", "TTL": str(ttl), "Topic": publication.id}
            },
        }

    @staticmethod
    def _ttl(publication: Publication) -> int:
        """How long FCM keeps trying offline devices: a day, or until the publication expires."""
        if publication.expires_at is None:
            return DEFAULT_TTL_SECONDS
        left = (publication.expires_at - datetime.now(UTC)).total_seconds()
        return max(0, min(int(left), MAX_TTL_SECONDS))

    def _decide(self, medium: Media, already_kept: bool) -> MediaDecision:
        reason = self._refusal(medium, already_kept)
        return MediaDecision(url=str(medium.url), alt=medium.alt, kept=reason is None, reason=reason)

    def _refusal(self, medium: Media, already_kept: bool) -> str | None:
        """Why this medium is not the notification's image, in French; None when it is."""
        if medium.kind == "video":
            return "Une notification n'affiche pas de vidéo : celle-ci n'est pas envoyée."
        if already_kept:
            return "Une notification n'affiche qu'une image : seule la première est envoyée."
        try:
            fetched = self.fetch_media(medium)
        except PermanentChannelError as unavailable:
            return unavailable.message
        if fetched.mime not in IMAGE_TYPES:
            return f"{medium.url} n'est pas une image qu'une notification affiche (JPEG ou PNG)."
        if fetched.size > MAX_IMAGE_BYTES:
            return (
                f"L'image {medium.url} pèse {_weight(fetched.size)} ; une notification en affiche au plus "
                f"{_weight(MAX_IMAGE_BYTES)} : réduisez-la."
            )
        return None

    # -- the access token ----------------------------------------------------------------------------------

    def _cache_key(self) -> tuple[str, str, str]:
        info = self.credentials.info
        digest = hashlib.sha256(info["private_key"].encode()).hexdigest()
        return info["token_uri"], info["client_email"], digest

    def access_token(self) -> str:
        """A cached OAuth2 token for the service account, minted again five minutes before it expires."""
        key = self._cache_key()
        cached = _tokens.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        info = self.credentials.info
        request = self.http.build_request(
            "POST",
            info["token_uri"],
            data={"grant_type": JWT_BEARER_GRANT, "assertion": service_account_assertion(info, time.time())},
        )
        try:
            answer = call_provider(self.http, self.label, request).json()
        except PermanentChannelError as refused:
            # invalid_grant (key deleted, account disabled), invalid_client…: only a new key can help.
            raise PermanentChannelError(
                "needs_reconnect", RECONNECT, refused.provider_message, refused.http_status
            ) from refused
        token = str(answer["access_token"])
        lifetime = float(answer.get("expires_in", ASSERTION_SECONDS))
        _tokens[key] = (time.monotonic() + lifetime - TOKEN_MARGIN_SECONDS, token)
        return token

    # -- send ------------------------------------------------------------------------------------------------

    def _send(self, message: dict[str, Any], *, validate_only: bool = False) -> dict[str, Any]:
        """POST messages:send; an access token refused as expired is minted again once."""
        url = f"{provider_base_url('FCM', 'https://fcm.googleapis.com')}/v1/projects/{self.settings.project_id}/messages:send"
        body: dict[str, Any] = {"message": message, **({"validate_only": True} if validate_only else {})}
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.access_token()}"}
            request = self.http.build_request("POST", url, json=body, headers=headers)
            try:
                answer: dict[str, Any] = call_provider(self.http, self.label, request).json()
            except ChannelError as error:
                status, code = _fcm_error(error.response)
                if status == "UNAUTHENTICATED" and code is None and attempt == 1:
                    _tokens.pop(self._cache_key(), None)  # revoked or expired early: one fresh token
                    continue
                raise self._refine(error, status, code) from error
            return answer
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _refine(self, error: ChannelError, status: str | None, code: str | None) -> ChannelError:
        """FCM's own codes on top of the HTTP classification (reference/channels.md)."""
        detail = error.provider_message
        http_status = error.http_status
        if code in ("SENDER_ID_MISMATCH", "THIRD_PARTY_AUTH_ERROR") or status in (
            "PERMISSION_DENIED",
            "UNAUTHENTICATED",
        ):
            return PermanentChannelError("needs_reconnect", RECONNECT, detail, http_status, response=error.response)
        if code == "UNREGISTERED":
            return PermanentChannelError(
                "unregistered",
                "Firebase ne connaît pas ce destinataire de notification (UNREGISTERED).",
                detail,
                http_status,
                response=error.response,
            )
        if code == "INVALID_ARGUMENT" or status == "INVALID_ARGUMENT":
            return PermanentChannelError(
                "rejected",
                f"Firebase a refusé la notification : {detail}",
                detail,
                http_status,
                response=error.response,
            )
        return error

    def send(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost:
        """Sends the rendered message; the message name (`projects/…/messages/…`) is the external id.

        `delivery_id` cannot be passed to FCM (it has no idempotency key): duplicates collapse on the
        devices instead, on the publication id (see the class docstring).
        """
        answer = self._send(rendered.payload)
        return SentPost(external_id=str(answer["name"]))

    def delete(self, external_id: str) -> None:
        raise RetractUnsupported(RETRACT)

    def check(self) -> ChannelCheck:
        """Mints a token and has FCM validate (validate_only, nothing delivered) a message to a spare topic."""
        message = {
            "topic": CHECK_TOPIC,
            "notification": {"title": "Test de Crieur", "body": "Ce message n'est envoyé à personne."},
        }
        self._send(message, validate_only=True)
        return ChannelCheck(
            ok=True,
            account=f"{self.credentials.info['client_email']} ({self.settings.project_id})",
            message="Le compte de service peut envoyer des notifications sur ce projet Firebase.",
            permissions=["firebase.messaging"],
        )
