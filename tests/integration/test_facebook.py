"""The Facebook Page adapter: request shapes and error classes against respx stand-ins of the Graph API,
then the adapter against the sandbox's Facebook imitation over loopback HTTP (images over loopback HTTPS).
"""

from __future__ import annotations

import functools
import http.server
import io
import ipaddress
import json
import os
import ssl
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import respx
from PIL import Image

import infra.local.imitations
import infra.local.sandbox
from crieur.channels import facebook as facebook_module
from crieur.channels.base import PermanentChannelError, RenderedPost, TransientChannelError
from crieur.channels.facebook import (
    LINK_CARD_WARNING,
    MAX_MESSAGE_LENGTH,
    PERMISSION,
    RECONNECT,
    FacebookChannel,
    FacebookCredentials,
    FacebookSettings,
)
from crieur.channels.graph import GRAPH_API_VERSION
from crieur.models import Publication
from infra.local.imitations.facebook import DEMO_TOKEN, PAGE_ID, PAGE_NAME, FacebookImitation
from infra.local.sandbox import Sandbox

PAGE = "104839201234567"
TOKEN = "EAAtestjetondepage"
GRAPH = f"https://graph.facebook.com/{GRAPH_API_VERSION}"
CREATED = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SINCE = str(int(CREATED.timestamp()) - 60)
IMAGES = "https://images.example"


# ------------------------------------------------------------------------------------------- images


def _encoded(image: Image.Image, kind: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **options)
    return buffer.getvalue()


@functools.cache
def jpeg() -> bytes:
    return _encoded(Image.new("RGB", (640, 480), (30, 120, 200)), "JPEG")


@functools.cache
def png() -> bytes:
    return _encoded(Image.new("RGB", (300, 200), (200, 60, 40)), "PNG")


@functools.cache
def webp() -> bytes:
    return _encoded(Image.new("RGB", (300, 200), (20, 160, 90)), "WEBP")


@functools.cache
def still_gif() -> bytes:
    return _encoded(Image.new("P", (120, 80), 3), "GIF")


@functools.cache
def animated_gif() -> bytes:
    frames = [Image.new("RGB", (120, 80), color) for color in ((200, 0, 0), (0, 200, 0), (0, 0, 200))]
    return _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


@functools.cache
def big_png() -> bytes:
    """Noise does not compress: about 5 MB, more than Facebook's 4 MB."""
    side = 1300
    content = _encoded(Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)), "PNG")
    assert len(content) > 4 * 1024 * 1024
    return content


# ------------------------------------------------------------------------------------------- helpers


def publication(body: str = "La rue de l'Église est fermée lundi.", **extra: Any) -> Publication:
    return Publication.model_validate(
        {
            "title": "Travaux",
            "body": body,
            "id": "pub_01JFACEBOOK",
            "commune": "35238",
            "status": "publishing",
            "created_at": CREATED,
            **extra,
        }
    )


def facebook(http: httpx.Client | None = None, *, page: str = PAGE, token: str = TOKEN) -> FacebookChannel:
    return FacebookChannel(
        FacebookSettings(page_id=page), FacebookCredentials(page_access_token=token), http or httpx.Client()
    )


def form(request: httpx.Request) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(request.content.decode()))


