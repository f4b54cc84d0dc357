"""The Bluesky channel: request shapes and error classes against respx stand-ins of the XRPC API, the
grapheme and facet rules, and the adapter against the sandbox's imitation of a PDS over loopback HTTP.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
import respx
from PIL import Image
from ulid import ULID

from crieur.channels import bluesky
from crieur.channels.base import ChannelError, PermanentChannelError, TransientChannelError
from crieur.channels.bluesky import BlueskyChannel, BlueskyCredentials, BlueskySettings, delivery_tid
from crieur.media import MediaFetcher
from crieur.models import Publication
from crieur.render.bluesky import LINK, MAX_GRAPHEMES, MAX_TEXT_BYTES, facets, grapheme_count, hashtag_spans
from crieur.render.text import ELLIPSIS, nfc
from infra.local import imitations, sandbox
from infra.local.imitations.bluesky import DEMO_APP_PASSWORD, DEMO_HANDLE, BlueskyImitation
from infra.local.sandbox import Sandbox

PDS = "https://bsky.social/xrpc"
HANDLE = "mairie.bsky.social"
DID = "did:plc:mairie0000000000000000000"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
PUBLICATION_ID = "pub_01JDQ8Z5XW6V3A2B1C0D9E8F7G"
DELIVERY = f"{PUBLICATION_ID}-bluesky"
IMAGES_HOST = "https://images.example"


def token(scope: str, serial: int = 1) -> str:
    """A session token shaped like the PDS's (a JWT whose scope the check reads)."""
    part = base64.urlsafe_b64encode(json.dumps({"scope": scope, "sub": DID, "n": serial}).encode()).decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{part.rstrip('=')}.c2lnbmF0dXJl"


ACCESS = token("com.atproto.appPass")
REFRESH = token("com.atproto.refresh")
SESSION = {"did": DID, "handle": HANDLE, "accessJwt": ACCESS, "refreshJwt": REFRESH, "active": True}


