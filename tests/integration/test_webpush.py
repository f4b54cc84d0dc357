"""The webpush channel: RFC 8291 encryption, the public subscription routes, and fan-out through the
sandbox's push service imitation (which checks VAPID and decrypts like a browser)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import infra.local.imitations
from crieur.channels import ADAPTERS, webpush
from crieur.channels.base import RetractUnsupported, TransientChannelError
from crieur.channels.webpush import WebpushChannel, WebpushCredentials, WebpushSettings
from crieur.models import Publication
from crieur.store import Store
from infra.local.imitations.webpush import WebpushImitation
from infra.local.sandbox import Sandbox
from tests.integration.conftest import Gateway, Stack

# RFC 8291 Appendix A.
PLAINTEXT = b"When I grow up, I want to be a watermelon"
AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
AS_PUBLIC = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
UA_PUBLIC = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
SALT = "DGv6ra1nlYgDCS1FRnbzlw"
BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
    "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"
    "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


def test_rfc8291_appendix_a() -> None:
    as_private = webpush.load_vapid_key(AS_PRIVATE)
    assert webpush.b64url(webpush.public_key_bytes(as_private.public_key())) == AS_PUBLIC
    body = webpush.encrypt(
        PLAINTEXT,
        webpush.b64url_decode(UA_PUBLIC),
        webpush.b64url_decode(AUTH),
        as_private=as_private,
        salt=webpush.b64url_decode(SALT),
    )
    assert webpush.b64url(body) == BODY
    ua_private = ec.derive_private_key(int.from_bytes(webpush.b64url_decode(UA_PRIVATE), "big"), ec.SECP256R1())
    assert webpush.decrypt(webpush.b64url_decode(BODY), ua_private, webpush.b64url_decode(AUTH)) == PLAINTEXT


def test_vapid_key_formats_and_settings() -> None:
    assert webpush.vapid_public_key(AS_PRIVATE) == AS_PUBLIC
    with pytest.raises(ValueError, match="VAPID"):
        WebpushCredentials(vapid_private_key="pas une clé")
    with pytest.raises(ValueError, match="mailto"):
        WebpushSettings(vapid_subject="mairie@example.fr")
    WebpushSettings(vapid_subject="https://mairie.example.fr/contact")


# -- the channel against the imitation -----------------------------------------------------------------------


def publication(
    commune: str, category: str = "news", urgency: str = "normal", pid: str = "pub_01JWEBPUSH"
) -> Publication:
    return Publication.model_validate(
        {
            "title": "Coupure d'eau",
            "body": "Rue de l'Église, mardi de 9 h à 12 h. " * 12,
            "id": pid,
            "commune": commune,
            "status": "publishing",
            "category": category,
            "urgency": urgency,
            "links": [{"url": "https://mairie.example.fr/eau"}],
            "created_at": datetime(2026, 11, 27, tzinfo=UTC),
        }
    )


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    monkeypatch.setattr(infra.local.imitations, "IMITATIONS", [WebpushImitation])
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    box = Sandbox(port=0)
    box.start()
    yield box
    box.stop()


def imitated(sandbox: Sandbox) -> WebpushImitation:
    found = sandbox.imitations["/webpush"]
    assert isinstance(found, WebpushImitation)
    return found


@pytest.fixture
def table(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("CRIEUR_TABLE_NAME", stack.table)
    return Store(stack.table)


def live(sandbox: Sandbox) -> WebpushChannel:
    body = imitated(sandbox).demo_channel()
    return WebpushChannel(
        WebpushSettings.model_validate(body["settings"]),
        WebpushCredentials.model_validate(body["credentials"]),
        httpx.Client(timeout=5),
    )


def subscribe(
    gateway: Gateway, insee: str, subscription: dict[str, object], categories: list[str] | None = None
) -> int:
    answer = gateway.call(
        "POST", f"/public/{insee}/webpush/subscriptions", None, {**subscription, "categories": categories or []}
    )
    return answer.status


def test_subscribe_dedupe_unsubscribe(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    browser = imitated(sandbox).new_subscription()
    assert subscribe(gateway, insee, browser, ["works"]) == 201
    assert subscribe(gateway, insee, browser, ["alert", "works"]) == 200
    [stored] = table.webpush_subscriptions(insee)
    assert stored.id == webpush.endpoint_hash(str(browser["endpoint"]))
    assert stored.categories == ("alert", "works")
    gone = gateway.call("DELETE", f"/public/{insee}/webpush/subscriptions", None, {"endpoint": browser["endpoint"]})
    assert gone.status == 204
    assert table.webpush_subscriptions(insee) == []


def test_bad_subscriptions_are_refused(gateway: Gateway, monkeypatch: pytest.MonkeyPatch, table: Store) -> None:
    insee = gateway.new_commune()
    keys = {"p256dh": UA_PUBLIC, "auth": AUTH}
    monkeypatch.delenv("CRIEUR_ALLOW_PRIVATE_TARGETS", raising=False)
    private = gateway.call(
        "POST", f"/public/{insee}/webpush/subscriptions", None, {"endpoint": "https://127.0.0.1/push/1", "keys": keys}
    )
    assert private.status == 422
    assert "privée" in private.body
    plain = gateway.call(
        "POST", f"/public/{insee}/webpush/subscriptions", None, {"endpoint": "http://push.example/1", "keys": keys}
    )
    assert plain.status == 422
    broken = gateway.call(
        "POST",
        f"/public/{insee}/webpush/subscriptions",
        None,
        {"endpoint": "https://push.example/1", "keys": {"p256dh": "abc", "auth": AUTH}},
    )
    assert broken.status == 422
    assert table.webpush_subscriptions(insee) == []


def test_public_key_route(gateway: Gateway, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ADAPTERS, "webpush", WebpushChannel)  # until the lead registers it
    insee = gateway.new_commune()
    assert gateway.call("GET", f"/public/{insee}/webpush/key", None).status == 404
    stored = gateway.call("PUT", "/v1/channels/webpush", insee, imitated(sandbox).demo_channel())
    assert stored.status == 200, stored.body
    answer = gateway.call("GET", f"/public/{insee}/webpush/key", None)
    assert answer.json == {"publicKey": imitated(sandbox).vapid_public_key()}


def test_fan_out_decrypts_everywhere(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    for _ in range(3):
        assert subscribe(gateway, insee, imitated(sandbox).new_subscription()) == 201
    adapter = live(sandbox)
    rendered = adapter.render(publication(insee, urgency="critical"))
    sent = adapter.send(rendered, delivery_id="d")
    assert sent.external_id == "3 abonnements"
    shown = imitated(sandbox).received()
    assert len(shown) == 3
    assert all(item["message"] == shown[0]["message"] for item in shown)
    message = shown[0]["message"]
    assert message["tag"] == "pub_01JWEBPUSH"
    assert message["url"] == "https://mairie.example.fr/eau"
    assert len(message["body"]) <= webpush.BODY_LIMIT
    assert message["body"].endswith("…")
    assert {(item["urgency"], item["ttl"], item["topic"]) for item in shown} == {("high", "86400", "pub_01JWEBPUSH")}
    assert "Coupure d&#x27;eau" in imitated(sandbox).page_section()
    with pytest.raises(RetractUnsupported, match="rappelée"):
        adapter.delete(sent.external_id)


def test_gone_subscription_is_deleted(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    browsers = [imitated(sandbox).new_subscription() for _ in range(2)]
    for browser in browsers:
        subscribe(gateway, insee, browser)
    imitated(sandbox).unsubscribe(str(browsers[0]["endpoint"]))
    adapter = live(sandbox)
    assert adapter.send(adapter.render(publication(insee)), delivery_id="d").external_id == "1 abonnements"
    assert [item.endpoint for item in table.webpush_subscriptions(insee)] == [browsers[1]["endpoint"]]


def test_a_503_is_retried_for_that_subscription_only(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    browsers = [imitated(sandbox).new_subscription() for _ in range(3)]
    for browser in browsers:
        subscribe(gateway, insee, browser)
    imitated(sandbox).fail(str(browsers[1]["endpoint"]), 503)
    adapter = live(sandbox)
    rendered = adapter.render(publication(insee))
    with pytest.raises(TransientChannelError, match="1 abonnement"):
        adapter.send(rendered, delivery_id="d")
    assert len(imitated(sandbox).received()) == 2
    sandbox.clear()
    assert adapter.send(rendered, delivery_id="d").external_id == "3 abonnements"
    [again] = imitated(sandbox).received()
    assert again["subscription"] == str(browsers[1]["endpoint"]).rsplit("/", 1)[-1]
    assert len(table.webpush_subscriptions(insee)) == 3


def test_413_is_final_for_that_subscription(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    browsers = [imitated(sandbox).new_subscription() for _ in range(2)]
    for browser in browsers:
        subscribe(gateway, insee, browser)
    imitated(sandbox).fail(str(browsers[0]["endpoint"]), 413)
    adapter = live(sandbox)
    assert adapter.send(adapter.render(publication(insee)), delivery_id="d").external_id == "1 abonnements"
    assert len(table.webpush_subscriptions(insee)) == 2


def test_categories_filter(gateway: Gateway, sandbox: Sandbox, table: Store) -> None:
    insee = gateway.new_commune()
    every, works, alerts = (imitated(sandbox).new_subscription() for _ in range(3))
    subscribe(gateway, insee, every)
    subscribe(gateway, insee, works, ["works"])
    subscribe(gateway, insee, alerts, ["alert"])
    adapter = live(sandbox)
    adapter.send(adapter.render(publication(insee, category="works")), delivery_id="d")
    reached = {item["subscription"] for item in imitated(sandbox).received()}
    assert reached == {str(browser["endpoint"]).rsplit("/", 1)[-1] for browser in (every, works)}


def test_the_imitation_checks_vapid(sandbox: Sandbox) -> None:
    browser = imitated(sandbox).new_subscription()
    endpoint = str(browser["endpoint"])
    client = httpx.Client(timeout=5)
    assert client.post(endpoint, content=b"x", headers={"TTL": "60"}).status_code == 401
    other = ec.generate_private_key(ec.SECP256R1())
    authorization = webpush.vapid_authorization(other, endpoint, "mailto:a@b.fr", 0)
    assert client.post(endpoint, content=b"x", headers={"Authorization": authorization}).status_code == 403
    key = webpush.load_vapid_key(imitated(sandbox).vapid_private_key())
    expired = webpush.vapid_authorization(key, endpoint, "mailto:a@b.fr", 0)
    answer = client.post(endpoint, content=b"x", headers={"Authorization": expired, "TTL": "60"})
    assert answer.status_code == 401
    assert "exp" in json.loads(answer.content)["error"]
