"""Channel adapters against respx stand-ins of the providers' documented APIs."""

import email.parser
import email.policy
import io
import json
from datetime import UTC, datetime

import httpx
import pytest
import respx
from PIL import Image

from crieur.channels import mastodon
from crieur.channels.base import PermanentChannelError, RenderedPost, TransientChannelError
from crieur.channels.mastodon import MastodonChannel, MastodonCredentials, MastodonSettings
from crieur.channels.webhook import WebhookChannel, WebhookCredentials, WebhookSettings
from crieur.models import Publication
from crieur.outbound import guarded_client
from crieur.render.text import weighted_length
from crieur.security import new_webhook_secret, verify_webhook

INSTANCE = "https://mastodon.example"
EVENT = RenderedPost(text=None, payload={"type": "publication.published", "data": {"a": 1}})


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


@pytest.fixture
def toot() -> MastodonChannel:
    return MastodonChannel(
        MastodonSettings(instance_url=INSTANCE), MastodonCredentials(access_token="tok"), httpx.Client()
    )


@respx.mock
def test_mastodon_posts_with_bearer_and_idempotency_key(toot: MastodonChannel) -> None:
    respx.get(f"{INSTANCE}/api/v2/instance").respond(json={"configuration": {"statuses": {"max_characters": 500}}})
    route = respx.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "1101", "url": f"{INSTANCE}/@mairie/1101"})
    sent = toot.send(toot.render(publication()), delivery_id="pub_01JDELIVERY-mastodon")
    assert (sent.external_id, sent.url) == ("1101", f"{INSTANCE}/@mairie/1101")
    request = route.calls.last.request
    assert request.headers["Authorization"] == "Bearer tok"
    assert request.headers["Idempotency-Key"] == "pub_01JDELIVERY-mastodon"
    assert json.loads(request.content) == {
        "status": "Travaux\n\nLa rue de l'Église est fermée lundi.\n\n#actualité",
        "visibility": "public",
        "language": "fr",
    }


@respx.mock
def test_mastodon_text_fits_the_instance_limit(toot: MastodonChannel) -> None:
    respx.get(f"{INSTANCE}/api/v2/instance").respond(json={"configuration": {"statuses": {"max_characters": 300}}})
    payload = toot.render(publication("mot " * 2000, links=[{"url": "https://mairie.example.fr/" + "p" * 100}]))
    assert weighted_length(payload.payload["status"], 23) <= 300
    assert payload.payload["status"].endswith("p" * 100 + "\n#actualité")


@respx.mock
def test_mastodon_limit_defaults_to_500_when_the_instance_does_not_say(toot: MastodonChannel) -> None:
    respx.get(f"{INSTANCE}/api/v2/instance").respond(503)
    assert toot.max_length() == 500


@respx.mock
@pytest.mark.parametrize(
    ("status", "headers", "error", "code"),
    [
        (503, {}, TransientChannelError, "provider_unavailable"),
        (429, {"Retry-After": "42"}, TransientChannelError, "rate_limited"),
        (401, {}, PermanentChannelError, "needs_reconnect"),
        (422, {}, PermanentChannelError, "rejected"),
    ],
)
def test_mastodon_errors_are_classified(
    toot: MastodonChannel, status: int, headers: dict[str, str], error: type[Exception], code: str
) -> None:
    respx.post(f"{INSTANCE}/api/v1/statuses").respond(status, headers=headers, json={"error": "Nope"})
    with pytest.raises(error) as caught:
        toot.send(RenderedPost(text=None, payload={"status": "x"}), delivery_id="d")
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert caught.value.provider_message == "Nope"  # type: ignore[attr-defined]
    if status == 429:
        assert caught.value.retry_after == 42  # type: ignore[attr-defined]


@respx.mock
def test_mastodon_timeout_is_transient(toot: MastodonChannel) -> None:
    respx.post(f"{INSTANCE}/api/v1/statuses").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TransientChannelError) as caught:
        toot.send(RenderedPost(text=None, payload={"status": "x"}), delivery_id="d")
    assert caught.value.code == "timeout"


@respx.mock
def test_mastodon_delete(toot: MastodonChannel) -> None:
    route = respx.delete(f"{INSTANCE}/api/v1/statuses/1101").respond(json={"id": "1101"})
    toot.delete("1101")
    assert route.called