def graph_error(
    code: int,
    message: str = "(#1) Une erreur",
    *,
    status: int = 400,
    subcode: int | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return httpx.Response(status, json={"error": error}, headers=headers)


@pytest.fixture(autouse=True)
def _real_graph_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRIEUR_FACEBOOK_BASE_URL", raising=False)


@pytest.fixture
def graph() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def nothing_posted_yet(graph: respx.MockRouter) -> respx.Route:
    return graph.get(f"{GRAPH}/{PAGE}/published_posts").respond(json={"data": []})


# ------------------------------------------------------------------------------------------- requests


def test_a_text_post_goes_to_the_feed_with_its_link_as_a_card(
    graph: respx.MockRouter, nothing_posted_yet: respx.Route
) -> None:
    feed = graph.post(f"{GRAPH}/{PAGE}/feed").respond(json={"id": f"{PAGE}_901"})
    channel = facebook()
    links = [{"url": "https://mairie.example.fr/travaux", "label": "Le plan"}, {"url": "https://autre.example.fr/"}]
    rendered = channel.render(publication(links=links))

    sent = channel.send(rendered, delivery_id="pub_01JFACEBOOK-facebook")

    assert (sent.external_id, sent.url) == (f"{PAGE}_901", f"https://www.facebook.com/{PAGE}_901")
    request = feed.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(request) == {
        "message": "Travaux\n\nLa rue de l'Église est fermée lundi.\n\nLe plan : https://mairie.example.fr/travaux"
        "\nhttps://autre.example.fr/",
        "link": "https://mairie.example.fr/travaux",
    }
    assert "#" not in form(request)["message"]  # no hashtag on Facebook
    lookup = nothing_posted_yet.calls.last.request
    assert dict(lookup.url.params) == {"fields": "id,message,created_time", "since": SINCE, "limit": "100"}
    assert rendered.length == len(rendered.text or "")
    assert rendered.limit == MAX_MESSAGE_LENGTH
    assert rendered.warnings == []
    assert rendered.media == []


def test_a_text_without_links_has_no_link(graph: respx.MockRouter, nothing_posted_yet: respx.Route) -> None:
    feed = graph.post(f"{GRAPH}/{PAGE}/feed").respond(json={"id": f"{PAGE}_902"})
    channel = facebook()

    channel.send(channel.render(publication()), delivery_id="d")

    assert set(form(feed.calls.last.request)) == {"message"}


def test_one_image_is_a_photo_post_that_facebook_fetches(
    graph: respx.MockRouter, nothing_posted_yet: respx.Route
) -> None:
    image = graph.get(f"{IMAGES}/place.jpg").respond(content=jpeg())
    photos = graph.post(f"{GRAPH}/{PAGE}/photos").respond(json={"id": "5501", "post_id": f"{PAGE}_903"})
    channel = facebook()
    rendered = channel.render(
        publication(
            media=[{"url": f"{IMAGES}/place.jpg", "alt": "La place de la mairie sous la neige"}],
            links=[{"url": "https://mairie.example.fr/neige"}],
        )
    )

    sent = channel.send(rendered, delivery_id="d")

    assert sent.external_id == f"{PAGE}_903"
    assert form(photos.calls.last.request) == {
        "url": f"{IMAGES}/place.jpg",
        "caption": rendered.text,
        "alt_text_custom": "La place de la mairie sous la neige",
        "published": "true",
    }
    assert image.call_count == 1  # render checked the image once; Facebook fetches it by itself
    assert [(m.kept, m.reason) for m in rendered.media] == [(True, None)]
    assert rendered.warnings == [LINK_CARD_WARNING]
    assert rendered.payload["link"] is None


def test_several_images_are_unpublished_photos_attached_to_one_post(
    graph: respx.MockRouter, nothing_posted_yet: respx.Route
) -> None:
    graph.get(f"{IMAGES}/a.jpg").respond(content=jpeg())
    graph.get(f"{IMAGES}/b.png").respond(content=png())
    photos = graph.post(f"{GRAPH}/{PAGE}/photos").mock(
        side_effect=[httpx.Response(200, json={"id": "7001"}), httpx.Response(200, json={"id": "7002"})]
    )
    feed = graph.post(f"{GRAPH}/{PAGE}/feed").respond(json={"id": f"{PAGE}_904"})
    channel = facebook()
    media = [{"url": f"{IMAGES}/a.jpg", "alt": "Le chantier"}, {"url": f"{IMAGES}/b.png", "alt": "La déviation"}]

    sent = channel.send(channel.render(publication(media=media)), delivery_id="d")

    assert sent.external_id == f"{PAGE}_904"
    assert [form(call.request) for call in photos.calls] == [
        {"url": f"{IMAGES}/a.jpg", "alt_text_custom": "Le chantier", "published": "false"},
        {"url": f"{IMAGES}/b.png", "alt_text_custom": "La déviation", "published": "false"},
    ]
    posted = form(feed.calls.last.request)
    assert posted["attached_media[0]"] == '{"media_fbid": "7001"}'
    assert posted["attached_media[1]"] == '{"media_fbid": "7002"}'
    assert set(posted) == {"message", "attached_media[0]", "attached_media[1]"}


@pytest.mark.parametrize(
    ("content", "kept", "reason"),
    [
        (jpeg, True, None),
        (png, True, None),
        (still_gif, True, None),
        (webp, False, "format WEBP : Facebook n'accepte que les images JPEG, PNG ou GIF"),
        (big_png, False, "Mo : Facebook accepte au plus 4 Mo par image"),
        (animated_gif, False, "GIF animé"),
        (lambda: b"Bonjour, ceci n'est pas une image.", False, "ni une image"),
    ],
)
def test_images_are_kept_or_dropped_with_a_reason(
    graph: respx.MockRouter, content: Any, kept: bool, reason: str | None
) -> None:
    graph.get(f"{IMAGES}/m").respond(content=content())

    [decision] = facebook().render(publication(media=[{"url": f"{IMAGES}/m", "alt": "Une image"}])).media

    assert decision.kept is kept
    if reason is None:
        assert decision.reason is None
    else:
        assert reason in (decision.reason or "")


def test_a_video_is_dropped_without_being_downloaded(graph: respx.MockRouter) -> None:
    video = graph.get(f"{IMAGES}/film.mp4").respond(content=b"\x00\x00\x00\x18ftypmp42")

    rendered = facebook().render(publication(media=[{"url": f"{IMAGES}/film.mp4", "alt": "Le film", "kind": "video"}]))

    assert [(m.kept, m.reason) for m in rendered.media] == [
        (False, "Crieur ne publie pas encore de vidéos sur Facebook : la vidéo n'est pas jointe.")
    ]
    assert rendered.payload["photos"] == []
    assert not video.called


def test_an_image_host_that_is_down_is_transient(graph: respx.MockRouter) -> None:
    graph.get(f"{IMAGES}/m.jpg").respond(503)

    with pytest.raises(TransientChannelError) as raised:
        facebook().render(publication(media=[{"url": f"{IMAGES}/m.jpg", "alt": "Une image"}]))

    assert raised.value.code == "media_unavailable"
    assert "erreur 503" in raised.value.message


# ------------------------------------------------------------------------------------------- errors


def post_text() -> RenderedPost:
    return facebook().render(publication())


@pytest.mark.parametrize(
    ("response", "error", "code"),
    [
        (graph_error(190, "Error validating access token: Session has expired", subcode=463), "P", "needs_reconnect"),
        (graph_error(190, "Error validating access token: password changed", subcode=460), "P", "needs_reconnect"),
        (graph_error(190, "Error validating access token: logged out", subcode=467), "P", "needs_reconnect"),
        (graph_error(190, "Invalid OAuth access token - Cannot parse access token"), "P", "needs_reconnect"),
        (graph_error(10, "(#10) Permission denied", status=403), "P", "permission_denied"),
        (graph_error(200, "(#200) requires pages_manage_posts", status=403), "P", "permission_denied"),
        (graph_error(299, "(#299) Permission", status=403), "P", "permission_denied"),
        (graph_error(1, "An unknown error occurred", status=500), "T", "provider_unavailable"),
        (graph_error(2, "Service temporarily unavailable", status=503), "T", "provider_unavailable"),
        (graph_error(2, "An unexpected error has occurred", status=400), "T", "provider_unavailable"),
        (graph_error(368, "The action attempted has been deemed abusive"), "P", "policy_blocked"),
        (graph_error(100, "(#100) Invalid parameter"), "P", "rejected"),
        (graph_error(324, "(#324) Missing or invalid image file"), "P", "media_rejected"),
        (httpx.Response(502, text="<html>Bad gateway</html>"), "T", "provider_unavailable"),
    ],
)
def test_graph_errors_are_classified_on_their_code(
    graph: respx.MockRouter, nothing_posted_yet: respx.Route, response: httpx.Response, error: str, code: str
) -> None:
    feed = graph.post(f"{GRAPH}/{PAGE}/feed").mock(return_value=response)

    with pytest.raises(PermanentChannelError if error == "P" else TransientChannelError) as raised:
        facebook().send(post_text(), delivery_id="d")

    assert raised.value.code == code
    assert raised.value.http_status == response.status_code
    assert feed.call_count == 1
    if code == "needs_reconnect":
        assert raised.value.message == RECONNECT
        assert (raised.value.provider_message or "").startswith("Graph #190")
    if code == "permission_denied":
        assert raised.value.message == PERMISSION
        assert raised.value.message.startswith("Crieur n'a pas le droit de publier sur cette page : ")
    if code == "rejected":
        assert raised.value.message == "Facebook a refusé la publication (erreur #100) : (#100) Invalid parameter"
    if code == "policy_blocked":
        assert "règles" in raised.value.message


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001, 80014])
def test_throttling_waits_as_long_as_the_business_use_case_usage_says(
    graph: respx.MockRouter, nothing_posted_yet: respx.Route, code: int
) -> None:
    usage = {PAGE: [{"type": "pages", "call_count": 100, "total_time": 30, "estimated_time_to_regain_access": 7}]}
    graph.post(f"{GRAPH}/{PAGE}/feed").mock(
        return_value=graph_error(
            code, "(#32) Page request limit reached", headers={"X-Business-Use-Case-Usage": json.dumps(usage)}
        )
    )

    with pytest.raises(TransientChannelError) as raised:
        facebook().send(post_text(), delivery_id="d")

    assert raised.value.code == "rate_limited"
    assert raised.value.retry_after == 7 * 60
    assert "dans environ 7 min" in raised.value.message


