"""A Web Push service (RFC 8030) as the sandbox imitates it, playing the browsers' part too.

HTTP surface under `/webpush`:

- `POST /push/{id}`: one push message for a subscription this imitation created (`new_subscription()`).
  Checks `Authorization: vapid t=<JWT>, k=<key>` (RFC 8292: ES256 signature by `k`, `k` equal to the
  applicationServerKey the subscription was made with, `aud` = this origin, `exp` in the future and at
  most 24 h away), `TTL` present, `Content-Encoding: aes128gcm`, a body of at most 4096 bytes; then
  DECRYPTS the body with the subscription's private key (RFC 8291) and keeps what the browser would show.
  Answers 201 with a `Location`. An unknown subscription is 404, an unsubscribed one 410, a bad VAPID
  header 401/403, too large 413.

Faults: the channel's faults (`inject_fault("webpush", …)`) apply to the next pushes whatever their
subscription; `fail(id, status)` to one subscription's next push only.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from crieur.channels.webpush import b64url, b64url_decode, decrypt, public_key_bytes
from infra.local.sandbox import Reply, Request, Sandbox

VAPID_SUBJECT = "mailto:mairie@commune-demo.fr"
MAX_BODY = 4096
MAX_EXPIRY_SECONDS = 24 * 3600
_VAPID = re.compile(r"vapid\s+t=([^,\s]+)\s*,\s*k=([A-Za-z0-9_-]+)", re.IGNORECASE)


@dataclass
class _Browser:
    id: str
    key: ec.EllipticCurvePrivateKey
    auth: bytes
    server_key: str
    gone: bool = False
    faults: list[int] = field(default_factory=list)


@dataclass
class _Shown:
    subscription: str
    message: dict[str, Any]
    urgency: str
    ttl: str
    topic: str | None
    at: float


class WebpushImitation:
    """A push service and its browsers (see the module docstring)."""

    channel: ClassVar[str] = "webpush"
    prefix: ClassVar[str] = "/webpush"
    base_url_variable: ClassVar[str | None] = None

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._lock = threading.RLock()
        self._vapid = ec.generate_private_key(ec.SECP256R1())
        self._browsers: dict[str, _Browser] = {}
        self._shown: list[_Shown] = []
        self._ids = itertools.count(1)
        self._verified: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
        """(JWT, key) → its (header, claims) once the signature checked: a sender signs one token for many
        pushes, so each push costs one signature check at most (the claims are still checked every time)."""

    # -- demo and control ------------------------------------------------------------------------------------

    def vapid_private_key(self) -> str:
        return self._vapid.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def vapid_public_key(self) -> str:
        return b64url(public_key_bytes(self._vapid.public_key()))

    def demo_channel(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "settings": {"vapid_subject": VAPID_SUBJECT},
            "credentials": {"vapid_private_key": self.vapid_private_key()},
        }

    def new_subscription(self, application_server_key: str | None = None) -> dict[str, Any]:
        """What pushManager.subscribe() gives a page: {endpoint, expirationTime, keys {p256dh, auth}}."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        browser_id = f"sub{next(self._ids)}-{b64url(public_key_bytes(key.public_key())[1:9])}"
        with self._lock:
            self._browsers[browser_id] = _Browser(
                browser_id, key, auth, application_server_key or self.vapid_public_key()
            )
        return {
            "endpoint": f"{self.sandbox.url}{self.prefix}/push/{browser_id}",
            "expirationTime": None,
            "keys": {"p256dh": b64url(public_key_bytes(key.public_key())), "auth": b64url(auth)},
        }

    def unsubscribe(self, endpoint: str) -> None:
        """The browser dropped the subscription: its next push is answered 410 Gone."""
        with self._lock:
            self._browsers[endpoint.rsplit("/", 1)[-1]].gone = True

    def fail(self, endpoint: str, status: int, count: int = 1) -> None:
        with self._lock:
            self._browsers[endpoint.rsplit("/", 1)[-1]].faults.extend([status] * count)

    def received(self) -> list[dict[str, Any]]:
        """What each browser decrypted, oldest first."""
        with self._lock:
            return [dict(vars(item)) for item in self._shown]

    def clear(self) -> None:
        with self._lock:
            self._shown.clear()

    # -- HTTP ------------------------------------------------------------------------------------------------

    def handle(self, request: Request, subpath: str) -> Reply:  # noqa: PLR0911 - one return per RFC 8030 check
        match = re.fullmatch(r"/push/([A-Za-z0-9_-]+)", subpath)
        if match is None or request.method != "POST":
            return Reply.json(404, {"error": "Not found"})
        with self._lock:
            browser = self._browsers.get(match.group(1))
        if browser is None:
            return self._answer(request, Reply.json(404, {"error": "No such subscription"}))
        problem = self._vapid_problem(request, browser)
        if problem is not None:
            return self._answer(request, Reply.json(problem[0], {"error": problem[1]}))
        fault = self.sandbox.take_fault(self.channel)
        self.sandbox.wait_fault(fault)
        with self._lock:
            status = browser.faults.pop(0) if browser.faults else (fault.status if fault else None)
            gone = browser.gone
        if status is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault and fault.retry_after is not None else {}
            return self._answer(request, Reply.json(status, {"error": f"fault {status}"}, headers))
        if gone:
            return self._answer(request, Reply.json(410, {"error": "Subscription expired or unsubscribed"}))
        if "ttl" not in request.headers:
            return self._answer(request, Reply.json(400, {"error": "TTL header required"}))
        if request.headers.get("content-encoding", "").lower() != "aes128gcm":
            return self._answer(request, Reply.json(415, {"error": "Content-Encoding must be aes128gcm"}))
        if len(request.body) > MAX_BODY:
            return self._answer(request, Reply.json(413, {"error": "Payload too large"}))
        try:
            message = json.loads(decrypt(request.body, browser.key, browser.auth))
        except (ValueError, IndexError) as undecryptable:
            return self._answer(request, Reply.json(400, {"error": f"cannot decrypt: {undecryptable}"}))
        with self._lock:
            self._shown.append(
                _Shown(
                    browser.id,
                    message,
                    request.headers.get("urgency", "normal"),
                    request.headers["ttl"],
                    request.headers.get("topic"),
                    request.at,
                )
            )
            number = len(self._shown)
        reply = Reply(201, b"", headers={"Location": f"{self.sandbox.url}{self.prefix}/message/{number}"})
        return self._answer(request, reply, message)

    def _answer(self, request: Request, reply: Reply, message: Any = None) -> Reply:
        self.sandbox.record(self.channel, request, reply, message, external_id=request.path)
        return reply

    def _vapid_problem(self, request: Request, browser: _Browser) -> tuple[int, str] | None:  # noqa: PLR0911
        match = _VAPID.fullmatch(request.headers.get("authorization", "").strip())
        if match is None:
            return 401, "Authorization: vapid t=…, k=… required"
        token, key = match.groups()
        if key != browser.server_key:
            return 403, "VAPID key does not match the subscription's applicationServerKey"
        with self._lock:
            verified = self._verified.get((token, key))
        if verified is None:
            parts = token.split(".")
            if len(parts) != 3:
                return 401, "malformed JWT"
            try:
                header, claims = (json.loads(b64url_decode(part)) for part in parts[:2])
                public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
                raw = b64url_decode(parts[2])
                if len(raw) != 64:
                    return 401, "ES256 signature must be 64 bytes"
                signature = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
                public.verify(signature, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                return 401, "invalid JWT signature"
            except ValueError:
                return 401, "malformed JWT"
            with self._lock:
                self._verified[(token, key)] = (header, claims)
        else:
            header, claims = verified
        if header.get("alg") != "ES256":
            return 401, "alg must be ES256"
        if claims.get("aud") != self.sandbox.url:
            return 401, f"aud must be {self.sandbox.url}"
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp < time.time() or exp > time.time() + MAX_EXPIRY_SECONDS:
            return 401, "exp must be in the future and at most 24 hours away"
        return None

    # -- the page --------------------------------------------------------------------------------------------

    def page_section(self) -> str:
        with self._lock:
            shown = list(reversed(self._shown))
        cards = "".join(self._card(item) for item in shown) or "<p>Aucune notification reçue.</p>"
        return (
            '<section aria-labelledby="h-webpush"><h2 id="h-webpush">Notifications du site (Web Push)</h2>'
            f"<p>{len(shown)} notification(s) déchiffrée(s) par les navigateurs abonnés.</p>{cards}</section>"
        )

    @staticmethod
    def _card(item: _Shown) -> str:
        message = item.message
        link = str(message.get("url") or "")
        opened = f'<p><small>Ouvre : <a href="{html.escape(link)}">{html.escape(link)}</a></small></p>' if link else ""
        moment = time.strftime("%H:%M", time.localtime(item.at))
        return (
            '<article style="border:1px solid #767676;border-radius:.5rem;padding:.5rem 1rem;margin:1rem 0;'
            'max-width:24rem">'
            f"<p><small>Navigateur {html.escape(item.subscription)} · {moment} · urgence "
            f"{html.escape(item.urgency)}</small></p><h3>{html.escape(str(message.get('title', '')))}</h3>"
            f"<p>{html.escape(str(message.get('body', '')))}</p>{opened}</article>"
        )
