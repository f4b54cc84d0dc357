"""The local HTTP API: what API Gateway (HTTP API, payload format 2.0) does in front of the functions.

HTTP in → route selection with the template's routes (exact paths before `{param}` before `{proxy+}`, a
method before ANY) → for guarded routes the Lambda authorizer (REQUEST, simple responses, results cached per
identity value for the template's TTL) → the route's function with an API Gateway v2 event → its result
written back as HTTP. CORS preflights are answered from the template's CorsConfiguration, before any
authorizer, as API Gateway does.

Gateway answers, as API Gateway writes them: 404 `{"message":"Not Found"}` (no route), 401
`{"message":"Unauthorized"}` (identity source missing: the authorizer is not called), 403
`{"message":"Forbidden"}` (the authorizer said no), 500 `{"message":"Internal Server Error"}` (the function
or the authorizer failed).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from infra.local.provision import Authorizer, Cors, HttpApi, Route
from infra.local.runtime import LambdaError

log = logging.getLogger("crieur.local.api")

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
"""HTTP API's request payload limit."""
TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|.*\+json|xml|.*\+xml|javascript|x-www-form-urlencoded|graphql|yaml|x-yaml))$"
)

Invoke = Callable[[str, dict[str, Any]], Any]
"""(function name, event) → result; raises LambdaError when the function fails."""


# ---------------------------------------------------------------- routing


@dataclass(frozen=True)
class _CompiledRoute:
    route: Route
    pattern: re.Pattern[str] | None
    """None for `$default`."""
    names: tuple[str, ...]
    rank: tuple[int, int, int, int]


def _compile(route: Route) -> _CompiledRoute:
    if route.path == "$default":
        return _CompiledRoute(route, None, (), (3, 0, 0, 1))
    regex = ""
    names: list[str] = []
    greedy = variables = 0
    literal = 0
    for segment in route.path.strip("/").split("/"):
        greedy_match = re.fullmatch(r"\{([^}]+)\+\}", segment)
        variable_match = re.fullmatch(r"\{([^}]+)\}", segment)
        if greedy_match:
            names.append(greedy_match.group(1))
            regex += "/(.+)"
            greedy += 1
        elif variable_match:
            names.append(variable_match.group(1))
            regex += "/([^/]+)"
            variables += 1
        else:
            regex += "/" + re.escape(segment)
            literal += 1
    # API Gateway takes no route ending in "/" and routes `/console/` to `/console` (rawPath keeps the slash).
    regex = "/" if route.path == "/" else regex + "/?"
    # Exact paths first, then fewer variables, then greedy last; more literal segments win; a method beats ANY.
    kind = 2 if greedy else (1 if variables else 0)
    rank = (kind, variables, -literal, 1 if route.method == "ANY" else 0)
    return _CompiledRoute(route, re.compile(regex), tuple(names), rank)


class Router:
    def __init__(self, routes: tuple[Route, ...]) -> None:
        self._routes = sorted((_compile(route) for route in routes), key=lambda compiled: compiled.rank)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for compiled in self._routes:
            if compiled.route.method not in ("ANY", method):
                continue
            if compiled.pattern is None:
                return compiled.route, {}
            found = compiled.pattern.fullmatch(path)
            if found:
                return compiled.route, {
                    name: unquote(value) for name, value in zip(compiled.names, found.groups(), strict=True)
                }
        return None


# ---------------------------------------------------------------- the authorizer cache


