"""Bluesky channel: AT Protocol XRPC calls to the account's PDS (https://bsky.social unless it says otherwise).

`send` for one delivery:

1. A session: com.atproto.server.createSession with the handle and app password, kept in the process per
   (PDS, handle) and renewed with refreshSession when the PDS answers ExpiredToken. createSession is
   limited to 30 per 5 minutes and 300 a day, so it is never called once per post.
2. Each kept image, fetched through the media cache, recompressed as JPEG when it weighs more than
   1,000,000 bytes (Bluesky's limit), and uploaded with com.atproto.repo.uploadBlob.
3. com.atproto.repo.createRecord of an app.bsky.feed.post: the text, `langs: ["fr"]`, link and hashtag
   facets (UTF-8 byte offsets), and an embed: the images with their alt text, or else a link card for the
   first link.

Idempotency: the record key is a TID derived from the delivery id (`delivery_tid`), so every attempt of a
delivery writes to the same at:// address and a retry after a success conflicts instead of posting again.
PDS versions answer that conflict differently (RecordAlreadyExists, InvalidSwap, or a bare 500), and a
timeout can hide a post that was made: after any failed create that may have reached the PDS, the record
is read back (com.atproto.repo.getRecord) and, when it is there, the delivery is sent with that post. The
same read is `find_sent`, which the worker asks after an attempt of unknown outcome. A read that fails
(anything but RecordNotFound) is a TransientChannelError: never taken for "not there", nor for "there".
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import AnyUrl, Field, field_validator

from crieur.channels.base import (
    ChannelCheck,
    ChannelCredentials,
    ChannelError,
    ChannelSettings,
    MediaDecision,
    PermanentChannelError,
    PostChannel,
    RenderedPost,
    SentPost,
    TransientChannelError,
    call_provider,
    provider_base_url,
)
from crieur.channels.lookup import lookup_failures
from crieur.channels.webhook import check_target_url
from crieur.media import FetchedMedia, MediaUnavailable, dimensions, shrink_jpeg
from crieur.models import Media, Publication, utc_now
from crieur.render.bluesky import MAX_GRAPHEMES, bluesky_length, facets
from crieur.render.text import compose, url_spans

DEFAULT_PDS = "https://bsky.social"
POST = "app.bsky.feed.post"
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 1_000_000
APP_URL = "https://bsky.app"
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
# A create refused for one of these reasons cannot have written anything: no need to look for the post.
NOTHING_WRITTEN = frozenset({"needs_reconnect", "rate_limited", "forbidden_target"})
HANDLE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
AT_URI = re.compile(r"at://([^/]+)/([^/]+)/([^/]+)")
ULID_IN_ID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
APP_PASSWORDS_PAGE = "Réglages › Confidentialité et sécurité › Mots de passe d'application"
REVOKED = (
    "Reconnectez le compte Bluesky : le mot de passe d'application a été révoqué. "
    f"Créez-en un nouveau dans Bluesky ({APP_PASSWORDS_PAGE}) et enregistrez-le dans Crieur."
)
# What com.atproto.server.createSession answers besides a wrong or revoked password.
LOGIN_REFUSALS: dict[str, tuple[str, str]] = {
    "AuthFactorTokenRequired": (
        "needs_reconnect",
        "Reconnectez le compte Bluesky avec un mot de passe d'application : le mot de passe principal "
        f"demande un code reçu par e-mail, que Crieur ne peut pas saisir ({APP_PASSWORDS_PAGE}).",
    ),
    "AccountTakedown": (
        "account_suspended",
        "Le compte Bluesky est suspendu par la modération de Bluesky : rien ne peut y être publié.",
    ),
}
# What an access token allows (its `scope` claim), as the check reports it.
SCOPES: dict[str, tuple[str, list[str]]] = {
    "com.atproto.appPass": (
        "Connecté avec un mot de passe d'application : Crieur peut publier et retirer des publications, "
        "sans accès aux messages privés ni aux réglages du compte.",
        ["publier", "retirer ses publications"],
    ),
    "com.atproto.appPassPrivileged": (
        "Connecté avec un mot de passe d'application qui ouvre aussi les messages privés : Crieur n'en a "
        "pas besoin, un mot de passe d'application sans cette option suffit.",
        ["publier", "retirer ses publications", "messages privés"],
    ),
    "com.atproto.access": (
        "Connecté avec le mot de passe principal, qui ouvre tout le compte : créez plutôt un mot de passe "
        f"d'application pour Crieur ({APP_PASSWORDS_PAGE}).",
        ["publier", "retirer ses publications", "tout le compte"],
    ),
}


class BlueskySettings(ChannelSettings):
    handle: str = Field(description="L'identifiant du compte, par exemple mairie.bsky.social.")
    pds_url: AnyUrl = Field(default=AnyUrl(DEFAULT_PDS), description="Le serveur du compte (PDS).")

    _https = field_validator("pds_url")(check_target_url)

    @field_validator("handle")
    @classmethod
    def _handle(cls, handle: str) -> str:
        handle = handle.removeprefix("@").lower()
        if len(handle) > 253 or not HANDLE.fullmatch(handle):
            raise ValueError("L'identifiant Bluesky doit ressembler à mairie.bsky.social (sans @ ni espace).")
        return handle

    @property
    def base(self) -> str:
        """The PDS; CRIEUR_BLUESKY_BASE_URL wins when set (the local sandbox)."""
        return provider_base_url("BLUESKY", str(self.pds_url))


class BlueskyCredentials(ChannelCredentials):
    app_password: str = Field(min_length=1)


@dataclass(frozen=True)
class _Session:
    did: str
    handle: str
    access: str
    refresh: str
    password: str
    """SHA-256 of the app password the session was opened with: a new password opens a new session."""


_sessions: dict[tuple[str, str], _Session] = {}
_sessions_lock = threading.Lock()


def delivery_tid(delivery_id: str) -> str:
    """The record key of the delivery's post: a TID (13 base32-sortable characters) only this id gives.

    A TID holds 53 bits of microseconds since 1970 then a 10-bit clock id. Its time is the publication's
    creation when the id carries the publication's ULID (`pub_<ULID>-bluesky`), so that the key sorts with
    the account's other posts (listRecords orders by key); the rest comes from a hash of the whole id.
    """
    digest = int.from_bytes(hashlib.sha256(delivery_id.encode()).digest()[:8], "big")
    found = ULID_IN_ID.search(delivery_id)
    if found:
        millis = 0
        for char in found.group()[:10]:
            millis = millis * 32 + CROCKFORD.index(char)
        micros = millis * 1000 + digest % 1000
    else:
        micros = (digest >> 10) & ((1 << 53) - 1)
    value = (micros << 10) | (digest & 0x3FF)
    return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def _xrpc_error(refused: ChannelError) -> str:
    """The XRPC error's name: `provider_message` keeps the `error` of {"error": "ExpiredToken", "message": …}
    (alone, or followed by ": message")."""
    return (refused.provider_message or "").split(":", 1)[0].strip()


def _scope(token: str) -> str | None:
    """The `scope` claim of a session token (a JWT; read, not verified: the PDS does that)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    scope = claims.get("scope") if isinstance(claims, dict) else None
    return scope if isinstance(scope, str) else None


