"""Bluesky imitation: the XRPC methods of a PDS that Crieur's Bluesky adapter uses, under `/bluesky/xrpc/`.

- `com.atproto.server.createSession` {identifier, password}: accessJwt, refreshJwt, did, handle; 401
  AuthenticationRequired for a wrong or revoked app password; at most 30 per 5 minutes per identifier
  (429 RateLimitExceeded), as on the PDS.
- `com.atproto.server.refreshSession` (Bearer refreshJwt): both tokens rotated; the old refresh token is
  revoked (400 ExpiredToken "Token has been revoked").
- `com.atproto.server.getSession` (Bearer accessJwt).
- `com.atproto.repo.uploadBlob` (raw bytes and their Content-Type): a blob reference; over 1,000,000 bytes,
  400 BlobTooLarge.
- `com.atproto.repo.createRecord` of an `app.bsky.feed.post`, checked as its lexicon says (text at most 300
  graphemes and 3,000 bytes, createdAt, at most 3 langs, facets, at most 4 images each with alt text and a
  blob of this account, or a link card); the rkey must be a TID; an rkey already taken answers 400
  RecordAlreadyExists (PDS versions before that error answered a bare 500, which the adapter also copes
  with). One check is stricter than the PDS: facet byte ranges must lie inside the text and on UTF-8
  character boundaries (the PDS stores them anyway, and the app then draws the links wrong).
- `com.atproto.repo.getRecord`, `com.atproto.repo.deleteRecord` (succeeds whether or not the record exists,
  as on the PDS) and `com.atproto.sync.getBlob` (the page shows the images through it).

Tokens: 401 AuthMissing without one, 400 InvalidToken when unknown, 400 ExpiredToken once expired (after
`access_seconds`, or at once after `expire_access_tokens()`). Answers carry the PDS's RateLimit-Limit,
-Remaining, -Reset (epoch seconds) and -Policy headers, and no Retry-After; repo writes spend points per
account as the PDS does (create 3, delete 1, 5,000 an hour). Faults injected for "bluesky" apply to the write methods
(uploadBlob, createRecord, deleteRecord): a faulted request answers an XRPC error and changes nothing.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any, ClassVar

from crieur.media import sniff
from crieur.models import PARIS
from crieur.render.bluesky import (
    LINK,
    MAX_GRAPHEMES,
    MAX_TAG_BYTES,
    MAX_TAG_GRAPHEMES,
    MAX_TEXT_BYTES,
    TAG,
    grapheme_count,
)
from infra.local.sandbox import Fault, Reply, Request, Sandbox

CHANNEL = "bluesky"
POST = "app.bsky.feed.post"
IMAGES = "app.bsky.embed.images"
EXTERNAL = "app.bsky.embed.external"
MENTION = "app.bsky.richtext.facet#mention"
DEMO_HANDLE = "mairie-demo.bsky.social"
DEMO_APP_PASSWORD = "crie-urde-mo26-bsky"  # noqa: S105 - the sandbox's own demo account
DEMO_NAME = "Commune de démonstration"
SERVICE_DID = "did:web:pds.bac-a-sable.crieur.local"
ACCESS_SECONDS = 2 * 3600
REFRESH_SECONDS = 90 * 86400
MAX_BLOB_BYTES = 1_000_000
MAX_IMAGES = 4
MAX_LANGS = 3
SESSION_LIMIT = (30, 5 * 60)  # createSession per identifier
WRITE_LIMIT = (5000, 3600)  # repo write points per account
GLOBAL_LIMIT = (3000, 5 * 60)  # every other call
CREATE_POINTS, DELETE_POINTS = 3, 1
TID = re.compile(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}")
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
URI = re.compile(r"[a-z][a-z0-9+.-]*:\S+")
XRPC_ERRORS: dict[int, str] = {
    400: "InvalidRequest",
    401: "AuthenticationRequired",
    403: "Forbidden",
    404: "XRPCNotSupported",
    413: "PayloadTooLarge",
    429: "RateLimitExceeded",
    500: "InternalServerError",
    501: "MethodNotImplemented",
    502: "UpstreamFailure",
    503: "NotEnoughResources",
    504: "UpstreamTimeout",
}
INVALID_POST = "Invalid app.bsky.feed.post record: "


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _cid(content: bytes, codec: int) -> str:
    """A CIDv1 (sha2-256) in base32, as the PDS names blobs (raw, 0x55) and records (dag-cbor, 0x71)."""
    raw = bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(content).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def _error(status: int, name: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply.json(status, {"error": name, "message": message}, headers)


@dataclass
class _Window:
    """A fixed-window rate limit, answered with the PDS's RateLimit-* headers."""

    limit: int
    seconds: int
    used: dict[str, tuple[int, int]] = field(default_factory=dict)

    def spend(self, key: str, points: int, now: float) -> tuple[bool, dict[str, str]]:
        window = int(now // self.seconds)
        known, used = self.used.get(key, (window, 0))
        used = used if known == window else 0
        allowed = used + points <= self.limit
        used += points if allowed else 0
        self.used[key] = (window, used)
        return allowed, self.headers(self.limit - used, (window + 1) * self.seconds)

    def headers(self, remaining: int, reset: float) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, remaining)),
            "RateLimit-Reset": str(int(reset)),
            "RateLimit-Policy": f"{self.limit};w={self.seconds}",
        }


