"""The Instagram adapter: request shapes and error classes against respx stand-ins of the Graph API, then
the adapter against the sandbox's Instagram imitation over loopback HTTP, with real images served over
HTTPS by a loopback server (Instagram fetches each image itself from its URL).
"""

from __future__ import annotations

import datetime as dt
import http.server
import io
import ipaddress
import json
import ssl
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from PIL import Image

import infra.local.imitations
from crieur.channels import instagram
from crieur.channels.base import (
    PermanentChannelError,
    RenderedPost,
    RetractUnsupported,
    SentPost,
    SkipDelivery,
    TransientChannelError,
)
from crieur.channels.instagram import InstagramChannel, InstagramCredentials, InstagramSettings
from crieur.media import MediaFetcher
from crieur.models import Publication
from crieur.outbound import GuardedTransport, guarded_client
from crieur.render.instagram import hashtag_positions
from crieur.render.text import nfc
from infra.local.imitations.instagram import DEMO_TOKEN, DEMO_USER_ID, EXPIRED_TOKEN, InstagramImitation
from infra.local.sandbox import Sandbox

GRAPH = "https://graph.instagram.com/v25.0"
USER = "17841400000000001"
CREATED = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)
PHOTO = "https://mairie.example/photo.jpg"
TOKEN = "tok"


def jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 60, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


SQUARE = jpeg(1080, 1080)
BIG = jpeg(200, 200) + b"\0" * (8 * 1024 * 1024)  # a readable JPEG of 8 MiB and more


def publication(body: str = "La rue de l'Église est fermée lundi.", **extra: Any) -> Publication:
    fields: dict[str, Any] = {
        "title": "Travaux",
        "body": body,
        "id": "pub_01JINSTAGRAM",
        "commune": "35238",
        "status": "publishing",
        "created_at": CREATED,
        "media": [{"url": PHOTO, "alt": "La rue de l'Église barrée"}],
        **extra,
    }
    return Publication.model_validate(fields)


def channel(
    http: httpx.Client | None = None, token: str = TOKEN, media: MediaFetcher | None = None
) -> InstagramChannel:
    return InstagramChannel(
        InstagramSettings(ig_user_id=USER), InstagramCredentials(access_token=token), http or httpx.Client(), media
    )


def graph_error(code: int, subcode: int | None = None, message: str = "Nope", status: int = 400) -> httpx.Response:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "A1"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return httpx.Response(status, json={"error": error})


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRIEUR_INSTAGRAM_BASE_URL", raising=False)
    monkeypatch.setattr(InstagramChannel, "poll_delays", (0.0, 0.0, 0.0))
    instagram._containers.clear()


