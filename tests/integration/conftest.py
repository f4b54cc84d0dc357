"""Handlers in-process against moto in server mode, with the resources and routes of template.yaml.

`Gateway` drives the api and authorizer functions through the local stack's API Gateway emulation;
`Stack` reads the channel queues and runs each channel's deliver function on real SQS messages.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from crieur import aws, config
from crieur.communes import CommuneService
from crieur.delivery import DeliveryWorker
from crieur.models import FanoutMessage
from crieur.store import Store
from infra.local.api import Gateway as LocalGateway
from infra.local.api import Request
from infra.local.pollers import lambda_record, settled_receipts
from infra.local.provision import Deployment, LocalFunction, provision
from infra.local.runtime import LambdaContext

BASE_ENV = {
    "AWS_DEFAULT_REGION": "eu-west-3",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


class InProcessFunctions:
    """Each function's module loaded once under its own name, invoked with its own environment."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.modules: dict[str, ModuleType] = {}

    def module(self, function: LocalFunction) -> ModuleType:
        if function.name not in self.modules:
            module_file, _, _ = function.handler.rpartition(".")
            spec = importlib.util.spec_from_file_location(
                f"handler_{function.name.replace('-', '_')}", function.code_dir / f"{module_file}.py"
            )
            assert spec is not None
            assert spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self.modules[function.name] = module
        return self.modules[function.name]

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        function = self.deployment.functions[name]
        handler = getattr(self.module(function), function.handler.rpartition(".")[2])
        saved = dict(os.environ)
        os.environ.update(function.environment)
        try:
            context = LambdaContext(
                function_name=name,
                function_version="$LATEST",
                invoked_function_arn=function.arn,
                memory_limit_in_mb=function.memory_size,
                aws_request_id=str(uuid.uuid4()),
                log_group_name=f"/aws/lambda/{name}",
                log_stream_name="test",
                deadline_ms=int(time.time() * 1000) + function.timeout * 1000,
            )
            return handler(event, context)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def by_logical_id(self, suffix: str, channel: str | None = None) -> LocalFunction:
        for function in self.deployment.functions.values():
            if function.logical_id.endswith(suffix) and function.environment.get("CHANNEL") == channel:
                return function
        raise KeyError(suffix)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


_insee_codes = itertools.count(10001)


