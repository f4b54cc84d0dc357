"""WordPress channel: an article on the commune's own site through the REST API (wp-json/wp/v2).

Authentication is HTTP Basic with the username and an Application Password (WordPress ≥ 5.6). The
article's body is the publication as escaped HTML paragraphs, never raw HTML from the publication.
"""

from __future__ import annotations

import base64
import html
import re
import sys
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
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
    SentPost,
    call_provider,
)
from crieur.channels.lookup import lookup_failures
from crieur.channels.webhook import check_target_url
from crieur.models import Category, Media, Publication
from crieur.render.text import compose, nfc, truncate, url_spans

MAX_IMAGE_BYTES = 8 * 1024 * 1024
IMAGE_TYPES: dict[str, str] = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
EXCERPT_LENGTH = 300
CATEGORIES: dict[Category, str] = {
    "news": "Actualités",
    "event": "Agenda",
    "works": "Travaux",
    "alert": "Alertes",
    "weather": "Météo",
    "council": "Conseil municipal",
    "other": "Autres",
}
RECONNECT = "Reconnectez le site WordPress : le mot de passe d'application a été révoqué ou l'identifiant est faux."
ROLE_NEEDED = (
    "Le compte WordPress n'a pas le droit de publier des articles : donnez-lui le rôle Auteur, Éditeur ou "
    "Administrateur, ou indiquez un autre compte."
)
VIDEO_REASON = "Vidéo : Crieur ne publie pas de vidéos sur WordPress."
ONE_IMAGE_REASON = "WordPress n'affiche qu'une image à la une par article : celle-ci n'est pas publiée."


class WordpressSettings(ChannelSettings):
    site_url: AnyUrl
    username: str

    _https = field_validator("site_url")(check_target_url)

    @property
    def api(self) -> str:
        return str(self.site_url).rstrip("/") + "/wp-json/wp/v2"


class WordpressCredentials(ChannelCredentials):
    application_password: str
    """As WordPress shows it (groups of four separated by spaces): kept exactly as typed."""


def slug_for(delivery_id: str) -> str:
    """The article's slug, the same on every retry of a delivery (WordPress keeps slugs unique)."""
    return "crieur-" + re.sub(r"[^a-z0-9-]+", "-", delivery_id.lower()).strip("-")


def _linked(text: str) -> str:
    """Plain text escaped, its URLs made links."""
    out, last = [], 0
    for start, end in url_spans(text):
        url = html.escape(text[start:end])
        out += [html.escape(text[last:start]), f'<a href="{url}">{url}</a>']
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


def paragraphs(text: str) -> str:
    """Plain text as HTML paragraphs: a blank line starts a paragraph, a single newline is a <br />."""
    blocks = [block.strip() for block in re.split(r"\n\s*\n", nfc(text).strip()) if block.strip()]
    return "\n".join("<p>" + "<br />\n".join(_linked(line) for line in block.splitlines()) + "</p>" for block in blocks)


def article_html(publication: Publication) -> str:
    """The body as paragraphs, then the links as a list of anchors."""
    body = paragraphs(publication.body)
    if not publication.links:
        return body
    items = "".join(
        f'<li><a href="{html.escape(str(link.url))}">{html.escape(link.label or str(link.url))}</a></li>'
        for link in publication.links
    )
    return f"{body}\n<ul>{items}</ul>"


def _code(error: ChannelError) -> str:
    """The WordPress error code ("rest_…") of a failed answer, or ""."""
    if error.response is None:
        return ""
    try:
        body = error.response.json()
    except ValueError:
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""


