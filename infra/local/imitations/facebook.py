"""The Facebook Graph API as the sandbox imitates it: one Page (or a few), its posts and photos.

HTTP surface under `/facebook`, with or without a version prefix (`/v25.0/…`), as on graph.facebook.com:

- `GET /me?fields=…`: the Page the token belongs to; `GET /{page-id}?fields=…`: a Page.
- `GET /{page-id}/published_posts` (or `/posts`): the Page's posts, newest first (`fields`, `since`,
  `until`, `limit` ≤ 100, `after` cursor; `paging.next` while a page follows).
- `POST /{page-id}/feed`: `message` (≤ 63,206 characters), `link`, `attached_media[i]={"media_fbid": …}`
  (unpublished photos of the Page, each attached once). The same text as the Page's latest post is
  refused with error 506, as Facebook refuses a duplicate status message.
- `POST /{page-id}/photos`: `url`, `caption`, `alt_text_custom`, `published` (default true). Like Facebook,
  the imitation downloads the image, but from loopback addresses only (certificates unchecked there, no
  redirects): it must be a JPEG, PNG, GIF or WebP of at most 4 MB. A URL elsewhere is taken unchecked and
  shown as such: the sandbox never leaves the machine. Published: `{"id", "post_id"}`; unpublished:
  `{"id"}`, kept until a /feed call attaches it.
- `GET /{object-id}` and `DELETE /{object-id}` for posts and photos (`{"success": true}`).
- `GET /_cdn/{photo-id}`: the bytes downloaded for a photo (what Facebook's CDN serves).

Auth: `Authorization: Bearer|OAuth <token>`, or `access_token` in the query or the form. Errors have
Graph's shape, `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`: no token #104
(#2500 on /me), unknown token #190, expired token #190 with subcode 463 (or 460/467, see
`expire_token`), a token without the permission #200 (writes) or #10 (reads), an object the token cannot
see #100 subcode 33. Every answer carries X-Business-Use-Case-Usage for the Page.

Faults apply to writes (POST feed/photos, DELETE) and answer Graph's own error for what the injected
status stands for: 401 → HTTP 400 #190/463, 403 → 403 #200, 404 → 400 #100/33, 429 → 400 #32 (Page request
limit) with `estimated_time_to_regain_access` = ⌈retry_after / 60⌉ minutes, 5xx → that status with #2
(`is_transient`), any other 4xx → that status with #100. A faulted request creates nothing.
"""

from __future__ import annotations

import contextlib
import html
import ipaddress
import itertools
import json
import math
import re
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from crieur.media import dimensions, sniff
from infra.local.sandbox import BadRequest, Fault, Reply, Request, Sandbox, parse_body

PAGE_ID = "102938475610293"
PAGE_NAME = "Commune de démonstration"
DEMO_TOKEN = "EAAGcrieurBacASableJetonDePageDemo"  # noqa: S105 - the sandbox's own demo token
DEFAULT_VERSION = "v25.0"
PERMISSIONS = frozenset({"pages_manage_posts", "pages_read_engagement", "pages_show_list"})
MAX_MESSAGE_LENGTH = 63206
MAX_PHOTO_BYTES = 4 * 1024 * 1024
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
FETCH_TIMEOUT_SECONDS = 5.0
MAX_LIMIT = 100
DEFAULT_LIMIT = 25
CALLS_PER_HOUR = 4800
PARIS = ZoneInfo("Europe/Paris")