@dataclass
class _Account:
    handle: str
    did: str
    display_name: str
    app_passwords: set[str]


@dataclass
class _Token:
    did: str
    kind: str  # "access" or "refresh"
    expires: float
    app_password: str


@dataclass
class _Post:
    did: str
    rkey: str
    uri: str
    cid: str
    value: dict[str, Any]
    indexed_at: float


@dataclass
class _Blob:
    did: str
    mime: str
    content: bytes


class BlueskyImitation:
    """A PDS holding the demo account (and any added with `add_account`); see the module docstring."""

    channel: ClassVar[str] = CHANNEL
    prefix: ClassVar[str] = "/bluesky"
    base_url_variable: ClassVar[str | None] = "CRIEUR_BLUESKY_BASE_URL"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.access_seconds: float = ACCESS_SECONDS
        """How long an access token lives; tests shorten it to see the adapter refresh its session."""
        self._lock = threading.RLock()
        self._secret = secrets.token_bytes(32)
        self._accounts: dict[str, _Account] = {}
        self._tokens: dict[str, _Token] = {}
        self._revoked: set[str] = set()
        self._posts: dict[tuple[str, str], _Post] = {}
        self._blobs: dict[str, _Blob] = {}
        self._deleted = 0
        self._last_tid = 0
        self._session_limit = _Window(*SESSION_LIMIT)
        self._write_limit = _Window(*WRITE_LIMIT)
        self._global_limit = _Window(*GLOBAL_LIMIT)
        self.add_account(DEMO_HANDLE, DEMO_APP_PASSWORD, DEMO_NAME)
        self._routes: dict[str, tuple[str, Callable[[Request], Reply]]] = {
            "com.atproto.server.createSession": ("POST", self._create_session),
            "com.atproto.server.refreshSession": ("POST", self._refresh_session),
            "com.atproto.server.getSession": ("GET", self._get_session),
            "com.atproto.repo.uploadBlob": ("POST", self._upload_blob),
            "com.atproto.repo.createRecord": ("POST", self._create_record),
            "com.atproto.repo.getRecord": ("GET", self._get_record),
            "com.atproto.repo.deleteRecord": ("POST", self._delete_record),
            "com.atproto.sync.getBlob": ("GET", self._get_blob),
        }

    # -- accounts and tokens (tests use these) --------------------------------------------------------------

    def add_account(self, handle: str, app_password: str, display_name: str | None = None) -> str:
        """Opens an account (or adds an app password to it); returns its DID."""
        handle = handle.lower()
        with self._lock:
            account = self._accounts.get(handle)
            if account is None:
                digest = base64.b32encode(hashlib.sha256(handle.encode()).digest()).decode().lower()
                account = _Account(handle, f"did:plc:{digest[:24]}", display_name or handle, set())
                self._accounts[handle] = account
            account.app_passwords.add(app_password)
            return account.did

    def revoke_app_password(self, handle: str, app_password: str) -> None:
        """As Bluesky's settings do: the password no longer logs in and its refresh tokens stop working."""
        with self._lock:
            self._accounts[handle.lower()].app_passwords.discard(app_password)
            for token, held in list(self._tokens.items()):
                if held.app_password == app_password and held.kind == "refresh":
                    del self._tokens[token]
                    self._revoked.add(token)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is expired from now on (refresh tokens keep working)."""
        with self._lock:
            for held in self._tokens.values():
                if held.kind == "access":
                    held.expires = min(held.expires, time.time() - 1)

    def posts(self) -> list[dict[str, Any]]:
        """The posts on the PDS, oldest first: {uri, cid, value} as getRecord answers."""
        with self._lock:
            ordered = sorted(self._posts.values(), key=lambda post: post.indexed_at)
            return [{"uri": post.uri, "cid": post.cid, "value": copy.deepcopy(post.value)} for post in ordered]

    # -- Imitation ---------------------------------------------------------------------------------------

    def demo_channel(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "settings": {"handle": DEMO_HANDLE},
            "credentials": {"app_password": DEMO_APP_PASSWORD},
        }

    def clear(self) -> None:
        """Forgets posts, blobs and rate-limit counters; keeps accounts and sessions."""
        with self._lock:
            self._posts.clear()
            self._blobs.clear()
            self._deleted = 0
            for window in (self._session_limit, self._write_limit, self._global_limit):
                window.used.clear()

    def handle(self, request: Request, subpath: str) -> Reply:
        nsid = subpath.removeprefix("/xrpc/")
        route = self._routes.get(nsid) if subpath.startswith("/xrpc/") else None
        if route is None:
            return _error(501, "MethodNotImplemented", "Method Not Implemented")
        method, action = route
        if request.method != method and not (method == "GET" and request.method == "HEAD"):
            return _error(400, "InvalidRequest", f"Incorrect HTTP method ({request.method}) expected {method}")
        return action(request)

    # -- sessions --------------------------------------------------------------------------------------------

    def _jwt(self, did: str, kind: str, app_password: str) -> str:
        now = time.time()
        lifetime = self.access_seconds if kind == "access" else REFRESH_SECONDS
        claims = {
            "scope": "com.atproto.appPass" if kind == "access" else "com.atproto.refresh",
            "sub": did,
            "aud": SERVICE_DID,
            "iat": int(now),
            "exp": int(now + lifetime),
            "jti": secrets.token_urlsafe(16),
        }
        header = _b64(json.dumps({"typ": "at+jwt" if kind == "access" else "refresh+jwt", "alg": "HS256"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        token = f"{header}.{payload}.{signature}"
        with self._lock:
            self._tokens[token] = _Token(did, kind, now + lifetime, app_password)
        return token

    def _account_view(self, account: _Account) -> dict[str, Any]:
        """What createSession, refreshSession and getSession say of the account."""
        return {
            "did": account.did,
            "handle": account.handle,
            "email": f"mairie@{account.handle}",
            "emailConfirmed": True,
            "active": True,
            "didDoc": {
                "@context": ["https://www.w3.org/ns/did/v1"],
                "id": account.did,
                "alsoKnownAs": [f"at://{account.handle}"],
                "service": [
                    {
                        "id": "#atproto_pds",
                        "type": "AtprotoPersonalDataServer",
                        "serviceEndpoint": f"{self.sandbox.url}{self.prefix}",
                    }
                ],
            },
        }

    def _session_body(self, account: _Account, app_password: str) -> dict[str, Any]:
        return {
            **self._account_view(account),
            "accessJwt": self._jwt(account.did, "access", app_password),
            "refreshJwt": self._jwt(account.did, "refresh", app_password),
        }

    def _bearer(self, request: Request, kind: str = "access") -> _Token | Reply:
        """The request's valid token, or the PDS's answer to a missing, unknown or expired one."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _error(401, "AuthMissing", "Authentication Required")
        with self._lock:
            held = self._tokens.get(token)
            revoked = token in self._revoked
        if revoked:
            return _error(400, "ExpiredToken", "Token has been revoked")
        if held is None or held.kind != kind:
            return _error(400, "InvalidToken", "Token could not be verified")
        if held.expires <= time.time():
            return _error(400, "ExpiredToken", "Token has expired")
        return held

    def _create_session(self, request: Request) -> Reply:
        body = _json(request)
        identifier = body.get("identifier") if isinstance(body, dict) else None
        password = body.get("password") if isinstance(body, dict) else None
        shown = {"identifier": identifier, "password": "[masqué]"}
        if not isinstance(identifier, str) or not isinstance(password, str):
            missing = "identifier" if not isinstance(identifier, str) else "password"
            return self._refuse(
                request, _error(400, "InvalidRequest", f'Input must have the property "{missing}"'), shown
            )
        with self._lock:
            allowed, headers = self._session_limit.spend(identifier.lower(), 1, time.time())
            account = self._account(identifier)
        if not allowed:
            reply = _error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)
        elif account is None or password not in account.app_passwords:
            reply = _error(401, "AuthenticationRequired", "Invalid identifier or password", headers)
        else:
            reply = Reply.json(200, self._session_body(account, password), headers)
        self.sandbox.record(CHANNEL, request, reply, shown, external_id=account.did if account else None)
        return reply

    def _refresh_session(self, request: Request) -> Reply:
        held = self._bearer(request, "refresh")
        if isinstance(held, Reply):
            return self._refuse(request, held, None)
        token = request.headers["authorization"].partition(" ")[2].strip()
        with self._lock:
            self._tokens.pop(token, None)
            self._revoked.add(token)
            account = self._account(held.did)
        if account is None:
            reply = _error(400, "InvalidRequest", f"Could not find user info for account: {held.did}")
        else:
            reply = Reply.json(200, self._session_body(account, held.app_password), self._global_headers())
        self.sandbox.record(CHANNEL, request, reply, None, external_id=held.did)
        return reply

    def _get_session(self, request: Request) -> Reply:
        held = self._bearer(request)
        if isinstance(held, Reply):
            return held
        account = self._account(held.did)
        if account is None:
            return _error(400, "InvalidRequest", f"Could not find user info for account: {held.did}")
        return Reply.json(200, self._account_view(account), self._global_headers())

    def _account(self, identifier: str) -> _Account | None:
        with self._lock:
            found = self._accounts.get(identifier.lower().removeprefix("@"))
            return found or next((account for account in self._accounts.values() if account.did == identifier), None)

    def _global_headers(self) -> dict[str, str]:
        with self._lock:
            return self._global_limit.spend("loopback", 1, time.time())[1]

    # -- writes ----------------------------------------------------------------------------------------------

    def _fault(self, request: Request, body: Any) -> Reply | None:
        """The XRPC error an injected fault answers, recorded; None when no fault applies."""
        fault = self.sandbox.take_fault(CHANNEL)
        self.sandbox.wait_fault(fault)
        if fault is None or fault.status is None:
            return None
        reply = self._fault_reply(fault)
        self.sandbox.record(CHANNEL, request, reply, body)
        return reply

    def _fault_reply(self, fault: Fault) -> Reply:
        status = int(fault.status or 500)
        headers: dict[str, str] = {}
        if status == 429:
            now = time.time()
            reset = now + fault.retry_after if fault.retry_after is not None else (now // 3600 + 1) * 3600
            headers = self._write_limit.headers(0, reset)
        name = XRPC_ERRORS.get(status) or HTTPStatus(status).phrase.replace(" ", "")
        return _error(status, name, HTTPStatus(status).phrase, headers)

    def _refuse(self, request: Request, reply: Reply, body: Any) -> Reply:
        self.sandbox.record(CHANNEL, request, reply, body)
        return reply

    def _writer(self, request: Request, body: dict[str, Any], points: int) -> tuple[_Account, dict[str, str]] | Reply:
        """The account a repo write acts for and its rate-limit headers, or the refusal (recorded)."""
        held = self._bearer(request)
        if isinstance(held, Reply):
            return self._refuse(request, held, body)
        account = self._account(held.did)
        repo = body.get("repo")
        target = self._account(repo) if isinstance(repo, str) else None
        if account is None or target is None:
            return self._refuse(request, _error(400, "InvalidRequest", f"Could not find repo: {repo}"), body)
        if target.did != account.did:
            return self._refuse(request, _error(401, "AuthenticationRequired", "Authentication Required"), body)
        with self._lock:
            allowed, headers = self._write_limit.spend(account.did, points, time.time())
        if not allowed:
            return self._refuse(request, _error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers), body)
        return account, headers

    def _upload_blob(self, request: Request) -> Reply:
        declared = request.content_type.split(";", 1)[0].strip().lower()
        shown = {"mimeType": declared, "size": len(request.body)}
        faulted = self._fault(request, shown)
        if faulted is not None:
            return faulted
        held = self._bearer(request)
        if isinstance(held, Reply):
            return self._refuse(request, held, shown)
        if not declared:
            refusal = _error(400, "InvalidRequest", "Request encoding (Content-Type) required but not provided")
            return self._refuse(request, refusal, shown)
        if len(request.body) > MAX_BLOB_BYTES:
            message = (
                f"This file is too large. It is {len(request.body)} bytes but the maximum size is {MAX_BLOB_BYTES}."
            )
            return self._refuse(request, _error(400, "BlobTooLarge", message), shown)
        cid = _cid(request.body, 0x55)
        mime = sniff(request.body) or declared
        with self._lock:
            self._blobs[cid] = _Blob(held.did, mime, request.body)
        blob = {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(request.body)}
        reply = Reply.json(200, {"blob": blob}, self._global_headers())
        self.sandbox.record(CHANNEL, request, reply, shown, external_id=cid)
        return reply

    def _create_record(self, request: Request) -> Reply:
        body = _json(request)
        faulted = self._fault(request, body)
        if faulted is not None:
            return faulted
        if not isinstance(body, dict):
            return self._refuse(request, _error(400, "InvalidRequest", "Input must be a JSON object"), body)
        writer = self._writer(request, body, CREATE_POINTS)
        if isinstance(writer, Reply):
            return writer
        account, headers = writer
        rkey = body.get("rkey") or self._next_tid()
        record = body.get("record")
        if body.get("collection") != POST:
            problem: str | None = f"The sandbox imitates {POST} records only, not {body.get('collection')}"
        elif not isinstance(rkey, str) or not TID.fullmatch(rkey):
            problem = f"Invalid record key for {POST}: must be a TID, not {rkey!r}"
        else:
            problem = self._post_problem(record, account.did)
        if problem is not None or not isinstance(record, dict) or not isinstance(rkey, str):
            return self._refuse(request, _error(400, "InvalidRequest", str(problem), headers), body)
        uri = f"at://{account.did}/{POST}/{rkey}"
        value = {"$type": POST, **record}
        with self._lock:
            taken = (account.did, rkey) in self._posts
            if not taken:
                cid = _cid(json.dumps(value, sort_keys=True).encode(), 0x71)
                self._posts[(account.did, rkey)] = _Post(account.did, rkey, uri, cid, value, time.time())
        if taken:
            reply = _error(400, "RecordAlreadyExists", f"Record already exists: {uri}", headers)
            self.sandbox.record(CHANNEL, request, reply, body, external_id=uri, duplicate=True)
            return reply
        answer = {
            "uri": uri,
            "cid": cid,
            "commit": {"cid": _cid(uri.encode(), 0x71), "rev": self._next_tid()},
            "validationStatus": "valid",
        }
        reply = Reply.json(200, answer, headers)
        self.sandbox.record(CHANNEL, request, reply, body, external_id=uri)
        return reply

    def _delete_record(self, request: Request) -> Reply:
        body = _json(request)
        faulted = self._fault(request, body)
        if faulted is not None:
            return faulted
        if not isinstance(body, dict):
            return self._refuse(request, _error(400, "InvalidRequest", "Input must be a JSON object"), body)
        writer = self._writer(request, body, DELETE_POINTS)
        if isinstance(writer, Reply):
            return writer
        account, headers = writer
        rkey = body.get("rkey")
        if body.get("collection") != POST or not isinstance(rkey, str):
            reply = _error(400, "InvalidRequest", 'Input must have the properties "collection" and "rkey"', headers)
            return self._refuse(request, reply, body)
        uri = f"at://{account.did}/{POST}/{rkey}"
        with self._lock:
            gone = self._posts.pop((account.did, rkey), None)
            if gone is not None:
                self._deleted += 1
        reply = Reply.json(200, {"commit": {"cid": _cid(uri.encode(), 0x71), "rev": self._next_tid()}}, headers)
        self.sandbox.record(CHANNEL, request, reply, body, external_id=uri, existed=gone is not None)
        return reply

    def _next_tid(self) -> str:
        with self._lock:
            self._last_tid = max(self._last_tid + 1, int(time.time() * 1_000_000))
            value = self._last_tid << 10
        return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))

    # -- reads -----------------------------------------------------------------------------------------------

    def _get_record(self, request: Request) -> Reply:
        params = {name: values[0] for name, values in request.query.items()}
        for required in ("repo", "collection", "rkey"):
            if required not in params:
                return _error(400, "InvalidRequest", f'Params must have the property "{required}"')
        account = self._account(params["repo"])
        if account is None:
            return _error(400, "InvalidRequest", f"Could not find repo: {params['repo']}")
        uri = f"at://{account.did}/{params['collection']}/{params['rkey']}"
        with self._lock:
            post = self._posts.get((account.did, params["rkey"])) if params["collection"] == POST else None
            found = None if post is None else {"uri": post.uri, "cid": post.cid, "value": copy.deepcopy(post.value)}
        if found is None:
            return _error(400, "RecordNotFound", f"Could not locate record: {uri}")
        return Reply.json(200, found, self._global_headers())

    def _get_blob(self, request: Request) -> Reply:
        cid = (request.query.get("cid") or [""])[0]
        with self._lock:
            blob = self._blobs.get(cid)
        if blob is None:
            return _error(400, "BlobNotFound", "Blob not found")
        return Reply(200, blob.content, blob.mime, {"Cache-Control": "private, max-age=3600"})

    # -- validation of app.bsky.feed.post ------------------------------------------------------------------

    def _post_problem(self, record: Any, did: str) -> str | None:  # noqa: PLR0911 - one return per rule
        """Why the lexicon (or the sandbox's stricter facet check) refuses the record; None when it is valid."""
        if not isinstance(record, dict):
            return INVALID_POST + "Record must be an object"
        if record.get("$type", POST) != POST:
            return INVALID_POST + f'Record/$type must be "{POST}"'
        text = record.get("text")
        if not isinstance(text, str):
            return INVALID_POST + 'Record must have the property "text"'
        if len(text.encode()) > MAX_TEXT_BYTES:
            return INVALID_POST + f"Record/text must not be longer than {MAX_TEXT_BYTES} characters"
        if grapheme_count(text) > MAX_GRAPHEMES:
            return INVALID_POST + f"Record/text must not be longer than {MAX_GRAPHEMES} graphemes"
        created = record.get("createdAt")
        if not isinstance(created, str) or not DATETIME.fullmatch(created):
            return INVALID_POST + "Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)"
        langs = record.get("langs", [])
        if not isinstance(langs, list) or not all(isinstance(lang, str) for lang in langs):
            return INVALID_POST + "Record/langs must be an array of language tags"
        if len(langs) > MAX_LANGS:
            return INVALID_POST + f"Record/langs must not have more than {MAX_LANGS} elements"
        return _facets_problem(text, record.get("facets", [])) or self._embed_problem(record.get("embed"), did)

    def _embed_problem(self, embed: Any, did: str) -> str | None:
        if embed is None:
            return None
        kind = embed.get("$type") if isinstance(embed, dict) else None
        if kind == EXTERNAL:
            return _external_problem(embed.get("external"))
        if kind != IMAGES:
            return INVALID_POST + f"Record/embed: the sandbox imitates {IMAGES} and {EXTERNAL} only"
        images = embed.get("images")
        if not isinstance(images, list) or not images:
            return INVALID_POST + 'Record/embed must have the property "images"'
        if len(images) > MAX_IMAGES:
            return INVALID_POST + f"Record/embed/images must not have more than {MAX_IMAGES} elements"
        problems = (
            self._image_problem(image, f"Record/embed/images/{index}", did) for index, image in enumerate(images)
        )
        return next((problem for problem in problems if problem is not None), None)

    def _image_problem(self, image: Any, where: str, did: str) -> str | None:  # noqa: PLR0911 - one return per rule
        if not isinstance(image, dict) or not isinstance(image.get("alt"), str):
            return INVALID_POST + f'{where} must have the property "alt"'
        ref = image.get("image")
        pointer = ref.get("ref") if isinstance(ref, dict) and ref.get("$type") == "blob" else None
        link = pointer.get("$link") if isinstance(pointer, dict) else None
        if not isinstance(ref, dict) or not isinstance(link, str):
            return INVALID_POST + f"{where}/image should be a blob ref"
        with self._lock:
            blob = self._blobs.get(link)
        if blob is None or blob.did != did:
            return f"Could not find blob: {link}"
        if len(blob.content) > MAX_BLOB_BYTES:
            return INVALID_POST + f"{where}/image file is too big (max {MAX_BLOB_BYTES} bytes)"
        if not blob.mime.startswith("image/") or ref.get("mimeType") != blob.mime:
            return INVALID_POST + f"{where}/image has mimeType {ref.get('mimeType')}, the blob is {blob.mime}"
        ratio = image.get("aspectRatio")
        if ratio is not None and not (
            isinstance(ratio, dict)
            and all(isinstance(ratio.get(side), int) and ratio[side] >= 1 for side in ("width", "height"))
        ):
            return INVALID_POST + f"{where}/aspectRatio must have a positive integer width and height"
        return None

    # -- the page --------------------------------------------------------------------------------------------

    def page_section(self) -> str:
        with self._lock:
            posts = sorted(self._posts.values(), key=lambda post: post.indexed_at, reverse=True)
            names = {account.did: account for account in self._accounts.values()}
            deleted = self._deleted
        gone = f" {deleted} publication(s) retirée(s)." if deleted else ""
        if not posts:
            body = f"<p>Aucune publication pour l'instant.{gone}</p>"
        else:
            items = "".join(_post_html(post, names.get(post.did)) for post in posts)
            body = (
                f"<p>{len(posts)} publication(s), la plus récente en premier.{gone}</p>"
                f'<ol style="list-style:none;padding:0;max-width:40rem">{items}</ol>'
            )
        return f'<section aria-labelledby="h-bluesky"><h2 id="h-bluesky">Bluesky</h2>{body}</section>'