def test_throttling_without_an_estimate_leaves_the_wait_to_the_queue(
    graph: respx.MockRouter, nothing_posted_yet: respx.Route
) -> None:
    usage = {PAGE: [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 0}]}
    graph.post(f"{GRAPH}/{PAGE}/feed").mock(
        return_value=graph_error(80001, "Too many calls", headers={"X-Business-Use-Case-Usage": json.dumps(usage)})
    )

    with pytest.raises(TransientChannelError) as raised:
        facebook().send(post_text(), delivery_id="d")

    assert (raised.value.code, raised.value.retry_after) == ("rate_limited", None)
    assert raised.value.message.endswith("plus tard.")


def test_a_timeout_is_transient(graph: respx.MockRouter, nothing_posted_yet: respx.Route) -> None:
    graph.post(f"{GRAPH}/{PAGE}/feed").mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(TransientChannelError) as raised:
        facebook().send(post_text(), delivery_id="d")

    assert raised.value.code == "timeout"


def test_an_expired_token_is_found_before_anything_is_posted(graph: respx.MockRouter) -> None:
    graph.get(f"{GRAPH}/{PAGE}/published_posts").mock(
        return_value=graph_error(190, "Error validating access token: Session has expired", subcode=463)
    )
    feed = graph.post(f"{GRAPH}/{PAGE}/feed").respond(json={"id": "x"})

    with pytest.raises(PermanentChannelError) as raised:
        facebook().send(post_text(), delivery_id="d")

    assert (raised.value.code, raised.value.message) == ("needs_reconnect", RECONNECT)
    assert not feed.called


def test_a_refused_multi_photo_post_removes_its_unpublished_photos(
    graph: respx.MockRouter, nothing_posted_yet: respx.Route
) -> None:
    graph.get(f"{IMAGES}/a.jpg").respond(content=jpeg())
    graph.get(f"{IMAGES}/b.jpg").respond(content=jpeg())
    graph.post(f"{GRAPH}/{PAGE}/photos").mock(
        side_effect=[httpx.Response(200, json={"id": "7101"}), httpx.Response(200, json={"id": "7102"})]
    )
    graph.post(f"{GRAPH}/{PAGE}/feed").mock(return_value=graph_error(100, "(#100) Invalid parameter"))
    removed = graph.delete(url__regex=rf"{GRAPH}/71\d\d$").respond(json={"success": True})
    channel = facebook()
    media = [{"url": f"{IMAGES}/a.jpg", "alt": "A"}, {"url": f"{IMAGES}/b.jpg", "alt": "B"}]

    with pytest.raises(PermanentChannelError):
        channel.send(channel.render(publication(media=media)), delivery_id="d")

    assert [call.request.url.path for call in removed.calls] == [
        f"/{GRAPH_API_VERSION}/7101",
        f"/{GRAPH_API_VERSION}/7102",
    ]


# ------------------------------------------------------------------------------------------- idempotency


@dataclass
class FakePage:
    """A Page that keeps what /feed created, even when the answer never reached Crieur."""

    posts: list[dict[str, Any]] = field(default_factory=list)
    lose_answers: int = 0

    def lookup(self, request: httpx.Request) -> httpx.Response:
        since = int(request.url.params["since"])
        recent = [post for post in reversed(self.posts) if post["at"] >= since]
        return httpx.Response(200, json={"data": [{"id": p["id"], "message": p["message"]} for p in recent]})

    def feed(self, request: httpx.Request) -> httpx.Response:
        post = {"id": f"{PAGE}_{len(self.posts) + 1}", "message": form(request)["message"], "at": time.time()}
        self.posts.append(post)
        if self.lose_answers:
            self.lose_answers -= 1
            raise httpx.ReadTimeout("the answer was lost")
        return httpx.Response(200, json={"id": post["id"]})


