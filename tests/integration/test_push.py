"""The push channel (FCM HTTP v1) against respx, and against the sandbox's FCM imitation over loopback."""

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import respx
from PIL import Image

import infra.local.imitations
import infra.local.sandbox
from crieur.channels import push
from crieur.channels.base import PermanentChannelError, RetractUnsupported, TransientChannelError
from crieur.channels.push import PushChannel, PushCredentials, PushSettings
from crieur.media import FetchedMedia
from crieur.models import Publication
from infra.local.imitations import push as imitation
from infra.local.sandbox import Sandbox

FCM = "https://fcm.googleapis.com/v1/projects/mairie-demo/messages:send"
TOKEN_URI = "https://oauth2.example.com/token"


def publication(body: str = "La rue de l'Église est fermée lundi.", **extra: object) -> Publication:
    return Publication.model_validate(
        {
            "title": "Travaux",
            "body": body,
            "id": "pub_01JDELIVERY",
            "commune": "35238",
            "status": "publishing",
            "created_at": datetime(2026, 11, 27, tzinfo=UTC),
            **extra,
        }
    )


def jpeg(size: tuple[int, int] = (64, 48), noise: bool = False) -> bytes:
    image = Image.effect_noise(size, 100).convert("RGB") if noise else Image.new("RGB", size, (10, 120, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=100)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def account() -> dict[str, str]:
    box = Sandbox(port=1)  # never started: only its key is used
    info = imitation.PushImitation(box).service_account()
    return {**info, "token_uri": TOKEN_URI}


@pytest.fixture(autouse=True)
def fresh_tokens() -> Iterator[None]:
    push._tokens.clear()
    yield
    push._tokens.clear()


def channel(account: dict[str, str]) -> PushChannel:
    return PushChannel(
        PushSettings(project_id="mairie-demo"),
        PushCredentials(service_account_json=json.dumps(account)),
        httpx.Client(),
    )


def token_route() -> respx.Route:
    return respx.post(TOKEN_URI).respond(json={"access_token": "ya29.t", "expires_in": 3599, "token_type": "Bearer"})


@respx.mock
def test_posts_a_condition_message_with_bearer(account: dict[str, str]) -> None:
    tokens = token_route()
    route = respx.post(FCM).respond(json={"name": "projects/mairie-demo/messages/42"})
    pub = publication(category="works", urgency="high", links=[{"url": "https://mairie.example.fr/travaux"}])
    sent = channel(account).send(channel(account).render(pub), delivery_id="pub_01JDELIVERY-push")
    assert (sent.external_id, sent.url) == ("projects/mairie-demo/messages/42", None)
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer ya29.t"
    message = json.loads(request.content)["message"]
    assert message["condition"] == "'commune-35238-all' in topics || 'commune-35238-works' in topics"
    assert message["notification"] == {"title": "Travaux", "body": "La rue de l'Église est fermée lundi."}
    assert message["data"] == {
        "publication_id": "pub_01JDELIVERY",
        "url": "https://mairie.example.fr/travaux",
        "category": "works",
        "urgency": "high",
    }
    assert message["android"] == {"priority": "high", "collapse_key": "pub_01JDELIVERY", "ttl": "86400s"}
    assert message["apns"]["headers"] == {"apns-priority": "10", "apns-collapse-id": "pub_01JDELIVERY"}
    grant = dict(httpx.QueryParams(tokens.calls.last.request.content.decode()))
    assert grant["grant_type"] == push.JWT_BEARER_GRANT
    assert grant["assertion"].count(".") == 2


@respx.mock
def test_the_token_is_cached(account: dict[str, str]) -> None:
    tokens = token_route()
    respx.post(FCM).respond(json={"name": "projects/mairie-demo/messages/1"})
    adapter = channel(account)
    for _ in range(3):
        adapter.send(adapter.render(publication()), delivery_id="d")
    assert tokens.call_count == 1


@respx.mock
@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "code"),
    [
        (
            503,
            {"error": {"status": "UNAVAILABLE", "details": []}},
            {"Retry-After": "30"},
            TransientChannelError,
            "provider_unavailable",
        ),
        (
            429,
            {
                "error": {
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [{"@type": imitation.FCM_ERROR_TYPE, "errorCode": "QUOTA_EXCEEDED"}],
                }
            },
            {"Retry-After": "12"},
            TransientChannelError,
            "rate_limited",
        ),
        (
            400,
            imitation.fcm_error(400, "INVALID_ARGUMENT", "Invalid topic name.", "INVALID_ARGUMENT"),
            {},
            PermanentChannelError,
            "rejected",
        ),
        (404, imitation.fcm_error(404, "NOT_FOUND", "gone", "UNREGISTERED"), {}, PermanentChannelError, "unregistered"),
        (
            403,
            imitation.fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH"),
            {},
            PermanentChannelError,
            "needs_reconnect",
        ),
        (
            401,
            imitation.fcm_error(401, "UNAUTHENTICATED", "apns", "THIRD_PARTY_AUTH_ERROR"),
            {},
            PermanentChannelError,
            "needs_reconnect",
        ),
    ],
)
def test_errors_are_classified(  # noqa: PLR0917 - parametrized
    account: dict[str, str], status: int, body: dict[str, object], headers: dict[str, str], error: type, code: str
) -> None:
    token_route()
    respx.post(FCM).respond(status, json=body, headers=headers)
    adapter = channel(account)
    with pytest.raises(error) as raised:
        adapter.send(adapter.render(publication()), delivery_id="d")
    assert raised.value.code == code
    if headers:
        assert raised.value.retry_after == float(headers["Retry-After"])
    if code == "needs_reconnect":
        assert raised.value.message == push.RECONNECT
    if code == "rejected":
        assert "Invalid topic name." in raised.value.message


