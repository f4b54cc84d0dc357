"""Firebase Cloud Messaging HTTP v1 as the sandbox imitates it, with Google's OAuth2 token endpoint.

HTTP surface under `/fcm`:

- `POST /token`: the JWT-bearer grant (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`,
  `assertion`=RS256 JWT signed by the demo service account's key, `aud` this URL, `scope` including
  firebase.messaging, at most an hour long) → `{"access_token", "expires_in", "token_type": "Bearer"}`;
  otherwise Google's `{"error": "invalid_grant", "error_description": …}` (400).
- `POST /v1/projects/{project_id}/messages:send` `{"message", "validate_only"}`: Bearer token minted above
  (unknown or expired → 401 UNAUTHENTICATED), the demo project only (another → 403 PERMISSION_DENIED),
  exactly one of token/topic/condition, topic and condition syntax (≤ 5 topics), `data` values strings,
  payload (notification + data as JSON) ≤ 2048 bytes for topics and conditions, 4096 for a token.
  Answers `{"name": "projects/{project_id}/messages/{id}"}`; validate_only answers a fake id and sends nothing.

Errors have FCM's shape `{"error": {code, message, status, details: [{"@type": "…FcmError", "errorCode"}]}}`.
Faults apply to messages:send (not validate_only) and answer the FCM error their status stands for:
400 INVALID_ARGUMENT, 401 THIRD_PARTY_AUTH_ERROR, 403 SENDER_ID_MISMATCH, 404 UNREGISTERED,
429 QUOTA_EXCEEDED, 500 INTERNAL, 503 (and other 5xx) UNAVAILABLE, with Retry-After when given.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from infra.local.sandbox import BadRequest, Fault, Reply, Request, Sandbox

PROJECT_ID = "commune-demo-app"
CLIENT_EMAIL = f"crieur@{PROJECT_ID}.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_SECONDS = 3599
TOPIC_LIMIT = 2048
TOKEN_LIMIT = 4096
MAX_CONDITION_TOPICS = 5
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
RESERVED_DATA = frozenset({"from", "notification", "message_type"})
MESSAGE_FIELDS = frozenset(
    {"name", "data", "notification", "android", "webpush", "apns", "fcm_options", "token", "topic", "condition"}
)
_TOPIC = re.compile(r"(?:/topics/)?([a-zA-Z0-9\-_.~%]{1,900})")
_CONDITION_TOKEN = re.compile(r"\s*(?:'([a-zA-Z0-9\-_.~%]+)' in topics|(&&)|(\|\|)|(!)|(\()|(\)))")
_TTL = re.compile(r"\d{1,9}(?:\.\d{1,9})?s")
FAULT_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("INVALID_ARGUMENT", "INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS or Web Push Service"),
    403: ("PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    404: ("NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for quota metric 'Sent messages'."),
    500: ("INTERNAL", "INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def fcm_error(code: int, status: str, message: str, error_code: str | None = None) -> dict[str, Any]:
    details = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}] if error_code else []
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


def condition_topics(condition: str) -> list[str]:
    """The topics of a condition, checking FCM's grammar (quoted topics, in topics, &&, ||, !, parentheses)."""
    topics: list[str] = []
    expect_operand, depth, position = True, 0, 0
    while position < len(condition.rstrip()):
        match = _CONDITION_TOKEN.match(condition, position)
        if match is None:
            raise ValueError(f"Invalid condition expression provided near position {position}.")
        topic, conjunction, disjunction, negation, opening, closing = match.groups()
        if topic or negation or opening:
            if not expect_operand:
                raise ValueError("Invalid condition expression provided: missing operator.")
            if topic:
                topics.append(topic)
                expect_operand = False
            depth += 1 if opening else 0
        else:
            if expect_operand:
                raise ValueError("Invalid condition expression provided: missing operand.")
            if closing:
                depth -= 1
                if depth < 0:
                    raise ValueError("Invalid condition expression provided: unbalanced parentheses.")
            else:
                expect_operand = bool(conjunction or disjunction)
        position = match.end()
    if expect_operand or depth or not topics:
        raise ValueError("Invalid condition expression provided.")
    if len(topics) > MAX_CONDITION_TOPICS:
        raise ValueError(f"Invalid condition expression: at most {MAX_CONDITION_TOPICS} topics.")
    return topics


def payload_size(message: dict[str, Any]) -> int:
    counted = {key: message[key] for key in ("notification", "data") if key in message}
    return len(json.dumps(counted, ensure_ascii=False, separators=(",", ":")).encode())


