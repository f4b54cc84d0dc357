"""The X channel: length counting, OAuth 1.0a signing, the adapter against respx stand-ins of X's API, and
the adapter against the sandbox's X imitation over real loopback HTTP."""

from __future__ import annotations

import functools
import io
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import httpx
import pytest
import respx
from PIL import Image

import infra.local.imitations
import infra.local.sandbox
from crieur.channels import x as x_channel
from crieur.channels.base import PermanentChannelError, RenderedPost, TransientChannelError
from crieur.channels.x import (
    RECONNECT,
    WRITE_ACCESS,
    XChannel,
    XCredentials,
    XSettings,
    authorization_header,
    hmac_sha1_signature,
    same_text,
    signature_base_string,
)
from crieur.media import MediaFetcher
from crieur.models import Publication
from crieur.render.x import MAX_LENGTH, url_spans, weighted_length
from infra.local.imitations import x as imitation
from infra.local.sandbox import Sandbox

API = "https://api.x.com"
CREDENTIALS = XCredentials(consumer_key="ck", consumer_secret="cs", access_token="42-token", access_token_secret="ts")
ME = {"data": {"id": "42", "name": "Mairie", "username": "mairie_test"}}
NO_POSTS = {"meta": {"result_count": 0}}


def publication(body: str = "La rue de l'Église est fermée lundi.", **extra: Any) -> Publication:
    return Publication.model_validate(
        {
            "title": "Travaux",
            "body": body,
            "id": "pub_01JX",
            "commune": "35238",
            "status": "publishing",
            "created_at": datetime(2026, 11, 27, tzinfo=UTC),
            **extra,
        }
    )


def image(kind: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, format=kind)
    return buffer.getvalue()


@functools.cache
def too_big_png() -> bytes:
    """A real PNG of noise, a little over X's 5 MB."""
    noise = Image.frombytes("RGB", (1400, 1300), os.urandom(1400 * 1300 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    assert buffer.tell() > 5 * 1024 * 1024
    return buffer.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (20, 20), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


IMAGES: dict[str, bytes] = {
    "photo.jpg": image(),
    "plan.png": image("PNG"),
    "anime.gif": animated_gif(),
    "notes.txt": b"pas une image",
}


def serve_images(request: httpx.Request) -> httpx.Response:
    """The commune's image host (a stand-in: media URLs must be https)."""
    name = request.url.path.rsplit("/", 1)[-1]
    if name == "huge.png":
        return httpx.Response(200, content=too_big_png())
    if name == "down.jpg":
        return httpx.Response(503)
    return httpx.Response(200, content=IMAGES[name]) if name in IMAGES else httpx.Response(404)


def media_fetcher() -> MediaFetcher:
    return MediaFetcher(httpx.Client(transport=httpx.MockTransport(serve_images)))


def media(name: str, alt: str = "Plan de la déviation", kind: str = "image") -> dict[str, str]:
    return {"url": f"https://images.example/{name}", "alt": alt, "kind": kind}


@pytest.fixture(autouse=True)
def fresh_account_cache() -> None:
    x_channel._user_ids.clear()


@pytest.fixture
def channel() -> XChannel:
    return XChannel(XSettings(), CREDENTIALS, httpx.Client(), media_fetcher())


def post(text: str, images: list[dict[str, str]] | None = None, since: datetime | None = None) -> RenderedPost:
    since = since or datetime.now(UTC) - timedelta(hours=1)
    return RenderedPost(
        text=text, payload={"text": text, "media": images or [], "since": since.strftime("%Y-%m-%dT%H:%M:%SZ")}
    )


def form_fields(request: httpx.Request) -> dict[str, bytes]:
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.content)
    return {
        str(part.get_param("name", header="content-disposition")): part.get_payload(decode=True)
        for part in message.iter_parts()
    }


def empty_account() -> None:
    respx.get(f"{API}/2/users/me").respond(json=ME)
    respx.get(f"{API}/2/users/42/tweets").respond(json=NO_POSTS)


# ------------------------------------------------------------------------------------------- counting


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("abc", 3),
        ("é", 1),
        ("e\u0301", 1),  # NFC first: e + combining acute is one é
        ("« Salut »", 9),
        ("l’école", 7),
        ("\u00a0", 1),  # no-break space
        ("…", 2),
        ("\u202f", 2),  # narrow no-break space
        ("—–", 2),  # em and en dashes are in U+2010-U+201F
        ("€", 2),
        ("日本", 4),
        ("👍", 2),
        ("👍🏽", 2),  # skin tone
        ("👨‍👩‍👧‍👦", 2),  # ZWJ family
        ("🏳️‍🌈", 2),
        ("🇫🇷", 2),
        ("1️⃣", 2),  # keycap
        ("⚠️", 2),  # with its variation selector
        ("©", 2),  # an emoji for X
        ("🏴󠁧󠁢󠁳󠁣󠁴󠁿", 2),  # tag sequence
        ("🇦🇦", 4),  # no such flag: two lone regional indicators
        ("👍️", 4),  # 👍 takes no variation selector: X counts it apart
    ],
)
def test_weights_as_x_counts(text: str, weight: int) -> None:
    assert weighted_length(text) == weight


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("https://example.com/" + "a" * 200, 23),
        ("voir https://a.fr/x.", 5 + 23 + 1),  # the final period is not part of the URL
        ("(https://a.fr/x)", 1 + 23 + 1),
        ("https://fr.wikipedia.org/wiki/Rennes_(ville)", 23),  # balanced parentheses belong to it
        ("https://a.fr/x?q=1!", 23 + 1),
        ("«https://a.fr/x»", 1 + 23 + 1),
        ("https://a.fr/x…", 23 + 2),
        ("service-public.fr", 23),  # no protocol needed
        ("www.mairie-exemple.fr/agenda", 23),
        ("contact@mairie.fr", 17),  # an e-mail address is not a URL
        ("fichier_v2.pdf", 14),
        ("rapport.pdf", 11),  # .pdf is no TLD
        ("dossier.zip", 23),  # .zip is one
        ("https://localhost/x", 19),  # no TLD, no URL
        ("a.fr/x, b.fr", 23 + 2 + 23),
        ("Infos : mairie.fr.", 8 + 23 + 1),
    ],
)
def test_urls_weigh_23_as_x_delimits_them(text: str, weight: int) -> None:
    assert weighted_length(text) == weight