def test_a_retry_after_a_lost_answer_finds_the_post_instead_of_posting_again(graph: respx.MockRouter) -> None:
    page = FakePage(lose_answers=1)
    graph.get(f"{GRAPH}/{PAGE}/published_posts").mock(side_effect=page.lookup)
    feed = graph.post(f"{GRAPH}/{PAGE}/feed").mock(side_effect=page.feed)
    channel = facebook()
    rendered = channel.render(publication(created_at=datetime.now(UTC)))

    with pytest.raises(TransientChannelError):
        channel.send(rendered, delivery_id="pub_01JFACEBOOK-facebook")
    retried = channel.send(rendered, delivery_id="pub_01JFACEBOOK-facebook")
    again = channel.send(rendered, delivery_id="pub_01JFACEBOOK-facebook")

    assert feed.call_count == 1
    assert retried.external_id == again.external_id == f"{PAGE}_1"
    assert len(page.posts) == 1


def test_the_lookup_ignores_other_texts_and_compares_whitespace_loosely(graph: respx.MockRouter) -> None:
    lookup = graph.get(f"{GRAPH}/{PAGE}/published_posts")
    feed = graph.post(f"{GRAPH}/{PAGE}/feed").respond(json={"id": f"{PAGE}_2"})
    channel = facebook()
    rendered = channel.render(publication())
    text = rendered.text or ""

    lookup.respond(json={"data": [{"id": f"{PAGE}_1", "message": text + " (modifié)"}]})
    assert channel.send(rendered, delivery_id="d").external_id == f"{PAGE}_2"
    lookup.respond(json={"data": [{"id": f"{PAGE}_1", "message": text.replace("\n\n", "\r\n\r\n") + " "}]})
    assert channel.send(rendered, delivery_id="d").external_id == f"{PAGE}_1"
    assert feed.call_count == 1


def test_a_duplicate_506_is_the_post_an_earlier_attempt_made(graph: respx.MockRouter) -> None:
    channel = facebook()
    rendered = channel.render(publication())
    graph.get(f"{GRAPH}/{PAGE}/published_posts").mock(
        side_effect=[
            httpx.Response(200, json={"data": []}),
            httpx.Response(200, json={"data": [{"id": f"{PAGE}_77", "message": rendered.text}]}),
        ]
    )
    graph.post(f"{GRAPH}/{PAGE}/feed").mock(return_value=graph_error(506, "(#506) Duplicate status message"))

    assert channel.send(rendered, delivery_id="d").external_id == f"{PAGE}_77"


def test_a_duplicate_of_an_older_post_asks_for_another_text(
    graph: respx.MockRouter, nothing_posted_yet: respx.Route
) -> None:
    graph.post(f"{GRAPH}/{PAGE}/feed").mock(return_value=graph_error(506, "(#506) Duplicate status message"))

    with pytest.raises(PermanentChannelError) as raised:
        facebook().send(post_text(), delivery_id="d")

    assert raised.value.code == "duplicate"
    assert "Modifiez-le pour le republier" in raised.value.message
    assert nothing_posted_yet.call_count == 2


def test_find_sent_reads_the_pages_of_posts_since_the_publication(graph: respx.MockRouter) -> None:
    channel = facebook()
    rendered = channel.render(publication())
    others = [{"id": f"{PAGE}_{n}", "message": f"Avis {n}"} for n in range(100)]
    lookup = graph.get(f"{GRAPH}/{PAGE}/published_posts").mock(
        side_effect=[
            httpx.Response(200, json={"data": others, "paging": {"cursors": {"after": "QVFI"}, "next": "https://…"}}),
            httpx.Response(200, json={"data": [{"id": f"{PAGE}_9", "message": rendered.text}]}),
        ]
    )

    sent = channel.find_sent(rendered, delivery_id="d")

    assert sent is not None
    assert (sent.external_id, sent.url) == (f"{PAGE}_9", f"https://www.facebook.com/{PAGE}_9")
    first, second = (call.request.url.params for call in lookup.calls)
    assert (first["since"], first["limit"]) == (SINCE, "100")
    assert "after" not in first
    assert second["after"] == "QVFI"


def test_find_sent_stops_at_the_last_page_or_after_three(graph: respx.MockRouter) -> None:
    channel = facebook()
    rendered = channel.render(publication())
    more = {"data": [{"id": f"{PAGE}_1", "message": "Autre"}], "paging": {"cursors": {"after": "x"}, "next": "…"}}
    lookup = graph.get(f"{GRAPH}/{PAGE}/published_posts").respond(json=more)
    assert channel.find_sent(rendered, delivery_id="d") is None
    assert lookup.call_count == 3
    last = {"data": [{"id": f"{PAGE}_1", "message": "Autre"}], "paging": {"cursors": {"after": "x"}}}
    lookup.respond(json=last)
    assert channel.find_sent(rendered, delivery_id="d") is None
    assert lookup.call_count == 4


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (graph_error(2, "Service temporarily unavailable", status=503), "provider_unavailable"),
        (graph_error(32, "Page request limit reached"), "rate_limited"),
        (graph_error(190, "Error validating access token", subcode=463), "lookup_failed"),
        (graph_error(10, "(#10) Permission denied", status=403), "lookup_failed"),
    ],
)
def test_find_sent_never_takes_a_failed_lookup_for_an_answer(
    graph: respx.MockRouter, response: httpx.Response, code: str
) -> None:
    graph.get(f"{GRAPH}/{PAGE}/published_posts").mock(return_value=response)

    with pytest.raises(TransientChannelError) as raised:
        facebook().find_sent(post_text(), delivery_id="d")

    assert raised.value.code == code