class Graph:
    """The Graph API as respx routes: containers IN_PROGRESS on their first poll, then FINISHED."""

    def __init__(self, mock: respx.MockRouter) -> None:
        self.mock = mock
        self.polls: dict[str, int] = {}
        self.created: list[dict[str, Any]] = []
        self.published: list[str] = []
        self.posts: list[dict[str, Any]] = []
        self.states: dict[str, list[str]] = {}
        mock.get(PHOTO).respond(200, content=SQUARE)
        self.listing = mock.get(f"{GRAPH}/{USER}/media").mock(side_effect=self._list)
        self.limit = mock.get(f"{GRAPH}/{USER}/content_publishing_limit").respond(
            json={"data": [{"quota_usage": 3, "config": {"quota_total": 50, "quota_duration": 86400}}]}
        )
        self.create = mock.post(f"{GRAPH}/{USER}/media").mock(side_effect=self._create)
        self.status = mock.get(url__regex=rf"^{GRAPH}/c\d+(\?.*)?$").mock(side_effect=self._status)
        self.publish = mock.post(f"{GRAPH}/{USER}/media_publish").mock(side_effect=self._publish)
        self.permalink = mock.get(url__regex=rf"^{GRAPH}/m\d+(\?.*)?$").mock(side_effect=self._permalink)

    def _list(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": self.posts})

    def _create(self, request: httpx.Request) -> httpx.Response:
        self.created.append(json.loads(request.content))
        return httpx.Response(200, json={"id": f"c{len(self.created)}"})

    def _status(self, request: httpx.Request) -> httpx.Response:
        container = request.url.path.rsplit("/", 1)[1]
        scripted = self.states.get(container)
        if scripted:
            state = scripted.pop(0) if len(scripted) > 1 else scripted[0]
        else:
            self.polls[container] = self.polls.get(container, 0) + 1
            state = "PUBLISHED" if container in self.published else "IN_PROGRESS"
            if state == "IN_PROGRESS" and self.polls[container] > 1:
                state = "FINISHED"
        return httpx.Response(200, json={"id": container, "status_code": state})

    def _publish(self, request: httpx.Request) -> httpx.Response:
        container = json.loads(request.content)["creation_id"]
        self.published.append(container)
        media_id = f"m{len(self.published)}"
        caption = next(item.get("caption") for item in reversed(self.created) if "caption" in item)
        self.posts.insert(
            0,
            {
                "id": media_id,
                "caption": caption,
                "permalink": f"https://www.instagram.com/p/{media_id}/",
                "timestamp": "2026-11-27T09:00:05+0000",
            },
        )
        return httpx.Response(200, json={"id": media_id})

    def _permalink(self, request: httpx.Request) -> httpx.Response:
        media_id = request.url.path.rsplit("/", 1)[1]
        return httpx.Response(200, json={"id": media_id, "permalink": f"https://www.instagram.com/p/{media_id}/"})


@pytest.fixture
def graph() -> Iterator[Graph]:
    with respx.mock(assert_all_called=False) as mock:
        yield Graph(mock)


# ------------------------------------------------------------------------------------------- request shapes


def test_a_single_image_goes_through_container_status_and_publish(graph: Graph) -> None:
    ig = channel()
    sent = ig.send(ig.render(publication()), delivery_id="pub_01JINSTAGRAM-instagram")

    assert sent == SentPost(external_id="m1", url="https://www.instagram.com/p/m1/")
    listing = graph.listing.calls[0].request
    assert listing.headers["Authorization"] == "Bearer tok"
    assert listing.url.params["fields"] == "id,caption,permalink,timestamp"
    assert graph.limit.called
    [container] = graph.created
    assert container == {
        "image_url": PHOTO,
        "caption": "Travaux\n\nLa rue de l'Église est fermée lundi.\n\n#actualité",
        "alt_text": "La rue de l'Église barrée",
    }
    assert graph.create.calls[0].request.headers["Authorization"] == "Bearer tok"
    assert graph.polls == {"c1": 2}  # IN_PROGRESS, then FINISHED
    assert graph.status.calls[0].request.url.params["fields"] == "status_code,status"
    assert json.loads(graph.publish.calls[0].request.content) == {"creation_id": "c1"}
    assert graph.permalink.calls[0].request.url.params["fields"] == "permalink"


def test_several_images_make_a_carousel_with_alt_text_on_each(graph: Graph) -> None:
    urls = [f"https://mairie.example/{name}.jpg" for name in ("a", "b", "c")]
    for url in urls:
        graph.mock.get(url).respond(200, content=SQUARE)
    media = [{"url": url, "alt": f"Photo {index}"} for index, url in enumerate(urls, 1)]
    ig = channel()

    sent = ig.send(ig.render(publication(media=media)), delivery_id="d")

    assert sent.external_id == "m1"
    children, parent = graph.created[:3], graph.created[3]
    assert children == [
        {"image_url": url, "is_carousel_item": True, "alt_text": f"Photo {i}"} for i, url in enumerate(urls, 1)
    ]
    assert parent == {"media_type": "CAROUSEL", "children": "c1,c2,c3", "caption": parent["caption"]}
    assert parent["caption"].startswith("Travaux\n\n")
    assert all(graph.polls[child] == 2 for child in ("c1", "c2", "c3"))
    assert json.loads(graph.publish.calls[0].request.content) == {"creation_id": "c4"}


# ------------------------------------------------------------------------------------------- media rules


@pytest.mark.parametrize(
    ("content", "kept", "reason"),
    [
        (jpeg(1080, 1080), True, None),
        (jpeg(1080, 1350), True, None),  # 4:5, the tallest accepted
        (jpeg(1910, 1000), True, None),  # 1.91:1, the widest accepted
        (jpeg(1080, 1351), False, "Proportions 1080×1351 hors des limites d'Instagram"),
        (jpeg(1911, 1000), False, "Proportions 1911×1000"),
        (jpeg(1080, 1920), False, "de 4:5 (portrait) à 1,91:1 (paysage)"),
        (png(800, 800), False, "Format PNG : Instagram n'accepte que le JPEG."),
        (BIG, False, "Image de 8,0 Mo : Instagram en accepte 8 Mo au plus."),
    ],
)
@respx.mock
def test_images_are_kept_or_dropped_as_instagram_would(content: bytes, kept: bool, reason: str | None) -> None:
    respx.get(PHOTO).respond(200, content=content)
    respx.get("https://mairie.example/other.jpg").respond(200, content=SQUARE)
    media = [{"url": PHOTO, "alt": "Testée"}, {"url": "https://mairie.example/other.jpg", "alt": "Sûre"}]

    rendered = channel().render(publication(media=media))

    decision = rendered.media[0]
    assert decision.kept is kept
    assert (decision.reason is None) if reason is None else (reason in str(decision.reason))
    assert [image["url"] for image in rendered.payload["images"]] == [PHOTO, media[1]["url"]][0 if kept else 1 :]


@respx.mock
def test_a_publication_without_a_usable_jpeg_is_skipped_with_the_reason() -> None:
    respx.get("https://mairie.example/plan.png").respond(200, content=png(800, 800))
    respx.get("https://mairie.example/absent.jpg").respond(404)
    ig = channel()

    with pytest.raises(SkipDelivery) as none:
        ig.render(publication(media=[]))
    assert none.value.message == (
        "Instagram n'accepte que des publications avec une image JPEG : cette publication n'a pas d'image."
    )
    media = [
        {"url": "https://mairie.example/plan.png", "alt": "Plan"},
        {"url": "https://mairie.example/absent.jpg", "alt": "Absente"},
        {"url": "https://mairie.example/film.mp4", "alt": "Film", "kind": "video"},
    ]
    with pytest.raises(SkipDelivery) as unusable:
        ig.render(publication(media=media))
    message = unusable.value.message
    assert message.startswith("Instagram n'accepte que des publications avec une image JPEG : aucune image")
    assert "https://mairie.example/plan.png — Format PNG : Instagram n'accepte que le JPEG." in message
    assert (
        "https://mairie.example/absent.jpg — https://mairie.example/absent.jpg est introuvable (erreur 404)." in message
    )
    assert "https://mairie.example/film.mp4 — Vidéo : Crieur ne publie que des images sur Instagram." in message


@respx.mock
def test_an_image_host_that_is_down_is_transient() -> None:
    respx.get(PHOTO).respond(503)
    with pytest.raises(TransientChannelError) as caught:
        channel().render(publication())
    assert caught.value.code == "media_unavailable"


@respx.mock
def test_images_past_the_tenth_are_dropped() -> None:
    urls = [f"https://mairie.example/{index}.jpg" for index in range(12)]
    for url in urls:
        respx.get(url).respond(200, content=SQUARE)
    # The API refuses more than 10 media; a stored publication built another way is still held to the rule.
    many = publication().model_copy(
        update={"media": [publication().media[0].model_copy(update={"url": u}) for u in urls]}
    )

    rendered = channel().render(many)

    assert [decision.kept for decision in rendered.media] == [True] * 10 + [False] * 2
    assert rendered.media[10].reason == "Au-delà de 10 images : Instagram n'en accepte pas plus par publication."
    assert len(rendered.payload["images"]) == 10


# ------------------------------------------------------------------------------------------- caption rules

TRICKY = [
    "Fête de l'été : œufs, crêpes et « surprises » à la salle polyvalente ! ",
    "🎉🎈 Feu d'artifice 👨‍👩‍👧‍👦 pour toutes les familles 🇫🇷 ",
    "Cafe\u0301 des aî\u0302nés (texte saisi décomposé) ",
    "Voir https://mairie.example/agenda_(2026)?mois=11&jour=27. puis https://x.example/a#b, ",
    "#travaux #voirie rue\u00a0du\u202fChâteau ",
]


@respx.mock
def test_captions_fit_2200_code_points_whatever_the_text() -> None:
    respx.get(PHOTO).respond(200, content=SQUARE)
    ig = channel()
    links = [{"url": "https://mairie.example/actualites/fermeture-rue-de-l-eglise", "label": "Détails"}]
    for sample in TRICKY:
        for repeat in (1, 7, 31, 32, 33, 40, 80):
            body = (sample * repeat).strip()
            rendered = ig.render(publication(body, links=links))
            caption = rendered.payload["caption"]
            assert rendered.length == len(caption) <= 2200
            assert rendered.limit == 2200
            assert caption == unicodedata.normalize("NFC", caption)
            assert caption.startswith("Travaux\n\n")
            assert "Détails : https://mairie.example/actualites/fermeture-rue-de-l-eglise" in caption
            assert len(hashtag_positions(caption)) <= 30
            if len(nfc(body)) < 2000:  # kept whole, though hashtags past the 30th lose their sign
                assert nfc(body).replace("#", "") in caption.replace("#", "")
            else:
                assert "…" in caption


@respx.mock
def test_a_caption_at_exactly_the_limit_is_not_cut_and_one_more_is() -> None:
    respx.get(PHOTO).respond(200, content=SQUARE)
    ig = channel()
    room = 2200 - len("Travaux\n\n") - len("\n\n#actualité")
    exact = ("é" * 9 + " ") * (room // 10) + "é" * (room % 10)

    fitting = ig.render(publication(exact)).payload["caption"]
    longer = ig.render(publication(exact + "é")).payload["caption"]

    assert len(fitting) == 2200
    assert "…" not in fitting
    assert len(longer) <= 2200
    assert longer.endswith("…\n\n#actualité")


@respx.mock
def test_hashtags_past_the_thirtieth_lose_their_sign() -> None:
    respx.get(PHOTO).respond(200, content=SQUARE)
    tags = " ".join(f"#mot{index}" for index in range(40))
    rendered = channel().render(publication(f"{tags} https://mairie.example/page#ancre"))
    caption = rendered.payload["caption"]

    assert len(hashtag_positions(caption)) == 30
    assert "#mot28 #mot29 mot30 mot31" in caption
    assert caption.endswith("mot39 https://mairie.example/page#ancre")  # no category tag past the limit
    assert rendered.warnings[0] == "Instagram accepte au plus 30 hashtags : 10 mot(s) sont publiés sans « # »."
    assert rendered.warnings[1] == "Les liens ne sont pas cliquables dans une légende Instagram."


def test_overrides_are_checked_against_the_caption_rules() -> None:
    ig = channel()
    assert ig.override_problem("x" * 2200) is None
    assert ig.override_problem("x" * 2201) == "Trop long pour Instagram : 2201 caractères comptés, au plus 2200."
    assert ig.override_problem(" ".join(f"#a{i}" for i in range(30)) + " https://x.example/#b") is None
    assert ig.override_problem(" ".join(f"#a{i}" for i in range(31))) == (
        "Trop de hashtags pour Instagram : 31, au plus 30."
    )


@respx.mock
def test_the_override_is_the_caption() -> None:
    respx.get(PHOTO).respond(200, content=SQUARE)
    rendered = channel().render(
        publication(channels=["instagram"], overrides={"instagram": {"text": "Rue fermée lundi 🚧 #travaux"}})
    )
    assert rendered.payload["caption"] == "Rue fermée lundi 🚧 #travaux"


# ------------------------------------------------------------------------------------------- errors


def _rendered() -> RenderedPost:
    return RenderedPost(
        text="Travaux",
        payload={"caption": "Travaux", "images": [{"url": PHOTO, "alt": "Rue"}], "created_at": CREATED.isoformat()},
    )


@pytest.mark.parametrize(
    ("answer", "error", "code", "message", "wait"),
    [
        (httpx.Response(503, text="busy"), TransientChannelError, "provider_unavailable", "indisponible", None),
        (
            httpx.Response(500, json={"error": {"message": "Oops", "code": 2, "is_transient": True}}),
            TransientChannelError,
            "provider_unavailable",
            "nouvel essai",
            None,
        ),
        (httpx.Response(429, headers={"Retry-After": "42"}), TransientChannelError, "rate_limited", "limite", 42),
        (
            graph_error(190, 463, "Session has expired"),
            PermanentChannelError,
            "needs_reconnect",
            "Reconnectez le compte Instagram : le jeton a expiré.",
            None,
        ),
        (
            graph_error(190, None, "Invalid OAuth access token"),
            PermanentChannelError,
            "needs_reconnect",
            "Reconnectez le compte Instagram : le jeton n'est plus valide.",
            None,
        ),
        (
            graph_error(10, None, "(#10) Permission denied"),
            PermanentChannelError,
            "needs_reconnect",
            "en autorisant la publication",
            None,
        ),
        (
            graph_error(9004, 2207052, "The media could not be fetched"),
            PermanentChannelError,
            "media_rejected",
            "Instagram a refusé la publication : l'image n'a pas pu être téléchargée depuis son adresse",
            None,
        ),
        (
            graph_error(352, 2207026, "Unsupported format"),
            PermanentChannelError,
            "media_rejected",
            "le format de la vidéo n'est pas accepté",
            None,
        ),
        (graph_error(36003, 2207009, "Aspect ratio"), PermanentChannelError, "media_rejected", "de 4:5 à 1,91:1", None),
        (
            graph_error(25, 2207050, "Account restricted"),
            PermanentChannelError,
            "account_restricted",
            "ouvrez l'application Instagram",
            None,
        ),
        (
            graph_error(100, None, "(#100) Invalid parameter"),
            PermanentChannelError,
            "rejected",
            "Instagram a refusé la publication : (#100) Invalid parameter",
            None,
        ),
        (
            graph_error(-1, 2207001, "Instagram server error"),
            TransientChannelError,
            "provider_unavailable",
            "nouvel essai",
            None,
        ),
    ],
)
def test_container_creation_errors_are_classified(
    graph: Graph, *, answer: httpx.Response, error: type[Exception], code: str, message: str, wait: float | None
) -> None:
    graph.create.mock(side_effect=None, return_value=answer)
    with pytest.raises(error) as caught:
        channel().send(_rendered(), delivery_id="d")
    failure = caught.value
    assert failure.code == code  # type: ignore[attr-defined]
    assert message in failure.message  # type: ignore[attr-defined]
    assert getattr(failure, "retry_after", None) == wait
    assert not graph.publish.called


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80002])
def test_throttling_waits_as_long_as_the_usage_header_says(graph: Graph, code: int) -> None:
    usage = {USER: [{"type": "instagram", "call_count": 100, "estimated_time_to_regain_access": 7}]}
    throttled = graph_error(code, None, "Too many calls")
    throttled.headers["X-Business-Use-Case-Usage"] = json.dumps(usage)
    graph.create.mock(side_effect=None, return_value=throttled)
    with pytest.raises(TransientChannelError) as caught:
        channel().send(_rendered(), delivery_id="d")
    assert (caught.value.code, caught.value.retry_after) == ("rate_limited", 420)


