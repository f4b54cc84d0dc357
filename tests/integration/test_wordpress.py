"""The WordPress channel: rendering to escaped HTML, the adapter against respx stand-ins of the REST API,
and the adapter against the sandbox's WordPress imitation over real loopback HTTP."""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from PIL import Image

import infra.local.imitations
from crieur.channels.base import ChannelError, PermanentChannelError, TransientChannelError
from crieur.channels.wordpress import (
    RECONNECT,
    ROLE_NEEDED,
    WordpressChannel,
    WordpressCredentials,
    WordpressSettings,
    slug_for,
)
from crieur.media import MediaFetcher
from crieur.models import Publication
from infra.local.imitations import wordpress as imitation
from infra.local.sandbox import Sandbox

SITE = "https://mairie.example.fr"
API = f"{SITE}/wp-json/wp/v2"
PASSWORD = "abcd EFGH 1234 ijkl MNOP 5678"
SLUG = "crieur-pub-01jx-wordpress"


def publication(body: str = "La rue de l'Église est fermée lundi.", **extra: Any) -> Publication:
    return Publication.model_validate(
        {
            "title": "Travaux",
            "body": body,
            "category": "works",
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
    noise = Image.frombytes("RGB", (1800, 1700), os.urandom(1800 * 1700 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    assert buffer.tell() > 8 * 1024 * 1024
    return buffer.getvalue()


IMAGES = {"photo.jpg": image(), "plan.png": image("PNG"), "notes.txt": b"pas une image"}


def serve_images(request: httpx.Request) -> httpx.Response:
    name = request.url.path.rsplit("/", 1)[-1]
    if name == "huge.png":
        return httpx.Response(200, content=too_big_png())
    if name == "down.jpg":
        return httpx.Response(503)
    return httpx.Response(200, content=IMAGES[name]) if name in IMAGES else httpx.Response(404)


def media(name: str, alt: str = "Plan de la déviation", kind: str = "image") -> dict[str, str]:
    return {"url": f"https://images.example/{name}", "alt": alt, "kind": kind}


def fetcher() -> MediaFetcher:
    return MediaFetcher(httpx.Client(transport=httpx.MockTransport(serve_images)))


@pytest.fixture
def channel() -> WordpressChannel:
    settings = WordpressSettings(site_url=SITE, username="mairie")
    return WordpressChannel(settings, WordpressCredentials(application_password=PASSWORD), httpx.Client(), fetcher())


def wp_error(status: int, code: str, message: str = "Erreur") -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message, "data": {"status": status}})


def post_reply(post_id: int = 7) -> httpx.Response:
    return httpx.Response(201, json={"id": post_id, "link": f"{SITE}/?p={post_id}"})


def found_category() -> None:
    respx.get(f"{API}/categories").mock(return_value=httpx.Response(200, json=[{"id": 3, "name": "Travaux"}]))


# ------------------------------------------------------------------------------------------- render


def test_the_content_is_escaped_html_paragraphs_with_links() -> None:
    settings = WordpressSettings(site_url=SITE, username="mairie")
    channel = WordpressChannel(settings, None, httpx.Client(), fetcher())
    pub = publication(
        "Fête <script>alert(1)</script> & bal.\nVoir https://mairie.example.fr/fete.\n\nDeuxième paragraphe.",
        links=[{"url": "https://mairie.example.fr/plan?a=1&b=2", "label": "Plan <b>"}],
    )
    payload = channel.render(pub).payload
    assert payload["content"] == (
        "<p>Fête &lt;script&gt;alert(1)&lt;/script&gt; &amp; bal.<br />\n"
        'Voir <a href="https://mairie.example.fr/fete">https://mairie.example.fr/fete</a>.</p>\n'
        "<p>Deuxième paragraphe.</p>\n"
        '<ul><li><a href="https://mairie.example.fr/plan?a=1&amp;b=2">Plan &lt;b&gt;</a></li></ul>'
    )
    assert payload["status"] == "publish"
    assert payload["category"] == "Travaux"
    assert "date_gmt" not in payload


@pytest.mark.parametrize(
    "body",
    ["é" * n for n in (1, 299, 300, 301, 2000)]
    + ["Prévoyez 🌧️👨‍👩‍👧 demain " * 40, "Lien (https://ex.fr/a_(b)), fin. " * 30, "x" * 10_000],
)
def test_the_whole_body_is_kept_and_the_excerpt_fits(body: str) -> None:
    settings = WordpressSettings(site_url=SITE, username="mairie")
    channel = WordpressChannel(settings, None, httpx.Client(), fetcher())
    rendered = channel.render(publication(body))
    assert channel.max_length() is None
    assert rendered.text is not None
    assert body.strip() in rendered.text  # no limit: nothing cut
    assert len(rendered.payload["excerpt"]) <= 300
    assert rendered.payload["excerpt"] == body.strip() or rendered.payload["excerpt"].endswith("…")


def test_a_future_publication_is_scheduled_with_date_gmt(channel: WordpressChannel) -> None:
    at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    payload = channel.render(publication(publish_at=at)).payload
    assert (payload["status"], payload["date_gmt"]) == ("future", at.strftime("%Y-%m-%dT%H:%M:%S"))


def test_media_kept_and_dropped_with_french_reasons(channel: WordpressChannel) -> None:
    pub = publication(
        media=[
            media("notes.txt"),
            media("huge.png"),
            media("clip.mp4", kind="video"),
            media("photo.jpg", "La rue barrée"),
            media("plan.png"),
        ]
    )
    decisions = channel.render(pub).media
    assert [d.kept for d in decisions] == [False, False, False, True, False]
    assert "n'est ni une image" in str(decisions[0].reason)
    assert "8 Mo" in str(decisions[1].reason)
    assert "Vidéo" in str(decisions[2].reason)
    assert "image à la une" in str(decisions[4].reason)
    assert channel.render(pub).payload["media"] == [{"url": "https://images.example/photo.jpg", "alt": "La rue barrée"}]


def test_an_image_host_that_is_down_makes_the_render_transient(channel: WordpressChannel) -> None:
    with pytest.raises(TransientChannelError):
        channel.render(publication(media=[media("down.jpg")]))


def test_settings_refuse_plain_http_and_unknown_fields() -> None:
    with pytest.raises(ValueError, match="https"):
        WordpressSettings(site_url="http://mairie.example.fr", username="mairie")
    with pytest.raises(ValueError, match="token"):
        WordpressCredentials.model_validate({"application_password": "x", "token": "y"})
    assert WordpressCredentials(application_password=PASSWORD).application_password == PASSWORD


# ------------------------------------------------------------------------------------------- send (respx)


@respx.mock
def test_a_post_is_looked_up_by_slug_then_created_with_its_image(channel: WordpressChannel) -> None:
    lookup = respx.get(f"{API}/posts").mock(return_value=httpx.Response(200, json=[]))
    respx.get(f"{API}/categories").mock(return_value=httpx.Response(200, json=[]))
    category = respx.post(f"{API}/categories").mock(return_value=httpx.Response(201, json={"id": 9}))
    upload = respx.post(f"{API}/media").mock(return_value=httpx.Response(201, json={"id": 55}))
    alt = respx.post(f"{API}/media/55").mock(return_value=httpx.Response(200, json={"id": 55}))
    create = respx.post(f"{API}/posts").mock(return_value=post_reply())
    rendered = channel.render(publication(media=[media("photo.jpg", "La rue barrée")]))

    sent = channel.send(rendered, delivery_id="pub_01JX-wordpress")

    assert (sent.external_id, sent.url) == ("7", f"{SITE}/?p=7")
    params = lookup.calls.last.request.url.params
    assert (params["slug"], params["status"], params["context"]) == (SLUG, "any", "edit")
    auth = create.calls.last.request.headers["authorization"]
    assert base64.b64decode(auth.removeprefix("Basic ")).decode() == f"mairie:{PASSWORD}"  # spaces kept
    assert json.loads(category.calls.last.request.content) == {"name": "Travaux"}
    sent_image = upload.calls.last.request
    assert sent_image.content == IMAGES["photo.jpg"]
    assert sent_image.headers["content-type"] == "image/jpeg"
    assert sent_image.headers["content-disposition"].startswith("attachment; filename=")
    assert json.loads(alt.calls.last.request.content) == {"alt_text": "La rue barrée"}
    body = json.loads(create.calls.last.request.content)
    assert body["slug"] == SLUG
    assert (body["status"], body["categories"], body["featured_media"]) == ("publish", [9], 55)
    assert body["title"] == "Travaux"


@respx.mock
def test_a_retry_updates_the_post_the_first_attempt_made(channel: WordpressChannel) -> None:
    respx.get(f"{API}/posts").mock(return_value=httpx.Response(200, json=[{"id": 7, "featured_media": 55}]))
    found_category()
    create = respx.post(f"{API}/posts").mock(return_value=post_reply(8))
    update = respx.post(f"{API}/posts/7").mock(return_value=httpx.Response(200, json={"id": 7, "link": "l"}))
    upload = respx.post(f"{API}/media").mock(return_value=httpx.Response(201, json={"id": 56}))

    sent = channel.send(channel.render(publication(media=[media("photo.jpg")])), delivery_id="pub_01JX-wordpress")

    assert sent.external_id == "7"
    assert update.called
    assert not create.called
    assert not upload.called
    assert json.loads(update.calls.last.request.content)["categories"] == [3]


@respx.mock
def test_find_sent_looks_the_slug_up_in_any_status(channel: WordpressChannel) -> None:
    lookup = respx.get(f"{API}/posts").mock(
        side_effect=[
            httpx.Response(200, json=[{"id": 7, "link": f"{SITE}/?p=7", "featured_media": 0}]),
            httpx.Response(200, json=[]),
        ]
    )
    rendered = channel.render(publication())

    found = channel.find_sent(rendered, delivery_id="pub_01JX-wordpress")
    missing = channel.find_sent(rendered, delivery_id="pub_01JX-wordpress")

    assert found is not None
    assert (found.external_id, found.url) == ("7", f"{SITE}/?p=7")
    assert missing is None
    params = lookup.calls.last.request.url.params
    assert (params["slug"], params["status"], params["context"]) == (SLUG, "any", "edit")


@respx.mock
@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (wp_error(500, "internal_server_error"), "provider_unavailable"),
        (wp_error(401, "incorrect_password"), "lookup_failed"),
        (wp_error(403, "rest_forbidden_context"), "lookup_failed"),
        (httpx.ConnectError("refused"), "unreachable"),
    ],
)
def test_find_sent_never_takes_a_failed_lookup_for_an_answer(
    channel: WordpressChannel, answer: httpx.Response | Exception, code: str
) -> None:
    respx.get(f"{API}/posts").mock(side_effect=[answer])

    with pytest.raises(TransientChannelError) as raised:
        channel.find_sent(channel.render(publication()), delivery_id="pub_01JX-wordpress")

    assert raised.value.code == code


