"""WordPress REST API imitation under `/wordpress`, for the sandbox (see infra.local.sandbox.Imitation).

The commune's own site stands at `<sandbox>/wordpress`: there is no provider-wide base URL to override,
the channel's `site_url` points here. Imitated under `/wp-json/wp/v2`:

- HTTP Basic with Application Passwords: spaces in the password are ignored, as WordPress does. A wrong
  password answers 401 `incorrect_password`, an unknown user 401 `invalid_username`, no credentials 401
  `rest_not_logged_in` (or `rest_cannot_create` on a write). A subscriber account answers 403
  `rest_cannot_create` to writes.
- `GET /users/me?context=edit` (name, roles, capabilities).
- `GET /posts?slug=…&status=any` (and `_fields`), `POST /posts` (title, content, excerpt, status publish|future|draft,
  date_gmt required in the future for `future`, slug made unique with -2, -3 as WordPress does, categories,
  featured_media), `POST /posts/<id>` (update), `DELETE /posts/<id>?force=true` (404 rest_post_invalid_id
  when gone; 501 rest_trash_not_supported without force).
- `GET /categories?search=…`, `POST /categories` (400 term_exists with data.term_id for a duplicate).
- `POST /media` raw bytes with Content-Disposition filename (sniffed: JPEG, PNG, GIF, WebP only, else 500
  rest_upload_sideload_error), `POST /media/<id>` {"alt_text"}; the file at `/wp-content/uploads/<id>`.
- The public article at `GET /?p=<id>` (its `link`).

Faults injected for channel "wordpress" apply to write requests and answer WordPress's error shape.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar

from crieur.media import dimensions, sniff

if TYPE_CHECKING:
    from infra.local.sandbox import Request, Sandbox

from infra.local.sandbox import Reply

USERNAME = "mairie"
APPLICATION_PASSWORD = "abcd EFGH 1234 ijkl MNOP 5678"  # noqa: S105 - the sandbox's public demo password
SUBSCRIBER = "abonne"
SUBSCRIBER_PASSWORD = "wxyz WXYZ 9876 abcd EFGH 4321"  # noqa: S105
USERS: dict[str, dict[str, Any]] = {
    USERNAME: {
        "id": 1,
        "name": "Mairie de démonstration",
        "slug": "mairie",
        "roles": ["editor"],
        "capabilities": {"edit_posts": True, "publish_posts": True, "upload_files": True, "manage_categories": True},
    },
    SUBSCRIBER: {
        "id": 2,
        "name": "Abonné",
        "slug": "abonne",
        "roles": ["subscriber"],
        "capabilities": {"read": True},
    },
}
PASSWORDS = {USERNAME: APPLICATION_PASSWORD, SUBSCRIBER: SUBSCRIBER_PASSWORD}
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
STATUSES = ("publish", "future", "draft", "pending", "private")
API = "/wp-json/wp/v2"


def error(code: str, message: str, status: int, **data: Any) -> Reply:
    """WordPress's WP_Error as JSON: {"code", "message", "data": {"status", …}}."""
    return Reply.json(status, {"code": code, "message": message, "data": {"status": status, **data}})


def _compact(password: str) -> str:
    """WordPress compares application passwords without their spaces (and any non-alphanumeric)."""
    return re.sub(r"[^a-z\d]", "", password, flags=re.IGNORECASE)


def _rendered(value: str) -> dict[str, str]:
    return {"rendered": value, "raw": value}


@dataclass
class _Post:
    id: int
    author: int
    title: str
    content: str
    excerpt: str
    status: str
    slug: str
    date_gmt: float
    categories: list[int]
    featured_media: int = 0


@dataclass
class _Media:
    id: int
    content: bytes
    mime: str
    filename: str
    width: int
    height: int
    alt_text: str = ""


@dataclass
class _State:
    posts: dict[int, _Post] = field(default_factory=dict)
    categories: dict[int, str] = field(default_factory=lambda: {1: "Non classé"})
    media: dict[int, _Media] = field(default_factory=dict)
    last_id: int = 100


