"""crieur.messaging's gateways over real HTTP against the sandbox's End User Messaging SMS and SES v2 imitations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crieur import aws
from crieur.channels.base import PermanentChannelError, TransientChannelError
from crieur.messaging import MAX_BULK_DESTINATIONS, BulkDestination, EmailGateway, SmsGateway, unsubscribe_headers
from infra.local.imitations.email import DEMO_FROM, DEMO_REPLY_TO, EmailImitation
from infra.local.imitations.sms import SmsImitation
from infra.local.sandbox import Sandbox

NUMBER = "+33612345678"


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    box = Sandbox(port=0)
    box.start()
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-3",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "CRIEUR_SMS_BASE_URL": f"{box.url}/sms",
        "CRIEUR_SES_BASE_URL": f"{box.url}/ses",
    }.items():
        monkeypatch.setenv(name, value)
    aws.reset()
    yield box
    box.stop()
    aws.reset()


def sms_imitation(sandbox: Sandbox) -> SmsImitation:
    imitation = sandbox.imitations["/sms"]
    assert isinstance(imitation, SmsImitation)
    return imitation


def email_imitation(sandbox: Sandbox) -> EmailImitation:
    imitation = sandbox.imitations["/ses"]
    assert isinstance(imitation, EmailImitation)
    return imitation


def send(gateway: SmsGateway, destination: str = NUMBER, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "sender_id": "MAIRIE",
        "transactional": True,
        "max_price": "0.10",
        "ttl_seconds": 3600,
        "context": {"delivery": "pub_01"},
    }
    return gateway.send_text(destination, "Vigilance rouge orages : restez chez vous.", **{**arguments, **overrides})


# ----------------------------------------------------------------------------------------------------- SMS


def test_sms_is_sent_with_its_parameters(sandbox: Sandbox) -> None:
    message_id = send(SmsGateway())
    [sent] = sms_imitation(sandbox).messages()
    assert sent["message_id"] == message_id
    assert sent["destination"] == NUMBER
    assert sent["sender"] == "MAIRIE"
    assert sent["message_type"] == "TRANSACTIONAL"
    assert sent["context"] == {"delivery": "pub_01"}
    [received] = sandbox.received("sms")
    assert received["body"]["MaxPrice"] == "0.10"
    assert received["body"]["TimeToLive"] == 3600
    assert received["headers"]["x-amz-target"] == "PinpointSMSVoiceV2.SendTextMessage"


def test_promotional_sms(sandbox: Sandbox) -> None:
    send(SmsGateway(), transactional=False, max_price=None, ttl_seconds=None, context={})
    [received] = sandbox.received("sms")
    assert received["body"]["MessageType"] == "PROMOTIONAL"
    assert "MaxPrice" not in received["body"]
    assert "Context" not in received["body"]


@pytest.mark.parametrize("status", [429, 402, 500])
def test_throttling_quota_and_outage_are_transient(sandbox: Sandbox, status: int) -> None:
    sandbox.inject_fault("sms", status)
    with pytest.raises(TransientChannelError) as raised:
        send(SmsGateway())
    assert raised.value.code == {429: "rate_limited", 402: "quota_exceeded", 500: "provider_unavailable"}[status]
    assert sms_imitation(sandbox).messages() == []


def test_opted_out_number_is_a_distinct_permanent_error_without_the_number(sandbox: Sandbox) -> None:
    httpx.post(f"{sandbox.url}/sms/_reply", json={"from": NUMBER, "body": "STOP"}).raise_for_status()
    with pytest.raises(PermanentChannelError) as raised:
        send(SmsGateway())
    assert raised.value.code == "opted_out"
    assert "STOP" in raised.value.message
    assert "612345678" not in str(raised.value) + str(raised.value.provider_message)
    send(SmsGateway(), destination="+33698765432")  # other numbers still receive


@pytest.mark.parametrize(
    ("destination", "sender", "code"),
    [
        ("0612345678", "MAIRIE", "invalid_request"),  # not E.164
        (NUMBER, "MAIRIE-DE-RENNES", "sender_not_registered"),  # 16 characters
        (NUMBER, "12345", "sender_not_registered"),  # an alphanumeric sender id needs a letter
    ],
)
def test_invalid_numbers_and_sender_ids_are_permanent(
    sandbox: Sandbox, destination: str, sender: str, code: str
) -> None:
    with pytest.raises(PermanentChannelError) as raised:
        send(SmsGateway(), destination=destination, sender_id=sender)
    assert raised.value.code == code
    assert "0612345678" not in str(raised.value.provider_message)


def test_max_price_below_the_part_price_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(PermanentChannelError) as raised:
        send(SmsGateway(), max_price="0.05")
    assert raised.value.code == "price_over_threshold"


def test_access_denied_is_permanent(sandbox: Sandbox) -> None:
    sandbox.inject_fault("sms", 403)
    with pytest.raises(PermanentChannelError) as raised:
        send(SmsGateway())
    assert raised.value.code == "access_denied"


def test_unreachable_endpoint_is_transient(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.stop()
    with pytest.raises(TransientChannelError) as raised:
        send(SmsGateway())
    assert raised.value.code == "unreachable"


def test_page_shows_each_sms_split_in_parts(sandbox: Sandbox) -> None:
    gateway = SmsGateway()
    gateway.send_text(NUMBER, "a" * 200, sender_id="MAIRIE", transactional=True)
    gateway.send_text(NUMBER, "Fête de l’été", sender_id="MAIRIE", transactional=True)
    page = httpx.get(sandbox.url).text
    assert "2 partie(s) facturée(s), GSM-7" in page
    assert "Partie 1/2 (153 septets)" in page
    assert "Partie 2/2 (47 septets)" in page
    assert "1 partie(s) facturée(s), UCS-2" in page


# ----------------------------------------------------------------------------------------------------- e-mail


def template(gateway: EmailGateway, name: str = "crieur-35238-alerte") -> str:
    gateway.ensure_template(
        name,
        "{{titre}}",
        '<h1>{{titre}}</h1><p>{{texte}}</p><p><a href="{{{desabonnement}}}">Se désabonner</a></p>',
        "{{titre}}\n\n{{texte}}\n\nSe désabonner : {{{desabonnement}}}",
    )
    return name


def destination(index: int) -> BulkDestination:
    url = f"https://crieur.example/public/35238/subscriptions/unsubscribe?token=t{index}"
    return BulkDestination(
        key=f"sub_{index}",
        address=f"habitant{index}@example.org",
        template_data={"desabonnement": url},
        headers=unsubscribe_headers(url),
    )


def test_template_is_created_then_updated(sandbox: Sandbox) -> None:
    gateway = EmailGateway()
    template(gateway)
    gateway.ensure_template("crieur-35238-alerte", "Nouveau {{titre}}", "<p>{{texte}}</p>", "{{texte}}")
    assert email_imitation(sandbox).templates()["crieur-35238-alerte"]["Subject"] == "Nouveau {{titre}}"


def test_bulk_send_renders_each_recipient_with_its_unsubscribe_headers(sandbox: Sandbox) -> None:
    gateway = EmailGateway()
    name = template(gateway)
    results = gateway.send_bulk(
        DEMO_FROM,
        DEMO_REPLY_TO,
        name,
        {"titre": "Vigilance rouge", "texte": "Restez chez vous <ce soir>."},
        [destination(index) for index in range(3)],
    )
    assert [result.key for result in results] == ["sub_0", "sub_1", "sub_2"]
    assert all(result.status == "sent" and result.message_id for result in results)
    emails = email_imitation(sandbox).emails()
    assert [email["to"] for email in emails] == [[f"habitant{index}@example.org"] for index in range(3)]
    first = emails[0]
    assert first["subject"] == "Vigilance rouge"
    assert "Restez chez vous &lt;ce soir&gt;." in first["html"]
    assert "token=t0" in first["text"]
    assert (
        first["headers"]["List-Unsubscribe"]
        == "<https://crieur.example/public/35238/subscriptions/unsubscribe?token=t0>"
    )
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first["reply_to"] == [DEMO_REPLY_TO]


def test_bulk_send_reports_each_refused_recipient(sandbox: Sandbox) -> None:
    gateway = EmailGateway()
    name = template(gateway)
    email_imitation(sandbox).reject_address("habitant1@example.org")
    results = gateway.send_bulk(DEMO_FROM, None, name, {"titre": "t", "texte": "x"}, [destination(0), destination(1)])
    assert [result.status for result in results] == ["sent", "permanent"]
    assert results[1].code == "rejected"
    assert "habitant1" not in str(results[1].provider_message)


def test_bulk_send_takes_at_most_50_destinations(sandbox: Sandbox) -> None:
    gateway = EmailGateway()
    name = template(gateway)
    with pytest.raises(ValueError, match="50"):
        gateway.send_bulk(DEMO_FROM, None, name, {}, [destination(index) for index in range(MAX_BULK_DESTINATIONS + 1)])
    assert gateway.send_bulk(DEMO_FROM, None, name, {}, []) == []
    assert sandbox.received("email") == []


def test_bulk_send_with_a_missing_template_fails_each_recipient(sandbox: Sandbox) -> None:
    results = EmailGateway().send_bulk(DEMO_FROM, None, "absent", {}, [destination(0)])
    assert results[0].status == "permanent"
    assert results[0].code == "not_found"


def test_ses_throttling_is_transient(sandbox: Sandbox) -> None:
    gateway = EmailGateway()
    name = template(gateway)
    sandbox.inject_fault("email", 429)
    with pytest.raises(TransientChannelError) as raised:
        gateway.send_bulk(DEMO_FROM, None, name, {}, [destination(0)])
    assert raised.value.code == "rate_limited"


@pytest.mark.parametrize(("status", "code"), [(400, "rejected"), (403, "account_suspended")])
def test_ses_refusals_are_permanent(sandbox: Sandbox, status: int, code: str) -> None:
    sandbox.inject_fault("email", status)
    with pytest.raises(PermanentChannelError) as raised:
        EmailGateway().send_one(DEMO_FROM, "habitant@example.org", "Objet", "Texte")
    assert raised.value.code == code


def test_unverified_sender_is_refused_without_quoting_it(sandbox: Sandbox) -> None:
    with pytest.raises(PermanentChannelError) as raised:
        EmailGateway().send_one("mairie@inconnue.fr", "habitant@example.org", "Objet", "Texte")
    assert raised.value.code == "rejected"
    assert "mairie@inconnue.fr" not in str(raised.value.provider_message)


def test_send_one_with_one_click_unsubscribe(sandbox: Sandbox) -> None:
    url = "https://crieur.example/public/35238/subscriptions/unsubscribe?token=abc"
    message_id = EmailGateway().send_one(
        DEMO_FROM,
        "habitant@example.org",
        "Confirmez votre inscription",
        "Ouvrez ce lien : https://crieur.example/confirm",
        "<p>Ouvrez <a href='https://crieur.example/confirm'>ce lien</a></p>",
        reply_to=DEMO_REPLY_TO,
        unsubscribe_url=url,
    )
    [email] = email_imitation(sandbox).emails()
    assert email["message_id"] == message_id
    assert email["headers"] == {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    page = httpx.get(sandbox.url).text
    assert "Confirmez votre inscription" in page
    assert "Se désabonner</a> (en un clic, RFC 8058)" in page
    assert "<iframe sandbox" in page
