"""The channel sandbox of the local stack: stands in for each provider's API on loopback.

Crieur's real channel adapters talk to it unchanged (their base URLs come from settings), so it imitates
what they rely on: paths, authentication, response and error shapes, rate-limit headers, idempotency.
It records what each channel received, shows it on a small French page, and lets tests inject faults.

HTTP surface (all on one port):

- Mastodon under `/mastodon`: `GET /api/v2/instance`, `GET /api/v1/accounts/verify_credentials` (the channel test),
  `POST /api/v1/statuses` (JSON, form or multipart; Bearer token; `Idempotency-Key` honoured for an hour
  per token; `media_ids` of the token's unattached,
  processed uploads), `GET` and `DELETE /api/v1/statuses/:id`, `GET /api/v1/accounts/:id/statuses` (newest
  first, `limit`, `max_id`, `since_id`, Link rel="next"), `POST /api/v2/media` (multipart `file` +
  `description`; images only; always 202, processed once `GET /api/v1/media/:id` has answered 206 once),
  and the uploaded bytes at `GET /system/media/:id`.
- Standard Webhooks receiver: `POST /webhook/{name}` (signature checked when a secret is registered).
- Inspection: `GET /` (the page), `GET|DELETE /_sandbox/received[?channel=…]`,
  `GET|POST|DELETE /_sandbox/faults`.

A fault applies to its channel's next `count` write requests (Mastodon `POST`/`DELETE` statuses and
`POST` media, webhook `POST`). With a `status`, the request is answered with that status and a
provider-shaped error body and creates nothing. With only a `delay_seconds`, the request is handled
normally after the delay, like a slow provider: the post exists even when the client has given up waiting
(which is what Idempotency-Key is for). `set_chaos(Chaos(...))` draws such faults at random on every write
request of the given channels (`make soak`): a share of 5xx, a share of timeouts, bursts of 429.

Standard library only (plus `crieur.security` for the webhook signature). Loopback only.
"""

from __future__ import annotations

import contextlib
import copy
import email.parser
import email.policy
import functools
import html
import http.server
import io
import ipaddress
import json
import os
import re
import socket
import socketserver
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, ClassVar, Protocol, cast

from crieur.security import InvalidSignature, verify_webhook

CHANNELS = ("mastodon", "webhook")
VERBOSE_ENV = "CRIEUR_SANDBOX_VERBOSE"
MAX_BODY_BYTES = 10 * 1024 * 1024

# Mastodon facts (reference/channels.md): the defaults of a stock instance.
MASTODON_VERSION = "4.3.0"
MAX_CHARACTERS = 500
URL_WEIGHT = 23
MAX_MEDIA_ATTACHMENTS = 4
IDEMPOTENCY_SECONDS = 3600
RATE_LIMIT = 300
RATE_LIMIT_PERIOD_SECONDS = 300
VISIBILITIES = ("public", "unlisted", "private", "direct")
INVALID_TOKEN = "The access token is invalid"  # noqa: S105 - Mastodon's error text, not a secret
NOT_FOUND = "Record not found"
BLANK_TEXT = "Validation failed: Text can't be blank"
# Stock Mastodon takes 16 MB images; the sandbox's instance says 8 MB so that a too-big upload meets this check
# before the sandbox's 10 MB request-body cap (tests can lower it with `Sandbox.mastodon_image_size_limit`).
MASTODON_IMAGE_SIZE_LIMIT = 8 * 1024 * 1024
MASTODON_DESCRIPTION_LIMIT = 1500
MASTODON_IMAGE_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),
)
INVALID_FILE_TYPE = "Validation failed: File content type is invalid"
NOT_PROCESSED = "Cannot attach files that have not finished processing. Try again in a moment!"

MASTODON_ERRORS: dict[int, str] = {
    400: "Bad request",
    401: INVALID_TOKEN,
    403: "This action is not allowed",
    404: NOT_FOUND,
    408: "Request timeout",
    410: "Gone",
    422: "Validation failed: Text character limit of 500 exceeded",
    429: "Too many requests",
    500: "We're sorry, but something went wrong on our end.",
    502: "There was a temporary problem serving your request, please try again",
    503: "There was a temporary problem serving your request, please try again",
    504: "There was a temporary problem serving your request, please try again",
}

# Mastodon counts a URL as 23 characters, whatever its length. Its extractor (twitter-text with Mastodon's
# own regexes, config/initializers/twitter_regex.rb) ends a path before sentence punctuation and before an
# unbalanced parenthesis, and a query on a letter, digit or one of `_&=#/-`.
_URL = re.compile(r"https?://[^\s<>]+", re.IGNORECASE)
_PATH_END_EXCLUDED = frozenset("()?!*\"'「」<>;:=,.$%[]~&|@")
_QUERY_END = frozenset("_&=#/-")
_MENTION = re.compile(r"(?<![\w@/])@(\w+)@[\w.-]*\w")


# ------------------------------------------------------------------------------------------- text helpers


def _url_end(url: str) -> int:
    """How much of a candidate `https://…` run Mastodon takes as the URL."""
    path, question, query = url.partition("?")
    if question:
        while query and not (
            (query[-1].isascii() and query[-1].isalnum()) or query[-1] in _QUERY_END or ord(query[-1]) >= 0xA0
        ):
            query = query[:-1]
        if query:
            return len(path) + 1 + len(query)
    while path and path[-1] in _PATH_END_EXCLUDED and not (path[-1] == ")" and path.count("(") >= path.count(")")):
        path = path[:-1]
    return len(path)