# -- Mastodon images ------------------------------------------------------------------------------------------

PHOTOS = "https://mairie.example.fr/photos"


def image_bytes(kind: str = "JPEG", size: tuple[int, int] = (64, 48), padding: int = 0) -> bytes:
    """A real image drawn by Pillow; `padding` bytes after its end make it heavier, still readable."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 120, 200)).save(buffer, format=kind)
    return buffer.getvalue() + b"\0" * padding


def serve(name: str, content: bytes, status: int = 200) -> respx.Route:
    return respx.get(f"{PHOTOS}/{name}").respond(status, content=content)


def medium(name: str, alt: str | None = None, kind: str = "image") -> dict[str, str]:
    return {"url": f"{PHOTOS}/{name}", "alt": alt or f"Photo {name}", "kind": kind}


def form_parts(request: httpx.Request) -> dict[str, tuple[str | None, str, bytes]]:
    """A multipart request's parts by name: (filename, content type, bytes)."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.content)
    parts = {}
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        parts[str(part.get_param("name", header="content-disposition"))] = (
            part.get_filename(),
            part.get_content_type(),
            payload,
        )
    return parts


def instance_says(**configuration: object) -> respx.Route:
    return respx.get(f"{INSTANCE}/api/v2/instance").respond(json={"configuration": configuration})


@respx.mock
def test_mastodon_uploads_each_image_with_its_alt_text_then_attaches_them(toot: MastodonChannel) -> None:
    instance_says(statuses={"max_characters": 500})
    jpeg, png = image_bytes("JPEG"), image_bytes("PNG")
    serve("mairie.jpg", jpeg)
    serve("marche.png", png)
    uploads = respx.post(f"{INSTANCE}/api/v2/media").mock(
        side_effect=[
            httpx.Response(200, json={"id": "m1", "type": "image", "url": f"{INSTANCE}/system/m1.jpg"}),
            httpx.Response(200, json={"id": "m2", "type": "image", "url": f"{INSTANCE}/system/m2.png"}),
        ]
    )
    polls = respx.get(url__startswith=f"{INSTANCE}/api/v1/media/")
    statuses = respx.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "1101", "url": f"{INSTANCE}/@m/1101"})
    pub = publication(
        media=[medium("mairie.jpg", "La façade de la mairie, pavoisée."), medium("marche.png", "Les étals du marché.")]
    )

    rendered = toot.render(pub)
    sent = toot.send(rendered, delivery_id="pub_01JDELIVERY-mastodon")

    assert [(decision.kept, decision.reason) for decision in rendered.media] == [(True, None), (True, None)]
    assert rendered.payload["media"] == [
        {"url": f"{PHOTOS}/mairie.jpg", "alt": "La façade de la mairie, pavoisée."},
        {"url": f"{PHOTOS}/marche.png", "alt": "Les étals du marché."},
    ]
    first, second = (form_parts(call.request) for call in uploads.calls)
    assert first["description"][2].decode() == "La façade de la mairie, pavoisée."
    assert first["file"] == ("image.jpg", "image/jpeg", jpeg)
    assert second["description"][2].decode() == "Les étals du marché."
    assert second["file"] == ("image.png", "image/png", png)
    assert all(call.request.headers["Authorization"] == "Bearer tok" for call in uploads.calls)
    assert not polls.called  # 200: already processed
    request = statuses.calls.last.request
    assert request.headers["Idempotency-Key"] == "pub_01JDELIVERY-mastodon"
    assert json.loads(request.content) == {
        "status": "Travaux\n\nLa rue de l'Église est fermée lundi.\n\n#actualité",
        "visibility": "public",
        "language": "fr",
        "media_ids": ["m1", "m2"],
    }
    assert sent.external_id == "1101"


