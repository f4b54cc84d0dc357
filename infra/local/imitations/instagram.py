"""The Instagram content publishing API, imitated under `/instagram` (CRIEUR_INSTAGRAM_BASE_URL).

Paths take an optional Graph version (`/v25.0/…`); the token comes as `Authorization: Bearer …` or an
`access_token` parameter; parameters as JSON, form or query string, as Graph reads them.

- `GET /me`, `GET /{ig-user-id}?fields=id,user_id,username,name,account_type,media_count`
- `POST /{ig-user-id}/media`: an image container (`image_url`, `caption`, `alt_text`), a carousel item
  (`is_carousel_item=true`), or a carousel (`media_type=CAROUSEL`, `children=id,id`, 2 to 10 FINISHED items).
  The image is fetched at once, from loopback addresses only: a container whose image is not a JPEG of at
  most 8 MiB, between 4:5 and 1.91:1, is in ERROR.
- `GET /{container-id}?fields=status_code,status`: IN_PROGRESS on the first poll, then FINISHED (or ERROR),
  PUBLISHED once published, EXPIRED after 24 hours.
- `POST /{ig-user-id}/media_publish` (`creation_id`) → `{"id": media id}`, within `quota_total` posts a day.
- `GET /{ig-user-id}/media`, `GET /{media-id}?fields=…`, `GET /{ig-user-id}/content_publishing_limit`.
- `DELETE /{media-id}`: refused, as Instagram refuses it.
- `GET /p/{shortcode}/`: the public page of a post (permalinks point there).

Errors have Graph's shape, `{"error": {message, type, code, error_subcode, fbtrace_id}}`, with Meta's codes
(190 for tokens, 100 for parameters, 9007/2207027 for a container not ready, 9/2207042 for the quota);
answers carry `X-Business-Use-Case-Usage` (never enforced). The writes (`POST media`, `POST media_publish`,
`DELETE`) take the sandbox's injected faults and are recorded.
"""

from __future__ import annotations

import html
import http.client
import ipaddress
import json
import math
import re
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo

from infra.local.sandbox import Reply, Request

if TYPE_CHECKING:
    from infra.local.sandbox import Sandbox

DEMO_USER_ID = "17841400000000001"
DEMO_USERNAME = "mairie_demo"
DEMO_NAME = "Mairie de démonstration"
DEMO_TOKEN = "IGAAjetonDuBacASable"  # noqa: S105 - the sandbox's own demo token, not a secret
EXPIRED_TOKEN = "IGAAjetonExpire"  # noqa: S105 - answered 190/463 (session expired)
QUOTA_TOTAL = 50
QUOTA_SECONDS = 24 * 3600
CONTAINER_LIFETIME_SECONDS = 24 * 3600
CAPTION_LIMIT = 2200
MAX_HASHTAGS = 30
MIN_CHILDREN, MAX_CHILDREN = 2, 10
MAX_IMAGE_BYTES = 8 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 5
CALLS_PER_HOUR = 200
PARIS = ZoneInfo("Europe/Paris")
MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
SHORTCODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_VERSION = re.compile(r"^/v\d+\.\d+(?=/|$)")
_HASHTAG = re.compile(r"(?<![\w#&])#\w+")
_URL = re.compile(r"https?://\S+")

USER_FIELDS = frozenset({"id", "user_id", "username", "name", "account_type", "media_count"})
CONTAINER_FIELDS = frozenset({"id", "status_code", "status"})
MEDIA_FIELDS = frozenset(
    {"id", "caption", "media_type", "media_url", "permalink", "shortcode", "timestamp", "username", "alt_text"}
)
STATUS_TEXT = {
    "IN_PROGRESS": "In Progress: Media is still being processed.",
    "FINISHED": "Finished: Media has been uploaded and it is complete.",
    "PUBLISHED": "Published: Media has been successfully published.",
    "EXPIRED": "Expired: Media was not published within 24 hours.",
}


