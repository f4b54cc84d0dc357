"""What an inbound webhook may carry, mapped to an ordinary publication request.

Two shapes, told apart by their fields:

- Crieur's own publication schema (`title` a string and `body`): taken as is, validated like the API.
- A WordPress "post published" payload: either the REST API's post object (`title.rendered`,
  `content.rendered`, `excerpt.rendered`, `link`, `_embedded["wp:featuredmedia"]`), or the `WP_Post`
  fields that webhook plugins send (`post_title`, `post_content`, `post_excerpt`, possibly under `post`,
  with `post_permalink` and `post_thumbnail` or `featured_image` beside it).

The WordPress content is HTML: it becomes plain text with its paragraphs, without scripts or styles.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import ValidationError

from crieur.errors import InvalidInput
from crieur.inbound.html import clip, html_to_text, inline_text
from crieur.models import PublicationRequest
from crieur.problems import field_errors

TITLE_MAX = 140
BODY_MAX = 10_000
ALT_MAX = 1500
LINK_LABEL = "Lire l'article sur le site"

_SHORTCODE = re.compile(r"\[/?[a-z][a-z0-9_-]*(?:\s[^\[\]]*)?/?\]")
"""`[gallery ids="1,2"]`, `[/caption]`: WordPress expands them when it renders, raw post_content has them."""

Shape = Literal["crieur", "wordpress"]


def detect(payload: Any) -> Shape | None:
    if not isinstance(payload, dict):
        return None
    if isinstance(payload.get("title"), str) and "body" in payload:
        return "crieur"
    return "wordpress" if _post(payload) is not None else None


def publication_request(body: bytes) -> PublicationRequest:
    """The publication a webhook body asks for; 422 naming the faulty field otherwise."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as invalid:
        raise InvalidInput([("body", f"JSON invalide : {invalid}.")]) from invalid
    shape = detect(payload)
    if shape is None:
        raise InvalidInput(
            [
                (
                    "body",
                    "Format non reconnu : envoyez une publication Crieur (title, body…) ou l'article WordPress "
                    "publié (title.rendered ou post_title, content.rendered ou post_content…).",
                )
            ]
        )
    fields = payload if shape == "crieur" else from_wordpress(payload)
    try:
        return PublicationRequest.model_validate(fields)
    except ValidationError as invalid:
        raise InvalidInput(field_errors(invalid.errors())) from invalid


# --- WordPress --------------------------------------------------------------------------------------------


def _post(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The post object, at the top or where plugins nest it."""
    for candidate in (payload, payload.get("post"), payload.get("data")):
        if isinstance(candidate, dict) and (
            isinstance(candidate.get("post_title"), str) or isinstance(_rendered_field(candidate, "title"), str)
        ):
            return candidate
    return None


def _rendered_field(post: dict[str, Any], name: str) -> str | None:
    value = post.get(name)
    if isinstance(value, dict):
        rendered = value.get("rendered")
        return rendered if isinstance(rendered, str) else None
    return None


def _string(*candidates: Any) -> str | None:
    for candidate in candidates:
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


def _protected(post: dict[str, Any], name: str) -> bool:
    value = post.get(name)
    return isinstance(value, dict) and value.get("protected") is True


def from_wordpress(payload: dict[str, Any]) -> dict[str, Any]:
    """The fields of a publication request (not yet validated) from a WordPress post."""
    post = _post(payload)
    if post is None:
        raise InvalidInput([("body", "Aucun article WordPress dans ce message.")])
    status = _string(post.get("status"), post.get("post_status"))
    if status is not None and status != "publish":
        raise InvalidInput(
            [("status", f"Seul un article publié (« publish ») est diffusé ; celui-ci est « {status} ».")]
        )
    raw = _rendered_field(post, "title") is None  # WP_Post fields: unrendered content
    title = inline_text(_string(_rendered_field(post, "title"), post.get("post_title")) or "")
    fields: dict[str, Any] = {"title": clip(title, TITLE_MAX), "body": _body(post, raw)}
    link = _string(post.get("link"), payload.get("post_permalink"), post.get("permalink"), payload.get("permalink"))
    if link:
        fields["links"] = [{"url": link, "label": LINK_LABEL}]
    image = _featured_image(payload, post)
    if image:
        fields["media"] = [image]
    return fields


def _body(post: dict[str, Any], raw: bool) -> str:
    """The content as text; the excerpt when the content is protected, empty or too long for one publication."""
    password = _string(post.get("post_password")) is not None
    content_html = (
        None
        if password or _protected(post, "content")
        else _string(_rendered_field(post, "content"), post.get("post_content"))
    )
    excerpt_html = (
        None
        if password or _protected(post, "excerpt")
        else _string(_rendered_field(post, "excerpt"), post.get("post_excerpt"))
    )
    content = _text(content_html, raw)
    excerpt = _text(excerpt_html, raw)
    if content and (len(content) <= BODY_MAX or not excerpt):
        return clip(content, BODY_MAX)
    if excerpt:
        return clip(excerpt, BODY_MAX)
    raise InvalidInput(
        [
            (
                "body",
                "L'article n'a ni contenu ni extrait diffusables (vide ou protégé par un mot de passe).",
            )
        ]
    )


def _text(html: str | None, raw: bool) -> str:
    if not html:
        return ""
    return html_to_text(_SHORTCODE.sub("", html) if raw else html)


def _featured_image(payload: dict[str, Any], post: dict[str, Any]) -> dict[str, str] | None:
    """The featured image with its alternative text; an image without one is left out (never posted blind)."""
    url: str | None = None
    alt: str | None = None
    embedded = post.get("_embedded")
    featured = embedded.get("wp:featuredmedia") if isinstance(embedded, dict) else None
    if isinstance(featured, list) and featured and isinstance(featured[0], dict):
        media = featured[0]
        if media.get("media_type", "image") == "image":
            url = _string(media.get("source_url"))
            caption = _rendered_field(media, "caption")
            alt = _string(media.get("alt_text"), inline_text(caption) if caption else None)
    for holder in (post, payload):
        if url:
            break
        image = holder.get("featured_image")
        if isinstance(image, dict):
            url = _string(image.get("url"), image.get("source_url"), image.get("src"))
            alt = _string(image.get("alt"), image.get("alt_text"))
        else:
            url = _string(image, holder.get("post_thumbnail"), holder.get("featured_media_src_url"))
            alt = _string(holder.get("featured_image_alt"), holder.get("post_thumbnail_alt"))
    if not url or not alt:
        return None
    return {"url": url, "alt": clip(inline_text(alt), ALT_MAX), "kind": "image"}
