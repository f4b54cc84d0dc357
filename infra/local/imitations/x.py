"""X API v2 imitation under `/x`, for the sandbox (see infra.local.sandbox.Imitation).

What the X adapter relies on, imitated closely:

- OAuth 1.0a user context checked for real: the demo consumer and token are known with their secrets, the
  HMAC-SHA1 signature of every request is recomputed (query and form parameters signed, JSON and multipart
  bodies not), timestamps older than five minutes and replayed nonces are refused. A wrong key, token or
  signature answers 401 in X's problem shape.
- `GET /2/users/me` (with `x-access-level`), `GET /2/users/:id/tweets` (newest first; max_results 5-100,
  start_time, pagination_token with meta.next_token while older posts remain, exclude, tweet.fields
  created_at and attachments), `GET /2/tweets/:id`.
- `POST /2/tweets` {"text", "media": {"media_ids"}}: the weighted 280 limit counted as X counts
  (crieur.render.x), at most 4 known media, X's 403 for a duplicate of a recent post; 201
  {"data": {"id", "text", "edit_history_tweet_ids"}}. The stored text is rewritten as X does: URLs become
  t.co links, &, < and > HTML entities, and a post with media ends with the media's link.
- `POST /2/media/upload` (multipart `media`, `media_category`, `media_type`; JPEG, PNG, GIF or WebP,
  5 MB at most) and `POST /2/media/metadata` (alt text, 1,000 characters at most).
- `DELETE /2/tweets/:id` {"data": {"deleted": true}}; 404 for an unknown post, 403 for another's.
- x-rate-limit-limit / -remaining / -reset (epoch seconds) per endpoint and 15-minute window, enforced.

A second token pair (`READ_ONLY_*`) opens the same account with the read permission only: X then answers
writes with its "oauth1-permissions" 403. Faults injected for channel "x" apply to write requests.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import hmac
import html
import json
import re
import threading
import time
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar

from crieur.media import dimensions, sniff
from crieur.render.x import INVALID_CHARACTERS, MAX_LENGTH, url_spans, weighted_length

if TYPE_CHECKING:
    from infra.local.sandbox import Fault, Request, Sandbox

from infra.local.sandbox import Reply

CONSUMER_KEY = "crieur-demo-consumer-key"
CONSUMER_SECRET = "crieur-demo-consumer-secret"  # noqa: S105 - the sandbox's public demo secret
ACCESS_TOKEN = "1790000000000000001-crieurdemotoken"  # noqa: S105
ACCESS_TOKEN_SECRET = "crieur-demo-token-secret"  # noqa: S105
READ_ONLY_TOKEN = "1790000000000000001-crieurreadonly"  # noqa: S105
READ_ONLY_TOKEN_SECRET = "crieur-read-only-token-secret"  # noqa: S105
USER = {"id": "1790000000000000001", "name": "Commune de démonstration", "username": "commune_demo"}

TIMESTAMP_TOLERANCE_SECONDS = 300
DUPLICATE_WINDOW_SECONDS = 24 * 3600
MAX_MEDIA = 4
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_ALT_TEXT = 1000
MEDIA_EXPIRES_SECONDS = 86400
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
INLINE_IMAGE_BYTES = 512 * 1024
RATE_WINDOW_SECONDS = 15 * 60
RATE_LIMITS = {"users/me": 75, "timeline": 900, "lookup": 900, "create": 100, "delete": 50, "media": 500}
TOO_LONG = (
    "Your Tweet text is too long. For more information on how Twitter determines text length see "
    "https://github.com/twitter/twitter-text."
)
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
OAUTH1_PERMISSIONS = "Your client app is not configured with the appropriate oauth1 app permissions for this endpoint."
INVALID_REQUEST = "https://api.twitter.com/2/problems/invalid-request"


def problem(status: int, detail: str | None = None, type_: str = "about:blank", **extra: Any) -> dict[str, Any]:
    """X v2's error body for a whole request: {"title", "type", "status", "detail"}."""
    phrase = HTTPStatus(status).phrase
    return {"title": phrase, "type": type_, "status": status, "detail": detail or phrase, **extra}