class WordpressChannel(PostChannel[WordpressSettings, WordpressCredentials]):
    """Publishes an article (title, HTML content, excerpt, category, featured image) on the commune's site.

    Idempotency: the slug is derived from the delivery id. Before creating, `send` looks for an article
    with that slug in any status (GET /posts?slug=…&status=any) and updates it instead, so a retry after a
    timeout or a crash finds the article the first attempt made rather than making a second one; the same
    lookup is `find_sent`, which the worker asks after an attempt of unknown outcome. An image
    uploaded by an attempt that failed before its article existed stays unattached in the media library
    (seen only by editors); the retry uploads it again.
    """

    name: ClassVar = "wordpress"
    label: ClassVar = "WordPress"
    settings_model: ClassVar = WordpressSettings
    credentials_model: ClassVar = WordpressCredentials

    # -- render ------------------------------------------------------------------------------------------

    def render(self, publication: Publication) -> RenderedPost:
        override = publication.overrides.get("wordpress")
        text = compose(publication, sys.maxsize, self.measure, override=override.text if override else None)
        content = paragraphs(override.text) if override else article_html(publication)
        decisions: list[MediaDecision] = []
        for medium in publication.media:
            reason = self._refusal(medium, any(decision.kept for decision in decisions))
            decisions.append(MediaDecision(url=str(medium.url), alt=medium.alt, kept=reason is None, reason=reason))
        payload: dict[str, Any] = {
            "title": nfc(publication.title),
            "content": content,
            "excerpt": truncate(nfc(publication.body), EXCERPT_LENGTH, self.measure),
            "status": "publish",
            "category": CATEGORIES[publication.category],
            "media": [{"url": decision.url, "alt": decision.alt} for decision in decisions if decision.kept],
        }
        if publication.publish_at is not None and publication.publish_at > datetime.now(UTC):
            payload["status"] = "future"
            payload["date_gmt"] = publication.publish_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return RenderedPost(text=text, length=self.measure(text), media=decisions, payload=payload)

    def _refusal(self, medium: Media, already_kept: bool) -> str | None:
        """Why this medium does not become the featured image, in French; None when it does."""
        if medium.kind == "video":
            return VIDEO_REASON
        if already_kept:
            return ONE_IMAGE_REASON
        try:
            fetched = self.fetch_media(medium)
        except PermanentChannelError as unavailable:
            return unavailable.message
        if fetched.mime not in IMAGE_TYPES:
            return f"{medium.url} n'est pas une image que WordPress accepte (JPEG, PNG, GIF ou WebP)."
        if fetched.size > MAX_IMAGE_BYTES:
            size = f"{fetched.size / (1024 * 1024):.1f}".replace(".", ",")
            return f"L'image {medium.url} pèse {size} Mo ; Crieur envoie au plus 8 Mo à WordPress : réduisez-la."
        return None

    # -- HTTP ----------------------------------------------------------------------------------------------

    def _authorization(self) -> dict[str, str]:
        pair = f"{self.settings.username}:{self.credentials.application_password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    def _call(self, method: str, path: str, **options: Any) -> httpx.Response:
        """One REST call, its failures refined from WordPress's {"code", "message", "data": {"status"}}."""
        headers = {**self._authorization(), **options.pop("headers", {})}
        request = self.http.build_request(method, f"{self.settings.api}{path}", headers=headers, **options)
        try:
            return call_provider(self.http, self.label, request)
        except PermanentChannelError as refused:
            if refused.http_status == 401:
                raise PermanentChannelError(
                    "needs_reconnect", RECONNECT, refused.provider_message, 401, response=refused.response
                ) from refused
            if refused.http_status == 403:
                code = _code(refused) or "forbidden"
                raise PermanentChannelError(
                    code, ROLE_NEEDED, refused.provider_message, 403, response=refused.response
                ) from refused
            raise

    # -- send ----------------------------------------------------------------------------------------------

    def send(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost:
        slug = slug_for(delivery_id)
        found = self._article(slug)
        body: dict[str, Any] = {
            key: rendered.payload[key] for key in ("title", "content", "excerpt", "status") if key in rendered.payload
        }
        if "date_gmt" in rendered.payload:
            body["date_gmt"] = rendered.payload["date_gmt"]
        body["slug"] = slug
        body["categories"] = [self._category(rendered.payload["category"])]
        media: list[dict[str, str]] = rendered.payload.get("media") or []
        if media and not (found and found.get("featured_media")):
            featured = self._upload(media[0])
            if featured is not None:
                body["featured_media"] = featured
        path = f"/posts/{found['id']}" if found else "/posts"
        post = self._call("POST", path, json=body).json()
        return SentPost(external_id=str(post["id"]), url=post.get("link"))

    def find_sent(self, rendered: RenderedPost, *, delivery_id: str) -> SentPost | None:
        """The article with the delivery's slug, in any status (only an attempt of this delivery makes it); a
        lookup WordPress does not answer is a TransientChannelError."""
        with lookup_failures(self.label):
            found = self._article(slug_for(delivery_id))
        return None if found is None else SentPost(external_id=str(found["id"]), url=found.get("link"))

    def _article(self, slug: str) -> dict[str, Any] | None:
        """The article with this slug in any status but trashed (GET /posts?slug=…&status=any), if any."""
        listed = self._call(
            "GET",
            "/posts",
            params={"slug": slug, "status": "any", "context": "edit", "_fields": "id,link,featured_media"},
        ).json()
        return listed[0] if isinstance(listed, list) and listed and isinstance(listed[0], dict) else None

    def _category(self, name: str) -> int:
        """The id of the category called `name`, created when the site has none."""
        listed = self._call("GET", "/categories", params={"search": name, "per_page": 100}).json()
        for category in listed if isinstance(listed, list) else []:
            if html.unescape(str(category.get("name", ""))).casefold() == name.casefold():
                return int(category["id"])
        try:
            return int(self._call("POST", "/categories", json={"name": name}).json()["id"])
        except PermanentChannelError as refused:
            if _code(refused) == "term_exists" and refused.response is not None:  # made meanwhile
                return int(refused.response.json()["data"]["term_id"])
            raise

    def _upload(self, item: dict[str, str]) -> int | None:
        """Uploads the image and sets its alt text; None when WordPress refuses the file (rest_upload_*)."""
        fetched = self.fetch_media(Media.model_validate({"url": item["url"], "alt": item["alt"], "kind": "image"}))
        headers = {
            "Content-Type": fetched.mime,
            "Content-Disposition": f'attachment; filename="crieur.{IMAGE_TYPES.get(fetched.mime, "bin")}"',
        }
        try:
            media_id = int(self._call("POST", "/media", content=fetched.content, headers=headers).json()["id"])
        except ChannelError as refused:
            if _code(refused).startswith("rest_upload_"):
                return None  # the article goes without its image rather than not at all
            raise
        self._call("POST", f"/media/{media_id}", json={"alt_text": item["alt"]})
        return media_id

    # -- delete and check ------------------------------------------------------------------------------------

    def delete(self, external_id: str) -> None:
        try:
            self._call("DELETE", f"/posts/{external_id}", params={"force": "true"})
        except PermanentChannelError as refused:
            if refused.http_status not in (404, 410):  # already deleted: done
                raise

    def check(self) -> ChannelCheck:
        user = self._call("GET", "/users/me", params={"context": "edit"}).json()
        capabilities = user.get("capabilities") or {}
        permissions = [
            label
            for capability, label in (("publish_posts", "publication"), ("upload_files", "envoi d'images"))
            if capabilities.get(capability)
        ]
        account = str(user.get("name") or user.get("slug") or self.settings.username)
        if not capabilities.get("publish_posts"):
            return ChannelCheck(ok=False, account=account, message=ROLE_NEEDED, permissions=permissions)
        return ChannelCheck(
            ok=True,
            account=account,
            message="Le site WordPress est joignable et ce compte peut publier.",
            permissions=permissions,
        )
