"""No credential, API key, webhook secret, phone number or e-mail address ever shows in logs, errors, metrics
or API answers. A full flow runs with every output captured (stdout and stderr, where powertools writes its
logs and EMF metrics; log records; every API answer), including providers that echo the token back in their
errors, then the capture is scanned for each secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import respx

from crieur.security import webhook_headers
from infra.local.imitations.email import DEMO_FROM
from infra.local.sandbox import Sandbox
from tests.integration.conftest import Gateway, Stack
from tests.integration.test_sms_email_channels import box, daytime  # noqa: F401 - sandbox for SMS and e-mail
from tests.integration.test_subscribers import last_code

INSTANCE = "https://mastodon.example"
HOOK = "https://site.example/hooks/crieur"
MASTODON_TOKEN = "mastotok_Zq8v3NcR7yT2"
HOOK_SECRET = "whsec_" + "c2VjcmV0LXdlYmhvb2stZm9yLWxlYWstdGVzdA=="
WORDPRESS_PASSWORD = "wpap Xy7Q Lm3R Tz9K Pq2W"
PHONE = "+33612345678"
EMAIL = "habitante.secrete@example.fr"


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.MockRouter]:
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # EMF metrics printed, so scanned too
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Crieur")
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{INSTANCE}/api/v2/instance").respond(json={"configuration": {"statuses": {"max_characters": 500}}})
        yield router


def test_no_secret_in_logs_errors_metrics_or_answers(  # noqa: PLR0917 - fixtures
    gateway: Gateway,
    stack: Stack,
    providers: respx.MockRouter,
    box: Sandbox,  # noqa: F811
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # what Lambda's runtime keeps (botocore's DEBUG dumps are off there)
    insee = gateway.new_commune()
    api_key = gateway.keys[insee]
    answers: list[str] = []

    def call(method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        answer = gateway.call(method, path, insee if "inbound/" not in path else None, body, **kwargs)
        answers.append(json.dumps(answer.headers) + answer.body)
        return answer

    # Providers that echo the credential back, as some do in their error messages.
    providers.post(f"{INSTANCE}/api/v1/statuses").respond(
        422, json={"error": f"The access token {MASTODON_TOKEN} is invalid (Bearer {MASTODON_TOKEN})"}
    )
    providers.get(f"{INSTANCE}/api/v1/accounts/verify_credentials").respond(
        401, json={"error": f"invalid token {MASTODON_TOKEN}"}
    )
    providers.post(HOOK).respond(400, text=f"bad signature, expected secret {HOOK_SECRET}")

    assert (
        call(
            "PUT",
            "/v1/channels/mastodon",
            {"settings": {"instance_url": INSTANCE}, "credentials": {"access_token": MASTODON_TOKEN}},
        ).status
        == 200
    )
    assert (
        call("PUT", "/v1/channels/webhook", {"settings": {"url": HOOK}, "credentials": {"secret": HOOK_SECRET}}).status
        == 200
    )
    call(
        "PUT",
        "/v1/channels/wordpress",
        {
            "settings": {"site_url": "https://blog.example", "username": "mairie"},
            "credentials": {"application_password": WORDPRESS_PASSWORD},
        },
    )
    call("GET", "/v1/channels")
    call("GET", "/v1/channels/mastodon")
    # A body that carries a phone number and an e-mail address (a resident's), refused or not, is never echoed.
    call(
        "PUT",
        "/v1/channels/mastodon",
        {
            "settings": {"instance_url": INSTANCE, "phone": PHONE},
            "credentials": {"access_token": MASTODON_TOKEN, "email": EMAIL},
        },
    )
    # A resident subscribes by SMS and e-mail, confirms, and receives a publication on both.
    assert call("PUT", "/v1/channels/sms", {"enabled": True, "settings": {"sender_id": "MAIRIE"}}).status == 200
    assert call("PUT", "/v1/channels/email", {"enabled": True, "settings": {"from_address": DEMO_FROM}}).status == 200
    subscribed = call(
        "POST", f"/public/{insee}/subscriptions", {"phone": PHONE, "email": EMAIL, "consent_version": "1"}
    )
    assert subscribed.status == 202, subscribed.body
    code = last_code(box)
    assert call("POST", f"/public/{insee}/subscriptions/confirm", {"phone": PHONE, "code": code}).status == 200
    call("POST", f"/public/{insee}/subscriptions/confirm", {"phone": PHONE, "code": "000000"})
    call("GET", "/v1/subscribers")
    residents = call("POST", "/v1/publications", {"title": "Alerte", "body": "Crue.", "channels": ["sms", "email"]})
    assert residents.status == 201, residents.body
    for channel in ("sms", "email"):
        stack.deliver(channel)
    call("GET", f"/v1/publications/{residents.json['id']}")

    published = call(
        "POST",
        "/v1/publications",
        {"title": "Coupure d'eau", "body": "Mardi matin.", "channels": ["mastodon", "webhook"]},
    )
    assert published.status == 201, published.body
    created = published.json
    for channel in ("mastodon", "webhook"):
        stack.deliver(channel)
    call("GET", f"/v1/publications/{created['id']}")
    call("POST", "/v1/channels/mastodon/test")  # after: a 401 marks the channel to reconnect
    call("GET", "/v1/publications")
    call("GET", "/v1/usage")

    source = call("POST", "/v1/inbound-sources", {"name": "Site"}).json
    inbound_secret = source["secret"]
    body = json.dumps({"title": "Depuis le site", "body": "Bonjour."}).encode()
    headers = {**webhook_headers(inbound_secret, "msg_leak_1", body), "content-type": "application/json"}
    assert call("POST", f"/v1/inbound/{insee}/{source['id']}", raw=body.decode(), headers=headers).status == 201
    forged = {**webhook_headers("whsec_" + "Zm9yZ2Vk" * 5, "msg_leak_2", body), "content-type": "application/json"}
    assert call("POST", f"/v1/inbound/{insee}/{source['id']}", raw=body.decode(), headers=forged).status == 401
    call("GET", "/v1/inbound-sources")
    rotated = call("POST", f"/v1/inbound-sources/{source['id']}/rotate").json
    endpoint = call(
        "POST", "/v1/event-endpoints", {"url": "https://site.example/events", "events": ["delivery.failed"]}
    ).json
    call("GET", "/v1/event-endpoints")
    gateway.local.cache.clear()
    assert gateway.call("GET", "/v1/channels", None, headers={"authorization": f"Bearer {api_key}x"}).status == 401

    out, err = capfd.readouterr()
    logs = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    shown_once = {inbound_secret: 1, rotated["secret"]: 1, endpoint["secret"]: 1}
    everything = {"stdout": out, "stderr": err, "logs": logs, "answers": "\n".join(answers)}
    secrets = {
        "Mastodon token": MASTODON_TOKEN,
        "webhook secret": HOOK_SECRET,
        "WordPress password": WORDPRESS_PASSWORD.replace(" ", ""),
        "WordPress password as typed": WORDPRESS_PASSWORD,
        "API key": api_key,
        "inbound secret": inbound_secret,
        "rotated inbound secret": rotated["secret"],
        "event endpoint secret": endpoint["secret"],
        "phone number": PHONE,
        "phone number as written": PHONE.replace("+33", "0"),
        "e-mail address": EMAIL,
    }
    assert '"_aws"' in out, "no EMF metrics captured: the scan would miss them"
    assert "delivery failed" in logs, "no delivery log captured: the scan would miss them"
    for name, secret in secrets.items():
        for where, text in everything.items():
            allowed = shown_once.get(secret, 0) if where == "answers" else 0
            assert text.count(secret) <= allowed, f"{name} found in {where}"
    # The providers' refusals are still explained to the mairie, without the token.
    delivery = gateway.call("GET", f"/v1/publications/{created['id']}", insee).json["deliveries"]["mastodon"]
    assert delivery["status"] == "failed"
    assert delivery["error"]["message"]
    assert "[secret masqué]" in delivery["error"]["message"]
