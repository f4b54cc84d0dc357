"""X channel: POST /2/tweets signed with OAuth 1.0a (user context), images through the v2 media upload.

Idempotency: X takes no idempotency key. `find_sent` reads the account's posts since the publication was
created (GET /2/users/me, cached per container, then GET /2/users/:id/tweets with start_time, newest first,
at most LOOKUP_PAGES pages of 100) and answers with the one that carries the rendered text (compared as
`same_text` undoes X's rewriting). `send` makes the same lookup before posting, as a precaution that
does not block the post when X will not answer it. X also refuses a post identical to a recent one (403
"duplicate content"): `send` then looks again and answers with the post it finds; only a text that no post
since the publication carries is a permanent refusal. Remaining risks: a post that X has accepted but does
not list yet (the read lags the write) whose retry X does not flag as a duplicate would be posted twice;
an identical text posted by hand on the account since the publication is taken for Crieur's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import io
import secrets
import time
import urllib.parse
from collections.abc import Iterable
from datetime import UTC, timedelta
from typing import Annotated, Any, ClassVar

import httpx
from pydantic import StringConstraints

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
    call_provider,
    provider_base_url,
)
from crieur.channels.lookup import CLOCK_MARGIN_SECONDS, LOOKUP_PAGES, lookup_failures
from crieur.media import FetchedMedia
from crieur.models import Media, Publication
from crieur.render.text import compose, truncate
from crieur.render.x import INVALID_CHARACTERS, MAX_LENGTH, url_spans, weighted_length

DEFAULT_BASE_URL = "https://api.x.com"
POST_URL = "https://x.com/i/web/status/{id}"
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_ALT_TEXT = 1000
LOOKUP_SIZE = 100
"""Posts per page of the lookup (X's most)."""
DUPLICATE = "duplicate content"
RECONNECT = "Reconnectez le compte X : les jetons ne sont plus valides."
WRITE_ACCESS = (
    "L'application X n'a que le droit de lecture : donnez-lui le droit « Read and write » dans le portail "
    "développeur X, régénérez les jetons d'accès, puis reconnectez le compte."
)
_user_ids: dict[str, tuple[str, str]] = {}
"""Per container: access token → (user id, @username), so the idempotency lookup reads /2/users/me once."""

NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


# ------------------------------------------------------------------------------------------- OAuth 1.0a


def percent_encode(value: str) -> str:
    """RFC 5849 §3.6: UTF-8, then every byte but ALPHA, DIGIT, "-", ".", "_" and "~" as %XX."""
    return urllib.parse.quote(value, safe="")


def signature_base_string(method: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """RFC 5849 §3.4.1: the method, the base string URI, and the query's and `params` normalised.

    A JSON or multipart body is not signed: only the query, form-encoded body parameters and oauth_*.
    """
    split = urllib.parse.urlsplit(url)
    scheme, host, port = split.scheme.lower(), (split.hostname or "").lower(), split.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    pairs = sorted(
        (percent_encode(name), percent_encode(value))
        for name, value in [*urllib.parse.parse_qsl(split.query, keep_blank_values=True), *params]
    )
    normalized = "&".join(f"{name}={value}" for name, value in pairs)
    return "&".join(percent_encode(part) for part in (method.upper(), f"{scheme}://{netloc}{split.path}", normalized))


def hmac_sha1_signature(base_string: str, consumer_secret: str, token_secret: str) -> str:
    key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}"
    return base64.b64encode(hmac.new(key.encode(), base_string.encode(), hashlib.sha1).digest()).decode()


def authorization_header(
    method: str,
    url: str,
    credentials: XCredentials,
    *,
    form: Iterable[tuple[str, str]] = (),
    nonce: str | None = None,
    timestamp: int | None = None,
) -> str:
    """The `Authorization: OAuth …` header of one request (HMAC-SHA1, RFC 5849 §3.5.1)."""
    oauth = {
        "oauth_consumer_key": credentials.consumer_key,
        "oauth_nonce": nonce or secrets.token_hex(16),
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "oauth_token": credentials.access_token,
        "oauth_version": "1.0",
    }
    base_string = signature_base_string(method, url, [*form, *oauth.items()])
    oauth["oauth_signature"] = hmac_sha1_signature(
        base_string, credentials.consumer_secret, credentials.access_token_secret
    )
    return "OAuth " + ", ".join(
        f'{percent_encode(name)}="{percent_encode(value)}"' for name, value in sorted(oauth.items())
    )


# ------------------------------------------------------------------------------------------- the channel


class XSettings(ChannelSettings):
    """X needs no settings: the account is the one the tokens belong to."""


class XCredentials(ChannelCredentials):
    consumer_key: NonBlank
    consumer_secret: NonBlank
    access_token: NonBlank
    access_token_secret: NonBlank


def same_text(shown: str, posted: str, *, has_media: bool) -> bool:
    """Whether a post as X returns it carries `posted`.

    X rewrites what it stores: every URL becomes a t.co link, &, < and > come back as HTML entities, and
    a post with media ends with one more t.co link (the media's). Both texts are compared with each URL
    reduced to a placeholder and that last link dropped.
    """

    def canonical(text: str, drop_last_link: bool) -> str:
        text = html.unescape(text).strip()
        spans = url_spans(text)
        if drop_last_link and spans and spans[-1][1] == len(text):
            text, spans = text[: spans[-1][0]].rstrip(), spans[:-1]
        for start, end in reversed(spans):
            text = f"{text[:start]}\x00{text[end:]}"
        return text

    return canonical(shown, has_media) == canonical(posted, False)


def _since(publication: Publication) -> str:
    """X's start_time for the lookup: the publication's creation, less the clock margin."""
    since = publication.created_at.astimezone(UTC) - timedelta(seconds=CLOCK_MARGIN_SECONDS)
    return since.strftime("%Y-%m-%dT%H:%M:%SZ")


def _animated(image: FetchedMedia) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(image.content)) as opened:
        return bool(getattr(opened, "is_animated", False))