_VERSION = re.compile(r"v\d+\.\d+")
_URL = re.compile(r"https?://[^\s<>\"']+")
_ATTACHED = re.compile(r"attached_media\[(\d+)\]")
_DOC = "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
_ANONYMOUS_REQUEST = "An access token is required to request this resource."
_MISSING_USER = "An active access token must be used to query information about the current user."
_UNPARSABLE_ACCESS = "Invalid OAuth access token - Cannot parse access token"
_EXPIRED: dict[int, str] = {
    460: (
        "Error validating access token: The session has been invalidated because the user changed their "
        "password or Facebook has changed the session for security reasons."
    ),
    463: "Error validating access token: Session has expired on {expired}. The current time is {now}.",
    467: "Error validating access token: The user has not authorized application 0 or the session was logged out.",
}
_CANNOT_POST = (
    "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts as an admin "
    "with sufficient administrative permission"
)
_CANNOT_READ = (
    "(#10) This endpoint requires the 'pages_read_engagement' permission or the 'Page Public Content Access' feature."
)
_BAD_IMAGE = "(#324) Missing or invalid image file"
_TOO_BIG = (
    "Your photos couldn't be uploaded. Photos should be less than 4 MB and saved as JPG, PNG, GIF, TIFF, "
    "HEIF or WebP files."
)
_FIELDS = {
    "page": ("id", "name", "link", "category"),
    "post": ("id", "message", "created_time", "permalink_url", "link", "full_picture", "is_published", "from"),
    "photo": (
        "id",
        "name",
        "alt_text_custom",
        "created_time",
        "link",
        "page_story_id",
        "images",
        "width",
        "height",
    ),
}
_DEFAULT_FIELDS = {"page": ("name", "id"), "post": ("created_time", "message", "id"), "photo": ("created_time", "id")}
_NODE_TYPES = {"page": "Page", "post": "Post", "photo": "Photo"}


@dataclass
class _Token:
    page_id: str
    permissions: frozenset[str]
    expired_subcode: int | None = None


@dataclass
class _Photo:
    id: str
    page_id: str
    url: str
    caption: str
    alt: str
    created: float
    content: bytes | None
    mime: str | None
    size: tuple[int, int] | None
    post_id: str | None = None
    deleted: bool = False

    @property
    def checked(self) -> bool:
        """Downloaded and found to be an image (loopback URLs only)."""
        return self.content is not None


@dataclass
class _Post:
    id: str
    page_id: str
    message: str
    link: str | None
    photo_ids: list[str]
    created: float
    deleted: bool = False


@dataclass
class _GraphFailure(Exception):
    """A request Graph refuses: raised inside the handlers, answered in Graph's error shape."""

    status: int
    code: int
    message: str
    subcode: int | None = None
    transient: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any) -> None:
        return None  # a redirect could leave loopback: answered as the 3xx it is


def _graph_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _timestamp(value: str) -> float | None:
    """`since`/`until` as Graph takes them: a Unix time or a date."""
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return None


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _linkify(text: str) -> str:
    """Escaped text with its URLs as links, paragraphs and line breaks, as a Page post shows them."""
    out: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        url = match.group().rstrip(".,;:!?)")
        out.append(html.escape(text[last : match.start()]))
        out.append(f'<a href="{html.escape(url)}" rel="nofollow noopener">{html.escape(url)}</a>')
        last = match.start() + len(url)
    out.append(html.escape(text[last:]))
    paragraphs = re.split(r"(?:\r?\n){2,}", "".join(out).strip())
    return "".join("<p>" + re.sub(r"\r?\n", "<br>", paragraph) + "</p>" for paragraph in paragraphs)


def _shown_time(moment: float) -> str:
    local = datetime.fromtimestamp(moment, PARIS)
    return f'<time datetime="{_graph_time(moment)}">{local:%d/%m/%Y à %H:%M}</time>'


