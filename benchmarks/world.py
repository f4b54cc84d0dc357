"""A provisioned Crieur in this process, for the benchmarks that count calls or time one invocation.

moto (benchmarks.moto) + the channel sandbox on loopback + one commune whose channels point at the
sandbox's imitations, configured through the API as `make run` does (infra/local/stack.py). Handlers run
in-process, each under its own environment (tests/integration/conftest.py's InProcessFunctions); the
channel queues are read here and handed to each channel's deliver function as Lambda's poller would.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from benchmarks.moto import deliver_function, provisioned
from crieur import aws, config
from crieur.communes import CommuneService
from crieur.security import new_webhook_secret
from crieur.store import Store
from infra.local.api import Gateway, Request, Response
from infra.local.pollers import lambda_record, settled_receipts
from infra.local.provision import Deployment
from infra.local.sandbox import Sandbox
from tests.integration.conftest import InProcessFunctions

INSEE = "35238"
CHANNELS = (
    "mastodon",
    "webhook",
    "facebook",
    "instagram",
    "x",
    "bluesky",
    "wordpress",
    "push",
    "webpush",
    "website",
)
"""Every channel with an adapter and a sandbox imitation (or hosted, for website)."""


@dataclass
class World:
    deployment: Deployment
    sandbox: Sandbox
    functions: InProcessFunctions
    gateway: Gateway
    api_key: str
    channels: tuple[str, ...]
    invoked: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Response:
        """One HTTP request through the API Gateway emulation (authorizer, then the api function)."""
        sent = [("content-type", "application/json"), ("authorization", f"Bearer {self.api_key}")]
        sent += [(name.lower(), value) for name, value in (headers or {}).items()]
        raw_path, _, query = path.partition("?")
        content = json.dumps(body).encode() if body is not None else b""
        return self.gateway.handle(Request(method, raw_path, query, sent, content, "127.0.0.1", "HTTP/1.1"))

    def publication_body(self, title: str, **extra: Any) -> dict[str, Any]:
        """A typical announcement with a link and a photo (Instagram needs one), on every channel."""
        return {
            "title": title,
            "body": "La rue de la Mairie sera fermée mardi de 8 h à 12 h pour des travaux sur le réseau d'eau.",
            "links": [{"url": "https://www.example.fr/travaux", "label": "Le plan de déviation"}],
            "media": [{"url": self.sandbox.demo_photo_url(), "alt": "La mairie vue depuis la place"}],
            "channels": list(self.channels),
            **extra,
        }

    def publish(self, title: str, **extra: Any) -> dict[str, Any]:
        answer = self.call("POST", "/v1/publications", self.publication_body(title, **extra))
        if answer.status != 201:
            raise RuntimeError(f"publish refused: {answer.status} {answer.body!r}")
        return dict(json.loads(answer.body))

    def queued(self, channel: str) -> list[dict[str, Any]]:
        """What the channel's queue holds now (received, so invisible until deleted or timed out)."""
        mapping = self._mapping(channel)
        found: list[dict[str, Any]] = []
        while True:
            batch = aws.sqs().receive_message(
                QueueUrl=mapping.queue_url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            if not batch.get("Messages"):
                return found
            found += batch["Messages"]

    def deliver(self, channel: str, messages: list[dict[str, Any]]) -> Any:
        """The channel's deliver function on these messages; the settled ones are deleted, as Lambda does."""
        mapping = self._mapping(channel)
        records = [lambda_record(message, mapping.queue_arn, self.deployment.region) for message in messages]
        answer = self.functions.invoke(mapping.function, {"Records": records})
        for receipt in settled_receipts(records, answer):
            aws.sqs().delete_message(QueueUrl=mapping.queue_url, ReceiptHandle=receipt)
        return answer

    def _mapping(self, channel: str) -> Any:
        function = deliver_function(self.deployment, channel)
        return next(m for m in self.deployment.event_source_mappings if m.function == function.name)


def _reset_caches() -> None:
    aws.reset()
    for cached in (config.store, config.vault, config.fanout, config.events, config.http):
        cached.cache_clear()


@contextmanager
def world(channels: tuple[str, ...] = CHANNELS) -> Iterator[World]:
    """Everything started, the commune seeded with `channels` on the sandbox; stopped and restored after."""
    saved = dict(os.environ)
    sandbox = Sandbox(port=0)
    sandbox.start()
    try:
        with provisioned() as deployment:
            os.environ["CRIEUR_ALLOW_PRIVATE_TARGETS"] = "1"
            os.environ["CRIEUR_RETRY_BASE_SECONDS"] = "1"
            for prefix, imitation in sandbox.imitations.items():
                if imitation.base_url_variable:
                    os.environ[imitation.base_url_variable] = f"{sandbox.url}{prefix}"
            _reset_caches()
            for function in deployment.functions.values():
                function.environment["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # the table, not every request's log
            functions = InProcessFunctions(deployment)

            def invoke(name: str, event: dict[str, Any]) -> Any:
                return functions.invoke(name, event)  # looked up per call: a benchmark may wrap it

            gateway = Gateway(deployment.apis[0], invoke, account_id=deployment.account_id, region=deployment.region)
            communes = CommuneService(Store(deployment.outputs["TableName"]))
            communes.create_commune(INSEE, "Commune de mesure")
            key = communes.create_key(INSEE).key
            built = World(deployment, sandbox, functions, gateway, key, channels)
            _configure(built)
            yield built
    finally:
        sandbox.stop()
        os.environ.clear()
        os.environ.update(saved)
        _reset_caches()


def _configure(built: World) -> None:
    sandbox = built.sandbox
    webhook_secret = new_webhook_secret()
    mastodon_token = secrets.token_urlsafe(32)
    sandbox.register_webhook_secret("bench", webhook_secret)
    sandbox.register_mastodon_token(mastodon_token)
    bodies: dict[str, dict[str, Any]] = {
        "webhook": {
            "enabled": True,
            "settings": {"url": sandbox.webhook_url("bench")},
            "credentials": {"secret": webhook_secret},
        },
        "mastodon": {
            "enabled": True,
            "settings": {"instance_url": sandbox.mastodon_url()},
            "credentials": {"access_token": mastodon_token},
        },
        "website": {"enabled": True, "settings": {}},
    }
    for imitation in sandbox.imitations.values():
        body = imitation.demo_channel()
        if body is not None:
            bodies[imitation.channel] = body
    for channel in built.channels:
        answer = built.call("PUT", f"/v1/channels/{channel}", bodies[channel])
        if answer.status != 200:
            raise RuntimeError(f"channel {channel} refused: {answer.status} {answer.body!r}")