class GraphError(Exception):
    """An answer in Graph's error shape."""

    def __init__(
        self, message: str, code: int, subcode: int | None = None, status: int = 400, user_msg: str | None = None
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.subcode, self.status, self.user_msg = message, code, subcode, status, user_msg

    def reply(self, headers: dict[str, str] | None = None) -> Reply:
        error: dict[str, Any] = {"message": self.message, "type": "OAuthException", "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.user_msg:
            error["error_user_msg"] = self.user_msg
        error["is_transient"] = self.code in (1, 2, -1, -2)
        error["fbtrace_id"] = secrets.token_urlsafe(12)
        return Reply.json(self.status, {"error": error}, headers)


def _unknown_object(verb: str, object_id: str) -> GraphError:
    return GraphError(
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be loaded due to missing "
        "permissions, or does not support this operation. Please read the Graph API documentation at "
        "https://developers.facebook.com/docs/graph-api",
        100,
        33,
    )


@dataclass
class _Container:
    id: str
    owner: str
    media_type: str
    created_at: float
    caption: str = ""
    image_url: str | None = None
    alt_text: str | None = None
    carousel_item: bool = False
    children: list[str] = field(default_factory=list)
    error: GraphError | None = None
    polls: int = 0
    media_id: str | None = None

    def status_code(self, now: float) -> str:
        if self.media_id is not None:
            return "PUBLISHED"
        if now - self.created_at > CONTAINER_LIFETIME_SECONDS:
            return "EXPIRED"
        if self.polls == 0:
            return "IN_PROGRESS"
        return "ERROR" if self.error is not None else "FINISHED"


@dataclass
class _Post:
    id: str
    shortcode: str
    owner: str
    media_type: str
    caption: str
    published_at: float
    images: list[tuple[str, str]]
    """(image_url, alt_text) of each image, in order."""


class InstagramImitation:
    channel: ClassVar[str] = "instagram"
    prefix: ClassVar[str] = "/instagram"
    base_url_variable: ClassVar[str | None] = "CRIEUR_INSTAGRAM_BASE_URL"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.quota_total = QUOTA_TOTAL
        self._lock = threading.RLock()
        self._containers: dict[str, _Container] = {}
        self._posts: dict[str, _Post] = {}
        self._calls: dict[str, list[float]] = {}
        self._last_id = 0

    # -- the Imitation protocol and inspection ---------------------------------------------------------------

    def demo_channel(self) -> dict[str, Any]:
        return {"enabled": True, "settings": {"ig_user_id": DEMO_USER_ID}, "credentials": {"access_token": DEMO_TOKEN}}

    def clear(self) -> None:
        with self._lock:
            self._containers.clear()
            self._posts.clear()
            self._calls.clear()

    def posts(self) -> list[dict[str, Any]]:
        """The published posts, newest first, as `GET /{media-id}` shows them."""
        with self._lock:
            posts = sorted(self._posts.values(), key=lambda post: post.published_at, reverse=True)
            return [self._media_json(post, MEDIA_FIELDS) for post in posts]

    # -- routing ---------------------------------------------------------------------------------------------

    def handle(self, request: Request, subpath: str) -> Reply:  # noqa: PLR0911 - one return per route
        path = _VERSION.sub("", subpath).rstrip("/") or "/"
        page = re.fullmatch(r"/p/([\w-]+)", path)
        if page and request.method in ("GET", "HEAD"):
            return self._post_page(page.group(1))
        try:
            params = _params(request)
        except GraphError as bad:
            return bad.reply()
        parts = path.strip("/").split("/")
        try:
            if request.method == "POST" and len(parts) == 2 and parts[1] == "media":
                return self._write(request, params, parts[0], self._create_container)
            if request.method == "POST" and len(parts) == 2 and parts[1] == "media_publish":
                return self._write(request, params, parts[0], self._publish)
            if request.method == "DELETE" and len(parts) == 1:
                return self._write(request, params, parts[0], self._delete)
            user = self._authenticate(request, params)
            if request.method not in ("GET", "HEAD"):
                raise _unknown_object(request.method.lower(), parts[0])
            if len(parts) == 1:
                return self._ok(user, self._read_node(user, parts[0], params))
            if len(parts) == 2 and parts[1] == "media":
                return self._ok(user, self._list_media(user, parts[0], params))
            if len(parts) == 2 and parts[1] == "content_publishing_limit":
                return self._ok(user, self._publishing_limit(user, parts[0], params))
            raise GraphError(f"Unknown path components: /{'/'.join(parts[1:])}", 2500)
        except GraphError as refused:
            return refused.reply()

    def _write(
        self,
        request: Request,
        params: dict[str, Any],
        node: str,
        action: Callable[[str, str, dict[str, Any]], str],
    ) -> Reply:
        """A write: injected fault first (it creates nothing), then auth, then the action; always recorded."""
        shown = {key: value for key, value in params.items() if key != "access_token"}
        fault = self.sandbox.take_fault(self.channel)
        self.sandbox.wait_fault(fault)
        if fault is not None and fault.status is not None:
            reply = _fault_reply(fault.status, fault.retry_after, node)
            self.sandbox.record(self.channel, request, reply, shown)
            return reply
        created: str | None = None
        try:
            user = self._authenticate(request, params)
            created = action(user, node, params)
            reply = self._ok(user, {"id": created})
        except GraphError as refused:
            reply = refused.reply()
        self.sandbox.record(self.channel, request, reply, shown, external_id=created)
        return reply

    def _ok(self, user: str, value: dict[str, Any]) -> Reply:
        return Reply.json(200, value, {"X-Business-Use-Case-Usage": self._usage(user)})

    def _usage(self, user: str) -> str:
        now = time.time()
        with self._lock:
            calls = [moment for moment in self._calls.get(user, []) if moment > now - 3600] + [now]
            self._calls[user] = calls
        percent = min(100, len(calls) * 100 // CALLS_PER_HOUR)
        usage = {"type": "instagram", "call_count": percent, "total_cputime": 1, "total_time": 1}
        return json.dumps({user: [{**usage, "estimated_time_to_regain_access": 0}]})

    def _authenticate(self, request: Request, params: dict[str, Any]) -> str:
        """The token's account, or Graph's 190 error."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth"):
            token = str(params.get("access_token") or "")
        token = token.strip()
        if token == EXPIRED_TOKEN:
            stamp = datetime.now(UTC).strftime("%A, %d-%b-%y %H:%M:%S UTC")
            raise GraphError(
                f"Error validating access token: Session has expired on {stamp}. The current time is {stamp}.",
                190,
                463,
            )
        if token != DEMO_TOKEN:
            raise GraphError("Invalid OAuth access token - Cannot parse access token", 190)
        return DEMO_USER_ID

    # -- reads -----------------------------------------------------------------------------------------------

    def _read_node(self, user: str, node: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            container = self._containers.get(node)
            post = self._posts.get(node)
            if node in ("me", user):
                return _pick(self._user_json(user), _fields(params, USER_FIELDS, "IGUser"))
            if container is not None and container.owner == user:
                wanted = _fields(params, CONTAINER_FIELDS, "ShadowIGMediaBuilder")
                code = container.status_code(time.time())
                container.polls += 1
                error = container.error
                status = f"Error: {error.message}" if code == "ERROR" and error else STATUS_TEXT[code]
                return _pick({"id": container.id, "status_code": code, "status": status}, wanted)
            if post is not None and post.owner == user:
                return self._media_json(post, _fields(params, MEDIA_FIELDS, "IGMedia"))
        raise _unknown_object("get", node)

    def _list_media(self, user: str, node: str, params: dict[str, Any]) -> dict[str, Any]:
        if node not in ("me", user):
            raise _unknown_object("get", node)
        wanted = _fields(params, MEDIA_FIELDS, "IGMedia")
        try:
            limit = max(1, min(100, int(params.get("limit") or 25)))
        except ValueError as bad:
            raise GraphError("(#100) Param limit must be an integer", 100) from bad
        with self._lock:
            posts = sorted(
                (post for post in self._posts.values() if post.owner == user),
                key=lambda post: post.published_at,
                reverse=True,
            )
            after = params.get("after")
            if after:
                ids = [_cursor(post.id) for post in posts]
                posts = posts[ids.index(after) + 1 :] if after in ids else []
            page = [self._media_json(post, wanted) for post in posts[:limit]]
        answer: dict[str, Any] = {"data": page}
        if page:
            cursors = {"before": _cursor(page[0]["id"]), "after": _cursor(page[-1]["id"])}
            answer["paging"] = {"cursors": cursors}
            if len(posts) > limit:
                query = urllib.parse.urlencode(
                    {"fields": ",".join(sorted(wanted)), "limit": limit, "after": cursors["after"]}
                )
                answer["paging"]["next"] = f"{self.sandbox.url}{self.prefix}/{user}/media?{query}"
        return answer

    def _publishing_limit(self, user: str, node: str, params: dict[str, Any]) -> dict[str, Any]:
        if node not in ("me", user):
            raise _unknown_object("get", node)
        wanted = _fields(params, frozenset({"quota_usage", "config"}), "ContentPublishingLimit", default="quota_usage")
        entry = {
            "quota_usage": self._quota_usage(user),
            "config": {"quota_total": self.quota_total, "quota_duration": QUOTA_SECONDS},
        }
        return {"data": [{key: value for key, value in entry.items() if key in wanted}]}

    def _quota_usage(self, user: str) -> int:
        since = time.time() - QUOTA_SECONDS
        with self._lock:
            return sum(1 for post in self._posts.values() if post.owner == user and post.published_at > since)

    def _user_json(self, user: str) -> dict[str, Any]:
        media_count = sum(1 for post in self._posts.values() if post.owner == user)
        return {
            "id": user,
            "user_id": user,
            "username": DEMO_USERNAME,
            "name": DEMO_NAME,
            "account_type": "BUSINESS",
            "media_count": media_count,
        }

    def _media_json(self, post: _Post, wanted: frozenset[str]) -> dict[str, Any]:
        moment = datetime.fromtimestamp(post.published_at, UTC)
        full = {
            "id": post.id,
            "caption": post.caption,
            "media_type": post.media_type,
            "media_url": post.images[0][0],
            "permalink": self._permalink(post),
            "shortcode": post.shortcode,
            "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "username": DEMO_USERNAME,
            "alt_text": post.images[0][1],
        }
        return _pick(full, wanted)

    def _permalink(self, post: _Post) -> str:
        return f"{self.sandbox.url}{self.prefix}/p/{post.shortcode}/"

    # -- writes ----------------------------------------------------------------------------------------------

    def _next_id(self, base: int) -> str:
        with self._lock:
            self._last_id += 1
            return str(base + self._last_id)

    def _create_container(self, user: str, node: str, params: dict[str, Any]) -> str:
        if node not in ("me", user):
            raise _unknown_object("post", node)
        media_type = str(params.get("media_type") or "IMAGE").upper()
        caption = str(params.get("caption") or "")
        _check_caption(caption)
        now = time.time()
        if media_type == "CAROUSEL":
            children = self._carousel_children(user, params.get("children"))
            container = _Container(self._next_id(17890000000000000), user, "CAROUSEL", now, caption, children=children)
        elif media_type == "IMAGE":
            image_url = str(params.get("image_url") or "")
            if not image_url:
                raise GraphError("(#100) The parameter image_url is required", 100)
            container = _Container(
                self._next_id(17890000000000000),
                user,
                "IMAGE",
                now,
                caption,
                image_url=image_url,
                alt_text=str(params.get("alt_text") or "") or None,
                carousel_item=_truthy(params.get("is_carousel_item")),
                error=_image_error(image_url),
            )
        elif media_type in ("VIDEO", "REELS", "STORIES"):
            raise GraphError(f"(#100) The sandbox imitates image and carousel posts only, not {media_type}.", 100)
        else:
            raise GraphError("(#100) Param media_type must be one of {CAROUSEL, IMAGE, REELS, STORIES, VIDEO}", 100)
        with self._lock:
            self._containers[container.id] = container
        return container.id

    def _carousel_children(self, user: str, raw: Any) -> list[str]:
        if isinstance(raw, list):
            children = [str(child).strip() for child in raw]
        else:
            children = [child.strip() for child in str(raw or "").strip("[]").split(",") if child.strip()]
        if not children:
            raise GraphError("(#100) The parameter children is required", 100)
        if not MIN_CHILDREN <= len(children) <= MAX_CHILDREN:
            raise GraphError(
                "Your post won't be published because the carousel validation failed.",
                100,
                2207028,
                user_msg=f"A carousel has {MIN_CHILDREN} to {MAX_CHILDREN} items, not {len(children)}.",
            )
        now = time.time()
        with self._lock:
            for child_id in children:
                child = self._containers.get(child_id)
                if child is None or child.owner != user or not child.carousel_item:
                    raise GraphError(
                        "Your post won't be published because the carousel validation failed.",
                        100,
                        2207028,
                        user_msg=f"{child_id} is not a carousel item container of this account.",
                    )
                state = child.status_code(now)
                if state == "IN_PROGRESS":
                    raise _not_ready()
                if state != "FINISHED":
                    raise GraphError(
                        "Your post won't be published because the carousel validation failed.",
                        100,
                        2207028,
                        user_msg=f"Carousel item {child_id} is {state}.",
                    )
        return children

    def _publish(self, user: str, node: str, params: dict[str, Any]) -> str:
        if node not in ("me", user):
            raise _unknown_object("post", node)
        creation_id = str(params.get("creation_id") or "")
        if not creation_id:
            raise GraphError("(#100) The parameter creation_id is required", 100)
        now = time.time()
        with self._lock:
            container = self._containers.get(creation_id)
            if container is None or container.owner != user:
                raise GraphError(f"The media with id {creation_id} cannot be found.", 24, 2207006)
            if container.carousel_item:
                raise GraphError("(#100) A carousel item is published through its carousel container.", 100)
            state = container.status_code(now)
            if state == "IN_PROGRESS":
                raise _not_ready()
            if state == "EXPIRED":
                raise GraphError(
                    "The media you are trying to access has expired. Please try to upload again.", -2, 2207020
                )
            if state == "PUBLISHED":
                raise GraphError(f"(#100) Container {creation_id} has already been published.", 100)
            if container.error is not None:
                raise container.error
            if self._quota_usage(user) >= self.quota_total:
                raise GraphError(
                    "Application request limit reached",
                    9,
                    2207042,
                    user_msg="You reached maximum number of posts that is allowed to be published by Content "
                    "Publishing API.",
                )
            media_id = self._next_id(17920000000000000)
            sources = [self._containers[child] for child in container.children] or [container]
            self._posts[media_id] = _Post(
                id=media_id,
                shortcode=_shortcode(int(media_id)),
                owner=user,
                media_type="CAROUSEL_ALBUM" if container.children else "IMAGE",
                caption=container.caption,
                published_at=now,
                images=[(source.image_url or "", source.alt_text or "") for source in sources],
            )
            container.media_id = media_id
        return media_id

    def _delete(self, user: str, node: str, params: dict[str, Any]) -> str:
        raise _unknown_object("delete", node)

    # -- pages -----------------------------------------------------------------------------------------------

    def page_section(self) -> str:
        with self._lock:
            posts = sorted(self._posts.values(), key=lambda post: post.published_at, reverse=True)
            pending = sum(1 for item in self._containers.values() if item.media_id is None and not item.carousel_item)
            usage = self._quota_usage(DEMO_USER_ID)
            articles = "".join(self._article(post) for post in posts)
        summary = (
            f"<p>Compte @{html.escape(DEMO_USERNAME)} : {usage} publication(s) sur {self.quota_total} permises en "
            f"24 heures ; {pending} conteneur(s) créé(s) sans être publié(s).</p>"
        )
        body = articles or "<p>Aucune publication pour l'instant.</p>"
        return f'<section aria-labelledby="h-instagram"><h2 id="h-instagram">Instagram</h2>{summary}{body}</section>'

    def _article(self, post: _Post) -> str:
        moment = datetime.fromtimestamp(post.published_at, PARIS)
        when = f"{moment.day} {MONTHS[moment.month - 1]} {moment.year} à {moment:%H:%M}"
        count = len(post.images)
        figures = "".join(
            f'<li style="list-style:none"><figure style="margin:0 0 .5rem">'
            f'<img src="{html.escape(url)}" alt="{html.escape(alt)}" style="max-width:320px;height:auto">'
            f"<figcaption>{f'Image {index} sur {count} — texte' if count > 1 else 'Texte'} alternatif : "
            f"« {html.escape(alt) or 'aucun'} »</figcaption></figure></li>"
            for index, (url, alt) in enumerate(post.images, 1)
        )
        label = f"Carrousel de {count} images" if count > 1 else "Image"
        return (
            f'<article aria-labelledby="ig-{post.id}" style="border:1px solid #767676;border-radius:8px;'
            'padding:.75rem;margin:1rem 0;max-width:360px">'
            f'<header><h3 id="ig-{post.id}" style="margin:0;font-size:1rem">@{html.escape(DEMO_USERNAME)}</h3>'
            f'<p style="margin:0"><time datetime="{moment.isoformat()}">{when}</time></p></header>'
            f'<ul aria-label="{label}" style="padding:0">{figures}</ul>'
            f"<p><strong>{html.escape(DEMO_USERNAME)}</strong> {_caption_html(post.caption)}</p>"
            f'<p><a href="{html.escape(self._permalink(post))}">Ouvrir la publication</a></p></article>'
        )

    def _post_page(self, shortcode: str) -> Reply:
        with self._lock:
            post = next((post for post in self._posts.values() if post.shortcode == shortcode), None)
            article = self._article(post) if post is not None else None
        if article is None:
            body = "<main><h1>Publication introuvable</h1><p>Cette publication n'existe pas.</p></main>"
            return Reply(404, _html_page("Publication introuvable", body), "text/html; charset=utf-8")
        body = f"<main><h1>Publication Instagram de @{html.escape(DEMO_USERNAME)}</h1>{article}</main>"
        return Reply(200, _html_page("Publication Instagram", body), "text/html; charset=utf-8")


# ------------------------------------------------------------------------------------------- helpers


def _params(request: Request) -> dict[str, Any]:
    """Query string and body parameters (the body wins), as Graph reads JSON, form or query parameters."""
    params: dict[str, Any] = {key: values[0] for key, values in request.query.items() if values}
    raw = request.body.strip()
    if not raw:
        return params
    kind = request.content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        params.update(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return params
    try:
        body = json.loads(raw)
    except ValueError as bad:
        raise GraphError(f"(#100) The request body could not be read: {bad}", 100) from bad
    if not isinstance(body, dict):
        raise GraphError("(#100) The request body must be a JSON object", 100)
    params.update(body)
    return params


def _fields(params: dict[str, Any], known: frozenset[str], node_type: str, default: str = "id") -> frozenset[str]:
    asked = {name.strip() for name in str(params.get("fields") or default).split(",") if name.strip()}
    unknown = sorted(asked - known)
    if unknown:
        raise GraphError(f"(#100) Tried accessing nonexisting field ({unknown[0]}) on node type ({node_type})", 100)
    return frozenset(asked)


def _pick(value: dict[str, Any], wanted: frozenset[str]) -> dict[str, Any]:
    """Graph answers the fields asked for, and always the id."""
    return {key: item for key, item in value.items() if key in wanted or key == "id"}


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _cursor(media_id: str) -> str:
    return urllib.parse.quote(media_id.encode().hex())


def _shortcode(number: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 64)
        digits = SHORTCODE_ALPHABET[rest] + digits
    return digits or "A"


def _not_ready() -> GraphError:
    return GraphError(
        "Media ID is not available",
        9007,
        2207027,
        user_msg="The media is not ready for publishing, please wait for a moment",
    )


def _check_caption(caption: str) -> None:
    if len(caption) > CAPTION_LIMIT:
        raise GraphError(f"(#100) The caption is too long: {len(caption)} characters, at most {CAPTION_LIMIT}.", 100)
    hashtags = len(_HASHTAG.findall(_URL.sub(" ", caption)))
    if hashtags > MAX_HASHTAGS:
        raise GraphError(f"(#100) The caption has {hashtags} hashtags, at most {MAX_HASHTAGS}.", 100)


def _image_error(url: str) -> GraphError | None:
    """Why Instagram could not use the image at `url` (the sandbox fetches from loopback only), or None."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        return GraphError(
            f"The media could not be fetched from this uri: {url} (the sandbox fetches loopback addresses only).",
            9004,
            2207052,
        )
    try:
        content = _fetch(parts)
    except (OSError, http.client.HTTPException, ValueError) as failure:
        return GraphError(f"The media could not be fetched from this uri: {url} ({failure}).", 9004, 2207052)
    if len(content) > MAX_IMAGE_BYTES:
        return GraphError(
            "The image size is too large.",
            36000,
            2207004,
            user_msg="The image is too large to download. It should be less than 8 MiB.",
        )
    size = _jpeg_size(content)
    if size is None:
        return GraphError("Only photo or video can be accepted as media type.", 36001, 2207005)
    width, height = size
    if not (4 * height <= 5 * width and 100 * width <= 191 * height):
        return GraphError(
            f"The submitted image with aspect ratio ('{width}/{height}') cannot be published. "
            "Please submit an image with a valid aspect ratio.",
            36003,
            2207009,
        )
    return None


def _fetch(parts: urllib.parse.SplitResult) -> bytes:
    """GET without redirects or proxies; a loopback certificate is not checked (the tests make their own)."""
    port = parts.port
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "", port, timeout=FETCH_TIMEOUT_SECONDS, context=context
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname or "", port, timeout=FETCH_TIMEOUT_SECONDS)
    try:
        connection.request("GET", urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, "")))
        response = connection.getresponse()
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        return response.read(MAX_IMAGE_BYTES + 1)
    finally:
        connection.close()


