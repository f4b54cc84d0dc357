"""Météo-France DPVigilance as the sandbox imitates it, and the weather both vigilance imitations show.

The real client (`crieur.weather.meteofrance.MeteoFranceSource`) is pointed here with
CRIEUR_METEOFRANCE_BASE_URL=<sandbox>/meteofrance; it then asks for the token at <sandbox>/meteofrance/token.

HTTP surface under `/meteofrance`:

- `GET /public/DPVigilance/v1/cartevigilance/encours`: the national carte ({"product", "meta"}, type_cdp
  `cdp_carte_externe`) built with `crieur.weather.samples.carte_document` from the weather board: the 96
  metropolitan départements, green unless switched. Its `update_time` and `meta.snapshot_id` change only when
  the board changes, or at the routine productions of 06:00 and 16:00 Paris time (as the real carte is reissued;
  `routine_productions = False` turns that off). With `serve_etag = True` it also sends an ETag and answers
  304 to a matching If-None-Match (whether the real gateway does is not known: off by default).
- `GET /public/DPVigilance/v1/textesvigilance/encours`: a small `cdp_textes` bulletin when some département is
  orange or red, else 404 "no matching blob", as the real API answers when nothing is published.
- Auth, as the portal's WSO2 gateway: header `apikey: <key>` or `Authorization: Bearer <token>`. Refusals are
  401 {"code", "message", "description"}: 900902 "Missing Credentials", 900901 "Invalid Credentials" (an API
  key), 900901 with "Invalid JWT token. …" (a bearer token unknown, expired or revoked).
- `POST /token` (`grant_type=client_credentials` in the form or the query, `Authorization: Basic
  base64(client_id:client_secret)`): {"access_token" (a JWT), "scope", "token_type": "Bearer", "expires_in"}.
  Refusals in the OAuth2 shape {"error", "error_description"}: 401 invalid_client, 400 invalid_request or
  unsupported_grant_type.
- Quota: `quota_per_minute` (60) calls per credential and rolling minute, then 429 "Message throttled out".
- The switch: `GET /_state` (the board and the carte's identity), `POST /_state` with JSON
  {"departement": "35", "phenomenon": "canicule", "color": "orange", "hours": 24} (or "begin"/"end" as ISO
  times with an offset; a list of such objects is taken too; color "green" ends it), the same fields
  form-encoded from the sandbox page (answered 303 to the page), `DELETE /_state`: all green again.
  `DELETE /_tokens`: every token issued so far is refused from now on ("Invalid JWT token").

Faults injected for channel "meteofrance" apply to the two GET products (not to /token nor /_state): 401 answers
the "Invalid JWT token" refusal (or "Invalid Credentials" to an API key), 403 a subscription refusal, 429 the
throttling answer, 5xx the gateway's "Runtime Error" bodies, a delay alone a slow answer (a client timeout).

The weather board is shared by every weather imitation of one sandbox (the MeteoAlarm imitation shows the same
vigilances as CAP messages), so one switch changes both sources, as real weather would.

Gateway error codes and messages follow WSO2 API Manager, which the portal runs; their exact wording on
Météo-France's gateway is inferred, except "Invalid JWT token" (reference/weather.md).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from http import HTTPStatus
from typing import Any, ClassVar, Final

from crieur.weather.departments import METROPOLITAN_DEPARTEMENTS, departement_name
from crieur.weather.meteofrance import CARTE_PATH, TEXTES_PATH, TOKEN_LIFETIME_S
from crieur.weather.model import PARIS, Color, Phenomenon
from crieur.weather.samples import SampleAlert, carte_document
from infra.local.sandbox import BadRequest, Fault, Reply, Request, Sandbox, parse_body

DEMO_API_KEY: Final = "eyJjcmlldXIiOiJiYWMtYS1zYWJsZSJ9.Y2xlLWQtYXBpLWRlbW8.bWV0ZW9mcmFuY2U"
"""The API key the imitation accepts (the portal's keys are JWTs too)."""
DEMO_CLIENT_ID: Final = "CrieurBacASableConsumerKey"
DEMO_CLIENT_SECRET: Final = "CrieurBacASableConsumerSecret"  # noqa: S105 - the sandbox's public demo secret
DEMO_APPLICATION_ID: Final = base64.b64encode(f"{DEMO_CLIENT_ID}:{DEMO_CLIENT_SECRET}".encode()).decode()
"""What the portal shows as the application id: base64(consumerKey:consumerSecret)."""

QUOTA_PER_MINUTE: Final = 60
ROUTINE_HOURS: Final = (6, 16)
DEFAULT_HOURS: Final = 24.0
MAX_HOURS: Final = 7 * 24.0
SHOWN_REQUESTS: Final = 12

_MISSING = {
    "code": "900902",
    "message": "Missing Credentials",
    "description": (
        "Invalid Credentials. Make sure your API invocation call has a header: 'Authorization : Bearer "
        "ACCESS_TOKEN' or 'Authorization : Basic ACCESS_TOKEN' or 'apikey: API_KEY'"
    ),
}
_INVALID_KEY = {
    "code": "900901",
    "message": "Invalid Credentials",
    "description": "Invalid Credentials. Make sure you have provided the correct security credentials",
}
_INVALID_JWT = {
    "code": "900901",
    "message": "Invalid Credentials",
    "description": "Invalid JWT token. Make sure you have provided the correct security credentials",
}
_FORBIDDEN = {
    "code": "900908",
    "message": "Resource forbidden ",
    "description": "User is NOT authorized to access the Resource. API Subscription validation failed.",
}
_NO_RESOURCE = {
    "code": "900906",
    "message": "No matching resource found for given API Request",
    "description": "Access failure for API: /public/DPVigilance/v1, version: v1 status: (900906) - "
    "No matching resource found for given API Request",
}
_NO_BLOB = {"code": "404", "message": "Not Found", "description": "no matching blob"}
_RUNTIME = {
    500: ("101500", "Internal Server Error"),
    502: ("101503", "Error connecting to the back end"),
    503: ("101503", "Error connecting to the back end"),
    504: ("101504", "Send timeout"),
}
_COLOR_WORDS: Final = {
    "green": Color.GREEN,
    "vert": Color.GREEN,
    "verte": Color.GREEN,
    "yellow": Color.YELLOW,
    "jaune": Color.YELLOW,
    "orange": Color.ORANGE,
    "red": Color.RED,
    "rouge": Color.RED,
}
_SWATCHES: Final = {Color.GREEN: "#15ed13", Color.YELLOW: "#f9ff00", Color.ORANGE: "#f7a401", Color.RED: "#e71919"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shown_time(moment: datetime) -> str:
    """An accessible <time>: machine-readable UTC, read in Paris time."""
    local = moment.astimezone(PARIS)
    return f'<time datetime="{z(moment)}">{local:%d/%m/%Y à %H:%M}</time>'


# ------------------------------------------------------------------------------------------- the weather board


@dataclass(frozen=True)
class BoardVigilance:
    """One (département, phenomenon) switched away from green, from `begin` to `end`."""

    departement: str
    phenomenon: Phenomenon
    color: Color
    begin: datetime
    end: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "departement": self.departement,
            "departement_name": departement_name(self.departement),
            "phenomenon": self.phenomenon.value,
            "color": self.color.value,
            "begin": z(self.begin),
            "end": z(self.end),
        }

    def as_sample(self) -> SampleAlert:
        return SampleAlert(self.departement, self.phenomenon, self.color, self.begin, self.end)


@dataclass(frozen=True)
class BoardChange:
    """A switch: `after` None means back to green."""

    departement: str
    phenomenon: Phenomenon
    before: BoardVigilance | None
    after: BoardVigilance | None
    at: datetime


class WeatherBoard:
    """The sandbox's weather: what every département is switched to. Green unless set.

    `version` grows at each change; listeners (the MeteoAlarm imitation) hear each change as it happens.
    `clock` is the time every weather imitation of the sandbox uses (tests may replace it).
    """

    def __init__(self, clock: Callable[[], datetime] = _utc_now) -> None:
        self.clock = clock
        self._lock = threading.RLock()
        self._entries: dict[tuple[str, Phenomenon], BoardVigilance] = {}
        self._listeners: list[Callable[[BoardChange], None]] = []
        self.version = 0
        self.changed_at: datetime | None = None

    def now(self) -> datetime:
        """The clock's time, in UTC, to the second (what the documents carry)."""
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def subscribe(self, listener: Callable[[BoardChange], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def set_vigilance(
        self,
        departement: str,
        phenomenon: Phenomenon | str,
        color: Color | str,
        begin: datetime | None = None,
        end: datetime | None = None,
        *,
        hours: float | None = None,
    ) -> BoardVigilance | None:
        """Switches one (département, phenomenon); green ends it. `begin` defaults to now, `end` to `begin`
        plus `hours` (24). Returns what is now in force for the pair (None for green)."""
        code = parse_departement(departement)
        kind = parse_phenomenon(phenomenon)
        shade = parse_color(color)
        with self._lock:
            now = self.now()
            key = (code, kind)
            before = self._entries.get(key)
            after: BoardVigilance | None = None
            if shade is not Color.GREEN:
                start = _aware(begin, "begin") if begin is not None else now
                if end is not None:
                    stop = _aware(end, "end")
                else:
                    stop = start + timedelta(hours=parse_hours(DEFAULT_HOURS if hours is None else hours))
                if stop <= start:
                    raise ValueError("la fin doit suivre le début")
                after = BoardVigilance(code, kind, shade, start, stop)
            if after == before:
                return after
            if after is None:
                del self._entries[key]
            else:
                self._entries[key] = after
            self._changed(BoardChange(code, kind, before, after, now))
            return after

    def clear(self) -> None:
        """Green everywhere again (one change per pair that was switched)."""
        with self._lock:
            now = self.now()
            ended = list(self._entries.values())
            self._entries.clear()
            for before in ended:
                self._changed(BoardChange(before.departement, before.phenomenon, before, None, now))

    def _changed(self, change: BoardChange) -> None:
        self.version += 1
        self.changed_at = change.at
        for listener in list(self._listeners):
            listener(change)

    def snapshot(self) -> tuple[int, datetime | None, tuple[BoardVigilance, ...]]:
        with self._lock:
            return self.version, self.changed_at, self.entries()

    def entries(self) -> tuple[BoardVigilance, ...]:
        """Every switched pair, ended ones included, by département and phenomenon."""
        with self._lock:
            return tuple(sorted(self._entries.values(), key=lambda v: (v.departement, v.phenomenon.value)))

    def current(self, now: datetime | None = None) -> tuple[BoardVigilance, ...]:
        """The switched pairs not yet over at `now` (the board's clock by default)."""
        moment = now or self.now()
        return tuple(entry for entry in self.entries() if entry.end > moment)


_BOARDS: weakref.WeakKeyDictionary[Sandbox, WeatherBoard] = weakref.WeakKeyDictionary()
_BOARDS_LOCK = threading.Lock()


def weather_board(sandbox: Sandbox) -> WeatherBoard:
    """The one board of this sandbox, shared by its weather imitations."""
    with _BOARDS_LOCK:
        board = _BOARDS.get(sandbox)
        if board is None:
            board = _BOARDS[sandbox] = WeatherBoard()
        return board


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} : une heure avec son fuseau est attendue")
    return moment.astimezone(UTC).replace(microsecond=0)


def parse_departement(value: object) -> str:
    text = str(value).strip().upper() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if text.isdigit() and len(text) == 1:
        text = f"0{text}"
    if text not in METROPOLITAN_DEPARTEMENTS:
        raise ValueError(f"département inconnu : {value!r} (01 à 95, 2A, 2B)")
    return text


def parse_phenomenon(value: object) -> Phenomenon:
    if isinstance(value, Phenomenon) and value is not Phenomenon.UNKNOWN:
        return value
    if not isinstance(value, str):
        raise ValueError(f"phénomène attendu (texte) : {value!r}")
    return Phenomenon.parse(value)


def parse_color(value: object) -> Color:
    if isinstance(value, Color) and value is not Color.UNKNOWN:
        return value
    found = _COLOR_WORDS.get(value.strip().lower()) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"couleur inconnue : {value!r} (green, yellow, orange, red)")
    return found


def parse_hours(value: object) -> float:
    try:
        hours = float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else -1.0
    except ValueError:
        hours = -1.0
    if not 0 < hours <= MAX_HOURS:
        raise ValueError(f"durée en heures attendue, entre 0 et {MAX_HOURS:g} : {value!r}")
    return hours


def _parse_time(value: object, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} : une date ISO 8601 est attendue")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as wrong:
        raise ValueError(f"{name} : date illisible {value!r}") from wrong
    return _aware(moment, name)


def apply_switch(board: WeatherBoard, spec: object) -> list[BoardVigilance | None]:
    """One switch (or a list of them) as the `_state` endpoints take it; ValueError names what is wrong."""
    given: list[object] = list(spec) if isinstance(spec, list) else [spec]
    specs = [item for item in given if isinstance(item, Mapping)]
    if not specs or len(specs) != len(given):
        raise ValueError('un objet JSON est attendu : {"departement", "phenomenon", "color", "hours"}')
    checked = []
    for item in specs:
        unknown = set(item) - {"departement", "phenomenon", "color", "hours", "begin", "end"}
        if unknown:
            raise ValueError(f"champ(s) inconnu(s) : {', '.join(sorted(unknown))}")
        hours = item.get("hours")
        checked.append(
            (
                parse_departement(item.get("departement")),
                parse_phenomenon(item.get("phenomenon")),
                parse_color(item.get("color")),
                _parse_time(item.get("begin"), "begin"),
                _parse_time(item.get("end"), "end"),
                None if hours in (None, "") else parse_hours(hours),
            )
        )
    return [
        board.set_vigilance(dep, kind, shade, begin, end, hours=hours)
        for dep, kind, shade, begin, end, hours in checked
    ]


def state_reply(board: WeatherBoard, request: Request, describe: Callable[[], dict[str, Any]], anchor: str) -> Reply:
    """`/_state` of a weather imitation: GET the board, POST a switch (JSON or the page's form), DELETE: green."""
    if request.method not in ("GET", "HEAD", "POST", "DELETE"):
        return Reply.json(405, {"error": "Method not allowed"}, {"Allow": "GET, POST, DELETE"})
    if request.method == "DELETE":
        board.clear()
    if request.method != "POST":
        return Reply.json(200, describe())
    from_form = request.content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"
    try:
        apply_switch(board, parse_body(request.content_type or "application/json", request.body))
    except (BadRequest, ValueError) as wrong:
        if from_form:
            return Reply(400, _form_error_page(str(wrong)).encode(), "text/html; charset=utf-8")
        return Reply.json(400, {"error": str(wrong)})
    if from_form:
        return Reply(303, b"", "text/plain", {"Location": f"/#{anchor}"})
    return Reply.json(200, describe())


def _form_error_page(message: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="fr"><head><meta charset="utf-8"><title>Bascule refusée</title></head>'
        f'<body><main><h1>Bascule refusée</h1><p role="alert">{html.escape(message)}</p>'
        '<p><a href="/">Retour au bac à sable</a></p></main></body></html>\n'
    )


def vigilance_table(entries: Iterable[BoardVigilance], caption: str) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(entry.departement)} {html.escape(departement_name(entry.departement))}</td>"
        f"<td>{html.escape(entry.phenomenon.label)}</td>"
        f'<td><span aria-hidden="true" style="display:inline-block;width:.9em;height:.9em;'
        f'border:1px solid #333;background:{_SWATCHES.get(entry.color, "#fff")}"></span> '
        f"{html.escape(entry.color.label)}</td>"
        f"<td>{shown_time(entry.begin)}</td><td>{shown_time(entry.end)}</td>"
        "</tr>"
        for entry in entries
    )
    return (
        f"<table><caption>{html.escape(caption)}</caption>"
        '<thead><tr><th scope="col">Département</th><th scope="col">Phénomène</th><th scope="col">Couleur</th>'
        '<th scope="col">Début (heure de Paris)</th><th scope="col">Fin (heure de Paris)</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def requests_table(items: list[dict[str, Any]], caption: str) -> str:
    """The last requests a weather imitation received, newest first."""
    if not items:
        return "<p>Aucune requête reçue pour l'instant.</p>"
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(str(item.get('at', '')))}</td>"
        f"<td>{html.escape(str(item.get('method', '')))} {html.escape(str(item.get('path', '')))}</td>"
        f"<td>{html.escape(str(item.get('auth') or '—'))}</td>"
        f"<td>{html.escape(str(item.get('status', '')))}</td>"
        f"<td>{html.escape(str(item.get('outcome') or ''))}</td>"
        "</tr>"
        for item in reversed(items[-SHOWN_REQUESTS:])
    )
    return (
        f"<table><caption>{html.escape(caption)}</caption>"
        '<thead><tr><th scope="col">Reçue à (UTC)</th><th scope="col">Requête</th>'
        '<th scope="col">Authentification</th><th scope="col">Réponse</th><th scope="col">Détail</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def switch_form(action: str, anchor: str) -> str:
    """The page's switch: an accessible form posting to `action` (form-encoded, answered 303 to the page)."""
    departements = "".join(
        f'<option value="{code}"{" selected" if code == "35" else ""}>{code} {html.escape(departement_name(code))}'
        "</option>"
        for code in sorted(METROPOLITAN_DEPARTEMENTS)
    )
    phenomena = "".join(
        f'<option value="{kind.value}"{" selected" if kind is Phenomenon.CANICULE else ""}>'
        f"{html.escape(kind.label)}</option>"
        for kind in Phenomenon
        if kind is not Phenomenon.UNKNOWN
    )
    colors = "".join(
        f'<option value="{shade.value}"{" selected" if shade is Color.ORANGE else ""}>{html.escape(shade.label)}'
        "</option>"
        for shade in (Color.GREEN, Color.YELLOW, Color.ORANGE, Color.RED)
    )
    return (
        f'<form method="post" action="{html.escape(action)}">'
        f"<fieldset><legend>Basculer la vigilance (Météo-France et MeteoAlarm ensemble)</legend>"
        f'<p><label for="{anchor}-dep">Département</label> <select id="{anchor}-dep" name="departement">'
        f"{departements}</select></p>"
        f'<p><label for="{anchor}-phen">Phénomène</label> <select id="{anchor}-phen" name="phenomenon">'
        f"{phenomena}</select></p>"
        f'<p><label for="{anchor}-color">Couleur (verte pour terminer)</label> '
        f'<select id="{anchor}-color" name="color">{colors}</select></p>'
        f'<p><label for="{anchor}-hours">Durée en heures, à partir de maintenant</label> '
        f'<input id="{anchor}-hours" name="hours" type="number" min="1" max="{MAX_HOURS:g}" step="1" value="24"></p>'
        '<p><button type="submit">Appliquer</button></p></fieldset></form>'
    )


# ------------------------------------------------------------------------------------------- Météo-France


@dataclass(frozen=True)
class _Carte:
    version: int
    update_time: datetime
    snapshot_id: str
    body: bytes
    alerts: tuple[BoardVigilance, ...]

    @property
    def etag(self) -> str:
        return f'"{self.snapshot_id}"'


@dataclass
class _Token:
    client_id: str
    expires: datetime


@dataclass
class _Refusal(Exception):
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def routine_production(now: datetime) -> datetime:
    """The latest routine production (06:00 or 16:00 Paris time) at or before `now`."""
    local = now.astimezone(PARIS)
    for day in (local.date(), local.date() - timedelta(days=1)):
        for hour in sorted(ROUTINE_HOURS, reverse=True):
            moment = datetime.combine(day, day_time(hour), tzinfo=PARIS)
            if moment <= local:
                return moment.astimezone(UTC)
    return datetime.combine(local.date() - timedelta(days=2), day_time(max(ROUTINE_HOURS)), tzinfo=PARIS)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class MeteoFranceImitation:
    """DPVigilance on loopback (see the module docstring)."""

    channel: ClassVar[str] = "meteofrance"
    prefix: ClassVar[str] = "/meteofrance"
    base_url_variable: ClassVar[str | None] = "CRIEUR_METEOFRANCE_BASE_URL"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.board = weather_board(sandbox)
        self._lock = threading.RLock()
        self._api_keys: set[str] = {DEMO_API_KEY}
        self._clients: dict[str, str] = {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET}
        self._tokens: dict[str, _Token] = {}
        self._signing_key = secrets.token_bytes(32)
        self._calls: dict[str, list[float]] = {}
        self._carte: _Carte | None = None
        self.token_lifetime_s = TOKEN_LIFETIME_S
        self.quota_per_minute: int | None = QUOTA_PER_MINUTE
        self.serve_etag = False
        self.routine_productions = True

    # -- configuration and inspection (tests, the local stack) -------------------------------------------

    def set_vigilance(
        self,
        departement: str,
        phenomenon: Phenomenon | str,
        color: Color | str,
        begin: datetime | None = None,
        end: datetime | None = None,
        *,
        hours: float | None = None,
    ) -> BoardVigilance | None:
        """Switches the sandbox's weather (both weather imitations); see WeatherBoard.set_vigilance."""
        return self.board.set_vigilance(departement, phenomenon, color, begin, end, hours=hours)

    def vigilances(self) -> tuple[BoardVigilance, ...]:
        """The non-green vigilances not yet over."""
        return self.board.current()

    def clear(self) -> None:
        """Green everywhere; forgets the quota counts. Keeps the keys, clients and tokens issued."""
        self.board.clear()
        with self._lock:
            self._calls.clear()

    def demo_channel(self) -> dict[str, Any] | None:
        return None  # a weather source, not a channel of a commune

    @staticmethod
    def demo_credentials(method: str = "apikey") -> dict[str, str]:
        """MeteoFranceCredentials fields the imitation accepts: the API key, or the OAuth2 application id."""
        if method == "apikey":
            return {"api_key": DEMO_API_KEY}
        if method == "oauth2":
            return {"application_id": DEMO_APPLICATION_ID}
        raise ValueError("method: apikey ou oauth2")

    def register_api_key(self, key: str) -> None:
        with self._lock:
            self._api_keys.add(key)

    def register_client(self, client_id: str, client_secret: str) -> None:
        with self._lock:
            self._clients[client_id] = client_secret

    def expire_tokens(self) -> int:
        """Every token issued so far is refused from now on, as when one expires early. Returns how many."""
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
        return count

    def tokens_issued(self) -> int:
        with self._lock:
            return len(self._tokens)

    def document(self) -> dict[str, Any]:
        """The carte the API serves now."""
        parsed: dict[str, Any] = json.loads(self._current().body)
        return parsed

    def identity(self) -> dict[str, Any]:
        carte = self._current()
        return {"update_time": z(carte.update_time), "snapshot_id": carte.snapshot_id}

    def describe(self) -> dict[str, Any]:
        return {
            "vigilances": [entry.as_json() for entry in self.board.current()],
            "carte": self.identity(),
        }

    # -- the carte -----------------------------------------------------------------------------------------

    def _current(self) -> _Carte:
        with self._lock:  # the board's lock is taken inside this one, never the other way round
            version, changed_at, entries = self.board.snapshot()
            now = self.board.now()
            carte = self._carte
            if carte is None:
                update_time = routine_production(now) if self.routine_productions else now
                if changed_at is not None:
                    update_time = max(update_time, changed_at)
            elif carte.version != version:
                update_time = changed_at or now
            elif self.routine_productions and routine_production(now) > carte.update_time:
                update_time = routine_production(now)
            else:
                return carte
            alerts = tuple(entry for entry in entries if entry.color is not Color.GREEN)
            snapshot_id = str(uuid.uuid4())
            document = carte_document(update_time, (entry.as_sample() for entry in alerts), snapshot_id=snapshot_id)
            body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
            self._carte = _Carte(version, update_time, snapshot_id, body, alerts)
            return self._carte

    def _bulletin(self, carte: _Carte) -> dict[str, Any] | None:
        """A minimal `cdp_textes` when some département is orange or red (the texts say nothing real)."""
        now = self.board.now()
        chosen = [entry for entry in carte.alerts if entry.color.is_alert and entry.end > now]
        if not chosen:
            return None
        blocs: list[dict[str, Any]] = [
            {
                "domain_id": "FRA",
                "domain_name": "France",
                "bloc_title": "Bulletin national",
                "bloc_id": "BULLETIN_NATIONAL",
                "bloc_items": [],
            }
        ]
        for entry in chosen:
            level = {Color.ORANGE: "3", Color.RED: "4"}[entry.color]
            blocs.append(
                {
                    "domain_id": entry.departement,
                    "domain_name": departement_name(entry.departement),
                    "bloc_title": "Bulletin départemental",
                    "bloc_id": "BULLETIN_DEPARTEMENTAL",
                    "bloc_items": [
                        {
                            "id": "DEP_SITUATION",
                            "type_name": "Situation",
                            "type_group": "SITUATION",
                            "text_items": [
                                {
                                    "type_code": "SITUATION",
                                    "hazard_code": str(entry.phenomenon.meteofrance_id),
                                    "hazard_name": entry.phenomenon.label,
                                    "term_items": [
                                        {
                                            "term_names": "J+J1",
                                            "start_time": z(entry.begin),
                                            "end_time": z(entry.end),
                                            "risk_name": entry.color.label.capitalize(),
                                            "risk_code": level,
                                            "risk_color": _SWATCHES[entry.color],
                                            "risk_level": int(level),
                                            "subdivision_text": [
                                                {
                                                    "underline_text": None,
                                                    "bold_text": "Texte d'exemple du bac à sable de Crieur.",
                                                    "text": [
                                                        f"Vigilance {entry.color.label} {entry.phenomenon.in_sentence}."
                                                    ],
                                                }
                                            ],
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                }
            )
        return {
            "product": {
                "warning_type": "vigilance",
                "type_cdp": "cdp_textes",
                "version_vigilance": "V6",
                "update_time": z(carte.update_time),
                "domain_id": "FRA",
                "text_bloc_items": blocs,
            },
            "meta": {"snapshot_id": carte.snapshot_id, "product_datetime": z(carte.update_time)},
        }

    # -- requests ------------------------------------------------------------------------------------------

    def handle(self, request: Request, subpath: str) -> Reply:
        if subpath == "/_state":
            return state_reply(self.board, request, self.describe, "h-meteofrance")
        if subpath == "/_tokens" and request.method == "DELETE":
            return Reply.json(200, {"expired": self.expire_tokens()})
        if subpath == "/token":
            return self._token_endpoint(request)
        if subpath in (CARTE_PATH, TEXTES_PATH) or subpath.startswith("/public/DPVigilance/"):
            return self._api(request, subpath)
        return Reply.json(404, _NO_RESOURCE)

    def _api(self, request: Request, subpath: str) -> Reply:
        auth: str | None = None
        outcome = ""
        external_id: str | None = None
        fault = self.sandbox.take_fault(self.channel) if request.method in ("GET", "HEAD") else None
        self.sandbox.wait_fault(fault)
        try:
            if fault is not None and fault.status is not None:
                raise self._fault_refusal(fault, request)
            auth, principal = self._authenticate(request)
            if subpath not in (CARTE_PATH, TEXTES_PATH):
                raise _Refusal(404, _NO_RESOURCE)
            if request.method not in ("GET", "HEAD"):
                raise _Refusal(405, {"code": "405", "message": "Method Not Allowed", "description": ""})
            self._count(principal)
            carte = self._current()
            external_id = carte.snapshot_id
            headers = {"ETag": carte.etag} if self.serve_etag else {}
            if subpath == TEXTES_PATH:
                bulletin = self._bulletin(carte)
                if bulletin is None:
                    raise _Refusal(404, _NO_BLOB)
                reply = Reply.json(200, bulletin, headers)
                outcome = "bulletin"
            elif self.serve_etag and carte.etag in _etags(request.headers.get("if-none-match", "")):
                reply = Reply(304, b"", headers=headers)
                outcome = "inchangée (304)"
            else:
                reply = Reply(200, carte.body, "application/json", headers)
                outcome = f"carte du {carte.update_time.astimezone(PARIS):%d/%m %H:%M:%S}"
        except _Refusal as refused:
            reply = Reply.json(refused.status, refused.body, refused.headers)
            outcome = str(refused.body.get("description") or refused.body.get("message") or "")
        self._record(request, reply, None, external_id=external_id, auth=auth, outcome=outcome)
        return reply

    def _authenticate(self, request: Request) -> tuple[str, str]:
        """("bearer" | "apikey", the credential's name for the quota); refusals in the gateway's shape."""
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        key = request.headers.get("apikey", "").strip()
        now = self.board.now()
        if scheme.lower() == "bearer" and value.strip():
            with self._lock:
                token = self._tokens.get(value.strip())
                if token is None or token.expires <= now:
                    self._tokens.pop(value.strip(), None)
                    raise _Refusal(401, _INVALID_JWT, _www_authenticate())
                return "bearer", token.client_id
        if key:
            with self._lock:
                if key not in self._api_keys:
                    raise _Refusal(401, _INVALID_KEY, _www_authenticate())
            return "apikey", "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]
        raise _Refusal(401, _MISSING, _www_authenticate())

    def _count(self, principal: str) -> None:
        if self.quota_per_minute is None:
            return
        now = time.monotonic()
        with self._lock:
            calls = [moment for moment in self._calls.get(principal, []) if moment > now - 60]
            if len(calls) >= self.quota_per_minute:
                self._calls[principal] = calls
                wait = max(1, int(60 - (now - calls[0])) + 1)
                raise _Refusal(429, _throttled(wait), {"Retry-After": str(wait)})
            calls.append(now)
            self._calls[principal] = calls

    def _fault_refusal(self, fault: Fault, request: Request) -> _Refusal:
        status = fault.status or 500
        if status == 401:
            bearer = request.headers.get("authorization", "").lower().startswith("bearer ")
            return _Refusal(401, _INVALID_JWT if bearer else _INVALID_KEY, _www_authenticate())
        if status == 403:
            return _Refusal(403, _FORBIDDEN)
        if status == 404:
            return _Refusal(404, _NO_BLOB)
        if status == 429:
            wait = fault.retry_after or 60
            return _Refusal(429, _throttled(wait), {"Retry-After": str(wait)})
        if status >= 500:
            code, description = _RUNTIME.get(status, ("101500", "Internal Server Error"))
            return _Refusal(status, {"code": code, "message": "Runtime Error", "description": description})
        return _Refusal(status, {"code": str(status), "message": HTTPStatus(status).phrase, "description": ""})

    # -- OAuth2 --------------------------------------------------------------------------------------------

    def _token_endpoint(self, request: Request) -> Reply:
        form: dict[str, Any] = {key: values[0] for key, values in request.query.items() if values}
        try:
            body = parse_body(request.content_type or "application/x-www-form-urlencoded", request.body)
        except BadRequest:
            body = {}
        if isinstance(body, dict):
            form.update(body)
        client_id: str | None = None
        try:
            if request.method != "POST":
                raise _Refusal(405, {"error": "invalid_request", "error_description": "HTTP POST expected"})
            client_id = self._client(request)
            grant = form.get("grant_type")
            if not grant:
                raise _Refusal(400, _oauth("invalid_request", "Missing parameters: grant_type"))
            if grant != "client_credentials":
                raise _Refusal(400, _oauth("unsupported_grant_type", "Unsupported grant_type value"))
            token, lifetime = self._issue(client_id)
            reply = Reply.json(
                200,
                {"access_token": token, "scope": "default", "token_type": "Bearer", "expires_in": lifetime},
                {"Cache-Control": "no-store", "Pragma": "no-cache"},
            )
            outcome = f"jeton émis ({lifetime} s)"
        except _Refusal as refused:
            reply = Reply.json(refused.status, refused.body, refused.headers)
            outcome = str(refused.body.get("error_description") or "")
        shown = {"grant_type": form.get("grant_type")}
        self._record(request, reply, shown, auth=f"basic {client_id}" if client_id else "basic", outcome=outcome)
        return reply

    def _client(self, request: Request) -> str:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or not value.strip():
            raise _Refusal(
                401,
                _oauth("invalid_client", "Unsupported Client Authentication Method!"),
                {"WWW-Authenticate": 'Basic realm="Carbon Server"'},
            )
        try:
            client_id, separator, client_secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            client_id, separator, client_secret = "", "", ""
        with self._lock:
            expected = self._clients.get(client_id) if separator else None
        if expected is None:
            shown = client_id or "?"
            raise _Refusal(
                401, _oauth("invalid_client", f"A valid OAuth client could not be found for client_id: {shown}")
            )
        if not hmac.compare_digest(expected.encode(), client_secret.encode()):
            raise _Refusal(401, _oauth("invalid_client", "Client Authentication failed."))
        return client_id

    def _issue(self, client_id: str) -> tuple[str, int]:
        now = self.board.now()
        lifetime = int(self.token_lifetime_s)
        expires = now + timedelta(seconds=lifetime)
        header = {"typ": "JWT", "alg": "HS256", "kid": "crieur-bac-a-sable"}
        claims = {
            "sub": f"{client_id}@carbon.super",
            "aut": "APPLICATION",
            "aud": client_id,
            "azp": client_id,
            "scope": "default",
            "iss": f"{self.sandbox.url}{self.prefix}/token",
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": str(uuid.uuid4()),
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = hmac.new(self._signing_key, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{_b64url(signature)}"
        with self._lock:
            for known, issued in list(self._tokens.items()):
                if issued.expires <= now:
                    del self._tokens[known]
            self._tokens[token] = _Token(client_id, expires)
        return token, lifetime

    # -- records and the page ------------------------------------------------------------------------------

    def _record(self, request: Request, reply: Reply, body: Any, **extra: Any) -> None:
        if "apikey" in request.headers:
            request = dataclasses.replace(request, headers={**request.headers, "apikey": "[redacted]"})
        self.sandbox.record(self.channel, request, reply, body, external_id=extra.pop("external_id", None), **extra)

    def page_section(self) -> str:
        carte = self._current()
        current = self.board.current()
        if current:
            vigilances = vigilance_table(
                current, f"{len(current)} vigilance(s) autre(s) que verte en cours ou à venir, par département"
            )
        else:
            vigilances = "<p>Vigilance verte sur les 96 départements métropolitains.</p>"
        items = self.sandbox.received(self.channel)
        return (
            '<section aria-labelledby="h-meteofrance"><h2 id="h-meteofrance">Météo-France : vigilance</h2>'
            f"<p>Carte en cours (<code>{html.escape(CARTE_PATH)}</code>) : produite le "
            f"{shown_time(carte.update_time)}, instantané <code>{html.escape(carte.snapshot_id)}</code>. "
            "La même vigilance est servie par l'imitation de MeteoAlarm.</p>"
            f"{vigilances}{switch_form(f'{self.prefix}/_state', 'h-meteofrance')}"
            f"{requests_table(items, 'Dernières requêtes reçues par Météo-France, la plus récente en premier')}"
            "</section>"
        )


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}


def _oauth(error: str, description: str) -> dict[str, Any]:
    return {"error_description": description, "error": error}


def _throttled(wait_seconds: int) -> dict[str, Any]:
    moment = datetime.now(UTC) + timedelta(seconds=wait_seconds)
    return {
        "code": "900802",
        "message": "Message throttled out",
        "description": "You have exceeded your quota",
        "nextAccessTime": f"{moment:%Y-%b-%d %H:%M:%S}+0000 UTC",
    }


def _www_authenticate() -> dict[str, str]:
    return {"WWW-Authenticate": 'OAuth2 realm="WSO2 API Manager", error="invalid_token"'}


__all__ = [
    "DEMO_API_KEY",
    "DEMO_APPLICATION_ID",
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "BoardChange",
    "BoardVigilance",
    "MeteoFranceImitation",
    "WeatherBoard",
    "weather_board",
]
