"""SMS and e-mail subscribers: the public routes, double opt-in through the sandbox, encryption at rest,
unsubscribe and erasure, and what the sms and email channels read (moto + the sandbox's imitations)."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from crieur import aws, config
from crieur.store import Store
from crieur.subscribers import (
    MAX_CODE_ATTEMPTS,
    MAX_CONFIRMATION_SENDS,
    KmsSubscriberKeys,
    Subscribers,
    SubscriptionRequest,
    subscriber_id,
)
from infra.local.imitations.email import DEMO_FROM, EmailImitation
from infra.local.imitations.sms import SmsImitation
from infra.local.sandbox import Sandbox
from tests.integration.conftest import Answer, Gateway, InProcessFunctions, Stack

PHONE = "06 12 34 56 78"
E164 = "+33612345678"
EMAIL = "Habitant.Demo@Example.org"
CONSENT = "2026-11"


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch, aws_env: None) -> Iterator[Sandbox]:
    box = Sandbox(port=0)
    box.start()
    monkeypatch.setenv("CRIEUR_SMS_BASE_URL", f"{box.url}/sms")
    monkeypatch.setenv("CRIEUR_SES_BASE_URL", f"{box.url}/ses")
    aws.reset()
    config.subscribers.cache_clear()
    yield box
    box.stop()
    config.subscribers.cache_clear()


@pytest.fixture
def commune(gateway: Gateway, stack: Stack, sandbox: Sandbox) -> str:
    """A commune sending SMS (French numbers only) and e-mails, its channels stored as PUT /v1/channels does."""
    insee = gateway.new_commune()
    store = Store(stack.table)
    store.put_channel(insee, "sms", True, {"sender_id": "MAIRIE"}, None)
    store.put_channel(insee, "email", True, {"from_address": DEMO_FROM, "reply_to": "accueil@mairie-demo.fr"}, None)
    return insee


def sms(sandbox: Sandbox) -> SmsImitation:
    imitation = sandbox.imitations["/sms"]
    assert isinstance(imitation, SmsImitation)
    return imitation


def mails(sandbox: Sandbox) -> EmailImitation:
    imitation = sandbox.imitations["/ses"]
    assert isinstance(imitation, EmailImitation)
    return imitation


def subscribe(gateway: Gateway, insee: str, **body: Any) -> Answer:
    return gateway.call("POST", f"/public/{insee}/subscriptions", None, {"consent_version": CONSENT, **body})


def last_code(sandbox: Sandbox) -> str:
    text = sms(sandbox).messages()[-1]["body"]
    found = re.search(r"\b(\d{6})\b", text)
    assert found, text
    return found.group(1)


def last_link(sandbox: Sandbox) -> str:
    text = mails(sandbox).emails()[-1]["text"]
    found = re.search(r"https?://\S+/subscriptions/confirm\?token=\S+", text)
    assert found, text
    return found.group(0)


def path_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


_service: list[Subscribers] = []


@pytest.fixture(autouse=True)
def _service_of_this_test(functions: InProcessFunctions, stack: Stack) -> Iterator[None]:
    """The Subscribers the deliver functions build (crieur.config), on this session's table and keys."""
    environment = functions.by_logical_id("ApiFunction").environment
    store = Store(stack.table)
    keys = KmsSubscriberKeys(store, environment["CRIEUR_KMS_KEY_ID"], environment["CRIEUR_LOOKUP_KEY_ID"])
    _service.append(Subscribers(store, keys))
    yield
    _service.clear()


def subscribers() -> Subscribers:
    return _service[-1]


def confirmed_by_sms(gateway: Gateway, sandbox: Sandbox, insee: str, categories: list[str] | None = None) -> None:
    assert subscribe(gateway, insee, phone=PHONE, categories=categories or []).status == 202
    answer = gateway.call(
        "POST", f"/public/{insee}/subscriptions/confirm", None, {"phone": PHONE, "code": last_code(sandbox)}
    )
    assert answer.status == 200, answer.body


def confirmed_by_email(
    gateway: Gateway, sandbox: Sandbox, insee: str, categories: list[str] | None = None, email: str = EMAIL
) -> None:
    assert subscribe(gateway, insee, email=email, categories=categories or []).status == 202
    answer = gateway.call("GET", path_of(last_link(sandbox)), None)
    assert answer.status == 200, answer.body
    assert "Inscription confirmée" in answer.body


