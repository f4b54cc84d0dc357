"""The sms and email channels end to end in-process: publish through the API, the deliver functions' chunked
fan-out, End User Messaging and SES imitations over HTTP (the sandbox), moto for everything else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from crieur import aws, config
from crieur.billing import billing_month, default_prices
from crieur.channels import sms as sms_channel
from crieur.models import utc_now
from crieur.store import Store
from crieur.subscribers import KmsSubscriberKeys, Subscribers
from infra.local.imitations.email import DEMO_FROM, DEMO_REPLY_TO
from infra.local.sandbox import Sandbox
from tests.integration.conftest import Gateway, InProcessFunctions, Stack
from tests.integration.test_subscribers import last_code, last_link, mails, path_of, sms, subscribe

WEEKDAY_NOON = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)  # a Friday, 12:00 in Paris
SATURDAY_NIGHT = datetime(2026, 11, 28, 22, 30, tzinfo=UTC)  # 23:30 in Paris: quiet until Monday 08:00


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch, aws_env: None) -> Iterator[Sandbox]:
    sandbox = Sandbox(port=0)
    sandbox.start()
    monkeypatch.setenv("CRIEUR_SMS_BASE_URL", f"{sandbox.url}/sms")
    monkeypatch.setenv("CRIEUR_SES_BASE_URL", f"{sandbox.url}/ses")
    monkeypatch.setenv("CRIEUR_SMS_PARTS_PER_SECOND", "1000")  # paced, but not slowed down in tests
    monkeypatch.setenv("CRIEUR_SES_SENDS_PER_SECOND", "1000")
    aws.reset()
    config.subscribers.cache_clear()
    yield sandbox
    sandbox.stop()
    config.subscribers.cache_clear()


@pytest.fixture(autouse=True)
def daytime(monkeypatch: pytest.MonkeyPatch) -> None:
    """Non-urgent SMS respect the quiet hours: every test runs on a Friday at noon unless it says otherwise."""
    monkeypatch.setattr(sms_channel.SmsChannel, "clock", staticmethod(lambda: WEEKDAY_NOON))


@pytest.fixture
def commune(gateway: Gateway, box: Sandbox) -> str:
    insee = gateway.new_commune()
    for channel, settings in (
        ("sms", {"sender_id": "MAIRIE"}),
        ("email", {"from_address": DEMO_FROM, "reply_to": DEMO_REPLY_TO}),
    ):
        answer = gateway.call("PUT", f"/v1/channels/{channel}", insee, {"enabled": True, "settings": settings})
        assert answer.status == 200, answer.body
    return insee


@pytest.fixture
def subscribers(functions: InProcessFunctions, stack: Stack) -> Subscribers:
    environment = functions.by_logical_id("ApiFunction").environment
    store = Store(stack.table)
    return Subscribers(
        store, KmsSubscriberKeys(store, environment["CRIEUR_KMS_KEY_ID"], environment["CRIEUR_LOOKUP_KEY_ID"])
    )


def by_sms(gateway: Gateway, box: Sandbox, insee: str, phone: str, categories: list[str] | None = None) -> None:
    assert subscribe(gateway, insee, phone=phone, categories=categories or []).status == 202
    code = {"phone": phone, "code": last_code(box)}
    assert gateway.call("POST", f"/public/{insee}/subscriptions/confirm", None, code).status == 200


def by_email(gateway: Gateway, box: Sandbox, insee: str, address: str, categories: list[str] | None = None) -> None:
    assert subscribe(gateway, insee, email=address, categories=categories or []).status == 202
    assert gateway.call("GET", path_of(last_link(box)), None).status == 200


def publish(gateway: Gateway, insee: str, **fields: Any) -> dict[str, Any]:
    body = {"title": "Coupure d'eau", "body": "Rue de l'Église, mardi de 8 h à 12 h.", **fields}
    answer = gateway.call("POST", "/v1/publications", insee, body)
    assert answer.status == 201, answer.body
    return dict(answer.json)


def deliver_all(stack: Stack, channel: str, rounds: int = 20) -> None:
    """Runs the channel's deliver function until its queue is empty (the publish message, then its chunks)."""
    for _ in range(rounds):
        messages = stack._receive(channel, wait=0.3)
        if not messages:
            return
        for message in messages:
            stack.run_deliver(channel, [message])
    raise AssertionError(f"the {channel} queue never emptied")


def shown(gateway: Gateway, insee: str, publication_id: str) -> dict[str, Any]:
    return dict(gateway.call("GET", f"/v1/publications/{publication_id}", insee).json)