def xrpc_error(status: int, name: str, message: str = "", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": name, "message": message or name}, headers=headers)


def xrpc_name(error: ChannelError) -> str:
    """The XRPC error name the failure carries (its provider message may add the PDS's own words)."""
    return str(error.provider_message).split(":", 1)[0]


def publication(body: str = "La rue de l'Église est fermée lundi.", **extra: Any) -> Publication:
    return Publication.model_validate(
        {
            "title": "Travaux",
            "body": body,
            "id": PUBLICATION_ID,
            "commune": "35238",
            "status": "publishing",
            "created_at": datetime(2026, 11, 27, tzinfo=UTC),
            **extra,
        }
    )


def image_bytes(kind: str = "JPEG", size: tuple[int, int] = (64, 48), noise: bool = False) -> bytes:
    """A real image made with Pillow; `noise` makes it incompressible (heavy)."""
    if noise:
        picture = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        picture = Image.new("RGB", size, (200, 40, 40))
    buffer = io.BytesIO()
    picture.save(buffer, format=kind)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _fresh_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    bluesky._sessions.clear()
    monkeypatch.delenv("CRIEUR_BLUESKY_BASE_URL", raising=False)


@pytest.fixture
def sky() -> BlueskyChannel:
    return BlueskyChannel(BlueskySettings(handle=HANDLE), BlueskyCredentials(app_password=APP_PASSWORD), httpx.Client())


def login(mock: respx.MockRouter, answer: dict[str, Any] | None = None) -> respx.Route:
    return mock.post(f"{PDS}/com.atproto.server.createSession").respond(json=answer or SESSION)


def created() -> dict[str, str]:
    return {"uri": f"at://{DID}/app.bsky.feed.post/{delivery_tid(DELIVERY)}", "cid": "bafyreia"}


def sliced(text: str, facet: dict[str, Any]) -> str:
    """What a facet covers, read by its UTF-8 byte offsets as the app reads it."""
    return text.encode()[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode()


# ------------------------------------------------------------------------------------------- request shapes


@respx.mock
def test_a_post_is_a_record_with_byte_offset_facets_and_a_link_card(sky: BlueskyChannel) -> None:
    session = login(respx.mock)
    create = respx.post(f"{PDS}/com.atproto.repo.createRecord").respond(json=created())
    links = [{"url": "https://mairie.example.fr/travaux-église", "label": "Le plan"}]
    rendered = sky.render(
        publication("Déviation par la place (voir https://mairie.example.fr/déviation).", links=links)
    )

    sent = sky.send(rendered, delivery_id=DELIVERY)

    assert json.loads(session.calls.last.request.content) == {"identifier": HANDLE, "password": APP_PASSWORD}
    request = create.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {ACCESS}"
    body = json.loads(request.content)
    assert (body["repo"], body["collection"], body["rkey"]) == (DID, "app.bsky.feed.post", delivery_tid(DELIVERY))
    record = body["record"]
    text = record["text"]
    assert text == (
        "Travaux\n\nDéviation par la place (voir https://mairie.example.fr/déviation).\n\n"
        "Le plan : https://mairie.example.fr/travaux-%C3%A9glise\n#actualité"
    )
    assert record["$type"] == "app.bsky.feed.post"
    assert record["langs"] == ["fr"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["createdAt"])
    assert [(facet["features"][0]["$type"], sliced(text, facet)) for facet in record["facets"]] == [
        ("app.bsky.richtext.facet#link", "https://mairie.example.fr/déviation"),
        ("app.bsky.richtext.facet#link", "https://mairie.example.fr/travaux-%C3%A9glise"),
        ("app.bsky.richtext.facet#tag", "#actualité"),
    ]
    assert record["facets"][0]["features"][0]["uri"] == "https://mairie.example.fr/déviation"
    assert record["facets"][2]["features"][0]["tag"] == "actualité"
    assert record["embed"] == {
        "$type": "app.bsky.embed.external",
        "external": {"uri": "https://mairie.example.fr/travaux-%C3%A9glise", "title": "Le plan", "description": ""},
    }
    assert sent.external_id == f"at://{DID}/app.bsky.feed.post/{delivery_tid(DELIVERY)}"
    assert sent.url == f"https://bsky.app/profile/{HANDLE}/post/{delivery_tid(DELIVERY)}"


@respx.mock
def test_the_session_is_opened_once_for_many_posts(sky: BlueskyChannel) -> None:
    session = login(respx.mock)
    respx.post(f"{PDS}/com.atproto.repo.createRecord").respond(json=created())
    other = BlueskyChannel(BlueskySettings(handle=HANDLE), BlueskyCredentials(app_password=APP_PASSWORD), sky.http)

    for number in range(5):
        channel = sky if number % 2 else other
        channel.send(channel.render(publication()), delivery_id=f"pub_{number}-bluesky")

    assert session.call_count == 1


@respx.mock
def test_a_new_app_password_opens_a_new_session(sky: BlueskyChannel) -> None:
    session = login(respx.mock)
    respx.post(f"{PDS}/com.atproto.repo.createRecord").respond(json=created())
    sky.send(sky.render(publication()), delivery_id=DELIVERY)
    changed = BlueskyChannel(BlueskySettings(handle=HANDLE), BlueskyCredentials(app_password="new"), sky.http)

    changed.send(changed.render(publication()), delivery_id=DELIVERY)

    assert session.call_count == 2
    assert json.loads(session.calls.last.request.content)["password"] == "new"


def test_the_override_is_posted_as_written(sky: BlueskyChannel) -> None:
    rendered = sky.render(publication(overrides={"bluesky": {"text": "Rue fermée lundi #travaux"}}))
    assert rendered.text == "Rue fermée lundi #travaux"
    assert [facet["features"][0]["tag"] for facet in rendered.payload["record"]["facets"]] == ["travaux"]
    assert "embed" not in rendered.payload["record"]


# ------------------------------------------------------------------------------------------- sessions and errors


@respx.mock
def test_an_expired_token_is_refreshed_once_and_the_call_retried(sky: BlueskyChannel) -> None:
    login(respx.mock)
    fresh = {**SESSION, "accessJwt": token("com.atproto.appPass", 2), "refreshJwt": token("com.atproto.refresh", 2)}
    refresh = respx.post(f"{PDS}/com.atproto.server.refreshSession").respond(json=fresh)
    create = respx.post(f"{PDS}/com.atproto.repo.createRecord").mock(
        side_effect=[xrpc_error(400, "ExpiredToken", "Token has expired"), httpx.Response(200, json=created())]
    )

    sent = sky.send(sky.render(publication()), delivery_id=DELIVERY)

    assert sent.external_id == created()["uri"]
    assert refresh.calls.last.request.headers["Authorization"] == f"Bearer {REFRESH}"
    assert [call.request.headers["Authorization"] for call in create.calls] == [
        f"Bearer {ACCESS}",
        f"Bearer {fresh['accessJwt']}",
    ]
    assert bluesky._sessions[("https://bsky.social", HANDLE)].access == fresh["accessJwt"]


@respx.mock
def test_an_expired_refresh_token_opens_a_new_session(sky: BlueskyChannel) -> None:
    session = login(respx.mock)
    respx.post(f"{PDS}/com.atproto.server.refreshSession").mock(
        return_value=xrpc_error(400, "ExpiredToken", "Token has been revoked")
    )
    create = respx.post(f"{PDS}/com.atproto.repo.createRecord").mock(
        side_effect=[xrpc_error(401, "ExpiredToken"), httpx.Response(200, json=created())]
    )

    sky.send(sky.render(publication()), delivery_id=DELIVERY)

    assert session.call_count == 2
    assert create.call_count == 2


@respx.mock
def test_a_token_refused_after_renewal_needs_reconnect(sky: BlueskyChannel) -> None:
    login(respx.mock)
    respx.post(f"{PDS}/com.atproto.server.refreshSession").respond(json=SESSION)
    respx.post(f"{PDS}/com.atproto.repo.createRecord").mock(return_value=xrpc_error(400, "InvalidToken"))

    with pytest.raises(PermanentChannelError) as refused:
        sky.send(sky.render(publication()), delivery_id=DELIVERY)

    assert refused.value.code == "needs_reconnect"
    assert refused.value.message.startswith("Reconnectez le compte Bluesky")
    assert not bluesky._sessions


@respx.mock
@pytest.mark.parametrize(
    ("status", "name", "code", "message"),
    [
        (401, "AuthenticationRequired", "needs_reconnect", bluesky.REVOKED),
        (400, "InvalidToken", "needs_reconnect", bluesky.REVOKED),
        (401, "AuthFactorTokenRequired", "needs_reconnect", "Reconnectez le compte Bluesky avec un mot de passe"),
        (401, "AccountTakedown", "account_suspended", "Le compte Bluesky est suspendu"),
    ],
)
def test_a_refused_login_says_what_to_do(sky: BlueskyChannel, status: int, name: str, code: str, message: str) -> None:
    respx.post(f"{PDS}/com.atproto.server.createSession").mock(return_value=xrpc_error(status, name))

    with pytest.raises(PermanentChannelError) as refused:
        sky.send(sky.render(publication()), delivery_id=DELIVERY)

    assert refused.value.code == code
    assert refused.value.message.startswith(message)
    assert xrpc_name(refused.value) == name


def test_the_revoked_password_message_is_the_one_the_mairie_reads() -> None:
    assert bluesky.REVOKED.startswith("Reconnectez le compte Bluesky : le mot de passe d'application a été révoqué.")


@respx.mock
@pytest.mark.parametrize(
    ("response", "error", "code"),
    [
        (xrpc_error(503, "NotEnoughResources"), TransientChannelError, "provider_unavailable"),
        (xrpc_error(502, "UpstreamFailure"), TransientChannelError, "provider_unavailable"),
        (
            xrpc_error(429, "RateLimitExceeded", headers={"ratelimit-remaining": "0", "ratelimit-reset": "1"}),
            TransientChannelError,
            "rate_limited",
        ),
        (xrpc_error(400, "InvalidRequest", "Record/text must not be longer"), PermanentChannelError, "rejected"),
        (xrpc_error(403, "Forbidden"), PermanentChannelError, "needs_reconnect"),
    ],
)
def test_create_errors_are_classified(
    sky: BlueskyChannel, response: httpx.Response, error: type[Exception], code: str
) -> None:
    login(respx.mock)
    respx.post(f"{PDS}/com.atproto.repo.createRecord").mock(return_value=response)
    probe = respx.get(f"{PDS}/com.atproto.repo.getRecord").mock(return_value=xrpc_error(400, "RecordNotFound"))

    with pytest.raises(error) as caught:
        sky.send(sky.render(publication()), delivery_id=DELIVERY)

    failure = cast(PermanentChannelError, caught.value)
    assert failure.code == code
    assert xrpc_name(failure) == response.json()["error"]
    assert "Bluesky" in failure.message
    # A failure that may hide a post is checked against the PDS; a rate limit or a refusal cannot.
    assert probe.called == (code not in ("rate_limited", "needs_reconnect"))


@respx.mock
def test_a_timeout_is_transient_when_no_post_was_made(sky: BlueskyChannel) -> None:
    login(respx.mock)
    respx.post(f"{PDS}/com.atproto.repo.createRecord").mock(side_effect=httpx.ReadTimeout("slow"))
    probe = respx.get(f"{PDS}/com.atproto.repo.getRecord").mock(return_value=xrpc_error(400, "RecordNotFound"))

    with pytest.raises(TransientChannelError) as caught:
        sky.send(sky.render(publication()), delivery_id=DELIVERY)

    assert caught.value.code == "timeout"
    assert dict(probe.calls.last.request.url.params) == {
        "repo": DID,
        "collection": "app.bsky.feed.post",
        "rkey": delivery_tid(DELIVERY),
    }


@respx.mock
def test_a_rate_limit_waits_until_ratelimit_reset(sky: BlueskyChannel) -> None:
    login(respx.mock)
    reset = str(int(time.time()) + 120)
    limited = xrpc_error(429, "RateLimitExceeded", headers={"RateLimit-Remaining": "0", "RateLimit-Reset": reset})
    respx.post(f"{PDS}/com.atproto.repo.createRecord").mock(return_value=limited)

    with pytest.raises(TransientChannelError) as caught:
        sky.send(sky.render(publication()), delivery_id=DELIVERY)

    assert caught.value.retry_after is not None
    assert 110 <= caught.value.retry_after <= 120


@respx.mock
def test_an_invalid_request_gives_the_pds_reason(sky: BlueskyChannel) -> None:
    login(respx.mock)
    reason = "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes"
    respx.post(f"{PDS}/com.atproto.repo.createRecord").mock(return_value=xrpc_error(400, "InvalidRequest", reason))
    respx.get(f"{PDS}/com.atproto.repo.getRecord").mock(return_value=xrpc_error(400, "RecordNotFound"))

    with pytest.raises(PermanentChannelError) as caught:
        sky.send(sky.render(publication()), delivery_id=DELIVERY)

    assert reason in caught.value.message


# ------------------------------------------------------------------------------------------- idempotency


@respx.mock
@pytest.mark.parametrize(
    "failure",
    [
        xrpc_error(400, "RecordAlreadyExists", "Record already exists"),
        xrpc_error(400, "InvalidSwap", "Record was at bafyrei…"),
        xrpc_error(500, "InternalServerError", "Internal Server Error"),  # PDS versions before RecordAlreadyExists
        httpx.ReadTimeout("the answer was lost"),
    ],
)
def test_a_retried_delivery_finds_its_post_instead_of_posting_again(
    sky: BlueskyChannel, failure: httpx.Response | Exception
) -> None:
    login(respx.mock)
    first = respx.post(f"{PDS}/com.atproto.repo.createRecord")
    first.mock(return_value=httpx.Response(200, json=created()))
    rendered = sky.render(publication())
    earlier = sky.send(rendered, delivery_id=DELIVERY)
    first.mock(side_effect=[failure])
    respx.get(f"{PDS}/com.atproto.repo.getRecord").respond(json={**created(), "value": {"text": rendered.text}})

    again = sky.send(rendered, delivery_id=DELIVERY)

    assert again == earlier
    keys = {json.loads(call.request.content)["rkey"] for call in first.calls}
    assert keys == {delivery_tid(DELIVERY)}


@respx.mock
def test_a_conflict_whose_lookup_fails_waits_instead_of_failing(sky: BlueskyChannel) -> None:
    login(respx.mock)
    respx.post(f"{PDS}/com.atproto.repo.createRecord").mock(
        return_value=xrpc_error(400, "RecordAlreadyExists", "Record already exists")
    )
    respx.get(f"{PDS}/com.atproto.repo.getRecord").mock(return_value=xrpc_error(502, "UpstreamFailure"))

    with pytest.raises(TransientChannelError) as caught:
        sky.send(sky.render(publication()), delivery_id=DELIVERY)

    assert caught.value.code == "provider_unavailable"


@respx.mock
def test_find_sent_reads_the_record_at_the_delivery_key(sky: BlueskyChannel) -> None:
    login(respx.mock)
    probe = respx.get(f"{PDS}/com.atproto.repo.getRecord").mock(
        side_effect=[httpx.Response(200, json={**created(), "value": {"text": "…"}}), xrpc_error(400, "RecordNotFound")]
    )
    rendered = sky.render(publication())

    found = sky.find_sent(rendered, delivery_id=DELIVERY)
    missing = sky.find_sent(rendered, delivery_id=DELIVERY)

    assert found is not None
    assert found.external_id == created()["uri"]
    assert found.url == f"https://bsky.app/profile/{HANDLE}/post/{delivery_tid(DELIVERY)}"
    assert missing is None
    assert dict(probe.calls.last.request.url.params) == {
        "repo": DID,
        "collection": "app.bsky.feed.post",
        "rkey": delivery_tid(DELIVERY),
    }


@respx.mock
@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (xrpc_error(500, "InternalServerError"), "provider_unavailable"),
        (xrpc_error(400, "InvalidRequest", "Could not find repo"), "lookup_failed"),
        (httpx.ReadTimeout("slow"), "timeout"),
    ],
)
def test_find_sent_never_takes_a_failed_lookup_for_an_answer(
    sky: BlueskyChannel, answer: httpx.Response | Exception, code: str
) -> None:
    login(respx.mock)
    respx.get(f"{PDS}/com.atproto.repo.getRecord").mock(side_effect=[answer])

    with pytest.raises(TransientChannelError) as caught:
        sky.find_sent(sky.render(publication()), delivery_id=DELIVERY)

    assert caught.value.code == code


