"""The local stack's parts on their own: function processes, the SQS poller's rules, the API Gateway emulation."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.api import Gateway, Request, Router
from infra.local.pollers import lambda_record, settled_receipts
from infra.local.provision import Authorizer, HttpApi, LocalFunction, Route
from infra.local.runtime import FunctionProcess, LambdaError, function_environment

pytestmark = pytest.mark.e2e

HANDLER = """
import os, sys, time

print("cold start", flush=True)

def lambda_handler(event, context):
    if event.get("crash"):
        os._exit(3)
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("refused: " + event["fail"])
    if event.get("unmarshallable"):
        return {"when": object()}
    print("handling", event, file=sys.stderr, flush=True)
    return {
        "pid": os.getpid(),
        "channel": os.environ.get("CHANNEL"),
        "name": context.function_name,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "memory": context.memory_limit_in_mb,
        "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
    }
"""


@pytest.fixture
def function(tmp_path: Path) -> LocalFunction:
    (tmp_path / "app.py").write_text(HANDLER)
    return LocalFunction(
        name="probe",
        logical_id="Probe",
        arn="arn:aws:lambda:eu-west-3:123456789012:function:probe",
        code_dir=tmp_path,
        handler="app.lambda_handler",
        runtime="python3.13",
        layers=(),
        environment={"CHANNEL": "webhook"},
        timeout=2,
        memory_size=256,
    )


@pytest.fixture
def process(function: LocalFunction) -> Iterator[FunctionProcess]:
    lines: list[tuple[str, str]] = []
    env = function_environment(function, endpoint_url="http://127.0.0.1:1", region="eu-west-3")
    running = FunctionProcess(function, env, max_workers=2, log=lambda label, line: lines.append((label, line)))
    running.lines = lines  # type: ignore[attr-defined]
    running.start()
    yield running
    running.stop()


def test_invoke_in_a_process_of_its_own(process: FunctionProcess) -> None:
    result = process.invoke({"hello": "world"})
    assert result["channel"] == "webhook"
    assert result["name"] == "probe"
    assert result["memory"] == 256
    assert 0 < result["remaining_ms"] <= 2000
    assert result["endpoint"] == "http://127.0.0.1:1"
    assert result["secret"] == "local"  # never the developer's own AWS credentials
    assert result["pid"] in process.pids()

    def logged() -> list[str]:  # the process's output is read by a thread of its own: it may lag the answer
        return [line for _, line in process.lines]  # type: ignore[attr-defined]

    deadline = time.monotonic() + 10
    while not ("cold start" in logged() and any(line.startswith("handling") for line in logged())):
        assert time.monotonic() < deadline, logged()
        time.sleep(0.05)


def test_exception_comes_back_lambda_style(process: FunctionProcess) -> None:
    with pytest.raises(LambdaError) as raised:
        process.invoke({"fail": "no"})
    assert raised.value.payload["errorType"] == "ValueError"
    assert raised.value.payload["errorMessage"] == "refused: no"
    assert raised.value.payload["stackTrace"]
    with pytest.raises(LambdaError) as unmarshallable:
        process.invoke({"unmarshallable": True})
    assert unmarshallable.value.payload["errorType"] == "Runtime.MarshalError"
    assert process.invoke({})["channel"] == "webhook"


def test_crash_restarts_the_process(process: FunctionProcess) -> None:
    before = process.invoke({})["pid"]
    with pytest.raises(LambdaError) as raised:
        process.invoke({"crash": True})
    assert raised.value.payload["errorType"] == "Runtime.ExitError"
    assert process.invoke({})["pid"] != before


def test_timeout_kills_the_invocation(process: FunctionProcess) -> None:
    started = time.monotonic()
    with pytest.raises(LambdaError) as raised:
        process.invoke({"sleep": 10})
    assert time.monotonic() - started < 5
    assert raised.value.payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in raised.value.payload["errorMessage"]
    assert process.invoke({})["channel"] == "webhook"


def test_two_invocations_run_concurrently(process: FunctionProcess) -> None:
    results: list[int] = []

    def call() -> None:
        results.append(process.invoke({"sleep": 0.8})["pid"])

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 2


def test_stop_leaves_no_process(function: LocalFunction) -> None:
    env = function_environment(function, endpoint_url="http://127.0.0.1:1", region="eu-west-3")
    running = FunctionProcess(function, env, log=lambda *_: None)
    running.start()
    (pid,) = running.pids()
    running.stop()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    with pytest.raises(LambdaError):
        running.invoke({})


@pytest.mark.parametrize(
    ("source", "handler", "error_type"),
    [
        ("import not_a_module_anywhere\n", "app.lambda_handler", "Runtime.ImportModuleError"),
        ("def other(event, context):\n    return 1\n", "app.lambda_handler", "Runtime.HandlerNotFound"),
        ("raise RuntimeError('no table name')\n", "app.lambda_handler", "RuntimeError"),
    ],
    ids=["import", "handler", "init"],
)
def test_init_errors_come_back_on_each_invocation(
    function: LocalFunction, source: str, handler: str, error_type: str
) -> None:
    (function.code_dir / "app.py").write_text(source)
    env = function_environment(function, endpoint_url="http://127.0.0.1:1", region="eu-west-3")
    broken = FunctionProcess(function, env, log=lambda *_: None)
    broken.start()  # the process stays up, as a Lambda container whose init failed answers every invoke
    try:
        for _ in range(2):
            with pytest.raises(LambdaError) as raised:
                broken.invoke({})
            assert raised.value.payload["errorType"] == error_type
    finally:
        broken.stop()


# ---------------------------------------------------------------- pollers


def _message(number: int) -> dict[str, object]:
    return {
        "MessageId": f"m{number}",
        "ReceiptHandle": f"r{number}",
        "Body": "{}",
        "MD5OfBody": "x",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "s"},
        "MessageAttributes": {"channels": {"DataType": "String.Array", "StringValue": '["webhook"]'}},
    }


def test_lambda_sqs_record_shape() -> None:
    record = lambda_record(_message(1), "arn:aws:sqs:eu-west-3:1:q", "eu-west-3")
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:eu-west-3:1:q"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["channels"] == {
        "stringValue": '["webhook"]',
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String.Array",
    }


def test_partial_batch_failures_keep_only_the_failed_messages() -> None:
    batch = [lambda_record(_message(n), "arn:q", "eu-west-3") for n in range(3)]
    assert settled_receipts(batch, {"batchItemFailures": []}) == ["r0", "r1", "r2"]
    assert settled_receipts(batch, None) == ["r0", "r1", "r2"]
    assert settled_receipts(batch, {"batchItemFailures": [{"itemIdentifier": "m1"}]}) == ["r0", "r2"]
    # An identifier that is not in the batch makes Lambda fail the whole batch.
    assert settled_receipts(batch, {"batchItemFailures": [{"itemIdentifier": "zz"}]}) == []
    assert settled_receipts(batch, {"batchItemFailures": [{"itemIdentifier": ""}]}) == []


# ---------------------------------------------------------------- the gateway (no processes: a fake invoke)


def _gateway(answers: dict[str, object], calls: list[tuple[str, dict[str, object]]]) -> Gateway:
    api = HttpApi(
        logical_id="Api",
        api_id="abc123",
        routes=(
            Route("GET", "/v1/health", "fn-api", None),
            Route("ANY", "/v1/{proxy+}", "fn-api", "Key"),
            Route("GET", "/v1/items/{id}", "fn-api", "Key"),
        ),
        authorizers={
            "Key": Authorizer("Key", "fn-auth", ("$request.header.Authorization",), 300, "2.0", True),
        },
        cors=None,
    )

    def invoke(name: str, event: dict[str, object]) -> object:
        calls.append((name, event))
        answer = answers[name]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Gateway(api, invoke, account_id="123456789012", region="eu-west-3")


def _request(
    method: str, path: str, query: str = "", headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> Request:
    return Request(method, path, query, [("Host", "127.0.0.1:3000"), *(headers or [])], body, "127.0.0.1", "HTTP/1.1")


def test_gateway_refusals_are_api_gateways() -> None:
    calls: list[tuple[str, dict[str, object]]] = []
    gateway = _gateway({"fn-auth": {"isAuthorized": False}, "fn-api": {"statusCode": 200}}, calls)
    missing = gateway.handle(_request("GET", "/v1/publications"))
    assert (missing.status, json.loads(missing.body)) == (401, {"message": "Unauthorized"})
    assert calls == []  # a missing identity source never reaches the authorizer
    refused = gateway.handle(_request("GET", "/v1/publications", headers=[("Authorization", "Bearer x")]))
    assert (refused.status, json.loads(refused.body)) == (403, {"message": "Forbidden"})
    gateway.handle(_request("GET", "/v1/publications", headers=[("Authorization", "Bearer x")]))
    assert [name for name, _ in calls] == ["fn-auth"]  # the answer is cached per identity value
    (_, event), *_ = calls
    assert event["type"] == "REQUEST"
    assert event["identitySource"] == ["Bearer x"]
    assert event["routeArn"] == "arn:aws:execute-api:eu-west-3:123456789012:abc123/$default/GET/v1/publications"

    broken = _gateway({"fn-auth": LambdaError({"errorType": "E", "errorMessage": "m"}), "fn-api": {}}, [])
    failed = broken.handle(_request("GET", "/v1/x", headers=[("Authorization", "Bearer x")]))
    assert (failed.status, json.loads(failed.body)) == (500, {"message": "Internal Server Error"})
    assert broken.handle(_request("GET", "/elsewhere")).status == 404


def test_gateway_event_and_response_shapes() -> None:
    calls: list[tuple[str, dict[str, object]]] = []
    answer = {
        "statusCode": 202,
        "headers": {"X-One": "1"},
        "multiValueHeaders": {"X-Many": ["a", "b"]},
        "cookies": ["k=v; Path=/"],
        "body": base64.b64encode(b"\x00\x01").decode(),
        "isBase64Encoded": True,
    }
    gateway = _gateway({"fn-auth": {"isAuthorized": True, "context": {"commune": "35238"}}, "fn-api": answer}, calls)
    response = gateway.handle(
        _request(
            "POST",
            "/v1/items/42",
            "a=1&a=2&b=",
            [
                ("Authorization", "Bearer k"),
                ("Cookie", "s=1; t=2"),
                ("Content-Type", "application/octet-stream"),
                ("X-Dup", "1"),
                ("x-dup", "2"),
            ],
            b"\xff\x00",
        )
    )
    assert response.status == 202
    assert response.body == b"\x00\x01"
    assert ("X-Many", "a") in response.headers
    assert ("X-Many", "b") in response.headers
    assert ("Set-Cookie", "k=v; Path=/") in response.headers
    _, event = calls[-1]
    assert event["routeKey"] == "ANY /v1/{proxy+}"  # ANY /v1/{proxy+} is the only POST route here
    assert event["pathParameters"] == {"proxy": "items/42"}
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["headers"]["x-dup"] == "1,2"
    assert "cookie" not in event["headers"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\x00"
    context = event["requestContext"]
    assert context["authorizer"] == {"lambda": {"commune": "35238"}}
    assert context["stage"] == "$default"
    assert context["http"]["method"] == "POST"
    assert context["http"]["sourceIp"] == "127.0.0.1"

    gateway.handle(_request("GET", "/v1/items/7", headers=[("Authorization", "Bearer k")]))
    _, event = calls[-1]
    assert event["routeKey"] == "GET /v1/items/{id}"  # a parameter route beats the greedy one
    assert event["pathParameters"] == {"id": "7"}
    gateway.handle(_request("GET", "/v1/health"))
    _, event = calls[-1]
    assert event["routeKey"] == "GET /v1/health"
    assert "authorizer" not in event["requestContext"]


def test_a_trailing_slash_reaches_the_route_without_it_with_the_raw_path_kept() -> None:
    """As API Gateway does: no route may end in "/", and `/console/` is routed to `/console`."""
    router = Router(
        (
            Route("GET", "/console", "fn-api", None),
            Route("GET", "/console/{file}", "fn-api", None),
            Route("ANY", "/v1/{proxy+}", "fn-api", "auth"),
        )
    )
    assert router.match("GET", "/console") == (Route("GET", "/console", "fn-api", None), {})
    assert router.match("GET", "/console/") == (Route("GET", "/console", "fn-api", None), {})
    assert router.match("GET", "/console/app.js") == (
        Route("GET", "/console/{file}", "fn-api", None),
        {"file": "app.js"},
    )
    assert router.match("GET", "/console/app.js/") == (
        Route("GET", "/console/{file}", "fn-api", None),
        {"file": "app.js"},
    )
    assert router.match("GET", "/consoles") is None