class AuthorizerCache:
    """Authorizer answers per identity value, kept `ttl_seconds` (ReauthorizeEvery), denials included."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, tuple[str, ...]], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, authorizer: Authorizer, identity: tuple[str, ...]) -> dict[str, Any] | None:
        if authorizer.ttl_seconds <= 0:
            return None
        with self._lock:
            entry = self._entries.get((authorizer.name, identity))
            if entry is None:
                return None
            expires, answer = entry
            if expires <= time.monotonic():
                del self._entries[(authorizer.name, identity)]
                return None
            return answer

    def put(self, authorizer: Authorizer, identity: tuple[str, ...], answer: dict[str, Any]) -> None:
        if authorizer.ttl_seconds <= 0:
            return
        with self._lock:
            self._entries[(authorizer.name, identity)] = (time.monotonic() + authorizer.ttl_seconds, answer)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# ---------------------------------------------------------------- the gateway


@dataclass
class Request:
    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _gateway_answer(status: int, message: str) -> Response:
    body = json.dumps({"message": message}).encode()
    return Response(status, [("Content-Type", "application/json")], body)


def _text_body(content_type: str) -> bool:
    return bool(TEXT_TYPES.match(content_type.split(";", 1)[0].strip().lower())) if content_type else True


class Gateway:
    """The request → response logic, independent of the HTTP server (tests call `handle` directly)."""

    def __init__(self, api: HttpApi, invoke: Invoke, *, account_id: str, region: str) -> None:
        self.api = api
        self.invoke = invoke
        self.account_id = account_id
        self.region = region
        self.router = Router(api.routes)
        self.cache = AuthorizerCache()

    # --- events ---------------------------------------------------------------------------------------

    def _common(self, request: Request, route: Route, path_parameters: dict[str, str]) -> dict[str, Any]:
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in request.headers:
            lowered = name.lower()
            if lowered == "cookie":
                cookies.extend(part.strip() for part in value.split(";") if part.strip())
                continue
            headers[lowered] = f"{headers[lowered]},{value}" if lowered in headers else value
        headers.setdefault("x-forwarded-for", request.source_ip)
        headers.setdefault("x-forwarded-proto", "http")
        host = headers.get("host", "localhost")
        headers.setdefault("x-forwarded-port", host.rsplit(":", 1)[1] if ":" in host else "80")
        now = datetime.now(UTC)
        request_context: dict[str, Any] = {
            "accountId": self.account_id,
            "apiId": self.api.api_id,
            "domainName": host.split(":", 1)[0],
            "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
            "http": {
                "method": request.method,
                "path": request.raw_path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": base64.b64encode(uuid.uuid4().bytes[:11]).decode()[:14] + "=",
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }
        query: dict[str, str] = {}
        for name, value in parse_qsl(request.raw_query, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": request.raw_path,
            "rawQueryString": request.raw_query,
            "headers": headers,
            "requestContext": request_context,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if path_parameters:
            event["pathParameters"] = path_parameters
        return event

    def _event(self, request: Request, route: Route, path_parameters: dict[str, str]) -> dict[str, Any]:
        event = self._common(request, route, path_parameters)
        if request.body:
            if _text_body(event["headers"].get("content-type", "")):
                try:
                    event["body"] = request.body.decode("utf-8")
                    event["isBase64Encoded"] = False
                except UnicodeDecodeError:
                    event["body"] = base64.b64encode(request.body).decode()
                    event["isBase64Encoded"] = True
            else:
                event["body"] = base64.b64encode(request.body).decode()
                event["isBase64Encoded"] = True
        else:
            event["isBase64Encoded"] = False
        return event

    def _authorizer_event(
        self, request: Request, route: Route, path_parameters: dict[str, str], identity: tuple[str, ...]
    ) -> dict[str, Any]:
        common = self._common(request, route, path_parameters)
        arn = f"arn:aws:execute-api:{self.region}:{self.account_id}:{self.api.api_id}"
        event: dict[str, Any] = {
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": f"{arn}/$default/{request.method}{request.raw_path}",
            "identitySource": list(identity),
            **{key: value for key, value in common.items() if key != "version"},
        }
        event["pathParameters"] = path_parameters
        event["stageVariables"] = {}
        return event

    # --- authorization --------------------------------------------------------------------------------

    def _identity(self, authorizer: Authorizer, request: Request) -> tuple[str, ...] | None:
        values: list[str] = []
        query = dict(parse_qsl(request.raw_query, keep_blank_values=True))
        for source in authorizer.identity_sources:
            value: str | None = None
            if source.lower().startswith("$request.header."):
                wanted = source.split(".", 2)[2].lower()
                found = [header_value for name, header_value in request.headers if name.lower() == wanted]
                value = ",".join(found) if found else None
            elif source.lower().startswith("$request.querystring."):
                value = query.get(source.split(".", 2)[2])
            if not value:
                return None
            values.append(value)
        return tuple(values)

    def _authorize(
        self, authorizer: Authorizer, request: Request, route: Route, path_parameters: dict[str, str]
    ) -> Response | dict[str, Any]:
        """The `requestContext.authorizer` to pass on, or the gateway's refusal."""
        identity = self._identity(authorizer, request)
        if identity is None:
            return _gateway_answer(401, "Unauthorized")
        answer = self.cache.get(authorizer, identity)
        if answer is None:
            event = self._authorizer_event(request, route, path_parameters, identity)
            try:
                answer = self.invoke(authorizer.function, event)
            except LambdaError as failure:
                log.warning("authorizer %s failed: %s", authorizer.name, failure)
                return _gateway_answer(500, "Internal Server Error")
            if not isinstance(answer, dict) or not isinstance(answer.get("isAuthorized"), bool):
                log.warning("authorizer %s answered %r: not a simple response", authorizer.name, answer)
                return _gateway_answer(500, "Internal Server Error")
            self.cache.put(authorizer, identity, answer)
        if not answer["isAuthorized"]:
            return _gateway_answer(403, "Forbidden")
        return {"lambda": answer.get("context")}

    # --- CORS -----------------------------------------------------------------------------------------

    def _allowed_origin(self, cors: Cors, origin: str) -> str | None:
        if "*" in cors.allow_origins:
            return origin if cors.allow_credentials else "*"
        return origin if origin in cors.allow_origins else None

    def _preflight(self, cors: Cors, request: Request) -> Response:
        headers = {name.lower(): value for name, value in request.headers}
        origin = headers.get("origin", "")
        allowed = self._allowed_origin(cors, origin)
        out: list[tuple[str, str]] = []
        method = headers.get("access-control-request-method", "").upper()
        methods = {item.upper() for item in cors.allow_methods}
        if allowed and ("*" in methods or method in methods):
            out.append(("Access-Control-Allow-Origin", allowed))
            out.append(("Access-Control-Allow-Methods", ",".join(cors.allow_methods)))
            if cors.allow_headers:
                requested = headers.get("access-control-request-headers", "")
                allow = requested if "*" in cors.allow_headers and requested else ",".join(cors.allow_headers)
                out.append(("Access-Control-Allow-Headers", allow))
            if cors.max_age is not None:
                out.append(("Access-Control-Max-Age", str(cors.max_age)))
            if cors.allow_credentials:
                out.append(("Access-Control-Allow-Credentials", "true"))
        return Response(204, out, b"")

    def _cors_headers(self, request: Request) -> list[tuple[str, str]]:
        cors = self.api.cors
        origin = next((value for name, value in request.headers if name.lower() == "origin"), None)
        if cors is None or not origin:
            return []
        allowed = self._allowed_origin(cors, origin)
        if not allowed:
            return []
        out = [("Access-Control-Allow-Origin", allowed)]
        if cors.expose_headers:
            out.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
        if cors.allow_credentials:
            out.append(("Access-Control-Allow-Credentials", "true"))
        return out

    # --- the request ----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        cors = self.api.cors
        lowered = {name.lower() for name, _ in request.headers}
        if (
            cors is not None
            and request.method == "OPTIONS"
            and "origin" in lowered
            and "access-control-request-method" in lowered
        ):
            return self._preflight(cors, request)
        response = self._handle(request)
        if cors is not None:
            # API Gateway replaces the integration's CORS headers with its own.
            response.headers = [
                (name, value) for name, value in response.headers if not name.lower().startswith("access-control-")
            ]
            response.headers += self._cors_headers(request)
        return response

    def _handle(self, request: Request) -> Response:
        matched = self.router.match(request.method, request.raw_path)
        if matched is None:
            return _gateway_answer(404, "Not Found")
        route, path_parameters = matched
        authorizer_context: dict[str, Any] | None = None
        if route.authorizer is not None:
            outcome = self._authorize(self.api.authorizers[route.authorizer], request, route, path_parameters)
            if isinstance(outcome, Response):
                return outcome
            authorizer_context = outcome
        event = self._event(request, route, path_parameters)
        if authorizer_context is not None:
            event["requestContext"]["authorizer"] = authorizer_context
        try:
            result = self.invoke(route.function, event)
        except LambdaError as failure:
            log.warning("%s failed: %s", route.route_key, failure)
            return _gateway_answer(500, "Internal Server Error")
        return _response_from(result)