@respx.mock
def test_find_sent_with_a_refused_login_is_transient(sky: BlueskyChannel) -> None:
    respx.post(f"{PDS}/com.atproto.server.createSession").mock(
        return_value=xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
    )

    with pytest.raises(TransientChannelError) as caught:
        sky.find_sent(sky.render(publication()), delivery_id=DELIVERY)

    assert caught.value.code == "lookup_failed"


def test_delivery_tids_are_valid_stable_and_distinct() -> None:
    syntax = re.compile(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}")
    ids = [DELIVERY, f"{PUBLICATION_ID[:-1]}H-bluesky", "pub_01-bluesky", "pub_01-bluesky ", "x", ""]
    tids = [delivery_tid(delivery) for delivery in ids]
    assert all(syntax.fullmatch(tid) for tid in tids)
    assert len(set(tids)) == len(ids)
    assert [delivery_tid(delivery) for delivery in ids] == tids
    # The publication's ULID time is the TID's time: the key sorts with the account's other posts.
    value = 0
    for char in delivery_tid(DELIVERY):
        value = value * 32 + "234567abcdefghijklmnopqrstuvwxyz".index(char)
    ulid_millis = ULID.from_str(PUBLICATION_ID.removeprefix("pub_")).milliseconds
    assert (value >> 10) // 1000 == ulid_millis
    assert datetime.fromtimestamp(ulid_millis / 1000, UTC).year == 2024


