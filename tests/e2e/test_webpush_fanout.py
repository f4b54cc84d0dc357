"""Issue 4, end to end: browsers subscribe through the public route, one publication reaches every one of them
through the local stack (the channel's queue carries one message per chunk, the poller delivers them), and the
publication shows the recipients' counts and the usage bills each notification once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crieur.billing import billing_month
from crieur.models import utc_now
from infra.local.imitations.webpush import WebpushImitation
from infra.local.stack import LocalStack

pytestmark = pytest.mark.e2e

BROWSERS = 260  # two chunks: 250 and 10
FINAL = {"sent", "failed", "skipped"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state = tmp_path_factory.mktemp("crieur") / "local.json"
    with LocalStack(api_port=0, aws_port=0, sandbox_port=0, state_file=state, stack_name="crieur-webpush") as running:
        yield running


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.demo_api_key}"}, timeout=30
    ) as client:
        yield client


def push_service(stack: LocalStack) -> WebpushImitation:
    found = stack.sandbox.imitations["/webpush"]
    assert isinstance(found, WebpushImitation)
    return found


def settled(api: httpx.Client, publication_id: str, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        shown = dict(api.get(f"/v1/publications/{publication_id}").json())
        if shown["deliveries"]["webpush"]["status"] in FINAL and shown["status"] != "publishing":
            return shown
        assert time.monotonic() < deadline, shown["deliveries"]["webpush"]
        time.sleep(0.3)


def test_every_subscribed_browser_gets_the_notification_once_in_chunks(stack: LocalStack, api: httpx.Client) -> None:
    browsers = push_service(stack)
    with httpx.Client(base_url=stack.api_url, timeout=30) as public:
        for _ in range(BROWSERS):
            answer = public.post(f"/public/{stack.demo_insee}/webpush/subscriptions", json=browsers.new_subscription())
            assert answer.status_code == 201, answer.text

    created = api.post(
        "/v1/publications",
        json={
            "title": "Marché de Noël",
            "body": "Samedi, place de la Mairie, de 10 h à 19 h.",
            "channels": ["webpush"],
        },
    )
    assert created.status_code == 201, created.text
    publication = settled(api, created.json()["id"])

    delivery = publication["deliveries"]["webpush"]
    assert delivery["status"] == "sent", delivery
    assert delivery["recipients"] == {"total": BROWSERS, "sent": BROWSERS, "failed": 0}
    assert delivery["external_id"] == f"{BROWSERS} destinataires"
    assert publication["status"] == "published"

    shown = [item for item in browsers.received() if item["message"]["tag"] == publication["id"]]
    assert len(shown) == BROWSERS
    assert len({item["subscription"] for item in shown}) == BROWSERS  # each browser once
    assert {item["message"]["title"] for item in shown} == {"Marché de Noël"}

    usage = api.get("/v1/usage", params={"month": billing_month(utc_now())}).json()
    notifications = [line for line in usage["lines"] if line["unit"] == "webpush_message"]
    assert sum(line["quantity"] for line in notifications) == BROWSERS
