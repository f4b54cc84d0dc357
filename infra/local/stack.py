"""The whole local stack in one object: moto, the functions, the local API, the pollers and the sandbox.

    with LocalStack(api_port=0, aws_port=0, sandbox_port=0) as stack:
        httpx.get(f"{stack.api_url}/v1/health")

`start()` runs moto (`ThreadedMotoServer`) on loopback, provisions template.yaml into it, starts one
process per Lambda function, serves the local API, starts one poller per SQS event source mapping and the
channel sandbox, then seeds a demo commune (core use cases, in this process) whose `webhook` and `mastodon`
channels are configured through the local API, pointing at the sandbox. `stop()` undoes all of it and
leaves no process behind.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from infra.local.api import Gateway, LocalApi
from infra.local.clock import SchedulerClock
from infra.local.pollers import Pollers, QueuePoller
from infra.local.provision import DEFAULT_REGION, DEFAULT_STACK_NAME, ROOT, TEMPLATE, Deployment, provision
from infra.local.runtime import FunctionProcess, LambdaError, function_environment

log = logging.getLogger("crieur.local")

DEFAULT_API_PORT = 3000
DEFAULT_AWS_PORT = 4566
DEFAULT_SANDBOX_PORT = 3001
DEFAULT_DEMO_INSEE = "35238"
DEMO_NAME = "Commune de démonstration"
STATE_FILE = ROOT / ".crieur" / "local.json"
HOST = "127.0.0.1"

# The parent's own AWS environment while the stack runs (the seeding uses the core's boto3 clients).
_AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
_AWS_ENV_CLEARED = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")


class StackError(RuntimeError):
    """The local stack could not start (the message says why, in French and English)."""


def _env_port(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        port = int(value)
    except ValueError as bad:
        raise StackError(f"{name}={value!r} : un numéro de port est attendu / a port number is expected") from bad
    if not 0 <= port <= 65535:
        raise StackError(f"{name}={value!r} : port hors limites / port out of range")
    return port


def _check_port_free(port: int, what: str, variable: str) -> None:
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Like the servers themselves: connections of a previous run in TIME_WAIT do not count, a listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as busy:
            raise StackError(
                f"{what} : le port {port} est déjà pris (changez {variable}) / port {port} is in use (set {variable})"
            ) from busy


# ---------------------------------------------------------------- logs

_PLATFORM_KEYS = {
    "level",
    "message",
    "timestamp",
    "service",
    "location",
    "cold_start",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "xray_trace_id",
    "sampling_rate",
}
_print_lock = threading.Lock()


def compact_log(line: str) -> str:
    """A powertools JSON log line as `LEVEL message key=value…` (other lines unchanged)."""
    if not line.startswith("{"):
        return line
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    if "_aws" in record:
        names = [
            metric["Name"]
            for directive in record["_aws"].get("CloudWatchMetrics", [])
            for metric in directive.get("Metrics", [])
        ]
        return "metrics " + " ".join(f"{name}={record.get(name)}" for name in names)
    if "level" not in record or "message" not in record:
        return line
    extras = " ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
        for key, value in record.items()
        if key not in _PLATFORM_KEYS
    )
    return f"{record['level']:<5} {record['message']}" + (f"  {extras}" if extras else "")


class Console:
    """Where the stack's own lines and the functions' logs go (stderr), one line at a time."""

    def __init__(self, stream: Any = None, *, raw: bool = False, quiet: bool = False) -> None:
        self.stream = stream
        self.raw = raw
        self.quiet = quiet
        self.width = 12

    def __call__(self, label: str, line: str) -> None:
        if self.quiet:
            return
        text = line if self.raw else compact_log(line)
        with _print_lock:
            print(f"{label:<{self.width}} | {text}", file=self.stream or sys.stderr, flush=True)


# ---------------------------------------------------------------- the stack


class LocalStack:
    def __init__(
        self,
        api_port: int | None = None,
        aws_port: int | None = None,
        sandbox_port: int | None = None,
        *,
        template: Path = TEMPLATE,
        state_file: Path | None = STATE_FILE,
        api_key: str | None = None,
        demo_insee: str | None = None,
        region: str | None = None,
        stack_name: str = DEFAULT_STACK_NAME,
        max_workers: int = 2,
        console: Callable[[str, str], None] | None = None,
    ) -> None:
        """Ports: None reads CRIEUR_LOCAL_PORT / CRIEUR_LOCAL_AWS_PORT / CRIEUR_LOCAL_SANDBOX_PORT (3000, 4566, 3001);
        0 picks a free port. `state_file` (None: not written) tells the `crieur` CLI where the stack runs."""
        self.api_port = _env_port("CRIEUR_LOCAL_PORT", DEFAULT_API_PORT) if api_port is None else api_port
        self.aws_port = _env_port("CRIEUR_LOCAL_AWS_PORT", DEFAULT_AWS_PORT) if aws_port is None else aws_port
        self.sandbox_port = (
            _env_port("CRIEUR_LOCAL_SANDBOX_PORT", DEFAULT_SANDBOX_PORT) if sandbox_port is None else sandbox_port
        )
        self.template = template
        self.state_file = state_file
        self.chosen_api_key = api_key if api_key is not None else (os.environ.get("CRIEUR_LOCAL_API_KEY") or None)
        self.demo_insee = (demo_insee or os.environ.get("CRIEUR_LOCAL_DEMO_INSEE") or DEFAULT_DEMO_INSEE).strip()
        self.region = region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        self.stack_name = stack_name
        self.max_workers = max_workers
        self.console = console or Console(raw=os.environ.get("CRIEUR_LOCAL_RAW_LOGS") == "1")

        self.deployment: Deployment | None = None
        self.functions: dict[str, FunctionProcess] = {}
        self.demo_api_key: str = ""
        self.webhook_secret: str = ""
        self.channel_targets: dict[str, str] = {}
        self._moto: Any = None
        self._aws_endpoint: str | None = None
        self._api: LocalApi | None = None
        self._gateway: Gateway | None = None
        self._pollers: Pollers | None = None
        self._clock: SchedulerClock | None = None
        self._sandbox: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._started = False

    # --- public surface -------------------------------------------------------------------------------

    @property
    def aws_endpoint(self) -> str:
        if self._aws_endpoint is None:
            raise RuntimeError("the stack is not started")
        return self._aws_endpoint

    @property
    def api_url(self) -> str:
        if self._api is None:
            raise RuntimeError("the stack is not started")
        return self._api.url

    @property
    def sandbox(self) -> Any:
        """The channel sandbox (infra.local.sandbox.Sandbox)."""
        if self._sandbox is None:
            raise RuntimeError("the stack is not started")
        return self._sandbox

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self.deployment.outputs) if self.deployment else {}

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            raise RuntimeError("the stack is not started")
        return self._gateway

    def invoke(self, function_name: str, event: dict[str, Any]) -> Any:
        """Invokes a function by name (or by logical id path, e.g. `ApiFunction`); LambdaError when it fails."""
        process = self.functions.get(function_name) or next(
            (process for process in self.functions.values() if process.function.logical_id == function_name), None
        )
        if process is None:
            raise LambdaError(
                {
                    "errorMessage": f"Function not found: {function_name}",
                    "errorType": "ResourceNotFoundException",
                    "stackTrace": [],
                }
            )
        return process.invoke(event)

    def child_pids(self) -> list[int]:
        return [pid for process in self.functions.values() for pid in process.pids()]

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # --- start ----------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _say(self, text: str) -> None:
        self.console("local", text)

    def _start(self) -> None:
        started = time.monotonic()
        _check_port_free(self.api_port, "API locale / local API", "CRIEUR_LOCAL_PORT")
        _check_port_free(self.aws_port, "moto", "CRIEUR_LOCAL_AWS_PORT")
        _check_port_free(self.sandbox_port, "bac à sable / sandbox", "CRIEUR_LOCAL_SANDBOX_PORT")
        self._start_moto()
        self._set_parent_env()

        from infra.local.sandbox import Sandbox

        self._sandbox = Sandbox(host=HOST, port=self.sandbox_port)
        self._sandbox.start()
        self._api = LocalApi(HOST, self.api_port)

        deployment = provision(
            self.aws_endpoint,
            self.template,
            region=self.region,
            stack_name=self.stack_name,
            api_url=self._api.url + "/",
        )
        self.deployment = deployment
        self._start_functions(deployment)

        if not deployment.apis:
            raise StackError("template.yaml ne déclare aucune API HTTP / declares no HTTP API")
        if len(deployment.apis) > 1:
            log.warning("only the first HTTP API (%s) is served locally", deployment.apis[0].logical_id)
        self._gateway = Gateway(
            deployment.apis[0], self.invoke, account_id=deployment.account_id, region=deployment.region
        )
        self._api.start(self._gateway, access_log=lambda line: self.console("api", line))

        import boto3

        session = boto3.session.Session(
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto takes any credentials
            region_name=self.region,
        )
        self._pollers = Pollers(
            [
                QueuePoller(
                    mapping,
                    self.invoke,
                    session.client("sqs", endpoint_url=self.aws_endpoint),
                    self.region,
                    label=mapping.logical_id,
                )
                for mapping in deployment.event_source_mappings
            ]
        )
        self._pollers.start()
        self._clock = SchedulerClock(
            deployment,
            self.invoke,
            session.client("scheduler", endpoint_url=self.aws_endpoint),
            session.client("sqs", endpoint_url=self.aws_endpoint),
            rate_overrides=self._weather_interval(deployment),
        )
        self._clock.start()
        self._upload_console()
        self._seed()
        self._write_state()
        self._say(f"prêt en {time.monotonic() - started:.1f} s / ready")

    def _start_moto(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise
        from infra.local.motoserver import MotoServer

        server = MotoServer(ip_address=HOST, port=self.aws_port, verbose=False)
        # ThreadedMotoServer.start() waits forever when its thread fails to bind: wait with a limit instead.
        starter = threading.Thread(target=server.start, name="moto start", daemon=True)
        starter.start()
        starter.join(timeout=20)
        if starter.is_alive():
            raise StackError(f"moto n'a pas démarré sur le port {self.aws_port} / moto did not start")
        self._moto = server
        host, port = server.get_host_and_port()
        self._aws_endpoint = f"http://{host}:{port}"

    def _set_parent_env(self) -> None:
        values = {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
        }
        for name in (*_AWS_ENV, *_AWS_ENV_CLEARED):
            self._saved_env.setdefault(name, os.environ.get(name))
        for name in _AWS_ENV_CLEARED:
            os.environ.pop(name, None)
        os.environ.update(values)
        from crieur import aws

        aws.reset()

    def _restore_parent_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        from crieur import aws

        aws.reset()

    @staticmethod
    def _weather_interval(deployment: Deployment) -> dict[str, timedelta]:
        """CRIEUR_LOCAL_WEATHER_INTERVAL_S: how often the local clock runs the weather poller."""
        seconds = os.environ.get("CRIEUR_LOCAL_WEATHER_INTERVAL_S")
        if not seconds:
            return {}
        return {
            function.arn: timedelta(seconds=float(seconds))
            for function in deployment.functions.values()
            if function.logical_id == "WeatherFunction"
        }

    def _imitation_hosts(self) -> dict[str, str]:
        """CRIEUR_<PROVIDER>_BASE_URL → the sandbox's imitation, unless the shell points it elsewhere."""
        return {
            imitation.base_url_variable: f"{self.sandbox.url}{prefix}"
            for prefix, imitation in self.sandbox.imitations.items()
            if imitation.base_url_variable and imitation.base_url_variable not in os.environ
        }

    def _start_functions(self, deployment: Deployment) -> None:
        labels = {name: function.logical_id for name, function in deployment.functions.items()}
        if isinstance(self.console, Console):
            self.console.width = max([self.console.width, *(len(label) for label in labels.values())])
        for name, function in deployment.functions.items():
            env = function_environment(
                function, endpoint_url=self.aws_endpoint, region=self.region, extra=self._imitation_hosts()
            )
            self.functions[name] = FunctionProcess(
                function, env, max_workers=self.max_workers, log=self.console, label=labels[name]
            )
        failures: list[BaseException] = []

        def warm(process: FunctionProcess) -> None:
            try:
                process.start()
            except BaseException as failure:
                failures.append(failure)

        threads = [threading.Thread(target=warm, args=(process,)) for process in self.functions.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise StackError(f"une fonction n'a pas démarré / a function did not start: {failures[0]}")

    def _upload_console(self) -> None:
        """The console's files (console/, no build step) into its bucket, as `make deploy` syncs them."""
        from crieur import aws
        from infra.console_upload import upload_console

        assert self.deployment is not None
        bucket = self.deployment.outputs.get("ConsoleBucketName")
        if bucket:
            upload_console(aws.s3(), bucket)

    # --- seeding --------------------------------------------------------------------------------------

    def _seed(self) -> None:
        import httpx

        from crieur.communes import CommuneService
        from crieur.errors import CrieurError
        from crieur.security import new_webhook_secret
        from crieur.store import Store

        assert self.deployment is not None
        table = self.deployment.outputs.get("TableName")
        if not table:
            raise StackError("template.yaml n'a pas de sortie TableName / has no TableName output")
        communes = CommuneService(Store(table))
        try:
            communes.create_commune(self.demo_insee, DEMO_NAME)
            self.demo_api_key = communes.create_key(self.demo_insee, chosen=self.chosen_api_key).key
        except CrieurError as refused:
            details = "; ".join(f"{field}: {message}" for field, message in refused.errors) or refused.detail
            raise StackError(f"commune de démonstration / demo commune ({self.demo_insee}): {details}") from refused

        webhook_url = os.environ.get("CRIEUR_WEBHOOK_BASE_URL") or self.sandbox.webhook_url("demo")
        mastodon_url = os.environ.get("CRIEUR_MASTODON_BASE_URL") or self.sandbox.mastodon_url()
        self.webhook_secret = new_webhook_secret()
        mastodon_token = secrets.token_urlsafe(32)
        self.sandbox.register_webhook_secret("demo", self.webhook_secret)
        self.sandbox.register_mastodon_token(mastodon_token)
        self.channel_targets = {"webhook": webhook_url, "mastodon": mastodon_url}
        bodies: dict[str, dict[str, Any]] = {
            "webhook": {
                "enabled": True,
                "settings": {"url": webhook_url},
                "credentials": {"secret": self.webhook_secret},
            },
            "mastodon": {
                "enabled": True,
                "settings": {"instance_url": mastodon_url},
                "credentials": {"access_token": mastodon_token},
            },
        }
        for imitation in self.sandbox.imitations.values():
            body = imitation.demo_channel()
            if body is None:
                continue
            bodies[imitation.channel] = body
            variable = imitation.base_url_variable
            self.channel_targets[imitation.channel] = os.environ.get(variable or "") or self.sandbox.url
        self._seed_vigilance_credentials()
        headers = {"Authorization": f"Bearer {self.demo_api_key}"}
        with httpx.Client(base_url=self.api_url, timeout=60, headers=headers) as client:
            for channel, body in bodies.items():
                response = client.put(f"/v1/channels/{channel}", json=body)
                if response.status_code != 200:
                    raise StackError(
                        f"configuration du canal {channel} refusée / channel setup refused: "
                        f"{response.status_code} {response.text}"
                    )
            # Its own hosted feeds and widget (no provider: Crieur serves them under /public/{commune}/).
            response = client.put("/v1/channels/website", json={"enabled": True, "settings": {}})
            if response.status_code != 200:
                raise StackError(f"canal website / website channel: {response.status_code} {response.text}")
            self.channel_targets["website"] = f"{self.api_url}/public/{self.demo_insee}/widget.html"
            # The demo commune relays its département's orange and red vigilance to every channel.
            response = client.put("/v1/alerts/weather", json={"enabled": True})
            if response.status_code != 200:
                raise StackError(f"alertes météo / weather alerts: {response.status_code} {response.text}")

    def _seed_vigilance_credentials(self) -> None:
        """The sandbox's Météo-France key in SSM, where the weather function reads the portal credentials."""
        from infra.local.imitations.meteofrance import DEMO_API_KEY

        assert self.deployment is not None
        names = {
            function.environment["CRIEUR_METEOFRANCE_PARAMETER"]
            for function in self.deployment.functions.values()
            if "CRIEUR_METEOFRANCE_PARAMETER" in function.environment
        }
        if "CRIEUR_METEOFRANCE_BASE_URL" in os.environ:  # pointed at another server: its credentials are not ours
            return
        import boto3

        ssm = boto3.client(
            "ssm",
            endpoint_url=self.aws_endpoint,
            region_name=self.region,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto takes any credentials
        )
        for name in names:
            ssm.put_parameter(
                Name=name, Type="SecureString", Value=json.dumps({"api_key": DEMO_API_KEY}), Overwrite=True
            )

    def _write_state(self) -> None:
        if self.state_file is None:
            return
        assert self.deployment is not None
        state = {
            "aws_endpoint": self.aws_endpoint,
            "region": self.region,
            "outputs": self.deployment.outputs,
            "api_url": self.api_url,
            "sandbox_url": self.sandbox.url,
            "pid": os.getpid(),
        }
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    # --- stop -----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stops everything that started, in reverse order; safe to call twice or after a failed start."""
        if not self._started:
            return
        self._started = False
        steps: list[tuple[str, Callable[[], None]]] = []
        if self._clock is not None:
            steps.append(("scheduler clock", self._clock.stop))
        if self._pollers is not None:
            steps.append(("pollers", self._pollers.stop))
        if self._api is not None:
            steps.append(("local API", self._api.stop))
        steps.extend((f"function {name}", process.stop) for name, process in self.functions.items())
        if self._sandbox is not None:
            steps.append(("sandbox", self._sandbox.stop))
        if self._moto is not None:
            steps.append(("moto", self._moto.stop))
        for what, step in steps:
            try:
                step()
            except Exception:
                log.exception("stopping %s failed", what)
        self._pollers = None
        self._clock = None
        self._api = None
        self._gateway = None
        self._sandbox = None
        self._moto = None
        self.functions = {}
        if self.state_file is not None:
            try:
                current = json.loads(self.state_file.read_text(encoding="utf-8"))
                if current.get("pid") == os.getpid() and current.get("aws_endpoint") == self._aws_endpoint:
                    self.state_file.unlink()
            except (OSError, ValueError):
                pass
        self._aws_endpoint = None
        if self._saved_env:
            self._restore_parent_env()

    # --- the banner -----------------------------------------------------------------------------------

    def banner(self) -> str:
        api = self.api_url
        key = self.demo_api_key
        publish = (
            f"curl -sS -X POST {api}/v1/publications \\\n"
            f'    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\\n'
            '    -d \'{"title": "Travaux rue de la Mairie", '
            '"body": "La rue de la Mairie sera fermée mardi de 8 h à 12 h.", '
            '"links": [{"url": "https://www.example.fr/travaux", "label": "Le plan de déviation"}], '
            f'"media": [{{"url": "{self.sandbox.demo_photo_url()}", "alt": "La mairie vue depuis la place"}}]}}\''
        )
        read = f'curl -sS "{api}/v1/publications?limit=1" -H "Authorization: Bearer {key}"'
        channels = " + ".join(self.channel_targets)
        outside = [
            f"  {channel:<9} → {target}"
            for channel, target in self.channel_targets.items()
            if not target.startswith(self.sandbox.url)
        ]
        lines = [
            "",
            "Crieur tourne en local / Crieur is running locally (Ctrl-C pour arrêter / to stop)",
            "",
            f"  API           {api}",
            f"  Docs          {api}/v1/docs",
            f"  Console       {api}/console/   (la console de la mairie / the mairie's web console)",
            f"  Bac à sable   {self.sandbox.url}   (ce que reçoivent les canaux / what the channels received)",
            f"  AWS (moto)    {self.aws_endpoint}",
            f"  Commune       {self.demo_insee} {DEMO_NAME}",
            f"  Clé d'API     {key}",
            "",
            f"Publier sur {channels} / publish to {channels}:",
            "",
            f"  {publish}",
            "",
            "Relire (statut de chaque canal) / read it back (each channel's status):",
            "",
            f"  {read}",
            "",
        ]
        if outside:
            lines[11:11] = [
                "Canaux hors bac à sable / channels outside the sandbox:",
                *outside,
                f"  secret webhook: {self.webhook_secret}",
                "",
            ]
        return "\n".join(lines)