# ------------------------------------------------------------------------------------------- delete and check


@respx.mock
def test_delete_removes_the_record_named_by_the_at_uri(sky: BlueskyChannel) -> None:
    login(respx.mock)
    route = respx.post(f"{PDS}/com.atproto.repo.deleteRecord").respond(json={"commit": {"cid": "b", "rev": "r"}})

    sky.delete(f"at://{DID}/app.bsky.feed.post/3lbq2x7k2ke2a")

    assert json.loads(route.calls.last.request.content) == {
        "repo": DID,
        "collection": "app.bsky.feed.post",
        "rkey": "3lbq2x7k2ke2a",
    }
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {ACCESS}"


def test_delete_refuses_what_is_not_an_at_uri(sky: BlueskyChannel) -> None:
    with pytest.raises(PermanentChannelError) as refused:
        sky.delete("https://bsky.app/profile/x/post/y")
    assert refused.value.code == "invalid_external_id"


@respx.mock
@pytest.mark.parametrize(
    ("scope", "says", "permissions"),
    [
        ("com.atproto.appPass", "mot de passe d'application : Crieur peut publier", 2),
        ("com.atproto.appPassPrivileged", "ouvre aussi les messages privés", 3),
        ("com.atproto.access", "mot de passe principal", 3),
    ],
)
def test_check_opens_a_session_and_says_what_it_allows(
    sky: BlueskyChannel, scope: str, says: str, permissions: int
) -> None:
    session = login(respx.mock, {**SESSION, "accessJwt": token(scope)})
    who = respx.get(f"{PDS}/com.atproto.server.getSession").respond(json={"did": DID, "handle": HANDLE})

    report = sky.check()

    assert session.called
    assert who.calls.last.request.headers["Authorization"] == f"Bearer {token(scope)}"
    assert (report.ok, report.account) == (True, f"@{HANDLE}")
    assert says in report.message
    assert len(report.permissions) == permissions


@respx.mock
def test_check_raises_when_the_password_is_refused(sky: BlueskyChannel) -> None:
    respx.post(f"{PDS}/com.atproto.server.createSession").mock(return_value=xrpc_error(401, "AuthenticationRequired"))
    with pytest.raises(PermanentChannelError) as refused:
        sky.check()
    assert refused.value.code == "needs_reconnect"


# ------------------------------------------------------------------------------------------- settings


def test_settings_normalise_the_handle_and_refuse_a_bad_one() -> None:
    assert BlueskySettings(handle=" @Mairie.BSKY.social ").handle == "mairie.bsky.social"
    for wrong in ("mairie", "mairie bsky.social", "-x.bsky.social", "mairie.bsky.123"):
        with pytest.raises(ValueError, match=r"mairie\.bsky\.social"):
            BlueskySettings(handle=wrong)
    with pytest.raises(ValueError, match="extra"):
        BlueskySettings.model_validate({"handle": HANDLE, "password": "x"})


def test_the_pds_is_https_and_the_environment_can_point_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRIEUR_ALLOW_PRIVATE_TARGETS", raising=False)
    assert BlueskySettings(handle=HANDLE).base == "https://bsky.social"
    assert BlueskySettings(handle=HANDLE, pds_url="https://pds.mairie.fr/").base == "https://pds.mairie.fr"
    with pytest.raises(ValueError, match="https"):
        BlueskySettings(handle=HANDLE, pds_url="http://pds.mairie.fr")
    monkeypatch.setenv("CRIEUR_BLUESKY_BASE_URL", "http://127.0.0.1:3001/bluesky/")
    assert BlueskySettings(handle=HANDLE, pds_url="https://pds.mairie.fr").base == "http://127.0.0.1:3001/bluesky"


# ------------------------------------------------------------------------------------------- media


def serve(mock: respx.MockRouter, images: dict[str, bytes | int]) -> None:
    """Image URLs under IMAGES_HOST answering the given bytes, or an HTTP status."""
    for name, content in images.items():
        route = mock.get(f"{IMAGES_HOST}/{name}")
        if isinstance(content, int):
            route.respond(content)
        else:
            route.respond(content=content, headers={"Content-Type": "application/octet-stream"})


def media(*names: str, kind: str = "image") -> list[dict[str, str]]:
    return [{"url": f"{IMAGES_HOST}/{name}", "alt": f"Photo {name}", "kind": kind} for name in names]


@respx.mock
def test_images_are_uploaded_as_blobs_with_alt_text_and_aspect_ratio(sky: BlueskyChannel) -> None:
    jpeg, png = image_bytes("JPEG", (120, 80)), image_bytes("PNG", (30, 60))
    serve(respx.mock, {"a.jpg": jpeg, "b.png": png})
    login(respx.mock)
    blobs = iter(["bafkreia", "bafkreib"])

    def upload(request: httpx.Request) -> httpx.Response:
        link = next(blobs)
        blob = {"$type": "blob", "ref": {"$link": link}, "mimeType": request.headers["Content-Type"], "size": 1}
        return httpx.Response(200, json={"blob": blob})

    upload_route = respx.post(f"{PDS}/com.atproto.repo.uploadBlob").mock(side_effect=upload)
    create = respx.post(f"{PDS}/com.atproto.repo.createRecord").respond(json=created())
    rendered = sky.render(publication(media=media("a.jpg", "b.png"), links=[{"url": "https://mairie.fr/x"}]))

    sky.send(rendered, delivery_id=DELIVERY)

    assert [decision.kept for decision in rendered.media] == [True, True]
    assert [(call.request.headers["Content-Type"], call.request.content) for call in upload_route.calls] == [
        ("image/jpeg", jpeg),
        ("image/png", png),
    ]
    embed = json.loads(create.calls.last.request.content)["record"]["embed"]
    assert embed["$type"] == "app.bsky.embed.images"  # images take the place of the link card
    assert [(image["alt"], image["aspectRatio"], image["image"]["ref"]["$link"]) for image in embed["images"]] == [
        ("Photo a.jpg", {"width": 120, "height": 80}, "bafkreia"),
        ("Photo b.png", {"width": 30, "height": 60}, "bafkreib"),
    ]