class XChannel(PostChannel[XSettings, XCredentials]):
    name: ClassVar = "x"
    label: ClassVar = "X"
    settings_model: ClassVar = XSettings
    credentials_model: ClassVar = XCredentials

    def max_length(self) -> int:
        return MAX_LENGTH

    def measure(self, text: str) -> int:
        return weighted_length(text)

    # -- render ---------------------------------------------------------------------------------------

    def render(self, publication: Publication) -> RenderedPost:
        """Title, body, links (X draws a card from the first one) and the hashtag, within 280 as X counts.

        Up to 4 images (JPEG, PNG, GIF, WebP; 5 MB each), each with its alt text; videos and animated
        images are not sent yet, and say so.
        """
        override = publication.overrides.get("x")
        text = compose(
            publication, MAX_LENGTH, self.measure, override=override.text if override else None, hashtag=True
        )
        text = INVALID_CHARACTERS.sub("", text)
        decisions: list[MediaDecision] = []
        warnings: list[str] = []
        kept: list[dict[str, str]] = []
        for media in publication.media:
            reason = self._refusal(media, len(kept))
            if reason is not None:
                decisions.append(MediaDecision(url=str(media.url), alt=media.alt, kept=False, reason=reason))
                continue
            alt = truncate(media.alt, MAX_ALT_TEXT, len)
            if alt != media.alt:
                warnings.append(
                    f"Le texte alternatif de {media.url} a été raccourci à {MAX_ALT_TEXT} caractères, la limite de X."
                )
            decisions.append(MediaDecision(url=str(media.url), alt=alt, kept=True))
            kept.append({"url": str(media.url), "alt": alt})
        return RenderedPost(
            text=text,
            length=self.measure(text),
            limit=MAX_LENGTH,
            media=decisions,
            warnings=warnings,
            payload={"text": text, "media": kept, "since": _since(publication)},
        )

    def _refusal(self, media: Media, kept: int) -> str | None:
        """Why X will not carry this medium, in French; None when it will."""
        if media.kind == "video":
            return "Les vidéos ne sont pas encore envoyées sur X par Crieur : la publication part sans elle."
        if kept >= MAX_IMAGES:
            return f"X accepte au plus {MAX_IMAGES} images par publication : celle-ci n'est pas jointe."
        try:
            image = self.fetch_media(media)
        except PermanentChannelError as unavailable:
            return unavailable.message
        if image.size > MAX_IMAGE_BYTES:
            megabytes = image.size / (1024 * 1024)
            return f"L'image pèse {megabytes:.1f} Mo ; X n'accepte que 5 Mo au plus : elle n'est pas jointe."
        if image.mime in ("image/gif", "image/webp") and _animated(image):
            return "Les images animées ne sont pas encore envoyées sur X par Crieur : celle-ci n'est pas jointe."
        return None

    # -- HTTP ---------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **request: Any) -> httpx.Response:
        """One signed request to X; failures classified as every channel does, then X's own cases."""
        built = self.http.build_request(method, f"{provider_base_url('X', DEFAULT_BASE_URL)}{path}", **request)
        built.headers["Authorization"] = authorization_header(method, str(built.url), self.credentials)
        try:
            return call_provider(self.http, self.label, built)
        except PermanentChannelError as refused:
            raise _refined(refused) from refused

    def _account(self) -> tuple[str, str]:
        """(user id, @username) of the tokens' account."""
        token = self.credentials.access_token
        if token not in _user_ids:
            user = self._call("GET", "/2/users/me").json()["data"]
            _user_ids[token] = (str(user["id"]), f"@{user['username']}")
        return _user_ids[token]

    # -- send, delete, check ------------------------------------------------------------------------------

    def send(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost:
        text: str = rendered.payload["text"]
        images: list[dict[str, str]] = rendered.payload["media"]
        try:
            already = self._posted_since(rendered.payload)
        except ChannelError as failed:  # a precaution only: X's own duplicate check still stands
            if failed.code == "needs_reconnect":
                raise
            already = None
        if already is not None:
            return already
        body: dict[str, Any] = {"text": text}
        if images:
            body["media"] = {"media_ids": [self._upload(image) for image in images]}
        try:
            post = self._call("POST", "/2/tweets", json=body).json()["data"]
        except PermanentChannelError as refused:
            if refused.code != "duplicate":
                raise
            found = self.find_sent(rendered, delivery_id=delivery_id)
            if found is None:
                raise
            return found
        return SentPost(external_id=str(post["id"]), url=POST_URL.format(id=post["id"]))

    def find_sent(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost | None:
        """The account's post since the publication was created that carries the rendered text (see the module
        docstring); a lookup X does not answer is a TransientChannelError."""
        with lookup_failures(self.label):
            return self._posted_since(rendered.payload)

    def _posted_since(self, payload: dict[str, Any]) -> SentPost | None:
        text: str = payload["text"]
        user_id, _ = self._account()
        params: dict[str, Any] = {
            "max_results": LOOKUP_SIZE,
            "start_time": payload["since"],
            "exclude": "replies,retweets",
            "tweet.fields": "created_at,attachments",
        }
        for _ in range(LOOKUP_PAGES):
            page = self._call("GET", f"/2/users/{user_id}/tweets", params=params).json()
            for post in page.get("data", []):
                has_media = bool(post.get("attachments", {}).get("media_keys"))
                if same_text(post["text"], text, has_media=has_media):
                    return SentPost(external_id=str(post["id"]), url=POST_URL.format(id=post["id"]))
            next_token = page.get("meta", {}).get("next_token")
            if not next_token:
                break
            params["pagination_token"] = next_token
        return None

    def _upload(self, image: dict[str, str]) -> str:
        """Simple upload of one image (POST /2/media/upload), then its alt text (POST /2/media/metadata)."""
        fetched = self.fetch_media(Media.model_validate(image))
        extension = fetched.mime.removeprefix("image/")
        uploaded = self._call(
            "POST",
            "/2/media/upload",
            files={"media": (f"image.{extension}", fetched.content, fetched.mime)},
            data={"media_category": "tweet_image", "media_type": fetched.mime},
        ).json()["data"]
        media_id = str(uploaded["id"])
        self._call("POST", "/2/media/metadata", json={"id": media_id, "metadata": {"alt_text": {"text": image["alt"]}}})
        return media_id

    def delete(self, external_id: str) -> None:
        """DELETE /2/tweets/:id. A post already gone (404, or `deleted: false`) counts as deleted."""
        try:
            self._call("DELETE", f"/2/tweets/{external_id}")
        except PermanentChannelError as refused:
            if refused.http_status != 404:
                raise

    def check(self) -> ChannelCheck:
        """GET /2/users/me; the x-access-level header says whether the tokens may post."""
        try:
            response = self._call("GET", "/2/users/me")
        except ChannelError as refused:
            return ChannelCheck(ok=False, message=refused.message)
        account = f"@{response.json()['data']['username']}"
        level = response.headers.get("x-access-level", "")
        if level == "read":
            return ChannelCheck(ok=False, account=account, message=WRITE_ACCESS, permissions=["lecture"])
        return ChannelCheck(
            ok=True,
            account=account,
            message=f"Le compte X {account} est joignable et les jetons permettent d'y publier.",
            permissions=["lecture", "publication"] if "write" in level else [],
        )


def _refined(refused: PermanentChannelError) -> PermanentChannelError:
    """X's reasons for a refusal, in words the mairie can act on."""
    status, detail = refused.http_status, refused.provider_message or ""
    if status == 401:
        return PermanentChannelError("needs_reconnect", RECONNECT, detail, status)
    if status == 403:
        return _forbidden(detail)
    if status == 400:
        return PermanentChannelError("rejected", f"X a refusé la publication : {detail}", detail, status)
    return refused


def _forbidden(detail: str) -> PermanentChannelError:
    """X's 403s: a duplicate, an application without the write permission, a suspended account, or else."""
    lowered = detail.lower()
    if DUPLICATE in lowered:
        code, message = (
            "duplicate",
            "X refuse ce texte : il est identique à une publication récente du compte. Modifiez-le (par exemple "
            "avec un texte propre à X) puis relancez l'envoi.",
        )
    elif "oauth1" in lowered and "permission" in lowered:
        code, message = "needs_reconnect", WRITE_ACCESS
    elif "suspended" in lowered:
        code, message = (
            "forbidden",
            "X a suspendu ou restreint le compte : réglez la situation sur x.com, puis relancez l'envoi.",
        )
    else:
        code, message = (
            "forbidden",
            f"X refuse cette action (erreur 403 : {detail}). Vérifiez l'état du compte sur x.com et les droits "
            "de l'application X.",
        )
    return PermanentChannelError(code, message, detail, 403)