def test_a_timeout_is_transient(graph: Graph) -> None:
    graph.create.mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TransientChannelError) as caught:
        channel().send(_rendered(), delivery_id="d")
    assert caught.value.code == "timeout"


def test_the_publishing_quota_waits_an_hour_before_creating_anything(graph: Graph) -> None:
    graph.limit.respond(json={"data": [{"quota_usage": 50, "config": {"quota_total": 50, "quota_duration": 86400}}]})
    with pytest.raises(TransientChannelError) as caught:
        channel().send(_rendered(), delivery_id="d")
    assert (caught.value.code, caught.value.retry_after) == ("publishing_limit", 3600)
    assert "quota de publications" in caught.value.message
    assert not graph.create.called


def test_the_quota_error_of_media_publish_waits_an_hour_too(graph: Graph) -> None:
    graph.publish.mock(side_effect=None, return_value=graph_error(9, 2207042, "Application request limit reached"))
    with pytest.raises(TransientChannelError) as caught:
        channel().send(_rendered(), delivery_id="d")
    assert (caught.value.code, caught.value.retry_after) == ("publishing_limit", 3600)


@pytest.mark.parametrize("state", ["ERROR", "EXPIRED"])
def test_a_container_in_error_is_permanent(graph: Graph, state: str) -> None:
    graph.states["c1"] = ["IN_PROGRESS", state]
    with pytest.raises(PermanentChannelError) as caught:
        channel().send(_rendered(), delivery_id="d")
    assert caught.value.code == "media_rejected"
    assert caught.value.message.startswith(
        "Instagram n'a pas pu traiter l'image : vérifiez qu'elle est publique, en JPEG"
    )
    assert not graph.publish.called