def test_a_duplicate_whose_lookup_fails_waits_instead_of_failing(graph: respx.MockRouter) -> None:
    graph.get(f"{GRAPH}/{PAGE}/published_posts").mock(
        side_effect=[httpx.Response(200, json={"data": []}), graph_error(2, "Service unavailable", status=503)]
    )
    graph.post(f"{GRAPH}/{PAGE}/feed").mock(return_value=graph_error(506, "(#506) Duplicate status message"))

    with pytest.raises(TransientChannelError):
        facebook().send(post_text(), delivery_id="d")


# ------------------------------------------------------------------------------------------- lengths


TRICKY = [
    "Fête de la Saint-Jean à l'étang : buvette, crêpes et feu d'artifice. ",
    "🎉🎆 Bal populaire 👨‍👩‍👧 ce soir ! ",
    "Voir https://mairie.example.fr/agenda?date=2026-06-21&lieu=étang. (plan) ",
    "Re\u0301union publique a\u0300 la salle des fe\u0302tes. ",  # decomposed accents, composed by NFC
    "« Entrée libre », dit le maire\u202f; venez nombreux\u00a0! ",
]


def test_texts_near_the_limit_are_cut_and_keep_title_and_links() -> None:
    channel = facebook()
    base = publication(links=[{"url": "https://mairie.example.fr/agenda/(2026)/fête."}])
    link = str(base.links[0].url)  # as pydantic keeps it: percent-encoded
    for chunk in TRICKY:
        for size in (MAX_MESSAGE_LENGTH - 200, MAX_MESSAGE_LENGTH - 60, MAX_MESSAGE_LENGTH, MAX_MESSAGE_LENGTH + 7):
            body = (chunk * (size // len(chunk) + 1))[:size]
            # The API caps a body at 10,000 characters; an unchecked copy shows what the limit would do.
            pub = base.model_copy(update={"body": body})

            rendered = channel.render(pub)
            text = rendered.text or ""

            assert rendered.length == len(text) <= MAX_MESSAGE_LENGTH, (chunk, size)
            assert text.startswith("Travaux\n\n")
            assert text.endswith(f"\n\n{link}")
            assert text == unicodedata.normalize("NFC", text)
            head = text.removesuffix(f"\n\n{link}")
            if len("Travaux\n\n" + unicodedata.normalize("NFC", body) + f"\n\n{link}") <= MAX_MESSAGE_LENGTH:
                assert head == "Travaux\n\n" + unicodedata.normalize("NFC", body)
            else:
                assert head.endswith("…")
                assert len(text) > MAX_MESSAGE_LENGTH - 40  # cut at a word boundary close to the limit


def test_lengths_are_counted_in_code_points() -> None:
    channel = facebook()
    for text, length in [("é", 1), ("e\u0301", 2), ("🎉", 1), ("👨‍👩‍👧", 5), ("https://a.example/" + "x" * 100, 118)]:
        assert channel.measure(text) == length
    assert channel.max_length() == MAX_MESSAGE_LENGTH
    assert channel.override_problem("é" * 10_000) is None


def test_an_override_is_posted_as_written() -> None:
    override = "Fe\u0302te ce soir 🎉 https://mairie.example.fr/fête."
    rendered = facebook().render(publication(overrides={"facebook": {"text": override}}))

    assert rendered.text == unicodedata.normalize("NFC", override)
    assert rendered.payload["message"] == rendered.text


# ------------------------------------------------------------------------------------------- delete, check, settings


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json={"success": True}),
        httpx.Response(404, json={"error": {"message": "Not found", "code": 803}}),
        graph_error(100, "Unsupported delete request. Object with ID 'x' does not exist", subcode=33),
    ],
)
def test_delete_succeeds_when_the_post_is_gone(graph: respx.MockRouter, response: httpx.Response) -> None:
    route = graph.delete(f"{GRAPH}/{PAGE}_903").mock(return_value=response)

    facebook().delete(f"{PAGE}_903")

    assert route.call_count == 1
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_delete_with_an_expired_token_needs_reconnection(graph: respx.MockRouter) -> None:
    graph.delete(f"{GRAPH}/{PAGE}_903").mock(return_value=graph_error(190, "expired", subcode=463))

    with pytest.raises(PermanentChannelError) as raised:
        facebook().delete(f"{PAGE}_903")

    assert raised.value.code == "needs_reconnect"


def test_check_names_the_page(graph: respx.MockRouter, nothing_posted_yet: respx.Route) -> None:
    me = graph.get(f"{GRAPH}/me").respond(json={"id": PAGE, "name": "Mairie de Rennes"})

    result = facebook().check()

    assert (result.ok, result.account) == (True, "Mairie de Rennes")
    assert "« Mairie de Rennes »" in result.message
    assert dict(me.calls.last.request.url.params) == {"fields": "id,name"}
    assert dict(nothing_posted_yet.calls.last.request.url.params) == {"fields": "id", "limit": "1"}


def test_check_refuses_a_token_of_another_page(graph: respx.MockRouter) -> None:
    graph.get(f"{GRAPH}/me").respond(json={"id": "999", "name": "Jean Dupont"})

    with pytest.raises(PermanentChannelError) as raised:
        facebook().check()

    assert raised.value.code == "wrong_page"
    assert "« Jean Dupont » (identifiant 999), pas la page 104839201234567" in raised.value.message


def test_check_with_an_expired_token_raises_needs_reconnect(graph: respx.MockRouter) -> None:
    graph.get(f"{GRAPH}/me").mock(return_value=graph_error(190, "expired", subcode=463))

    with pytest.raises(PermanentChannelError) as raised:
        facebook().check()

    assert (raised.value.code, raised.value.message) == ("needs_reconnect", RECONNECT)


