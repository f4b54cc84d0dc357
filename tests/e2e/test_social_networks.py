"""Issue 3, end to end: one publication with an image, a link and a long body reaches every social network
in the sandbox, shaped to each one's limits, exactly as the preview showed; then it is retracted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.local.stack import LocalStack

pytestmark = pytest.mark.e2e

FINAL = {"sent", "failed", "skipped", "retracted", "retract_unsupported"}
NO_PUBLIC_POST = {"push", "webpush"}  # a notification has no address to open
CANNOT_DELETE = {"instagram", "push", "webpush"}  # the provider offers no deletion
NO_MEDIA = {"webpush"}  # a browser notification carries text and a link
TO_SUBSCRIBERS = {"webpush"}  # nothing goes out before a browser of the commune subscribed
AS_HTML = {"wordpress"}  # the previewed text goes out as HTML paragraphs, with the title apart
TO_RESIDENTS = {"sms", "email"}  # no network: one message per confirmed subscriber (tests/e2e/test_sms_email.py)
LONG_BODY = (
    "La rue de l'Église sera fermée à la circulation du lundi 7 au vendredi 11 décembre pour la réfection "
    "de la chaussée. Une déviation est mise en place par la route de Rennes et le chemin des Écoliers. "
    "Les riverains pourront accéder à leur domicile. Le marché du mercredi est maintenu place de la Mairie. "
) * 5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state = tmp_path_factory.mktemp("crieur") / "local.json"
    with LocalStack(api_port=0, aws_port=0, sandbox_port=0, state_file=state, stack_name="crieur-social") as running:
        yield running


@pytest.fixture(scope="module", autouse=True)
def browser(stack: LocalStack) -> None:
    """One browser subscribed to the demo commune's notifications (with nobody, Web Push is skipped)."""
    push_service = stack.sandbox.imitations["/webpush"]
    subscription = push_service.new_subscription()  # type: ignore[attr-defined]
    answer = httpx.post(f"{stack.api_url}/public/{stack.demo_insee}/webpush/subscriptions", json=subscription)
    assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {stack.demo_api_key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


def settled(api: httpx.Client, publication_id: str, timeout: float = 40.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        shown = api.get(f"/v1/publications/{publication_id}").json()
        done = all(d["status"] in FINAL for d in shown["deliveries"].values()) and shown["status"] != "publishing"
        if done or time.monotonic() > deadline:
            return dict(shown)
        time.sleep(0.3)


def networks(stack: LocalStack) -> list[str]:
    """The social networks the sandbox imitates (the weather sources are imitated too, but are no channel)."""
    imitated = [i.channel for i in stack.sandbox.imitations.values() if i.demo_channel() is not None]
    return [*(name for name in imitated if name not in TO_RESIDENTS), "mastodon"]


def test_one_publication_reaches_every_network_shaped_as_previewed(stack: LocalStack, api: httpx.Client) -> None:
    body = {
        "title": "Travaux rue de l'Église",
        "body": LONG_BODY,
        "category": "works",
        "links": [{"url": "https://www.example.fr/travaux/rue-de-l-eglise", "label": "Plan de la déviation"}],
        "media": [{"url": stack.sandbox.demo_photo_url(), "alt": "La mairie vue depuis la place, sous le soleil"}],
    }
    preview = api.post("/v1/previews", json=body)
    assert preview.status_code == 200, preview.text
    previewed = preview.json()["channels"]
    assert set(networks(stack)) <= set(previewed)
    for name in networks(stack):
        shown = previewed[name]
        assert shown["skipped"] is None, (name, shown)
        if shown["limit"] is not None:
            assert shown["length"] <= shown["limit"], name
        if name not in NO_MEDIA:
            assert [m["kept"] for m in shown["media"]] == [True], (name, shown["media"])

    created = api.post("/v1/publications", json=body)
    assert created.status_code == 201, created.text
    publication = settled(api, created.json()["id"])
    for name in networks(stack):
        delivery = publication["deliveries"][name]
        assert delivery["status"] == "sent", (name, delivery)
        assert delivery["url"] or name in NO_PUBLIC_POST, name
    assert publication["status"] == "published"

    # What each network received is exactly what the preview showed: the same code renders both.
    for name in networks(stack):
        sent_texts = set().union(*(strings_in(item["body"]) for item in stack.sandbox.received(name)))
        if name in TO_SUBSCRIBERS:
            continue
        if name in AS_HTML:
            assert body["title"] in sent_texts, name
        else:
            assert previewed[name]["text"] in sent_texts, name


def strings_in(value: Any) -> set[str]:
    """Every string inside a recorded request body (JSON, form fields, nested records)."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(strings_in(item) for item in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(strings_in(item) for item in value)) if value else set()
    return set()


def test_a_text_only_publication_is_skipped_on_instagram_with_a_reason(api: httpx.Client) -> None:
    created = api.post(
        "/v1/publications", json={"title": "Conseil municipal", "body": "Jeudi à 20 h.", "category": "council"}
    )
    assert created.status_code == 201, created.text
    publication = settled(api, created.json()["id"])
    instagram = publication["deliveries"]["instagram"]
    assert instagram["status"] == "skipped"
    assert "image" in instagram["error"]["message"]
    assert publication["deliveries"]["mastodon"]["status"] == "sent"
    assert publication["status"] == "published"


def test_a_retraction_deletes_wherever_the_network_allows(stack: LocalStack, api: httpx.Client) -> None:
    body = {
        "title": "Erreur de date",
        "body": "Ce message sera retiré.",
        "media": [{"url": stack.sandbox.demo_photo_url(), "alt": "La mairie"}],
    }
    created = api.post("/v1/publications", json=body).json()
    assert settled(api, created["id"])["status"] == "published"
    assert api.delete(f"/v1/publications/{created['id']}").status_code == 202
    deadline = time.monotonic() + 30
    while True:
        deliveries = api.get(f"/v1/publications/{created['id']}").json()["deliveries"]
        if all(d["status"] != "sent" for d in deliveries.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert deliveries["instagram"]["status"] == "retract_unsupported"
    assert "supprimez-la depuis l'application" in deliveries["instagram"]["error"]["message"]
    for name in set(deliveries) - CANNOT_DELETE - TO_RESIDENTS:
        assert deliveries[name]["status"] == "retracted", (name, deliveries[name])
    for name in CANNOT_DELETE & set(deliveries):
        assert deliveries[name]["status"] == "retract_unsupported", (name, deliveries[name])
