"""A revoked key stops working on its very next request: API Gateway keeps no authorizer answer
(ReauthorizeEvery 0 in template.yaml, which the local API emulation reads)."""

from __future__ import annotations

from crieur.security import api_key_id, hash_api_key
from infra.local.provision import Deployment
from tests.integration.conftest import Gateway


def test_the_authorizer_answers_are_not_cached(deployment: Deployment) -> None:
    (authorizer,) = deployment.apis[0].authorizers.values()
    assert authorizer.ttl_seconds == 0


def test_a_revoked_key_is_refused_on_the_next_request(gateway: Gateway) -> None:
    insee = gateway.new_commune()
    spare = gateway.communes.create_key(insee).key
    for _ in range(3):  # warm: with a cache, these answers would be kept
        assert gateway.call("GET", "/v1/channels", insee).status == 200
    gateway.communes.revoke_key(insee, api_key_id(hash_api_key(gateway.keys[insee])))
    refused = gateway.call("GET", "/v1/channels", insee)
    assert refused.status == 401
    assert refused.json["title"] == "Clé d'API manquante ou invalide"
    assert gateway.call("POST", "/v1/publications", insee, {"title": "x", "body": "y"}).status == 401
    # The commune's other key still works.
    other = gateway.call("GET", "/v1/channels", None, headers={"authorization": f"Bearer {spare}"})
    assert other.status == 200