# ----------------------------------------------------------------------------------------------------- opt-in


def test_sms_double_opt_in(gateway: Gateway, sandbox: Sandbox, commune: str) -> None:
    answer = subscribe(gateway, commune, phone=PHONE, categories=["alert", "weather"])
    assert answer.status == 202
    assert answer.json["confirmation"] == {"sms": "code"}
    [message] = sms(sandbox).messages()
    assert message["destination"] == E164
    assert message["sender"] == "MAIRIE"
    assert message["message_type"] == "TRANSACTIONAL"
    assert f"Commune {commune} : votre code de confirmation est" in message["body"]
    # pending: counted, but nothing is ever sent to it
    assert subscribers().audience(commune, "sms", "alert") == []
    counts = gateway.call("GET", "/v1/subscribers", commune).json
    assert counts["sms"] == {"confirmed": 0, "pending": 1, "categories": dict.fromkeys(counts["sms"]["categories"], 0)}

    code = last_code(sandbox)
    answer = gateway.call("POST", f"/public/{commune}/subscriptions/confirm", None, {"phone": E164, "code": code})
    assert answer.status == 200
    assert answer.json["status"] == "confirmed"
    [identifier] = subscribers().audience(commune, "sms", "alert")
    assert subscribers().audience(commune, "sms", "news") == []  # not chosen
    contact = subscribers().contacts(commune, "sms", [identifier])[identifier]
    assert contact.address == E164
    assert contact.unsubscribe_url.startswith(f"http://127.0.0.1:3000/public/{commune}/subscriptions/unsubscribe?")
    counts = gateway.call("GET", "/v1/subscribers", commune).json
    assert counts["sms"]["confirmed"] == 1
    assert counts["sms"]["pending"] == 0
    assert counts["sms"]["categories"]["alert"] == 1
    assert counts["sms"]["categories"]["news"] == 0
    assert E164 not in str(counts)


def test_wrong_codes_are_limited_and_say_nothing(gateway: Gateway, sandbox: Sandbox, commune: str) -> None:
    subscribe(gateway, commune, phone=PHONE)
    code = last_code(sandbox)
    wrong = "000000" if code != "000000" else "111111"
    unknown = gateway.call(
        "POST", f"/public/{commune}/subscriptions/confirm", None, {"phone": "+33698765432", "code": code}
    )
    for _ in range(MAX_CODE_ATTEMPTS):
        answer = gateway.call("POST", f"/public/{commune}/subscriptions/confirm", None, {"phone": PHONE, "code": wrong})
        assert answer.status == 422
        assert answer.json == unknown.json  # an unknown number gets the very same answer
    answer = gateway.call("POST", f"/public/{commune}/subscriptions/confirm", None, {"phone": PHONE, "code": code})
    assert answer.status == 422  # the right code no longer works after too many tries
    assert subscribers().audience(commune, "sms", "news") == []