def test_the_provider_host_can_be_overridden(graph: respx.MockRouter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRIEUR_FACEBOOK_BASE_URL", "https://graph.test/facebook/")
    me = graph.get(f"https://graph.test/facebook/{GRAPH_API_VERSION}/me").respond(json={"id": PAGE, "name": "P"})
    graph.get(f"https://graph.test/facebook/{GRAPH_API_VERSION}/{PAGE}/published_posts").respond(json={"data": []})

    assert facebook().check().ok
    assert me.called


@pytest.mark.parametrize(
    ("model", "value"),
    [
        (FacebookSettings, {"page_id": "ma-page"}),
        (FacebookSettings, {"page_id": "١٢٣"}),  # digits, but not ASCII ones
        (FacebookSettings, {"page_id": PAGE, "version": "v19.0"}),
        (FacebookCredentials, {"page_access_token": "   "}),
        (FacebookCredentials, {"page_access_token": "EAA abc"}),
        (FacebookCredentials, {"page_access_token": TOKEN, "app_secret": "x"}),
    ],
)
def test_settings_and_credentials_are_checked(model: Any, value: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="validation error"):
        model.model_validate(value)


def test_settings_are_trimmed() -> None:
    assert FacebookSettings.model_validate({"page_id": f" {PAGE} "}).page_id == PAGE
    assert FacebookCredentials.model_validate({"page_access_token": f" {TOKEN}\n"}).page_access_token == TOKEN


# ------------------------------------------------------------------------------------------- the imitation


def _self_signed(directory: Path) -> tuple[Path, Path, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path, pem.decode()


@dataclass
class ImageServer:
    """Real images over loopback HTTPS, as a commune's website would serve them."""

    base: str
    trust: ssl.SSLContext
    hits: dict[str, int]

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageServer]:
    files = {
        "/place.jpg": (jpeg(), "image/jpeg"),
        "/plan.png": (png(), "image/png"),
        "/big.png": (big_png(), "image/png"),
        "/notes.txt": (b"pas une image", "text/plain"),
    }
    hits: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[self.path] = hits.get(self.path, 0) + 1
            content, kind = files.get(self.path, (b"", "text/plain"))
            self.send_response(200 if self.path in files else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, *_: Any) -> None:
            pass

    cert, key, pem = _self_signed(tmp_path_factory.mktemp("tls"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield ImageServer(f"https://127.0.0.1:{server.server_address[1]}", ssl.create_default_context(cadata=pem), hits)
    server.shutdown()
    server.server_close()


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    # Until the lead registers the imitation (and its fault channel), the test plugs it in itself.
    monkeypatch.setattr(infra.local.imitations, "IMITATIONS", [FacebookImitation])
    monkeypatch.setattr(infra.local.sandbox, "CHANNELS", (*infra.local.sandbox.CHANNELS, "facebook"))
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    box = Sandbox(port=0)
    box.start()
    monkeypatch.setenv("CRIEUR_FACEBOOK_BASE_URL", f"{box.url}/facebook")
    yield box
    box.stop()


@pytest.fixture
def imitation(sandbox: Sandbox) -> FacebookImitation:
    return cast(FacebookImitation, sandbox.imitations["/facebook"])


@pytest.fixture
def client(images: ImageServer) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, verify=images.trust) as http_client:
        yield http_client


def sandbox_facebook(client: httpx.Client, token: str = DEMO_TOKEN) -> FacebookChannel:
    return facebook(client, page=PAGE_ID, token=token)


def fresh(body: str = "La rue de la Mairie est fermée mardi.", **extra: Any) -> Publication:
    return publication(body, created_at=datetime.now(UTC), **extra)


def created(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [item for item in sandbox.received("facebook") if item["status"] == 200]


def test_a_text_post_reaches_the_page_with_its_link_card(
    sandbox: Sandbox, imitation: FacebookImitation, client: httpx.Client
) -> None:
    channel = sandbox_facebook(client)
    pub = fresh("Déviation <par> la rue « des Écoles ».", links=[{"url": "https://mairie.example.fr/deviation"}])

    sent = channel.send(channel.render(pub), delivery_id="pub-facebook")

    [item] = sandbox.received("facebook")
    assert (item["method"], item["path"], item["status"]) == ("POST", f"/facebook/v25.0/{PAGE_ID}/feed", 200)
    assert item["id"] == sent.external_id
    assert sent.external_id.startswith(f"{PAGE_ID}_")
    assert item["headers"]["authorization"] == "Bearer [redacted]"
    post = client.get(
        f"{sandbox.url}/facebook/v25.0/{sent.external_id}",
        params={"fields": "message,link,from"},
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
    )
    assert (
        post.json()["message"]
        == "Travaux\n\nDéviation <par> la rue « des Écoles ».\n\nhttps://mairie.example.fr/deviation"
    )
    assert post.json()["from"] == {"name": PAGE_NAME, "id": PAGE_ID}
    assert post.headers["facebook-api-version"] == "v25.0"
    assert PAGE_ID in json.loads(post.headers["x-business-use-case-usage"])
    section = imitation.page_section()
    assert f'<strong id="fb-{sent.external_id}">{PAGE_NAME}</strong>' in section
    assert "Déviation &lt;par&gt; la rue « des Écoles »." in section
    assert "MAIRIE.EXAMPLE.FR" in section
    assert "<par>" not in section
    assert "Facebook" in sandbox.page()


def test_photos_are_fetched_by_the_imitation_and_shown_with_their_alt_text(
    sandbox: Sandbox, imitation: FacebookImitation, client: httpx.Client, images: ImageServer
) -> None:
    channel = sandbox_facebook(client)
    before = images.hits.get("/place.jpg", 0)
    rendered = channel.render(fresh(media=[{"url": images.url("place.jpg"), "alt": 'La place "en fête"'}]))

    sent = channel.send(rendered, delivery_id="pub-facebook")

    assert images.hits["/place.jpg"] == before + 2  # Crieur checked it, then "Facebook" fetched it
    [post] = imitation.posts()
    assert post["id"] == sent.external_id
    assert post["photos"][0]["alt"] == 'La place "en fête"'
    [photo_id] = [photo["id"] for photo in post["photos"]]
    photo = client.get(
        f"{sandbox.url}/facebook/v25.0/{photo_id}",
        params={"fields": "alt_text_custom,images,page_story_id"},
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
    ).json()
    assert photo["alt_text_custom"] == 'La place "en fête"'
    assert photo["page_story_id"] == sent.external_id
    assert (photo["images"][0]["width"], photo["images"][0]["height"]) == (640, 480)
    assert client.get(photo["images"][0]["source"]).content == jpeg()
    assert 'alt="La place &quot;en fête&quot;"' in imitation.page_section()


def test_several_photos_make_one_post_and_none_stays_unpublished(
    sandbox: Sandbox, imitation: FacebookImitation, client: httpx.Client, images: ImageServer
) -> None:
    channel = sandbox_facebook(client)
    media = [{"url": images.url("place.jpg"), "alt": "La place"}, {"url": images.url("plan.png"), "alt": "Le plan"}]

    sent = channel.send(channel.render(fresh(media=media)), delivery_id="pub-facebook")

    [post] = imitation.posts()
    assert post["id"] == sent.external_id
    assert [photo["alt"] for photo in post["photos"]] == ["La place", "Le plan"]
    assert imitation.unpublished_photos() == []
    assert [item["path"].rsplit("/", 1)[1] for item in created(sandbox)] == ["photos", "photos", "feed"]
    assert imitation.page_section().count("<img ") == 2


def test_the_imitation_refuses_what_facebook_refuses(
    sandbox: Sandbox, imitation: FacebookImitation, client: httpx.Client, images: ImageServer
) -> None:
    graph_url = f"{sandbox.url}/facebook/v25.0"
    auth = {"Authorization": f"Bearer {DEMO_TOKEN}"}

    def error(response: httpx.Response) -> tuple[int, int, int | None]:
        body = response.json()["error"]
        assert body["type"] == "OAuthException"
        assert body["fbtrace_id"]
        return response.status_code, body["code"], body.get("error_subcode")

    longest = client.post(f"{graph_url}/{PAGE_ID}/feed", data={"message": "a" * MAX_MESSAGE_LENGTH}, headers=auth)
    assert longest.status_code == 200, longest.text
    assert error(client.post(f"{graph_url}/{PAGE_ID}/feed", data={"message": "b" * 63207}, headers=auth))[1] == 100
    assert error(client.post(f"{graph_url}/{PAGE_ID}/feed", data={"message": " "}, headers=auth)) == (400, 100, None)
    assert error(client.post(f"{graph_url}/{PAGE_ID}/feed", data={"message": "x"})) == (400, 104, None)
    assert error(client.get(f"{graph_url}/me")) == (400, 2500, None)
    assert error(client.get(f"{graph_url}/me", headers={"Authorization": "Bearer nope"})) == (400, 190, None)
    assert error(client.post(f"{graph_url}/999/feed", data={"message": "x"}, headers=auth)) == (400, 100, 33)
    not_attachable = {"message": "x", "attached_media[0]": '{"media_fbid": "12345"}'}
    assert error(client.post(f"{graph_url}/{PAGE_ID}/feed", data=not_attachable, headers=auth))[1] == 100
    not_image = {"url": images.url("notes.txt"), "published": "false"}
    assert error(client.post(f"{graph_url}/{PAGE_ID}/photos", data=not_image, headers=auth)) == (400, 324, None)
    too_big = {"url": images.url("big.png"), "published": "false"}
    assert error(client.post(f"{graph_url}/{PAGE_ID}/photos", data=too_big, headers=auth)) == (400, 100, 1366046)
    assert error(client.post(f"{graph_url}/{PAGE_ID}/photos", data={"caption": "x"}, headers=auth))[1] == 324
    assert error(client.get(f"{graph_url}/{PAGE_ID}", params={"fields": "secret"}, headers=auth))[1] == 100
    query_token = client.get(f"{graph_url}/me", params={"access_token": DEMO_TOKEN, "fields": "id,name"})
    assert query_token.json() == {"id": PAGE_ID, "name": PAGE_NAME}
    assert len(imitation.posts()) == 1
    assert imitation.unpublished_photos() == []


def test_an_expired_token_asks_to_reconnect_and_posts_nothing(
    imitation: FacebookImitation, client: httpx.Client
) -> None:
    imitation.expire_token(DEMO_TOKEN)
    channel = sandbox_facebook(client)

    with pytest.raises(PermanentChannelError) as sending:
        channel.send(channel.render(fresh()), delivery_id="pub-facebook")
    with pytest.raises(PermanentChannelError) as checking:
        channel.check()

    assert (sending.value.code, sending.value.message) == ("needs_reconnect", RECONNECT)
    assert "Session has expired" in (sending.value.provider_message or "")
    assert checking.value.code == "needs_reconnect"
    assert imitation.posts() == []


def test_a_token_that_may_only_read_is_refused_with_the_permission_to_grant(
    imitation: FacebookImitation, client: httpx.Client
) -> None:
    imitation.register_token("EAAlectureseule", permissions=frozenset({"pages_read_engagement", "pages_show_list"}))
    channel = sandbox_facebook(client, token="EAAlectureseule")

    assert channel.check().ok  # reading works: publishing is only proven by publishing
    with pytest.raises(PermanentChannelError) as raised:
        channel.send(channel.render(fresh()), delivery_id="pub-facebook")

    assert (raised.value.code, raised.value.message) == ("permission_denied", PERMISSION)
    assert raised.value.http_status == 403
    assert imitation.posts() == []


def test_faults_answer_graph_errors_and_create_nothing(
    sandbox: Sandbox, imitation: FacebookImitation, client: httpx.Client
) -> None:
    channel = sandbox_facebook(client)
    rendered = channel.render(fresh())
    sandbox.inject_fault("facebook", status=503)
    sandbox.inject_fault("facebook", status=429, retry_after=120)

    with pytest.raises(TransientChannelError) as unavailable:
        channel.send(rendered, delivery_id="pub-facebook")
    with pytest.raises(TransientChannelError) as throttled:
        channel.send(rendered, delivery_id="pub-facebook")
    sent = channel.send(rendered, delivery_id="pub-facebook")

    assert unavailable.value.code == "provider_unavailable"
    assert (throttled.value.code, throttled.value.retry_after) == ("rate_limited", 120)
    assert [item["status"] for item in sandbox.received("facebook")] == [503, 400, 200]
    assert [post["id"] for post in imitation.posts()] == [sent.external_id]


def test_a_slow_facebook_gets_one_post_however_often_crieur_retries(
    sandbox: Sandbox, imitation: FacebookImitation, images: ImageServer
) -> None:
    sandbox.inject_fault("facebook", delay_seconds=1.0)
    with httpx.Client(timeout=0.4, verify=images.trust) as impatient:
        channel = sandbox_facebook(impatient)
        rendered = channel.render(fresh())

        with pytest.raises(TransientChannelError) as raised:
            channel.send(rendered, delivery_id="pub-facebook")
        deadline = time.monotonic() + 5
        while not imitation.posts() and time.monotonic() < deadline:
            time.sleep(0.05)
        retried = channel.send(rendered, delivery_id="pub-facebook")

    assert raised.value.code == "timeout"
    [post] = imitation.posts()
    assert retried.external_id == post["id"]
    assert len(created(sandbox)) == 1


def test_find_sent_finds_a_timed_out_post_among_many_newer_ones(
    sandbox: Sandbox, imitation: FacebookImitation, images: ImageServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(facebook_module, "LOOKUP_LIMIT", 2)
    sandbox.inject_fault("facebook", delay_seconds=1.0)
    rendered = sandbox_facebook(httpx.Client(verify=images.trust)).render(fresh())
    with httpx.Client(timeout=0.4, verify=images.trust) as impatient, pytest.raises(TransientChannelError):
        sandbox_facebook(impatient).send(rendered, delivery_id="pub-facebook")
    deadline = time.monotonic() + 5
    while not imitation.posts() and time.monotonic() < deadline:
        time.sleep(0.05)
    with httpx.Client(verify=images.trust) as patient:
        channel = sandbox_facebook(patient)
        for number in range(4):  # the Page posts on: the lost post is on the third page of two
            channel.send(channel.render(fresh(f"Avis numéro {number}.")), delivery_id=f"pub-{number}-facebook")

        found = channel.find_sent(rendered, delivery_id="pub-facebook")
        other = channel.find_sent(channel.render(fresh("Jamais publié.")), delivery_id="pub-x-facebook")

    lost = next(post for post in imitation.posts() if "mardi" in str(post.get("message")))
    assert found is not None
    assert found.external_id == lost["id"]
    assert other is None


def test_the_same_text_in_a_later_publication_is_refused_as_a_duplicate(
    imitation: FacebookImitation, client: httpx.Client
) -> None:
    channel = sandbox_facebook(client)
    channel.send(channel.render(fresh()), delivery_id="pub-1-facebook")
    later = publication("La rue de la Mairie est fermée mardi.", created_at=datetime.now(UTC) + timedelta(minutes=5))

    with pytest.raises(PermanentChannelError) as raised:
        channel.send(channel.render(later), delivery_id="pub-2-facebook")

    assert raised.value.code == "duplicate"
    assert "#506" in (raised.value.provider_message or "")
    assert len(imitation.posts()) == 1


def test_a_retracted_post_disappears_and_retracting_again_is_fine(
    sandbox: Sandbox, imitation: FacebookImitation, client: httpx.Client
) -> None:
    channel = sandbox_facebook(client)
    sent = channel.send(channel.render(fresh()), delivery_id="pub-facebook")

    channel.delete(sent.external_id)
    channel.delete(sent.external_id)

    assert [post["deleted"] for post in imitation.posts()] == [True]
    assert [item["status"] for item in sandbox.received("facebook")] == [200, 200, 400]
    assert "1 supprimée(s)" in imitation.page_section()


def test_check_against_the_imitation(imitation: FacebookImitation, client: httpx.Client) -> None:
    imitation.register_token("EAAautrepage", page_id="555000111222333", page_name="Comité des fêtes")

    result = sandbox_facebook(client).check()
    with pytest.raises(PermanentChannelError) as other:
        sandbox_facebook(client, token="EAAautrepage").check()

    assert (result.ok, result.account) == (True, PAGE_NAME)
    assert other.value.code == "wrong_page"
    assert "« Comité des fêtes »" in other.value.message


def test_the_demo_channel_is_one_the_adapter_accepts(imitation: FacebookImitation, client: httpx.Client) -> None:
    body = imitation.demo_channel()
    channel = FacebookChannel(
        FacebookSettings.model_validate(body["settings"]),
        FacebookCredentials.model_validate(body["credentials"]),
        client,
    )

    assert body["enabled"] is True
    assert channel.check().account == PAGE_NAME
    assert FacebookImitation.base_url_variable == "CRIEUR_FACEBOOK_BASE_URL"


def test_clear_forgets_posts_but_keeps_tokens(
    sandbox: Sandbox, imitation: FacebookImitation, client: httpx.Client
) -> None:
    channel = sandbox_facebook(client)
    channel.send(channel.render(fresh()), delivery_id="pub-facebook")

    sandbox.clear()

    assert imitation.posts() == []
    assert "Rien publié pour l'instant." in imitation.page_section()
    assert channel.check().ok
