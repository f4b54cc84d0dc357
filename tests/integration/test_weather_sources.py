"""The two vigilance sources over HTTP (respx stand-ins, no internet), and the path a poller tick takes:
fetch → diff → text, with the fallback, the single token refresh and the skip of unchanged documents."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import respx
from pydantic import ValidationError

from crieur.weather.diff import EventKind, diff
from crieur.weather.errors import (
    SourceAuthError,
    SourceNotConfigured,
    SourceUnavailable,
    VigilanceDocumentError,
    WeatherSourceError,
)
from crieur.weather.meteoalarm import MeteoAlarmSource
from crieur.weather.meteofrance import SHARED_TOKENS, MeteoFranceCredentials, MeteoFranceSource, TokenCache
from crieur.weather.model import Color, Phenomenon, Source
from crieur.weather.samples import SampleAlert, SampleCap, atom_feed, cap_message, carte_document
from crieur.weather.templates import render

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "weather"

MF = "https://public-api.meteofrance.fr"
CARTE = f"{MF}/public/DPVigilance/v1/cartevigilance/encours"
TEXTES = f"{MF}/public/DPVigilance/v1/textesvigilance/encours"
TOKEN = "https://portail-api.meteofrance.fr/token"
MA = "https://feeds.meteoalarm.org"
FEED = f"{MA}/feeds/meteoalarm-legacy-atom-france"
CAP_NEW = f"{MA}/api/v1/warnings/feeds-france/04d497d4-d114-4d6b-93ba-13fa7ed577fe"
CAP_OLD = f"{MA}/api/v1/warnings/feeds-france/2f32f9f9-06df-48aa-b0a0-10493ea07c51"
NEW_ALERT = "2.49.0.0.250.0.FR.20221207160058.764028"

UPDATE = datetime(2025, 7, 6, 4, 0, 23, tzinfo=UTC)
BEGIN, END = datetime(2025, 7, 6, 10, tzinfo=UTC), datetime(2025, 7, 7, 20, tzinfo=UTC)
INVALID_JWT = {
    "code": "900901",
    "message": "Invalid Credentials",
    "description": "Invalid JWT token. Make sure you have provided the correct security credentials",
}


def fixture(name: str) -> bytes:
    if not FIXTURES.is_dir():
        pytest.skip(f"weather fixtures folder absent: {FIXTURES}")
    return (FIXTURES / name).read_bytes()


def carte_bytes(*alerts: SampleAlert, snapshot_id: str = "s1") -> bytes:
    return json.dumps(carte_document(UPDATE, alerts, snapshot_id=snapshot_id)).encode()


ORANGE_45 = SampleAlert("45", Phenomenon.CANICULE, Color.ORANGE, BEGIN, END)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def _no_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CRIEUR_METEOFRANCE_BASE_URL", raising=False)
    monkeypatch.delenv("CRIEUR_METEOALARM_BASE_URL", raising=False)
    SHARED_TOKENS.clear()
    yield
    SHARED_TOKENS.clear()


def oauth(app: str = "Y29uc3VtZXI6c2VjcmV0") -> MeteoFranceCredentials:
    return MeteoFranceCredentials.model_validate({"application_id": app})


# -- every real sample goes through a parser ---------------------------------------------------------------------


def test_every_real_fixture_parses() -> None:
    from crieur.weather.meteoalarm import parse_atom, parse_cap
    from crieur.weather.meteofrance import parse_bulletin, parse_warning_full

    if not FIXTURES.is_dir():
        pytest.skip(f"weather fixtures folder absent: {FIXTURES}")
    readers = {
        "mf-dpvigilance-textesvigilance-encours-": parse_bulletin,
        "mf-mobileapi-warning_full_": parse_warning_full,
        "meteoalarm-france-atom-feed": parse_atom,
        "meteoalarm-france-cap-": parse_cap,
        "cap12-": parse_cap,
    }
    files = sorted(path for path in FIXTURES.iterdir() if path.name != "SOURCES.md")
    assert len(files) >= 8
    for path in files:
        reader = next((r for prefix, r in readers.items() if path.name.startswith(prefix)), None)
        assert reader is not None, f"no reader for the sample {path.name}"
        assert reader(path.read_bytes()) is not None  # type: ignore[operator]


# -- Météo-France ----------------------------------------------------------------------------------------------


def test_api_key_goes_in_the_apikey_header() -> None:
    with respx.mock(assert_all_called=True) as mock:
        carte = mock.get(CARTE).respond(200, content=carte_bytes(ORANGE_45), headers={"ETag": '"v1"'})
        source = MeteoFranceSource(
            httpx.Client(), None, MeteoFranceCredentials.model_validate({"api_key": "k-123"}), tokens=TokenCache()
        )
        snapshot = source.fetch()
    request = carte.calls.last.request
    assert request.headers["apikey"] == "k-123"
    assert "authorization" not in request.headers
    assert snapshot.identity.etag == '"v1"'
    assert [(v.departement, v.color) for v in snapshot.alerts()] == [("45", Color.ORANGE)]


def test_oauth_token_is_fetched_once_and_cached_until_it_expires() -> None:
    clock = Clock(UPDATE)
    tokens = TokenCache()
    with respx.mock(assert_all_called=True) as mock:
        token = mock.post(TOKEN).mock(
            side_effect=[
                httpx.Response(200, json={"access_token": "t1", "token_type": "Bearer", "expires_in": 3600}),
                httpx.Response(200, json={"access_token": "t2", "token_type": "Bearer", "expires_in": 3600}),
            ]
        )
        carte = mock.get(CARTE).respond(200, content=carte_bytes())
        first = MeteoFranceSource(httpx.Client(), None, oauth(), tokens=tokens, clock=clock)
        first.fetch()
        # A new source in the same container (the next poller tick) reuses the token.
        clock.now += timedelta(minutes=50)
        MeteoFranceSource(httpx.Client(), None, oauth(), tokens=tokens, clock=clock).fetch()
        assert token.call_count == 1
        # Close to its expiry (within the margin), a new token is fetched before the call.
        clock.now += timedelta(minutes=9, seconds=30)
        first.fetch()
    assert token.call_count == 2
    login = token.calls[0].request
    assert login.headers["authorization"] == "Basic Y29uc3VtZXI6c2VjcmV0"
    assert login.content == b"grant_type=client_credentials"
    assert [call.request.headers["authorization"] for call in carte.calls] == ["Bearer t1", "Bearer t1", "Bearer t2"]


def test_client_id_and_secret_make_the_basic_header() -> None:
    credentials = MeteoFranceCredentials.model_validate({"client_id": "consumer", "client_secret": "s3cr3t-value"})
    assert credentials.basic_authorization() == base64.b64encode(b"consumer:s3cr3t-value").decode()
    assert "s3cr3t-value" not in repr(credentials)
    assert "s3cr3t-value" not in str(credentials.model_dump())
    with pytest.raises(ValidationError, match="une seule méthode"):
        MeteoFranceCredentials.model_validate({"api_key": "k", "application_id": "a"})
    with pytest.raises(ValidationError, match="une seule méthode"):
        MeteoFranceCredentials.model_validate({})
    with pytest.raises(ValidationError, match="vont ensemble"):
        MeteoFranceCredentials.model_validate({"client_id": "consumer"})
    with pytest.raises(SourceNotConfigured):
        MeteoFranceSource(httpx.Client(), None, None)


def test_invalid_jwt_refreshes_the_token_once_then_succeeds() -> None:
    with respx.mock(assert_all_called=True) as mock:
        token = mock.post(TOKEN).mock(
            side_effect=[
                httpx.Response(200, json={"access_token": "expired-early", "expires_in": 3600}),
                httpx.Response(200, json={"access_token": "fresh", "expires_in": 3600}),
            ]
        )
        carte = mock.get(CARTE).mock(
            side_effect=[httpx.Response(401, json=INVALID_JWT), httpx.Response(200, content=carte_bytes(ORANGE_45))]
        )
        snapshot = MeteoFranceSource(httpx.Client(), None, oauth(), tokens=TokenCache()).fetch()
    assert token.call_count == 2
    assert [c.request.headers["authorization"] for c in carte.calls] == ["Bearer expired-early", "Bearer fresh"]
    assert len(snapshot.alerts()) == 1


def test_a_second_401_fails_loudly_after_one_refresh() -> None:
    tokens = TokenCache()
    with respx.mock(assert_all_called=True) as mock:
        token = mock.post(TOKEN).respond(200, json={"access_token": "t", "expires_in": 3600})
        carte = mock.get(CARTE).respond(401, json=INVALID_JWT)
        source = MeteoFranceSource(httpx.Client(), None, oauth(), tokens=tokens)
        with pytest.raises(SourceAuthError, match="même avec un nouveau jeton : Invalid JWT token") as refused:
            source.fetch()
    assert refused.value.source == "Météo-France"
    assert (token.call_count, carte.call_count) == (2, 2)


def test_a_401_with_an_api_key_is_not_retried() -> None:
    with respx.mock(assert_all_called=True) as mock:
        carte = mock.get(CARTE).respond(401, json={"fault": {"description": "Invalid Credentials"}})
        source = MeteoFranceSource(
            httpx.Client(), None, MeteoFranceCredentials.model_validate({"api_key": "old"}), tokens=TokenCache()
        )
        with pytest.raises(SourceAuthError, match="401 refusé : Invalid Credentials"):
            source.fetch()
    assert carte.call_count == 1


def test_a_refused_token_request_fails_loudly() -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.post(TOKEN).respond(401, json={"error_description": "x", "description": "Client Authentication failed."})
        source = MeteoFranceSource(httpx.Client(), None, oauth(), tokens=TokenCache())
        with pytest.raises(SourceAuthError, match="jeton OAuth2 refusé \\(HTTP 401\\) : Client Authentication failed"):
            source.fetch()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(503, text="maintenance"), SourceUnavailable),
        (httpx.Response(502), SourceUnavailable),
        (httpx.Response(429, json={"message": "Throttled"}), SourceUnavailable),
        (httpx.ConnectTimeout("slow"), SourceUnavailable),
        (httpx.ConnectError("refused"), SourceUnavailable),
        (httpx.Response(403, json={"description": "Resource forbidden"}), SourceAuthError),
        (httpx.Response(400, text="bad"), WeatherSourceError),
        (httpx.Response(200, content=carte_bytes()[:5000]), VigilanceDocumentError),
        (httpx.Response(200, text="<html>gateway</html>"), VigilanceDocumentError),
    ],
)
def test_failures_are_classified(answer: httpx.Response | Exception, error: type[Exception]) -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.get(CARTE).mock(side_effect=[answer])
        source = MeteoFranceSource(
            httpx.Client(), None, MeteoFranceCredentials.model_validate({"api_key": "k"}), tokens=TokenCache()
        )
        with pytest.raises(error):
            source.fetch()


def test_unchanged_cartes_are_skipped() -> None:
    credentials = MeteoFranceCredentials.model_validate({"api_key": "k"})
    with respx.mock(assert_all_called=True) as mock:
        carte = mock.get(CARTE).mock(
            side_effect=[
                httpx.Response(200, content=carte_bytes(snapshot_id="s1"), headers={"ETag": '"a"'}),
                httpx.Response(304),
                httpx.Response(200, content=carte_bytes(snapshot_id="s1")),
                httpx.Response(200, content=carte_bytes(ORANGE_45, snapshot_id="s2")),
            ]
        )
        source = MeteoFranceSource(httpx.Client(), None, credentials, tokens=TokenCache())
        first = source.fetch_if_changed(None)
        assert first is not None
        assert source.fetch_if_changed(first.identity) is None  # 304 on the ETag
        assert carte.calls[1].request.headers["if-none-match"] == '"a"'
        no_etag = first.identity.model_copy(update={"etag": None})
        assert source.fetch_if_changed(no_etag) is None  # same update_time and snapshot_id
        assert "if-none-match" not in carte.calls[2].request.headers
        changed = source.fetch_if_changed(no_etag)
    assert changed is not None
    assert changed.identity.snapshot_id == "s2"


@pytest.mark.parametrize(
    "value", ["http://sandbox.test/meteofrance", "http://sandbox.test/meteofrance/public/DPVigilance/v1/"]
)
def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CRIEUR_METEOFRANCE_BASE_URL", value)
    with respx.mock(assert_all_called=True) as mock:
        token = mock.post("http://sandbox.test/meteofrance/token").respond(
            200, json={"access_token": "local", "expires_in": 60}
        )
        mock.get("http://sandbox.test/meteofrance/public/DPVigilance/v1/cartevigilance/encours").respond(
            200, content=carte_bytes(ORANGE_45)
        )
        source = MeteoFranceSource(httpx.Client(), None, oauth(), tokens=TokenCache())
        assert len(source.fetch().alerts()) == 1
    assert token.call_count == 1
    explicit = MeteoFranceSource(httpx.Client(), MF, oauth())
    assert (explicit.carte_url, explicit.token_url) == (CARTE, TOKEN)


def test_bulletin_texts_and_no_matching_blob() -> None:
    credentials = MeteoFranceCredentials.model_validate({"api_key": "k"})
    with respx.mock(assert_all_called=True) as mock:
        mock.get(TEXTES).mock(
            side_effect=[
                httpx.Response(200, content=fixture("mf-dpvigilance-textesvigilance-encours-2025-07-06.json")),
                httpx.Response(404, json={"code": 404, "message": "no matching blob"}),
            ]
        )
        source = MeteoFranceSource(httpx.Client(), None, credentials, tokens=TokenCache())
        bulletin = source.fetch_bulletin()
        assert bulletin is not None
        assert bulletin.for_departement("2B", Phenomenon.CANICULE)
        assert source.fetch_bulletin() is None


# -- MeteoAlarm ----------------------------------------------------------------------------------------------------


def new_alert_cap() -> bytes:
    """The feed's live Alert (764028) as a full CAP. No capture of it is public: it is derived from the real
    AllClear of the same warning (fixtures), with the Alert's identifier, type and times from the feed."""
    text = fixture("meteoalarm-france-cap-update-allclear.xml").decode()
    text = text.replace("2.49.0.0.250.0.FR.20221207060126.964028", NEW_ALERT)
    text = text.replace("<msgType>Update</msgType>", "<msgType>Alert</msgType>")
    text = re.sub(r"\s*<references>.*?</references>", "", text)
    text = text.replace("<responseType>AllClear</responseType>", "<responseType>Monitor</responseType>")
    text = text.replace("<sent>2022-12-07T06:01:26+01:00</sent>", "<sent>2022-12-07T16:00:58+01:00</sent>")
    text = text.replace(
        "<effective>2022-12-07T06:01:00+01:00</effective>", "<effective>2022-12-07T16:00:00+01:00</effective>"
    )
    text = text.replace("<onset>2022-12-07T06:00:00+01:00</onset>", "<onset>2022-12-07T16:00:00+01:00</onset>")
    text = text.replace("<expires>2022-12-07T06:01:00+01:00</expires>", "<expires>2022-12-08T16:00:00+01:00</expires>")
    return text.encode()