@dataclass
class _Notification:
    name: str
    target: str
    title: str
    body: str
    image: str | None
    data: dict[str, str]
    at: float


class PushImitation:
    """FCM HTTP v1 and the service account's token endpoint (see the module docstring)."""

    channel: ClassVar[str] = "push"
    prefix: ClassVar[str] = "/fcm"
    base_url_variable: ClassVar[str | None] = "CRIEUR_FCM_BASE_URL"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._lock = threading.RLock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._tokens: dict[str, float] = {}
        self._notifications: list[_Notification] = []
        self._ids = itertools.count(int(time.time() * 1000))

    # -- demo and control ------------------------------------------------------------------------------------

    def service_account(self) -> dict[str, str]:
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": "bac-a-sable",
            "private_key": pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "token_uri": f"{self.sandbox.url}{self.prefix}/token",
        }

    def demo_channel(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "settings": {"project_id": PROJECT_ID},
            "credentials": {"service_account_json": json.dumps(self.service_account())},
        }

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (as after an hour)."""
        with self._lock:
            self._tokens.clear()

    def notifications(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(vars(item)) for item in self._notifications]

    def clear(self) -> None:
        with self._lock:
            self._notifications.clear()

    # -- HTTP ------------------------------------------------------------------------------------------------

    def handle(self, request: Request, subpath: str) -> Reply:
        if subpath == "/token" and request.method == "POST":
            return self._token(request)
        match = re.fullmatch(r"/v1/projects/([^/]+)/messages:send", subpath)
        if match and request.method == "POST":
            return self._send(request, match.group(1))
        return Reply.json(404, fcm_error(404, "NOT_FOUND", "Requested entity was not found."))

    def _token(self, request: Request) -> Reply:
        form = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace")))
        if form.get("grant_type") != GRANT:
            return Reply.json(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."})
        problem = self._assertion_problem(form.get("assertion", ""))
        if problem:
            return Reply.json(400, {"error": "invalid_grant", "error_description": problem})
        token = "ya29.bac-a-sable." + base64.urlsafe_b64encode(next(self._ids).to_bytes(8, "big")).decode()
        with self._lock:
            self._tokens[token] = time.time() + TOKEN_SECONDS
        return Reply.json(200, {"access_token": token, "expires_in": TOKEN_SECONDS, "token_type": "Bearer"})

    def _assertion_problem(self, assertion: str) -> str | None:  # noqa: PLR0911 - one return per JWT check
        parts = assertion.split(".")
        if len(parts) != 3:
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        try:
            header, claims = (json.loads(_b64decode(part)) for part in parts[:2])
            self._key.public_key().verify(
                _b64decode(parts[2]), f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return "Invalid JWT Signature."
        except ValueError:
            return "Invalid JWT: cannot parse."
        now = time.time()
        if header.get("alg") != "RS256":
            return "Invalid JWT: unsupported algorithm."
        if claims.get("iss") != CLIENT_EMAIL:
            return "Invalid grant: account not found"
        if claims.get("aud") != f"{self.sandbox.url}{self.prefix}/token":
            return "Invalid JWT: Failed audience check."
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 or exp < now or iat > now + 300:
            return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
        if SCOPE not in str(claims.get("scope", "")).split():
            return "Invalid OAuth scope or ID token audience provided."
        return None

    def _bearer_valid(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            expiry = self._tokens.get(token.strip())
        return scheme.lower() == "bearer" and expiry is not None and expiry > time.time()

    def _send(self, request: Request, project: str) -> Reply:
        if not self._bearer_valid(request):
            return Reply.json(
                401,
                fcm_error(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
                    "or other valid authentication credential.",
                ),
            )
        if project != PROJECT_ID:
            return Reply.json(
                403,
                fcm_error(
                    403,
                    "PERMISSION_DENIED",
                    f"Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager."
                    f"googleapis.com/projects/{project}' (or it may not exist).",
                ),
            )
        try:
            body = json.loads(request.body)
            if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
                raise BadRequest("message is required")
            message: dict[str, Any] = body["message"]
            target = self._validate(message)
        except (ValueError, BadRequest) as bad:
            return Reply.json(400, fcm_error(400, "INVALID_ARGUMENT", str(bad), "INVALID_ARGUMENT"))
        if body.get("validate_only") is True:
            return Reply.json(200, {"name": f"projects/{project}/messages/fake_message_id"})
        fault = self.sandbox.take_fault(self.channel)
        self.sandbox.wait_fault(fault)
        if fault is not None and fault.status is not None:
            reply = self._fault_reply(fault)
            self.sandbox.record(self.channel, request, reply, body)
            return reply
        name = f"projects/{project}/messages/{next(self._ids)}"
        notification = message.get("notification") or {}
        with self._lock:
            self._notifications.append(
                _Notification(
                    name,
                    target,
                    str(notification.get("title", "")),
                    str(notification.get("body", "")),
                    notification.get("image"),
                    dict(message.get("data") or {}),
                    request.at,
                )
            )
        reply = Reply.json(200, {"name": name})
        self.sandbox.record(self.channel, request, reply, body, external_id=name)
        return reply

    @staticmethod
    def _fault_reply(fault: Fault) -> Reply:
        status = fault.status or 500
        grpc, code, message = FAULT_ERRORS.get(status, FAULT_ERRORS[503 if status >= 500 else 400])
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return Reply.json(status, fcm_error(status, grpc, message, code), headers)

    @staticmethod
    def _validate(message: dict[str, Any]) -> str:  # noqa: PLR0912 - one check per documented rule
        """The message's target; raises ValueError with FCM's wording for an invalid message."""
        unknown = sorted(set(message) - MESSAGE_FIELDS)
        if unknown:
            raise ValueError(
                f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'message': Cannot find field."
            )
        targets = [key for key in ("token", "topic", "condition") if key in message]
        if len(targets) != 1:
            raise ValueError("Exactly one of token, topic or condition must be specified.")
        kind = targets[0]
        value = message[kind]
        if not isinstance(value, str) or not value:
            raise ValueError(f"Invalid {kind}.")
        if kind == "topic" and not _TOPIC.fullmatch(value):
            raise ValueError("Invalid topic name.")
        if kind == "condition":
            condition_topics(value)
        data = message.get("data") or {}
        if not isinstance(data, dict) or not all(isinstance(item, str) for item in data.values()):
            raise ValueError("Invalid value at 'message.data': values must be strings.")
        for key in data:
            if key in RESERVED_DATA or key.startswith(("google", "gcm")):
                raise ValueError(f"Invalid data key: {key} is reserved.")
        notification = message.get("notification") or {}
        if not isinstance(notification, dict) or set(notification) - {"title", "body", "image"}:
            raise ValueError("Invalid JSON payload received at 'message.notification'.")
        android = message.get("android") or {}
        if android.get("priority", "normal").lower() not in ("normal", "high"):
            raise ValueError("Invalid value at 'message.android.priority'.")
        if "ttl" in android and not _TTL.fullmatch(str(android["ttl"])):
            raise ValueError("Invalid value at 'message.android.ttl' (Format: 3.5s).")
        for section in ("apns", "webpush"):
            headers = (message.get(section) or {}).get("headers") or {}
            if not all(isinstance(item, str) for item in headers.values()):
                raise ValueError(f"Invalid value at 'message.{section}.headers': values must be strings.")
        limit = TOKEN_LIMIT if kind == "token" else TOPIC_LIMIT
        if payload_size(message) > limit:
            raise ValueError(f"Message is too big: the payload must be at most {limit} bytes.")
        return f"{kind}: {value}"

    # -- the page --------------------------------------------------------------------------------------------

    def page_section(self) -> str:
        """Each notification as a phone shows it: app name, title, body, image."""
        with self._lock:
            shown = list(reversed(self._notifications))
        cards = "".join(self._card(item) for item in shown) or "<p>Aucune notification envoyée.</p>"
        return (
            '<section aria-labelledby="h-push"><h2 id="h-push">Application mobile (notifications)</h2>'
            f"<p>{len(shown)} notification(s) envoyée(s).</p>{cards}</section>"
        )

    @staticmethod
    def _card(item: _Notification) -> str:
        image = (
            f'<img src="{html.escape(item.image)}" alt="Image jointe à la notification" '
            'style="max-width:100%;border-radius:.5rem">'
            if item.image
            else ""
        )
        link = item.data.get("url", "")
        opened = f'<p><small>Ouvre : <a href="{html.escape(link)}">{html.escape(link)}</a></small></p>' if link else ""
        moment = time.strftime("%H:%M", time.localtime(item.at))
        return (
            '<article style="border:1px solid #767676;border-radius:1rem;padding:.5rem 1rem;margin:1rem 0;'
            'max-width:24rem">'
            f"<p><small>Commune · {moment}</small></p><h3>{html.escape(item.title)}</h3>"
            f"<p>{html.escape(item.body)}</p>{image}{opened}"
            f"<p><small>Destinataires : <code>{html.escape(item.target)}</code> · "
            f"<code>{html.escape(item.name)}</code></small></p></article>"
        )