def test_a_container_still_processing_is_retried_later_and_then_reused(graph: Graph) -> None:
    graph.states["c1"] = ["IN_PROGRESS"]
    ig = channel()
    with pytest.raises(TransientChannelError) as caught:
        ig.send(_rendered(), delivery_id="d")
    assert (caught.value.code, caught.value.retry_after) == ("processing", 30)
    assert graph.status.call_count == 4  # once, then after each of the three pauses

    graph.states["c1"] = ["FINISHED"]
    sent = ig.send(_rendered(), delivery_id="d")

    assert sent.external_id == "m1"
    assert len(graph.created) == 1  # the retry published the first attempt's container
    assert graph.published == ["c1"]


def test_a_lost_permalink_does_not_fail_a_published_post(graph: Graph) -> None:
    graph.permalink.mock(side_effect=httpx.ConnectError("gone"))
    assert channel().send(_rendered(), delivery_id="d") == SentPost(external_id="m1", url=None)


# ------------------------------------------------------------------------------------------- idempotency


def test_an_answer_lost_after_publishing_is_found_instead_of_publishing_again(graph: Graph) -> None:
    real_publish = graph._publish

    def publish_then_lose_answer(request: httpx.Request) -> httpx.Response:
        real_publish(request)
        raise httpx.ReadTimeout("answer lost", request=request)

    graph.publish.mock(side_effect=publish_then_lose_answer)
    sent = channel().send(_rendered(), delivery_id="d")

    assert sent == SentPost(external_id="m1", url="https://www.instagram.com/p/m1/")
    assert graph.publish.call_count == 1
    assert graph.status.calls.last.request.url.path.endswith("/c1")


