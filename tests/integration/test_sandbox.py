"""The channel sandbox, driven by Crieur's real channel adapters over loopback HTTP (no internet).

Each test starts its own sandbox on a free port; the adapters are built exactly as the delivery worker
builds them, with the sandbox's URLs as the commune's settings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crieur.channels.base import PermanentChannelError, RenderedPost, TransientChannelError
from crieur.channels.mastodon import MastodonChannel, MastodonCredentials, MastodonSettings
from crieur.channels.webhook import WebhookChannel, WebhookCredentials, WebhookSettings
from crieur.models import Link, Media, Publication, utc_now
from crieur.security import new_webhook_secret
from infra.local.sandbox import Sandbox, demo_photo, mastodon_length


def post(payload: dict[str, Any]) -> RenderedPost:
    """A hand-made payload, as `render` would hand it to `send`."""
    return RenderedPost(text=str(payload.get("status", "")), payload=payload)


TOKEN = "jeton-du-bac-a-sable"


@pytest.fixture(autouse=True)
def _private_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    # The settings validators accept plain http (the sandbox) only where private targets are allowed.
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(port=0)
    box.start()
    box.register_mastodon_token(TOKEN)
    yield box
    box.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def publication(body: str = "Les travaux de la rue de la Mairie commencent lundi.", **fields: Any) -> Publication:
    return Publication(
        id="pub_01",
        commune="35238",
        status="publishing",
        created_at=utc_now(),
        title="Travaux rue de la Mairie",
        body=body,
        **fields,
    )


def mastodon(sandbox: Sandbox, http: httpx.Client, token: str = TOKEN) -> MastodonChannel:
    channel = MastodonChannel(
        MastodonSettings(instance_url=sandbox.mastodon_url()),
        MastodonCredentials(access_token=token),
        http,
    )
    channel.poll_delays = (0.05, 0.05, 0.05)  # the sandbox processes an upload on the second look
    return channel


def webhook(sandbox: Sandbox, http: httpx.Client, secret: str, name: str = "mairie") -> WebhookChannel:
    return WebhookChannel(
        WebhookSettings(url=sandbox.webhook_url(name)),
        WebhookCredentials(secret=secret),
        http,
    )


def created(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The requests that made a post: answered 200 and not a replay."""
    return [item for item in items if item["status"] == 200 and not item["duplicate"]]


# ------------------------------------------------------------------------------------------- Mastodon


def test_a_status_is_posted_and_received(sandbox: Sandbox, http: httpx.Client) -> None:
    channel = mastodon(sandbox, http)
    payload = channel.render(publication())

    sent = channel.send(payload, delivery_id="pub_01-mastodon")

    [item] = sandbox.received("mastodon")
    assert item["id"] == sent.external_id
    assert item["status"] == 200
    assert payload.payload["media"] == []
    assert item["body"] == {key: value for key, value in payload.payload.items() if key not in ("media", "since")}
    assert item["headers"]["authorization"] == "Bearer [redacted]"
    assert item["headers"]["idempotency-key"] == "pub_01-mastodon"
    assert sent.url == f"{sandbox.mastodon_url()}/@demo/{sent.external_id}"
    status = http.get(f"{sandbox.mastodon_url()}/api/v1/statuses/{sent.external_id}").json()
    assert status["content"].startswith("<p>Travaux rue de la Mairie</p><p>Les travaux")
    assert status["visibility"] == "public"
    assert status["language"] == "fr"
    assert status["account"]["acct"] == "demo"
    assert status["media_attachments"] == []


def test_the_instance_announces_its_limits(sandbox: Sandbox, http: httpx.Client) -> None:
    response = http.get(f"{sandbox.mastodon_url()}/api/v2/instance")

    assert response.status_code == 200
    statuses = response.json()["configuration"]["statuses"]
    assert statuses["max_characters"] == 500
    assert statuses["characters_reserved_per_url"] == 23
    assert response.json()["domain"] == sandbox.url.removeprefix("http://")
    assert response.headers["x-ratelimit-limit"] == "300"
    assert mastodon(sandbox, http).max_length() == 500
    assert sandbox.received() == []  # reading the instance is not something a channel "received"