@respx.mock
def test_mastodon_waits_for_an_upload_still_processing(toot: MastodonChannel) -> None:
    instance_says()
    serve("mairie.jpg", image_bytes())
    respx.post(f"{INSTANCE}/api/v2/media").respond(202, json={"id": "m7", "type": "image", "url": None})
    polls = respx.get(f"{INSTANCE}/api/v1/media/m7").mock(
        side_effect=[
            httpx.Response(206, json={"id": "m7", "url": None}),
            httpx.Response(200, json={"id": "m7", "url": f"{INSTANCE}/system/m7.jpg"}),
        ]
    )
    statuses = respx.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "1102"})
    toot.poll_delays = (0.0, 0.0, 0.0)

    toot.send(toot.render(publication(media=[medium("mairie.jpg")])), delivery_id="d")

    assert polls.call_count == 2
    assert polls.calls.last.request.headers["Authorization"] == "Bearer tok"
    assert json.loads(statuses.calls.last.request.content)["media_ids"] == ["m7"]


@respx.mock
def test_mastodon_upload_still_processing_after_a_few_seconds_is_retried_later(toot: MastodonChannel) -> None:
    instance_says()
    serve("mairie.jpg", image_bytes())
    respx.post(f"{INSTANCE}/api/v2/media").respond(202, json={"id": "m8", "url": None})
    polls = respx.get(f"{INSTANCE}/api/v1/media/m8").respond(206, json={"id": "m8", "url": None})
    statuses = respx.post(f"{INSTANCE}/api/v1/statuses")
    toot.poll_delays = (0.0, 0.0, 0.0)

    with pytest.raises(TransientChannelError) as caught:
        toot.send(toot.render(publication(media=[medium("mairie.jpg")])), delivery_id="d")

    assert caught.value.code == "media_processing"
    assert polls.call_count == 3
    assert not statuses.called
    assert sum(mastodon.POLL_DELAYS) <= 6  # bounded: the queue retries, the function does not wait long


@respx.mock
def test_mastodon_drops_media_it_cannot_take_with_a_reason(toot: MastodonChannel) -> None:
    instance = instance_says()  # silent: 16 MB and 4 images, Mastodon's defaults
    serve("lourde.jpg", image_bytes(padding=17 * 1024 * 1024))
    serve("page.jpg", b"<!DOCTYPE html><html><body>Pas une image</body></html>")
    video = serve("film.mp4", b"\0\0\0\x18ftypmp42" + b"\0" * 100)
    pngs = [serve(f"{n}.png", image_bytes("PNG")) for n in range(1, 6)]
    pub = publication(
        media=[
            medium("lourde.jpg"),
            medium("page.jpg"),
            medium("film.mp4", kind="video"),
            *(medium(f"{n}.png") for n in range(1, 6)),
        ]
    )

    rendered = toot.render(pub)

    reasons = {decision.url.rsplit("/", 1)[1]: decision.reason for decision in rendered.media if not decision.kept}
    assert reasons.keys() == {"lourde.jpg", "page.jpg", "film.mp4", "5.png"}
    assert reasons["lourde.jpg"] == (
        f"L'image {PHOTOS}/lourde.jpg pèse 17 Mo ; cette instance Mastodon en accepte au plus 16 Mo : réduisez-la."
    )
    assert "n'est ni une image" in (reasons["page.jpg"] or "")
    assert reasons["film.mp4"] == mastodon.VIDEO_REASON
    assert "au plus 4 image(s)" in (reasons["5.png"] or "")
    assert [item["url"].rsplit("/", 1)[1] for item in rendered.payload["media"]] == ["1.png", "2.png", "3.png", "4.png"]
    assert not video.called  # videos are not even downloaded
    assert not pngs[4].called  # nor an image beyond the instance's number
    assert instance.call_count == 1


@respx.mock
def test_mastodon_limits_come_from_one_cached_instance_document(toot: MastodonChannel) -> None:
    instance = instance_says(
        statuses={"max_characters": 300, "max_media_attachments": 2},
        media_attachments={"image_size_limit": 2048},
    )
    serve("petite.png", image_bytes("PNG", (8, 8)))
    serve("grande.jpg", image_bytes(padding=4096))
    serve("autre.png", image_bytes("PNG", (8, 8)))
    serve("encore.png", image_bytes("PNG", (8, 8)))
    pub = publication(media=[medium("petite.png"), medium("grande.jpg"), medium("autre.png"), medium("encore.png")])

    first = toot.render(pub)
    again = toot.render(pub)

    assert instance.call_count == 1  # one GET /api/v2/instance an hour
    assert first.limit == again.limit == toot.max_length() == 300
    assert [decision.kept for decision in first.media] == [True, False, True, False]
    assert "au plus 2 Ko" in (first.media[1].reason or "")
    assert "au plus 2 image(s)" in (first.media[3].reason or "")