def test_a_retry_in_a_new_process_finds_the_post_of_the_earlier_attempt(graph: Graph) -> None:
    ig = channel()
    first = ig.send(_rendered(), delivery_id="d")
    instagram._containers.clear()  # a new Lambda invocation remembers nothing

    again = ig.send(_rendered(), delivery_id="d")

    assert again == first
    assert graph.create.call_count == 1
    assert graph.publish.call_count == 1


def test_a_timeout_before_publishing_reuses_the_container_on_retry(graph: Graph) -> None:
    real_publish = graph._publish
    graph.publish.mock(side_effect=[httpx.ReadTimeout("slow"), real_publish])
    ig = channel()

    with pytest.raises(TransientChannelError):
        ig.send(_rendered(), delivery_id="d")  # the container is FINISHED, not PUBLISHED: nothing was posted
    sent = ig.send(_rendered(), delivery_id="d")

    assert sent.external_id == "m1"
    assert len(graph.created) == 1
    assert graph.published == ["c1"]


def test_an_older_post_with_the_same_caption_is_not_taken_for_this_one(graph: Graph) -> None:
    graph.posts.append(
        {
            "id": "m0",
            "caption": "Travaux",
            "permalink": "https://www.instagram.com/p/m0/",
            "timestamp": "2026-11-27T08:58:59+0000",  # a minute (the clock margin) and a second before
        }
    )
    sent = channel().send(_rendered(), delivery_id="d")
    assert sent.external_id == "m1"
    assert graph.publish.call_count == 1


def test_find_sent_pages_through_the_posts_since_the_publication(graph: Graph) -> None:
    ours = {"id": "m9", "caption": "Travaux", "permalink": "https://www.instagram.com/p/m9/"}
    later = [{"id": f"m{n}", "caption": f"Avis {n}", "timestamp": "2026-11-27T09:30:00+0000"} for n in range(25)]
    graph.listing.mock(
        side_effect=[
            httpx.Response(200, json={"data": later, "paging": {"cursors": {"after": "QVFI"}, "next": "https://…"}}),
            httpx.Response(200, json={"data": [{**ours, "timestamp": "2026-11-27T09:00:05+0000"}]}),
        ]
    )

    found = channel().find_sent(_rendered(), delivery_id="d")

    assert found == SentPost(external_id="m9", url="https://www.instagram.com/p/m9/")
    first, second = (call.request.url.params for call in graph.listing.calls)
    assert (first["limit"], "after" in first, second["after"]) == ("25", False, "QVFI")


def test_find_sent_stops_at_posts_older_than_the_publication(graph: Graph) -> None:
    older = {"id": "m0", "caption": "Autre", "timestamp": "2026-11-27T08:00:00+0000"}
    graph.listing.mock(
        return_value=httpx.Response(200, json={"data": [older], "paging": {"cursors": {"after": "x"}, "next": "…"}})
    )

    assert channel().find_sent(_rendered(), delivery_id="d") is None
    assert graph.listing.call_count == 1


def test_find_sent_says_wait_for_a_published_container_not_listed_yet(graph: Graph) -> None:
    instagram._containers[(USER, "d")] = "c7"
    graph.states["c7"] = ["PUBLISHED"]

    with pytest.raises(TransientChannelError) as raised:
        channel().find_sent(_rendered(), delivery_id="d")

    assert raised.value.code == "not_listed_yet"
    graph.states["c7"] = ["EXPIRED"]
    assert channel().find_sent(_rendered(), delivery_id="d") is None


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (graph_error(2, message="Service temporarily unavailable", status=503), "provider_unavailable"),
        (graph_error(190, 463, "Error validating access token"), "lookup_failed"),
        (httpx.Response(500, text="<html>oops</html>"), "provider_unavailable"),
    ],
)
def test_find_sent_never_takes_a_failed_lookup_for_an_answer(graph: Graph, response: httpx.Response, code: str) -> None:
    graph.listing.mock(return_value=response)

    with pytest.raises(TransientChannelError) as raised:
        channel().find_sent(_rendered(), delivery_id="d")

    assert raised.value.code == code


def test_delete_is_unsupported() -> None:
    with pytest.raises(RetractUnsupported) as caught:
        channel().delete("m1")
    assert caught.value.message == (
        "Instagram ne permet pas de supprimer une publication par l'API : supprimez-la depuis l'application."
    )


# ------------------------------------------------------------------------------------------- check, settings


def test_check_reports_the_account_and_the_right_to_publish(graph: Graph) -> None:
    account = graph.mock.get(f"{GRAPH}/{USER}").respond(json={"id": USER, "username": "mairie_demo"})
    check = channel().check()
    assert check.ok
    assert check.account == "@mairie_demo"
    assert check.message == (
        "Le compte Instagram @mairie_demo est joignable et Crieur peut y publier "
        "(3 publication(s) sur 50 permises en 24 h)."
    )
    assert check.permissions == ["instagram_business_basic", "instagram_business_content_publish"]
    assert account.calls[0].request.url.params["fields"] == "id,username,name,account_type"