@respx.mock
def test_an_upload_refused_by_wordpress_drops_the_image_not_the_post(channel: WordpressChannel) -> None:
    respx.get(f"{API}/posts").mock(return_value=httpx.Response(200, json=[]))
    found_category()
    respx.post(f"{API}/media").mock(return_value=wp_error(500, "rest_upload_sideload_error"))
    create = respx.post(f"{API}/posts").mock(return_value=post_reply())

    channel.send(channel.render(publication(media=[media("photo.jpg")])), delivery_id="pub_01JX-wordpress")

    assert "featured_media" not in json.loads(create.calls.last.request.content)


@pytest.mark.parametrize(
    ("reply", "kind", "code", "words"),
    [
        (wp_error(500, "internal_server_error"), TransientChannelError, "provider_unavailable", "indisponible"),
        (wp_error(503, "x"), TransientChannelError, "provider_unavailable", "nouvel essai"),
        (wp_error(401, "incorrect_password"), PermanentChannelError, "needs_reconnect", RECONNECT),
        (wp_error(401, "rest_not_logged_in"), PermanentChannelError, "needs_reconnect", RECONNECT),
        (wp_error(403, "rest_cannot_create"), PermanentChannelError, "rest_cannot_create", "Auteur"),
        (
            wp_error(400, "rest_invalid_param", "Invalid parameter(s): status"),
            PermanentChannelError,
            "rejected",
            "a refusé",
        ),
    ],
)
@respx.mock
def test_errors_are_classified_with_a_french_reason(
    channel: WordpressChannel, reply: httpx.Response, kind: type[ChannelError], code: str, words: str
) -> None:
    respx.get(f"{API}/posts").mock(return_value=httpx.Response(200, json=[]))
    found_category()
    respx.post(f"{API}/posts").mock(return_value=reply)
    with pytest.raises(kind) as raised:
        channel.send(channel.render(publication()), delivery_id="pub_01JX-wordpress")
    assert raised.value.code == code
    assert words in raised.value.message