class WordpressImitation:
    """The WordPress REST endpoints the WordPress adapter uses; see the module docstring."""

    channel: ClassVar[str] = "wordpress"
    prefix: ClassVar[str] = "/wordpress"
    base_url_variable: ClassVar[str | None] = None

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._lock = threading.Lock()
        self._state = _State()

    def demo_channel(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "settings": {"site_url": f"{self.sandbox.url}{self.prefix}", "username": USERNAME},
            "credentials": {"application_password": APPLICATION_PASSWORD},
        }

    def clear(self) -> None:
        with self._lock:
            self._state = _State()

    def posts(self) -> list[dict[str, Any]]:
        """Every article still there, oldest first (for tests)."""
        with self._lock:
            return [
                {
                    "id": p.id,
                    "title": p.title,
                    "content": p.content,
                    "excerpt": p.excerpt,
                    "status": p.status,
                    "slug": p.slug,
                    "categories": [self._state.categories[c] for c in p.categories],
                    "featured_media": p.featured_media,
                    "alt_text": self._state.media[p.featured_media].alt_text if p.featured_media else None,
                }
                for p in self._state.posts.values()
            ]

    def _link(self, post_id: int) -> str:
        return f"{self.sandbox.url}{self.prefix}/?p={post_id}"

    # -- routing ----------------------------------------------------------------------------------------

    def handle(self, request: Request, subpath: str) -> Reply:  # noqa: PLR0911, PLR0912 - one return per route
        method = request.method
        if subpath in ("", "/") and method == "GET":
            return self._public(request)
        upload = re.fullmatch(r"/wp-content/uploads/(\d+)", subpath)
        if upload and method == "GET":
            return self._file(int(upload.group(1)))
        if not subpath.startswith(API):
            return error("rest_no_route", "No route was found matching the URL and request method.", 404)
        route = subpath.removeprefix(API)
        single = re.fullmatch(r"/posts/(\d+)", route)
        medium = re.fullmatch(r"/media/(\d+)", route)
        user = self._authenticate(request)
        if isinstance(user, Reply):
            return self._write(request, lambda _: (user, None)) if method != "GET" else user
        if route == "/users/me" and method == "GET":
            return Reply.json(200, {**USERS[user], "link": f"{self.sandbox.url}{self.prefix}/author/{user}/"})
        if route == "/posts" and method == "GET":
            return self._list_posts(request)
        if route == "/categories" and method == "GET":
            return self._list_categories(request)
        if method == "GET":
            return error("rest_no_route", "No route was found matching the URL and request method.", 404)
        if not USERS[user]["capabilities"].get("edit_posts"):
            cannot = error("rest_cannot_create", "Sorry, you are not allowed to create posts as this user.", 403)
            return self._write(request, lambda _: (cannot, None))
        if route == "/posts" and method == "POST":
            return self._write(request, lambda body: self._save(body, None, USERS[user]["id"]))
        if single and method in ("POST", "PUT", "PATCH"):
            return self._write(request, lambda body: self._save(body, int(single.group(1)), USERS[user]["id"]))
        if single and method == "DELETE":
            return self._write(request, lambda _: self._delete(request, int(single.group(1))))
        if route == "/categories" and method == "POST":
            return self._write(request, self._create_category)
        if route == "/media" and method == "POST":
            return self._write(request, lambda _: self._upload(request))
        if medium and method == "POST":
            return self._write(request, lambda body: self._alt_text(int(medium.group(1)), body))
        return error("rest_no_route", "No route was found matching the URL and request method.", 404)

    def _authenticate(self, request: Request) -> str | Reply:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return error("rest_not_logged_in", "You are not currently logged in.", 401)
        try:
            username, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            return error("rest_not_logged_in", "You are not currently logged in.", 401)
        if username not in PASSWORDS:
            return error(
                "invalid_username",
                "<strong>Error:</strong> The username <strong>" + html.escape(username) + "</strong> is not "
                "registered on this site.",
                401,
            )
        if _compact(password) != _compact(PASSWORDS[username]):
            return error("incorrect_password", "The provided password is an invalid application password.", 401)
        return username

    def _write(self, request: Request, answer: Callable[[Any], tuple[Reply, str | None]]) -> Reply:
        fault = self.sandbox.take_fault(self.channel)
        self.sandbox.wait_fault(fault)
        body = self._shown_body(request)
        if fault is not None and fault.status is not None:
            status = int(fault.status)
            reply = error("sandbox_fault", HTTPStatus(status).phrase, status)
            if status == 429:
                reply.headers["Retry-After"] = str(fault.retry_after if fault.retry_after is not None else 60)
            self.sandbox.record(self.channel, request, reply, body)
            return reply
        reply, external_id = answer(body)
        self.sandbox.record(self.channel, request, reply, body, external_id=external_id)
        return reply

    def _shown_body(self, request: Request) -> Any:
        if not request.content_type.startswith("application/json"):
            return f"<{len(request.body)} octets>" if request.body else None
        try:
            return json.loads(request.body)
        except ValueError:
            return request.body.decode("utf-8", "replace")

    # -- posts --------------------------------------------------------------------------------------------

    def _next_id(self) -> int:
        self._state.last_id += 1
        return self._state.last_id

    def _post_json(self, post: _Post) -> dict[str, Any]:
        date = datetime.fromtimestamp(post.date_gmt, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return {
            "id": post.id,
            "date_gmt": date,
            "slug": post.slug,
            "status": post.status,
            "type": "post",
            "link": self._link(post.id),
            "title": _rendered(post.title),
            "content": {**_rendered(post.content), "protected": False},
            "excerpt": {**_rendered(post.excerpt), "protected": False},
            "author": post.author,
            "featured_media": post.featured_media,
            "categories": post.categories,
        }

    def _list_posts(self, request: Request) -> Reply:
        slug = (request.query.get("slug") or [""])[-1]
        status = (request.query.get("status") or ["publish"])[-1]
        fields = [name for name in (request.query.get("_fields") or [""])[-1].split(",") if name]
        with self._lock:
            found = [
                self._post_json(p)
                for p in self._state.posts.values()
                if (not slug or p.slug == slug) and status in ("any", p.status)
            ]
        if fields:  # the REST API's global _fields parameter: only these fields of each item
            found = [{name: item[name] for name in fields if name in item} for item in found]
        return Reply.json(200, found, {"X-WP-Total": str(len(found)), "X-WP-TotalPages": "1"})

    def _save(self, body: Any, post_id: int | None, author: int) -> tuple[Reply, str | None]:  # noqa: PLR0911
        if not isinstance(body, dict):
            return error("rest_invalid_json", "Invalid JSON body passed.", 400), None
        status = body.get("status", "draft")
        if status not in STATUSES:
            return error("rest_invalid_param", "Invalid parameter(s): status", 400, params={"status": "invalid"}), None
        date = time.time()
        if "date_gmt" in body:
            try:
                date = datetime.fromisoformat(str(body["date_gmt"])).replace(tzinfo=UTC).timestamp()
            except ValueError:
                return error("rest_invalid_param", "Invalid parameter(s): date_gmt", 400), None
        if status == "future" and date <= time.time():
            status = "publish"  # WordPress publishes at once a "future" post dated in the past
        with self._lock:
            post = self._state.posts.get(post_id) if post_id is not None else None
            if post_id is not None and post is None:
                return error("rest_post_invalid_id", "Invalid post ID.", 404), str(post_id)
            categories = body.get("categories", post.categories if post else [1])
            if not isinstance(categories, list) or any(c not in self._state.categories for c in categories):
                return error("rest_invalid_param", "Invalid parameter(s): categories", 400), None
            featured = int(body.get("featured_media", post.featured_media if post else 0) or 0)
            if featured and featured not in self._state.media:
                return error("rest_invalid_featured_media", "Invalid featured media ID.", 400), None
            if post is None:
                post = _Post(self._next_id(), author, "", "", "", status, "", date, categories)
                self._state.posts[post.id] = post
            wanted = str(body.get("slug") or post.slug or body.get("title") or post.id)
            post.slug = self._unique_slug(_sanitize(wanted), post.id)
            post.title = str(body.get("title", post.title))
            post.content = str(body.get("content", post.content))
            post.excerpt = str(body.get("excerpt", post.excerpt))
            post.status, post.date_gmt, post.categories, post.featured_media = status, date, categories, featured
            shown = self._post_json(post)
        return Reply.json(200 if post_id is not None else 201, shown), str(post.id)

    def _unique_slug(self, slug: str, post_id: int) -> str:
        taken = {p.slug for p in self._state.posts.values() if p.id != post_id}
        candidate, suffix = slug, 2
        while candidate in taken:
            candidate, suffix = f"{slug}-{suffix}", suffix + 1
        return candidate

    def _delete(self, request: Request, post_id: int) -> tuple[Reply, str | None]:
        if (request.query.get("force") or [""])[-1] not in ("true", "1"):
            return error("rest_trash_not_supported", "The post does not support trashing.", 501), str(post_id)
        with self._lock:
            post = self._state.posts.pop(post_id, None)
            if post is None:
                return error("rest_post_invalid_id", "Invalid post ID.", 404), str(post_id)
            previous = self._post_json(post)
        return Reply.json(200, {"deleted": True, "previous": previous}), str(post_id)

    # -- categories and media ---------------------------------------------------------------------------

    def _list_categories(self, request: Request) -> Reply:
        search = (request.query.get("search") or [""])[-1].casefold()
        with self._lock:
            found = [
                {"id": i, "name": html.escape(name), "slug": _sanitize(name), "taxonomy": "category"}
                for i, name in self._state.categories.items()
                if search in name.casefold()
            ]
        return Reply.json(200, found)

    def _create_category(self, body: Any) -> tuple[Reply, str | None]:
        name = str(body.get("name", "")).strip() if isinstance(body, dict) else ""
        if not name:
            return error("rest_missing_callback_param", "Missing parameter(s): name", 400), None
        with self._lock:
            existing = next((i for i, n in self._state.categories.items() if n.casefold() == name.casefold()), None)
            if existing is not None:
                reply = error("term_exists", "A term with the name provided already exists.", 400, term_id=existing)
                return reply, str(existing)
            category_id = self._next_id()
            self._state.categories[category_id] = name
        return Reply.json(201, {"id": category_id, "name": html.escape(name), "taxonomy": "category"}), str(category_id)

    def _upload(self, request: Request) -> tuple[Reply, str | None]:
        disposition = request.headers.get("content-disposition", "")
        filename = re.search(r'filename="?([^";]+)"?', disposition)
        if not request.body:
            return error("rest_upload_no_data", "No data supplied.", 400), None
        if filename is None:
            return error("rest_upload_no_content_disposition", "No Content-Disposition supplied.", 400), None
        mime = sniff(request.body)
        size = dimensions(request.body) if mime in IMAGE_TYPES else None
        if mime not in IMAGE_TYPES or size is None:
            message = "Sorry, you are not allowed to upload this file type."
            return error("rest_upload_sideload_error", message, 500), None
        with self._lock:
            medium = _Media(self._next_id(), request.body, str(mime), filename.group(1), size[0], size[1])
            self._state.media[medium.id] = medium
        return Reply.json(201, self._media_json(medium)), str(medium.id)

    def _alt_text(self, media_id: int, body: Any) -> tuple[Reply, str | None]:
        with self._lock:
            medium = self._state.media.get(media_id)
            if medium is None:
                return error("rest_post_invalid_id", "Invalid post ID.", 404), str(media_id)
            if isinstance(body, dict) and "alt_text" in body:
                medium.alt_text = str(body["alt_text"])
            shown = self._media_json(medium)
        return Reply.json(200, shown), str(media_id)

    def _media_json(self, medium: _Media) -> dict[str, Any]:
        return {
            "id": medium.id,
            "type": "attachment",
            "media_type": "image",
            "mime_type": medium.mime,
            "alt_text": medium.alt_text,
            "source_url": f"{self.sandbox.url}{self.prefix}/wp-content/uploads/{medium.id}",
            "media_details": {"width": medium.width, "height": medium.height, "filesize": len(medium.content)},
        }

    def _file(self, media_id: int) -> Reply:
        with self._lock:
            medium = self._state.media.get(media_id)
        if medium is None:
            return Reply(404, b"Not Found", "text/plain; charset=utf-8")
        return Reply(200, medium.content, medium.mime)

    # -- the site as readers see it ---------------------------------------------------------------------

    def _public(self, request: Request) -> Reply:
        wanted = (request.query.get("p") or [""])[-1]
        with self._lock:
            post = self._state.posts.get(int(wanted)) if wanted.isdigit() else None
            shown = self._article(post) if post is not None and post.status == "publish" else None
        if shown is None:
            return Reply(404, b"<p>Page introuvable.</p>", "text/html; charset=utf-8")
        page = f'<!doctype html><html lang="fr"><meta charset="utf-8"><title>Article</title><main>{shown}</main>'
        return Reply(200, page.encode(), "text/html; charset=utf-8")

    def _article(self, post: _Post) -> str:
        """One article as a WordPress theme draws it. The content is HTML the adapter escaped already."""
        when = datetime.fromtimestamp(post.date_gmt, UTC)
        medium = self._state.media.get(post.featured_media)
        figure = (
            f'<figure><img src="{self.sandbox.url}{self.prefix}/wp-content/uploads/{medium.id}" '
            f'alt="{html.escape(medium.alt_text)}" width="{medium.width}" height="{medium.height}"></figure>'
            if medium
            else ""
        )
        names = ", ".join(html.escape(self._state.categories[c]) for c in post.categories)
        state = " (programmé)" if post.status == "future" else "" if post.status == "publish" else f" ({post.status})"
        return (
            f'<article aria-labelledby="wp-{post.id}"><h3 id="wp-{post.id}">'
            f'<a href="{html.escape(self._link(post.id))}">{html.escape(post.title)}</a>{html.escape(state)}</h3>'
            f'<p class="meta">Publié le <time datetime="{when.isoformat()}">{when:%d/%m/%Y à %H:%M} UTC</time>'
            f' dans {names}</p>{figure}<div class="entry-content">{_safe(post.content)}</div></article>'
        )

    def page_section(self) -> str:
        with self._lock:
            posts = sorted(self._state.posts.values(), key=lambda p: p.date_gmt, reverse=True)
            articles = "".join(self._article(post) for post in posts)
        return (
            '<section aria-labelledby="h-wordpress" class="wp-blog"><h2 id="h-wordpress">Site WordPress</h2>'
            "<style>.wp-blog article{border-bottom:1px solid #ddd;padding:1rem 0;max-width:680px;"
            "font-family:Georgia,serif}.wp-blog .meta{color:#666;font-size:.9em}.wp-blog img{max-width:100%;"
            "height:auto}</style>"
            f"<p>{len(posts)} article(s), le plus récent en premier.</p>"
            f"{articles or '<p>Aucun article pour l’instant.</p>'}</section>"
        )


_ALLOWED = re.compile(r"</?(?:p|br|ul|ol|li|strong|em)\s*/?>|<a href=\"[^\"<>]*\">|</a>")


def _safe(content: str) -> str:
    """The article's HTML with only harmless tags kept, everything else escaped (as kses filters)."""
    out, last = [], 0
    for match in _ALLOWED.finditer(content):
        out += [html.escape(html.unescape(content[last : match.start()])), match.group()]
        last = match.end()
    out.append(html.escape(html.unescape(content[last:])))
    return "".join(out)


def _sanitize(title: str) -> str:
    """sanitize_title_with_dashes: accents dropped, lowercase, anything else a dash."""
    ascii_only = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9_-]+", "-", ascii_only.lower()).strip("-")