def test_check_with_an_expired_token_says_to_reconnect(graph: Graph) -> None:
    graph.mock.get(f"{GRAPH}/{USER}").mock(return_value=graph_error(190, 463, "Session has expired"))
    check = channel().check()
    assert not check.ok
    assert check.message == "Reconnectez le compte Instagram : le jeton a expiré."


def test_settings_and_credentials_are_strict() -> None:
    with pytest.raises(ValueError, match="est un nombre"):
        InstagramSettings(ig_user_id="mairie_demo")
    with pytest.raises(ValueError, match="Extra inputs"):
        InstagramSettings.model_validate({"ig_user_id": USER, "page_id": "1"})
    with pytest.raises(ValueError, match="Extra inputs"):
        InstagramCredentials.model_validate({"access_token": "t", "app_secret": "s"})


# ------------------------------------------------------------------------------------------- against the imitation


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, so the images can be served over https like real ones."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


IMAGES = {
    "/photo.jpg": SQUARE,
    "/portrait.jpg": jpeg(1080, 1350),
    "/tall.jpg": jpeg(1080, 1920),
    "/plan.png": png(800, 800),
    "/big.jpg": BIG,
}


class ImageServer:
    def __init__(self, port: int, cafile: Path) -> None:
        self.port = port
        self.cafile = cafile

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def fetcher(self) -> MediaFetcher:
        """The adapter's own media fetcher (guarded transport), trusting the test certificate."""
        trust = ssl.create_default_context(cafile=str(self.cafile))
        return MediaFetcher(httpx.Client(transport=GuardedTransport(verify=trust, retries=0), timeout=5.0))


@pytest.fixture(scope="module")
def images(certificate: tuple[Path, Path]) -> Iterator[ImageServer]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            content = IMAGES.get(self.path)
            if content is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield ImageServer(int(server.server_address[1]), certificate[0])
    server.shutdown()
    server.server_close()


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    monkeypatch.setattr(infra.local.imitations, "IMITATIONS", [InstagramImitation])
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    box = Sandbox(port=0)
    box.start()
    monkeypatch.setenv("CRIEUR_INSTAGRAM_BASE_URL", f"{box.url}/instagram")
    yield box
    box.stop()


@pytest.fixture
def imitation(sandbox: Sandbox) -> InstagramImitation:
    found = sandbox.imitations["/instagram"]
    assert isinstance(found, InstagramImitation)
    return found


def live(
    images: ImageServer, token: str = DEMO_TOKEN, transport: httpx.BaseTransport | None = None
) -> InstagramChannel:
    http = httpx.Client(transport=transport, timeout=5.0) if transport else guarded_client(timeout=5.0)
    return InstagramChannel(
        InstagramSettings(ig_user_id=DEMO_USER_ID), InstagramCredentials(access_token=token), http, images.fetcher()
    )


def live_publication(images: ImageServer, *paths: str, body: str = "Les travaux commencent lundi.") -> Publication:
    media = [{"url": images.url(path), "alt": f"Photo {path}"} for path in paths]
    return publication(body, media=media, created_at=dt.datetime.now(dt.UTC))


def writes(sandbox: Sandbox) -> list[tuple[str, int]]:
    return [(item["path"].rsplit("/", 1)[1], item["status"]) for item in sandbox.received("instagram")]


def test_a_post_reaches_the_imitation_with_its_alt_text(
    sandbox: Sandbox, imitation: InstagramImitation, images: ImageServer
) -> None:
    ig = live(images)
    sent = ig.send(ig.render(live_publication(images, "/photo.jpg")), delivery_id="pub_01-instagram")

    assert writes(sandbox) == [("media", 200), ("media_publish", 200)]
    created = sandbox.received("instagram")[0]
    assert created["body"]["alt_text"] == "Photo /photo.jpg"
    assert created["headers"]["authorization"] == "Bearer [redacted]"
    [post] = imitation.posts()
    assert post["id"] == sent.external_id
    assert post["permalink"] == sent.url
    assert (post["media_type"], post["alt_text"]) == ("IMAGE", "Photo /photo.jpg")
    assert post["caption"].startswith("Travaux\n\nLes travaux commencent lundi.")
    page = httpx.get(str(sent.url))
    assert page.status_code == 200
    assert 'alt="Photo /photo.jpg"' in page.text
    assert "Texte alternatif : « Photo /photo.jpg »" in page.text
    section = httpx.get(f"{sandbox.url}/").text
    assert '<h2 id="h-instagram">Instagram</h2>' in section
    assert "1 publication(s) sur 50" in section


def test_a_carousel_reaches_the_imitation(sandbox: Sandbox, imitation: InstagramImitation, images: ImageServer) -> None:
    ig = live(images)
    rendered = ig.render(live_publication(images, "/photo.jpg", "/portrait.jpg", "/tall.jpg", "/plan.png", "/big.jpg"))

    assert [decision.kept for decision in rendered.media] == [True, True, False, False, False]
    ig.send(rendered, delivery_id="d")

    assert writes(sandbox) == [("media", 200), ("media", 200), ("media", 200), ("media_publish", 200)]
    [post] = imitation.posts()
    assert post["media_type"] == "CAROUSEL_ALBUM"
    page = httpx.get(post["permalink"]).text
    assert "Image 1 sur 2 — texte alternatif : « Photo /photo.jpg »" in page
    assert "Image 2 sur 2 — texte alternatif : « Photo /portrait.jpg »" in page


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/plan.png", "Only photo or video can be accepted as media type."),
        ("/tall.jpg", "aspect ratio ('1080/1920')"),
        ("/big.jpg", "The image size is too large."),
        ("/missing.jpg", "could not be fetched from this uri"),
    ],
)
def test_an_image_instagram_cannot_use_puts_the_container_in_error(
    sandbox: Sandbox, imitation: InstagramImitation, images: ImageServer, path: str, detail: str
) -> None:
    payload = {
        "caption": "Travaux",
        "images": [{"url": images.url(path), "alt": "x"}],
        "created_at": CREATED.isoformat(),
    }
    with pytest.raises(PermanentChannelError) as caught:
        live(images).send(RenderedPost(text="Travaux", payload=payload), delivery_id="d")
    assert caught.value.code == "media_rejected"
    assert detail in str(caught.value.provider_message)
    assert writes(sandbox) == [("media", 200)]
    assert imitation.posts() == []