@respx.mock
def test_a_heavy_image_is_recompressed_under_a_million_bytes(sky: BlueskyChannel) -> None:
    heavy = image_bytes("PNG", (900, 700), noise=True)
    assert len(heavy) > 1_000_000
    serve(respx.mock, {"lourde.png": heavy})
    login(respx.mock)
    upload = respx.post(f"{PDS}/com.atproto.repo.uploadBlob").respond(
        json={"blob": {"$type": "blob", "ref": {"$link": "bafkreic"}, "mimeType": "image/jpeg", "size": 1}}
    )
    create = respx.post(f"{PDS}/com.atproto.repo.createRecord").respond(json=created())
    rendered = sky.render(publication(media=media("lourde.png")))

    sky.send(rendered, delivery_id=DELIVERY)

    [decision] = rendered.media
    assert decision.kept
    assert decision.reason is not None
    assert "recompressée en JPEG" in decision.reason
    assert "1 000 000 octets" in decision.reason
    assert rendered.warnings == [f"{IMAGES_HOST}/lourde.png : {decision.reason}"]
    sent = upload.calls.last.request
    assert sent.headers["Content-Type"] == "image/jpeg"
    assert len(sent.content) <= 1_000_000
    assert sent.content.startswith(b"\xff\xd8\xff")
    [image] = json.loads(create.calls.last.request.content)["record"]["embed"]["images"]
    with Image.open(io.BytesIO(sent.content)) as shrunk:
        assert image["aspectRatio"] == {"width": shrunk.width, "height": shrunk.height}


@respx.mock
def test_media_bluesky_cannot_take_are_dropped_with_a_reason(sky: BlueskyChannel) -> None:
    serve(respx.mock, {f"{n}.jpg": image_bytes() for n in range(5)} | {"absente.jpg": 404, "texte.jpg": b"hello"})
    items = media("absente.jpg", "texte.jpg", "0.jpg", "1.jpg", "2.jpg", "3.jpg", "4.jpg") + media(
        "film.mp4", kind="video"
    )

    rendered = sky.render(publication(media=items))

    decisions = {decision.url.rsplit("/", 1)[1]: decision for decision in rendered.media}
    assert [name for name, decision in decisions.items() if decision.kept] == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert "introuvable (erreur 404)" in str(decisions["absente.jpg"].reason)
    assert "ni une image" in str(decisions["texte.jpg"].reason)
    assert decisions["4.jpg"].reason == "Bluesky accepte au plus 4 images par publication."
    assert "vidéo" in str(decisions["film.mp4"].reason)  # not fetched: respx refuses unmocked URLs
    assert len(rendered.payload["images"]) == 4
    assert "embed" not in rendered.payload["record"]


@respx.mock
def test_an_image_host_that_is_down_is_transient(sky: BlueskyChannel) -> None:
    serve(respx.mock, {"a.jpg": 503})
    with pytest.raises(TransientChannelError) as caught:
        sky.render(publication(media=media("a.jpg")))
    assert caught.value.code == "media_unavailable"


# ------------------------------------------------------------------------------------------- length and facets


TRICKY_WORDS = [
    "été",
    "e\u0301te\u0301",  # decomposed accents: NFC makes them one character each
    "«\u00a0oui\u00a0»",
    "l’école",
    "🚧",
    "👨\u200d👩\u200d👧\u200d👦",  # one grapheme, 25 bytes
    "🇫🇷",
    "👍🏽",
    "#️⃣",
    "https://mairie.fr/a_(b).",
    "(https://x.fr/p?q=1),",
    "https://exemple.fr/café!",
    "mot",
]


@pytest.mark.parametrize("word", TRICKY_WORDS)
def test_composed_texts_fit_300_graphemes_and_3000_bytes_at_every_size(sky: BlueskyChannel, word: str) -> None:
    for count in range(0, 400, 7):
        body = " ".join([word] * count) or "x"
        rendered = sky.render(publication(body))
        text = str(rendered.text)
        assert grapheme_count(text) <= MAX_GRAPHEMES
        assert len(text.encode()) <= MAX_TEXT_BYTES
        assert rendered.length == sky.measure(text) <= MAX_GRAPHEMES
        whole = nfc(f"Travaux\n\n{publication(body).body}\n\n#actualité")
        # Title, body and tail are measured apart: where bytes rule (over 10 a grapheme), the cut comes early.
        graphemes_rule = len(word.encode()) <= 10 * grapheme_count(word)
        if sky.measure(whole) <= MAX_GRAPHEMES and graphemes_rule:
            assert text == whole
        elif sky.measure(whole) > MAX_GRAPHEMES:
            assert ELLIPSIS in text
        for facet in rendered.payload["record"].get("facets", []):
            feature = facet["features"][0]
            covered = sliced(text, facet)  # raises if an offset cuts a character
            assert covered == (feature.get("uri") or f"#{feature.get('tag')}")
            assert not covered.endswith(ELLIPSIS)


def test_at_the_limit_a_body_is_kept_whole_and_one_more_grapheme_cuts_it(sky: BlueskyChannel) -> None:
    head_and_tail = grapheme_count("Travaux\n\n\n\n#actualité")
    room = MAX_GRAPHEMES - head_and_tail
    for filler in ("é", "🇫🇷", "e\u0301", "👍🏽"):
        fitting = "a " + filler * (room - 2)
        assert (
            sky.render(publication(fitting)).text
            == "Travaux\n\n" + publication(fitting).body.replace("e\u0301", "é") + "\n\n#actualité"
        )
        cut = str(sky.render(publication(fitting + filler)).text)
        assert ELLIPSIS in cut
        assert grapheme_count(cut) <= MAX_GRAPHEMES