class FacebookImitation:
    """Graph API for Pages, on loopback (see the module docstring)."""

    channel: ClassVar[str] = "facebook"
    prefix: ClassVar[str] = "/facebook"
    base_url_variable: ClassVar[str | None] = "CRIEUR_FACEBOOK_BASE_URL"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._lock = threading.RLock()
        self._pages: dict[str, str] = {PAGE_ID: PAGE_NAME}
        self._tokens: dict[str, _Token] = {DEMO_TOKEN: _Token(PAGE_ID, PERMISSIONS)}
        self._posts: dict[str, _Post] = {}
        self._photos: dict[str, _Photo] = {}
        self._calls: dict[str, list[float]] = {}
        self._ids = itertools.count(int(time.time() * 1000) * 1000)

    # -- configuration and inspection (tests, the local stack) -------------------------------------------

    def register_token(
        self,
        token: str,
        *,
        page_id: str = PAGE_ID,
        page_name: str = PAGE_NAME,
        permissions: frozenset[str] = PERMISSIONS,
    ) -> None:
        """A Page access token the imitation accepts, for `page_id` (created with `page_name` if new)."""
        with self._lock:
            self._pages.setdefault(page_id, page_name)
            self._tokens[token] = _Token(page_id, permissions)

    def expire_token(self, token: str, subcode: int = 463) -> None:
        """From now on the token answers #190 with `subcode` (463 expired, 460 password changed, 467 logged out)."""
        if subcode not in _EXPIRED:
            raise ValueError(f"subcode must be one of {sorted(_EXPIRED)}")
        with self._lock:
            self._tokens[token].expired_subcode = subcode

    def posts(self) -> list[dict[str, Any]]:
        """The Pages' posts, oldest first, deleted ones included (with their photos' captions and alt texts)."""
        with self._lock:
            return [
                {
                    "id": post.id,
                    "message": post.message,
                    "link": post.link,
                    "deleted": post.deleted,
                    "photos": [
                        {"id": photo.id, "url": photo.url, "caption": photo.caption, "alt": photo.alt}
                        for photo in (self._photos[photo_id] for photo_id in post.photo_ids)
                    ],
                }
                for post in self._posts.values()
            ]

    def unpublished_photos(self) -> list[str]:
        with self._lock:
            return [photo.id for photo in self._photos.values() if photo.post_id is None and not photo.deleted]

    def demo_channel(self) -> dict[str, Any]:
        return {"enabled": True, "settings": {"page_id": PAGE_ID}, "credentials": {"page_access_token": DEMO_TOKEN}}

    def clear(self) -> None:
        """Forgets posts, photos and usage; keeps the tokens."""
        with self._lock:
            self._posts.clear()
            self._photos.clear()
            self._calls.clear()

    # -- requests ------------------------------------------------------------------------------------------

    def handle(self, request: Request, subpath: str) -> Reply:
        parts = [urllib.parse.unquote(part) for part in subpath.split("/") if part]
        version = parts.pop(0) if parts and _VERSION.fullmatch(parts[0]) else DEFAULT_VERSION
        if len(parts) == 2 and parts[0] == "_cdn" and request.method in ("GET", "HEAD"):
            return self._cdn(parts[1])
        write = (request.method == "POST" and len(parts) == 2) or (request.method == "DELETE" and len(parts) == 1)
        fault = self.sandbox.take_fault(self.channel) if write else None
        self.sandbox.wait_fault(fault)
        form = self._form(request)
        page_id: str | None = None
        external_id: str | None = None
        try:
            if fault is not None and fault.status is not None:
                raise self._fault_failure(fault)
            token = self._token(request, form, parts)
            page_id = token.page_id
            answer, external_id = self._route(request.method, parts, form, token)
            reply = Reply.json(200, answer, self._headers(version, page_id))
        except _GraphFailure as failure:
            reply = self._error(failure, version, page_id)
        if write:
            shown = {key: value for key, value in form.items() if key != "access_token"}
            self.sandbox.record(self.channel, request, reply, shown, external_id=external_id, version=version)
        return reply

    def _form(self, request: Request) -> dict[str, str]:
        """Query and body parameters together, as Graph reads them (the body wins)."""
        form = {key: values[0] for key, values in request.query.items() if values}
        if request.method == "POST":
            try:
                body = parse_body(request.content_type, request.body)
            except BadRequest:  # an unreadable body is an empty one to Graph
                body = {}
            if isinstance(body, dict):
                form.update(
                    {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in body.items()}
                )
        return form

    def _token(self, request: Request, form: dict[str, str], parts: list[str]) -> _Token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        given = value.strip() if scheme.lower() in ("bearer", "oauth") else form.get("access_token", "")
        if not given:
            if parts == ["me"]:
                raise _GraphFailure(400, 2500, _MISSING_USER)
            raise _GraphFailure(400, 104, _ANONYMOUS_REQUEST)
        with self._lock:
            token = self._tokens.get(given)
        if token is None:
            raise _GraphFailure(400, 190, _UNPARSABLE_ACCESS)
        if token.expired_subcode is not None:
            now = datetime.now(UTC)
            message = _EXPIRED[token.expired_subcode].format(
                expired=f"{now:%A, %d-%b-%y} 00:00:00 PST", now=f"{now:%A, %d-%b-%y %H:%M:%S} PST"
            )
            raise _GraphFailure(400, 190, message, subcode=token.expired_subcode)
        return token

    def _route(
        self, method: str, parts: list[str], form: dict[str, str], token: _Token
    ) -> tuple[dict[str, Any], str | None]:
        if method in ("GET", "HEAD") and parts == ["me"]:
            return self._node("page", token.page_id, form), None
        if len(parts) == 2 and parts[1] in ("feed", "photos", "published_posts", "posts"):
            self._own_page(parts[0], token, method)
            if method == "POST" and parts[1] == "feed":
                return self._create_post(token, form)
            if method == "POST" and parts[1] == "photos":
                return self._create_photo(token, form)
            if method in ("GET", "HEAD") and parts[1] in ("published_posts", "posts"):
                return self._published_posts(token, form), None
        if len(parts) == 1 and method in ("GET", "HEAD", "DELETE"):
            kind = self._kind_of(parts[0], token, method)
            if method == "DELETE":
                return self._delete(kind, parts[0]), parts[0]
            return self._node(kind, parts[0], form), None
        if len(parts) == 1:
            raise self._missing(parts[0], method)
        raise _GraphFailure(400, 2500, f"Unknown path components: /{'/'.join(parts[1:])}")

    # -- objects -------------------------------------------------------------------------------------------

    def _missing(self, object_id: str, method: str) -> _GraphFailure:
        message = (
            f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, cannot be loaded "
            f"due to missing permissions, or does not support this operation. {_DOC}"
        )
        return _GraphFailure(400, 100, message, subcode=33)

    def _own_page(self, page_id: str, token: _Token, method: str) -> None:
        if page_id != token.page_id:
            raise self._missing(page_id, method)

    def _kind_of(self, object_id: str, token: _Token, method: str) -> str:
        """page, post or photo: an object of the token's Page that still exists."""
        with self._lock:
            post = self._posts.get(object_id)
            photo = self._photos.get(object_id)
            if object_id == token.page_id:
                return "page"
            if post is not None and not post.deleted and post.page_id == token.page_id:
                return "post"
            if photo is not None and not photo.deleted and photo.page_id == token.page_id:
                return "photo"
        raise self._missing(object_id, method)

    def _node(self, kind: str, object_id: str, form: dict[str, str]) -> dict[str, Any]:
        requested = [name.strip() for name in form.get("fields", "").split(",") if name.strip()]
        for name in requested:
            if name not in _FIELDS[kind]:
                message = f"(#100) Tried accessing nonexisting field ({name}) on node type ({_NODE_TYPES[kind]})"
                raise _GraphFailure(400, 100, message)
        with self._lock:
            full = self._describe(kind, object_id)
        return {name: full[name] for name in requested or _DEFAULT_FIELDS[kind] if name in full} | {"id": object_id}

    def _describe(self, kind: str, object_id: str) -> dict[str, Any]:
        base = self.sandbox.url + self.prefix
        if kind == "page":
            return {
                "id": object_id,
                "name": self._pages[object_id],
                "link": f"https://www.facebook.com/{object_id}",
                "category": "Mairie",
            }
        if kind == "post":
            post = self._posts[object_id]
            first = self._photos[post.photo_ids[0]] if post.photo_ids else None
            described: dict[str, Any] = {
                "id": post.id,
                "created_time": _graph_time(post.created),
                "permalink_url": f"https://www.facebook.com/{post.id}",
                "is_published": True,
                "from": {"name": self._pages[post.page_id], "id": post.page_id},
            }
            if post.message:
                described["message"] = post.message
            if post.link:
                described["link"] = post.link
            if first is not None:
                described["full_picture"] = f"{base}/_cdn/{first.id}" if first.checked else first.url
            return described
        photo = self._photos[object_id]
        described = {
            "id": photo.id,
            "created_time": _graph_time(photo.created),
            "link": f"https://www.facebook.com/photo/?fbid={photo.id}",
        }
        if photo.caption:
            described["name"] = photo.caption
        if photo.alt:
            described["alt_text_custom"] = photo.alt
        if photo.post_id:
            described["page_story_id"] = photo.post_id
        if photo.size is not None:
            width, height = photo.size
            described |= {
                "width": width,
                "height": height,
                "images": [{"height": height, "width": width, "source": f"{base}/_cdn/{photo.id}"}],
            }
        return described

    def _published_posts(self, token: _Token, form: dict[str, str]) -> dict[str, Any]:
        if "pages_read_engagement" not in token.permissions:
            raise _GraphFailure(403, 10, _CANNOT_READ)
        since = _timestamp(form["since"]) if form.get("since") else None
        until = _timestamp(form["until"]) if form.get("until") else None
        try:
            limit = min(MAX_LIMIT, max(1, int(form.get("limit") or DEFAULT_LIMIT)))
        except ValueError as bad:
            raise _GraphFailure(400, 100, "(#100) Param limit must be a number") from bad
        with self._lock:
            listed = [
                post.id
                for post in sorted(self._posts.values(), key=lambda post: post.created, reverse=True)
                if post.page_id == token.page_id
                and not post.deleted
                and (since is None or post.created >= since)
                and (until is None or post.created <= until)
            ]
        after = form.get("after")
        if after:
            if after not in listed:
                raise _GraphFailure(400, 100, "(#100) The after cursor is not valid")
            listed = listed[listed.index(after) + 1 :]
        chosen = listed[:limit]
        data = [self._node("post", post_id, form) for post_id in chosen]
        if not data:
            return {"data": []}
        paging: dict[str, Any] = {"cursors": {"before": chosen[0], "after": chosen[-1]}}
        if len(listed) > limit:  # Graph gives `next` only while a page follows
            query = {key: value for key, value in form.items() if key != "access_token"} | {"after": chosen[-1]}
            paging["next"] = (
                f"{self.sandbox.url}{self.prefix}/{token.page_id}/published_posts?" + urllib.parse.urlencode(query)
            )
        return {"data": data, "paging": paging}

    # -- writes ----------------------------------------------------------------------------------------------

    def _may_post(self, token: _Token) -> None:
        if not {"pages_manage_posts", "pages_read_engagement"} <= token.permissions:
            raise _GraphFailure(403, 200, _CANNOT_POST)

    def _create_post(self, token: _Token, form: dict[str, str]) -> tuple[dict[str, Any], str]:
        self._may_post(token)
        message = form.get("message", "")
        link = form.get("link") or None
        if len(message) > MAX_MESSAGE_LENGTH:
            raise _GraphFailure(400, 100, f"(#100) Param message must be at most {MAX_MESSAGE_LENGTH} characters long")
        if link is not None and not _URL.fullmatch(link):
            raise _GraphFailure(400, 100, "(#100) Param link must be a valid URL")
        attached = self._attached(form)
        if not message.strip() and link is None and not attached:
            raise _GraphFailure(400, 100, "(#100) Missing message or attachment")
        with self._lock:
            for index, photo_id in enumerate(attached):
                photo = self._photos.get(photo_id)
                if photo is None or photo.deleted or photo.page_id != token.page_id or photo.post_id is not None:
                    refusal = f"(#100) attached_media[{index}]: {photo_id} is not an unpublished photo of this Page"
                    raise _GraphFailure(400, 100, refusal)
            latest = max(
                (post for post in self._posts.values() if post.page_id == token.page_id and not post.deleted),
                key=lambda post: post.created,
                default=None,
            )
            if message.strip() and latest is not None and latest.message == message:
                raise _GraphFailure(400, 506, "(#506) Duplicate status message")
            post = self._new_post(token.page_id, message, link, attached)
        return {"id": post.id}, post.id

    def _attached(self, form: dict[str, str]) -> list[str]:
        """The media_fbid of `attached_media[i]` form fields, or of an `attached_media` JSON list."""
        given: list[tuple[str, str]] = []
        for key, value in form.items():
            match = _ATTACHED.fullmatch(key)
            if match is not None:
                given.append((f"{int(match.group(1)):09d}", value))
            elif key == "attached_media":
                with contextlib.suppress(ValueError):
                    listed = json.loads(value)
                    given += [(f"{index:09d}", json.dumps(item)) for index, item in enumerate(listed)]
        ids = []
        for index, value in sorted(given):
            try:
                ids.append(str(json.loads(value)["media_fbid"]))
            except (ValueError, TypeError, KeyError) as bad:
                message = f'(#100) param attached_media[{int(index)}] must be a JSON object like {{"media_fbid": "…"}}'
                raise _GraphFailure(400, 100, message) from bad
        return ids

    def _new_post(self, page_id: str, message: str, link: str | None, photo_ids: list[str]) -> _Post:
        post = _Post(f"{page_id}_{next(self._ids)}", page_id, message, link, photo_ids, time.time())
        self._posts[post.id] = post
        for photo_id in photo_ids:
            self._photos[photo_id].post_id = post.id
        return post

    def _create_photo(self, token: _Token, form: dict[str, str]) -> tuple[dict[str, Any], str]:
        self._may_post(token)
        url = form.get("url", "")
        caption = form.get("caption", "")
        if not url:
            raise _GraphFailure(400, 324, "(#324) Requires upload file")
        if not _URL.fullmatch(url):
            raise _GraphFailure(400, 100, "(#100) url should represent a valid URL")
        if len(caption) > MAX_MESSAGE_LENGTH:
            raise _GraphFailure(400, 100, f"(#100) Param caption must be at most {MAX_MESSAGE_LENGTH} characters long")
        content, mime, size = self._download(url)
        published = form.get("published", "true").lower() not in ("false", "0")
        with self._lock:
            photo = _Photo(
                id=str(next(self._ids)),
                page_id=token.page_id,
                url=url,
                caption=caption,
                alt=form.get("alt_text_custom", ""),
                created=time.time(),
                content=content,
                mime=mime,
                size=size,
            )
            self._photos[photo.id] = photo
            if not published:
                return {"id": photo.id}, photo.id
            post = self._new_post(token.page_id, caption, None, [photo.id])
        return {"id": photo.id, "post_id": post.id}, post.id

    def _download(self, url: str) -> tuple[bytes | None, str | None, tuple[int, int] | None]:
        """What Facebook does with `url=`: fetch and check it (loopback only; elsewhere taken unchecked)."""
        if not _is_loopback(urllib.parse.urlsplit(url).hostname):
            return None, None, None
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # loopback test servers use self-signed certificates
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context), _NoRedirect()
        )
        try:
            with opener.open(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
                content: bytes = response.read(MAX_PHOTO_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as failure:
            raise _GraphFailure(400, 324, _BAD_IMAGE) from failure
        if len(content) > MAX_PHOTO_BYTES:
            raise _GraphFailure(400, 100, _TOO_BIG, subcode=1366046)
        mime = sniff(content)
        size = dimensions(content) if mime in PHOTO_TYPES else None
        if size is None:
            raise _GraphFailure(400, 324, _BAD_IMAGE)
        return content, mime, size

    def _delete(self, kind: str, object_id: str) -> dict[str, Any]:
        if kind == "page":
            raise _GraphFailure(400, 100, f"(#100) Unsupported delete request on a Page. {_DOC}", subcode=33)
        with self._lock:
            if kind == "post":
                self._posts[object_id].deleted = True
            else:
                photo = self._photos[object_id]
                photo.deleted = True
                post = self._posts.get(photo.post_id or "")
                if post is not None and post.photo_ids == [photo.id]:
                    post.deleted = True  # a one-photo post goes with its photo, as on Facebook
        return {"success": True}

    def _cdn(self, photo_id: str) -> Reply:
        with self._lock:
            photo = self._photos.get(photo_id)
        if photo is None or photo.deleted or photo.content is None or photo.mime is None:
            return Reply(404, b"", "text/plain")
        return Reply(200, photo.content, photo.mime, {"Cache-Control": "max-age=86400"})

    # -- answers -----------------------------------------------------------------------------------------------

    def _headers(self, version: str, page_id: str | None) -> dict[str, str]:
        headers = {"facebook-api-version": version, "x-fb-trace-id": secrets.token_urlsafe(8)}
        if page_id is not None:
            headers["x-business-use-case-usage"] = json.dumps(
                {page_id: [self._usage(page_id, regain_minutes=0)]}, separators=(",", ":")
            )
        return headers

    def _usage(self, page_id: str, regain_minutes: int) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            calls = [moment for moment in self._calls.get(page_id, []) if moment > now - 3600] + [now]
            self._calls[page_id] = calls
        percent = min(100, math.ceil(len(calls) * 100 / CALLS_PER_HOUR))
        return {
            "type": "pages",
            "call_count": 100 if regain_minutes else percent,
            "total_cputime": 1,
            "total_time": 1,
            "estimated_time_to_regain_access": regain_minutes,
        }

    def _error(self, failure: _GraphFailure, version: str, page_id: str | None) -> Reply:
        error: dict[str, Any] = {"message": failure.message, "type": "OAuthException", "code": failure.code}
        if failure.subcode is not None:
            error["error_subcode"] = failure.subcode
        if failure.transient:
            error["is_transient"] = True
        error["fbtrace_id"] = secrets.token_urlsafe(9)
        headers = {**self._headers(version, page_id), **failure.headers}
        if failure.code == 190:
            headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{failure.message}"'
        return Reply.json(failure.status, {"error": error}, headers)

    def _fault_failure(self, fault: Fault) -> _GraphFailure:
        status = fault.status or 500
        if status == 401:
            return _GraphFailure(400, 190, _EXPIRED[460], subcode=460)
        if status == 403:
            return _GraphFailure(403, 200, _CANNOT_POST)
        if status == 404:
            return _GraphFailure(400, 100, f"Unsupported request. Object does not exist. {_DOC}", subcode=33)
        if status == 429:
            minutes = math.ceil(fault.retry_after / 60) if fault.retry_after else 1
            usage = {PAGE_ID: [self._usage(PAGE_ID, regain_minutes=minutes)]}
            headers = {"x-business-use-case-usage": json.dumps(usage, separators=(",", ":"))}
            return _GraphFailure(400, 32, "(#32) Page request limit reached", headers=headers)
        if status >= 500:
            message = "An unexpected error has occurred. Please retry your request later."
            return _GraphFailure(status, 2, message, transient=True)
        return _GraphFailure(status, 100, "(#100) Invalid parameter")

    # -- the page ---------------------------------------------------------------------------------------------

    def page_section(self) -> str:
        """The Pages' posts, newest first, as a visitor of the Page sees them."""
        with self._lock:
            posts = sorted(self._posts.values(), key=lambda post: post.created, reverse=True)
            shown = [post for post in posts if not post.deleted]
            articles = "".join(self._article(post) for post in shown)
            deleted = len(posts) - len(shown)
            waiting = len(self.unpublished_photos())
        notes = [f"{len(shown)} publication(s) visible(s)"]
        if deleted:
            notes.append(f"{deleted} supprimée(s)")
        if waiting:
            notes.append(f"{waiting} photo(s) non publiée(s) en attente d'une publication")
        body = articles or "<p>Rien publié pour l'instant.</p>"
        return (
            '<section aria-labelledby="h-facebook"><h2 id="h-facebook">Facebook</h2>'
            f"<p>{html.escape(', '.join(notes))}.</p>{body}</section>"
        )

    def _article(self, post: _Post) -> str:
        heading = f"fb-{html.escape(post.id)}"
        photos = [self._photos[photo_id] for photo_id in post.photo_ids if not self._photos[photo_id].deleted]
        figures = "".join(self._figure(photo, post) for photo in photos)
        card = ""
        if post.link and not photos:
            host = urllib.parse.urlsplit(post.link).hostname or ""
            card = (
                f'<p class="fb-card"><a href="{html.escape(post.link)}" rel="nofollow noopener">'
                f"<small>{html.escape(host.upper())}</small><br>{html.escape(post.link)}</a></p>"
            )
        return (
            f'<article aria-labelledby="{heading}" style="border:1px solid #767676;padding:.5rem 1rem;margin:1rem 0">'
            f'<header><p><strong id="{heading}">{html.escape(self._pages[post.page_id])}</strong> · '
            f"{_shown_time(post.created)} · Public</p></header>"
            f"{_linkify(post.message)}{figures}{card}"
            f"<footer><p><small>Publication <code>{html.escape(post.id)}</code></small></p></footer></article>"
        )

    def _figure(self, photo: _Photo, post: _Post) -> str:
        source = f"{self.prefix}/_cdn/{photo.id}" if photo.checked else photo.url
        alt = photo.alt or "Photo sans description (aucun texte alternatif reçu)"
        caption = photo.caption if photo.caption and photo.caption != post.message else ""
        if not photo.checked:
            caption = f"{caption} (image hors de cette machine : non vérifiée par le bac à sable)".strip()
        figcaption = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        return (
            f'<figure style="margin:.5rem 0"><img src="{html.escape(source)}" alt="{html.escape(alt)}" '
            f'style="max-width:100%;max-height:20rem">{figcaption}</figure>'
        )