def invalid(*messages: str) -> dict[str, Any]:
    """X v2's 400: the reasons in `errors[].message`, a generic `detail`."""
    return {
        "errors": [{"message": message} for message in messages],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": INVALID_REQUEST,
    }


def _encode(value: str) -> str:
    return urllib.parse.quote(value, safe="-._~")


def expected_signature(method: str, url: str, params: list[tuple[str, str]], token_secret: str) -> str:
    """RFC 5849 §3.4: the HMAC-SHA1 a correct client sends for this request."""
    normalized = "&".join(f"{k}={v}" for k, v in sorted((_encode(k), _encode(v)) for k, v in params))
    base = "&".join((method.upper(), _encode(url), _encode(normalized)))
    key = f"{_encode(CONSUMER_SECRET)}&{_encode(token_secret)}"
    return base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()).decode()


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Post:
    id: str
    text: str
    """As posted (for the page and the duplicate rule)."""
    stored: str
    """As X returns it: t.co links, HTML entities, the media link appended."""
    created_at: float
    media_keys: list[str]
    deleted: bool = False

    def as_json(self, fields: set[str]) -> dict[str, Any]:
        shown: dict[str, Any] = {"id": self.id, "text": self.stored, "edit_history_tweet_ids": [self.id]}
        if "created_at" in fields:
            shown["created_at"] = _iso(self.created_at)
        if "attachments" in fields and self.media_keys:
            shown["attachments"] = {"media_keys": self.media_keys}
        return shown


@dataclass
class _Media:
    id: str
    content: bytes
    mime: str
    width: int
    height: int
    created_at: float
    alt: str | None = None

    @property
    def key(self) -> str:
        return f"3_{self.id}"


@dataclass
class _State:
    posts: dict[str, _Post] = field(default_factory=dict)
    media: dict[str, _Media] = field(default_factory=dict)
    nonces: dict[str, float] = field(default_factory=dict)
    rates: dict[str, tuple[int, int]] = field(default_factory=dict)
    last_id: int = 0