def test_an_expired_token_needs_reconnecting(sandbox: Sandbox, images: ImageServer) -> None:
    ig = live(images, token=EXPIRED_TOKEN)
    with pytest.raises(PermanentChannelError) as caught:
        ig.send(ig.render(live_publication(images, "/photo.jpg")), delivery_id="d")
    assert (caught.value.code, caught.value.message) == (
        "needs_reconnect",
        "Reconnectez le compte Instagram : le jeton a expiré.",
    )
    check = ig.check()
    assert (check.ok, check.message) == (False, "Reconnectez le compte Instagram : le jeton a expiré.")
    assert (
        live(images, token="autre").check().message == "Reconnectez le compte Instagram : le jeton n'est plus valide."
    )


def test_check_against_the_imitation(sandbox: Sandbox, images: ImageServer) -> None:
    check = live(images).check()
    assert check.ok
    assert check.account == "@mairie_demo"
    assert "0 publication(s) sur 50 permises en 24 h" in check.message


@pytest.mark.parametrize(
    ("status", "retry_after", "code", "wait"),
    [
        (503, None, "provider_unavailable", None),
        (429, 120, "rate_limited", 120),
        (500, None, "provider_unavailable", None),
    ],
)
def test_faults_create_nothing_and_a_retry_posts_once(
    sandbox: Sandbox,
    *,
    imitation: InstagramImitation,
    images: ImageServer,
    status: int,
    retry_after: int | None,
    code: str,
    wait: float | None,
) -> None:
    ig = live(images)
    rendered = ig.render(live_publication(images, "/photo.jpg"))
    sandbox.inject_fault("instagram", status=status, retry_after=retry_after)

    with pytest.raises(TransientChannelError) as caught:
        ig.send(rendered, delivery_id="d")
    assert (caught.value.code, caught.value.retry_after) == (code, wait)
    ig.send(rendered, delivery_id="d")

    assert writes(sandbox) == [("media", status), ("media", 200), ("media_publish", 200)]
    assert len(imitation.posts()) == 1


