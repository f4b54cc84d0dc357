"""MeteoAlarm's France feed as the sandbox imitates it: the Atom feed and the CAP 1.2 messages it links to.

The real client (`crieur.weather.meteoalarm.MeteoAlarmSource`) is pointed here with
CRIEUR_METEOALARM_BASE_URL=<sandbox>/meteoalarm.

HTTP surface under `/meteoalarm` (no authentication, as the real feeds):

- `GET /feeds/meteoalarm-legacy-atom-france`: the Atom feed (`crieur.weather.samples.atom_feed`), one entry per
  (message × area), newest first. Like the real feed it keeps superseded and ended messages (for a day after
  they expire) and links each entry to its CAP message on the real host
  (`https://feeds.meteoalarm.org/api/v1/warnings/feeds-france/<uuid>`), which the client maps to its
  configured base URL.
- `GET /api/v1/warnings/feeds-france/<uuid>`: the CAP 1.2 message (`crieur.weather.samples.cap_message`), shaped
  like Météo-France's through MeteoAlarm: sender vigilance@meteo.fr, fr-FR info, awareness_level
  "3; orange; Severe", awareness_type "5; high-temperature", NUTS3 (2013) geocode, identifier
  `2.49.0.0.250.0.FR.<YYYYMMDDhhmmss Paris time>.<n>`.
- The switch, shared with the Météo-France imitation (one weather board per sandbox): `GET|POST|DELETE /_state`,
  the same bodies as `/meteofrance/_state`.

Messages follow the board as Météo-France issues them: a pair switched away from green gets an `Alert`; a later
change while it is in force an `Update` whose `references` name the message it supersedes; back to green an
`Update` with `responseType AllClear` and `expires` = `effective`, as in the real France sample.

Faults injected for channel "meteoalarm" apply to every GET of the feed and of the messages: a status answers
that status with the front server's HTML error page (429 with Retry-After), a delay alone a slow answer.
"""

from __future__ import annotations

import html
import itertools
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any, ClassVar, Final

from crieur.weather.departments import departement_name
from crieur.weather.meteoalarm import DEFAULT_BASE_URL, FEED_PATH
from crieur.weather.model import PARIS, Color, Phenomenon
from crieur.weather.samples import SampleCap, atom_feed, cap_message
from infra.local.imitations.meteofrance import (
    BoardChange,
    BoardVigilance,
    requests_table,
    shown_time,
    state_reply,
    switch_form,
    vigilance_table,
    weather_board,
)
from infra.local.sandbox import Fault, Reply, Request, Sandbox

CAP_PATH: Final = "/api/v1/warnings/feeds-france/"
IDENTIFIER_PREFIX: Final = "2.49.0.0.250.0.FR."
KEPT_AFTER_EXPIRY: Final = timedelta(days=1)
MAX_MESSAGES: Final = 500


@dataclass(frozen=True)
class CapRecord:
    """One message the feed lists: the sample it is rendered from and where it lives."""

    key: str
    sample: SampleCap
    departement: str
    phenomenon: Phenomenon

    @property
    def url(self) -> str:
        """The link the real feed carries (on the real host)."""
        return f"{DEFAULT_BASE_URL}{CAP_PATH}{self.key}"

    @property
    def ends(self) -> bool:
        return self.sample.all_clear

    def as_json(self) -> dict[str, Any]:
        return {
            "identifier": self.sample.identifier,
            "url": self.url,
            "msg_type": self.sample.msg_type,
            "all_clear": self.sample.all_clear,
            "color": self.sample.color.value,
            "phenomenon": self.phenomenon.value,
            "departement": self.departement,
            "sent": self.sample.sent.isoformat(),
            "onset": self.sample.onset.isoformat(),
            "expires": self.sample.expires.isoformat(),
            "references": [identifier for identifier, _ in self.sample.references],
        }