@respx.mock
def test_a_429_waits_as_retry_after_says_and_a_timeout_is_transient(channel: WordpressChannel) -> None:
    respx.get(f"{API}/posts").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "42"}), httpx.ReadTimeout("lent")]
    )
    with pytest.raises(TransientChannelError) as limited:
        channel.send(channel.render(publication()), delivery_id="pub_01JX-wordpress")
    assert (limited.value.code, limited.value.retry_after) == ("rate_limited", 42.0)
    with pytest.raises(TransientChannelError) as slow:
        channel.send(channel.render(publication()), delivery_id="pub_01JX-wordpress")
    assert slow.value.code == "timeout"


@pytest.mark.parametrize("status", [200, 404, 410])
@respx.mock
def test_delete_forces_and_treats_a_missing_post_as_deleted(channel: WordpressChannel, status: int) -> None:
    route = respx.delete(f"{API}/posts/7").mock(
        return_value=httpx.Response(200, json={"deleted": True})
        if status == 200
        else wp_error(status, "rest_post_invalid_id")
    )
    channel.delete("7")
    assert route.calls.last.request.url.params["force"] == "true"


@respx.mock
def test_check_says_who_and_whether_they_can_publish(channel: WordpressChannel) -> None:
    me = respx.get(f"{API}/users/me").mock(
        side_effect=[
            httpx.Response(200, json={"name": "Mairie", "capabilities": {"publish_posts": True, "upload_files": True}}),
            httpx.Response(200, json={"name": "Abonné", "capabilities": {"read": True}}),
        ]
    )
    ok = channel.check()
    assert (ok.ok, ok.account, ok.permissions) == (True, "Mairie", ["publication", "envoi d'images"])
    assert me.calls.last.request.url.params["context"] == "edit"
    refused = channel.check()
    assert (refused.ok, refused.message) == (False, ROLE_NEEDED)