@respx.mock
def test_mastodon_media_host_down_is_transient_and_a_missing_one_is_dropped(toot: MastodonChannel) -> None:
    instance_says()
    serve("en-panne.jpg", b"", status=503)
    serve("disparue.jpg", b"", status=404)

    with pytest.raises(TransientChannelError) as caught:
        toot.render(publication(media=[medium("en-panne.jpg")]))
    rendered = toot.render(publication(media=[medium("disparue.jpg")]))

    assert caught.value.code == "media_unavailable"
    [dropped] = rendered.media
    assert not dropped.kept
    assert "introuvable (erreur 404)" in (dropped.reason or "")
    assert rendered.payload["media"] == []


@respx.mock
def test_mastodon_refused_upload_is_classified_and_posts_nothing(toot: MastodonChannel) -> None:
    instance_says()
    serve("mairie.jpg", image_bytes())
    respx.post(f"{INSTANCE}/api/v2/media").respond(
        422, json={"error": "Validation failed: File content type is invalid"}
    )
    statuses = respx.post(f"{INSTANCE}/api/v1/statuses")

    with pytest.raises(PermanentChannelError) as caught:
        toot.send(toot.render(publication(media=[medium("mairie.jpg")])), delivery_id="d")

    assert caught.value.code == "rejected"
    assert caught.value.provider_message == "Validation failed: File content type is invalid"
    assert not statuses.called


@pytest.fixture
def account_cache() -> None:
    mastodon._account_ids.clear()


def mastodon_status(status_id: str, content: str, created_at: str = "2026-11-27T00:00:05.000Z") -> dict[str, object]:
    return {"id": status_id, "created_at": created_at, "content": content, "url": f"{INSTANCE}/@mairie/{status_id}"}


# What Mastodon 4 makes of "Travaux\n\nLa rue de l'Église & la place…\n\nPlan : https://…\n#actualité".
RENDERED_AS = (
    "<p>Travaux</p><p>La rue de l&#39;Église &amp; la place sont fermées lundi.</p><p>Plan : "
    '<a href="https://mairie.example.fr/travaux/plan-de-la-deviation" target="_blank" rel="nofollow noopener" '
    'translate="no"><span class="invisible">https://</span><span class="ellipsis">mairie.example.fr/travaux/pla'
    '</span><span class="invisible">n-de-la-deviation</span></a><br /><a href="https://mastodon.example/tags/'
    'actualit%C3%A9" class="mention hashtag" rel="tag">#<span>actualité</span></a></p>'
)


def test_status_text_reads_the_html_back_as_the_text_posted() -> None:
    assert mastodon.status_text(RENDERED_AS) == (
        "Travaux\n\nLa rue de l'Église & la place sont fermées lundi.\n\n"
        "Plan : https://mairie.example.fr/travaux/plan-de-la-deviation\n#actualité"
    )


@respx.mock
def test_mastodon_find_sent_reads_the_account_statuses_since_the_publication(
    toot: MastodonChannel, account_cache: None
) -> None:
    instance_says()
    me = respx.get(f"{INSTANCE}/api/v1/accounts/verify_credentials").respond(json={"id": "109", "acct": "mairie"})
    rendered = toot.render(
        publication(
            "La rue de l'Église & la place sont fermées lundi.",
            links=[{"url": "https://mairie.example.fr/travaux/plan-de-la-deviation", "label": "Plan"}],
        )
    )
    newer = [mastodon_status(str(2000 - n), f"<p>Avis {n}</p>") for n in range(40)]
    statuses = respx.get(f"{INSTANCE}/api/v1/accounts/109/statuses").mock(
        side_effect=[
            httpx.Response(200, json=newer),
            httpx.Response(200, json=[mastodon_status("1101", RENDERED_AS)]),
            httpx.Response(200, json=[mastodon_status("1100", "<p>Autre</p>")]),
        ]
    )

    found = toot.find_sent(rendered, delivery_id="pub_01JDELIVERY-mastodon")
    missing = toot.find_sent(toot.render(publication("Jamais publié.")), delivery_id="d")

    assert found is not None
    assert (found.external_id, found.url) == ("1101", f"{INSTANCE}/@mairie/1101")
    assert missing is None
    assert me.call_count == 1  # the account's id is kept
    first, second, _ = (call.request for call in statuses.calls)
    assert first.headers["Authorization"] == "Bearer tok"
    assert dict(first.url.params) == {"limit": "40", "exclude_replies": "true", "exclude_reblogs": "true"}
    assert second.url.params["max_id"] == "1961"