@dataclass
class Gateway:
    functions: InProcessFunctions
    local: LocalGateway
    communes: CommuneService
    keys: dict[str, str] = field(default_factory=dict)

    def new_commune(self) -> str:
        insee = f"{next(_insee_codes):05d}"
        self.communes.create_commune(insee, f"Commune {insee}")
        self.keys[insee] = self.communes.create_key(insee).key
        return insee

    def call(
        self,
        method: str,
        path: str,
        insee: str | None,
        body: Any = None,
        *,
        raw: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        given = {name.lower(): value for name, value in (headers or {}).items()}
        sent = (
            [("content-type", "application/json"), *given.items()] if "content-type" not in given else [*given.items()]
        )
        if insee is not None:
            sent.append(("authorization", f"Bearer {self.keys[insee]}"))
        content = raw if raw is not None else (json.dumps(body) if body is not None else "")
        raw_path, _, query = path.partition("?")
        response = self.local.handle(Request(method, raw_path, query, sent, content.encode(), "127.0.0.1", "HTTP/1.1"))
        return Answer(response.status, dict(response.headers), response.body.decode())

    def authorize(self, header: str | None) -> Any:
        authorizer = self.functions.by_logical_id("AuthorizerFunction")
        event = {"type": "REQUEST", "headers": {"authorization": header} if header is not None else {}}
        return self.functions.invoke(authorizer.name, event)


@dataclass
class Stack:
    deployment: Deployment
    functions: InProcessFunctions
    table: str
    receipts: dict[str, list[str]] = field(default_factory=dict)

    def mapping(self, channel: str) -> Any:
        deliver = self.functions.by_logical_id("DeliverFunction", channel)
        return next(m for m in self.deployment.event_source_mappings if m.function == deliver.name)

    def receive(self, channel: str, wait: float = 2.0) -> dict[str, Any]:
        messages = self._receive(channel, wait)
        assert messages, f"no message on the {channel} queue"
        return messages[0]

    def _receive(self, channel: str, wait: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + wait
        while True:
            found = (
                aws.sqs()
                .receive_message(
                    QueueUrl=self.mapping(channel).queue_url,
                    MaxNumberOfMessages=10,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
                .get("Messages", [])
            )
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def drain(self, channel: str) -> list[dict[str, Any]]:
        messages = self._receive(channel, wait=0.5)
        for message in messages:
            aws.sqs().delete_message(QueueUrl=self.mapping(channel).queue_url, ReceiptHandle=message["ReceiptHandle"])
        return messages

    def run_deliver(self, channel: str, messages: list[dict[str, Any]]) -> list[str]:
        """Invokes the channel's deliver function like Lambda's SQS poller; returns the failed message ids."""
        mapping = self.mapping(channel)
        records = [lambda_record(message, mapping.queue_arn, self.deployment.region) for message in messages]
        result = self.functions.invoke(mapping.function, {"Records": records})
        settled = settled_receipts(records, result)
        for record in records:
            if record["receiptHandle"] in settled:
                aws.sqs().delete_message(QueueUrl=mapping.queue_url, ReceiptHandle=record["receiptHandle"])
            else:
                self.receipts.setdefault(channel, []).append(record["receiptHandle"])
        return [record["messageId"] for record in records if record["receiptHandle"] not in settled]

    def deliver(self, channel: str, *, make_visible: bool = False) -> list[str]:
        """Delivers what the queue holds; `make_visible` first ends the backoff of messages that failed."""
        if make_visible:
            for receipt in self.receipts.pop(channel, []):
                aws.sqs().change_message_visibility(
                    QueueUrl=self.mapping(channel).queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
                )
        return self.run_deliver(channel, [self.receive(channel)])

    def worker(self, channel: str) -> DeliveryWorker:
        function = self.functions.by_logical_id("DeliverFunction", channel)
        module = self.functions.module(function)
        saved = dict(os.environ)
        os.environ.update(function.environment)
        try:
            worker: DeliveryWorker = module.worker()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return worker

    @staticmethod
    def fanout_message(message: dict[str, Any]) -> FanoutMessage:
        return FanoutMessage.model_validate_json(message["Body"])

    def expire_lease(self, insee: str, publication_id: str, channel: str) -> None:
        aws.dynamodb().Table(self.table).update_item(
            Key={"pk": f"C#{insee}", "sk": f"P#{publication_id}#D#{channel}"},
            UpdateExpression="SET lease_until = :zero",
            ExpressionAttributeValues={":zero": 0},
        )


def _reset_caches() -> None:
    aws.reset()
    for cached in (config.store, config.vault, config.fanout, config.events, config.subscribers):
        cached.cache_clear()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def deployment(moto_endpoint: str) -> Deployment:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in BASE_ENV.items():
            patch.setenv(name, value)
        # moto shares its state within a process: a stack name of its own keeps e2e resources apart.
        return provision(moto_endpoint, Path(__file__).resolve().parents[2] / "template.yaml", stack_name="crieur-it")


@pytest.fixture
def aws_env(moto_endpoint: str, deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """AWS clients of this process point at this session's moto; every cache is fresh for each test."""
    for name, value in {**BASE_ENV, "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(name, value)
    _reset_caches()
    yield
    _reset_caches()


@pytest.fixture
def functions(deployment: Deployment, aws_env: None) -> InProcessFunctions:
    return InProcessFunctions(deployment)


@pytest.fixture
def stack(deployment: Deployment, functions: InProcessFunctions) -> Stack:
    """The queues start empty for each test: what an earlier test left there is not this test's."""
    for mapping in deployment.event_source_mappings:
        while (
            messages := aws.sqs()
            .receive_message(QueueUrl=mapping.queue_url, MaxNumberOfMessages=10)
            .get("Messages", [])
        ):
            for message in messages:
                aws.sqs().delete_message(QueueUrl=mapping.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return Stack(deployment, functions, deployment.outputs["TableName"])


@pytest.fixture
def gateway(deployment: Deployment, functions: InProcessFunctions, stack: Stack) -> Gateway:
    local = LocalGateway(
        deployment.apis[0], functions.invoke, account_id=deployment.account_id, region=deployment.region
    )
    return Gateway(functions, local, CommuneService(Store(stack.table)))