def _json(request: Request) -> Any:
    try:
        return json.loads(request.body) if request.body.strip() else {}
    except ValueError:
        return None


def _boundary(encoded: bytes, offset: int) -> bool:
    """Whether a UTF-8 byte offset falls between characters (not on a continuation byte)."""
    return offset == len(encoded) or encoded[offset] & 0xC0 != 0x80


def _external_problem(external: Any) -> str | None:
    if not isinstance(external, dict):
        return INVALID_POST + 'Record/embed must have the property "external"'
    for name in ("uri", "title", "description"):
        if not isinstance(external.get(name), str):
            return INVALID_POST + f'Record/embed/external must have the property "{name}"'
    return None if URI.fullmatch(external["uri"]) else INVALID_POST + "Record/embed/external/uri must be a uri"


def _facets_problem(text: str, facets: Any) -> str | None:  # noqa: PLR0911 - one return per rule
    if not isinstance(facets, list):
        return INVALID_POST + "Record/facets must be an array"
    encoded = text.encode()
    for position, facet in enumerate(facets):
        where = f"Record/facets/{position}"
        index = facet.get("index") if isinstance(facet, dict) else None
        start = index.get("byteStart") if isinstance(index, dict) else None
        end = index.get("byteEnd") if isinstance(index, dict) else None
        if not isinstance(start, int) or not isinstance(end, int) or start < 0 or end < 0:
            return INVALID_POST + f"{where}/index must have non-negative integers byteStart and byteEnd"
        if not start < end <= len(encoded):
            return f"{where}/index [{start}, {end}) is outside the text ({len(encoded)} UTF-8 bytes)"
        if not (_boundary(encoded, start) and _boundary(encoded, end)):
            return f"{where}/index [{start}, {end}) cuts a character in two: offsets count UTF-8 bytes"
        features = facet.get("features")
        if not isinstance(features, list) or not features:
            return INVALID_POST + f'{where} must have the property "features"'
        for number, feature in enumerate(features):
            problem = _feature_problem(feature, f"{where}/features/{number}")
            if problem is not None:
                return problem
    return None