def test_url_spans_end_before_trailing_punctuation() -> None:
    text = "Voir https://mairie.fr/agenda?id=3, puis www.exemple.com!"
    assert [text[start:end] for start, end in url_spans(text)] == [
        "https://mairie.fr/agenda?id=3",
        "www.exemple.com",
    ]


@pytest.mark.parametrize("piece", ["é", "…", "🎉", "👨‍👩‍👧", "\u00a0", "\u202f", " https://x.fr/a"])
def test_counting_is_additive_around_the_limit(piece: str) -> None:
    unit = weighted_length(piece)
    for count in range(MAX_LENGTH // unit - 3, MAX_LENGTH // unit + 3):
        assert weighted_length("a" + piece * count) == 1 + unit * count


def test_long_texts_are_counted_in_linear_time() -> None:
    started = time.perf_counter()
    for pathological in ("é" * 9_999 + ".", "a-" * 5_000 + ".", "a." * 5_000):
        weighted_length(pathological)
    assert time.perf_counter() - started < 5


TRICKY_BODIES = [
    "Déviation rue de l’Église « côté mairie » jusqu’à 18 h… ",
    "Fête 🎉👨‍👩‍👧 au parc ⚠️ 🇫🇷 ",
    "Infos sur service-public.fr, www.mairie.fr/agenda et https://exemple.fr/a_(b). ",
    "日本語 Ελληνικά привет ",
    "mot\u00a0:\u202f! ",
]


@pytest.mark.parametrize("body", TRICKY_BODIES)
def test_compositions_fit_280_at_every_size(channel: XChannel, body: str) -> None:
    for size in (1, 50, 100, 200, 250, 270, 280, 290, 400, 1_000, 5_000):
        text = channel.render(publication((body * size)[: max(size, 1)])).text
        assert text is not None
        assert weighted_length(text) <= MAX_LENGTH
        assert text.startswith("Travaux\n\n")


def test_a_text_of_exactly_280_is_kept_whole_and_281_is_cut(channel: XChannel) -> None:
    head = "Travaux\n\n"
    tail = "\n\n#actualité"
    budget = MAX_LENGTH - weighted_length(head) - weighted_length(tail)
    exact = "é…" * (budget // 3) + "a" * (budget % 3)
    whole = channel.render(publication(exact)).text
    cut = channel.render(publication(exact + "b")).text
    assert whole == head + exact + tail
    assert weighted_length(whole or "") == MAX_LENGTH
    assert cut is not None
    assert cut.endswith("…" + tail) or "…\n\n" in cut
    assert weighted_length(cut) <= MAX_LENGTH


# ------------------------------------------------------------------------------------------- OAuth 1.0a

DOCS_OAUTH = [
    ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
    ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
    ("oauth_signature_method", "HMAC-SHA1"),
    ("oauth_timestamp", "1318622958"),
    ("oauth_token", "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb"),
    ("oauth_version", "1.0"),
]


def test_signature_of_the_x_documentation_example() -> None:
    # X's "Creating a signature" page: its signature base string, and the HMAC-SHA1 of it under its keys
    # (the page prints "tnnArxj06cWHq44gCs1OSKk/jLY=", which its own base string and key do not produce).
    base = signature_base_string(
        "POST",
        "https://api.twitter.com/1.1/statuses/update.json?include_entities=true",
        [("status", "Hello Ladies + Gentlemen, a signed OAuth request!"), *DOCS_OAUTH],
    )
    assert base == (
        "POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26"
        "oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"
        "%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26oauth_token%3D370773112-"
        "GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B"
        "%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521"
    )
    signature = hmac_sha1_signature(
        base, "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw", "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE"
    )
    assert signature == "hCtSmYh+iHYCEqBWrE7C7hYmtUk="


def test_base_string_of_rfc_5849_example() -> None:
    # RFC 5849 §3.4.1.1: the query is decoded then re-encoded, blank values kept, "+" in a form is a space.
    base = signature_base_string(
        "post",
        "HTTP://EXAMPLE.COM:80/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
        [
            ("c2", ""),
            ("a3", "2 q"),
            ("oauth_consumer_key", "9djdj82h48djs9d2"),
            ("oauth_token", "kkk9d7dh3k39sjv7"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"),
            ("oauth_nonce", "7d8f3e4a"),
        ],
    )
    assert base == (
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26"
        "c%2540%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26"
        "oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
    )


def test_authorization_header_carries_the_documented_signature() -> None:
    credentials = XCredentials(
        consumer_key="xvz1evFS4wEEPTGEFPHBog",
        consumer_secret="kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
        access_token="370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
        access_token_secret="LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
    )
    header = authorization_header(
        "POST",
        "https://api.twitter.com/1.1/statuses/update.json?include_entities=true",
        credentials,
        form=[("status", "Hello Ladies + Gentlemen, a signed OAuth request!")],
        nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
        timestamp=1318622958,
    )
    assert header == (
        'OAuth oauth_consumer_key="xvz1evFS4wEEPTGEFPHBog", '
        'oauth_nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg", '
        'oauth_signature="hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D", oauth_signature_method="HMAC-SHA1", '
        'oauth_timestamp="1318622958", oauth_token="370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb", '
        'oauth_version="1.0"'
    )


def test_credentials_refuse_blanks_and_unknown_fields() -> None:
    with pytest.raises(ValueError, match="consumer_key"):
        XCredentials(consumer_key=" ", consumer_secret="s", access_token="t", access_token_secret="u")
    with pytest.raises(ValueError, match="bearer"):
        XCredentials.model_validate({**CREDENTIALS.model_dump(), "bearer": "x"})
    with pytest.raises(ValueError, match="page_id"):
        XSettings.model_validate({"page_id": "1"})


# ------------------------------------------------------------------------------------------- the adapter (respx)


@respx.mock
def test_a_post_is_signed_checked_for_a_copy_then_created(channel: XChannel) -> None:
    empty_account()
    created = respx.post(f"{API}/2/tweets").respond(201, json={"data": {"id": "1861", "text": "…"}})
    rendered = channel.render(publication(links=[{"url": "https://mairie.example.fr/travaux", "label": "Plan"}]))

    sent = channel.send(rendered, delivery_id="pub_01JX-x")

    assert (sent.external_id, sent.url) == ("1861", "https://x.com/i/web/status/1861")
    request = created.calls.last.request
    assert json.loads(request.content) == {
        "text": "Travaux\n\nLa rue de l'Église est fermée lundi.\n\nPlan : https://mairie.example.fr/travaux\n#actualité"
    }
    header = request.headers["Authorization"]
    assert header.startswith('OAuth oauth_consumer_key="ck", oauth_nonce="')
    assert 'oauth_signature_method="HMAC-SHA1"' in header
    assert 'oauth_token="42-token"' in header
    lookup = respx.calls[1].request
    assert lookup.url.path == "/2/users/42/tweets"
    assert lookup.url.params["max_results"] == "100"
    assert lookup.url.params["tweet.fields"] == "created_at,attachments"
    assert lookup.url.params["start_time"] == "2026-11-26T23:59:00Z"  # the publication's creation, less a minute


@respx.mock
def test_the_signature_verifies_as_x_recomputes_it(channel: XChannel) -> None:
    route = respx.get(f"{API}/2/users/42/tweets").respond(json=NO_POSTS)
    respx.get(f"{API}/2/users/me").respond(json=ME)
    respx.post(f"{API}/2/tweets").respond(201, json={"data": {"id": "1"}})

    channel.send(post("Bonjour"), delivery_id="d")

    request = route.calls.last.request
    oauth = imitation._oauth_params(request.headers["Authorization"])
    params = [(k, v) for k, v in oauth.items() if k != "oauth_signature"]
    params += list(request.url.params.multi_items())
    base = signature_base_string("GET", str(request.url.copy_with(query=None)), params)
    assert oauth["oauth_signature"] == hmac_sha1_signature(base, "cs", "ts")


@respx.mock
def test_images_are_uploaded_with_their_alt_text(channel: XChannel) -> None:
    empty_account()
    uploads = respx.post(f"{API}/2/media/upload").mock(
        side_effect=[
            httpx.Response(200, json={"data": {"id": "901", "media_key": "3_901"}}),
            httpx.Response(200, json={"data": {"id": "902", "media_key": "3_902"}}),
        ]
    )
    metadata = respx.post(f"{API}/2/media/metadata").respond(json={"data": {"id": "901"}})
    created = respx.post(f"{API}/2/tweets").respond(201, json={"data": {"id": "1862"}})
    rendered = channel.render(publication(media=[media("photo.jpg", "La rue barrée"), media("plan.png")]))

    channel.send(rendered, delivery_id="pub_01JX-x")

    first, second = (form_fields(call.request) for call in uploads.calls)
    assert first["media"] == IMAGES["photo.jpg"]
    assert (first["media_category"], first["media_type"]) == (b"tweet_image", b"image/jpeg")
    assert (second["media"], second["media_type"]) == (IMAGES["plan.png"], b"image/png")
    assert [json.loads(call.request.content) for call in metadata.calls] == [
        {"id": "901", "metadata": {"alt_text": {"text": "La rue barrée"}}},
        {"id": "902", "metadata": {"alt_text": {"text": "Plan de la déviation"}}},
    ]
    assert json.loads(created.calls.last.request.content)["media"] == {"media_ids": ["901", "902"]}


def test_media_kept_and_dropped_with_reasons(channel: XChannel) -> None:
    rendered = channel.render(
        publication(
            media=[
                media("photo.jpg"),
                media("clip.mp4", kind="video"),
                media("huge.png"),
                media("anime.gif"),
                media("notes.txt"),
                media("plan.png"),
                media("photo.jpg", "encore"),
                media("plan.png", "encore"),
                media("photo.jpg", "de trop"),
            ]
        )
    )

    decisions = [(decision.url.rsplit("/", 1)[-1], decision.kept, decision.reason) for decision in rendered.media]
    assert [kept for _, kept, _ in decisions] == [True, False, False, False, False, True, True, True, False]
    reasons = [reason or "" for _, _, reason in decisions]
    assert "vidéos ne sont pas encore envoyées sur X" in reasons[1]
    assert "5 Mo" in reasons[2]
    assert "animées" in reasons[3]
    assert "ni une image" in reasons[4]
    assert "au plus 4 images" in reasons[8]
    assert rendered.payload["media"] == [
        {"url": "https://images.example/photo.jpg", "alt": "Plan de la déviation"},
        {"url": "https://images.example/plan.png", "alt": "Plan de la déviation"},
        {"url": "https://images.example/photo.jpg", "alt": "encore"},
        {"url": "https://images.example/plan.png", "alt": "encore"},
    ]
    assert "content" not in json.dumps(rendered.payload)


def test_an_image_host_that_is_down_makes_the_render_transient(channel: XChannel) -> None:
    with pytest.raises(TransientChannelError) as raised:
        channel.render(publication(media=[media("down.jpg")]))
    assert raised.value.code == "media_unavailable"


def test_alt_text_is_cut_to_x_limit_with_a_warning(channel: XChannel) -> None:
    rendered = channel.render(publication(media=[media("photo.jpg", "mot " * 350)]))
    [kept] = rendered.payload["media"]
    assert len(kept["alt"]) <= 1000
    assert kept["alt"].endswith("…")
    assert rendered.warnings == [
        "Le texte alternatif de https://images.example/photo.jpg a été raccourci à 1000 caractères, la limite de X."
    ]


def test_override_and_invalid_characters(channel: XChannel) -> None:
    rendered = channel.render(
        publication(overrides={"x": {"text": "\ufeffTexte choisi pour X https://mairie.fr/a"}}, channels=["x"])
    )
    assert rendered.text == "Texte choisi pour X https://mairie.fr/a"
    assert (rendered.length, rendered.limit) == (20 + 23, 280)


@respx.mock
@pytest.mark.parametrize(
    ("status", "body", "expected", "message"),
    [
        (503, {"title": "Service Unavailable"}, (TransientChannelError, "provider_unavailable"), "indisponible"),
        (401, imitation.problem(401), (PermanentChannelError, "needs_reconnect"), RECONNECT),
        (403, imitation.problem(403, imitation.OAUTH1_PERMISSIONS), (PermanentChannelError, "needs_reconnect"),
         WRITE_ACCESS),
        (403, {"detail": "Your account is suspended and is not permitted to access this feature."},
         (PermanentChannelError, "forbidden"), "X a suspendu ou restreint le compte"),
        (403, {"detail": "You are not permitted to perform this action."}, (PermanentChannelError, "forbidden"),
         "X refuse cette action (erreur 403 : You are not permitted to perform this action.)"),
        (400, imitation.invalid("Your media IDs are invalid."), (PermanentChannelError, "rejected"),
         "X a refusé la publication : Your media IDs are invalid."),
    ],
)  # fmt: skip
def test_errors_are_classified_with_a_french_reason(
    channel: XChannel, status: int, body: dict[str, Any], expected: tuple[type[Exception], str], message: str
) -> None:
    empty_account()
    respx.post(f"{API}/2/tweets").respond(status, json=body)
    error, code = expected

    with pytest.raises(error) as raised:
        channel.send(post("Bonjour"), delivery_id="d")

    assert raised.value.code == code  # type: ignore[attr-defined]
    assert message in raised.value.message  # type: ignore[attr-defined]


@respx.mock
def test_429_waits_until_the_rate_limit_reset(channel: XChannel) -> None:
    empty_account()
    reset = int(time.time()) + 600
    respx.post(f"{API}/2/tweets").respond(
        429,
        json=imitation.problem(429),
        headers={"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)},
    )

    with pytest.raises(TransientChannelError) as raised:
        channel.send(post("Bonjour"), delivery_id="d")

    assert raised.value.code == "rate_limited"
    assert raised.value.retry_after == pytest.approx(600, abs=5)


@respx.mock
def test_a_timeout_is_transient_and_the_retry_finds_the_post(channel: XChannel) -> None:
    respx.get(f"{API}/2/users/me").respond(json=ME)
    text = "Travaux\n\nRue fermée, voir https://mairie.fr/plan & la déviation.\n\n#travaux"
    shown = "Travaux\n\nRue fermée, voir https://t.co/AbCdEf &amp; la déviation.\n\n#travaux https://t.co/MeDiA1"
    respx.get(f"{API}/2/users/42/tweets").mock(
        side_effect=[
            httpx.Response(200, json=NO_POSTS),
            httpx.Response(200, json={"data": [{"id": "1863", "text": shown, "attachments": {"media_keys": ["3_1"]}}]}),
        ]
    )
    created = respx.post(f"{API}/2/tweets").mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(TransientChannelError) as raised:
        channel.send(post(text), delivery_id="pub_01JX-x")
    sent = channel.send(post(text), delivery_id="pub_01JX-x")

    assert raised.value.code == "timeout"
    assert sent.external_id == "1863"
    assert created.call_count == 1
    assert respx.calls.call_count == 4  # users/me once (cached), two lookups, one post


@respx.mock
def test_a_duplicate_refusal_is_answered_with_the_existing_post(channel: XChannel) -> None:
    respx.get(f"{API}/2/users/me").respond(json=ME)
    respx.get(f"{API}/2/users/42/tweets").mock(
        side_effect=[
            httpx.Response(200, json=NO_POSTS),  # not listed yet when checked
            httpx.Response(200, json={"data": [{"id": "1864", "text": "Bonjour"}]}),
        ]
    )
    respx.post(f"{API}/2/tweets").respond(403, json=imitation.problem(403, imitation.DUPLICATE))

    sent = channel.send(post("Bonjour"), delivery_id="d")

    assert sent.external_id == "1864"


@respx.mock
def test_a_duplicate_of_an_older_post_is_a_permanent_refusal(channel: XChannel) -> None:
    empty_account()
    respx.post(f"{API}/2/tweets").respond(403, json=imitation.problem(403, imitation.DUPLICATE))

    with pytest.raises(PermanentChannelError) as raised:
        channel.send(post("Marché le jeudi"), delivery_id="d")

    assert raised.value.code == "duplicate"
    assert "identique à une publication récente" in raised.value.message


@respx.mock
def test_a_lookup_that_x_refuses_does_not_block_the_post(channel: XChannel) -> None:
    respx.get(f"{API}/2/users/me").respond(json=ME)
    respx.get(f"{API}/2/users/42/tweets").respond(403, json=imitation.problem(403, "client-not-enrolled"))
    created = respx.post(f"{API}/2/tweets").respond(201, json={"data": {"id": "1865"}})

    assert channel.send(post("Bonjour"), delivery_id="d").external_id == "1865"
    assert created.called


@respx.mock
def test_a_duplicate_whose_lookup_fails_waits_instead_of_failing(channel: XChannel) -> None:
    respx.get(f"{API}/2/users/me").respond(json=ME)
    respx.get(f"{API}/2/users/42/tweets").mock(
        side_effect=[httpx.Response(200, json=NO_POSTS), httpx.Response(503, json=imitation.problem(503))]
    )
    respx.post(f"{API}/2/tweets").respond(403, json=imitation.problem(403, imitation.DUPLICATE))

    with pytest.raises(TransientChannelError) as raised:
        channel.send(post("Bonjour"), delivery_id="d")

    assert raised.value.code == "provider_unavailable"


def timeline_page(posts: list[dict[str, Any]], next_token: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"result_count": len(posts)}
    if next_token:
        meta["next_token"] = next_token
    return {"data": posts, "meta": meta}


@respx.mock
def test_find_sent_reads_the_posts_since_the_publication_page_after_page(channel: XChannel) -> None:
    respx.get(f"{API}/2/users/me").respond(json=ME)
    others = [{"id": str(2000 + n), "text": f"Avis {n}"} for n in range(100)]
    pages = respx.get(f"{API}/2/users/42/tweets").mock(
        side_effect=[
            httpx.Response(200, json=timeline_page(others, "page2")),
            httpx.Response(200, json=timeline_page([{"id": "1866", "text": "Bonjour &amp; bienvenue"}])),
        ]
    )
    rendered = post("Bonjour & bienvenue", since=datetime(2026, 11, 27, 6, 0, tzinfo=UTC))

    sent = channel.find_sent(rendered, delivery_id="d")

    assert sent is not None
    assert (sent.external_id, sent.url) == ("1866", "https://x.com/i/web/status/1866")
    first, second = (call.request.url.params for call in pages.calls)
    assert (first["start_time"], first["max_results"], first["exclude"]) == (
        "2026-11-27T06:00:00Z",
        "100",
        "replies,retweets",
    )
    assert "pagination_token" not in first
    assert second["pagination_token"] == "page2"


@respx.mock
def test_find_sent_is_bounded_and_matches_the_exact_text(channel: XChannel) -> None:
    respx.get(f"{API}/2/users/me").respond(json=ME)
    near = [{"id": str(3000 + n), "text": "Bonjour !"} for n in range(100)]
    pages = respx.get(f"{API}/2/users/42/tweets").respond(json=timeline_page(near, "more"))

    assert channel.find_sent(post("Bonjour"), delivery_id="d") is None
    assert pages.call_count == 3  # LOOKUP_PAGES, however many posts the account has


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (httpx.Response(503, json=imitation.problem(503)), "provider_unavailable"),
        (httpx.Response(429, json=imitation.problem(429), headers={"x-rate-limit-reset": "0"}), "rate_limited"),
        (httpx.Response(403, json=imitation.problem(403, "client-not-enrolled")), "lookup_failed"),
        (httpx.Response(401, json=imitation.problem(401)), "lookup_failed"),
    ],
)
@respx.mock
def test_find_sent_never_takes_a_failed_lookup_for_an_answer(
    channel: XChannel, answer: httpx.Response, code: str
) -> None:
    respx.get(f"{API}/2/users/me").respond(json=ME)
    respx.get(f"{API}/2/users/42/tweets").mock(return_value=answer)

    with pytest.raises(TransientChannelError) as raised:
        channel.find_sent(post("Bonjour"), delivery_id="d")

    assert raised.value.code == code


@respx.mock
def test_an_expired_token_stops_before_posting(channel: XChannel) -> None:
    respx.get(f"{API}/2/users/me").respond(401, json=imitation.problem(401))
    created = respx.post(f"{API}/2/tweets")

    with pytest.raises(PermanentChannelError) as raised:
        channel.send(post("Bonjour"), delivery_id="d")

    assert (raised.value.code, raised.value.message) == ("needs_reconnect", RECONNECT)
    assert not created.called


@pytest.mark.parametrize(
    ("shown", "posted", "has_media", "same"),
    [
        ("Bonjour", "Bonjour", False, True),
        ("A &amp; B &lt;3", "A & B <3", False, True),
        ("Voir https://t.co/abc.", "Voir https://mairie.fr/x.", False, True),
        ("Voir service-public.fr", "Voir service-public.fr", False, True),
        ("Bonjour https://t.co/media", "Bonjour", True, True),
        ("Plan https://t.co/a https://t.co/media", "Plan https://mairie.fr/plan", True, True),
        ("Plan https://t.co/a", "Plan https://mairie.fr/plan", False, True),
        ("Bonjour https://t.co/a", "Bonjour", False, False),
        ("Bonjour !", "Bonjour", False, False),
        ("Plan https://t.co/a", "Plan", True, True),
    ],
)
def test_same_text_undoes_what_x_rewrites(shown: str, posted: str, has_media: bool, same: bool) -> None:
    assert same_text(shown, posted, has_media=has_media) is same


@respx.mock
@pytest.mark.parametrize("status", [200, 404])
def test_delete_treats_a_missing_post_as_deleted(channel: XChannel, status: int) -> None:
    route = respx.delete(f"{API}/2/tweets/1861").respond(status, json={"data": {"deleted": status == 200}})
    channel.delete("1861")
    assert route.called


@respx.mock
def test_delete_with_revoked_tokens_says_to_reconnect(channel: XChannel) -> None:
    respx.delete(f"{API}/2/tweets/1861").respond(401, json=imitation.problem(401))
    with pytest.raises(PermanentChannelError) as raised:
        channel.delete("1861")
    assert raised.value.code == "needs_reconnect"


@respx.mock
@pytest.mark.parametrize(
    ("status", "level", "outcome", "message"),
    [
        (200, "read-write", (True, ["lecture", "publication"]), "Le compte X @mairie_test est joignable"),
        (200, "read", (False, ["lecture"]), WRITE_ACCESS),
        (401, "", (False, []), RECONNECT),
    ],
)
def test_check_reads_the_account_and_its_access_level(
    channel: XChannel, status: int, level: str, outcome: tuple[bool, list[str]], message: str
) -> None:
    body = ME if status == 200 else imitation.problem(401)
    respx.get(f"{API}/2/users/me").respond(status, json=body, headers={"x-access-level": level} if level else {})

    check = channel.check()

    assert (check.ok, check.permissions) == outcome
    assert check.account == ("@mairie_test" if status == 200 else None)
    assert check.message.startswith(message)


def test_the_host_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, channel: XChannel) -> None:
    monkeypatch.setenv("CRIEUR_X_BASE_URL", "https://x.sandbox.example/")
    with respx.mock:
        route = respx.get("https://x.sandbox.example/2/users/me").respond(json=ME)
        assert channel.check().account == "@mairie_test"
    assert route.called


# ------------------------------------------------------------------------------------------- against the imitation


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    monkeypatch.setattr(infra.local.imitations, "IMITATIONS", [imitation.XImitation])
    monkeypatch.setattr(infra.local.sandbox, "CHANNELS", (*infra.local.sandbox.CHANNELS, "x"))
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    box = Sandbox(port=0)
    box.start()
    monkeypatch.setenv("CRIEUR_X_BASE_URL", f"{box.url}/x")
    yield box
    box.stop()


def imitated(sandbox: Sandbox) -> imitation.XImitation:
    found = sandbox.imitations["/x"]
    assert isinstance(found, imitation.XImitation)
    return found


def live(timeout: float = 5.0, **credentials: str) -> XChannel:
    demo = XCredentials.model_validate(
        {
            "consumer_key": imitation.CONSUMER_KEY,
            "consumer_secret": imitation.CONSUMER_SECRET,
            "access_token": imitation.ACCESS_TOKEN,
            "access_token_secret": imitation.ACCESS_TOKEN_SECRET,
            **credentials,
        }
    )
    return XChannel(XSettings(), demo, httpx.Client(timeout=timeout), media_fetcher())


def test_the_demo_channel_body_is_accepted_by_the_adapter(sandbox: Sandbox) -> None:
    body = imitated(sandbox).demo_channel()
    assert body["enabled"] is True
    XSettings.model_validate(body["settings"])
    XCredentials.model_validate(body["credentials"])
    check = live().check()
    assert (check.ok, check.account, check.permissions) == (True, "@commune_demo", ["lecture", "publication"])


def test_a_publication_with_images_and_a_link_reaches_the_imitation(sandbox: Sandbox) -> None:
    channel = live()
    pub = publication(
        "Les travaux de voirie commencent lundi. " * 20,
        links=[{"url": "https://mairie.example.fr/travaux/plan-de-deviation", "label": "Plan"}],
        media=[
            media("photo.jpg", "La rue barrée par des barrières"),
            media("plan.png"),
            media("clip.mp4", kind="video"),
        ],
    )
    rendered = channel.render(pub)

    sent = channel.send(rendered, delivery_id="pub_01JX-x")

    [made] = imitated(sandbox).posts()
    assert made["id"] == sent.external_id
    assert made["text"] == rendered.text
    assert weighted_length(made["text"]) <= MAX_LENGTH
    assert made["text"].endswith("Plan : https://mairie.example.fr/travaux/plan-de-deviation\n#actualité")
    assert len(made["media_keys"]) == 2
    alts = [imitated(sandbox).media(key.removeprefix("3_")) for key in made["media_keys"]]
    assert [alt["alt"] for alt in alts if alt] == ["La rue barrée par des barrières", "Plan de la déviation"]
    writes = sandbox.received("x")
    assert [(item["path"], item["status"]) for item in writes] == [
        ("/x/2/media/upload", 200),
        ("/x/2/media/metadata", 200),
        ("/x/2/media/upload", 200),
        ("/x/2/media/metadata", 200),
        ("/x/2/tweets", 201),
    ]
    assert writes[0]["body"]["media"].endswith("octets>")
    assert writes[-1]["headers"]["authorization"] == "OAuth [redacted]"
    page = sandbox.page()
    assert "Les travaux de voirie commencent lundi." in page
    assert 'alt="La rue barrée par des barrières"' in page
    assert "@commune_demo" in page


def test_the_same_delivery_twice_posts_once(sandbox: Sandbox) -> None:
    channel = live()
    rendered = channel.render(publication("Une belle fête & un « bal » : https://mairie.example.fr/fete"))

    first = channel.send(rendered, delivery_id="pub_01JX-x")
    again = channel.send(rendered, delivery_id="pub_01JX-x")

    assert again == first
    assert [post["id"] for post in imitated(sandbox).posts()] == [first.external_id]
    assert [item["path"] for item in sandbox.received("x")] == ["/x/2/tweets"]  # the retry wrote nothing
    assert "&amp;" in imitated(sandbox).posts()[0]["stored"]
    assert "https://t.co/" in imitated(sandbox).posts()[0]["stored"]


def test_a_post_that_times_out_but_exists_is_not_posted_again(sandbox: Sandbox) -> None:
    sandbox.inject_fault("x", delay_seconds=1.0)
    channel = live(timeout=0.3)
    rendered = channel.render(publication())

    with pytest.raises(TransientChannelError) as raised:
        channel.send(rendered, delivery_id="pub_01JX-x")
    deadline = time.monotonic() + 5
    while not imitated(sandbox).posts() and time.monotonic() < deadline:
        time.sleep(0.05)
    sent = live().send(rendered, delivery_id="pub_01JX-x")

    assert raised.value.code == "timeout"
    assert [post["id"] for post in imitated(sandbox).posts()] == [sent.external_id]


def test_find_sent_finds_the_post_of_a_timed_out_attempt(sandbox: Sandbox) -> None:
    sandbox.inject_fault("x", delay_seconds=1.0)
    rendered = live().render(publication("Marché de Noël & vin chaud : https://mairie.example.fr/noel"))

    with pytest.raises(TransientChannelError):
        live(timeout=0.3).send(rendered, delivery_id="pub_01JX-x")
    deadline = time.monotonic() + 5
    while not imitated(sandbox).posts() and time.monotonic() < deadline:
        time.sleep(0.05)
    found = live().find_sent(rendered, delivery_id="pub_01JX-x")

    [made] = imitated(sandbox).posts()
    assert found is not None
    assert found.external_id == made["id"]
    assert live().find_sent(live().render(publication("Un autre avis")), delivery_id="pub_01JY-x") is None


def test_find_sent_reads_past_the_first_page_of_a_busy_account(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(x_channel, "LOOKUP_SIZE", 5)
    channel = live()
    first = channel.send(post("Avis 0"), delivery_id="d0")
    for number in range(1, 12):
        channel.send(post(f"Avis {number}"), delivery_id=f"d{number}")

    assert channel.find_sent(post("Avis 0"), delivery_id="d0") == first
    assert channel.send(post("Avis 0"), delivery_id="d0") == first  # looked up, not posted again
    assert len(imitated(sandbox).posts()) == 12
    assert [item["path"] for item in sandbox.received("x")].count("/x/2/tweets") == 12  # no 13th attempt


@pytest.mark.parametrize(("status", "code"), [(503, "provider_unavailable"), (500, "provider_unavailable")])
def test_server_faults_are_transient_and_create_nothing(sandbox: Sandbox, status: int, code: str) -> None:
    sandbox.inject_fault("x", status=status)

    with pytest.raises(TransientChannelError) as raised:
        live().send(post("Bonjour"), delivery_id="d")

    assert raised.value.code == code
    assert imitated(sandbox).posts() == []
    assert [item["status"] for item in sandbox.received("x")] == [status]


def test_a_429_fault_waits_until_its_reset(sandbox: Sandbox) -> None:
    sandbox.inject_fault("x", status=429, retry_after=90)

    with pytest.raises(TransientChannelError) as raised:
        live().send(post("Bonjour"), delivery_id="d")

    assert raised.value.code == "rate_limited"
    assert raised.value.retry_after == pytest.approx(90, abs=3)


def test_a_wrong_secret_fails_the_signature_and_asks_to_reconnect(sandbox: Sandbox) -> None:
    with pytest.raises(PermanentChannelError) as raised:
        live(access_token_secret="ancien-secret").send(post("Bonjour"), delivery_id="d")

    assert (raised.value.code, raised.value.message) == ("needs_reconnect", RECONNECT)
    assert raised.value.provider_message == "Unauthorized"
    assert imitated(sandbox).posts() == []


def test_a_read_only_token_can_check_but_not_post(sandbox: Sandbox) -> None:
    channel = live(access_token=imitation.READ_ONLY_TOKEN, access_token_secret=imitation.READ_ONLY_TOKEN_SECRET)

    check = channel.check()
    with pytest.raises(PermanentChannelError) as raised:
        channel.send(post("Bonjour"), delivery_id="d")

    assert (check.ok, check.message) == (False, WRITE_ACCESS)
    assert (raised.value.code, raised.value.message) == ("needs_reconnect", WRITE_ACCESS)


def test_the_imitation_enforces_the_weighted_limit(sandbox: Sandbox) -> None:
    channel = live()
    exact = "é…" * 93 + "a"  # 93 × 3 + 1 = 280

    sent = channel.send(post(exact), delivery_id="d1")
    with pytest.raises(PermanentChannelError) as raised:
        channel.send(post(exact + "b"), delivery_id="d2")

    assert sent.external_id
    assert raised.value.code == "rejected"
    assert [item["status"] for item in sandbox.received("x")] == [201, 400]


def test_the_imitation_checks_signature_nonce_and_parameters(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/x/2/users/me"
    with httpx.Client(timeout=5) as http:
        header = authorization_header("GET", url, live().credentials)
        ok = http.get(url, headers={"Authorization": header})
        replayed = http.get(url, headers={"Authorization": header})
        wrong_url = http.get(url, headers={"Authorization": authorization_header("GET", url + "x", live().credentials)})
        anonymous = http.get(url)
        timeline = f"{sandbox.url}/x/2/users/{imitation.USER['id']}/tweets?max_results=3"
        too_few = http.get(
            timeline, headers={"Authorization": authorization_header("GET", timeline, live().credentials)}
        )

    assert ok.status_code == 200
    assert ok.json() == {"data": imitation.USER}
    assert int(ok.headers["x-rate-limit-remaining"]) == int(ok.headers["x-rate-limit-limit"]) - 1
    assert int(ok.headers["x-rate-limit-reset"]) > time.time()
    assert [r.status_code for r in (replayed, wrong_url, anonymous)] == [401, 401, 401]
    assert anonymous.json() == {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
    assert too_few.status_code == 400
    assert "between 5 and 100" in too_few.json()["errors"][0]["message"]


def test_delete_over_http(sandbox: Sandbox) -> None:
    channel = live()
    sent = channel.send(post("À supprimer"), delivery_id="d")

    channel.delete(sent.external_id)
    channel.delete(sent.external_id)  # already gone: 404, done

    assert imitated(sandbox).posts()[0]["deleted"] is True
    assert [item["status"] for item in sandbox.received("x")] == [201, 200, 404]
    assert "Cette publication a été supprimée." in sandbox.page()


def test_the_page_escapes_what_it_shows(sandbox: Sandbox) -> None:
    live().send(post("<script>alert(1)</script> voir https://mairie.fr/a?b=1&c=2"), delivery_id="d")
    section = imitated(sandbox).page_section()
    assert "<script>" not in section
    assert "&lt;script&gt;" in section
    assert 'href="https://mairie.fr/a?b=1&amp;c=2"' in section
    assert "Aperçu du lien : mairie.fr" in section
