"""Hostile input: schemathesis generates requests for every operation of `/v1/openapi.json` and sends them,
authenticated with a real commune key, through the local API (API Gateway emulation → authorizer → api
function → moto). No answer may be a 5xx, and every answer must match what the document promises (status
codes, content types, response schemas, headers).

Bounded and reproducible: a few dozen examples per operation, derandomized, no example database. The network
outside loopback is closed for the duration (media URLs, webhook URLs and provider hosts the generator invents
must end as the French problem they deserve, never as a call to the internet).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crieur.communes import CommuneService
from crieur.store import Store
from infra.local.api import Gateway as LocalGateway
from infra.local.api import LocalApi
from infra.local.provision import Deployment
from tests.integration.conftest import Gateway, InProcessFunctions

EXAMPLES_PER_OPERATION = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
"""Authentication is checked operation by operation in test_isolation.py (schemathesis's `ignored_auth` would send
every request twice). `positive_data_acceptance` is left out on purpose: a schema-valid request may still break a
rule JSON Schema cannot say (publish_at in the past, a channel the commune has not configured), and the contract
answers those with a 422 naming the field (ARCHITECTURE.md §4)."""
ROOT = Path(__file__).resolve().parents[2]


def _loopback_only(real: Any) -> Any:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            loopback = ipaddress.ip_address(name.strip("[]")).is_loopback
        except ValueError:
            loopback = name == "localhost"
        if not loopback:
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: no internet in tests")
        return real(host, *args, **kwargs)

    return getaddrinfo


@pytest.fixture(scope="module")
def server(deployment: Deployment) -> Iterator[tuple[LocalApi, Gateway]]:
    """One local API for the module, over HTTP on a free loopback port: the functions are loaded once."""
    functions = InProcessFunctions(deployment)
    local = LocalGateway(
        deployment.apis[0], functions.invoke, account_id=deployment.account_id, region=deployment.region
    )
    api = LocalApi(port=0)
    api.start(local)
    try:
        yield api, Gateway(functions, local, CommuneService(Store(deployment.outputs["TableName"])))
    finally:
        api.stop()


@pytest.fixture
def served(server: tuple[LocalApi, Gateway], aws_env: None, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The local API's URL and a real commune's API key (the same commune for the whole module)."""
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only(socket.getaddrinfo))
    api, gateway = server
    if not gateway.keys:
        gateway.new_commune()
    return api.url, next(iter(gateway.keys.values()))


def api_document() -> dict[str, Any]:
    """The api function's OpenAPI document, read at collection time (schemathesis makes one test per operation);
    a test below checks that it is the very document the API serves."""
    spec = importlib.util.spec_from_file_location("openapi_of_the_api", ROOT / "functions" / "api" / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    document: dict[str, Any] = json.loads(module.openapi_document())
    return document


DOCUMENT = api_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: Any, served: tuple[str, str]) -> None:
    url, key = served
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)


def test_the_fuzzed_document_is_the_served_one(served: tuple[str, str]) -> None:
    url, _ = served
    assert httpx.get(f"{url}/v1/openapi.json").json() == DOCUMENT
    operations = {(method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item}
    assert ("POST", "/v1/publications") in operations
