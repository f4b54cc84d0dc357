"""Hostile input the fuzzer found or the contract names: each refused early, as a French problem, never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import httpx

from infra.local.api import LocalApi, Request
from tests.integration.conftest import Gateway

PUBLICATION = {"title": "Coupure d'eau", "body": "Mardi de 9 h à 12 h, rue des Lilas."}


def auth(gateway: Gateway, insee: str) -> dict[str, str]:
    return {"authorization": f"Bearer {gateway.keys[insee]}"}


def send(gateway: Gateway, insee: str, method: str, path: str, body: bytes, *, content_type: str) -> tuple[int, Any]:
    headers = [("content-type", content_type), *auth(gateway, insee).items()]
    response = gateway.local.handle(Request(method, path, "", headers, body, "127.0.0.1", "HTTP/1.1"))
    return response.status, json.loads(response.body)


def test_a_multipart_body_without_boundary_is_a_415_not_a_crash(gateway: Gateway) -> None:
    insee = gateway.new_commune()
    status, problem = send(
        gateway, insee, "POST", "/v1/publications", b'{"title": "x"}', content_type="multipart/form-data"
    )
    assert status == 415
    assert problem["errors"] == [{"field": "Content-Type", "message": problem["detail"]}]
    assert problem["detail"].startswith("Envoyez du JSON")


def test_a_form_is_refused_like_any_body_that_is_not_json(gateway: Gateway) -> None:
    insee = gateway.new_commune()
    status, _ = send(
        gateway, insee, "PUT", "/v1/alerts/weather", b"enabled=true", content_type="application/x-www-form-urlencoded"
    )
    assert status == 415


def test_bytes_that_are_not_utf8_are_invalid_json_not_a_crash(gateway: Gateway) -> None:
    insee = gateway.new_commune()
    for path in ("/v1/publications", "/v1/event-endpoints", "/v1/inbound-sources"):
        status, problem = send(gateway, insee, "POST", path, b"\xda\x90\xff{", content_type="application/json")
        assert status == 422, path
        assert problem["errors"] == [{"field": "body", "message": "JSON invalide : le corps n'est pas du texte UTF-8."}]


def test_an_oversized_body_is_a_413_before_any_work(gateway: Gateway) -> None:
    insee = gateway.new_commune()
    body = json.dumps({**PUBLICATION, "body": "x" * 2_000_000}).encode()
    status, problem = send(gateway, insee, "POST", "/v1/publications", body, content_type="application/json")
    assert status == 413
    assert problem["title"] == "Requête trop volumineuse"
    assert gateway.call("GET", "/v1/publications", insee).json["items"] == []


def test_any_method_reaches_the_routes_of_the_local_api(gateway: Gateway) -> None:
    insee = gateway.new_commune()
    server = LocalApi(port=0)
    server.start(gateway.local)
    try:
        for method in ("TRACE", "QUERY"):
            answer = httpx.request(method, f"{server.url}/v1/publications", headers=auth(gateway, insee))
            assert answer.status_code == 404, method
            assert answer.json()["title"] == "Introuvable"
    finally:
        server.stop()


def test_the_openapi_document_says_what_refusals_look_like(gateway: Gateway) -> None:
    document = gateway.call("GET", "/v1/openapi.json", None).json
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["components"]["schemas"]["Problem"]["required"] == ["title", "status", "detail"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            where = f"{method.upper()} {path}"
            assert responses["422"]["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }, where
            assert "application/problem+json" in responses["4XX"]["content"], where
            assert "content" not in responses.get("204", {}), where
    assert document["paths"]["/v1/health"]["get"]["security"] == [{}]
    usage = document["paths"]["/v1/usage"]["get"]["responses"]["200"]["content"]
    assert set(usage) == {"application/json", "text/csv"}