def test_the_same_delivery_twice_posts_once(sandbox: Sandbox, http: httpx.Client) -> None:
    channel = mastodon(sandbox, http)
    payload = channel.render(publication())

    first = channel.send(payload, delivery_id="pub_01-mastodon")
    again = channel.send(payload, delivery_id="pub_01-mastodon")
    other = channel.send(payload, delivery_id="pub_02-mastodon")

    assert again.external_id == first.external_id
    assert other.external_id != first.external_id
    assert int(other.external_id) > int(first.external_id)
    items = sandbox.received("mastodon")
    assert [item["duplicate"] for item in items] == [False, True, False]
    assert items[1]["attempt"] == 2
    assert len(created(items)) == 2


def test_a_503_is_transient_and_creates_nothing(sandbox: Sandbox, http: httpx.Client) -> None:
    channel = mastodon(sandbox, http)
    payload = channel.render(publication())
    sandbox.inject_fault("mastodon", status=503)

    with pytest.raises(TransientChannelError) as raised:
        channel.send(payload, delivery_id="pub_01-mastodon")
    sent = channel.send(payload, delivery_id="pub_01-mastodon")  # the fault applied once

    assert raised.value.code == "provider_unavailable"
    assert "temporary problem" in (raised.value.provider_message or "")
    failed, ok = sandbox.received("mastodon")
    assert (failed["status"], failed["id"]) == (503, None)
    assert (ok["status"], ok["id"], ok["duplicate"]) == (200, sent.external_id, False)