def test_email_double_opt_in_with_one_click_unsubscribe(gateway: Gateway, sandbox: Sandbox, commune: str) -> None:
    assert subscribe(gateway, commune, email=EMAIL).json["confirmation"] == {"email": "link"}
    [mail] = mails(sandbox).emails()
    assert mail["to"] == ["habitant.demo@example.org"]
    assert mail["sender"] == DEMO_FROM
    assert mail["reply_to"] == ["accueil@mairie-demo.fr"]
    assert mail["subject"] == f"Confirmez votre inscription aux messages de Commune {commune}"
    assert mail["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = last_link(sandbox)
    assert link.startswith(f"http://localhost/public/{commune}/subscriptions/confirm?token=email.sub_")
    assert 'href="http://localhost/public/' in mail["html"]

    answer = gateway.call("GET", path_of(link), None)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    assert gateway.call("GET", path_of(link), None).status == 404  # used once
    [identifier] = subscribers().audience(commune, "email", "council")  # no categories chosen: all
    contact = subscribers().contacts(commune, "email", [identifier])[identifier]
    assert contact.address == "habitant.demo@example.org"

    # The link in a message only shows a button; the mail client's one-click POST unsubscribes.
    unsubscribe = path_of(contact.unsubscribe_url)
    page = gateway.call("GET", unsubscribe, None)
    assert page.status == 200
    assert 'name="List-Unsubscribe" value="One-Click"' in page.body
    assert subscribers().audience(commune, "email", "council") == [identifier]
    answer = gateway.call(
        "POST",
        unsubscribe,
        None,
        raw="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status == 200, answer.body
    assert "Désinscription faite" in answer.body
    assert subscribers().audience(commune, "email", "council") == []
    assert subscribers().contacts(commune, "email", [identifier]) == {}
    assert gateway.call("POST", unsubscribe, None, raw="List-Unsubscribe=One-Click").status == 404


def test_both_media_at_once_and_the_delete_route_erases_everything(
    gateway: Gateway, sandbox: Sandbox, commune: str, stack: Stack
) -> None:
    confirmed_by_sms(gateway, sandbox, commune)
    confirmed_by_email(gateway, sandbox, commune)
    store = Store(stack.table)
    assert len(store.subscriber_summaries(commune)) == 2
    answer = gateway.call("DELETE", f"/public/{commune}/subscriptions", None, {"phone": PHONE, "email": EMAIL})
    assert answer.status == 204
    assert store.subscriber_summaries(commune) == []
    # the same answer for addresses that were never subscribed
    again = gateway.call("DELETE", f"/public/{commune}/subscriptions", None, {"phone": PHONE, "email": EMAIL})
    assert again.status == 204


def test_the_answer_never_tells_whether_an_address_is_subscribed(
    gateway: Gateway, sandbox: Sandbox, commune: str
) -> None:
    first = subscribe(gateway, commune, phone=PHONE, email=EMAIL)
    confirmed_by_sms(gateway, sandbox, commune)
    again = subscribe(gateway, commune, phone=PHONE, email=EMAIL)
    assert (first.status, first.json) == (again.status, again.json)


def test_a_confirmed_subscriber_keeps_its_choices_until_a_change_is_confirmed(
    gateway: Gateway, sandbox: Sandbox, commune: str
) -> None:
    confirmed_by_sms(gateway, sandbox, commune, categories=["alert"])
    subscribe(gateway, commune, phone=PHONE, categories=["news"])  # anyone may ask, only the phone confirms
    assert len(subscribers().audience(commune, "sms", "alert")) == 1
    assert subscribers().audience(commune, "sms", "news") == []
    code = last_code(sandbox)
    gateway.call("POST", f"/public/{commune}/subscriptions/confirm", None, {"phone": PHONE, "code": code})
    assert subscribers().audience(commune, "sms", "alert") == []
    assert len(subscribers().audience(commune, "sms", "news")) == 1


def test_confirmation_messages_are_limited_per_address(gateway: Gateway, sandbox: Sandbox, commune: str) -> None:
    for _ in range(MAX_CONFIRMATION_SENDS + 2):
        assert subscribe(gateway, commune, phone=PHONE).status == 202
    assert len(sms(sandbox).messages()) == MAX_CONFIRMATION_SENDS


def test_a_failed_confirmation_send_answers_the_same(gateway: Gateway, sandbox: Sandbox, commune: str) -> None:
    sandbox.inject_fault("sms", 429)
    answer = subscribe(gateway, commune, phone=PHONE)
    assert answer.status == 202
    assert sms(sandbox).messages() == []


# ----------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"phone": "06 12"}, "phone", "n'existe pas"),
        ({"phone": "01 23 45 67 89"}, "phone", "mobile"),
        ({"phone": "+44 7400 123456"}, "phone", "numéros français"),
        ({"phone": "pas un numéro"}, "phone", "illisible"),
        ({"email": "habitant@yopmail.fr"}, "email", "jetables"),
        ({"email": "x@sub.mailinator.com"}, "email", "jetables"),
        ({"email": "pas-une-adresse"}, "email", ""),
        ({}, "body", "numéro de mobile"),
        ({"phone": PHONE, "categories": ["sport"]}, "categories", ""),
    ],
)
def test_bad_input_names_the_field(  # noqa: PLR0917 - fixtures and parameters
    gateway: Gateway, sandbox: Sandbox, commune: str, body: dict[str, Any], field: str, words: str
) -> None:
    answer = subscribe(gateway, commune, **body)
    assert answer.status == 422, answer.body
    assert answer.headers["Content-Type"] == "application/problem+json"
    fields = {re.split(r"[.\[]", error["field"])[0] for error in answer.json["errors"]}
    assert field in fields or (field == "body" and fields), answer.json
    assert words in answer.body
    assert sms(sandbox).messages() == []
    assert "pas-une-adresse" not in answer.body  # inputs are not echoed
    assert "yopmail" not in answer.body


