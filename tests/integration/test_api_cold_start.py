"""What the API's cold start work left unchanged: a page of publications read in two queries, the idempotency
layer and the OpenAPI routes loaded only by the requests that need them (benchmarks/bench_cold_start.py)."""

from __future__ import annotations

from typing import Any

from crieur import aws
from tests.integration.conftest import Gateway

HOOK = "https://site.example/hooks/crieur"


def commune_with_webhook(gateway: Gateway) -> str:
    insee = gateway.new_commune()
    channel = {"settings": {"url": HOOK}, "credentials": {"secret": "whsec_" + "A" * 44}}
    assert gateway.call("PUT", "/v1/channels/webhook", insee, channel).status == 200
    return insee


def test_a_page_is_two_queries_and_each_item_is_the_publication_itself(gateway: Gateway) -> None:
    insee = commune_with_webhook(gateway)
    body = {"title": "Coupure d'eau", "body": "Mardi de 9 h à 12 h, rue des Lilas.", "channels": ["webhook"]}
    ids = [gateway.call("POST", "/v1/publications", insee, {**body, "title": f"Avis {n}"}).json["id"] for n in range(4)]

    queries: list[str] = []

    def count(**call: Any) -> None:
        queries.append(call["model"].name)

    events = aws.dynamodb().meta.client.meta.events
    events.register("before-call.dynamodb.Query", count)
    try:
        page = gateway.call("GET", "/v1/publications?limit=3", insee).json
    finally:
        events.unregister("before-call.dynamodb.Query", count)

    assert len(queries) == 2  # the page's ids (gsi1), then their heads and deliveries in one range
    assert [item["id"] for item in page["items"]] == ids[::-1][:3]
    for item in page["items"]:
        alone = gateway.call("GET", f"/v1/publications/{item['id']}", insee).json
        assert item == alone
        assert set(item["deliveries"]) == {"webhook"}
    rest = gateway.call("GET", f"/v1/publications?limit=3&cursor={page['next_cursor']}", insee).json
    assert [item["id"] for item in rest["items"]] == ids[:1]


def test_an_idempotency_key_replays_and_refuses_another_body(gateway: Gateway) -> None:
    insee = commune_with_webhook(gateway)
    body = {"title": "Marché de Noël", "body": "Samedi sur la place.", "channels": ["webhook"]}
    key = {"Idempotency-Key": "cle-froide-1"}
    first = gateway.call("POST", "/v1/publications", insee, body, headers=key)
    again = gateway.call("POST", "/v1/publications", insee, body, headers=key)
    assert first.status == again.status == 201
    assert again.json["id"] == first.json["id"]
    other = gateway.call("POST", "/v1/publications", insee, {**body, "title": "Autre"}, headers=key)
    assert other.status == 422
    assert other.headers["Content-Type"] == "application/problem+json"
    assert other.json["errors"] == [{"field": "Idempotency-Key", "message": other.json["detail"]}]


def test_the_openapi_document_and_the_docs_name_the_bearer_scheme(gateway: Gateway) -> None:
    document = gateway.call("GET", "/v1/openapi.json", None).json
    assert document["info"]["title"] == "Crieur"
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "description": "Clé d'API de la commune",
        "scheme": "bearer",
    }
    assert document["security"] == [{"bearer": []}]
    docs = gateway.call("GET", "/v1/docs", None)
    assert docs.status == 200
    assert "Clé d'API de la commune" in docs.body