def _feature_problem(feature: Any, where: str) -> str | None:
    kind = feature.get("$type") if isinstance(feature, dict) else None
    if not isinstance(feature, dict) or not isinstance(kind, str):
        return INVALID_POST + f'{where} must have the property "$type"'
    if kind == LINK and not (isinstance(feature.get("uri"), str) and URI.fullmatch(feature["uri"])):
        return INVALID_POST + f"{where}/uri must be a uri"
    if kind == TAG:
        tag = feature.get("tag")
        if (
            not isinstance(tag, str)
            or not tag
            or len(tag.encode()) > MAX_TAG_BYTES
            or grapheme_count(tag) > MAX_TAG_GRAPHEMES
        ):
            return INVALID_POST + f"{where}/tag must be 1 to {MAX_TAG_GRAPHEMES} graphemes"
    if kind == MENTION and not str(feature.get("did", "")).startswith("did:"):
        return INVALID_POST + f"{where}/did must be a did"
    return None


def _rich_text(text: str, facets: list[dict[str, Any]]) -> str:
    """The text as the app draws it: escaped, links and hashtags made anchors by their byte ranges."""
    encoded = text.encode()
    pieces: list[str] = []
    cursor = 0
    for facet in sorted(facets, key=lambda facet: int(facet["index"]["byteStart"])):
        start, end = int(facet["index"]["byteStart"]), int(facet["index"]["byteEnd"])
        if start < cursor:
            continue
        feature = facet["features"][0]
        href = {
            LINK: str(feature.get("uri", "")),
            TAG: f"https://bsky.app/hashtag/{urllib.parse.quote(str(feature.get('tag', '')))}",
            MENTION: f"https://bsky.app/profile/{feature.get('did', '')}",
        }.get(str(feature.get("$type")), "")
        label = html.escape(encoded[start:end].decode("utf-8", "replace"))
        pieces.append(html.escape(encoded[cursor:start].decode("utf-8", "replace")))
        pieces.append(f'<a href="{html.escape(href)}">{label}</a>' if href.startswith("https://") else label)
        cursor = end
    pieces.append(html.escape(encoded[cursor:].decode("utf-8", "replace")))
    return "".join(pieces).replace("\n", "<br>")