def _url_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each URL in `text` as Mastodon delimits it."""
    for match in _URL.finditer(text):
        length = _url_end(match.group())
        if length > len("https://"):
            yield match.start(), match.start() + length


def _graphemes(text: str) -> int:
    """An approximation of grapheme clusters (Mastodon counts those): marks, joiners and modifiers add nothing."""
    count = 0
    joined = False
    regional = 0
    for char in text:
        code = ord(char)
        if joined:
            joined = False
            continue
        if char == "\u200d":
            joined = True
            continue
        if (
            unicodedata.combining(char)
            or unicodedata.category(char) in ("Mn", "Me")
            or 0xFE00 <= code <= 0xFE0F
            or 0x1F3FB <= code <= 0x1F3FF
            or 0xE0020 <= code <= 0xE007F
        ):
            continue
        if 0x1F1E6 <= code <= 0x1F1FF:
            regional += 1
            if regional % 2 == 0:
                continue
        else:
            regional = 0
        count += 1
    return count


def mastodon_length(text: str) -> int:
    """The length Mastodon checks against max_characters: URLs weigh 23, a remote mention its local part."""
    pieces: list[str] = []
    last = 0
    for start, end in _url_spans(text):
        pieces.append(_MENTION.sub(r"@\1", text[last:start]))
        pieces.append("x" * URL_WEIGHT)
        last = end
    pieces.append(_MENTION.sub(r"@\1", text[last:]))
    return _graphemes("".join(pieces))


def mastodon_html(text: str) -> str:
    """Plain text as Mastodon renders it: escaped, links made anchors, paragraphs and line breaks."""
    out: list[str] = []
    last = 0
    for start, end in _url_spans(text):
        url = text[start:end]
        out.append(html.escape(text[last:start]))
        out.append(
            f'<a href="{html.escape(url)}" target="_blank" rel="nofollow noopener" translate="no">'
            f"{html.escape(url)}</a>"
        )
        last = end
    out.append(html.escape(text[last:]))
    body = "".join(out).strip()
    body = re.sub(r"(?:\r?\n){2,}", "</p><p>", body)
    body = re.sub(r"\r?\n", "<br />", body)
    return f"<p>{body}</p>"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------------------- state

DEMO_PHOTO_PATH = "/_sandbox/media/place-de-la-mairie.jpg"


@functools.cache
def demo_photo() -> bytes:
    """A 1200×900 JPEG drawn once: a sky, a square and a town hall, enough for every network's rules."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (1200, 900), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 620, 1200, 900), fill=(200, 190, 170))
    draw.rectangle((380, 300, 820, 640), fill=(235, 225, 205), outline=(90, 80, 70), width=6)
    draw.polygon([(360, 300), (600, 170), (840, 300)], fill=(150, 70, 60))
    for left in (430, 560, 690):
        draw.rectangle((left, 380, left + 80, 480), fill=(70, 90, 120))
    draw.rectangle((560, 530, 640, 640), fill=(100, 60, 40))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@dataclass
class Fault:
    channel: str
    status: int | None
    remaining: int
    delay_seconds: float = 0.0
    retry_after: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "status": self.status,
            "count": self.remaining,
            "delay_seconds": self.delay_seconds,
            "retry_after": self.retry_after,
        }


@dataclass
class Chaos:
    """Random faults on channels' write requests (`make soak`), after any fault queued with inject_fault.

    Of the requests outside a burst, `error_rate` are answered 500/502/503, `timeout_rate` are held
    `timeout_seconds` (longer than the client waits) then handled normally: the post exists though the client
    gave up, which only an idempotency key makes safe. `burst_rate` of them start a burst: that request and
    the channel's next `burst_length - 1` ones are answered 429 with Retry-After `retry_after`.
    """

    channels: frozenset[str]
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 0.0
    burst_rate: float = 0.0
    burst_length: int = 5
    retry_after: int = 1
    seed: int | None = None
    drawn: dict[str, int] = field(default_factory=dict)
    """How many faults of each kind (`5xx`, `timeout`, `429`) were drawn so far."""

    def __post_init__(self) -> None:
        import random

        self._random = random.Random(self.seed)  # noqa: S311 - fault injection, not cryptography
        self._bursts: dict[str, int] = {}

    def draw(self, channel: str) -> Fault | None:
        """The fault for this request, or None (the caller holds the sandbox's lock)."""
        if self._bursts.get(channel, 0) > 0:
            self._bursts[channel] -= 1
            return self._count("429", Fault(channel, 429, 1, 0.0, self.retry_after))
        roll = self._random.random()
        if roll < self.burst_rate:
            self._bursts[channel] = self.burst_length - 1
            return self._count("429", Fault(channel, 429, 1, 0.0, self.retry_after))
        roll -= self.burst_rate
        if roll < self.error_rate:
            return self._count("5xx", Fault(channel, self._random.choice((500, 502, 503)), 1))
        roll -= self.error_rate
        if roll < self.timeout_rate:
            return self._count("timeout", Fault(channel, None, 1, self.timeout_seconds))
        return None

    def _count(self, kind: str, fault: Fault) -> Fault:
        self.drawn[kind] = self.drawn.get(kind, 0) + 1
        return fault


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value: Any, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, _json_bytes(value), headers=headers or {})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def shown_headers(self) -> dict[str, str]:
        shown = dict(self.headers)
        if "authorization" in shown:
            scheme = shown["authorization"].split(" ", 1)[0]
            shown["authorization"] = f"{scheme} [redacted]" if " " in shown["authorization"] else "[redacted]"
        return shown


class Imitation(Protocol):
    """One provider's API under `/<prefix>`, plugged into the sandbox (modules in infra/local/imitations/).

    It uses the sandbox's shared facilities: `take_fault(channel)` and `wait_fault(fault)` for injected
    faults, `record(channel, request, reply, body, ...)` for what it received, `bearer(request)`.
    """

    channel: ClassVar[str]
    prefix: ClassVar[str]
    base_url_variable: ClassVar[str | None]
    """CRIEUR_<PROVIDER>_BASE_URL: the local stack points the functions at the imitation with it."""

    def __init__(self, sandbox: Sandbox) -> None: ...

    def handle(self, request: Request, subpath: str) -> Reply: ...

    def demo_channel(self) -> dict[str, Any] | None:
        """The PUT /v1/channels/{channel} body for the demo commune: settings and credentials it accepts;
        None for an imitation that is not a channel (the weather sources)."""
        ...

    def clear(self) -> None: ...

    def page_section(self) -> str:
        """An accessible HTML <section> showing the posts as a person would see them on the network."""
        ...


@dataclass
class _Idempotent:
    status_id: str
    expires: float
    attempts: int = 1


@dataclass
class _MastodonUpload:
    """One POST /api/v2/media: its owner, its bytes and the attachment as the API shows it."""

    token: str
    content: bytes
    mime: str
    attachment: dict[str, Any]
    pending_looks: int = 1
    """GET /api/v1/media/:id answers 206 (still processing) this many times, then the upload is processed."""
    status_id: str | None = None


class BadRequest(Exception):
    """A request the provider would answer 400; imitations may raise it too."""