def test_a_429_says_when_to_retry(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.inject_fault("mastodon", status=429, retry_after=7)

    with pytest.raises(TransientChannelError) as raised:
        mastodon(sandbox, http).send(post({"status": "Bonjour"}), delivery_id="d1")

    assert raised.value.code == "rate_limited"
    assert raised.value.retry_after == 7
    assert raised.value.provider_message == "Too many requests"


@pytest.mark.parametrize(("status", "code"), [(422, "rejected"), (401, "needs_reconnect")])
def test_422_and_401_faults_are_permanent(sandbox: Sandbox, http: httpx.Client, status: int, code: str) -> None:
    sandbox.inject_fault("mastodon", status=status)

    with pytest.raises(PermanentChannelError) as raised:
        mastodon(sandbox, http).send(post({"status": "Bonjour"}), delivery_id="d1")

    assert raised.value.code == code
    assert [item["status"] for item in sandbox.received("mastodon")] == [status]


def test_an_unknown_token_is_refused_permanently(sandbox: Sandbox, http: httpx.Client) -> None:
    with pytest.raises(PermanentChannelError) as raised:
        mastodon(sandbox, http, token="jeton-revoque").send(post({"status": "Bonjour"}), delivery_id="d1")

    assert raised.value.code == "needs_reconnect"
    assert raised.value.provider_message == "The access token is invalid"
    assert created(sandbox.received()) == []


def test_the_channel_test_verifies_the_token(sandbox: Sandbox, http: httpx.Client) -> None:
    assert mastodon(sandbox, http).check().account == "@demo"
    with pytest.raises(PermanentChannelError) as raised:
        mastodon(sandbox, http, token="jeton-revoque").check()
    assert raised.value.code == "needs_reconnect"


def test_mastodon_validation_errors(sandbox: Sandbox, http: httpx.Client) -> None:
    url = f"{sandbox.mastodon_url()}/api/v1/statuses"
    auth = {"Authorization": f"Bearer {TOKEN}"}

    blank = http.post(url, data={"status": "  "}, headers=auth)
    too_long = http.post(url, json={"status": "a" * 501}, headers=auth)
    # A URL counts 23 whatever its length: 450 letters and a 200-character URL fit.
    long_url = "https://example.fr/" + "x" * 181
    fits = http.post(url, data={"status": "a" * 450 + " " + long_url, "visibility": "unlisted"}, headers=auth)
    anonymous = http.post(url, json={"status": "Bonjour"})

    assert (blank.status_code, blank.json()) == (422, {"error": "Validation failed: Text can't be blank"})
    assert too_long.status_code == 422
    assert "character limit of 500" in too_long.json()["error"]
    assert fits.status_code == 200, fits.text
    assert fits.json()["visibility"] == "unlisted"
    assert (anonymous.status_code, anonymous.json()) == (401, {"error": "The access token is invalid"})
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(fits.headers)
    with pytest.raises(PermanentChannelError):
        mastodon(sandbox, http).send(post({"status": ""}), delivery_id="d1")


def test_a_delay_longer_than_the_client_timeout_is_transient(sandbox: Sandbox) -> None:
    sandbox.inject_fault("mastodon", delay_seconds=1.0)
    with httpx.Client(timeout=0.5) as impatient:
        channel = mastodon(sandbox, impatient)
        payload = channel.render(publication())

        with pytest.raises(TransientChannelError) as raised:
            channel.send(payload, delivery_id="pub_01-mastodon")
        assert raised.value.code == "timeout"

        # The slow instance did post in the end; the retry finds it through the Idempotency-Key.
        deadline = time.monotonic() + 5
        while not sandbox.received("mastodon") and time.monotonic() < deadline:
            time.sleep(0.05)
        retried = channel.send(payload, delivery_id="pub_01-mastodon")

    first, replay = sandbox.received("mastodon")
    assert first["id"] == retried.external_id
    assert replay["duplicate"] is True
    assert len(created([first, replay])) == 1


def test_find_sent_finds_a_timed_out_status_without_its_idempotency_key(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.inject_fault("mastodon", delay_seconds=1.0)
    rendered = mastodon(sandbox, http).render(
        publication("Fête & bal ce soir : https://mairie.example.fr/fete.\nVenez nombreux !")
    )
    with httpx.Client(timeout=0.5) as impatient, pytest.raises(TransientChannelError):
        mastodon(sandbox, impatient).send(rendered, delivery_id="pub_01-mastodon")
    deadline = time.monotonic() + 5
    while not sandbox.received("mastodon") and time.monotonic() < deadline:
        time.sleep(0.05)
    for number in range(3):  # the account posts on
        mastodon(sandbox, http).send(post({"status": f"Avis {number}"}), delivery_id=f"d{number}")

    found = mastodon(sandbox, http).find_sent(rendered, delivery_id="pub_01-mastodon")
    other = mastodon(sandbox, http).find_sent(
        mastodon(sandbox, http).render(publication("Jamais publié.")), delivery_id="pub_02-mastodon"
    )

    first = sandbox.received("mastodon")[0]
    assert found is not None
    assert (found.external_id, found.url) == (first["id"], f"{sandbox.mastodon_url()}/@demo/{first['id']}")
    assert other is None


def test_the_account_statuses_are_listed_newest_first_page_by_page(sandbox: Sandbox, http: httpx.Client) -> None:
    channel = mastodon(sandbox, http)
    made = [channel.send(post({"status": f"Avis {n}"}), delivery_id=f"d{n}").external_id for n in range(5)]
    channel.delete(made[2])
    url = f"{sandbox.mastodon_url()}/api/v1/accounts/1/statuses"

    first = http.get(url, params={"limit": 2}, headers={"Authorization": f"Bearer {TOKEN}"})
    second = http.get(first.links["next"]["url"], headers={"Authorization": f"Bearer {TOKEN}"})

    assert [status["id"] for status in first.json()] == [made[4], made[3]]
    assert [status["id"] for status in second.json()] == [made[1], made[0]]
    assert "next" not in second.links
    assert http.get(f"{sandbox.mastodon_url()}/api/v1/accounts/2/statuses").status_code == 404


def test_a_long_body_is_cut_to_the_instance_limit(sandbox: Sandbox, http: httpx.Client) -> None:
    words = "Le conseil municipal se réunira en séance publique pour examiner le budget. "
    body = (words * 60)[:3000]
    channel = mastodon(sandbox, http)
    pub = publication(body, links=[Link(url="https://www.exemple-mairie.fr/conseil/2026/budget-primitif")])

    sent = channel.send(channel.render(pub), delivery_id="pub_01-mastodon")

    [item] = sandbox.received("mastodon")
    text = item["body"]["status"]
    assert item["status"] == 200
    assert item["id"] == sent.external_id
    assert mastodon_length(text) <= 500
    assert len(text) > 450  # the budget is used, not wasted
    assert text.startswith("Travaux rue de la Mairie\n\n")
    assert "…" in text
    assert text.endswith("https://www.exemple-mairie.fr/conseil/2026/budget-primitif\n#actualité")


def test_urls_followed_by_punctuation_still_fit(sandbox: Sandbox, http: httpx.Client) -> None:
    channel = mastodon(sandbox, http)
    pub = publication(("Voir https://www.exemple-mairie.fr/travaux. " * 80)[:3000])

    channel.send(channel.render(pub), delivery_id="pub_01-mastodon")


def test_delete_removes_the_status(sandbox: Sandbox, http: httpx.Client) -> None:
    channel = mastodon(sandbox, http)
    sent = channel.send(post({"status": "À retirer"}), delivery_id="d1")
    status_url = f"{sandbox.mastodon_url()}/api/v1/statuses/{sent.external_id}"

    channel.delete(sent.external_id)

    assert http.get(status_url).status_code == 404
    deleted_again = http.delete(status_url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert (deleted_again.status_code, deleted_again.json()) == (404, {"error": "Record not found"})
    assert [(item["method"], item["status"]) for item in sandbox.received("mastodon")] == [
        ("POST", 200),
        ("DELETE", 200),
        ("DELETE", 404),
    ]


def test_concurrent_posts_get_distinct_increasing_ids(sandbox: Sandbox) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def send_one(n: int) -> None:
        with httpx.Client(timeout=5.0) as client:
            sent = mastodon(sandbox, client).send(post({"status": f"Message {n}"}), delivery_id=f"d{n}")
        with lock:
            ids.append(sent.external_id)

    threads = [threading.Thread(target=send_one, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(ids)) == 12
    recorded = [item["id"] for item in sandbox.received("mastodon")]
    assert sorted(recorded) == sorted(ids)


# ------------------------------------------------------------------------------------------- Mastodon images

ALT = "La mairie pavoisée, vue depuis la place : façade claire, toit rouge, trois fenêtres bleues."


def with_photo(sandbox: Sandbox, alt: str = ALT, **fields: Any) -> Publication:
    return publication(media=[Media.model_validate({"url": sandbox.demo_photo_url(), "alt": alt})], **fields)


def upload(http: httpx.Client, sandbox: Sandbox, content: bytes, description: str = ALT, token: str = TOKEN) -> Any:
    return http.post(
        f"{sandbox.mastodon_url()}/api/v2/media",
        files={"file": ("photo.jpg", content, "image/jpeg")},
        data={"description": description},
        headers={"Authorization": f"Bearer {token}"},
    )


def processed(http: httpx.Client, sandbox: Sandbox, media_id: str) -> dict[str, Any]:
    url = f"{sandbox.mastodon_url()}/api/v1/media/{media_id}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    first, second = http.get(url, headers=auth), http.get(url, headers=auth)
    assert (first.status_code, first.json()["url"]) == (206, None)
    assert second.status_code == 200
    return dict(second.json())


def test_an_image_is_posted_with_its_alt_text(sandbox: Sandbox, http: httpx.Client) -> None:
    channel = mastodon(sandbox, http)
    rendered = channel.render(with_photo(sandbox))

    sent = channel.send(rendered, delivery_id="pub_01-mastodon")

    [decision] = rendered.media
    assert (decision.kept, decision.alt) == (True, ALT)
    uploaded, posted = sandbox.received("mastodon")
    assert (uploaded["method"], uploaded["path"], uploaded["status"]) == ("POST", "/mastodon/api/v2/media", 202)
    assert uploaded["body"]["description"] == ALT
    assert uploaded["body"]["file"]["content_type"] == "image/jpeg"
    assert uploaded["body"]["file"]["size"] == len(demo_photo())
    assert uploaded["headers"]["authorization"] == "Bearer [redacted]"
    assert (posted["path"], posted["status"], posted["id"]) == ("/mastodon/api/v1/statuses", 200, sent.external_id)
    assert posted["body"]["media_ids"] == [uploaded["id"]]
    status = http.get(f"{sandbox.mastodon_url()}/api/v1/statuses/{sent.external_id}").json()
    [attachment] = status["media_attachments"]
    assert attachment["id"] == uploaded["id"]
    assert attachment["type"] == "image"
    assert attachment["description"] == ALT
    assert attachment["url"] == f"{sandbox.mastodon_url()}/system/media/{uploaded['id']}"
    assert attachment["meta"]["original"] == {"width": 1200, "height": 900, "size": "1200x900", "aspect": 1200 / 900}
    image = http.get(attachment["url"])
    assert (image.status_code, image.headers["content-type"], image.content) == (200, "image/jpeg", demo_photo())
    page = http.get(f"{sandbox.url}/").text
    assert f'<img src="{attachment["url"]}" alt="{ALT}"' in page
    assert "texte alternatif : " + ALT in page


def test_the_instance_image_size_limit_drops_the_image_with_a_reason(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.mastodon_image_size_limit = 20_000  # the demo photo weighs about 31 KB
    channel = mastodon(sandbox, http)

    rendered = channel.render(with_photo(sandbox))
    sent = channel.send(rendered, delivery_id="pub_01-mastodon")

    [decision] = rendered.media
    assert not decision.kept
    assert "au plus 20 Ko" in (decision.reason or "")
    [posted] = sandbox.received("mastodon")  # no upload
    assert "media_ids" not in posted["body"]
    status = http.get(f"{sandbox.mastodon_url()}/api/v1/statuses/{sent.external_id}").json()
    assert status["media_attachments"] == []
    too_big = upload(http, sandbox, demo_photo())
    assert (too_big.status_code, too_big.json()) == (
        422,
        {"error": "Validation failed: File file size must be less than 19.5 KB"},
    )


def test_uploads_are_checked_like_mastodon_does(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.register_mastodon_token("autre-jeton")
    statuses = f"{sandbox.mastodon_url()}/api/v1/statuses"
    auth = {"Authorization": f"Bearer {TOKEN}"}

    not_an_image = upload(http, sandbox, b"%PDF-1.7 un arrete municipal")
    anonymous = upload(http, sandbox, demo_photo(), token="inconnu")
    theirs = upload(http, sandbox, demo_photo(), token="autre-jeton").json()["id"]
    mine = upload(http, sandbox, demo_photo()).json()["id"]
    unknown = http.post(statuses, json={"status": "Bonjour", "media_ids": ["4242"]}, headers=auth)
    too_soon = http.post(statuses, json={"status": "Bonjour", "media_ids": [mine]}, headers=auth)
    processed(http, sandbox, mine)
    not_mine = http.post(statuses, json={"status": "Bonjour", "media_ids": [theirs]}, headers=auth)
    without_text = http.post(statuses, json={"status": "", "media_ids": [mine]}, headers=auth)
    again = http.post(statuses, data={"status": "Encore", "media_ids[]": [mine]}, headers=auth)

    assert (not_an_image.status_code, not_an_image.json()) == (
        422,
        {"error": "Validation failed: File content type is invalid"},
    )
    assert (anonymous.status_code, anonymous.json()) == (401, {"error": "The access token is invalid"})
    assert (unknown.status_code, unknown.json()) == (
        422,
        {"error": "Media attachment 4242 not found or already attached to another post"},
    )
    assert (too_soon.status_code, too_soon.json()) == (
        422,
        {"error": "Cannot attach files that have not finished processing. Try again in a moment!"},
    )
    assert not_mine.status_code == 422
    assert "not found or already attached" in not_mine.json()["error"]
    assert without_text.status_code == 200, without_text.text  # a status with media may have no text
    assert [item["id"] for item in without_text.json()["media_attachments"]] == [mine]
    assert (again.status_code, again.json()["error"]) == (
        422,
        f"Media attachment {mine} not found or already attached to another post",
    )
    attached = http.get(f"{sandbox.mastodon_url()}/api/v1/media/{mine}", headers=auth)
    assert attached.status_code == 404  # once attached, it belongs to its status
    assert http.get(f"{sandbox.mastodon_url()}/system/media/4242").status_code == 404


def test_a_fault_applies_to_the_upload_too(sandbox: Sandbox, http: httpx.Client) -> None:
    channel = mastodon(sandbox, http)
    rendered = channel.render(with_photo(sandbox))
    sandbox.inject_fault("mastodon", status=503)

    with pytest.raises(TransientChannelError):
        channel.send(rendered, delivery_id="pub_01-mastodon")
    sent = channel.send(rendered, delivery_id="pub_01-mastodon")

    failed, uploaded, posted = sandbox.received("mastodon")
    assert (failed["path"], failed["status"], failed["id"]) == ("/mastodon/api/v2/media", 503, None)
    assert (uploaded["status"], posted["status"], posted["id"]) == (202, 200, sent.external_id)


def test_a_retried_delivery_posts_once_and_leaves_its_new_upload_unattached(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    channel = mastodon(sandbox, http)
    rendered = channel.render(with_photo(sandbox))

    first = channel.send(rendered, delivery_id="pub_01-mastodon")
    again = channel.send(rendered, delivery_id="pub_01-mastodon")

    assert again.external_id == first.external_id
    upload_1, status_1, upload_2, replay = sandbox.received("mastodon")
    assert replay["duplicate"] is True
    status = http.get(f"{sandbox.mastodon_url()}/api/v1/statuses/{first.external_id}").json()
    assert [item["id"] for item in status["media_attachments"]] == [upload_1["id"]]
    # The second upload is an orphan: never attached, which Mastodon cleans up by itself.
    orphan = http.get(
        f"{sandbox.mastodon_url()}/api/v1/media/{upload_2['id']}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert orphan.status_code == 200
    assert status_1["body"]["media_ids"] != replay["body"]["media_ids"]


# ------------------------------------------------------------------------------------------- webhook


def test_a_signed_webhook_is_verified_and_received(sandbox: Sandbox, http: httpx.Client) -> None:
    secret = new_webhook_secret()
    sandbox.register_webhook_secret("mairie", secret)
    channel = webhook(sandbox, http, secret)
    payload = channel.render(publication())

    sent = channel.send(payload, delivery_id="pub_01-webhook")
    again = channel.send(payload, delivery_id="pub_01-webhook")

    assert sent.external_id == again.external_id == "pub_01-webhook"
    first, duplicate = sandbox.received("webhook")
    assert first["status"] == duplicate["status"] == 204
    assert first["signature_valid"] is True
    assert first["id"] == "pub_01-webhook"
    assert first["name"] == "mairie"
    assert {key: first["body"][key] for key in ("type", "data")} == payload.payload
    assert first["body"]["data"]["title"] == "Travaux rue de la Mairie"
    assert (first["duplicate"], duplicate["duplicate"]) == (False, True)


def test_a_wrong_secret_is_refused_permanently(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.register_webhook_secret("mairie", new_webhook_secret())
    channel = webhook(sandbox, http, new_webhook_secret())

    with pytest.raises(PermanentChannelError) as raised:
        channel.send(channel.render(publication()), delivery_id="pub_01-webhook")

    assert raised.value.code == "needs_reconnect"
    [item] = sandbox.received("webhook")
    assert (item["status"], item["signature_valid"]) == (401, False)
    assert item["rejected"] == "signature invalide"


def test_a_webhook_without_a_registered_secret_is_taken_unverified(sandbox: Sandbox, http: httpx.Client) -> None:
    channel = webhook(sandbox, http, new_webhook_secret(), name="site de l'école")

    channel.send(channel.render(publication()), delivery_id="pub_01-webhook")

    [item] = sandbox.received("webhook")
    assert (item["status"], item["signature_valid"], item["name"]) == (204, None, "site de l'école")


def test_webhook_faults(sandbox: Sandbox, http: httpx.Client) -> None:
    channel = webhook(sandbox, http, new_webhook_secret())
    payload = channel.render(publication())
    sandbox.inject_fault("webhook", status=500, count=2)

    for _ in range(2):
        with pytest.raises(TransientChannelError):
            channel.send(payload, delivery_id="pub_01-webhook")
    channel.send(payload, delivery_id="pub_01-webhook")

    assert [(item["status"], item["duplicate"]) for item in sandbox.received("webhook")] == [
        (500, False),
        (500, False),
        (204, False),  # the faulted attempts never reached the receiver: this is the first delivery
    ]


def test_a_410_says_the_receiver_is_gone(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.inject_fault("webhook", status=410)
    channel = webhook(sandbox, http, new_webhook_secret())

    with pytest.raises(PermanentChannelError) as raised:
        channel.send(channel.render(publication()), delivery_id="pub_01-webhook")

    assert raised.value.code == "gone"


# ------------------------------------------------------------------------------------------- inspection


def test_faults_and_received_over_http(sandbox: Sandbox, http: httpx.Client) -> None:
    fault = {"channel": "mastodon", "status": 503, "count": 1, "delay_seconds": 0, "retry_after": 30}

    injected = http.post(f"{sandbox.url}/_sandbox/faults", json=fault)
    listed = http.get(f"{sandbox.url}/_sandbox/faults").json()["items"]
    with pytest.raises(TransientChannelError) as raised:
        mastodon(sandbox, http).send(post({"status": "Bonjour"}), delivery_id="d1")
    http.post(f"{sandbox.url}/_sandbox/faults", json={**fault, "count": 5})
    cleared = http.delete(f"{sandbox.url}/_sandbox/faults")
    mastodon(sandbox, http).send(post({"status": "Bonjour"}), delivery_id="d1")
    webhook(sandbox, http, new_webhook_secret()).send(
        post({"type": "publication.published", "data": {"test": True}}), delivery_id="w1"
    )

    assert injected.status_code == 201
    assert listed == [fault]
    assert raised.value.retry_after == 30
    assert cleared.status_code == 204
    assert sandbox.faults() == []
    everything = http.get(f"{sandbox.url}/_sandbox/received").json()["items"]
    only_mastodon = http.get(f"{sandbox.url}/_sandbox/received", params={"channel": "mastodon"}).json()["items"]
    assert [item["channel"] for item in everything] == ["mastodon", "mastodon", "webhook"]
    assert [item["status"] for item in only_mastodon] == [503, 200]
    assert only_mastodon == sandbox.received("mastodon")


@pytest.mark.parametrize(
    "fault",
    [
        {"channel": "fax", "status": 500},
        {"channel": "mastodon", "status": 200},
        {"channel": "mastodon"},
        {"channel": "mastodon", "status": 500, "count": 0},
    ],
)
def test_a_malformed_fault_is_refused(sandbox: Sandbox, http: httpx.Client, fault: dict[str, Any]) -> None:
    response = http.post(f"{sandbox.url}/_sandbox/faults", json=fault)

    assert response.status_code == 400
    assert sandbox.faults() == []


def test_the_page_lists_what_arrived_escaped(sandbox: Sandbox, http: httpx.Client) -> None:
    mastodon(sandbox, http).send(post({"status": "Fête <script>alert(1)</script> ce soir"}), delivery_id="d1")

    page = http.get(f"{sandbox.url}/")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="fr">' in page.text
    assert "<h1>Bac à sable Crieur</h1>" in page.text
    assert "<table>" in page.text
    assert '<th scope="col">' in page.text
    assert "Fête &lt;script&gt;alert(1)&lt;/script&gt; ce soir" in page.text
    assert "<script>" not in page.text


def test_clear_forgets_posts_and_faults_but_keeps_tokens(sandbox: Sandbox, http: httpx.Client) -> None:
    channel = mastodon(sandbox, http)
    channel.send(post({"status": "Bonjour"}), delivery_id="d1")
    sandbox.inject_fault("mastodon", status=500)

    sandbox.clear()
    channel.send(post({"status": "Bonjour"}), delivery_id="d1")

    [item] = sandbox.received()
    assert (item["status"], item["duplicate"]) == (200, False)


def test_loopback_only_and_nothing_answers_after_stop(http: httpx.Client) -> None:
    with pytest.raises(ValueError, match="loopback"):
        Sandbox(host="0.0.0.0")  # noqa: S104 - the point: it refuses
    box = Sandbox()
    box.start()
    url = box.url
    assert http.get(f"{url}/_sandbox/received").status_code == 200

    box.stop()

    with pytest.raises(httpx.TransportError):
        http.get(f"{url}/_sandbox/received")