def _post_html(post: _Post, account: _Account | None) -> str:
    value = post.value
    handle = account.handle if account else post.did
    name = account.display_name if account else handle
    created = str(value.get("createdAt", ""))
    shown_at = datetime.fromtimestamp(post.indexed_at, PARIS).strftime("%d/%m/%Y à %H:%M")
    lang = html.escape(str((value.get("langs") or ["fr"])[0]))
    parts = [
        f'<li><article aria-labelledby="bsky-{post.rkey}" style="border:1px solid #767676;border-radius:.75rem;'
        'padding:.75rem 1rem;margin:.75rem 0">'
        f'<header><h3 id="bsky-{post.rkey}" style="font-size:1rem;margin:0">{html.escape(name)} '
        f'<span style="font-weight:normal;color:#555">@{html.escape(handle)}</span></h3>'
        f'<p style="margin:0;color:#555"><time datetime="{html.escape(created)}">{shown_at}</time></p></header>'
        f'<p lang="{lang}">{_rich_text(str(value.get("text", "")), list(value.get("facets") or []))}</p>'
    ]
    embed = value.get("embed") or {}
    if embed.get("$type") == IMAGES:
        figures = "".join(_image_html(post.did, image) for image in embed["images"])
        parts.append(
            f'<div role="group" aria-label="{len(embed["images"])} image(s)" '
            f'style="display:grid;grid-template-columns:repeat(2,1fr);gap:.25rem">{figures}</div>'
        )
    elif embed.get("$type") == EXTERNAL:
        external = embed["external"]
        domain = urllib.parse.urlsplit(external["uri"]).netloc
        description = f"<br>{html.escape(external['description'])}" if external["description"] else ""
        parts.append(
            f'<a href="{html.escape(external["uri"])}" style="display:block;border:1px solid #767676;'
            'border-radius:.5rem;padding:.5rem .75rem;color:inherit;text-decoration:none">'
            f"<strong>{html.escape(external['title'])}</strong>{description}"
            f'<br><span style="color:#555">{html.escape(domain)}</span></a>'
        )
    parts.append(f'<footer style="color:#555;font-size:.85rem"><code>{html.escape(post.uri)}</code></footer>')
    return "".join(parts) + "</article></li>"


def _image_html(did: str, image: dict[str, Any]) -> str:
    cid = image["image"]["ref"]["$link"]
    source = f"/bluesky/xrpc/com.atproto.sync.getBlob?did={urllib.parse.quote(did)}&cid={urllib.parse.quote(cid)}"
    ratio = image.get("aspectRatio") or {}
    size = f' width="{ratio["width"]}" height="{ratio["height"]}"' if ratio else ""
    alt = html.escape(image["alt"])
    return (
        f'<figure style="margin:0"><img src="{html.escape(source)}" alt="{alt}"{size} '
        'style="width:100%;height:auto;border-radius:.5rem">'
        f"<details><summary>ALT</summary>{alt}</details></figure>"
    )