def test_real_feed_reads_the_live_message_only_and_once() -> None:
    clock = Clock(datetime(2022, 12, 7, 16, 0, tzinfo=UTC))
    with respx.mock(assert_all_called=False) as mock:
        feed = mock.get(FEED).respond(200, content=fixture("meteoalarm-france-atom-feed.xml"))
        new = mock.get(CAP_NEW).respond(200, content=new_alert_cap())
        old = mock.get(CAP_OLD).respond(200, content=fixture("meteoalarm-france-cap-update-allclear.xml"))
        source = MeteoAlarmSource(httpx.Client(), clock=clock, cache={})
        snapshot = source.fetch()
        assert (new.call_count, old.call_count) == (1, 0)
        assert snapshot.source is Source.METEOALARM
        assert {(v.departement, v.phenomenon, v.color) for v in snapshot.vigilances} == {
            (dep, Phenomenon.AVALANCHES, Color.YELLOW) for dep in ("04", "05", "06", "38", "73", "74")
        }
        assert snapshot.alerts(clock.now) == ()
        assert diff({}, snapshot, clock.now).events == ()
        # Same relevant messages: skipped without reading any CAP; read again: served from the cache.
        assert source.fetch_if_changed(snapshot.identity) is None
        assert source.fetch() == snapshot
        assert (feed.call_count, new.call_count) == (3, 1)
        # A day later the message has expired: a different, empty document.
        clock.now += timedelta(days=1)
        later = source.fetch_if_changed(snapshot.identity)
    assert later is not None
    assert later.vigilances == ()