def test_graphemes_are_counted_as_unicode_segments_them() -> None:
    regex = pytest.importorskip("regex")  # a test dependency only: the layer counts without it
    samples = [*TRICKY_WORDS, "🇫🇷🇩🇪🇫", "한국어", "\u1100\u1161\u11a8", "ค่ำ", "\r\n", "a\u0308\u0301", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "❤️\u200d🔥"]
    for sample in [*samples, " ".join(samples)]:
        assert grapheme_count(sample) == len(regex.findall(r"\X", sample)), sample
    # Indic conjuncts (UAX #29 rule GB9c) are left out: counted as more graphemes, never fewer.
    conjunct = "क्षत्रिय"
    assert grapheme_count(conjunct) > len(regex.findall(r"\X", conjunct))


def test_the_byte_limit_wins_for_heavy_emoji(sky: BlueskyChannel) -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"
    assert grapheme_count(family * 150) == 150
    assert sky.measure(family * 150) == 375  # 3,750 bytes: over 3,000 although 150 graphemes
    assert sky.override_problem(family * 150) is not None
    assert sky.override_problem(family * 100) is None


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("#travaux", ["travaux"]),
        ("Fête #été2026! et #1er.", ["été2026", "1er"]),
        ("Pas #123 ni a#b ni ##", []),
        ("#️⃣ touche", []),
        ("Voir https://mairie.fr/page#section et #conseil", ["conseil"]),
        ("＃pleine largeur…", ["pleine"]),
        ("#" + "a" * 65, []),
    ],
)
def test_hashtags_are_found_as_the_app_finds_them(text: str, tags: list[str]) -> None:
    assert [tag for _, _, tag in hashtag_spans(text)] == tags
    found = [facet for facet in facets(text) if facet["features"][0]["$type"].endswith("#tag")]
    assert [sliced(text, facet) for facet in found] == [f"{text[start]}{tag}" for start, _, tag in hashtag_spans(text)]


# ------------------------------------------------------------------------------------------- against the sandbox


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    monkeypatch.setattr(imitations, "IMITATIONS", [*imitations.IMITATIONS, BlueskyImitation])
    monkeypatch.setattr(sandbox, "CHANNELS", (*sandbox.CHANNELS, "bluesky"))
    started = Sandbox(port=0)
    started.start()
    monkeypatch.setenv("CRIEUR_BLUESKY_BASE_URL", f"{started.url}/bluesky")
    yield started
    started.stop()


def pds(box: Sandbox) -> BlueskyImitation:
    return cast(BlueskyImitation, box.imitations["/bluesky"])


def image_server(images: dict[str, bytes]) -> MediaFetcher:
    """A media fetcher whose images come from `images` (by URL path), as from the commune's website."""

    def answer(request: httpx.Request) -> httpx.Response:
        content = images.get(request.url.path.lstrip("/"))
        return httpx.Response(200, content=content) if content is not None else httpx.Response(404)

    return MediaFetcher(httpx.Client(transport=httpx.MockTransport(answer)))


def demo(http: httpx.Client, fetcher: MediaFetcher | None = None, password: str = DEMO_APP_PASSWORD) -> BlueskyChannel:
    return BlueskyChannel(BlueskySettings(handle=DEMO_HANDLE), BlueskyCredentials(app_password=password), http, fetcher)


def calls(box: Sandbox, method: str) -> list[dict[str, Any]]:
    return [item for item in box.received("bluesky") if item["path"].endswith(method)]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def test_a_post_with_images_reaches_the_pds_and_its_page(box: Sandbox, http: httpx.Client) -> None:
    jpeg = image_bytes("JPEG", (120, 90))
    heavy = image_bytes("PNG", (900, 700), noise=True)
    channel = demo(http, image_server({"place.jpg": jpeg, "lourde.png": heavy}))
    items = [
        {"url": "https://mairie.example.fr/place.jpg", "alt": "La place de la mairie <fermée>"},
        {"url": "https://mairie.example.fr/lourde.png", "alt": "Plan de déviation"},
    ]
    body = "Déviation lundi, voir https://mairie.example.fr/déviation. Merci ! #travaux"

    sent = channel.send(channel.render(publication(body, media=items)), delivery_id=DELIVERY)

    [post] = pds(box).posts()
    assert post["uri"] == sent.external_id
    value = post["value"]
    assert [image["alt"] for image in value["embed"]["images"]] == [item["alt"] for item in items]
    assert [upload["body"]["mimeType"] for upload in calls(box, "uploadBlob")] == ["image/jpeg", "image/jpeg"]
    assert all(upload["body"]["size"] <= 1_000_000 for upload in calls(box, "uploadBlob"))
    blob = value["embed"]["images"][0]["image"]["ref"]["$link"]
    shown = http.get(
        f"{box.url}/bluesky/xrpc/com.atproto.sync.getBlob", params={"did": sent.external_id.split("/")[2], "cid": blob}
    )
    assert (shown.status_code, shown.content) == (200, jpeg)
    page = http.get(f"{box.url}/").text
    assert '<h2 id="h-bluesky">Bluesky</h2>' in page
    assert '<a href="https://mairie.example.fr/déviation">https://mairie.example.fr/déviation</a>. Merci' in page
    assert '<a href="https://bsky.app/hashtag/travaux">#travaux</a>' in page
    assert 'alt="La place de la mairie &lt;fermée&gt;"' in page
    assert "@mairie-demo.bsky.social" in page


def test_a_text_post_shows_a_link_card(box: Sandbox, http: httpx.Client) -> None:
    channel = demo(http)
    links = [{"url": "https://mairie.example.fr/conseil", "label": "Ordre du jour"}]

    channel.send(channel.render(publication("Conseil municipal jeudi.", links=links)), delivery_id=DELIVERY)

    [post] = pds(box).posts()
    assert post["value"]["embed"]["external"]["uri"] == "https://mairie.example.fr/conseil"
    page = box.page()
    assert '<a href="https://mairie.example.fr/conseil" style="display:block' in page
    assert "<strong>Ordre du jour</strong>" in page


def test_an_expired_access_token_is_refreshed_without_a_new_session(box: Sandbox, http: httpx.Client) -> None:
    channel = demo(http)
    channel.send(channel.render(publication()), delivery_id="pub_1-bluesky")
    pds(box).expire_access_tokens()

    channel.send(channel.render(publication()), delivery_id="pub_2-bluesky")

    assert len(calls(box, "createSession")) == 1
    assert [item["status"] for item in calls(box, "refreshSession")] == [200]
    assert [item["status"] for item in calls(box, "createRecord")] == [200, 400, 200]
    assert len(pds(box).posts()) == 2