def _jpeg_size(content: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame segment; None when the bytes are not a JPEG."""
    if not content.startswith(b"\xff\xd8\xff"):
        return None
    index = 2
    while index + 9 <= len(content):
        if content[index] != 0xFF:
            return None
        marker = content[index + 1]
        if marker == 0xFF:
            index += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(content[index + 5 : index + 7], "big")
            width = int.from_bytes(content[index + 7 : index + 9], "big")
            return width, height
        index += 2 + int.from_bytes(content[index + 2 : index + 4], "big")
    return None


def _fault_reply(status: int, retry_after: int | None, node: str) -> Reply:
    """An injected fault in Graph's shape, with the code Meta uses for that kind of failure."""
    headers: dict[str, str] = {}
    if status == 429:
        minutes = math.ceil(retry_after / 60) if retry_after else 5
        usage = {"type": "instagram", "call_count": 100, "total_cputime": 10, "total_time": 10}
        headers["X-Business-Use-Case-Usage"] = json.dumps(
            {node: [{**usage, "estimated_time_to_regain_access": minutes}]}
        )
        error = GraphError(
            "There have been too many calls to this Instagram account. Wait a bit and try again.", 80002, status=429
        )
    elif status >= 500:
        error = GraphError("An unexpected error has occurred. Please retry your request later.", 2, status=status)
    elif status == 401:
        error = GraphError("Error validating access token: The session has been invalidated.", 190, 467, status)
    elif status == 403:
        error = GraphError("(#10) Application does not have permission for this action", 10, status=status)
    elif status == 404:
        error = _unknown_object("post", node)
        error.status = 404
    else:
        error = GraphError(f"(#100) {status} injected by the sandbox", 100, status=status)
    return error.reply(headers)


def _caption_html(caption: str) -> str:
    """The caption as Instagram shows it: line breaks kept, hashtags highlighted."""
    out: list[str] = []
    last = 0
    for match in _HASHTAG.finditer(caption):
        out.append(html.escape(caption[last : match.start()]))
        out.append(f'<span style="color:#00376b;font-weight:600">{html.escape(match.group())}</span>')
        last = match.end()
    out.append(html.escape(caption[last:]))
    return "".join(out).replace("\n", "<br>")


def _html_page(title: str, body: str) -> bytes:
    return (
        '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>\n"
    ).encode()