@respx.mock
def test_mastodon_find_sent_stops_at_statuses_older_than_the_publication(
    toot: MastodonChannel, account_cache: None
) -> None:
    instance_says()
    respx.get(f"{INSTANCE}/api/v1/accounts/verify_credentials").respond(json={"id": "109"})
    rendered = toot.render(publication())
    older = mastodon_status("900", f"<p>{rendered.text}</p>", created_at="2026-11-26T23:58:59.000Z")
    statuses = respx.get(f"{INSTANCE}/api/v1/accounts/109/statuses").respond(json=[older] * 40)

    assert toot.find_sent(rendered, delivery_id="d") is None  # the same text, but before the publication
    assert statuses.call_count == 1


@respx.mock
@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (httpx.Response(503), "provider_unavailable"),
        (httpx.Response(429, headers={"X-RateLimit-Reset": "2026-11-27T00:05:00Z"}), "rate_limited"),
        (httpx.Response(401, json={"error": "The access token is invalid"}), "lookup_failed"),
        (httpx.Response(404, json={"error": "Record not found"}), "lookup_failed"),
    ],
)
def test_mastodon_find_sent_never_takes_a_failed_lookup_for_an_answer(
    toot: MastodonChannel, account_cache: None, answer: httpx.Response, code: str
) -> None:
    instance_says()
    respx.get(f"{INSTANCE}/api/v1/accounts/verify_credentials").respond(json={"id": "109"})
    respx.get(f"{INSTANCE}/api/v1/accounts/109/statuses").mock(return_value=answer)

    with pytest.raises(TransientChannelError) as raised:
        toot.find_sent(toot.render(publication()), delivery_id="d")

    assert raised.value.code == code


@respx.mock
def test_webhook_is_signed_as_standard_webhooks_says() -> None:
    secret = new_webhook_secret()
    route = respx.post("https://site.example/hooks/crieur").respond(204)
    channel = WebhookChannel(
        WebhookSettings(url="https://site.example/hooks/crieur"), WebhookCredentials(secret=secret), httpx.Client()
    )
    sent = channel.send(channel.render(publication()), delivery_id="pub_01JDELIVERY-webhook")
    request = route.calls.last.request
    verify_webhook([secret], dict(request.headers), request.content)
    assert request.headers["webhook-id"] == sent.external_id == "pub_01JDELIVERY-webhook"
    body = json.loads(request.content)
    assert body["type"] == "publication.published"
    assert body["data"]["title"] == "Travaux"


@respx.mock
def test_webhook_gone_is_permanent() -> None:
    respx.post("https://site.example/hook").respond(410)
    channel = WebhookChannel(
        WebhookSettings(url="https://site.example/hook"),
        WebhookCredentials(secret=new_webhook_secret()),
        httpx.Client(),
    )
    with pytest.raises(PermanentChannelError):
        channel.send(
            RenderedPost(text=None, payload={"type": "publication.published", "data": {"a": 1}}), delivery_id="d"
        )


def test_webhook_settings_refuse_plain_http_outside_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRIEUR_ALLOW_PRIVATE_TARGETS", raising=False)
    with pytest.raises(ValueError, match="https"):
        WebhookSettings(url="http://site.example/hook")
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    assert str(WebhookSettings(url="http://127.0.0.1:3001/hook").url).startswith("http://")


def test_outbound_requests_to_loopback_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRIEUR_ALLOW_PRIVATE_TARGETS", raising=False)
    channel = WebhookChannel(
        WebhookSettings(url="https://127.0.0.1:9/hook"),
        WebhookCredentials(secret=new_webhook_secret()),
        guarded_client(),
    )
    with pytest.raises(PermanentChannelError) as caught:
        channel.send(
            RenderedPost(text=None, payload={"type": "publication.published", "data": {"a": 1}}), delivery_id="d"
        )
    assert caught.value.code == "forbidden_target"
