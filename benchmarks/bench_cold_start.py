"""Cold start per function: import + first invocation in a fresh process, as a ratio to a minimal handler.

The minimal handler imports powertools' Logger and boto3, creates one DynamoDB client and reads one item:
the least a Crieur function could do. Every function runs against moto (benchmarks.moto) with its template
environment, on a real event (an API request, a delivery of a real publication to the sandbox, a release,
a weather tick, an events batch). Runs are interleaved (minimal, api, authorizer, … then again) so that a
busy machine slows every function alike; the median of RUNS is kept. Budget: ratio ≤ 1.5 (issue #9).

Also measured, not a budget: the floor of a delivery, a handler doing the least a delivery can with the
packages the brief requires (powertools batch, pydantic, httpx) and two DynamoDB writes.

Code runs as `make build` packages it: Crieur's layer and each function's folder compiled to bytecode
(infra.precompile), the layer's packages installed by pip (compiled too).

Also reported: the top-level modules each function imports at init that the minimal handler does not, then
those its first call imports that the minimal handler never does (what a function defers to its first call still
costs), with their own import time (`python -X importtime`, one extra run); Crieur's own, module by module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import Row, row
from benchmarks.moto import deliver_function, environment, function_named
from benchmarks.world import World, world
from infra.local.pollers import lambda_record
from infra.local.provision import ROOT, LocalFunction
from infra.precompile import precompile

NAME = "cold_start"
RUNS = int(os.environ.get("CRIEUR_BENCH_COLD_RUNS", "5"))
BUDGET = 1.5
FLOOR_LABEL = "floor of a delivery (Logger, batch, pydantic, httpx POST, 2 DynamoDB writes)"
CHANNELS = ("webhook", "mastodon", "webpush", "website")
"""Deliver functions measured: two social/webhook ones, Web Push (cryptography) and website (feeds, S3)."""

REQUIREMENTS = ROOT / "layers" / "crieur" / "requirements.txt"


def layer_packages() -> Path | None:
    """The layer's third-party packages as `sam build` installs them (plus boto3, which Lambda provides), for
    this machine, cached under .crieur/; None (the project's virtualenv then) when pip cannot install them.

    The virtualenv holds development tools too: httpx imports its command-line extras (rich, click, pygments)
    when they are installed, ~45 ms that a Lambda container never spends."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    target = ROOT / ".crieur" / f"bench-layer-{digest}"
    if target.is_dir():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    done = subprocess.run(  # noqa: S603 - the project's own pip, the layer's own requirements
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(partial), "-r", str(REQUIREMENTS), "boto3"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        print(f"cold start: layer packages not installed, using the virtualenv:\n{done.stderr[-800:]}", file=sys.stderr)
        return None
    partial.rename(target)
    return target


CHILD = r"""
import json, sys, time
started = time.perf_counter()
import app
imported = time.perf_counter()
modules = sorted({name.partition(".")[0] for name in sys.modules})
with open(sys.argv[1], encoding="utf-8") as source:
    event = json.load(source)
class Context:
    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-3:123456789012:function:bench"
    memory_limit_in_mb = 512
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 30000
app.lambda_handler(event, Context())
done = time.perf_counter()
loaded = sorted({name.partition(".")[0] for name in sys.modules} - set(modules))
print("BENCH " + json.dumps({"import_s": imported - started, "invoke_s": done - imported, "modules": modules,
                             "loaded": loaded}))
"""

MINIMAL = '''"""The least a function could do: powertools Logger, one boto3 client, one read."""
import os

import boto3
from aws_lambda_powertools import Logger

logger = Logger()
_client = None


def lambda_handler(event, context):
    global _client
    if _client is None:
        _client = boto3.client("dynamodb")
    _client.get_item(TableName=os.environ["CRIEUR_TABLE_NAME"], Key={"pk": {"S": "bench"}, "sk": {"S": "bench"}})
    return {"ok": True}
'''


FLOOR = '''"""The least a delivery can do with the stack the brief requires: powertools Logger and batch processing,
a pydantic model at the boundary, an httpx client, a claim and a result write in DynamoDB, one POST."""
import os

import boto3
import httpx
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from pydantic import BaseModel

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_clients = {}


class Message(BaseModel):
    commune: str
    publication_id: str


def record_handler(record):
    message = Message.model_validate_json(record.body)
    if not _clients:
        _clients["dynamodb"] = boto3.client("dynamodb")
        _clients["http"] = httpx.Client(timeout=10)
    table, key = os.environ["CRIEUR_TABLE_NAME"], {"pk": {"S": "bench"}, "sk": {"S": message.publication_id}}
    _clients["dynamodb"].update_item(
        TableName=table, Key=key, UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "sending"}},
    )
    _clients["http"].post(os.environ["CRIEUR_BENCH_POST_URL"], json={"publication": message.publication_id})
    _clients["dynamodb"].update_item(
        TableName=table, Key=key, UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "sent"}},
    )


def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
'''
"""Not a budget: shows how much of a deliver function's cold start its required packages alone take."""


class Target:
    """One function to start cold: where its code is, its environment, one event file per run."""

    def __init__(self, label: str, code_dir: Path, env: dict[str, str], events: list[Path], isolated: bool) -> None:
        self.label = label
        self.isolated = isolated
        """Run with `python -S`: only PYTHONPATH (code, crieur, the layer's packages) and the standard library."""
        self.code_dir = code_dir
        self.env = env
        self.events = events
        self.totals: list[float] = []
        self.imports: list[float] = []
        self.modules: set[str] = set()
        """Top-level modules imported at init."""
        self.loaded: set[str] = set()
        """Top-level modules the first call imports."""
        self.import_times: dict[str, float] = {}
        self.own_times: dict[str, float] = {}
        """crieur's modules, each by its own import time."""

    def run(self, index: int, *, importtime: bool = False) -> None:
        options = [*(["-S"] if self.isolated else []), *(["-X", "importtime"] if importtime else [])]
        command = [sys.executable, *options, "-c", CHILD, str(self.events[index])]
        done = subprocess.run(  # noqa: S603 - our own interpreter on our own script
            command, cwd=self.code_dir, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"{self.label}: exit {done.returncode}\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}")
        result = json.loads(lines[-1].removeprefix("BENCH "))
        if importtime:
            self.import_times = import_times(done.stderr)
            self.own_times = import_times(done.stderr, package="crieur")
            return
        self.totals.append(result["import_s"] + result["invoke_s"])
        self.imports.append(result["import_s"])
        self.modules = set(result["modules"])
        self.loaded = set(result["loaded"])

    def shown(self, names: set[str]) -> str:
        """`names` by their import time, longest first; after crieur, its heaviest modules (at init or first call)."""
        listed = []
        for name in sorted(names, key=lambda name: -self.import_times.get(name, 0.0)):
            if name.startswith("_"):
                continue
            listed.append(f"{name} {self.import_times.get(name, 0.0) * 1000:.0f} ms")
            own = sorted(self.own_times.items(), key=lambda item: -item[1])[:4] if name == "crieur" else []
            if own:
                listed[-1] += " (" + ", ".join(f"{module} {spent * 1000:.0f}" for module, spent in own) + ")"
        return ", ".join(listed) or "none"


def import_times(stderr: str, package: str | None = None) -> dict[str, float]:
    """`-X importtime` output → seconds of import work (self time) per top-level package, or per module of
    `package` (without its prefix)."""
    spent: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        name = fields[2].strip()
        if package is None:
            spent[name.partition(".")[0]] += int(fields[0]) / 1e6
        elif name.startswith(package + "."):
            spent[name.removeprefix(package + ".")] += int(fields[0]) / 1e6
    return dict(spent)


def _events(built: World, folder: Path, count: int) -> dict[str, list[Path]]:
    """`count` event files per function label, each for a different publication where it matters."""
    files: dict[str, list[Path]] = defaultdict(list)

    def save(label: str, event: dict[str, Any]) -> None:
        path = folder / f"{label}-{len(files[label])}.json"
        path.write_text(json.dumps(event), encoding="utf-8")
        files[label].append(path)

    captured: dict[str, list[dict[str, Any]]] = defaultdict(list)
    real_invoke = type(built.functions).invoke

    def capture(name: str, event: dict[str, Any]) -> Any:
        captured[name].append(event)
        return real_invoke(built.functions, name, event)

    built.functions.invoke = capture  # type: ignore[method-assign]
    api = function_named(built.deployment, "ApiFunction")
    authorizer = function_named(built.deployment, "AuthorizerFunction")
    built.gateway.cache.clear()
    listed = built.call("GET", "/v1/publications?limit=5")
    if listed.status != 200:
        raise RuntimeError(f"GET /v1/publications: {listed.status}")
    built.functions.invoke = lambda name, event: real_invoke(built.functions, name, event)  # type: ignore[method-assign]
    for _ in range(count):
        save("api", captured[api.name][0])
        save("authorizer", captured[authorizer.name][0])

    later = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    for index in range(count):
        built.publish(f"Démarrage à froid {index}", media=[])  # the provider's work (an upload) is not start-up
        for channel in CHANNELS:
            function = deliver_function(built.deployment, channel)
            mapping = next(m for m in built.deployment.event_source_mappings if m.function == function.name)
            messages = built.queued(channel)
            save(
                f"deliver {channel}",
                {"Records": [lambda_record(m, mapping.queue_arn, built.deployment.region) for m in messages]},
            )
        scheduled = built.publish(f"Programmée {index}", publish_at=later)
        save("release", {"commune": scheduled["commune"], "publication_id": scheduled["id"], "version": 1})
        save("weather", {"source": "aws.scheduler", "detail-type": "Scheduled Event"})
        events_mapping = next(
            m
            for m in built.deployment.event_source_mappings
            if m.function == function_named(built.deployment, "EventsFunction").name
        )
        message = {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": "bench",
            "Body": json.dumps({"events": []}),
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
        }
        save("events", {"Records": [lambda_record(message, events_mapping.queue_arn, built.deployment.region)]})
    return files


def built_copy(folder: Path, source: Path) -> Path:
    """`source` (a function's folder, or the crieur layer) as `make build` packages it: copied, then compiled to
    bytecode (infra.precompile). Without it every run would compile Crieur's modules, as every cold start on
    Lambda did before `make build` precompiled, while the layer's packages (pip-installed) come compiled."""
    target = folder / "built" / source.relative_to(ROOT)
    if not target.exists():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        if not precompile(target):
            raise RuntimeError(f"{source}: a module does not compile")
    return target


def _targets(built: World, folder: Path, layer: Path | None) -> list[Target]:
    events = _events(built, folder, RUNS + 1)
    hosts = {
        imitation.base_url_variable: f"{built.sandbox.url}{prefix}"
        for prefix, imitation in built.sandbox.imitations.items()
        if imitation.base_url_variable
    }

    def env_of(function: LocalFunction) -> dict[str, str]:
        env = environment(built.deployment, function, extra=hosts)
        env["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        if layer is not None:  # as in Lambda: the function's folder, the layer (crieur + its packages)
            code = [built_copy(folder, function.code_dir), *(built_copy(folder, path) for path in function.layers)]
            env["PYTHONPATH"] = os.pathsep.join([*map(str, code), str(layer)])
        return env

    minimal_dir = folder / "minimal"
    minimal_dir.mkdir()
    (minimal_dir / "app.py").write_text(MINIMAL, encoding="utf-8")
    precompile(minimal_dir)
    api = function_named(built.deployment, "ApiFunction")
    minimal_env = env_of(api)
    minimal_env["PYTHONPATH"] = os.pathsep.join([str(minimal_dir), *([str(layer)] if layer else [])])
    isolated = layer is not None
    floor_dir = folder / "floor"
    floor_dir.mkdir()
    (floor_dir / "app.py").write_text(FLOOR, encoding="utf-8")
    precompile(floor_dir)
    floor_env = {**minimal_env, "CRIEUR_BENCH_POST_URL": f"{built.sandbox.url}/webhook/bench"}
    floor_env["PYTHONPATH"] = os.pathsep.join([str(floor_dir), *([str(layer)] if layer else [])])
    targets = [
        Target("minimal", minimal_dir, minimal_env, events["weather"], isolated),
        Target(FLOOR_LABEL, floor_dir, floor_env, events["deliver webhook"], isolated),
    ]
    by_label: dict[str, LocalFunction] = {
        "api": api,
        "authorizer": function_named(built.deployment, "AuthorizerFunction"),
        "release": function_named(built.deployment, "ReleaseFunction"),
        "weather": function_named(built.deployment, "WeatherFunction"),
        "events": function_named(built.deployment, "EventsFunction"),
        **{f"deliver {channel}": deliver_function(built.deployment, channel) for channel in CHANNELS},
    }
    targets += [
        Target(
            label,
            built_copy(folder, function.code_dir) if isolated else function.code_dir,
            env,
            events[label],
            isolated,
        )
        for label, function in by_label.items()
        for env in [env_of(function)]
    ]
    return targets


def run() -> list[Row]:
    layer = layer_packages()
    with tempfile.TemporaryDirectory(prefix="crieur-cold-") as temporary, world(CHANNELS) as built:
        targets = _targets(built, Path(temporary), layer)
        for index in range(RUNS):
            for target in targets:
                target.run(index)
        for target in targets:
            target.run(RUNS, importtime=True)
    minimal = targets[0]
    baseline = statistics.median(minimal.totals)
    rows = [
        row(NAME, "packages", "the layer's requirements (python -S)" if layer else "the project's virtualenv"),
        row(NAME, "minimal handler (Logger + 1 boto3 client + 1 read)", baseline * 1000, "ms"),
        row(NAME, "minimal handler: import", statistics.median(minimal.imports) * 1000, "ms"),
    ]
    floor = statistics.median(targets[1].totals)
    rows.append(row(NAME, f"{FLOOR_LABEL}: import + first call", floor * 1000, "ms"))
    rows.append(row(NAME, f"{FLOOR_LABEL}: ratio to minimal (not a budget)", round(floor / baseline, 2), "×"))
    for target in targets[2:]:
        total = statistics.median(target.totals)
        ratio = total / baseline
        rows.append(row(NAME, f"{target.label}: import + first call", total * 1000, "ms"))
        rows.append(row(NAME, f"{target.label}: import", statistics.median(target.imports) * 1000, "ms"))
        rows.append(
            row(NAME, f"{target.label}: ratio to minimal", round(ratio, 2), "×", budget=BUDGET, ok=ratio <= BUDGET)
        )
        rows.append(
            row(NAME, f"{target.label}: modules beyond minimal at init", target.shown(target.modules - minimal.modules))
        )
        later = target.loaded - minimal.modules - minimal.loaded
        rows.append(row(NAME, f"{target.label}: modules its first call loads beyond minimal", target.shown(later)))
    return rows
