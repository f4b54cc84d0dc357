"""The sandbox's Météo-France and MeteoAlarm imitations, read by the real clients over loopback HTTP.

Each test starts a Sandbox with the two weather imitations plugged in (their registration in
infra.local.imitations is the local stack's), points CRIEUR_METEOFRANCE_BASE_URL and CRIEUR_METEOALARM_BASE_URL
at it, and drives MeteoFranceSource and MeteoAlarmSource through the guarded HTTP client.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest

import infra.local.imitations
from crieur.outbound import guarded_client
from crieur.weather.departments import METROPOLITAN_DEPARTEMENTS
from crieur.weather.diff import EventKind, diff
from crieur.weather.errors import SourceAuthError, SourceUnavailable
from crieur.weather.meteoalarm import MeteoAlarmSource
from crieur.weather.meteofrance import MeteoFranceCredentials, MeteoFranceSource, TokenCache
from crieur.weather.model import PARIS, Color, Phenomenon, VigilanceSnapshot
from infra.local.imitations.meteoalarm import MeteoAlarmImitation
from infra.local.imitations.meteofrance import (
    DEMO_API_KEY,
    DEMO_APPLICATION_ID,
    DEMO_CLIENT_ID,
    MeteoFranceImitation,
)
from infra.local.sandbox import Sandbox

CARTE = "/meteofrance/public/DPVigilance/v1/cartevigilance/encours"
TEXTES = "/meteofrance/public/DPVigilance/v1/textesvigilance/encours"
FEED = "/meteoalarm/feeds/meteoalarm-legacy-atom-france"
ORANGE_35 = {"departement": "35", "phenomenon": "canicule", "color": "orange", "hours": 24}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    monkeypatch.setattr(infra.local.imitations, "IMITATIONS", [MeteoFranceImitation, MeteoAlarmImitation])
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    box = Sandbox(port=0)
    box.start()
    monkeypatch.setenv("CRIEUR_METEOFRANCE_BASE_URL", f"{box.url}/meteofrance")
    monkeypatch.setenv("CRIEUR_METEOALARM_BASE_URL", f"{box.url}/meteoalarm")
    yield box
    box.stop()


@pytest.fixture
def mf(sandbox: Sandbox) -> MeteoFranceImitation:
    imitation = cast(MeteoFranceImitation, sandbox.imitations["/meteofrance"])
    imitation.routine_productions = False  # no reissue at 06:00/16:00 in the middle of a test
    return imitation


@pytest.fixture
def ma(sandbox: Sandbox) -> MeteoAlarmImitation:
    return cast(MeteoAlarmImitation, sandbox.imitations["/meteoalarm"])


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with guarded_client(timeout=5.0) as client:
        yield client


def meteofrance(http: httpx.Client, method: str = "apikey", tokens: TokenCache | None = None) -> MeteoFranceSource:
    credentials = MeteoFranceCredentials.model_validate(MeteoFranceImitation.demo_credentials(method))
    return MeteoFranceSource(http, None, credentials, tokens=tokens if tokens is not None else TokenCache())


def meteoalarm(http: httpx.Client) -> MeteoAlarmSource:
    return MeteoAlarmSource(http, None, cache={})


def switch(sandbox: Sandbox, spec: Any, prefix: str = "/meteofrance") -> httpx.Response:
    return httpx.post(f"{sandbox.url}{prefix}/_state", json=spec, timeout=5.0)


def received(sandbox: Sandbox, channel: str) -> list[tuple[str, str, int]]:
    return [(item["method"], item["path"], item["status"]) for item in sandbox.received(channel)]


def canicule_35(snapshot: VigilanceSnapshot, now: datetime) -> Color:
    vigilance = snapshot.get("35", Phenomenon.CANICULE)
    return Color.GREEN if vigilance is None else vigilance.outlook(now).color


# ------------------------------------------------------------------------------------------- the two sources


def test_green_everywhere_gives_no_alert(sandbox: Sandbox, mf: MeteoFranceImitation, http: httpx.Client) -> None:
    now = datetime.now(UTC)
    carte = meteofrance(http).fetch()
    assert {vigilance.departement for vigilance in carte.vigilances} == METROPOLITAN_DEPARTEMENTS
    assert carte.alerts(now) == ()
    assert carte.warnings == ()
    assert diff([], carte, now).events == ()

    feed = meteoalarm(http).fetch()
    assert feed.vigilances == ()
    assert feed.alerts(now) == ()
    assert received(sandbox, "meteoalarm") == [("GET", FEED, 200)]
    # No bulletin is published while everything is green: the real API's 404 "no matching blob".
    assert meteofrance(http).fetch_bulletin() is None


def test_orange_canicule_in_35_shows_from_both_sources_with_one_alert_key(
    sandbox: Sandbox, mf: MeteoFranceImitation, ma: MeteoAlarmImitation, http: httpx.Client
) -> None:
    answer = switch(sandbox, ORANGE_35)
    assert answer.status_code == 200
    [shown] = answer.json()["vigilances"]
    assert (shown["departement"], shown["phenomenon"], shown["color"]) == ("35", "canicule", "orange")
    begin = datetime.fromisoformat(shown["begin"])
    now = datetime.now(UTC)

    from_mf = meteofrance(http).fetch()
    from_ma = meteoalarm(http).fetch()
    for snapshot in (from_mf, from_ma):
        [alert] = snapshot.alerts(now)
        outlook = alert.outlook(now)
        assert (alert.departement, alert.phenomenon, outlook.color) == ("35", Phenomenon.CANICULE, Color.ORANGE)
        assert (outlook.begin, outlook.until) == (begin, begin + timedelta(hours=24))
    assert from_mf.identity.update_time == begin

    first = diff([], from_mf, now)
    [event] = first.events
    assert (event.kind, event.departement, event.color) == (EventKind.NEW, "35", Color.ORANGE)
    # The same alert read from MeteoAlarm has the same key: the fallback never broadcasts it twice.
    assert diff(first.state, from_ma, now).events == ()

    bulletin = meteofrance(http).fetch_bulletin()
    assert bulletin is not None
    assert [text.bulletin_level for text in bulletin.for_departement("35", Phenomenon.CANICULE)] == [Color.ORANGE]
    [message] = ma.messages()
    assert (message["msg_type"], message["color"], message["references"]) == ("Alert", "orange", [])
    assert message["identifier"].startswith("2.49.0.0.250.0.FR.")


def test_unchanged_documents_are_skipped_and_a_change_is_not(
    sandbox: Sandbox, mf: MeteoFranceImitation, ma: MeteoAlarmImitation, http: httpx.Client
) -> None:
    switch(sandbox, ORANGE_35)
    source_mf, source_ma = meteofrance(http), meteoalarm(http)
    first_mf, first_ma = source_mf.fetch(), source_ma.fetch()
    assert source_mf.fetch_if_changed(first_mf.identity) is None
    before = len(sandbox.received("meteoalarm"))
    assert source_ma.fetch_if_changed(first_ma.identity) is None
    assert received(sandbox, "meteoalarm")[before:] == [("GET", FEED, 200)]  # the feed only, no CAP message

    switch(sandbox, {**ORANGE_35, "color": "red"})
    now = datetime.now(UTC)
    second_mf = source_mf.fetch_if_changed(first_mf.identity)
    second_ma = source_ma.fetch_if_changed(first_ma.identity)
    assert second_mf is not None
    assert second_ma is not None
    assert second_mf.identity.snapshot_id != first_mf.identity.snapshot_id
    assert canicule_35(second_mf, now) is Color.RED
    assert canicule_35(second_ma, now) is Color.RED
    update = ma.messages()[-1]
    assert (update["msg_type"], update["color"]) == ("Update", "red")
    assert update["references"] == [ma.messages()[-2]["identifier"]]


def test_switching_back_to_green_ends_the_alert_from_both_sources(
    sandbox: Sandbox, mf: MeteoFranceImitation, ma: MeteoAlarmImitation, http: httpx.Client
) -> None:
    switch(sandbox, ORANGE_35)
    now = datetime.now(UTC)
    state = diff([], meteofrance(http).fetch(), now).state
    assert meteoalarm(http).fetch().alerts(now)

    assert switch(sandbox, {**ORANGE_35, "color": "green"}).json()["vigilances"] == []
    now = datetime.now(UTC)
    ended_mf, ended_ma = meteofrance(http).fetch(), meteoalarm(http).fetch()
    assert canicule_35(ended_mf, now) is Color.GREEN
    assert canicule_35(ended_ma, now) is Color.GREEN
    for snapshot in (ended_mf, ended_ma):
        [event] = diff(state, snapshot, now).events
        assert (event.kind, event.departement, event.phenomenon) == (EventKind.END, "35", Phenomenon.CANICULE)

    alert, all_clear = ma.messages()
    assert (all_clear["msg_type"], all_clear["all_clear"]) == ("Update", True)
    assert all_clear["references"] == [alert["identifier"]]
    assert all_clear["expires"] == all_clear["onset"]
    assert meteofrance(http).fetch_bulletin() is None


def test_the_python_switch_and_coastal_domains(
    sandbox: Sandbox, mf: MeteoFranceImitation, ma: MeteoAlarmImitation, http: httpx.Client
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    mf.set_vigilance("2a", Phenomenon.VAGUES_SUBMERSION, "rouge", begin=start, end=start + timedelta(hours=6))
    ma.set_vigilance("45", "Grand froid", Color.YELLOW)
    domains = {domain["domain_id"] for domain in mf.document()["product"]["periods"][0]["timelaps"]["domain_ids"]}
    assert "2A10" in domains  # the coastal domain, as Météo-France lists vagues-submersion

    now = datetime.now(UTC)
    for snapshot in (meteofrance(http).fetch(), meteoalarm(http).fetch()):
        red = snapshot.get("2A", Phenomenon.VAGUES_SUBMERSION)
        assert red is not None
        assert (red.outlook(now).color, red.outlook(now).begin, red.outlook(now).until) == (
            Color.RED,
            start,
            start + timedelta(hours=6),
        )
        yellow = snapshot.get("45", Phenomenon.GRAND_FROID)
        assert yellow is not None
        assert yellow.outlook(now).color is Color.YELLOW
        assert [alert.departement for alert in snapshot.alerts(now)] == ["2A"]

    mf.clear()
    assert mf.vigilances() == ()
    assert meteoalarm(http).fetch().alerts(datetime.now(UTC)) == ()


# ------------------------------------------------------------------------------------------- auth


def test_oauth_tokens_are_issued_cached_and_refreshed_once(
    sandbox: Sandbox, mf: MeteoFranceImitation, http: httpx.Client
) -> None:
    tokens = TokenCache()
    source = meteofrance(http, "oauth2", tokens)
    source.fetch()
    source.fetch()
    assert received(sandbox, "meteofrance") == [
        ("POST", "/meteofrance/token", 200),
        ("GET", CARTE, 200),
        ("GET", CARTE, 200),
    ]
    assert [item["auth"] for item in sandbox.received("meteofrance")] == [f"basic {DEMO_CLIENT_ID}", "bearer", "bearer"]

    # The gateway drops the token before the client expects it: one 401 "Invalid JWT token", one new token.
    assert mf.expire_tokens() == 1
    sandbox.clear()
    source.fetch()
    assert received(sandbox, "meteofrance") == [
        ("GET", CARTE, 401),
        ("POST", "/meteofrance/token", 200),
        ("GET", CARTE, 200),
    ]
    assert sandbox.received("meteofrance")[0]["outcome"].startswith("Invalid JWT token")

    # The token outlives its lifetime on the imitation's clock: refused, renewed once.
    clock = Clock(datetime.now(UTC))
    mf.board.clock = clock
    clock.now += timedelta(seconds=mf.token_lifetime_s + 1)
    sandbox.clear()
    meteofrance(http, "oauth2", tokens).fetch()
    assert [status for *_, status in received(sandbox, "meteofrance")] == [401, 200, 200]

    # A second refusal after the refresh fails loudly.
    sandbox.inject_fault("meteofrance", 401, count=2)
    with pytest.raises(SourceAuthError, match="même avec un nouveau jeton : Invalid JWT token"):
        source.fetch()


def test_the_token_endpoint_answers_like_the_portal(sandbox: Sandbox, mf: MeteoFranceImitation) -> None:
    token_url = f"{sandbox.url}/meteofrance/token"
    mf.token_lifetime_s = 120
    answer = httpx.post(
        token_url, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {DEMO_APPLICATION_ID}"}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 120, "default")
    _header, claims, _signature = body["access_token"].split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert decoded["exp"] - decoded["iat"] == 120
    assert decoded["azp"] == DEMO_CLIENT_ID

    in_query = httpx.post(
        f"{token_url}?grant_type=client_credentials", headers={"Authorization": f"Basic {DEMO_APPLICATION_ID}"}
    )
    assert in_query.status_code == 200

    wrong_secret = base64.b64encode(f"{DEMO_CLIENT_ID}:nope".encode()).decode()
    refusals = {
        "no client": httpx.post(token_url, data={"grant_type": "client_credentials"}),
        "wrong secret": httpx.post(
            token_url, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {wrong_secret}"}
        ),
        "no grant": httpx.post(token_url, headers={"Authorization": f"Basic {DEMO_APPLICATION_ID}"}),
        "other grant": httpx.post(
            token_url, data={"grant_type": "password"}, headers={"Authorization": f"Basic {DEMO_APPLICATION_ID}"}
        ),
    }
    assert {name: (answer.status_code, answer.json()["error"]) for name, answer in refusals.items()} == {
        "no client": (401, "invalid_client"),
        "wrong secret": (401, "invalid_client"),
        "no grant": (400, "invalid_request"),
        "other grant": (400, "unsupported_grant_type"),
    }
    assert refusals["wrong secret"].json()["error_description"] == "Client Authentication failed."
    assert all("nope" not in json.dumps(item) for item in sandbox.received("meteofrance"))


def test_gateway_refusals_have_the_portals_shapes(
    sandbox: Sandbox, mf: MeteoFranceImitation, http: httpx.Client
) -> None:
    carte = f"{sandbox.url}{CARTE}"
    missing = httpx.get(carte)
    wrong_key = httpx.get(carte, headers={"apikey": "not-a-key"})
    wrong_token = httpx.get(carte, headers={"Authorization": "Bearer eyJhbGciOi.e30.sig"})
    assert [answer.status_code for answer in (missing, wrong_key, wrong_token)] == [401, 401, 401]
    assert (missing.json()["code"], missing.json()["message"]) == ("900902", "Missing Credentials")
    assert wrong_key.json() == {
        "code": "900901",
        "message": "Invalid Credentials",
        "description": "Invalid Credentials. Make sure you have provided the correct security credentials",
    }
    assert wrong_token.json()["description"].startswith("Invalid JWT token.")
    unknown = httpx.get(f"{sandbox.url}/meteofrance/public/DPVigilance/v1/nope", headers={"apikey": DEMO_API_KEY})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "900906")

    with pytest.raises(SourceAuthError, match="401 refusé : Invalid Credentials"):
        MeteoFranceSource(
            http, None, MeteoFranceCredentials.model_validate({"api_key": "revoked"}), tokens=TokenCache()
        ).fetch()
    with pytest.raises(SourceAuthError, match=r"jeton OAuth2 refusé \(HTTP 401\)"):
        MeteoFranceSource(
            http,
            None,
            MeteoFranceCredentials.model_validate({"client_id": DEMO_CLIENT_ID, "client_secret": "wrong"}),
            tokens=TokenCache(),
        ).fetch()
    # The API key is not kept in what the sandbox records.
    assert {item["headers"].get("apikey") for item in sandbox.received("meteofrance")} <= {None, "[redacted]"}


# ------------------------------------------------------------------------------------------- faults


def test_faults_make_each_source_unavailable(
    sandbox: Sandbox, mf: MeteoFranceImitation, ma: MeteoAlarmImitation, http: httpx.Client
) -> None:
    posted = httpx.post(f"{sandbox.url}/_sandbox/faults", json={"channel": "meteofrance", "status": 503})
    assert posted.status_code == 201
    with pytest.raises(SourceUnavailable, match="HTTP 503 : Error connecting to the back end"):
        meteofrance(http).fetch()
    sandbox.inject_fault("meteoalarm", 503)
    with pytest.raises(SourceUnavailable, match="HTTP 503"):
        meteoalarm(http).fetch()

    sandbox.inject_fault("meteofrance", delay_seconds=1.0)
    sandbox.inject_fault("meteoalarm", delay_seconds=1.0)
    with guarded_client(timeout=0.2) as impatient:
        with pytest.raises(SourceUnavailable, match="délai dépassé"):
            meteofrance(impatient).fetch()
        with pytest.raises(SourceUnavailable, match="délai dépassé"):
            meteoalarm(impatient).fetch()

    # Faults spent, both answer again; the fallback reads a CAP message that faults too.
    switch(sandbox, ORANGE_35)
    assert meteofrance(http).fetch().alerts(datetime.now(UTC))
    sandbox.inject_fault("meteoalarm", 502, count=1)
    source = meteoalarm(http)
    with pytest.raises(SourceUnavailable, match="HTTP 502"):
        source.fetch()
    assert source.fetch().alerts(datetime.now(UTC))


def test_the_quota_answers_429(sandbox: Sandbox, mf: MeteoFranceImitation, http: httpx.Client) -> None:
    mf.quota_per_minute = 2
    source = meteofrance(http)
    source.fetch()
    source.fetch()
    with pytest.raises(SourceUnavailable, match="HTTP 429 : You have exceeded your quota"):
        source.fetch()
    answer = httpx.get(f"{sandbox.url}{CARTE}", headers={"apikey": DEMO_API_KEY})
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) >= 1


# ------------------------------------------------------------------------------------------- identity


def test_etag_and_the_routine_productions(sandbox: Sandbox, mf: MeteoFranceImitation, http: httpx.Client) -> None:
    mf.serve_etag = True
    source = meteofrance(http)
    first = source.fetch()
    assert first.identity.etag == f'"{first.identity.snapshot_id}"'
    assert source.fetch_if_changed(first.identity) is None
    assert received(sandbox, "meteofrance")[-1] == ("GET", CARTE, 304)

    # Without a change, the carte is reissued at the 06:00 and 16:00 productions (Paris time) only.
    mf.serve_etag = False
    mf.routine_productions = True
    clock = Clock(datetime(2025, 7, 6, 5, 30, tzinfo=PARIS))
    mf.board.clock = clock
    mf.set_vigilance("13", "canicule", "orange", hours=30)
    switched = source.fetch()
    assert switched.identity.update_time == datetime(2025, 7, 6, 3, 30, tzinfo=UTC)
    clock.now = datetime(2025, 7, 6, 5, 59, tzinfo=PARIS)
    assert source.fetch_if_changed(switched.identity) is None
    clock.now = datetime(2025, 7, 6, 6, 0, 30, tzinfo=PARIS)
    reissued = source.fetch_if_changed(switched.identity)
    assert reissued is not None
    assert reissued.identity.update_time == datetime(2025, 7, 6, 4, 0, tzinfo=UTC)
    vigilance = reissued.get("13", Phenomenon.CANICULE)
    assert vigilance is not None
    outlook = vigilance.outlook(clock.now)
    assert (outlook.color, outlook.until) == (Color.ORANGE, datetime(2025, 7, 7, 9, 30, tzinfo=UTC))


# ------------------------------------------------------------------------------------------- the switch and the page


def test_the_switch_checks_what_it_is_given(
    sandbox: Sandbox, mf: MeteoFranceImitation, ma: MeteoAlarmImitation
) -> None:
    refused = {
        "département": {**ORANGE_35, "departement": "99"},
        "phénomène": {**ORANGE_35, "phenomenon": "brouillard"},
        "couleur": {**ORANGE_35, "color": "violet"},
        "durée": {**ORANGE_35, "hours": 0},
        "fin": {**ORANGE_35, "begin": "2025-07-06T10:00:00+02:00", "end": "2025-07-06T09:00:00+02:00"},
        "fuseau": {**ORANGE_35, "begin": "2025-07-06T10:00:00"},
        "champ": {**ORANGE_35, "colour": "red"},
        "forme": "orange",
    }
    for name, spec in refused.items():
        answer = switch(sandbox, spec)
        assert answer.status_code == 400, name
        assert answer.json()["error"], name
    assert mf.vigilances() == ()

    both = switch(
        sandbox,
        [ORANGE_35, {"departement": "2B", "phenomenon": "Orages", "color": "rouge", "hours": 3}],
        prefix="/meteoalarm",
    )
    assert both.status_code == 200
    assert [(item["departement"], item["color"]) for item in both.json()["vigilances"]] == [
        ("2B", "red"),
        ("35", "orange"),
    ]
    state = httpx.get(f"{sandbox.url}/meteofrance/_state").json()
    assert len(state["vigilances"]) == 2
    assert set(state["carte"]) == {"update_time", "snapshot_id"}
    assert len(httpx.get(f"{sandbox.url}/meteoalarm/_state").json()["feed"]["messages"]) == 2

    form = httpx.post(
        f"{sandbox.url}/meteofrance/_state",
        data={"departement": "45", "phenomenon": "canicule", "color": "orange", "hours": "12"},
    )
    assert (form.status_code, form.headers["location"]) == (303, "/#h-meteofrance")
    assert {entry.departement for entry in mf.vigilances()} == {"2B", "35", "45"}

    cleared = httpx.delete(f"{sandbox.url}/meteoalarm/_state")
    assert cleared.json()["vigilances"] == []
    assert mf.vigilances() == ()


def test_the_page_shows_the_vigilances_and_the_requests(
    sandbox: Sandbox, mf: MeteoFranceImitation, ma: MeteoAlarmImitation, http: httpx.Client
) -> None:
    green_page = httpx.get(f"{sandbox.url}/").text
    assert "Vigilance verte sur les 96 départements" in green_page
    assert "Le flux ne contient aucun message" in green_page

    switch(sandbox, ORANGE_35)
    meteofrance(http).fetch()
    meteoalarm(http).fetch()
    page = httpx.get(f"{sandbox.url}/").text
    assert 'aria-labelledby="h-meteofrance"' in page
    assert 'aria-labelledby="h-meteoalarm"' in page
    assert "35 Ille-et-Vilaine" in page
    assert "Canicule" in page
    assert "en vigueur" in page
    assert f"GET {CARTE}" in page
    assert f"GET {FEED}" in page
    assert '<label for="h-meteofrance-dep">' in page
    assert DEMO_API_KEY not in page