def test_short_lived_tokens_are_refreshed_as_they_expire(box: Sandbox, http: httpx.Client) -> None:
    pds(box).access_seconds = 0.5
    channel = demo(http)
    for number in range(3):
        channel.send(channel.render(publication()), delivery_id=f"pub_{number}-bluesky")
        time.sleep(0.6)

    assert len(calls(box, "createSession")) == 1
    assert len(calls(box, "refreshSession")) >= 2
    assert len(pds(box).posts()) == 3


def test_a_revoked_app_password_needs_reconnect(box: Sandbox, http: httpx.Client) -> None:
    channel = demo(http)
    channel.send(channel.render(publication()), delivery_id="pub_1-bluesky")
    pds(box).revoke_app_password(DEMO_HANDLE, DEMO_APP_PASSWORD)
    pds(box).expire_access_tokens()

    with pytest.raises(PermanentChannelError) as refused:
        channel.send(channel.render(publication()), delivery_id="pub_2-bluesky")

    assert refused.value.code == "needs_reconnect"
    assert refused.value.message == bluesky.REVOKED
    assert [item["status"] for item in calls(box, "refreshSession")] == [400]
    assert [item["status"] for item in calls(box, "createSession")] == [200, 401]


def test_the_same_delivery_twice_posts_once(box: Sandbox, http: httpx.Client) -> None:
    channel = demo(http)
    rendered = channel.render(publication())

    first = channel.send(rendered, delivery_id=DELIVERY)
    second = channel.send(rendered, delivery_id=DELIVERY)

    assert first == second
    assert len(pds(box).posts()) == 1
    [duplicate] = [item for item in calls(box, "createRecord") if item["duplicate"]]
    assert duplicate["status"] == 400


def test_a_timeout_then_a_retry_leaves_one_post(box: Sandbox) -> None:
    box.inject_fault("bluesky", delay_seconds=1.5)
    with httpx.Client(timeout=0.5) as impatient:
        channel = demo(impatient)
        rendered = channel.render(publication())
        with pytest.raises(TransientChannelError) as caught:
            channel.send(rendered, delivery_id=DELIVERY)
    assert caught.value.code == "timeout"
    time.sleep(1.3)  # the slow request completes on the PDS side

    with httpx.Client(timeout=5.0) as patient:
        sent = demo(patient).send(rendered, delivery_id=DELIVERY)

    [post] = pds(box).posts()
    assert post["uri"] == sent.external_id


def test_find_sent_finds_the_post_of_a_timed_out_attempt(box: Sandbox, http: httpx.Client) -> None:
    box.inject_fault("bluesky", delay_seconds=1.5)
    with httpx.Client(timeout=0.5) as impatient:
        rendered = demo(impatient).render(publication())
        with pytest.raises(TransientChannelError):
            demo(impatient).send(rendered, delivery_id=DELIVERY)
    deadline = time.monotonic() + 5
    while not pds(box).posts() and time.monotonic() < deadline:
        time.sleep(0.05)  # the slow request completes on the PDS side

    found = demo(http).find_sent(rendered, delivery_id=DELIVERY)
    other = demo(http).find_sent(rendered, delivery_id="pub_01JOTHER-bluesky")

    [post] = pds(box).posts()
    assert found is not None
    assert found.external_id == post["uri"]
    assert other is None


def test_faults_answer_xrpc_errors_and_create_nothing(box: Sandbox, http: httpx.Client) -> None:
    channel = demo(http)
    rendered = channel.render(publication())
    box.inject_fault("bluesky", status=503)
    with pytest.raises(TransientChannelError) as unavailable:
        channel.send(rendered, delivery_id=DELIVERY)
    assert (unavailable.value.code, xrpc_name(unavailable.value)) == ("provider_unavailable", "NotEnoughResources")

    box.inject_fault("bluesky", status=429, retry_after=30)
    with pytest.raises(TransientChannelError) as limited:
        channel.send(rendered, delivery_id=DELIVERY)
    assert (limited.value.code, xrpc_name(limited.value)) == ("rate_limited", "RateLimitExceeded")
    [answer] = [item for item in calls(box, "createRecord") if item["status"] == 429]
    assert answer["body"]["rkey"] == delivery_tid(DELIVERY)

    assert pds(box).posts() == []
    assert channel.send(rendered, delivery_id=DELIVERY).external_id.endswith(delivery_tid(DELIVERY))


def test_delete_and_check_against_the_pds(box: Sandbox, http: httpx.Client) -> None:
    channel = demo(http)
    sent = channel.send(channel.render(publication()), delivery_id=DELIVERY)

    channel.delete(sent.external_id)
    channel.delete(sent.external_id)  # already gone: the PDS answers success again

    assert pds(box).posts() == []
    assert [item.get("existed") for item in calls(box, "deleteRecord")] == [True, False]
    report = channel.check()
    assert report.account == f"@{DEMO_HANDLE}"
    assert "mot de passe d'application" in report.message
    assert "1 publication(s) retirée(s)" in box.page()


def test_a_wrong_password_is_refused_by_the_pds(box: Sandbox, http: httpx.Client) -> None:
    with pytest.raises(PermanentChannelError) as refused:
        demo(http, password="wrong-pass-word-0000").check()
    assert refused.value.code == "needs_reconnect"
    assert xrpc_name(refused.value) == "AuthenticationRequired"


def test_the_demo_channel_is_accepted_by_the_adapter(box: Sandbox) -> None:
    body = pds(box).demo_channel()
    settings = BlueskySettings.model_validate(body["settings"])
    credentials = BlueskyCredentials.model_validate(body["credentials"])
    with httpx.Client(timeout=5.0) as client:
        assert BlueskyChannel(settings, credentials, client).check().ok


# ------------------------------------------------------------------------------------------- the PDS's own checks


@dataclass
class Xrpc:
    """Calls the imitation directly, with the demo account's session."""

    http: httpx.Client
    base: str
    access: str
    did: str

    def __call__(self, method: str, nsid: str, **request: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.access}", **request.pop("headers", {})}
        return self.http.request(method, f"{self.base}/xrpc/{nsid}", headers=headers, **request)