class LosesPublishAnswer(httpx.HTTPTransport):
    """Lets media_publish reach the imitation, then reports a timeout instead of its answer."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/media_publish") and not self.lost:
            response.read()
            response.close()
            self.lost += 1
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


def test_a_lost_publish_answer_never_posts_twice(
    sandbox: Sandbox, imitation: InstagramImitation, images: ImageServer
) -> None:
    transport = LosesPublishAnswer()
    ig = live(images, transport=transport)
    rendered = ig.render(live_publication(images, "/photo.jpg"))

    sent = ig.send(rendered, delivery_id="d")
    instagram._containers.clear()
    again = ig.send(rendered, delivery_id="d")

    assert transport.lost == 1
    [post] = imitation.posts()
    assert sent.external_id == again.external_id == post["id"]
    assert writes(sandbox) == [("media", 200), ("media_publish", 200)]


def test_find_sent_finds_the_post_whose_publish_answer_was_lost(
    sandbox: Sandbox, imitation: InstagramImitation, images: ImageServer
) -> None:
    transport = LosesPublishAnswer()
    ig = live(images, transport=transport)
    rendered = ig.render(live_publication(images, "/photo.jpg"))
    ig.send(rendered, delivery_id="d")
    instagram._containers.clear()  # the worker asks from another invocation

    found = ig.find_sent(rendered, delivery_id="d")
    other = ig.find_sent(ig.render(live_publication(images, "/photo.jpg", body="Autre avis.")), delivery_id="e")

    [post] = imitation.posts()
    assert found is not None
    assert found.external_id == post["id"]
    assert other is None


def test_a_slow_container_creation_is_retried_without_duplicate(
    sandbox: Sandbox, imitation: InstagramImitation, images: ImageServer
) -> None:
    sandbox.inject_fault("instagram", delay_seconds=1.5)
    ig = live(images)
    ig.http.timeout = httpx.Timeout(0.5)
    rendered = ig.render(live_publication(images, "/photo.jpg"))

    with pytest.raises(TransientChannelError) as caught:
        ig.send(rendered, delivery_id="d")
    assert caught.value.code == "timeout"
    ig.http.timeout = httpx.Timeout(5.0)
    ig.send(rendered, delivery_id="d")
    deadline = time.monotonic() + 5
    while len(sandbox.received("instagram")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # the slow request ends after the retry: its container is left unpublished

    assert sorted(writes(sandbox)) == [("media", 200), ("media", 200), ("media_publish", 200)]
    assert len(imitation.posts()) == 1
    assert "1 conteneur(s) créé(s) sans être publié(s)" in imitation.page_section()


def test_the_daily_quota_is_enforced_and_waited_for(
    sandbox: Sandbox, imitation: InstagramImitation, images: ImageServer
) -> None:
    imitation.quota_total = 1
    ig = live(images)
    ig.send(ig.render(live_publication(images, "/photo.jpg", body="Première.")), delivery_id="a")

    with pytest.raises(TransientChannelError) as caught:
        ig.send(ig.render(live_publication(images, "/photo.jpg", body="Seconde.")), delivery_id="b")

    assert (caught.value.code, caught.value.retry_after) == ("publishing_limit", 3600)
    assert len(imitation.posts()) == 1
    assert "1 publication(s) sur 1 permises" in ig.check().message


# ------------------------------------------------------------------------------------------- the imitation's API


@pytest.fixture
def graph_api(sandbox: Sandbox) -> Callable[..., httpx.Response]:
    def call(method: str, path: str, token: str | None = DEMO_TOKEN, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, f"{sandbox.url}/instagram/v25.0/{path}", headers=headers, timeout=5, **kwargs)

    return call


def test_containers_are_in_progress_on_their_first_poll(
    graph_api: Callable[..., httpx.Response], images: ImageServer
) -> None:
    created = graph_api("POST", f"{DEMO_USER_ID}/media", json={"image_url": images.url("/photo.jpg"), "caption": "x"})
    container = created.json()["id"]

    early = graph_api("POST", f"{DEMO_USER_ID}/media_publish", json={"creation_id": container})
    first = graph_api("GET", container, params={"fields": "status_code,status"}).json()
    second = graph_api("GET", container, params={"fields": "status_code"}).json()
    published = graph_api("POST", f"{DEMO_USER_ID}/media_publish", data={"creation_id": container})
    third = graph_api("GET", container, params={"fields": "status_code"}).json()

    assert early.status_code == 400
    assert (early.json()["error"]["code"], early.json()["error"]["error_subcode"]) == (9007, 2207027)
    assert first == {
        "id": container,
        "status_code": "IN_PROGRESS",
        "status": "In Progress: Media is still being processed.",
    }
    assert second == {"id": container, "status_code": "FINISHED"}
    assert published.status_code == 200
    assert "x-business-use-case-usage" in published.headers
    assert third["status_code"] == "PUBLISHED"
    listed = graph_api("GET", f"{DEMO_USER_ID}/media", params={"fields": "id,caption,timestamp"}).json()
    assert listed["data"][0]["id"] == published.json()["id"]
    assert listed["data"][0]["caption"] == "x"
    limit = graph_api("GET", f"{DEMO_USER_ID}/content_publishing_limit").json()
    assert limit == {"data": [{"quota_usage": 1}]}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "token", "code", "subcode"),
    [
        ("GET", DEMO_USER_ID, {}, None, 190, None),
        ("GET", DEMO_USER_ID, {}, EXPIRED_TOKEN, 190, 463),
        ("GET", DEMO_USER_ID, {"params": {"fields": "email"}}, DEMO_TOKEN, 100, None),
        ("GET", "123", {}, DEMO_TOKEN, 100, 33),
        ("POST", f"{DEMO_USER_ID}/media", {"json": {"caption": "x"}}, DEMO_TOKEN, 100, None),
        (
            "POST",
            f"{DEMO_USER_ID}/media",
            {"json": {"image_url": "https://127.0.0.1/a.jpg", "caption": "é" * 2201}},
            DEMO_TOKEN,
            100,
            None,
        ),
        (
            "POST",
            f"{DEMO_USER_ID}/media",
            {"json": {"media_type": "CAROUSEL", "children": "1"}},
            DEMO_TOKEN,
            100,
            2207028,
        ),
        ("POST", f"{DEMO_USER_ID}/media_publish", {"json": {"creation_id": "999"}}, DEMO_TOKEN, 24, 2207006),
        ("DELETE", "17920000000000001", {}, DEMO_TOKEN, 100, 33),
    ],
)
def test_the_imitation_answers_graph_errors(
    graph_api: Callable[..., httpx.Response],
    *,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    token: str | None,
    code: int,
    subcode: int | None,
) -> None:
    response = graph_api(method, path, token=token, **kwargs)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error.get("error_subcode"), error["type"]) == (code, subcode, "OAuthException")
    assert error["message"]
    assert error["fbtrace_id"]


def test_the_token_may_come_as_a_parameter(graph_api: Callable[..., httpx.Response]) -> None:
    me = graph_api("GET", "me", token=None, params={"access_token": DEMO_TOKEN, "fields": "username,account_type"})
    assert me.json() == {"id": DEMO_USER_ID, "username": "mairie_demo", "account_type": "BUSINESS"}


def test_the_demo_channel_is_accepted_by_the_adapter(imitation: InstagramImitation) -> None:
    demo = imitation.demo_channel()
    assert demo["enabled"] is True
    assert InstagramSettings.model_validate(demo["settings"]).ig_user_id == DEMO_USER_ID
    assert InstagramCredentials.model_validate(demo["credentials"]).access_token == DEMO_TOKEN


def test_the_page_escapes_what_it_shows(sandbox: Sandbox, imitation: InstagramImitation, images: ImageServer) -> None:
    ig = live(images)
    hostile = publication(
        "<script>alert(1)</script> & #fête",
        media=[{"url": images.url("/photo.jpg"), "alt": '"><img src=x onerror=alert(1)>'}],
        created_at=dt.datetime.now(dt.UTC),
    )
    ig.send(ig.render(hostile), delivery_id="d")

    section = imitation.page_section()
    assert "<script>" not in section
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in section
    assert 'alt="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"' in section
    assert '<span style="color:#00376b;font-weight:600">#fête</span>' in section
    imitation.clear()
    assert "Aucune publication pour l'instant." in imitation.page_section()