def test_base_url_from_the_environment_rewrites_cap_links(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRIEUR_METEOALARM_BASE_URL", "http://sandbox.test/meteoalarm/")
    with respx.mock(assert_all_called=True) as mock:
        mock.get("http://sandbox.test/meteoalarm/feeds/meteoalarm-legacy-atom-france").respond(
            200, content=fixture("meteoalarm-france-atom-feed.xml")
        )
        mock.get(
            "http://sandbox.test/meteoalarm/api/v1/warnings/feeds-france/04d497d4-d114-4d6b-93ba-13fa7ed577fe"
        ).respond(200, content=new_alert_cap())
        source = MeteoAlarmSource(httpx.Client(), clock=Clock(datetime(2022, 12, 7, 16, tzinfo=UTC)), cache={})
        assert len(source.fetch().vigilances) == 6


def test_cap_links_elsewhere_are_refused() -> None:
    feed = fixture("meteoalarm-france-atom-feed.xml").replace(CAP_NEW.encode(), b"https://evil.example/cap")
    with respx.mock(assert_all_called=False) as mock:
        mock.get(FEED).respond(200, content=feed)
        evil = mock.get("https://evil.example/cap").respond(200, content=new_alert_cap())
        source = MeteoAlarmSource(httpx.Client(), clock=Clock(datetime(2022, 12, 7, 16, tzinfo=UTC)), cache={})
        with pytest.raises(VigilanceDocumentError, match="lien CAP hors de"):
            source.fetch()
    assert evil.call_count == 0


@pytest.mark.parametrize(
    ("cap_answer", "error"),
    [
        (httpx.Response(404), SourceUnavailable),
        (httpx.ReadTimeout("slow"), SourceUnavailable),
        (httpx.Response(200, content=b"<alert"), VigilanceDocumentError),
        (
            httpx.Response(
                200,
                content=cap_message(
                    SampleCap("other-id", UPDATE, Color.ORANGE, Phenomenon.ORAGES, ("13",), BEGIN, END)
                ),
            ),
            VigilanceDocumentError,
        ),
    ],
)
def test_a_cap_that_cannot_be_read_fails_the_whole_fetch(cap_answer: httpx.Response | Exception, error: type) -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(200, content=fixture("meteoalarm-france-atom-feed.xml"))
        mock.get(CAP_NEW).mock(side_effect=[cap_answer])
        source = MeteoAlarmSource(httpx.Client(), clock=Clock(datetime(2022, 12, 7, 16, tzinfo=UTC)), cache={})
        with pytest.raises(error):
            source.fetch()


# -- a poller tick, end to end -------------------------------------------------------------------------------------


def test_orange_canicule_once_through_either_source_then_its_end() -> None:
    """Météo-France first; then Météo-France down and MeteoAlarm saying the same; then the end."""
    clock = Clock(UPDATE + timedelta(minutes=5))
    cap = SampleCap(
        identifier="2.49.0.0.250.0.FR.20250706060023.1",
        sent=UPDATE,
        color=Color.ORANGE,
        phenomenon=Phenomenon.CANICULE,
        departements=("45",),
        onset=BEGIN,
        expires=END,
    )
    cap_url = f"{MA}/api/v1/warnings/feeds-france/0001"
    credentials = MeteoFranceCredentials.model_validate({"api_key": "k"})
    with respx.mock(assert_all_called=True) as mock:
        mock.get(CARTE).mock(
            side_effect=[
                httpx.Response(200, content=carte_bytes(ORANGE_45, snapshot_id="s1")),
                httpx.Response(503),
                httpx.Response(200, content=carte_bytes(snapshot_id="s3")),
            ]
        )
        mock.get(FEED).respond(200, content=atom_feed([(cap, cap_url)], updated=UPDATE))
        mock.get(cap_url).respond(200, content=cap_message(cap))
        meteofrance = MeteoFranceSource(httpx.Client(), None, credentials, tokens=TokenCache(), clock=clock)
        meteoalarm = MeteoAlarmSource(httpx.Client(), clock=clock, cache={})

        first = diff({}, meteofrance.fetch(), clock.now)
        (alert,) = first.events
        message = render(alert, now=clock.now)
        assert message.title == "Vigilance orange canicule : Loiret (45)"
        assert message.urgency == "high"
        assert message.expires_at == END

        clock.now += timedelta(minutes=10)
        with pytest.raises(SourceUnavailable):
            meteofrance.fetch()
        fallback = meteoalarm.fetch()
        second = diff(first.state, fallback, clock.now)
        assert second.events == ()  # the same alert: nothing broadcast twice
        assert diff({}, fallback, clock.now).events[0].dedupe_key == alert.dedupe_key

        clock.now += timedelta(hours=4)
        third = diff(second.state, meteofrance.fetch(), clock.now)
    (ended,) = third.events
    assert (ended.kind, ended.reason, ended.dedupe_key) == (EventKind.END, "lowered", f"{alert.alert_key}#end")
    assert render(ended).title == "Fin de vigilance orange canicule : Loiret (45)"
    assert third.state == {}
