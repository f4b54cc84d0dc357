"""The embedded default over real HTTP: moto, the functions in their own processes, the local API, the
queue pollers and the channel sandbox, as `make run` starts them (ARCHITECTURE.md §7)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local.stack import LocalStack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SETTLED = {"sent", "failed", "skipped", "cancelled", "retracted", "retract_unsupported"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state = tmp_path_factory.mktemp("crieur") / "local.json"
    # moto keeps its state per process, shared by every ThreadedMotoServer in it (the integration suite runs one):
    # a stack name of its own keeps this stack's resource names apart.
    with LocalStack(api_port=0, aws_port=0, sandbox_port=0, state_file=state, stack_name="crieur-e2e") as running:
        yield running


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.demo_api_key}"}, timeout=30
    ) as client:
        yield client


def wait_for(check: Callable[[], Any], timeout: float = 15.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(every)


def publish(api: httpx.Client, channels: list[str], **extra: Any) -> dict[str, Any]:
    body = {"title": f"Essai {uuid.uuid4().hex[:8]}", "body": "Coupure d'eau mardi matin.", "channels": channels}
    response = api.post("/v1/publications", json=body | extra.pop("body", {}), **extra)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/publications/{response.json()['id']}"
    return dict(response.json())


def settled(api: httpx.Client, publication_id: str, timeout: float = 15.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        publication = api.get(f"/v1/publications/{publication_id}").json()
        statuses = {delivery["status"] for delivery in publication["deliveries"].values()}
        # The aggregate status follows the last delivery's outcome by one write.
        return publication if statuses <= SETTLED and publication["status"] != "publishing" else None

    return dict(wait_for(done, timeout))


def posts_for(stack: LocalStack, channel: str, title: str) -> list[dict[str, Any]]:
    """What the sandbox accepted (2xx, not a replay) for one publication."""
    return [
        item
        for item in stack.sandbox.received(channel)
        if 200 <= item["status"] < 300 and not item["duplicate"] and title in json.dumps(item["body"])
    ]


# ---------------------------------------------------------------- the gateway


def test_health_needs_no_key(stack: LocalStack) -> None:
    response = httpx.get(f"{stack.api_url}/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_missing_key_is_401_without_calling_the_authorizer(stack: LocalStack) -> None:
    response = httpx.get(f"{stack.api_url}/v1/publications")
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


def test_unknown_key_is_a_401_problem(stack: LocalStack) -> None:
    # API Gateway answers 403 {"message": "Forbidden"} when a simple-response authorizer says isAuthorized=false;
    # the authorizer therefore lets unknown keys through with an empty commune and the api function answers 401.
    response = httpx.get(f"{stack.api_url}/v1/publications", headers={"Authorization": "Bearer crieur_nope"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 401


def test_a_revoked_key_stops_working_at_once(stack: LocalStack) -> None:
    from crieur.communes import CommuneService
    from crieur.store import Store

    communes = CommuneService(Store(stack.outputs["TableName"]))
    key = communes.create_key(stack.demo_insee)
    headers = {"Authorization": f"Bearer {key.key}"}
    assert httpx.get(f"{stack.api_url}/v1/channels", headers=headers).status_code == 200
    communes.revoke_key(stack.demo_insee, key.key_id)
    # No authorizer cache (ReauthorizeEvery 0 in the template): the very next request is refused.
    assert httpx.get(f"{stack.api_url}/v1/channels", headers=headers).status_code == 401


def test_unknown_route_is_api_gateways_404(stack: LocalStack) -> None:
    response = httpx.get(f"{stack.api_url}/nowhere")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


def test_cors_preflight_is_answered_before_the_authorizer(stack: LocalStack) -> None:
    response = httpx.options(
        f"{stack.api_url}/v1/publications",
        headers={
            "Origin": "https://mairie.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "idempotency-key" in response.headers["access-control-allow-headers"]


def test_openapi_document(stack: LocalStack) -> None:
    response = httpx.get(f"{stack.api_url}/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert "/v1/publications" in document["paths"]


# ---------------------------------------------------------------- publishing end to end


def test_publish_to_webhook_and_mastodon(stack: LocalStack, api: httpx.Client) -> None:
    created = publish(api, ["webhook", "mastodon"])
    assert created["status"] == "publishing"
    publication = settled(api, created["id"])
    assert {channel: d["status"] for channel, d in publication["deliveries"].items()} == {
        "webhook": "sent",
        "mastodon": "sent",
    }
    assert publication["status"] == "published"

    (webhook,) = posts_for(stack, "webhook", created["title"])
    assert webhook["signature_valid"] is True
    assert webhook["body"]["data"]["id"] == created["id"]
    (status,) = posts_for(stack, "mastodon", created["title"])
    assert publication["deliveries"]["mastodon"]["external_id"] == status["id"]

    listed = api.get("/v1/publications", params={"limit": 1}).json()
    assert listed["items"][0]["id"] == created["id"]


def test_the_hosted_feeds_link_to_the_local_api(stack: LocalStack, api: httpx.Client) -> None:
    created = publish(api, ["website"])
    publication = settled(api, created["id"])
    assert publication["deliveries"]["website"]["url"] == f"{stack.api_url}/public/{stack.demo_insee}/widget.html"
    feed = httpx.get(f"{stack.api_url}/public/{stack.demo_insee}/feed.json", timeout=10).json()
    assert feed["feed_url"].startswith(f"{stack.api_url}/public/{stack.demo_insee}/")
    assert "execute-api" not in json.dumps(feed)


def test_a_timed_post_goes_out_when_its_schedule_fires(stack: LocalStack, api: httpx.Client) -> None:
    """moto stores the schedule; the local clock fires it at its second, as EventBridge Scheduler would."""
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    created = publish(api, ["webhook"], body={"publish_at": at.isoformat()})
    assert created["status"] == "scheduled"
    assert not posts_for(stack, "webhook", created["title"])
    publication = wait_for(lambda: (p := settled(api, created["id"]))["status"] == "published" and p, timeout=20)
    (webhook,) = posts_for(stack, "webhook", created["title"])
    assert datetime.fromisoformat(webhook["at"].replace("Z", "+00:00")) >= at
    assert publication["deliveries"]["webhook"]["status"] == "sent"


def test_replayed_idempotency_key_creates_nothing(stack: LocalStack, api: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    title = f"Rejeu {uuid.uuid4().hex[:8]}"
    first = publish(api, ["mastodon"], body={"title": title}, headers=key)
    settled(api, first["id"])
    again = publish(api, ["mastodon"], body={"title": title}, headers=key)
    assert again["id"] == first["id"]
    time.sleep(1.5)  # a second fan-out would reach the sandbox within a poll and a batching window
    assert len(posts_for(stack, "mastodon", title)) == 1


def test_transient_provider_error_is_retried(stack: LocalStack, api: httpx.Client) -> None:
    stack.sandbox.inject_fault("mastodon", status=503)
    created = publish(api, ["mastodon"])
    mastodon = settled(api, created["id"])["deliveries"]["mastodon"]
    assert mastodon["status"] == "sent"
    assert mastodon["attempts"] >= 2
    assert len(posts_for(stack, "mastodon", created["title"])) == 1


def test_permanent_provider_error_fails_with_a_reason(stack: LocalStack, api: httpx.Client) -> None:
    stack.sandbox.inject_fault("mastodon", status=422)
    created = publish(api, ["mastodon"])
    publication = settled(api, created["id"])
    mastodon = publication["deliveries"]["mastodon"]
    assert mastodon["status"] == "failed"
    assert mastodon["error"]["message"]
    assert publication["status"] == "failed"
    assert posts_for(stack, "mastodon", created["title"]) == []


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"links": [{"url": "http://mairie.example/travaux"}]}, "links[0].url"),
        ({"media": [{"url": "https://mairie.example/photo.jpg"}]}, "media[0].alt"),
    ],
    ids=["unknown-field", "http-link", "missing-alt"],
)
def test_invalid_publication_is_a_422_problem(api: httpx.Client, extra: dict[str, Any], field: str) -> None:
    body = {"title": "Titre", "body": "Texte", "channels": ["webhook"], **extra}
    response = api.post("/v1/publications", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422
    assert field in [error["field"] for error in problem["errors"]], problem


# ---------------------------------------------------------------- the stack itself


def test_state_file_for_the_cli(stack: LocalStack) -> None:
    assert stack.state_file is not None
    state = json.loads(stack.state_file.read_text())
    assert state["aws_endpoint"] == stack.aws_endpoint
    assert state["api_url"] == stack.api_url
    assert state["outputs"]["ApiUrl"] == stack.api_url + "/"
    assert set(state["outputs"]) >= {"TableName", "IdempotencyTableName", "TopicArn", "CredentialsKeyArn"}


def test_a_third_channel_block_appears_locally_unchanged(stack: LocalStack, tmp_path: Path) -> None:
    """Nothing in infra/local is written per channel: a copied channel block provisions like the others."""
    from infra.local.provision import provision

    text = (ROOT / "template.yaml").read_text()
    text = text.replace("CodeUri: functions/", f"CodeUri: {ROOT}/functions/")
    text = text.replace("ContentUri: layers/", f"ContentUri: {ROOT}/layers/")
    text = text.replace("Location: infra/channel.yaml", f"Location: {ROOT}/infra/channel.yaml")
    start = text.index("  MastodonChannel:")
    block = text[start : text.index("\n\n", start)]
    # A channel the template does not have (every channel of the contract has its block now).
    third = block.replace("MastodonChannel:", "ThirdChannel:").replace("Channel: mastodon", "Channel: third")
    template = tmp_path / "template.yaml"
    template.write_text(text.replace("\nOutputs:", "\n" + third + "\nOutputs:"))

    deployment = provision(stack.aws_endpoint, template, stack_name=f"third-{uuid.uuid4().hex[:6]}")
    channels = {function.environment.get("CHANNEL") for function in deployment.functions.values()}
    assert stack.deployment is not None
    before = {function.environment.get("CHANNEL") for function in stack.deployment.functions.values()}
    assert channels == before | {"third"}
    (mapping,) = [m for m in deployment.event_source_mappings if m.logical_id == "ThirdChannel/Deliveries"]
    assert mapping.batch_size == 10
    assert mapping.report_batch_item_failures
    subscription = deployment.resources["ThirdChannel/Subscription"].properties
    assert subscription["FilterPolicy"] == {"channels": ["third"]}
    nested = deployment.resources["ThirdChannel"].attributes
    assert deployment.functions[nested["Outputs.FunctionName"]].environment["CHANNEL"] == "third"
    assert nested["Outputs.QueueUrl"] == mapping.queue_url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc, psutil not needed)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to find child processes")
def test_make_run_starts_prints_the_banner_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    state = tmp_path / "local.json"
    env = {
        **os.environ,
        "CRIEUR_LOCAL_PORT": str(_free_port()),
        "CRIEUR_LOCAL_AWS_PORT": str(_free_port()),
        "CRIEUR_LOCAL_SANDBOX_PORT": str(_free_port()),
        "CRIEUR_LOCAL_API_KEY": "crieur_e2e_demo_key_0123456789",
        "CRIEUR_LOCAL_STATE": str(state),
    }
    logs = (tmp_path / "stderr.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=logs,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            banner.append(line)
            if "/v1/publications?limit=1" in line:
                break
        text = "".join(banner)
        assert f"http://127.0.0.1:{env['CRIEUR_LOCAL_PORT']}/v1/docs" in text, text
        assert "crieur_e2e_demo_key_0123456789" in text
        assert "curl" in text
        assert state.is_file()
        health = httpx.get(f"http://127.0.0.1:{env['CRIEUR_LOCAL_PORT']}/v1/health")
        assert health.status_code == 200
        children = _descendants(process.pid)
        assert children, "each function runs in a process of its own"

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert not [pid for pid in children if _running(pid)]
        assert not state.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        logs.close()


def test_an_orange_vigilance_is_broadcast_once_then_its_end(stack: LocalStack, api: httpx.Client) -> None:
    """Switching the sandbox's Météo-France to orange canicule in the demo commune's département sends one
    alert within a poller tick; later ticks send nothing more; the end of vigilance sends one notice."""
    departement = stack.demo_insee[:2]
    weather = next(f for f in stack.deployment.functions.values() if f.logical_id == "WeatherFunction")  # type: ignore[union-attr]

    def tick() -> dict[str, Any]:
        return dict(stack.invoke(weather.name, {}))

    def alerts() -> list[dict[str, Any]]:
        items = api.get("/v1/publications", params={"limit": 50}).json()["items"]
        return [item for item in items if item["category"] == "weather"]

    tick()  # the current (green) carte becomes the known state
    before = len(alerts())
    switched = httpx.post(
        f"{stack.sandbox.url}/meteofrance/_state",
        json={"departement": departement, "phenomenon": "canicule", "color": "orange", "hours": 24},
    )
    assert switched.status_code in (200, 201), switched.text
    report = tick()
    assert report["source"] == "meteofrance"
    assert len(report["published"]) == 1
    assert tick()["published"] == []
    (alert,) = alerts()[: len(alerts()) - before]
    assert alert["urgency"] == "high"
    settled(api, alert["id"])

    httpx.post(
        f"{stack.sandbox.url}/meteofrance/_state",
        json={"departement": departement, "phenomenon": "canicule", "color": "green"},
    )
    ended = tick()
    assert len(ended["published"]) == 1
    assert "fin" in alerts()[0]["title"].lower()
    # The alert itself is retracted wherever the network allows it, once the end is announced.
    retracted = api.get(f"/v1/publications/{alert['id']}").json()
    assert retracted["status"] == "retracted"


# ---------------------------------------------------------------- outbound event webhooks


def test_a_registered_endpoint_receives_signed_status_events(stack: LocalStack, api: httpx.Client) -> None:
    """The events queue, its poller and the events function run locally as the template declares them."""
    answer = api.post(
        "/v1/event-endpoints",
        json={"url": stack.sandbox.webhook_url("events"), "events": ["publication.published"]},
    )
    assert answer.status_code == 201, answer.text
    endpoint = answer.json()
    stack.sandbox.register_webhook_secret("events", endpoint["secret"])
    try:
        created = publish(api, ["webhook"])
        settled(api, created["id"])

        def received() -> list[dict[str, Any]]:
            return [
                item
                for item in stack.sandbox.received("webhook")
                if item.get("name") == "events"
                and isinstance(item["body"], dict)
                and item["body"]["data"].get("id") == created["id"]
            ]

        (event,) = wait_for(received)
        assert event["signature_valid"] is True
        assert event["body"]["type"] == "publication.published"
        assert event["body"]["data"]["status"] == "published"
    finally:
        assert api.delete(f"/v1/event-endpoints/{endpoint['id']}").status_code == 204