def test_the_slug_is_stable_and_url_safe() -> None:
    assert slug_for("pub_01JX-wordpress") == SLUG == slug_for("pub_01JX-wordpress")
    assert slug_for("pub_01JY-wordpress") != SLUG


# ------------------------------------------------------------------------------------------- against the imitation


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    monkeypatch.setattr(infra.local.imitations, "IMITATIONS", [imitation.WordpressImitation])
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    box = Sandbox(port=0)
    box.start()
    yield box
    box.stop()


def imitated(sandbox: Sandbox) -> imitation.WordpressImitation:
    found = sandbox.imitations["/wordpress"]
    assert isinstance(found, imitation.WordpressImitation)
    return found


def live(
    sandbox: Sandbox, username: str = imitation.USERNAME, password: str = imitation.APPLICATION_PASSWORD
) -> WordpressChannel:
    body = imitated(sandbox).demo_channel()
    settings = WordpressSettings.model_validate({**body["settings"], "username": username})
    credentials = WordpressCredentials.model_validate({"application_password": password})
    return WordpressChannel(settings, credentials, httpx.Client(timeout=5.0), fetcher())


def test_a_publication_reaches_the_blog_once_and_is_deleted(sandbox: Sandbox) -> None:
    channel = live(sandbox)
    assert channel.check().ok
    pub = publication(
        "Fête <b>ce soir</b> & bal : https://mairie.example.fr/fete.",
        media=[media("photo.jpg", "La place en fête"), media("notes.txt")],
    )
    rendered = channel.render(pub)

    first = channel.send(rendered, delivery_id="pub_01JX-wordpress")
    again = channel.send(rendered, delivery_id="pub_01JX-wordpress")

    assert again == first
    [made] = imitated(sandbox).posts()
    assert first.url == f"{sandbox.url}/wordpress/?p={made['id']}"
    assert (made["slug"], made["status"], made["categories"]) == (SLUG, "publish", ["Travaux"])
    assert made["alt_text"] == "La place en fête"
    page = httpx.get(str(first.url)).text
    assert "Fête &lt;b&gt;ce soir&lt;/b&gt; &amp; bal" in page
    assert 'alt="La place en fête"' in page
    assert "<b>" not in page
    assert "Travaux" in sandbox.page()

    channel.delete(first.external_id)
    channel.delete(first.external_id)  # already gone: still a success
    assert imitated(sandbox).posts() == []