class XImitation:
    """The X API v2 endpoints the X adapter uses; see the module docstring."""

    channel: ClassVar[str] = "x"
    prefix: ClassVar[str] = "/x"
    base_url_variable: ClassVar[str | None] = "CRIEUR_X_BASE_URL"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._lock = threading.Lock()
        self._state = _State()

    def demo_channel(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "settings": {},
            "credentials": {
                "consumer_key": CONSUMER_KEY,
                "consumer_secret": CONSUMER_SECRET,
                "access_token": ACCESS_TOKEN,
                "access_token_secret": ACCESS_TOKEN_SECRET,
            },
        }

    def clear(self) -> None:
        with self._lock:
            self._state = _State()

    def posts(self) -> list[dict[str, Any]]:
        """Every post made, oldest first, as posted and as X shows it (for tests)."""
        with self._lock:
            return [
                {"id": p.id, "text": p.text, "stored": p.stored, "media_keys": p.media_keys, "deleted": p.deleted}
                for p in self._state.posts.values()
            ]

    def media(self, media_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._state.media.get(media_id)
            if found is None:
                return None
            return {"mime": found.mime, "size": len(found.content), "alt": found.alt}

    # -- routing ----------------------------------------------------------------------------------------

    def handle(self, request: Request, subpath: str) -> Reply:  # noqa: PLR0911 - one return per route
        method = request.method
        if subpath == "/2/users/me" and method == "GET":
            return self._read(request, "users/me", lambda _: Reply.json(200, {"data": USER}))
        timeline = re.fullmatch(r"/2/users/([^/]+)/tweets", subpath)
        if timeline and method == "GET":
            return self._read(request, "timeline", lambda r: self._timeline(r, timeline.group(1)))
        single = re.fullmatch(r"/2/tweets/([^/]+)", subpath)
        if single and method == "GET":
            return self._read(request, "lookup", lambda r: self._lookup(r, single.group(1)))
        if subpath == "/2/tweets" and method == "POST":
            return self._write(request, "create", self._create)
        if single and method == "DELETE":
            return self._write(request, "delete", lambda r, body: self._delete(single.group(1)))
        if subpath == "/2/media/upload" and method == "POST":
            return self._write(request, "media", self._upload)
        if subpath == "/2/media/metadata" and method == "POST":
            return self._write(request, "media", self._metadata)
        return Reply.json(404, problem(404, "Sorry, that page does not exist."))

    def _read(self, request: Request, endpoint: str, answer: Any) -> Reply:
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        headers, exhausted = self._rate(endpoint)
        if exhausted:
            return Reply.json(429, problem(429), headers)
        reply: Reply = answer(request)
        reply.headers.update({**headers, "x-access-level": self._access_level(request)})
        return reply

    def _write(self, request: Request, endpoint: str, answer: Any) -> Reply:
        fault = self.sandbox.take_fault(self.channel)
        self.sandbox.wait_fault(fault)
        body = self._shown_body(request)
        if fault is not None and fault.status is not None:
            reply = self._fault(fault)
            self.sandbox.record(self.channel, request, reply, body)
            return reply
        external_id: str | None = None
        refused = self._authenticate(request) or self._read_only(request)
        if refused is not None:
            reply = refused
        else:
            headers, exhausted = self._rate(endpoint)
            if exhausted:
                reply = Reply.json(429, problem(429), headers)
            else:
                reply, external_id = answer(request, body)
                reply.headers.update(headers)
        self.sandbox.record(self.channel, request, reply, body, external_id=external_id)
        return reply

    # -- OAuth 1.0a -------------------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> Reply | None:
        """None when the request is signed with the demo consumer and a known token; X's 401 otherwise."""
        header = request.headers.get("authorization", "")
        oauth = _oauth_params(header)
        secrets = {ACCESS_TOKEN: ACCESS_TOKEN_SECRET, READ_ONLY_TOKEN: READ_ONLY_TOKEN_SECRET}
        token_secret = secrets.get(oauth.get("oauth_token", ""))
        unauthorized = Reply.json(401, problem(401))
        if (
            not header.startswith("OAuth ")
            or oauth.get("oauth_consumer_key") != CONSUMER_KEY
            or token_secret is None
            or oauth.get("oauth_signature_method") != "HMAC-SHA1"
            or oauth.get("oauth_version", "1.0") != "1.0"
        ):
            return unauthorized
        try:
            timestamp = int(oauth.get("oauth_timestamp", ""))
        except ValueError:
            return unauthorized
        if abs(time.time() - timestamp) > TIMESTAMP_TOLERANCE_SECONDS:
            return unauthorized
        params = [(k, v) for k, v in oauth.items() if k != "oauth_signature"]
        # The sandbox hands over the query already parsed (blank values dropped; Crieur sends none).
        params += [(name, value) for name, values in request.query.items() for value in values]
        if request.content_type.split(";", 1)[0].strip() == "application/x-www-form-urlencoded":
            params += urllib.parse.parse_qsl(request.body.decode(), keep_blank_values=True)
        url = f"http://{request.headers.get('host', '').lower()}{request.path}"
        expected = expected_signature(request.method, url, params, token_secret)
        if not hmac.compare_digest(expected, oauth.get("oauth_signature", "")):
            return unauthorized
        nonce = oauth.get("oauth_nonce", "")
        with self._lock:
            now = time.time()
            self._state.nonces = {
                n: at for n, at in self._state.nonces.items() if now - at < 2 * TIMESTAMP_TOLERANCE_SECONDS
            }
            if not nonce or nonce in self._state.nonces:
                return unauthorized
            self._state.nonces[nonce] = now
        return None

    def _read_only(self, request: Request) -> Reply | None:
        """X's 403 to a write made with tokens of an application that may only read."""
        if self._access_level(request) != "read":
            return None
        return Reply.json(
            403, problem(403, OAUTH1_PERMISSIONS, "https://api.twitter.com/2/problems/oauth1-permissions")
        )

    def _access_level(self, request: Request) -> str:
        token = _oauth_params(request.headers.get("authorization", "")).get("oauth_token")
        return "read" if token == READ_ONLY_TOKEN else "read-write"

    def _rate(self, endpoint: str) -> tuple[dict[str, str], bool]:
        """X's x-rate-limit-* headers for one call to `endpoint`, and whether its window is spent."""
        limit = RATE_LIMITS[endpoint]
        now = int(time.time())
        with self._lock:
            window, used = self._state.rates.get(endpoint, (now // RATE_WINDOW_SECONDS, 0))
            if window != now // RATE_WINDOW_SECONDS:
                window, used = now // RATE_WINDOW_SECONDS, 0
            exhausted = used >= limit
            used = min(limit, used + 1)
            self._state.rates[endpoint] = (window, used)
        headers = {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(limit - used),
            "x-rate-limit-reset": str((window + 1) * RATE_WINDOW_SECONDS),
        }
        return headers, exhausted

    def _fault(self, fault: Fault) -> Reply:
        status = int(fault.status or 500)
        headers: dict[str, str] = {}
        if status == 429:
            reset = int(time.time()) + (fault.retry_after if fault.retry_after is not None else RATE_WINDOW_SECONDS)
            headers = {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
        body = invalid("Invalid Request") if status == 400 else problem(status)
        return Reply.json(status, body, headers)

    # -- endpoints --------------------------------------------------------------------------------------

    def _next_id(self) -> str:
        # Snowflake-like: milliseconds since X's epoch shifted 22 bits, plus a sequence.
        with self._lock:
            self._state.last_id = max(self._state.last_id + 1, (int(time.time() * 1000) - 1288834974657) << 22)
            return str(self._state.last_id)

    def _create(self, request: Request, body: Any) -> tuple[Reply, str | None]:
        refused = _tweet_problem(body)
        if refused is not None:
            return Reply.json(400, invalid(refused)), None
        text = unicodedata.normalize("NFC", body.get("text") or "").strip()
        media_ids: list[str] = (body.get("media") or {}).get("media_ids") or []
        now = time.time()
        with self._lock:
            known = [self._state.media.get(media_id) for media_id in media_ids]
            usable = [m for m in known if m is not None and now - m.created_at < MEDIA_EXPIRES_SECONDS]
            duplicate = any(
                not p.deleted and p.text == text and now - p.created_at < DUPLICATE_WINDOW_SECONDS
                for p in self._state.posts.values()
            )
        if len(usable) != len(media_ids):
            return Reply.json(400, invalid("Your media IDs are invalid.")), None
        if duplicate:
            return Reply.json(403, problem(403, DUPLICATE)), None
        post_id = self._next_id()
        post = _Post(post_id, text, _as_stored(text, bool(usable)), now, [m.key for m in usable])
        with self._lock:
            self._state.posts[post_id] = post
        return Reply.json(201, {"data": {"id": post_id, "text": post.stored, "edit_history_tweet_ids": [post_id]}}), (
            post_id
        )

    def _delete(self, post_id: str) -> tuple[Reply, str | None]:
        with self._lock:
            post = self._state.posts.get(post_id)
            if post is None or post.deleted:
                return Reply.json(404, _not_found(post_id)), post_id
            post.deleted = True
        return Reply.json(200, {"data": {"deleted": True}}), post_id

    def _timeline(self, request: Request, user_id: str) -> Reply:
        if user_id != USER["id"]:
            return Reply.json(200, {"errors": [_not_found(user_id, "user")]})
        query = {name: values[-1] for name, values in request.query.items()}
        try:
            max_results = int(query.get("max_results", "10"))
            since = datetime.fromisoformat(query["start_time"]).timestamp() if "start_time" in query else 0.0
        except ValueError:
            return Reply.json(400, invalid("Invalid `max_results` or `start_time`."))
        if not 5 <= max_results <= 100:
            return Reply.json(
                400, invalid(f"The `max_results` query parameter value [{max_results}] is not between 5 and 100")
            )
        fields = set(query.get("tweet.fields", "").split(","))
        after = _page_of(query.get("pagination_token", ""))
        if after is None:
            return Reply.json(400, invalid("The `pagination_token` query parameter value is not valid."))
        with self._lock:
            listed = [
                p.as_json(fields)
                for p in sorted(self._state.posts.values(), key=lambda p: p.created_at, reverse=True)
                if not p.deleted and p.created_at >= since and (not after or int(p.id) < after)
            ]
        shown = listed[:max_results]
        if not shown:
            return Reply.json(200, {"meta": {"result_count": 0}})
        meta: dict[str, Any] = {"result_count": len(shown), "newest_id": shown[0]["id"], "oldest_id": shown[-1]["id"]}
        if len(listed) > max_results:
            meta["next_token"] = _token_of(shown[-1]["id"])
        return Reply.json(200, {"data": shown, "meta": meta})

    def _lookup(self, request: Request, post_id: str) -> Reply:
        fields = set((request.query.get("tweet.fields") or [""])[-1].split(","))
        with self._lock:
            post = self._state.posts.get(post_id)
            if post is None or post.deleted:
                return Reply.json(200, {"errors": [_not_found(post_id)]})
            return Reply.json(200, {"data": post.as_json(fields)})

    def _upload(self, request: Request, body: Any) -> tuple[Reply, str | None]:
        form = _multipart(request)
        content = form.get("media")
        category = form.get("media_category", b"").decode()
        if not content:
            return Reply.json(400, invalid("The `media` field is required.")), None
        if category not in ("tweet_image", "dm_image"):
            return Reply.json(400, invalid(f"The `media_category` [{category}] is not valid for an image.")), None
        mime = sniff(content)
        size = dimensions(content) if mime in IMAGE_TYPES else None
        if mime not in IMAGE_TYPES or size is None:
            return Reply.json(400, invalid("InvalidMedia: unsupported image format.")), None
        if len(content) > MAX_IMAGE_BYTES:
            return Reply.json(400, invalid(f"File size exceeds {MAX_IMAGE_BYTES} bytes.")), None
        media = _Media(self._next_id(), content, str(mime), size[0], size[1], time.time())
        with self._lock:
            self._state.media[media.id] = media
        data = {
            "id": media.id,
            "media_key": media.key,
            "size": len(content),
            "expires_after_secs": MEDIA_EXPIRES_SECONDS,
            "image": {"image_type": media.mime, "w": media.width, "h": media.height},
        }
        return Reply.json(200, {"data": data}), media.id

    def _metadata(self, request: Request, body: Any) -> tuple[Reply, str | None]:
        media_id = body.get("id") if isinstance(body, dict) else None
        alt = ((body.get("metadata") or {}).get("alt_text") or {}).get("text") if isinstance(body, dict) else None
        if not isinstance(media_id, str) or not isinstance(alt, str):
            return Reply.json(400, invalid("`id` and `metadata.alt_text.text` are required.")), None
        if len(alt) > MAX_ALT_TEXT:
            return Reply.json(400, invalid(f"The alt text must be {MAX_ALT_TEXT} characters or fewer.")), media_id
        with self._lock:
            media = self._state.media.get(media_id)
            if media is not None:
                media.alt = alt
        if media is None:
            return Reply.json(400, invalid(f"Media id {media_id} not found.")), media_id
        return Reply.json(200, {"data": {"id": media_id, "associated_metadata": {"alt_text": {"text": alt}}}}), media_id

    def _shown_body(self, request: Request) -> Any:
        """The body as recorded: JSON decoded; a multipart upload as its fields, the image by its size."""
        kind = request.content_type.split(";", 1)[0].strip()
        if kind == "multipart/form-data":
            form = _multipart(request)
            return {
                name: f"<{len(value)} octets>" if name == "media" else value.decode("utf-8", "replace")
                for name, value in form.items()
            }
        if not request.body.strip():
            return None
        try:
            return json.loads(request.body)
        except ValueError:
            return request.body.decode("utf-8", "replace")

    # -- the page ---------------------------------------------------------------------------------------

    def page_section(self) -> str:
        with self._lock:
            posts = sorted(self._state.posts.values(), key=lambda p: p.created_at, reverse=True)
            media = {m.key: m for m in self._state.media.values()}
        items = "".join(_post_html(post, media) for post in posts) or "<p>Aucune publication pour l'instant.</p>"
        return (
            '<section aria-labelledby="h-x" class="x-feed"><h2 id="h-x">X</h2>'
            "<style>.x-feed article{border:1px solid #cfd9de;border-radius:16px;padding:.75rem 1rem;margin:.5rem 0;"
            "max-width:598px;font-family:system-ui,sans-serif}.x-feed header{display:flex;gap:.5rem;align-items:center}"
            ".x-feed .avatar{width:40px;height:40px;border-radius:50%;background:#1d9bf0;color:#fff;display:flex;"
            "align-items:center;justify-content:center;font-weight:bold}.x-feed .handle,.x-feed time{color:#536471}"
            ".x-feed .text{white-space:pre-wrap;margin:.5rem 0}.x-feed a{color:#1d9bf0}"
            ".x-feed .media{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:2px;"
            "border-radius:16px;overflow:hidden}.x-feed img{width:100%;height:auto;display:block}"
            ".x-feed .card{border:1px solid #cfd9de;border-radius:16px;padding:.5rem .75rem;color:#536471}"
            ".x-feed .deleted{color:#536471;font-style:italic}</style>"
            f"<p>{len(posts)} publication(s) reçue(s), la plus récente en premier.</p>{items}</section>"
        )


def _tweet_problem(body: Any) -> str | None:
    """Why X answers 400 to this POST /2/tweets body; None when it is well formed."""
    if not isinstance(body, dict):
        return "The request body is not valid JSON."
    media_ids = (body.get("media") or {}).get("media_ids") or []
    if not isinstance(media_ids, list) or len(media_ids) > MAX_MEDIA or not all(isinstance(m, str) for m in media_ids):
        return "Your media IDs are invalid."
    text = body.get("text")
    if not isinstance(text, str) and not media_ids:
        return "The `text` field is required when `media` is absent."
    text = unicodedata.normalize("NFC", text or "").strip()
    if INVALID_CHARACTERS.search(text):
        return "Your Tweet text contains invalid characters."
    return TOO_LONG if weighted_length(text) > MAX_LENGTH else None


def _token_of(post_id: str) -> str:
    """An opaque next_token (as X's look): the page goes on below this post."""
    return base64.b32encode(int(post_id).to_bytes(8, "big")).decode().rstrip("=").lower()


def _page_of(token: str) -> int | None:
    """The post id a next_token stands for; 0 without a token; None when it is not one of ours."""
    if not token:
        return 0
    try:
        return int.from_bytes(base64.b32decode(token.upper() + "=" * (-len(token) % 8)), "big")
    except ValueError:
        return None


def _oauth_params(header: str) -> dict[str, str]:
    """The oauth_* parameters of an `Authorization: OAuth …` header, decoded."""
    return {
        urllib.parse.unquote(name): urllib.parse.unquote(value)
        for name, value in re.findall(r'(\w+)="([^"]*)"', header.removeprefix("OAuth "))
    }


def _not_found(resource_id: str, kind: str = "tweet") -> dict[str, Any]:
    return {
        "value": resource_id,
        "detail": f"Could not find {kind} with id: [{resource_id}].",
        "title": "Not Found Error",
        "resource_type": kind,
        "parameter": "id",
        "resource_id": resource_id,
        "type": "https://api.twitter.com/2/problems/resource-not-found",
    }


def _tco() -> str:
    return (
        "https://t.co/" + base64.b32encode(hashlib.sha256(str(time.time_ns()).encode()).digest()).decode()[:10].lower()
    )


def _as_stored(text: str, with_media: bool) -> str:
    """The text as X returns it: each URL a t.co link, &, < and > as entities, the media's link appended."""
    pieces, last = [], 0
    for start, end in url_spans(text):
        pieces += [html.escape(text[last:start], quote=False), _tco()]
        last = end
    pieces.append(html.escape(text[last:], quote=False))
    stored = "".join(pieces)
    return f"{stored} {_tco()}" if with_media else stored


def _multipart(request: Request) -> dict[str, bytes]:
    """A multipart/form-data body's fields, values kept as bytes (images stay intact)."""
    head = f"Content-Type: {request.content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    form: dict[str, bytes] = {}
    if message.is_multipart():
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                form[name] = payload
    return form


def _linked(text: str) -> str:
    """Plain text as X draws it: escaped, each URL a link showing its address without the protocol."""
    out, last = [], 0
    for start, end in url_spans(text):
        url = text[start:end]
        href = url if re.match(r"https?://", url, re.IGNORECASE) else f"https://{url}"
        shown = re.sub(r"^https?://(www\.)?", "", url, flags=re.IGNORECASE)
        shown = shown if len(shown) <= 30 else shown[:29] + "…"
        out += [html.escape(text[last:start]), f'<a href="{html.escape(href)}" rel="nofollow">{html.escape(shown)}</a>']
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


def _post_html(post: _Post, media: dict[str, _Media]) -> str:
    when = datetime.fromtimestamp(post.created_at, UTC)
    header = (
        '<header><span class="avatar" aria-hidden="true">C</span>'
        f"<span><strong>{html.escape(USER['name'])}</strong> "
        f'<span class="handle">@{html.escape(USER["username"])}</span> · '
        f'<time datetime="{when.isoformat()}">{when:%d/%m/%Y %H:%M} UTC</time></span></header>'
    )
    if post.deleted:
        return (
            f'<article aria-label="Publication supprimée">{header}'
            '<p class="deleted">Cette publication a été supprimée.</p></article>'
        )
    figures = []
    for key in post.media_keys:
        image = media.get(key)
        if image is None:
            continue
        alt = image.alt or ""
        if len(image.content) <= INLINE_IMAGE_BYTES:
            source = f"data:{image.mime};base64,{base64.b64encode(image.content).decode()}"
            figures.append(
                f'<img src="{source}" alt="{html.escape(alt)}" width="{image.width}" height="{image.height}">'
            )
        else:
            figures.append(
                f'<p role="img" aria-label="{html.escape(alt)}">'
                f"Image {image.width}×{image.height} : {html.escape(alt)}</p>"
            )
    extra = f'<div class="media">{"".join(figures)}</div>' if figures else ""
    spans = url_spans(post.text)
    if not figures and spans:
        first = post.text[spans[0][0] : spans[0][1]]
        domain = re.sub(r"^https?://", "", first, flags=re.IGNORECASE).split("/", 1)[0]
        extra = f'<p class="card">Aperçu du lien : {html.escape(domain)}</p>'
    return (
        f'<article aria-label="Publication de @{html.escape(USER["username"])}">{header}'
        f'<p class="text" lang="fr">{_linked(post.text)}</p>{extra}</article>'
    )