def test_foreign_numbers_when_the_commune_allows_them(
    gateway: Gateway, sandbox: Sandbox, commune: str, stack: Stack
) -> None:
    Store(stack.table).put_channel(commune, "sms", True, {"sender_id": "MAIRIE", "allow_foreign_numbers": True}, None)
    assert subscribe(gateway, commune, phone="+44 7400 123456").status == 202
    assert sms(sandbox).messages()[0]["destination"] == "+447400123456"


def test_a_commune_without_the_channel_refuses_the_medium(gateway: Gateway, sandbox: Sandbox, stack: Stack) -> None:
    insee = gateway.new_commune()
    answer = subscribe(gateway, insee, phone=PHONE)
    assert answer.status == 422
    assert "n'envoie pas de SMS" in answer.body
    assert subscribe(gateway, "99999", phone=PHONE).status == 404


# ----------------------------------------------------------------------------------------------------- storage


def test_nothing_personal_is_stored_in_clear(gateway: Gateway, sandbox: Sandbox, commune: str, stack: Stack) -> None:
    confirmed_by_sms(gateway, sandbox, commune)
    confirmed_by_email(gateway, sandbox, commune)
    items = aws.dynamodb().Table(stack.table).scan()["Items"]
    dumped = repr(items)
    for secret in (E164, "612345678", "habitant.demo", "example.org"):
        assert secret not in dumped
    mine = [item for item in items if str(item["sk"]).startswith("S#") and item["pk"] == f"C#{commune}"]
    assert {item["medium"] for item in mine} == {"sms", "email"}
    assert all("ttl" not in item for item in mine)  # confirmed: never purged


def test_unconfirmed_subscriptions_expire(gateway: Gateway, sandbox: Sandbox, commune: str, stack: Stack) -> None:
    subscribe(gateway, commune, phone=PHONE)
    [item] = [
        item
        for item in aws.dynamodb().Table(stack.table).scan()["Items"]
        if item["pk"] == f"C#{commune}" and str(item["sk"]).startswith("S#")
    ]
    assert int(item["ttl"]) == int(item["pending_until"])


def test_remove_address_finds_every_commune(gateway: Gateway, sandbox: Sandbox, commune: str, stack: Stack) -> None:
    other = gateway.new_commune()
    Store(stack.table).put_channel(other, "email", True, {"from_address": DEMO_FROM}, None)
    address = f"rebond-{commune}@example.org"  # an address of its own: moto keeps other tests' subscribers
    confirmed_by_email(gateway, sandbox, commune, email=address)
    confirmed_by_email(gateway, sandbox, other, email=address)
    assert subscribers().remove_address("email", address.upper(), "bounce") == 2
    assert subscribers().audience(commune, "email", "news") == []
    assert subscribers().audience(other, "email", "news") == []
    assert subscribers().remove_address("email", address, "bounce") == 0


def test_remove_by_id_and_contacts_of_gone_ids(gateway: Gateway, sandbox: Sandbox, commune: str) -> None:
    confirmed_by_sms(gateway, sandbox, commune)
    [identifier] = subscribers().audience(commune, "sms", "alert")
    assert subscribers().contacts(commune, "sms", [identifier, "sub_unknown"]).keys() == {identifier}
    assert subscribers().remove(commune, "sms", identifier, "opted_out") is True
    assert subscribers().contacts(commune, "sms", [identifier]) == {}
    assert subscribers().remove(commune, "sms", identifier, "opted_out") is False


def test_audience_is_stable_and_ids_are_per_commune(gateway: Gateway, sandbox: Sandbox, commune: str) -> None:
    numbers = [f"+3361234{index:04d}" for index in range(12)]
    service = subscribers()
    for number in numbers:
        service.subscribe(commune, SubscriptionRequest(phone=number, consent_version=CONSENT), "http://localhost")
        code = last_code(sandbox)
        gateway.call("POST", f"/public/{commune}/subscriptions/confirm", None, {"phone": number, "code": code})
    audience = service.audience(commune, "sms", "alert")
    assert len(audience) == len(numbers)
    assert audience == sorted(audience) == service.audience(commune, "sms", "alert")
    contacts = service.contacts(commune, "sms", audience)
    assert sorted(contact.address for contact in contacts.values()) == numbers
    lookup = service.keys.lookup("sms", numbers[0])
    assert subscriber_id(commune, lookup) in audience
    assert subscriber_id("35238", lookup) != subscriber_id(commune, lookup)