class MeteoAlarmImitation:
    """The France Atom feed and its CAP messages on loopback (see the module docstring)."""

    channel: ClassVar[str] = "meteoalarm"
    prefix: ClassVar[str] = "/meteoalarm"
    base_url_variable: ClassVar[str | None] = "CRIEUR_METEOALARM_BASE_URL"

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.board = weather_board(sandbox)
        self._lock = threading.RLock()
        self._messages: list[CapRecord] = []
        # Identifiers end in a sequence number; starting it at random keeps a restarted sandbox's identifiers
        # apart from the ones a long-lived client has cached (a CAP message never changes).
        self._sequence = itertools.count(100000 + secrets.randbelow(800000))
        self.board.subscribe(self._on_change)

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
        return self.board.current()

    def messages(self) -> list[dict[str, Any]]:
        """The messages the feed lists, oldest first."""
        with self._lock:
            self._prune()
            return [record.as_json() for record in self._messages]

    def clear(self) -> None:
        """Green everywhere, and a feed without any message."""
        self.board.clear()
        with self._lock:
            self._messages.clear()

    def demo_channel(self) -> dict[str, Any] | None:
        return None  # a weather source, not a channel of a commune

    def describe(self) -> dict[str, Any]:
        return {
            "vigilances": [entry.as_json() for entry in self.board.current()],
            "feed": {"messages": self.messages()},
        }

    # -- messages from the board -----------------------------------------------------------------------------

    def _on_change(self, change: BoardChange) -> None:
        with self._lock:
            prior = self._in_force(change.departement, change.phenomenon, change.at)
            after = change.after
            if after is None:
                if prior is None:
                    return  # nothing was published for the pair (or it had already expired)
                sample = self._sample(
                    change,
                    color=prior.sample.color,
                    onset=change.at,
                    expires=change.at,
                    prior=prior,
                    all_clear=True,
                )
            else:
                sample = self._sample(change, color=after.color, onset=after.begin, expires=after.end, prior=prior)
            self._messages.append(CapRecord(uuid.uuid4().hex, sample, change.departement, change.phenomenon))
            self._prune()

    def _sample(
        self,
        change: BoardChange,
        *,
        color: Color,
        onset: datetime,
        expires: datetime,
        prior: CapRecord | None,
        all_clear: bool = False,
    ) -> SampleCap:
        sent = change.at.astimezone(PARIS)
        identifier = f"{IDENTIFIER_PREFIX}{sent:%Y%m%d%H%M%S}.{next(self._sequence)}"
        references = ((prior.sample.identifier, prior.sample.sent),) if prior is not None else ()
        return SampleCap(
            identifier=identifier,
            sent=sent,
            color=color,
            phenomenon=change.phenomenon,
            departements=(change.departement,),
            onset=onset.astimezone(PARIS),
            expires=expires.astimezone(PARIS),
            msg_type="Update" if prior is not None else "Alert",
            references=references,
            all_clear=all_clear,
        )

    def _in_force(self, departement: str, phenomenon: Phenomenon, now: datetime) -> CapRecord | None:
        """The pair's latest message when it still stands (not an end, not expired)."""
        for record in reversed(self._messages):
            if (record.departement, record.phenomenon) == (departement, phenomenon):
                if record.ends or record.sample.expires <= now:
                    return None
                return record
        return None

    def _prune(self) -> None:
        limit = self.board.now() - KEPT_AFTER_EXPIRY
        kept = [record for record in self._messages if record.sample.expires > limit]
        self._messages[:] = kept[-MAX_MESSAGES:]

    # -- requests ------------------------------------------------------------------------------------------

    def handle(self, request: Request, subpath: str) -> Reply:
        if subpath == "/_state":
            return state_reply(self.board, request, self.describe, "h-meteoalarm")
        is_feed = subpath == FEED_PATH
        is_cap = subpath.startswith(CAP_PATH) and len(subpath) > len(CAP_PATH)
        if not (is_feed or is_cap):
            return _error_page(404)
        if request.method not in ("GET", "HEAD"):
            return _error_page(405, {"Allow": "GET, HEAD"})
        fault = self.sandbox.take_fault(self.channel)
        self.sandbox.wait_fault(fault)
        external_id: str | None = None
        if fault is not None and fault.status is not None:
            reply = self._fault_reply(fault)
            outcome = "panne simulée"
        elif is_feed:
            reply, outcome = self._feed()
        else:
            reply, outcome, external_id = self._cap(subpath.removeprefix(CAP_PATH))
        self.sandbox.record(self.channel, request, reply, None, external_id=external_id, auth=None, outcome=outcome)
        return reply

    def _feed(self) -> tuple[Reply, str]:
        with self._lock:
            self._prune()
            records = list(reversed(self._messages))
        body = atom_feed(((record.sample, record.url) for record in records), self.board.now())
        return Reply(200, body, "application/atom+xml; charset=utf-8"), f"{len(records)} message(s)"

    def _cap(self, key: str) -> tuple[Reply, str, str | None]:
        with self._lock:
            record = next((record for record in self._messages if record.key == key), None)
        if record is None:
            return _error_page(404), "message inconnu", None
        body = cap_message(record.sample)
        return Reply(200, body, "application/cap+xml; charset=utf-8"), record.sample.msg_type, record.sample.identifier

    def _fault_reply(self, fault: Fault) -> Reply:
        status = fault.status or 500
        headers = {"Retry-After": str(fault.retry_after or 60)} if status == 429 else {}
        return _error_page(status, headers)

    # -- the page ---------------------------------------------------------------------------------------------

    def page_section(self) -> str:
        now = self.board.now()
        with self._lock:
            self._prune()
            records = list(reversed(self._messages))
            superseded = {identifier for record in records for identifier, _ in record.sample.references}
        if records:
            rows = "".join(_message_row(record, now, superseded) for record in records)
            messages = (
                f"<table><caption>{len(records)} message(s) CAP dans le flux, le plus récent en premier</caption>"
                '<thead><tr><th scope="col">Identifiant</th><th scope="col">Type</th><th scope="col">Zone</th>'
                '<th scope="col">Phénomène</th><th scope="col">Niveau</th><th scope="col">Début</th>'
                '<th scope="col">Expire</th><th scope="col">État</th></tr></thead>'
                f"<tbody>{rows}</tbody></table>"
            )
        else:
            messages = "<p>Le flux ne contient aucun message : vigilance verte partout.</p>"
        current = self.board.current(now)
        vigilances = (
            vigilance_table(current, f"{len(current)} vigilance(s) autre(s) que verte, par département")
            if current
            else ""
        )
        form = "" if "/meteofrance" in self.sandbox.imitations else switch_form(f"{self.prefix}/_state", "h-meteoalarm")
        items = self.sandbox.received(self.channel)
        return (
            '<section aria-labelledby="h-meteoalarm"><h2 id="h-meteoalarm">MeteoAlarm : flux France</h2>'
            f"<p>Flux Atom <code>{html.escape(FEED_PATH)}</code> et messages CAP 1.2, tirés de la même vigilance "
            "que Météo-France.</p>"
            f"{vigilances}{messages}{form}"
            f"{requests_table(items, 'Dernières requêtes reçues par MeteoAlarm, la plus récente en premier')}"
            "</section>"
        )


def _message_row(record: CapRecord, now: datetime, superseded: set[str]) -> str:
    sample = record.sample
    if sample.all_clear:
        state = "fin de vigilance"
    elif sample.identifier in superseded:
        state = "remplacé"
    elif sample.expires <= now:
        state = "expiré"
    else:
        state = "en vigueur"
    cells = (
        f"<code>{html.escape(sample.identifier)}</code>",
        html.escape(sample.msg_type + (" (AllClear)" if sample.all_clear else "")),
        html.escape(f"{record.departement} {departement_name(record.departement)}"),
        html.escape(record.phenomenon.label),
        html.escape(sample.color.label),
        shown_time(sample.onset),
        shown_time(sample.expires),
        html.escape(state),
    )
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _error_page(status: int, headers: dict[str, str] | None = None) -> Reply:
    """The front server's plain error page (what a client sees from the real host's web server)."""
    phrase = HTTPStatus(status).phrase
    body = (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return Reply(status, body.encode(), "text/html", headers or {})


__all__ = ["CapRecord", "MeteoAlarmImitation"]