def _parse_form(raw: bytes) -> dict[str, Any]:
    form: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        if key.endswith("[]"):
            form.setdefault(key, []).append(value)
        else:
            form[key] = value
    return form


def _parse_multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    form: dict[str, Any] = {}
    if not message.is_multipart():
        raise BadRequest("multipart body without parts")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        value = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        if name.endswith("[]"):
            form.setdefault(name, []).append(value)
        else:
            form[name] = value
    return form


def parse_body(content_type: str, raw: bytes) -> Any:
    """A request body as Rails would read it: JSON, form-encoded or multipart."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if not raw.strip():
        return {}
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return json.loads(raw)
        except ValueError as bad:
            raise BadRequest(f"Error occurred while parsing request parameters: {bad}") from bad
    if kind == "multipart/form-data":
        return _parse_multipart(content_type, raw)
    if kind == "application/x-www-form-urlencoded":
        return _parse_form(raw)
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


# ------------------------------------------------------------------------------------------- the sandbox


class Sandbox:
    """Imitates the providers' APIs on loopback; see the module docstring for the HTTP surface."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the sandbox listens on loopback only, not {host}")
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tokens: set[str] = set()
        self._webhook_secrets: dict[str, str] = {}
        self._received: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        self.chaos: Chaos | None = None
        self._statuses: dict[str, dict[str, Any]] = {}
        self._sources: dict[str, str] = {}
        self._deleted: set[str] = set()
        self._idempotency: dict[tuple[str, str], _Idempotent] = {}
        self._media: dict[str, _MastodonUpload] = {}
        self.mastodon_image_size_limit = MASTODON_IMAGE_SIZE_LIMIT
        self._webhook_ids: dict[str, set[str]] = {}
        self._last_status_id = 0
        self._rate_window = 0
        self._rate_used = 0
        self._started_at = time.time()
        from infra.local.imitations import IMITATIONS

        self.imitations: dict[str, Imitation] = {cls.prefix: cls(self) for cls in IMITATIONS}

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Serves in a daemon thread; port 0 picks a free port (read it back from `url`)."""
        if self._server is not None:
            return
        self._stopping.clear()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server = _Server((self.host, self.port), self, family)
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=f"crieur-sandbox-{self.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes requests sleeping on a delay fault
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self.port == 0:
            raise RuntimeError("the sandbox picks its port when it starts: call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def mastodon_url(self) -> str:
        return f"{self.url}/mastodon"

    def webhook_url(self, name: str) -> str:
        return f"{self.url}/webhook/{urllib.parse.quote(name, safe='')}"

    # -- configuration and inspection -------------------------------------------------------------------

    def register_webhook_secret(self, name: str, secret: str) -> None:
        with self._lock:
            self._webhook_secrets[name] = secret

    def register_mastodon_token(self, token: str) -> None:
        with self._lock:
            self._tokens.add(token)

    def received(self, channel: str | None = None) -> list[dict[str, Any]]:
        """What arrived, oldest first (copies)."""
        with self._lock:
            return [copy.deepcopy(item) for item in self._received if channel is None or item["channel"] == channel]

    def faults(self) -> list[dict[str, Any]]:
        """The faults still pending, in the order they will apply."""
        with self._lock:
            return [fault.as_json() for fault in self._faults]

    def inject_fault(
        self,
        channel: str,
        status: int | None = None,
        count: int = 1,
        delay_seconds: float = 0.0,
        retry_after: int | None = None,
    ) -> None:
        """The channel's next `count` write requests answer `status` and/or wait `delay_seconds` first."""
        known = (*CHANNELS, *(imitation.channel for imitation in self.imitations.values()))
        if channel not in known:
            raise ValueError(f"unknown channel {channel!r}: one of {', '.join(known)}")
        if status is not None and not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if count < 1:
            raise ValueError("count must be 1 or more")
        if delay_seconds < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("delay_seconds and retry_after cannot be negative")
        if status is None and not delay_seconds:
            raise ValueError("a fault needs a status, a delay_seconds, or both")
        with self._lock:
            self._faults.append(Fault(channel, status, count, float(delay_seconds), retry_after))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def clear(self) -> None:
        """Forgets what was received, the posts, idempotency keys and faults; keeps tokens and secrets."""
        with self._lock:
            self._received.clear()
            self._faults.clear()
            self._statuses.clear()
            self._sources.clear()
            self._deleted.clear()
            self._idempotency.clear()
            self._media.clear()
            self._webhook_ids.clear()
            for imitation in self.imitations.values():
                imitation.clear()

    # -- request handling (called from the server's threads) --------------------------------------------

    def handle(self, request: Request) -> Reply:  # noqa: PLR0911 - one return per route family
        path = request.path
        try:
            if path == "/" and request.method in ("GET", "HEAD"):
                return Reply(200, self.page().encode(), "text/html; charset=utf-8")
            if path.startswith("/_sandbox/"):
                return self._inspection(request)
            if path == "/mastodon" or path.startswith("/mastodon/"):
                return self._mastodon(request, path.removeprefix("/mastodon"))
            if path.startswith("/webhook/") and len(path) > len("/webhook/"):
                return self._webhook(request, urllib.parse.unquote(path.removeprefix("/webhook/")))
            for prefix, imitation in self.imitations.items():
                if path == prefix or path.startswith(prefix + "/"):
                    return imitation.handle(request, path.removeprefix(prefix))
        except BadRequest as bad:
            return Reply.json(400, {"error": str(bad)})
        return Reply.json(404, {"error": "Not found"})

    def take_fault(self, channel: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.channel == channel:
                    taken = Fault(channel, fault.status, 1, fault.delay_seconds, fault.retry_after)
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[index]
                    return taken
            if self.chaos is not None and channel in self.chaos.channels:
                return self.chaos.draw(channel)
        return None

    def set_chaos(self, chaos: Chaos | None) -> None:
        """Random faults on the given channels' write requests from now on (None stops them)."""
        with self._lock:
            self.chaos = chaos

    def wait_fault(self, fault: Fault | None) -> None:
        if fault is not None and fault.delay_seconds:
            self._stopping.wait(fault.delay_seconds)

    def record(
        self,
        channel: str,
        request: Request,
        reply: Reply,
        body: Any,
        *,
        external_id: str | None = None,
        duplicate: bool = False,
        signature_valid: bool | None = None,
        **extra: Any,
    ) -> None:
        item = {
            "channel": channel,
            "at": _iso(request.at),
            "method": request.method,
            "path": request.path,
            "headers": request.shown_headers(),
            "body": body,
            "status": reply.status,
            "duplicate": duplicate,
            "signature_valid": signature_valid,
            "id": external_id,
            **extra,
        }
        with self._lock:
            self._received.append(item)

    # -- inspection ----------------------------------------------------------------------------------------

    def _inspection(self, request: Request) -> Reply:
        routes: dict[str, dict[str, Callable[[Request], Reply]]] = {
            "/_sandbox/received": {"GET": self._get_received, "DELETE": self._delete_received},
            "/_sandbox/faults": {"GET": self._get_faults, "POST": self._post_fault, "DELETE": self._delete_faults},
            DEMO_PHOTO_PATH: {"GET": self._demo_photo},
        }
        methods = routes.get(request.path)
        if methods is None:
            return Reply.json(404, {"error": "Not found"})
        action = methods.get(request.method)
        if action is None:
            return Reply.json(405, {"error": "Method not allowed"}, {"Allow": ", ".join(methods)})
        return action(request)

    def demo_photo_url(self) -> str:
        """A real JPEG served by the sandbox, for publications with an image in the demo."""
        return f"{self.url}{DEMO_PHOTO_PATH}"

    def _demo_photo(self, _: Request) -> Reply:
        return Reply(200, demo_photo(), "image/jpeg")

    def _get_received(self, request: Request) -> Reply:
        channels = request.query.get("channel")
        return Reply.json(200, {"items": self.received(channels[0] if channels else None)})

    def _delete_received(self, _: Request) -> Reply:
        self.clear()
        return Reply(204)

    def _get_faults(self, _: Request) -> Reply:
        return Reply.json(200, {"items": self.faults()})

    def _delete_faults(self, _: Request) -> Reply:
        self.clear_faults()
        return Reply(204)

    def _post_fault(self, request: Request) -> Reply:
        try:
            spec = json.loads(request.body or b"{}")
            if not isinstance(spec, dict):
                raise TypeError("a JSON object is expected")
            status = spec.get("status")
            retry_after = spec.get("retry_after")
            self.inject_fault(
                str(spec.get("channel")),
                status=None if status is None else int(status),
                count=int(spec.get("count", 1)),
                delay_seconds=float(spec.get("delay_seconds") or 0.0),
                retry_after=None if retry_after is None else int(retry_after),
            )
        except (ValueError, TypeError) as bad:
            return Reply.json(400, {"error": str(bad)})
        return Reply.json(201, {"items": self.faults()})

    # -- Mastodon ----------------------------------------------------------------------------------------

    def _rate_headers(self, exhausted: bool = False, reset_in: int | None = None) -> dict[str, str]:
        """Mastodon's X-RateLimit-* headers (300 requests per 5-minute window; never enforced here)."""
        now = time.time()
        window = int(now // RATE_LIMIT_PERIOD_SECONDS)
        with self._lock:
            if window != self._rate_window:
                self._rate_window, self._rate_used = window, 0
            self._rate_used += 1
            remaining = max(0, RATE_LIMIT - self._rate_used)
        reset = (window + 1) * RATE_LIMIT_PERIOD_SECONDS
        if exhausted:
            remaining = 0
        if reset_in is not None:
            reset = int(now) + reset_in
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": _iso(reset),
        }

    def bearer(self, request: Request) -> str | None:
        """The request's token when it is a registered one."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        with self._lock:
            return token if scheme.lower() == "bearer" and token in self._tokens else None

    def _mastodon(self, request: Request, subpath: str) -> Reply:  # noqa: PLR0911 - one return per route
        method = request.method
        if subpath == "/api/v2/instance" and method in ("GET", "HEAD"):
            return Reply.json(200, self.mastodon_instance(), self._rate_headers())
        if subpath == "/api/v1/statuses" and method == "POST":
            return self._mastodon_post(request)
        if subpath == "/api/v1/accounts/verify_credentials" and method in ("GET", "HEAD"):
            if self.bearer(request) is None:
                return Reply.json(401, {"error": INVALID_TOKEN}, self._rate_headers())
            return Reply.json(200, self._account(), self._rate_headers())
        if subpath == "/api/v2/media" and method == "POST":
            return self._mastodon_upload(request)
        match = re.fullmatch(r"/api/v1/accounts/([^/]+)/statuses", subpath)
        if match and method in ("GET", "HEAD"):
            return self._mastodon_account_statuses(request, match.group(1))
        match = re.fullmatch(r"/api/v1/statuses/([^/]+)", subpath)
        if match and method in ("GET", "HEAD"):
            return self._mastodon_get(request, match.group(1))
        if match and method == "DELETE":
            return self._mastodon_delete(request, match.group(1))
        match = re.fullmatch(r"/api/v1/media/([^/]+)", subpath)
        if match and method in ("GET", "HEAD"):
            return self._mastodon_media(request, match.group(1))
        match = re.fullmatch(r"/system/media/([^/]+)", subpath)
        if match and method in ("GET", "HEAD"):
            return self._mastodon_file(match.group(1))
        return Reply.json(404, {"error": NOT_FOUND})

    def mastodon_instance(self) -> dict[str, Any]:
        """GET /api/v2/instance, shaped like a stock Mastodon 4.3 instance."""
        base = self.mastodon_url()
        return {
            "domain": urllib.parse.urlsplit(self.url).netloc,
            "title": "Bac à sable Crieur",
            "version": MASTODON_VERSION,
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "Instance Mastodon imitée par le bac à sable de Crieur.",
            "usage": {"users": {"active_month": 1}},
            "thumbnail": {"url": f"{base}/packs/media/images/preview.png"},
            "icon": [],
            "languages": ["fr"],
            "configuration": {
                "urls": {"streaming": None, "status": None},
                "vapid": {"public_key": ""},
                "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
                "statuses": {
                    "max_characters": MAX_CHARACTERS,
                    "max_media_attachments": MAX_MEDIA_ATTACHMENTS,
                    "characters_reserved_per_url": URL_WEIGHT,
                },
                "media_attachments": {
                    "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp"],  # no video here
                    "description_limit": MASTODON_DESCRIPTION_LIMIT,
                    "image_size_limit": self.mastodon_image_size_limit,
                    "image_matrix_limit": 33177600,
                    "video_size_limit": 103809024,
                    "video_frame_rate_limit": 120,
                    "video_matrix_limit": 8294400,
                },
                "polls": {
                    "max_options": 4,
                    "max_characters_per_option": 50,
                    "min_expiration": 300,
                    "max_expiration": 2629746,
                },
                "translation": {"enabled": False},
            },
            "registrations": {"enabled": False, "approval_required": False, "message": None, "url": None},
            "api_versions": {"mastodon": 2},
            "contact": {"email": "", "account": None},
            "rules": [],
        }

    def _account(self) -> dict[str, Any]:
        base = self.mastodon_url()
        return {
            "id": "1",
            "username": "demo",
            "acct": "demo",
            "display_name": "Commune de démonstration",
            "locked": False,
            "bot": True,
            "group": False,
            "discoverable": True,
            "created_at": _iso(self._started_at // 86400 * 86400),
            "note": "",
            "url": f"{base}/@demo",
            "uri": f"{base}/users/demo",
            "avatar": f"{base}/avatars/original/missing.png",
            "header": f"{base}/headers/original/missing.png",
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": len(self._statuses) - len(self._deleted),
            "emojis": [],
            "fields": [],
        }

    def _next_status_id(self, now: float) -> str:
        # Mastodon ids are snowflakes: milliseconds since the epoch shifted 16 bits, plus a sequence.
        with self._lock:
            self._last_status_id = max(self._last_status_id + 1, int(now * 1000) << 16)
            return str(self._last_status_id)

    def _mastodon_post(self, request: Request) -> Reply:
        fault = self.take_fault("mastodon")
        self.wait_fault(fault)
        try:
            form = parse_body(request.content_type, request.body)
        except BadRequest as bad:
            form = request.body.decode("utf-8", "replace")
            reply = Reply.json(400, {"error": str(bad)}, self._rate_headers())
            self.record("mastodon", request, reply, form)
            return reply
        if fault is not None and fault.status is not None:
            reply = self._mastodon_fault(fault)
            self.record("mastodon", request, reply, form)
            return reply
        token = self.bearer(request)
        if token is None:
            reply = Reply.json(401, {"error": INVALID_TOKEN})
            self.record("mastodon", request, reply, form)
            return reply
        key = request.headers.get("idempotency-key", "").strip()
        if key:
            duplicate = self._idempotent_duplicate(token, key, request, form)
            if duplicate is not None:
                return duplicate
        reply, status = self._create_status(request, form, token, key)
        attachments = status["media_attachments"] if status else []
        self.record(
            "mastodon",
            request,
            reply,
            form,
            external_id=status["id"] if status else None,
            media_attachments=attachments,
        )
        return reply

    def _idempotent_duplicate(self, token: str, key: str, request: Request, form: Any) -> Reply | None:
        """Mastodon's PostStatusService answers a known Idempotency-Key with the status it already made."""
        with self._lock:
            now = time.time()
            for known in [k for k, entry in self._idempotency.items() if entry.expires <= now]:
                del self._idempotency[known]
            entry = self._idempotency.get((token, key))
            if entry is None:
                return None
            entry.attempts += 1
            status = self._statuses.get(entry.status_id)
            gone = entry.status_id in self._deleted
            attempt = entry.attempts
        if status is None or gone:
            reply = Reply.json(404, {"error": NOT_FOUND}, self._rate_headers())
        else:
            reply = Reply.json(200, status, self._rate_headers())
        attachments = status["media_attachments"] if status is not None and not gone else []
        self.record(
            "mastodon",
            request,
            reply,
            form,
            external_id=entry.status_id,
            duplicate=True,
            attempt=attempt,
            media_attachments=attachments,
        )
        return reply

    def _create_status(self, request: Request, form: Any, token: str, key: str) -> tuple[Reply, dict[str, Any] | None]:
        headers = self._rate_headers()
        if not isinstance(form, dict):
            return Reply.json(400, {"error": "Bad request"}, headers), None
        text = str(form.get("status") or "")
        spoiler = str(form.get("spoiler_text") or "")
        media = form.get("media_ids", form.get("media_ids[]")) or []
        media_ids = [str(item) for item in media] if isinstance(media, list) else [str(media)]
        visibility = str(form.get("visibility") or "public")
        language = form.get("language") or None
        with self._lock:
            # Looked up, checked and attached under one lock: two statuses cannot take the same upload.
            uploads, media_problem = self._mastodon_attachable(token, media_ids)
            invalid = _status_error(text, spoiler, visibility, media_ids, media_problem)
            if invalid is not None:
                return Reply.json(422, {"error": invalid}, headers), None
            return self._store_status(
                form,
                text=text,
                spoiler=spoiler,
                visibility=visibility,
                language=language,
                uploads=uploads,
                token=token,
                key=key,
                headers=headers,
            )

    def _mastodon_attachable(self, token: str, media_ids: list[str]) -> tuple[list[_MastodonUpload], str | None]:
        """The token's uploads for `media_ids`, or why they cannot be attached (Mastodon's words)."""
        if len(media_ids) > MAX_MEDIA_ATTACHMENTS:
            return [], None  # _status_error says so
        with self._lock:
            found = {
                media_id: upload
                for media_id in media_ids
                if (upload := self._media.get(media_id)) is not None
                and upload.token == token
                and upload.status_id is None
            }
            missing = [media_id for media_id in media_ids if media_id not in found]
            if missing:
                return [], f"Media attachment {', '.join(missing)} not found or already attached to another post"
            uploads = [found[media_id] for media_id in dict.fromkeys(media_ids)]
            if any(upload.attachment["url"] is None for upload in uploads):
                return [], NOT_PROCESSED
            return uploads, None

    def _store_status(
        self,
        form: dict[str, Any],
        *,
        text: str,
        spoiler: str,
        visibility: str,
        language: Any,
        uploads: list[_MastodonUpload],
        token: str,
        key: str,
        headers: dict[str, str],
    ) -> tuple[Reply, dict[str, Any]]:
        now = time.time()
        status_id = self._next_status_id(now)
        base = self.mastodon_url()
        status: dict[str, Any] = {
            "id": status_id,
            "created_at": _iso(now),
            "edited_at": None,
            "in_reply_to_id": None,
            "in_reply_to_account_id": None,
            "sensitive": bool(spoiler) or str(form.get("sensitive", "")).lower() in ("true", "1"),
            "spoiler_text": spoiler,
            "visibility": visibility,
            "language": str(language) if language else None,
            "uri": f"{base}/users/demo/statuses/{status_id}",
            "url": f"{base}/@demo/{status_id}",
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "favourited": False,
            "reblogged": False,
            "muted": False,
            "bookmarked": False,
            "pinned": False,
            "content": mastodon_html(text),
            "filtered": [],
            "reblog": None,
            "application": {"name": "Crieur", "website": None},
            "account": self._account(),
            "media_attachments": [copy.deepcopy(upload.attachment) for upload in uploads],
            "mentions": [],
            "tags": [],
            "emojis": [],
            "card": None,
            "poll": None,
        }
        with self._lock:
            for upload in uploads:
                upload.status_id = status_id
            self._statuses[status_id] = status
            self._sources[status_id] = text
            if key:
                self._idempotency[(token, key)] = _Idempotent(status_id, now + IDEMPOTENCY_SECONDS)
        return Reply.json(200, status, headers), status

    def _mastodon_upload(self, request: Request) -> Reply:
        """POST /api/v2/media: an image and its description; 202, processed once it has been looked at."""
        fault = self.take_fault("mastodon")
        self.wait_fault(fault)
        try:
            parts = _mastodon_multipart(request.content_type, request.body)
        except BadRequest as bad:
            reply = Reply.json(400, {"error": str(bad)}, self._rate_headers())
            self.record("mastodon", request, reply, None)
            return reply
        file = parts.get("file")
        description = parts["description"][2].decode("utf-8", "replace") if "description" in parts else ""
        shown: dict[str, Any] = {
            "description": description,
            "file": None if file is None else {"filename": file[0], "content_type": file[1], "size": len(file[2])},
        }
        if fault is not None and fault.status is not None:
            reply = self._mastodon_fault(fault)
            self.record("mastodon", request, reply, shown)
            return reply
        token = self.bearer(request)
        if token is None:
            reply = Reply.json(401, {"error": INVALID_TOKEN})
            self.record("mastodon", request, reply, shown)
            return reply
        content = file[2] if file is not None else b""
        mime, problem = _mastodon_image_problem(content, description, self.mastodon_image_size_limit)
        if problem is not None or mime is None:
            reply = Reply.json(422, {"error": problem}, self._rate_headers())
            self.record("mastodon", request, reply, shown)
            return reply
        size = _mastodon_dimensions(content)
        if size is None:
            reply = Reply.json(422, {"error": "Error processing thumbnail for uploaded media"}, self._rate_headers())
            self.record("mastodon", request, reply, shown)
            return reply
        width, height = size
        media_id = self._next_status_id(time.time())  # media ids are snowflakes too
        attachment: dict[str, Any] = {
            "id": media_id,
            "type": "image",
            "url": None,
            "preview_url": None,
            "remote_url": None,
            "preview_remote_url": None,
            "text_url": None,
            "meta": {
                "original": {"width": width, "height": height, "size": f"{width}x{height}", "aspect": width / height},
                "focus": {"x": 0.0, "y": 0.0},
            },
            "description": description or None,
            "blurhash": None,
        }
        with self._lock:
            self._media[media_id] = _MastodonUpload(token, content, mime, attachment)
            answer = copy.deepcopy(attachment)
        reply = Reply.json(202, answer, self._rate_headers())
        self.record("mastodon", request, reply, shown, external_id=media_id)
        return reply

    def _mastodon_media(self, request: Request, media_id: str) -> Reply:
        """GET /api/v1/media/:id: 206 while processing, then 200 with its url; the token's unattached media only."""
        token = self.bearer(request)
        if token is None:
            return Reply.json(401, {"error": INVALID_TOKEN})
        with self._lock:
            upload = self._media.get(media_id)
            if upload is None or upload.token != token or upload.status_id is not None:
                return Reply.json(404, {"error": NOT_FOUND}, self._rate_headers())
            if upload.pending_looks > 0:
                upload.pending_looks -= 1
                return Reply.json(206, copy.deepcopy(upload.attachment), self._rate_headers())
            if upload.attachment["url"] is None:
                url = f"{self.mastodon_url()}/system/media/{media_id}"
                upload.attachment["url"] = upload.attachment["preview_url"] = url
            return Reply.json(200, copy.deepcopy(upload.attachment), self._rate_headers())

    def _mastodon_file(self, media_id: str) -> Reply:
        """The uploaded bytes, where the attachment's url points."""
        with self._lock:
            upload = self._media.get(media_id)
        if upload is None:
            return Reply.json(404, {"error": NOT_FOUND})
        return Reply(200, upload.content, upload.mime, {"Cache-Control": "public, max-age=31536000, immutable"})

    def _mastodon_fault(self, fault: Fault) -> Reply:
        status = cast(int, fault.status)
        if status >= 500:
            headers: dict[str, str] = {}  # a crash or a proxy's answer: no rate-limit bookkeeping
        elif status == 429:
            headers = self._rate_headers(exhausted=True, reset_in=fault.retry_after)
        else:
            headers = self._rate_headers()
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        message = MASTODON_ERRORS.get(status) or HTTPStatus(status).phrase
        return Reply.json(status, {"error": message}, headers)

    def _mastodon_get(self, request: Request, status_id: str) -> Reply:
        token = self.bearer(request)
        with self._lock:
            status = self._statuses.get(status_id)
            visible = status is not None and status_id not in self._deleted
            if visible and status is not None and status["visibility"] in ("private", "direct") and token is None:
                visible = False
        if not visible:
            return Reply.json(404, {"error": NOT_FOUND}, self._rate_headers())
        return Reply.json(200, status, self._rate_headers())

    def _mastodon_account_statuses(self, request: Request, account_id: str) -> Reply:
        """GET /api/v1/accounts/:id/statuses: newest first, `limit` (20, at most 40), `max_id`, `since_id`;
        a Link header (rel="next") while older statuses remain. The account's public and unlisted ones without
        a token; the others with a token."""
        if account_id != self._account()["id"]:
            return Reply.json(404, {"error": NOT_FOUND}, self._rate_headers())
        query = {name: values[-1] for name, values in request.query.items()}
        try:
            limit = min(40, max(1, int(query.get("limit") or 20)))
            max_id, since_id = int(query.get("max_id") or 0), int(query.get("since_id") or 0)
        except ValueError:
            return Reply.json(400, {"error": "Bad request"}, self._rate_headers())
        token = self.bearer(request)
        with self._lock:
            listed = [
                status
                for status_id, status in sorted(self._statuses.items(), key=lambda item: int(item[0]), reverse=True)
                if status_id not in self._deleted
                and (not max_id or int(status_id) < max_id)
                and int(status_id) > since_id
                and (token is not None or status["visibility"] in ("public", "unlisted"))
            ]
        page = listed[:limit]
        headers = self._rate_headers()
        if len(listed) > limit:
            older = urllib.parse.urlencode({"limit": limit, "max_id": page[-1]["id"]})
            headers["Link"] = f'<{self.mastodon_url()}/api/v1/accounts/{account_id}/statuses?{older}>; rel="next"'
        return Reply.json(200, page, headers)

    def _mastodon_delete(self, request: Request, status_id: str) -> Reply:
        fault = self.take_fault("mastodon")
        self.wait_fault(fault)
        if fault is not None and fault.status is not None:
            reply = self._mastodon_fault(fault)
            self.record("mastodon", request, reply, None, external_id=status_id)
            return reply
        if self.bearer(request) is None:
            reply = Reply.json(401, {"error": INVALID_TOKEN})
            self.record("mastodon", request, reply, None, external_id=status_id)
            return reply
        with self._lock:
            status = self._statuses.get(status_id)
            if status is None or status_id in self._deleted:
                deleted = None
            else:
                self._deleted.add(status_id)
                # Like Mastodon, the answer carries the source text so a client can "delete and redraft".
                deleted = {**status, "text": self._sources.get(status_id, "")}
        reply = (
            Reply.json(404, {"error": NOT_FOUND}, self._rate_headers())
            if deleted is None
            else Reply.json(200, deleted, self._rate_headers())
        )
        self.record("mastodon", request, reply, None, external_id=status_id)
        return reply

    # -- Standard Webhooks receiver --------------------------------------------------------------------------

    def _webhook(self, request: Request, name: str) -> Reply:
        if request.method != "POST":
            return Reply.json(405, {"error": "Method not allowed"}, {"Allow": "POST"})
        fault = self.take_fault("webhook")
        self.wait_fault(fault)
        try:
            body = json.loads(request.body) if request.body.strip() else None
        except ValueError:
            body = request.body.decode("utf-8", "replace")
        message_id = request.headers.get("webhook-id")
        if fault is not None and fault.status is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            reply = Reply.json(fault.status, {"error": HTTPStatus(fault.status).phrase}, headers)
            self.record("webhook", request, reply, body, external_id=message_id, name=name)
            return reply
        with self._lock:
            secret = self._webhook_secrets.get(name)
        signature_valid: bool | None = None
        if secret is not None:
            try:
                verify_webhook([secret], request.headers, request.body)
                signature_valid = True
            except InvalidSignature as invalid:
                reply = Reply.json(401, {"error": "invalid signature", "detail": str(invalid)})
                self.record(
                    "webhook",
                    request,
                    reply,
                    body,
                    external_id=message_id,
                    signature_valid=False,
                    name=name,
                    rejected=str(invalid),
                )
                return reply
        with self._lock:
            seen = self._webhook_ids.setdefault(name, set())
            duplicate = message_id is not None and message_id in seen
            if message_id is not None:
                seen.add(message_id)
        reply = Reply(204)
        self.record(
            "webhook",
            request,
            reply,
            body,
            external_id=message_id,
            duplicate=duplicate,
            signature_valid=signature_valid,
            name=name,
        )
        return reply

    # -- the page --------------------------------------------------------------------------------------------

    def page(self) -> str:
        """A small French page listing what each channel received, newest first."""
        sections = []
        for channel, title in (("mastodon", "Mastodon"), ("webhook", "Webhook")):
            items = list(reversed(self.received(channel)))
            if not items:
                sections.append(
                    f'<section aria-labelledby="h-{channel}"><h2 id="h-{channel}">{title}</h2>'
                    "<p>Rien reçu pour l'instant.</p></section>"
                )
                continue
            rows = "".join(_page_row(item) for item in items)
            sections.append(
                f'<section aria-labelledby="h-{channel}"><h2 id="h-{channel}">{title}</h2>'
                f"<table><caption>{title} : {len(items)} requête(s), la plus récente en premier</caption>"
                '<thead><tr><th scope="col">Reçu à</th><th scope="col">Requête</th>'
                '<th scope="col">Réponse</th><th scope="col">Identifiant</th>'
                '<th scope="col">Remarques</th><th scope="col">Contenu</th></tr></thead>'
                f"<tbody>{rows}</tbody></table></section>"
            )
        sections += [imitation.page_section() for imitation in self.imitations.values()]
        pending = self.faults()
        faults = (
            "<ul>"
            + "".join(
                f"<li><code>{html.escape(json.dumps(fault, ensure_ascii=False))}</code></li>" for fault in pending
            )
            + "</ul>"
            if pending
            else "<p>Aucune panne simulée en attente.</p>"
        )
        return (
            '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            "<title>Bac à sable Crieur</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:1rem 2rem;line-height:1.4}"
            "table{border-collapse:collapse;width:100%}th,td{border:1px solid #767676;padding:.3rem .5rem;"
            "text-align:left;vertical-align:top}caption{text-align:left;font-weight:bold;margin:.5rem 0}"
            "td pre{white-space:pre-wrap;margin:0;max-width:60ch}</style></head>"
            "<body><header><h1>Bac à sable Crieur</h1>"
            "<p>Ce que chaque canal a reçu de Crieur sur cette machine. Rien n'est publié ailleurs.</p></header>"
            f"<main>{''.join(sections)}"
            f'<section aria-labelledby="h-pannes"><h2 id="h-pannes">Pannes simulées</h2>{faults}</section>'
            "</main></body></html>\n"
        )


def _status_error(
    text: str, spoiler: str, visibility: str, media_ids: list[str], media_problem: str | None = None
) -> str | None:
    """Mastodon's validation of a new status, with its messages (answered as 422).

    `media_problem` is why the `media_ids` cannot be attached (unknown, another account's, already
    attached, still processing), checked like Mastodon before the text; a status with media may have none.
    """
    if visibility not in VISIBILITIES:
        return f"'{visibility}' is not a valid visibility"
    if len(media_ids) > MAX_MEDIA_ATTACHMENTS:
        return f"Cannot attach more than {MAX_MEDIA_ATTACHMENTS} files"
    if media_problem is not None:
        return media_problem
    if not text.strip() and not media_ids:
        return BLANK_TEXT
    if mastodon_length(text) + mastodon_length(spoiler) > MAX_CHARACTERS:
        return f"Validation failed: Text character limit of {MAX_CHARACTERS} exceeded"
    return None


def _mastodon_multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, str, bytes]]:
    """A multipart body's parts by name: (filename, content type, bytes), the bytes kept as they came."""
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        raise BadRequest("multipart/form-data expected")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        raise BadRequest("multipart body without parts")
    parts: dict[str, tuple[str | None, str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        parts[name] = (part.get_filename(), part.get_content_type(), payload if isinstance(payload, bytes) else b"")
    return parts


def _mastodon_image_problem(content: bytes, description: str, size_limit: int) -> tuple[str | None, str | None]:
    """(the image's type sniffed from its bytes, or why Mastodon refuses the upload, in its words)."""
    if not content:
        return None, "Validation failed: File can't be blank"
    mime = next(
        (kind for offset, magic, kind in MASTODON_IMAGE_SIGNATURES if content[offset : offset + len(magic)] == magic),
        None,
    )
    if mime is None:
        return None, INVALID_FILE_TYPE
    if len(content) > size_limit:
        return mime, f"Validation failed: File file size must be less than {_mastodon_human_size(size_limit)}"
    if len(description) > MASTODON_DESCRIPTION_LIMIT:
        return mime, f"Validation failed: Description is too long (maximum is {MASTODON_DESCRIPTION_LIMIT} characters)"
    return mime, None


def _mastodon_dimensions(content: bytes) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            image.verify()
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    return (width, height) if width and height else None


def _mastodon_human_size(size: int) -> str:
    """Rails' number_to_human_size, as in Mastodon's messages: 16 MB, 48.8 KB."""
    if size < 1024:
        return f"{size} Bytes"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} GB"


def _page_row(item: dict[str, Any]) -> str:
    notes = []
    if item.get("duplicate"):
        notes.append("doublon")
    if item.get("signature_valid") is True:
        notes.append("signature valide")
    elif item.get("signature_valid") is False:
        notes.append("signature refusée")
    body = item.get("body")
    images = ""
    if item["channel"] == "mastodon" and isinstance(body, dict) and "status" in body:
        content = str(body["status"])
        images = _mastodon_images(item.get("media_attachments") or [])
    elif item["channel"] == "mastodon" and isinstance(body, dict) and item["path"].endswith("/api/v2/media"):
        file = body.get("file") or {}
        content = f"Image envoyée ({file.get('size', 0)} octets), texte alternatif : {body.get('description') or '—'}"
    elif isinstance(body, str):
        content = body
    elif body is None:
        content = ""
    else:
        content = json.dumps(body, ensure_ascii=False, indent=1)
    if len(content) > 600:
        content = content[:600] + "…"
    cells = (
        html.escape(str(item["at"])),
        html.escape(f"{item['method']} {item['path']}"),
        html.escape(str(item["status"])),
        html.escape(str(item.get("id") or "")),
        html.escape(", ".join(notes)),
        f"<pre>{html.escape(content)}</pre>{images}",
    )
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _mastodon_images(attachments: list[dict[str, Any]]) -> str:
    """A status's images as Mastodon shows them: the uploaded bytes, with the alt text as `alt`."""
    shown = [
        f'<img src="{html.escape(str(attachment["url"]))}"'
        f' alt="{html.escape(str(attachment.get("description") or ""))}"'
        ' style="max-width:15rem;height:auto;margin:.3rem .3rem 0 0" loading="lazy">'
        for attachment in attachments
        if attachment.get("url")
    ]
    return f"<div>{''.join(shown)}</div>" if shown else ""


# ------------------------------------------------------------------------------------------- the HTTP server


def _verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the listen backlog: each Web Push chunk opens 50 connections at once (default 5)

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, family: socket.AddressFamily) -> None:
        self.address_family = family
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall without a network: skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Ends kept-alive connections too, so that nothing answers once the sandbox has stopped."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if _verbose():
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CrieurSandbox/1"
    timeout = 60

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle and delayed ACKs cost 40 ms a request.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cast(_Server, self.server).track(self.connection, True)

    def finish(self) -> None:
        cast(_Server, self.server).track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if _verbose():
            super().log_message(format, *args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(65537)
                length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += length
                if size > MAX_BODY_BYTES:
                    raise BadRequest("body too large")
                chunks.append(self.rfile.read(length))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise BadRequest("body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        try:
            body = self._read_body()
        except (BadRequest, ValueError) as bad:
            self.close_connection = True
            self._send(Reply.json(413 if "large" in str(bad) else 400, {"error": str(bad)}))
            return
        request = Request(
            method=self.command,
            path=split.path or "/",
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            body=body,
        )
        self._send(cast(_Server, self.server).sandbox.handle(request))

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.status not in (204, 304):
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.body and self.command != "HEAD" and reply.status not in (204, 304):
                self.wfile.write(reply.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a delay fault outlasting its timeout): nothing more to say.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch


def main() -> None:
    """`python -m infra.local.sandbox`: the sandbox alone, for trying an adapter by hand."""
    import argparse

    parser = argparse.ArgumentParser(description="Bac à sable des canaux de Crieur (boucle locale uniquement).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--mastodon-token", action="append", default=[], help="jeton Bearer accepté")
    parser.add_argument("--webhook-secret", action="append", default=[], help="NOM=whsec_…")
    args = parser.parse_args()
    sandbox = Sandbox(args.host, args.port)
    for token in args.mastodon_token:
        sandbox.register_mastodon_token(token)
    for pair in args.webhook_secret:
        name, _, secret = pair.partition("=")
        sandbox.register_webhook_secret(name, secret)
    sandbox.start()
    print(f"Bac à sable : {sandbox.url}/  (Mastodon : {sandbox.mastodon_url()})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