def test_find_sent_finds_the_article_of_a_timed_out_attempt(sandbox: Sandbox) -> None:
    channel = live(sandbox)
    rendered = channel.render(publication())
    found_before = channel.find_sent(rendered, delivery_id="pub_01JX-wordpress")
    earlier = channel.send(channel.render(publication("Marché jeudi.")), delivery_id="pub_01JW-wordpress")
    sandbox.inject_fault("wordpress", delay_seconds=1.0)
    impatient = live(sandbox)
    impatient.http = httpx.Client(timeout=0.3)
    with pytest.raises(TransientChannelError):
        impatient.send(rendered, delivery_id="pub_01JX-wordpress")
    deadline = time.monotonic() + 5
    while len(imitated(sandbox).posts()) < 2 and time.monotonic() < deadline:  # the category exists: the slow
        time.sleep(0.05)  # write was the article's

    found = channel.find_sent(rendered, delivery_id="pub_01JX-wordpress")
    other = channel.find_sent(rendered, delivery_id="pub_01JY-wordpress")

    [made] = [post for post in imitated(sandbox).posts() if post["id"] != int(earlier.external_id)]
    assert found_before is None
    assert found is not None
    assert (found.external_id, found.url) == (str(made["id"]), f"{sandbox.url}/wordpress/?p={made['id']}")
    assert other is None


def test_a_scheduled_publication_is_a_future_post(sandbox: Sandbox) -> None:
    channel = live(sandbox)
    at = datetime.now(UTC) + timedelta(hours=3)
    channel.send(channel.render(publication(publish_at=at)), delivery_id="pub_01JX-wordpress")
    assert [post["status"] for post in imitated(sandbox).posts()] == ["future"]


@pytest.mark.parametrize(("status", "code"), [(500, "provider_unavailable"), (503, "provider_unavailable")])
def test_faults_are_transient_and_create_nothing(sandbox: Sandbox, status: int, code: str) -> None:
    sandbox.inject_fault("wordpress", status=status, count=5)
    channel = live(sandbox)
    with pytest.raises(TransientChannelError) as raised:
        channel.send(channel.render(publication()), delivery_id="pub_01JX-wordpress")
    assert raised.value.code == code
    assert imitated(sandbox).posts() == []


def test_a_429_fault_carries_its_wait(sandbox: Sandbox) -> None:
    sandbox.inject_fault("wordpress", status=429, retry_after=17, count=5)
    channel = live(sandbox)
    with pytest.raises(TransientChannelError) as raised:
        channel.send(channel.render(publication()), delivery_id="pub_01JX-wordpress")
    assert raised.value.retry_after == 17.0


def test_a_wrong_password_asks_to_reconnect_and_a_subscriber_cannot_publish(sandbox: Sandbox) -> None:
    wrong = live(sandbox, password="zzzz zzzz zzzz zzzz zzzz zzzz")
    with pytest.raises(PermanentChannelError) as raised:
        wrong.check()
    assert (raised.value.code, raised.value.message) == ("needs_reconnect", RECONNECT)
    subscriber = live(sandbox, imitation.SUBSCRIBER, imitation.SUBSCRIBER_PASSWORD)
    assert subscriber.check().ok is False
    with pytest.raises(PermanentChannelError) as refused:
        subscriber.send(subscriber.render(publication()), delivery_id="pub_01JX-wordpress")
    assert refused.value.code == "rest_cannot_create"
    assert imitated(sandbox).posts() == []


def test_the_imitation_refuses_a_non_image_upload(sandbox: Sandbox) -> None:
    response = httpx.post(
        f"{sandbox.url}/wordpress/wp-json/wp/v2/media",
        content=b"pas une image",
        headers={
            "Authorization": "Basic " + base64.b64encode(f"mairie:{imitation.APPLICATION_PASSWORD}".encode()).decode(),
            "Content-Type": "image/jpeg",
            "Content-Disposition": 'attachment; filename="x.jpg"',
        },
    )
    assert response.status_code == 500
    assert response.json()["code"] == "rest_upload_sideload_error"