def _response_from(result: Any) -> Response:
    """A payload format 2.0 answer as HTTP (a bare value means 200 application/json, as API Gateway infers)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return Response(200, [("Content-Type", "application/json")], json.dumps(result).encode())
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        return _gateway_answer(500, "Internal Server Error")
    headers: list[tuple[str, str]] = []
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    for name, value in single.items():
        if name in multi:
            continue
        headers.append((str(name), str(value)))
    for name, values in multi.items():
        headers.extend((str(name), str(value)) for value in values or [])
    for cookie in result.get("cookies") or []:
        headers.append(("Set-Cookie", str(cookie)))
    body_value = result.get("body")
    if body_value is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(str(body_value))
    else:
        body = (body_value if isinstance(body_value, str) else json.dumps(body_value)).encode()
    return Response(status, headers, body)


# ---------------------------------------------------------------- HTTP server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CrieurLocalApi"
    timeout = 60
    server: _Server

    def _serve(self) -> None:
        started = time.monotonic()
        body = self._body()
        if body is None:
            self._write(_gateway_answer(413, "Request Entity Too Large"))
            self.close_connection = True
            return
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            raw_path=split.path or "/",
            raw_query=split.query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        gateway = self.server.gateway
        if gateway is None:
            response = _gateway_answer(503, "Service Unavailable")
        else:
            try:
                response = gateway.handle(request)
            except Exception:
                log.exception("local API: %s %s", self.command, self.path)
                response = _gateway_answer(500, "Internal Server Error")
        if self.server.access_log is not None:
            elapsed = (time.monotonic() - started) * 1000
            self.server.access_log(f"{self.command} {self.path} → {response.status} ({elapsed:.0f} ms)")
        self._write(response)

    def _body(self) -> bytes | None:
        """The request body (Content-Length or chunked), None when over HTTP API's 10 MB."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
                if len(body) > MAX_PAYLOAD_BYTES:
                    return None
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, QUERY…) goes to the routes too, as API Gateway does for `ANY` routes."""
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("local API: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    gateway: Gateway | None = None
    access_log: Callable[[str], None] | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (curl | head, a closed browser tab) is not worth a traceback."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("local API: %s from %s", error, client_address)
            return
        super().handle_error(request, client_address)


class LocalApi:
    """The local API server: bound at construction (so its URL is known), serving once `start` is called."""

    def __init__(self, host: str = "127.0.0.1", port: int = 3000) -> None:
        self._server = _Server((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}"

    def start(self, gateway: Gateway, access_log: Callable[[str], None] | None = None) -> None:
        self._server.gateway = gateway
        self._server.access_log = access_log
        self._thread = threading.Thread(target=self._server.serve_forever, name="local API", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