@respx.mock
def test_timeout_is_transient(account: dict[str, str]) -> None:
    token_route()
    respx.post(FCM).mock(side_effect=httpx.ReadTimeout("slow"))
    adapter = channel(account)
    with pytest.raises(TransientChannelError) as raised:
        adapter.send(adapter.render(publication()), delivery_id="d")
    assert raised.value.code == "timeout"


@respx.mock
def test_a_refused_grant_asks_to_reconnect(account: dict[str, str]) -> None:
    respx.post(TOKEN_URI).respond(400, json={"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    with pytest.raises(PermanentChannelError) as raised:
        channel(account).check()
    assert (raised.value.code, raised.value.message) == ("needs_reconnect", push.RECONNECT)


def test_credentials_are_validated(account: dict[str, str]) -> None:
    for broken in ("{", json.dumps({**account, "type": "user"}), json.dumps({**account, "private_key": "x"})):
        with pytest.raises(ValueError, match=r"compte de service|clé privée|JSON"):
            PushCredentials(service_account_json=broken)
    missing = {key: value for key, value in account.items() if key != "client_email"}
    with pytest.raises(ValueError, match="client_email"):
        PushCredentials(service_account_json=json.dumps(missing))


def test_delete_is_unsupported(account: dict[str, str]) -> None:
    with pytest.raises(RetractUnsupported, match="rappelée"):
        channel(account).delete("projects/mairie-demo/messages/1")


@pytest.mark.parametrize("unit", ["é", "🎉", "œuvre ", "https://mairie.example.fr/a_(b). ", "« x » "])
def test_lengths_hold_at_every_size(account: dict[str, str], unit: str) -> None:
    adapter = channel(account)
    for count in range(1, 300, 7):
        rendered = adapter.render(publication(unit * count, title=(unit * count)[:140].strip() or "T"))
        message = rendered.payload
        assert len(message["notification"]["title"]) <= push.TITLE_LIMIT
        assert len(message["notification"]["body"]) <= push.BODY_LIMIT
        assert push.payload_bytes(message) <= push.TOPIC_PAYLOAD_LIMIT
        if len((unit * count).strip()) > push.BODY_LIMIT:
            assert message["notification"]["body"].endswith("…")


@respx.mock
def test_media_first_small_jpeg_kept_others_dropped(account: dict[str, str]) -> None:
    respx.get("https://img.example/a.jpg").respond(content=jpeg())
    respx.get("https://img.example/big.jpg").respond(content=jpeg((1200, 1200), noise=True))
    respx.get("https://img.example/b.jpg").respond(content=jpeg())
    media = [
        {"url": "https://img.example/big.jpg", "alt": "trop lourde"},
        {"url": "https://img.example/v.mp4", "alt": "vidéo", "kind": "video"},
        {"url": "https://img.example/a.jpg", "alt": "place"},
        {"url": "https://img.example/b.jpg", "alt": "seconde"},
    ]
    rendered = channel(account).render(publication(media=media))
    assert [decision.kept for decision in rendered.media] == [False, False, True, False]
    assert "réduisez-la" in (rendered.media[0].reason or "")
    assert rendered.payload["notification"]["image"] == "https://img.example/a.jpg"


def test_too_big_payload_drops_the_image_then_refuses(account: dict[str, str]) -> None:
    adapter = channel(account)
    adapter.media.fetch = lambda medium: FetchedMedia(medium, jpeg(), "image/jpeg")  # type: ignore[method-assign]
    long_link = "https://mairie.example.fr/" + "p" * 1500
    rendered = adapter.render(
        publication(
            links=[{"url": long_link}], media=[{"url": "https://img.example/" + "i" * 400 + ".jpg", "alt": "x"}]
        )
    )
    assert "image" not in rendered.payload["notification"]
    assert not rendered.media[0].kept
    with pytest.raises(PermanentChannelError, match="2 048 octets"):
        adapter.render(publication(links=[{"url": "https://mairie.example.fr/" + "p" * 2000}]))


# -- against the imitation ----------------------------------------------------------------------------------


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    monkeypatch.setattr(infra.local.imitations, "IMITATIONS", [imitation.PushImitation])
    monkeypatch.setattr(infra.local.sandbox, "CHANNELS", (*infra.local.sandbox.CHANNELS, "push"))
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    box = Sandbox(port=0)
    box.start()
    monkeypatch.setenv("CRIEUR_FCM_BASE_URL", f"{box.url}/fcm")
    yield box
    box.stop()


def imitated(sandbox: Sandbox) -> imitation.PushImitation:
    found = sandbox.imitations["/fcm"]
    assert isinstance(found, imitation.PushImitation)
    return found


def live(sandbox: Sandbox) -> PushChannel:
    body = imitated(sandbox).demo_channel()
    return PushChannel(
        PushSettings.model_validate(body["settings"]),
        PushCredentials.model_validate(body["credentials"]),
        httpx.Client(timeout=5),
    )


def test_check_and_send_against_the_imitation(sandbox: Sandbox) -> None:
    adapter = live(sandbox)
    assert adapter.check().ok
    assert imitated(sandbox).notifications() == []
    sent = adapter.send(adapter.render(publication("Coupure d'eau <b>demain</b>.")), delivery_id="d")
    [shown] = imitated(sandbox).notifications()
    assert shown["name"] == sent.external_id
    assert shown["body"] == "Coupure d'eau <b>demain</b>."
    assert "&lt;b&gt;demain" in imitated(sandbox).page_section()


def test_an_expired_token_is_minted_again(sandbox: Sandbox) -> None:
    adapter = live(sandbox)
    adapter.send(adapter.render(publication()), delivery_id="d")
    imitated(sandbox).expire_tokens()
    adapter.send(adapter.render(publication()), delivery_id="d")
    assert len(imitated(sandbox).notifications()) == 2  # the same delivery again: collapses on devices


def test_faults_over_http(sandbox: Sandbox) -> None:
    adapter = live(sandbox)
    sandbox.inject_fault("push", 429, retry_after=7)
    with pytest.raises(TransientChannelError) as raised:
        adapter.send(adapter.render(publication()), delivery_id="d")
    assert raised.value.retry_after == 7
    sandbox.inject_fault("push", 403)
    with pytest.raises(PermanentChannelError, match="Reconnectez"):
        adapter.send(adapter.render(publication()), delivery_id="d")
    assert imitated(sandbox).notifications() == []


def test_the_imitation_validates_messages(sandbox: Sandbox) -> None:
    adapter = live(sandbox)
    for message in (
        {"topic": "a", "condition": "'a' in topics"},
        {"condition": "'a' in topics ||"},
        {"topic": "a", "data": {"n": 1}},
        {"topic": "a", "notification": {"body": "é" * 1100}},
    ):
        with pytest.raises(PermanentChannelError, match="Firebase a refusé"):
            adapter._send(message)
    assert imitation.condition_topics("('a' in topics && !('b' in topics)) || 'c' in topics") == ["a", "b", "c"]
