"""Issue 7, end to end in the embedded stack (`make run`): a resident without the app subscribes by SMS and by
e-mail, confirms, receives a red weather vigilance on both, unsubscribes in one step and receives nothing more;
the preview of a 300-character French alert shows its UCS-2 parts and its GSM-7 parts once shaped."""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from infra.local.imitations.email import EmailImitation
from infra.local.imitations.sms import SmsImitation
from infra.local.stack import LocalStack

pytestmark = pytest.mark.e2e

PHONE, E164 = "06 12 34 56 78", "+33612345678"
EMAIL = "habitante@example.org"
FINAL = {"sent", "failed", "skipped", "retracted", "retract_unsupported"}
ALERT_300 = (
    "Vigilance rouge « orages » : la préfecture d’Ille-et-Vilaine demande à chacun de rester chez soi "
    "jusqu’à demain matin… Ne vous engagez pas sur les routes inondées, éloignez-vous des cours d’eau "
    "et des arbres, mettez à l’abri vos véhicules. Écoles fermées ; la salle des fêtes accueille les sinistrés."
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state = tmp_path_factory.mktemp("crieur") / "local.json"
    with LocalStack(api_port=0, aws_port=0, sandbox_port=0, state_file=state, stack_name="crieur-sms") as running:
        yield running


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {stack.demo_api_key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client


def phone(stack: LocalStack) -> SmsImitation:
    imitation = stack.sandbox.imitations["/sms"]
    assert isinstance(imitation, SmsImitation)
    return imitation


def mailbox(stack: LocalStack) -> EmailImitation:
    imitation = stack.sandbox.imitations["/ses"]
    assert isinstance(imitation, EmailImitation)
    return imitation


def wait_for(check: Callable[[], Any], timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.3)
    return value


def settled(api: httpx.Client, publication_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        shown = dict(api.get(f"/v1/publications/{publication_id}").json())
        finished = all(d["status"] in FINAL for d in shown["deliveries"].values()) and shown["status"] != "publishing"
        return shown if finished else None

    return dict(wait_for(done))


def texts_to(stack: LocalStack, number: str) -> list[str]:
    return [m["body"] for m in phone(stack).messages() if m["destination"] == number]


def mails_to(stack: LocalStack, address: str) -> list[dict[str, Any]]:
    return [m for m in mailbox(stack).emails() if address in m["to"]]


def test_a_resident_without_the_app_subscribes_receives_the_red_alert_and_unsubscribes(
    stack: LocalStack, api: httpx.Client
) -> None:
    commune = stack.demo_insee
    public = httpx.Client(base_url=stack.api_url, timeout=30)

    # Subscribes with both, consent recorded; a code by SMS, a link by e-mail (double opt-in).
    answer = public.post(
        f"/public/{commune}/subscriptions", json={"phone": PHONE, "email": EMAIL, "consent_version": "2026-11"}
    )
    assert answer.status_code == 202, answer.text
    code = re.search(r"\b(\d{6})\b", wait_for(lambda: texts_to(stack, E164))[-1])
    assert code is not None
    confirmed = public.post(f"/public/{commune}/subscriptions/confirm", json={"phone": PHONE, "code": code.group(1)})
    assert confirmed.status_code == 200, confirmed.text
    [confirmation] = wait_for(lambda: mails_to(stack, EMAIL))
    link = re.search(r"https?://\S+/subscriptions/confirm\?token=\S+", confirmation["text"])
    assert link is not None
    assert public.get(link.group(0)).status_code == 200
    counts = api.get("/v1/subscribers").json()
    assert (counts["sms"]["confirmed"], counts["email"]["confirmed"]) == (1, 1)

    # Météo-France puts the département in red: the weather poller publishes the alert to every channel.
    departement = commune[:2]
    weather = next(f for f in stack.deployment.functions.values() if f.logical_id == "WeatherFunction")  # type: ignore[union-attr]
    stack.invoke(weather.name, {})  # the current carte becomes the known state
    switched = httpx.post(
        f"{stack.sandbox.url}/meteofrance/_state",
        json={"departement": departement, "phenomenon": "orages", "color": "red", "hours": 12},
    )
    assert switched.status_code in (200, 201), switched.text
    [alert_id] = stack.invoke(weather.name, {})["published"]
    alert = settled(api, alert_id)
    assert alert["deliveries"]["sms"]["status"] == "sent"
    assert alert["deliveries"]["email"]["status"] == "sent"

    [sms] = [m for m in phone(stack).messages() if m["destination"] == E164 and "code" not in m["body"]]
    assert sms["message_type"] == "TRANSACTIONAL"  # an alert: sent at any hour
    assert sms["sender"] == "MAIRIE"
    assert sms["body"].startswith("Vigilance rouge")
    [mail] = [m for m in mails_to(stack, EMAIL) if m["bulk"]]
    assert mail["subject"].startswith("Alerte : Vigilance rouge")
    assert mail["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # Unsubscribes in one step each: the mail client's one-click POST, and STOP answered to the SMS.
    one_click = mail["headers"]["List-Unsubscribe"].strip("<>")
    parts = urllib.parse.urlsplit(one_click)
    done = public.post(
        f"{parts.path}?{parts.query}",
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200, done.text
    replied = httpx.post(f"{stack.sandbox.url}/sms/_reply", json={"from": E164, "body": "STOP"})
    assert replied.status_code == 204

    # The next alert reaches neither: the e-mail address is erased, the number is on the opt-out list and
    # the refused send erases it too.
    before_sms, before_mail = len(texts_to(stack, E164)), len(mails_to(stack, EMAIL))
    next_alert = api.post(
        "/v1/publications",
        json={
            "title": "Vigilance rouge orages : consignes",
            "body": "Restez chez vous.",
            "category": "weather",
            "urgency": "critical",
            "channels": ["sms", "email"],
        },
    )
    assert next_alert.status_code == 201, next_alert.text
    shown = settled(api, next_alert.json()["id"])
    assert shown["deliveries"]["email"]["status"] == "skipped"  # nobody left to write to
    assert shown["deliveries"]["sms"]["status"] in ("failed", "skipped")
    assert len(texts_to(stack, E164)) == before_sms
    assert len(mails_to(stack, EMAIL)) == before_mail
    counts = api.get("/v1/subscribers").json()
    assert (counts["sms"]["confirmed"], counts["email"]["confirmed"]) == (0, 0)
    public.close()


def test_the_preview_of_a_300_character_alert_shows_ucs2_and_gsm7_parts(stack: LocalStack, api: httpx.Client) -> None:
    assert len(ALERT_300) == 300
    body = {
        "title": "Alerte orages",
        "body": ALERT_300,
        "category": "weather",
        "urgency": "critical",
        "channels": ["sms"],
        "overrides": {"sms": {"text": ALERT_300}},
    }
    preview = api.post("/v1/previews", json=body)
    assert preview.status_code == 200, preview.text
    sms = preview.json()["channels"]["sms"]
    assert (sms["encoding"], sms["parts"], sms["parts_without_shaping"]) == ("GSM-7", 2, 5)
    assert "2 parties au lieu de 5 grâce à l'adaptation des caractères." in sms["warnings"]
    assert "’" not in sms["text"]
    assert "«" not in sms["text"]