def sent_sms(box: Sandbox, destination: str) -> list[dict[str, Any]]:
    """What a phone received apart from its confirmation code."""
    return [
        m for m in sms(box).messages() if m["destination"] == destination and "code de confirmation" not in m["body"]
    ]


# ----------------------------------------------------------------------------------------------------- sending


def test_a_red_weather_alert_reaches_sms_and_email_subscribers(
    gateway: Gateway, box: Sandbox, commune: str, stack: Stack
) -> None:
    by_sms(gateway, box, commune, "06 12 34 56 78", categories=["weather"])
    by_sms(gateway, box, commune, "06 98 76 54 32", categories=["news"])  # did not choose weather
    by_email(gateway, box, commune, "habitant@example.org")
    body = "Vigilance rouge « orages » : restez chez vous jusqu’à demain matin… Évitez les déplacements."
    created = publish(
        gateway,
        commune,
        title="Vigilance rouge orages",
        body=body,
        category="weather",
        urgency="critical",
        links=[{"url": "https://vigilance.meteofrance.fr/", "label": "Carte de vigilance"}],
        media=[{"url": "https://www.example.fr/carte.png", "alt": "Carte de la vigilance rouge"}],
        channels=["sms", "email"],
    )
    deliver_all(stack, "sms")
    deliver_all(stack, "email")

    [text] = sent_sms(box, "+33612345678")
    assert sent_sms(box, "+33698765432") == []
    assert text["sender"] == "MAIRIE"
    assert text["message_type"] == "TRANSACTIONAL"
    assert text["body"].startswith('Vigilance rouge orages\nVigilance rouge " orages " : restez chez vous jusqu\'à')
    assert text["body"].endswith("\nvigilance.meteofrance.fr")
    assert text["context"] == {"commune": commune, "publication": created["id"]}

    [mail] = [m for m in mails(box).emails() if m["bulk"]]
    assert mail["to"] == ["habitant@example.org"]
    assert mail["sender"] == DEMO_FROM
    assert mail["reply_to"] == [DEMO_REPLY_TO]
    assert mail["subject"] == "Alerte : Vigilance rouge orages"
    assert mail["template"] == "crieur-publication-v1"
    assert "Vigilance rouge « orages » : restez chez vous jusqu’à demain matin…" in mail["text"]
    assert "Vigilance rouge « orages » : restez chez vous jusqu’à demain matin…" in mail["html"]
    assert 'alt="Carte de la vigilance rouge"' in mail["html"]
    unsubscribe = mail["headers"]["List-Unsubscribe"]
    assert unsubscribe.startswith(f"<http://127.0.0.1:3000/public/{commune}/subscriptions/unsubscribe?")
    assert mail["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe.strip("<>").replace("&", "&amp;") in mail["html"]  # the footer link, the same URL
    assert "Se désabonner en un clic : " + unsubscribe.strip("<>") in mail["text"]
    assert "Vous recevez ce message car vous êtes abonné(e) aux informations de Mairie de démonstration" in mail["text"]

    publication = shown(gateway, commune, created["id"])
    assert publication["deliveries"]["sms"]["status"] == "sent"
    assert publication["deliveries"]["email"]["status"] == "sent"
    assert publication["status"] == "published"
    usage = {
        (line["unit"], line["channel"]): line["quantity"]
        for line in gateway.call("GET", f"/v1/usage?month={billing_month(utc_now())}", commune).json["lines"]
    }
    assert usage[("sms_part", "sms")] == 1  # one recipient, one GSM-7 part once shaped
    assert usage[("email", "email")] == 1


def test_the_sms_preview_shows_the_encoding_and_what_shaping_saves(
    gateway: Gateway, box: Sandbox, commune: str
) -> None:
    text = (
        "Vigilance rouge « orages » : la préfecture d’Ille-et-Vilaine demande à chacun de rester chez soi "
        "jusqu’à demain matin… Ne vous engagez pas sur les routes inondées, éloignez-vous des cours d’eau "
        "et des arbres, mettez à l’abri vos véhicules. Écoles fermées ; la salle des fêtes accueille les sinistrés."
    )
    body = {
        "title": "Alerte orages",
        "body": text,
        "category": "weather",
        "channels": ["sms"],
        "overrides": {"sms": {"text": text}},
    }
    preview = gateway.call("POST", "/v1/previews", commune, body)
    assert preview.status == 200, preview.body
    shown_sms = preview.json["channels"]["sms"]
    assert shown_sms["encoding"] == "GSM-7"
    assert shown_sms["parts"] == 2
    assert shown_sms["parts_without_shaping"] == 5
    assert "2 parties au lieu de 5 grâce à l'adaptation des caractères." in shown_sms["warnings"]
    assert "’" not in shown_sms["text"]

    gateway.call("PUT", "/v1/channels/sms", commune, {"settings": {"sender_id": "MAIRIE", "allow_gsm7_shaping": False}})
    as_written = gateway.call("POST", "/v1/previews", commune, body).json["channels"]["sms"]
    assert (as_written["encoding"], as_written["parts"], as_written["parts_without_shaping"]) == ("UCS-2", 5, None)
    assert as_written["text"] == text


def test_an_sms_over_six_parts_is_refused_with_its_count(gateway: Gateway, box: Sandbox, commune: str) -> None:
    gateway.call("PUT", "/v1/channels/sms", commune, {"settings": {"sender_id": "MAIRIE", "allow_gsm7_shaping": False}})
    long = "Réunion publique sur le plan local d’urbanisme, salle des fêtes. " * 7  # 455 UCS-2 units: 7 parts
    body = {"title": "Réunion", "body": "PLU", "channels": ["sms"], "overrides": {"sms": {"text": long}}}
    refused = gateway.call("POST", "/v1/publications", commune, body)
    assert refused.status == 422
    assert refused.headers["Content-Type"] == "application/problem+json"
    [error] = refused.json["errors"]
    assert error["field"] == "overrides.sms.text"
    assert error["message"].startswith("Ce SMS ferait 7 parties (UCS-2")
    assert "au plus 6" in error["message"]
    preview = gateway.call("POST", "/v1/previews", commune, body)
    assert preview.status == 200  # a preview says it, and shows the text
    warnings = preview.json["channels"]["sms"]["warnings"]
    assert any(w.startswith("overrides.sms.text : Ce SMS ferait 7 parties") and "(422)" in w for w in warnings)


def test_the_cost_estimate_counts_parts_and_recipients(gateway: Gateway, box: Sandbox, commune: str) -> None:
    for index in range(3):
        by_sms(gateway, box, commune, f"06 12 34 56 7{index}")
    override = "Réunion publique " * 12  # 204 GSM-7 characters: 2 parts
    body = {"title": "Réunion", "body": "PLU", "channels": ["sms"], "overrides": {"sms": {"text": override}}}
    preview = gateway.call("POST", "/v1/previews", commune, body).json
    assert preview["channels"]["sms"]["parts"] == 2
    assert preview["channels"]["sms"]["recipients"] == 3
    prices = default_prices()
    expected = prices.with_vat(prices.publication + 3 * 2 * prices.sms_part)
    assert preview["cost_estimate_eur"] == float(expected)
    assert publish(gateway, commune, **{k: v for k, v in body.items() if k != "title"})["cost_estimate_eur"] == float(
        expected
    )


def test_non_urgent_sms_wait_for_the_end_of_the_quiet_hours(
    gateway: Gateway, box: Sandbox, commune: str, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_sms(gateway, box, commune, "06 12 34 56 78")
    monkeypatch.setattr(sms_channel.SmsChannel, "clock", staticmethod(lambda: SATURDAY_NIGHT))
    created = publish(gateway, commune, channels=["sms"])
    stack.deliver("sms")  # the publish message plans the chunk
    chunk = stack.receive("sms")
    assert stack.run_deliver("sms", [chunk]) == [chunk["MessageId"]]  # kept, back when allowed (12 h at most)
    assert sent_sms(box, "+33612345678") == []
    waiting = shown(gateway, commune, created["id"])["deliveries"]["sms"]
    assert waiting["status"] == "sending"
    assert waiting["error"]["code"] == "quiet_hours"
    assert "envoi le lundi 30 novembre à 8 h" in waiting["error"]["message"]  # the mairie sees when

    # Still quiet on its next receive (a long weekend): a fresh copy takes over, so no receive is used up.
    assert stack.deliver("sms", make_visible=True) == []
    fresh = stack.receive("sms")
    assert fresh["MessageId"] != chunk["MessageId"]
    assert json.loads(fresh["Body"]) == json.loads(chunk["Body"])
    assert fresh["Attributes"]["ApproximateReceiveCount"] == "1"
    assert sent_sms(box, "+33612345678") == []

    monkeypatch.setattr(sms_channel.SmsChannel, "clock", staticmethod(lambda: WEEKDAY_NOON))
    assert stack.run_deliver("sms", [fresh]) == []  # the time has come
    [text] = sent_sms(box, "+33612345678")
    assert text["message_type"] == "PROMOTIONAL"
    sent = shown(gateway, commune, created["id"])["deliveries"]["sms"]
    assert sent["status"] == "sent"
    assert sent.get("error") is None  # the outcome replaced the note


def test_a_number_that_answered_stop_is_unsubscribed(
    gateway: Gateway, box: Sandbox, commune: str, stack: Stack, subscribers: Subscribers
) -> None:
    by_sms(gateway, box, commune, "06 12 34 56 78")
    by_sms(gateway, box, commune, "06 98 76 54 32")
    sms(box).reply("+33612345678", "STOP")
    created = publish(gateway, commune, channels=["sms"], category="alert")
    deliver_all(stack, "sms")
    assert sent_sms(box, "+33612345678") == []
    assert len(sent_sms(box, "+33698765432")) == 1
    assert len(subscribers.audience(commune, "sms", "alert")) == 1
    delivery = shown(gateway, commune, created["id"])["deliveries"]["sms"]
    assert delivery["status"] == "sent"


def test_foreign_numbers_are_not_sent_unless_allowed(
    gateway: Gateway, box: Sandbox, commune: str, stack: Stack
) -> None:
    allow = {"settings": {"sender_id": "MAIRIE", "allow_foreign_numbers": True}}
    gateway.call("PUT", "/v1/channels/sms", commune, allow)
    by_sms(gateway, box, commune, "+44 7400 123456")
    gateway.call("PUT", "/v1/channels/sms", commune, {"settings": {"sender_id": "MAIRIE"}})
    created = publish(gateway, commune, channels=["sms"], category="alert")
    deliver_all(stack, "sms")
    assert sent_sms(box, "+447400123456") == []
    delivery = shown(gateway, commune, created["id"])["deliveries"]["sms"]
    assert delivery["status"] == "failed"
    assert "foreign_number" in json.dumps(delivery)


def test_an_address_ses_refuses_is_refused_not_retried(
    gateway: Gateway, box: Sandbox, commune: str, stack: Stack
) -> None:
    by_email(gateway, box, commune, "refus@example.org")
    by_email(gateway, box, commune, "habitant@example.org")
    mails(box).reject_address("refus@example.org")
    created = publish(gateway, commune, channels=["email"])
    deliver_all(stack, "email")
    assert [m["to"] for m in mails(box).emails() if m["bulk"]] == [["habitant@example.org"]]
    assert shown(gateway, commune, created["id"])["deliveries"]["email"]["status"] == "sent"


def test_throttled_sends_are_retried_for_the_recipients_left(
    gateway: Gateway, box: Sandbox, commune: str, stack: Stack
) -> None:
    by_email(gateway, box, commune, "habitant@example.org")
    box.inject_fault("email", 429)
    created = publish(gateway, commune, channels=["email"])
    stack.deliver("email")
    chunk = stack.receive("email")
    assert stack.run_deliver("email", [chunk]) == [chunk["MessageId"]]
    assert [m for m in mails(box).emails() if m["bulk"]] == []
    stack.deliver("email", make_visible=True)
    assert len([m for m in mails(box).emails() if m["bulk"]]) == 1
    assert shown(gateway, commune, created["id"])["deliveries"]["email"]["status"] == "sent"


def test_a_sender_ses_does_not_know_fails_the_delivery_with_a_reason(
    gateway: Gateway, box: Sandbox, commune: str, stack: Stack
) -> None:
    by_email(gateway, box, commune, "habitant@example.org")
    unknown = {"settings": {"from_address": "Mairie <mairie@inconnue.example>"}}
    assert gateway.call("PUT", "/v1/channels/email", commune, unknown).status == 200
    created = publish(gateway, commune, channels=["email"])
    deliver_all(stack, "email")
    delivery = shown(gateway, commune, created["id"])["deliveries"]["email"]
    assert delivery["status"] == "failed"
    assert "rejected" in json.dumps(delivery), delivery


def test_nobody_subscribed_skips_the_channel(gateway: Gateway, box: Sandbox, commune: str, stack: Stack) -> None:
    created = publish(gateway, commune, channels=["sms"])
    deliver_all(stack, "sms")
    delivery = shown(gateway, commune, created["id"])["deliveries"]["sms"]
    assert delivery["status"] == "skipped"


# ----------------------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("channel", "settings", "field"),
    [
        ("sms", {"sender_id": "MAIRIE 35"}, "settings.sender_id"),
        ("sms", {}, "settings.sender_id"),
        ("sms", {"sender_id": "MAIRIE", "max_price_per_part": "-1"}, "settings.max_price_per_part"),
        ("email", {"from_address": "pas une adresse"}, "settings.from_address"),
        ("email", {"from_address": DEMO_FROM, "reply_to": "@"}, "settings.reply_to"),
    ],
)
def test_bad_settings_name_the_field(  # noqa: PLR0917 - fixtures and parameters
    gateway: Gateway, box: Sandbox, commune: str, channel: str, settings: dict[str, Any], field: str
) -> None:
    answer = gateway.call("PUT", f"/v1/channels/{channel}", commune, {"settings": settings})
    assert answer.status == 422, answer.body
    assert field in {error["field"] for error in answer.json["errors"]}


def test_the_channel_test_checks_the_sms_sender_id(gateway: Gateway, box: Sandbox, commune: str) -> None:
    answer = gateway.call("POST", "/v1/channels/sms/test", commune)
    assert answer.status == 200
    assert answer.json == {
        "ok": True,
        "account": "Expéditeur MAIRIE",
        "message": "Expéditeur enregistré pour la France : les SMS partiront avec le rôle AWS de Crieur.",
        "permissions": [],
    }
    gateway.call("PUT", "/v1/channels/sms", commune, {"settings": {"sender_id": "INCONNU"}})
    answer = gateway.call("POST", "/v1/channels/sms/test", commune)
    assert answer.json["ok"] is False
    assert "L'expéditeur INCONNU n'est pas enregistré pour la France" in answer.json["message"]


def test_the_channel_test_checks_the_email_identity(gateway: Gateway, box: Sandbox, commune: str) -> None:
    answer = gateway.call("POST", "/v1/channels/email/test", commune)
    assert answer.status == 200
    assert answer.json["ok"] is True
    assert answer.json["account"] == "mairie@mairie-demo.fr"
    unknown = {"settings": {"from_address": "Mairie <mairie@inconnue.example>"}}
    gateway.call("PUT", "/v1/channels/email", commune, unknown)
    answer = gateway.call("POST", "/v1/channels/email/test", commune)
    assert answer.json["ok"] is False
    assert "vérifiée" in answer.json["message"]


# ----------------------------------------------------------------------------------------------------- feedback


def sns_event(message: dict[str, Any], topic: str) -> dict[str, Any]:
    """What SNS hands to a subscribed Lambda function."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"arn:aws:sns:eu-west-3:123456789012:{topic}:0d0a1f7e",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                    "TopicArn": f"arn:aws:sns:eu-west-3:123456789012:{topic}",
                    "Subject": None,
                    "Message": json.dumps(message),
                    "Timestamp": "2026-11-27T08:00:03.000Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "https://sns.eu-west-3.amazonaws.com/SimpleNotificationService-0000.pem",
                    "UnsubscribeUrl": "https://sns.eu-west-3.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {},
                },
            }
        ]
    }


def test_a_hard_bounce_unsubscribes_the_address(
    gateway: Gateway, box: Sandbox, commune: str, functions: InProcessFunctions, subscribers: Subscribers
) -> None:
    address = f"rebond-{commune}@example.org"
    by_email(gateway, box, commune, address)
    assert len(subscribers.audience(commune, "email", "news")) == 1
    bounce = {
        "eventType": "Bounce",
        "bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": address}]},
        "mail": {"destination": [address], "messageId": "0107"},
    }
    handler = functions.by_logical_id("OptOutsFunction")
    assert functions.invoke(handler.name, sns_event(bounce, "EmailEventsTopic")) == {"removed": 1}
    assert subscribers.audience(commune, "email", "news") == []


def test_a_stop_reply_unsubscribes_the_number(
    gateway: Gateway, box: Sandbox, commune: str, functions: InProcessFunctions, subscribers: Subscribers
) -> None:
    number = f"+336{commune}0042"[:12]
    by_sms(gateway, box, commune, number)
    reply = {
        "originationNumber": number,
        "destinationNumber": "+33756000000",
        "messageKeyword": "ARRET",
        "messageBody": "Arrêt",
        "inboundMessageId": "cae173d2-66b9-564c-8309-21f858e9fb84",
        "previousPublishedMessageId": "wJ0ZLpmSMd9O6PNb8CnY6zrG7S9x8n3mvtdcH7d4eDcb",
    }
    handler = functions.by_logical_id("OptOutsFunction")
    assert functions.invoke(handler.name, sns_event(reply, "SmsInboundTopic")) == {"removed": 1}
    assert subscribers.audience(commune, "sms", "news") == []