@pytest.fixture
def xrpc(box: Sandbox, http: httpx.Client) -> Xrpc:
    opened = http.post(
        f"{box.url}/bluesky/xrpc/com.atproto.server.createSession",
        json={"identifier": DEMO_HANDLE, "password": DEMO_APP_PASSWORD},
    ).json()
    return Xrpc(http, f"{box.url}/bluesky", opened["accessJwt"], opened["did"])


def post_body(did: str, **record: Any) -> dict[str, Any]:
    return {
        "repo": did,
        "collection": "app.bsky.feed.post",
        "rkey": "3lbq2x7k2ke2a",
        "record": {"$type": "app.bsky.feed.post", "text": "Bonjour", "createdAt": "2026-11-27T10:00:00.000Z", **record},
    }


@pytest.mark.parametrize(
    ("record", "complaint"),
    [
        ({"text": "é" * 301}, "must not be longer than 300 graphemes"),
        ({"text": "👨\u200d👩\u200d👧\u200d👦" * 121}, "must not be longer than 3000"),
        ({"createdAt": "hier"}, "createdAt must be an valid atproto datetime"),
        ({"langs": ["fr", "en", "de", "it"]}, "must not have more than 3"),
        ({"facets": [{"index": {"byteStart": 0, "byteEnd": 99}, "features": [{"$type": LINK}]}]}, "outside"),
        (
            {"text": "Été", "facets": [{"index": {"byteStart": 1, "byteEnd": 3}, "features": [{"$type": "x"}]}]},
            "cuts a character in two",
        ),
        (
            {"facets": [{"index": {"byteStart": 0, "byteEnd": 3}, "features": [{"$type": LINK}]}]},
            "uri must be a uri",
        ),
        ({"embed": {"$type": "app.bsky.embed.external", "external": {"uri": "https://x.fr"}}}, '"title"'),
        (
            {"embed": {"$type": "app.bsky.embed.images", "images": [{"image": {}, "alt": "x"}] * 5}},
            "must not have more than 4",
        ),
    ],
)
def test_the_pds_validates_posts_as_the_lexicon_says(xrpc: Xrpc, record: dict[str, Any], complaint: str) -> None:
    answer = xrpc("POST", "com.atproto.repo.createRecord", json=post_body(xrpc.did, **record))

    assert answer.status_code == 400
    assert answer.json()["error"] == "InvalidRequest"
    assert complaint in answer.json()["message"]


def test_the_pds_checks_record_keys_blobs_and_alt_text(xrpc: Xrpc, box: Sandbox) -> None:
    did = xrpc.did
    bad_key = {**post_body(did), "rkey": "not-a-tid"}
    assert "must be a TID" in xrpc("POST", "com.atproto.repo.createRecord", json=bad_key).json()["message"]

    too_big = xrpc(
        "POST", "com.atproto.repo.uploadBlob", content=b"\xff" * 1_000_001, headers={"Content-Type": "image/jpeg"}
    )
    assert (too_big.status_code, too_big.json()["error"]) == (400, "BlobTooLarge")
    blob = xrpc(
        "POST", "com.atproto.repo.uploadBlob", content=image_bytes(), headers={"Content-Type": "image/jpeg"}
    ).json()["blob"]
    assert blob["mimeType"] == "image/jpeg"
    assert blob["ref"]["$link"].startswith("bafkrei")

    no_alt = post_body(did, embed={"$type": "app.bsky.embed.images", "images": [{"image": blob}]})
    assert '"alt"' in xrpc("POST", "com.atproto.repo.createRecord", json=no_alt).json()["message"]
    unknown = {**blob, "ref": {"$link": "bafkreiunknown"}}
    stranger = post_body(did, embed={"$type": "app.bsky.embed.images", "images": [{"image": unknown, "alt": "x"}]})
    assert "Could not find blob" in xrpc("POST", "com.atproto.repo.createRecord", json=stranger).json()["message"]

    good = post_body(did, embed={"$type": "app.bsky.embed.images", "images": [{"image": blob, "alt": "x"}]})
    made = xrpc("POST", "com.atproto.repo.createRecord", json=good)
    assert made.status_code == 200
    assert made.json()["uri"] == f"at://{did}/app.bsky.feed.post/3lbq2x7k2ke2a"
    assert made.headers["RateLimit-Policy"] == "5000;w=3600"
    assert int(made.headers["RateLimit-Remaining"]) == 5000 - 4 * 3  # refused creates spend their points too
    again = xrpc("POST", "com.atproto.repo.createRecord", json=good)
    assert (again.status_code, again.json()["error"]) == (400, "RecordAlreadyExists")


def test_the_pds_refuses_missing_unknown_and_expired_tokens(box: Sandbox, http: httpx.Client) -> None:
    url = f"{box.url}/bluesky/xrpc/com.atproto.server.getSession"
    missing = http.get(url)
    assert (missing.status_code, missing.json()["error"]) == (401, "AuthMissing")
    unknown = http.get(url, headers={"Authorization": "Bearer nope"})
    assert (unknown.status_code, unknown.json()["error"]) == (400, "InvalidToken")
    opened = http.post(
        f"{box.url}/bluesky/xrpc/com.atproto.server.createSession",
        json={"identifier": DEMO_HANDLE, "password": DEMO_APP_PASSWORD},
    ).json()
    assert http.get(url, headers={"Authorization": f"Bearer {opened['accessJwt']}"}).json()["handle"] == DEMO_HANDLE
    pds(box).expire_access_tokens()
    expired = http.get(url, headers={"Authorization": f"Bearer {opened['accessJwt']}"})
    assert (expired.status_code, expired.json()) == (400, {"error": "ExpiredToken", "message": "Token has expired"})


def test_the_pds_limits_create_session_to_30_per_5_minutes(box: Sandbox, http: httpx.Client) -> None:
    url = f"{box.url}/bluesky/xrpc/com.atproto.server.createSession"
    answers = [http.post(url, json={"identifier": DEMO_HANDLE, "password": DEMO_APP_PASSWORD}) for _ in range(31)]
    assert [answer.status_code for answer in answers] == [200] * 30 + [429]
    limited = answers[-1]
    assert limited.json()["error"] == "RateLimitExceeded"
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert limited.headers["RateLimit-Policy"] == "30;w=300"
    assert int(limited.headers["RateLimit-Reset"]) > time.time()
    assert all(item["body"]["password"] == "[masqué]" for item in calls(box, "createSession"))