class BlueskyChannel(PostChannel[BlueskySettings, BlueskyCredentials]):
    name: ClassVar = "bluesky"
    label: ClassVar = "Bluesky"
    settings_model: ClassVar = BlueskySettings
    credentials_model: ClassVar = BlueskyCredentials

    def max_length(self) -> int:
        return MAX_GRAPHEMES

    def measure(self, text: str) -> int:
        return bluesky_length(text)

    # -- render ------------------------------------------------------------------------------------------

    def render(self, publication: Publication) -> RenderedPost:
        override = publication.overrides.get("bluesky")
        text = compose(
            publication, MAX_GRAPHEMES, self.measure, override=override.text if override else None, hashtag=True
        )
        decisions, images = self._media(publication)
        record: dict[str, Any] = {"$type": POST, "text": text, "langs": ["fr"]}
        found = facets(text)
        if found:
            record["facets"] = found
        card = None if images else _link_card(publication, text)
        if card is not None:
            record["embed"] = card
        return RenderedPost(
            text=text,
            length=self.measure(text),
            limit=MAX_GRAPHEMES,
            media=decisions,
            warnings=[
                f"{decision.url} : {decision.reason}" for decision in decisions if decision.kept and decision.reason
            ],
            payload={"record": record, "images": images},
        )

    def _media(self, publication: Publication) -> tuple[list[MediaDecision], list[dict[str, Any]]]:
        """Which media Bluesky takes (up to 4 images) and why the others are left out."""
        decisions: list[MediaDecision] = []
        images: list[dict[str, Any]] = []
        for medium in publication.media:
            decision = MediaDecision(url=str(medium.url), alt=medium.alt, kept=False)
            decisions.append(decision)
            if medium.kind == "video":
                decision.reason = "Crieur n'envoie pas de vidéo sur Bluesky : seules les images y sont publiées."
                continue
            if len(images) == MAX_IMAGES:
                decision.reason = f"Bluesky accepte au plus {MAX_IMAGES} images par publication."
                continue
            try:
                fetched = self._fetch(medium)
            except MediaUnavailable as unavailable:
                decision.reason = unavailable.reason
                continue
            decision.kept = True
            if fetched.size > MAX_IMAGE_BYTES:
                weight = f"{fetched.size / 1_000_000:.1f}".replace(".", ",")
                decision.reason = (
                    f"L'image pèse {weight} Mo : elle sera recompressée en JPEG sous 1 Mo, "
                    "la limite de Bluesky (1 000 000 octets)."
                )
            images.append(medium.model_dump(mode="json"))
        return decisions, images

    def _fetch(self, medium: Media) -> FetchedMedia:
        """The medium's bytes; raises MediaUnavailable when it cannot be used, transient as a channel error."""
        try:
            return self.media.fetch(medium)
        except MediaUnavailable as unavailable:
            if unavailable.transient:
                raise TransientChannelError("media_unavailable", unavailable.reason) from unavailable
            raise

    # -- send ----------------------------------------------------------------------------------------------

    def send(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost:
        """Posts the record under the delivery's own key (see the module docstring for idempotency)."""
        record = dict(rendered.payload["record"])
        images = [self._upload(Media.model_validate(image)) for image in rendered.payload["images"]]
        if images:
            record["embed"] = {"$type": "app.bsky.embed.images", "images": images}
        record["createdAt"] = utc_now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        session = self._session()
        rkey = delivery_tid(delivery_id)
        body = {"repo": session.did, "collection": POST, "rkey": rkey, "record": record}
        try:
            created = self._call("POST", "com.atproto.repo.createRecord", json=body).json()
        except ChannelError as failed:
            if failed.code in NOTHING_WRITTEN:
                raise
            with lookup_failures(self.label):
                existing = self._existing(session.did, rkey)
            if existing is None:
                raise
            created = existing
        return SentPost(external_id=str(created["uri"]), url=f"{APP_URL}/profile/{session.handle}/post/{rkey}")

    def find_sent(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost | None:
        """The record at the delivery's own key (com.atproto.repo.getRecord): only an attempt of this delivery
        writes there. None when the PDS answers RecordNotFound; any other failure is a TransientChannelError."""
        rkey = delivery_tid(delivery_id)
        with lookup_failures(self.label):
            session = self._session()
            existing = self._existing(session.did, rkey)
        if existing is None:
            return None
        return SentPost(external_id=str(existing["uri"]), url=f"{APP_URL}/profile/{session.handle}/post/{rkey}")

    def _upload(self, medium: Media) -> dict[str, Any]:
        """One image of app.bsky.embed.images: the uploaded blob, its alt text and its aspect ratio."""
        try:
            fetched = self._fetch(medium)
        except MediaUnavailable as unavailable:
            raise PermanentChannelError("media_unavailable", unavailable.reason) from unavailable
        content, mime, size = fetched.content, fetched.mime, (fetched.width, fetched.height)
        if len(content) > MAX_IMAGE_BYTES:
            content, mime = shrink_jpeg(content, MAX_IMAGE_BYTES), "image/jpeg"
            size = dimensions(content) or size
        response = self._call("POST", "com.atproto.repo.uploadBlob", content=content, headers={"Content-Type": mime})
        image: dict[str, Any] = {"alt": medium.alt, "image": response.json()["blob"]}
        width, height = size
        if width and height:
            image["aspectRatio"] = {"width": width, "height": height}
        return image

    def _existing(self, did: str, rkey: str) -> dict[str, Any] | None:
        """The post at the delivery's key when an earlier attempt made it, None on RecordNotFound; any other
        failure is raised (getRecord needs no session)."""
        request = self.http.build_request(
            "GET",
            f"{self.settings.base}/xrpc/com.atproto.repo.getRecord",
            params={"repo": did, "collection": POST, "rkey": rkey},
        )
        try:
            found: dict[str, Any] = call_provider(self.http, self.label, request).json()
        except PermanentChannelError as refused:
            if _xrpc_error(refused) == "RecordNotFound":
                return None
            raise
        return found

    # -- delete and check ---------------------------------------------------------------------------------

    def delete(self, external_id: str) -> None:
        """com.atproto.repo.deleteRecord, which succeeds whether or not the record still exists."""
        match = AT_URI.fullmatch(external_id)
        if match is None:
            raise PermanentChannelError(
                "invalid_external_id", f"Identifiant de publication Bluesky inattendu : {external_id}."
            )
        repo, collection, rkey = match.groups()
        self._call("POST", "com.atproto.repo.deleteRecord", json={"repo": repo, "collection": collection, "rkey": rkey})

    def check(self) -> ChannelCheck:
        """A session (createSession when none is cached) and com.atproto.server.getSession."""
        account = self._call("GET", "com.atproto.server.getSession").json()
        message, permissions = SCOPES.get(
            _scope(self._session().access) or "",
            ("Connecté : Crieur peut publier et retirer des publications.", ["publier", "retirer ses publications"]),
        )
        return ChannelCheck(
            ok=True, account=f"@{account.get('handle', self.settings.handle)}", message=message, permissions=permissions
        )

    # -- sessions ------------------------------------------------------------------------------------------

    def _call(self, method: str, nsid: str, **request: Any) -> httpx.Response:
        """One XRPC call with the session's access token; on ExpiredToken the session is renewed and the
        call made once more."""
        session = self._session()
        try:
            return self._call_as(session, method, nsid, **request)
        except PermanentChannelError as refused:
            if _xrpc_error(refused) not in TOKEN_ERRORS:
                raise
        renewed = self._renew(session)
        try:
            return self._call_as(renewed, method, nsid, **request)
        except PermanentChannelError as refused:
            if _xrpc_error(refused) in TOKEN_ERRORS:
                self._forget()
                raise PermanentChannelError(
                    "needs_reconnect",
                    "Reconnectez le compte Bluesky : il refuse la session que Crieur vient d'ouvrir.",
                    refused.provider_message,
                    refused.http_status,
                ) from refused
            raise

    def _call_as(self, session: _Session, method: str, nsid: str, **request: Any) -> httpx.Response:
        headers = {**request.pop("headers", {}), "Authorization": f"Bearer {session.access}"}
        built = self.http.build_request(method, f"{self.settings.base}/xrpc/{nsid}", headers=headers, **request)
        return call_provider(self.http, self.label, built)

    @property
    def _key(self) -> tuple[str, str]:
        return self.settings.base, self.settings.handle

    def _password(self) -> str:
        return hashlib.sha256(self.credentials.app_password.encode()).hexdigest()

    def _session(self) -> _Session:
        with _sessions_lock:
            cached = _sessions.get(self._key)
        if cached is not None and cached.password == self._password():
            return cached
        return self._create_session()

    def _create_session(self) -> _Session:
        body = {"identifier": self.settings.handle, "password": self.credentials.app_password}
        request = self.http.build_request(
            "POST", f"{self.settings.base}/xrpc/com.atproto.server.createSession", json=body
        )
        try:
            opened = call_provider(self.http, self.label, request).json()
        except PermanentChannelError as refused:
            self._forget()
            name = _xrpc_error(refused)
            if name in LOGIN_REFUSALS:
                code, message = LOGIN_REFUSALS[name]
            elif refused.http_status == 401 or name in ("AuthenticationRequired", "InvalidToken"):
                code, message = "needs_reconnect", REVOKED
            else:
                raise
            raise PermanentChannelError(code, message, refused.provider_message, refused.http_status) from refused
        return self._remember(opened, self._password())

    def _renew(self, session: _Session) -> _Session:
        """refreshSession; when the refresh token has expired or was revoked too, a new session."""
        request = self.http.build_request(
            "POST",
            f"{self.settings.base}/xrpc/com.atproto.server.refreshSession",
            headers={"Authorization": f"Bearer {session.refresh}"},
        )
        try:
            refreshed = call_provider(self.http, self.label, request).json()
        except PermanentChannelError:
            self._forget()
            return self._create_session()
        return self._remember(refreshed, session.password)

    def _remember(self, answer: dict[str, Any], password: str) -> _Session:
        session = _Session(
            did=str(answer["did"]),
            handle=str(answer.get("handle") or self.settings.handle),
            access=str(answer["accessJwt"]),
            refresh=str(answer["refreshJwt"]),
            password=password,
        )
        with _sessions_lock:
            _sessions[self._key] = session
        return session

    def _forget(self) -> None:
        with _sessions_lock:
            _sessions.pop(self._key, None)


def _link_card(publication: Publication, text: str) -> dict[str, Any] | None:
    """app.bsky.embed.external for the publication's first link (else the text's first URL), with no image."""
    if publication.links:
        link = publication.links[0]
        uri, title = str(link.url), link.label or publication.title
    else:
        spans = url_spans(text)
        if not spans:
            return None
        start, end = spans[0]
        uri, title = text[start:end], publication.title
    return {"$type": "app.bsky.embed.external", "external": {"uri": uri, "title": title, "description": ""}}
