"""template.yaml → resources in moto, and what the local stack needs to run the functions.

Starts nothing. Reads the SAM template (CloudFormation short tags), translates it with aws-sam-translator the
way CloudFormation's SAM transform does, expands each nested stack (`AWS::Serverless::Application` becomes an
`AWS::CloudFormation::Stack` whose TemplateURL is a local file) by translating that template with its
parameters, then creates in moto, in dependency order, what the resources declare: DynamoDB tables, SNS
topics and subscriptions, SQS queues and policies, KMS keys and aliases. Lambda functions, layers, HTTP APIs
and event source mappings are not created in moto: they are described (code folder, handler, resolved
environment, routes, authorizers, queue → function mappings) for the local runtime, API and pollers.

Nothing here knows a logical id or a channel: a new channel block in template.yaml appears locally as is.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
DEFAULT_STACK_NAME = "crieur-local"
DEFAULT_REGION = "eu-west-3"
CODE_BUCKET = "crieur-local-code"
"""CodeUri/ContentUri are replaced by s3://crieur-local-code/<n> before translating; <n> maps back to a folder."""
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"

log = logging.getLogger("crieur.local.provision")


class ProvisionError(RuntimeError):
    """The template asks for something the local stack cannot do (the message says what and where)."""


# ---------------------------------------------------------------- what provisioning produces


@dataclass(frozen=True)
class LocalFunction:
    """One AWS::Lambda::Function, resolved: everything the local runtime needs to run it in its own process."""

    name: str
    logical_id: str
    """Path of logical ids from the root stack, e.g. `ApiFunction` or `WebhookChannel/DeliverFunction`."""
    arn: str
    code_dir: Path
    handler: str
    runtime: str
    layers: tuple[Path, ...]
    environment: dict[str, str]
    timeout: int
    memory_size: int


@dataclass(frozen=True)
class Authorizer:
    """An HTTP API Lambda authorizer (REQUEST type)."""

    name: str
    function: str
    identity_sources: tuple[str, ...]
    """`$request.header.Authorization`, `$request.querystring.x`…"""
    ttl_seconds: int
    payload_version: str
    simple_responses: bool


@dataclass(frozen=True)
class Route:
    method: str
    """GET, POST… or ANY."""
    path: str
    """`/v1/health`, `/v1/{proxy+}`, or `$default`."""
    function: str
    authorizer: str | None
    """Name of the API's authorizer that guards this route, None for `Auth: Authorizer: NONE`."""
    payload_version: str = "2.0"

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class Cors:
    allow_origins: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


@dataclass(frozen=True)
class HttpApi:
    logical_id: str
    api_id: str
    routes: tuple[Route, ...]
    authorizers: dict[str, Authorizer]
    cors: Cors | None


@dataclass(frozen=True)
class EventSourceMapping:
    """An SQS queue → function mapping, as Lambda's poller would run it."""

    logical_id: str
    function: str
    queue_arn: str
    queue_url: str
    batch_size: int
    batching_window_seconds: int
    report_batch_item_failures: bool
    enabled: bool
    maximum_concurrency: int | None


@dataclass(frozen=True)
class ProvisionedResource:
    logical_id: str
    type: str
    ref: Any
    attributes: dict[str, Any]
    properties: Any


@dataclass
class Deployment:
    stack_name: str
    region: str
    account_id: str
    endpoint_url: str
    functions: dict[str, LocalFunction] = field(default_factory=dict)
    """By function name."""
    apis: list[HttpApi] = field(default_factory=list)
    event_source_mappings: list[EventSourceMapping] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    """The root template's Outputs, with local values (ApiUrl is the local API's URL when it was given)."""
    resources: dict[str, ProvisionedResource] = field(default_factory=dict)
    """Every resource by logical id path (nested ones as `Parent/Child`), including those only recorded."""


# ---------------------------------------------------------------- loading and translating


def load_template(path: Path) -> dict[str, Any]:
    """A CloudFormation YAML or JSON template with its short tags (!Ref, !GetAtt, !Sub…) as plain data."""
    from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]

    loaded = cfn_yaml.load(str(path))
    # cfn-lint's node classes carry line numbers; plain dicts, lists and strings are enough (and deep-copy fast).
    data = json.loads(json.dumps(loaded, default=str))
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise ProvisionError(f"{path}: not a CloudFormation template (no Resources)")
    return data


class _NoManagedPolicies:
    """Stands in for ManagedPolicyLoader (which calls IAM): locally no policy is enforced."""

    def load(self) -> dict[str, str]:
        return {}


@contextmanager
def _region(region: str) -> Iterator[None]:
    """aws-sam-translator reads the region (AWS::Region, partition) from a default boto3 session."""
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


def _transforms(template: dict[str, Any]) -> list[str]:
    declared = template.get("Transform") or []
    return [declared] if isinstance(declared, str) else list(declared)


def translate(
    template: dict[str, Any], base_dir: Path, parameters: dict[str, Any], region: str
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Plain CloudFormation for `template` (SAM translated when it declares the transform), and the code folders.

    Local CodeUri/ContentUri become `s3://crieur-local-code/<n>` placeholders (the translator wants S3);
    the returned mapping gives each <n> its folder, relative to the template that declared it.
    """
    template = copy.deepcopy(template)  # the translator mutates its input
    code: dict[str, Path] = {}

    def placeholder(uri: Any, where: str) -> str:
        if not isinstance(uri, str) or uri.startswith("s3://"):
            raise ProvisionError(f"{where}: only a local folder is supported locally, got {uri!r}")
        key = str(len(code))
        code[key] = (base_dir / uri).resolve()
        return f"s3://{CODE_BUCKET}/{key}"

    function_globals = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in function_globals:
        function_globals["CodeUri"] = placeholder(function_globals["CodeUri"], "Globals.Function.CodeUri")
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if key in props and resource.get("Type", "").startswith("AWS::Serverless::"):
                props[key] = placeholder(props[key], f"{logical_id}.{key}")
        if "InlineCode" in props:
            raise ProvisionError(f"{logical_id}: InlineCode is not supported locally (use CodeUri)")

    transforms = _transforms(template)
    unsupported = [name for name in transforms if name != SAM_TRANSFORM]
    if unsupported:
        raise ProvisionError(f"transform(s) {unsupported} are not supported locally")
    if not transforms:
        return template, code

    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    # The translator warns about its own unpublished usage metrics on every run: nothing for us to act on.
    logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)
    with _region(region):
        translated = transform(template, dict(parameters), cast("ManagedPolicyLoader", _NoManagedPolicies()))
    return translated, code


# ---------------------------------------------------------------- intrinsic functions


class _NoValue:
    """AWS::NoValue: the property is removed."""


NO_VALUE = _NoValue()
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def cfn_string(value: Any) -> str:
    """How CloudFormation turns a scalar into a string property (environment variables, attributes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def references(node: Any) -> set[str]:
    """Logical ids (and parameter names) a node refers to through Ref, Fn::GetAtt and Fn::Sub."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        if len(node) == 1:
            (key, value), *_ = node.items()
            if key == "Ref" and isinstance(value, str):
                return {value}
            if key == "Fn::GetAtt":
                target = value.split(".", 1)[0] if isinstance(value, str) else value[0]
                return {str(target)}
            if key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                for name in _SUB_VARIABLE.findall(text):
                    if name.startswith("!") or name in variables:
                        continue
                    found.add(name.split(".", 1)[0])
                return found | references(variables)
        for value in node.values():
            found |= references(value)
    return found


@dataclass
class _Stack:
    name: str
    path: str
    """Logical id path of the nested stack resource ('' for the root)."""
    template_file: Path
    template: dict[str, Any]
    parameters: dict[str, Any]
    code: dict[str, Path]
    region: str
    account_id: str
    stack_id: str
    created: dict[str, ProvisionedResource] = field(default_factory=dict)
    conditions: dict[str, bool] = field(default_factory=dict)

    def qualified(self, logical_id: str) -> str:
        return f"{self.path}/{logical_id}" if self.path else logical_id

    # --- resolution -----------------------------------------------------------------------------------

    def pseudo(self, name: str) -> Any:
        values: dict[str, Any] = {
            "AWS::AccountId": self.account_id,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.name,
            "AWS::StackId": self.stack_id,
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        return values[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.created:
            return self.created[name].ref
        raise ProvisionError(f"{self.template_file.name}: Ref {name} is not known (yet)")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        resource = self.created.get(logical_id)
        if resource is None:
            raise ProvisionError(f"{self.template_file.name}: Fn::GetAtt {logical_id}.{attribute}: no such resource")
        if attribute not in resource.attributes:
            raise ProvisionError(
                f"{self.template_file.name}: Fn::GetAtt {logical_id}.{attribute}: "
                f"attribute not available locally ({resource.type})"
            )
        return resource.attributes[attribute]

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return cfn_string(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return cfn_string(self.get_att(logical_id, attribute))
            return cfn_string(self.ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def condition(self, node: Any) -> bool:
        if isinstance(node, dict) and len(node) == 1:
            (key, value), *_ = node.items()
            if key == "Condition":
                return self.conditions[str(value)]
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in value)
                return cfn_string(left) == cfn_string(right)
            if key == "Fn::Not":
                return not self.condition(value[0])
            if key == "Fn::And":
                return all(self.condition(item) for item in value)
            if key == "Fn::Or":
                return any(self.condition(item) for item in value)
        if isinstance(node, bool):
            return node
        raise ProvisionError(f"{self.template_file.name}: condition {node!r} is not supported locally")

    def resolve(self, node: Any) -> Any:  # noqa: PLR0911, PLR0912 - one branch per intrinsic function
        if isinstance(node, list):
            return [item for item in (self.resolve(value) for value in node) if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), *_ = node.items()
            if key == "Ref":
                return self.ref(str(value))
            if key == "Fn::GetAtt":
                logical_id, attribute = value.split(".", 1) if isinstance(value, str) else value
                return self.get_att(str(logical_id), str(self.resolve(attribute)))
            if key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
                return self.sub(str(text), variables)
            if key == "Fn::Join":
                delimiter, items = value
                return str(delimiter).join(cfn_string(item) for item in self.resolve(items))
            if key == "Fn::Select":
                index, items = value
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                delimiter, text = value
                return str(self.resolve(text)).split(str(delimiter))
            if key == "Fn::If":
                name, when_true, when_false = value
                return self.resolve(when_true if self.conditions[str(name)] else when_false)
            if key == "Fn::Base64":
                return base64.b64encode(str(self.resolve(value)).encode()).decode()
            if key == "Fn::GetAZs":
                return [f"{self.region}{zone}" for zone in "abc"]
            if key == "Fn::FindInMap":
                map_name, top, second = (self.resolve(item) for item in value[:3])
                return self.template.get("Mappings", {})[map_name][top][second]
            if key.startswith("Fn::"):
                raise ProvisionError(f"{self.template_file.name}: {key} is not supported locally")
        resolved = {name: self.resolve(value) for name, value in node.items()}
        return {name: value for name, value in resolved.items() if value is not NO_VALUE}


# ---------------------------------------------------------------- provisioning


def _suffix(*parts: str, length: int = 12) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest().upper()
    return digest[:length]


def physical_name(stack: str, logical_id: str, max_length: int = 64, ending: str = "") -> str:
    """CloudFormation-style name: `<stack>-<LogicalId>-<SUFFIX>`, deterministic, shortened to fit."""
    suffix = _suffix(stack, logical_id)
    budget = max_length - len(suffix) - len(ending) - 2
    head = f"{stack}-{logical_id}"
    if len(head) > budget:
        keep = max(budget // 2, 1)
        head = head[:keep] + head[len(head) - (budget - keep) :]
    return f"{head}-{suffix}{ending}"


def _tags(tags: Any, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    if isinstance(tags, dict):
        return [{key: str(k), value: str(v)} for k, v in tags.items()]
    return [{key: str(tag["Key"]), value: str(tag["Value"])} for tag in tags or []]


def _function_name_of(arn_or_name: str) -> str:
    """`arn:aws:lambda:…:function:NAME[:qualifier]` or NAME → NAME."""
    if ":function:" in arn_or_name:
        return arn_or_name.split(":function:", 1)[1].split(":", 1)[0]
    return arn_or_name


_INVOCATION_URI = re.compile(r"functions/(arn:[^/]+)/invocations")


class Provisioner:
    def __init__(
        self,
        endpoint_url: str,
        region: str = DEFAULT_REGION,
        stack_name: str = DEFAULT_STACK_NAME,
        api_url: str | None = None,
    ) -> None:
        import boto3

        self.endpoint_url = endpoint_url
        self.region = region
        self.stack_name = stack_name
        self.api_url = api_url
        session = boto3.session.Session(
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto takes any credentials
            region_name=region,
        )
        self._clients: dict[str, Any] = {
            name: session.client(name, endpoint_url=endpoint_url)
            for name in ("dynamodb", "sns", "sqs", "kms", "sts", "scheduler", "s3")
        }
        self.account_id = str(self._clients["sts"].get_caller_identity()["Account"])
        self.deployment = Deployment(stack_name, region, self.account_id, endpoint_url)
        self._layers: dict[str, Path] = {}
        self._queues: dict[str, str] = {}
        """Queue ARN → URL."""
        self._handlers: dict[str, Callable[[_Stack, str, dict[str, Any], Any], ProvisionedResource]] = {
            "AWS::DynamoDB::Table": self._dynamodb_table,
            "AWS::SNS::Topic": self._sns_topic,
            "AWS::SNS::Subscription": self._sns_subscription,
            "AWS::SNS::TopicPolicy": self._sns_topic_policy,
            "AWS::SQS::Queue": self._sqs_queue,
            "AWS::SQS::QueuePolicy": self._sqs_queue_policy,
            "AWS::KMS::Key": self._kms_key,
            "AWS::KMS::Alias": self._kms_alias,
            "AWS::S3::Bucket": self._s3_bucket,
            "AWS::Scheduler::ScheduleGroup": self._schedule_group,
            "AWS::Scheduler::Schedule": self._schedule,
            "AWS::Lambda::LayerVersion": self._lambda_layer,
            "AWS::Lambda::Function": self._lambda_function,
            "AWS::Lambda::EventSourceMapping": self._event_source_mapping,
            "AWS::ApiGatewayV2::Api": self._http_api,
            "AWS::CloudFormation::Stack": self._nested_stack,
        }

    def client(self, name: str) -> Any:
        return self._clients[name]

    # --- stacks ---------------------------------------------------------------------------------------

    def provision(self, template_file: Path = TEMPLATE) -> Deployment:
        stack = self._provision_stack(self.stack_name, "", template_file.resolve(), {})
        outputs = {name: cfn_string(value) for name, value in self._outputs(stack).items()}
        if self.api_url:
            # The API's cloud address, wherever the template used it (outputs, the website's feed links),
            # is the local API here.
            base = self.api_url.rstrip("/")
            for api in self.deployment.apis:
                remote = re.compile(
                    rf"https://{re.escape(api.api_id)}\.execute-api\.{re.escape(self.region)}\.amazonaws\.com"
                )
                outputs = {name: remote.sub(base, value) for name, value in outputs.items()}
                for function in self.deployment.functions.values():
                    function.environment.update(
                        {name: remote.sub(base, value) for name, value in function.environment.items()}
                    )
        self.deployment.outputs = outputs
        return self.deployment

    def _parameters(self, template: dict[str, Any], given: dict[str, Any], where: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, spec in (template.get("Parameters") or {}).items():
            if name in given:
                value = given[name]
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise ProvisionError(f"{where}: parameter {name} has no value and no default")
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = [item.strip() for item in value.split(",")]
            elif not isinstance(value, list):
                value = cfn_string(value)
            pattern = spec.get("AllowedPattern")
            if pattern and isinstance(value, str) and not re.fullmatch(pattern, value):
                raise ProvisionError(f"{where}: parameter {name}={value!r} does not match {pattern}")
            allowed = spec.get("AllowedValues")
            if allowed and value not in [cfn_string(item) for item in allowed]:
                raise ProvisionError(f"{where}: parameter {name}={value!r} is not one of {allowed}")
            values[name] = value
        return values

    def _provision_stack(self, name: str, path: str, template_file: Path, given: dict[str, Any]) -> _Stack:
        where = path or template_file.name
        if not template_file.is_file():
            raise ProvisionError(f"{where}: template {template_file} not found")
        source = load_template(template_file)
        parameters = self._parameters(source, given, where)
        string_parameters = {k: (",".join(v) if isinstance(v, list) else v) for k, v in parameters.items()}
        template, code = translate(source, template_file.parent, string_parameters, self.region)
        stack = _Stack(
            name=name,
            path=path,
            template_file=template_file,
            template=template,
            parameters=parameters,
            code=code,
            region=self.region,
            account_id=self.account_id,
            stack_id=f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{name}/{uuid.uuid4()}",
        )
        for condition_name, expression in (template.get("Conditions") or {}).items():
            stack.conditions[condition_name] = stack.condition(expression)
        resources: dict[str, dict[str, Any]] = template["Resources"]
        for logical_id in self._creation_order(resources, stack):
            resource = resources[logical_id]
            if "Condition" in resource and not stack.conditions[str(resource["Condition"])]:
                continue
            type_ = str(resource["Type"])
            handler = self._handlers.get(type_, self._recorded_only)
            properties = resource.get("Properties") or {}
            created = handler(stack, logical_id, properties, resource)
            stack.created[logical_id] = created
            self.deployment.resources[stack.qualified(logical_id)] = created
        return stack

    @staticmethod
    def _creation_order(resources: dict[str, dict[str, Any]], stack: _Stack) -> list[str]:
        """Resources after everything they refer to (Ref, GetAtt, Sub, DependsOn), template order otherwise."""
        dependencies: dict[str, set[str]] = {}
        for logical_id, resource in resources.items():
            depends_on = resource.get("DependsOn") or []
            named = {depends_on} if isinstance(depends_on, str) else set(depends_on)
            found = references(resource.get("Properties") or {}) | named
            dependencies[logical_id] = {item for item in found if item in resources and item != logical_id}
        order: list[str] = []
        state: dict[str, str] = {}

        def visit(logical_id: str, trail: tuple[str, ...]) -> None:
            if state.get(logical_id) == "done":
                return
            if state.get(logical_id) == "visiting":
                raise ProvisionError(f"{stack.template_file.name}: circular dependency {' → '.join(trail)}")
            state[logical_id] = "visiting"
            for dependency in sorted(dependencies[logical_id], key=list(resources).index):
                visit(dependency, (*trail, dependency))
            state[logical_id] = "done"
            order.append(logical_id)

        for logical_id in resources:
            visit(logical_id, (logical_id,))
        return order

    def _outputs(self, stack: _Stack) -> dict[str, Any]:
        outputs: dict[str, Any] = {}
        for name, output in (stack.template.get("Outputs") or {}).items():
            if "Condition" in output and not stack.conditions[str(output["Condition"])]:
                continue
            outputs[name] = stack.resolve(output["Value"])
        return outputs

    def _nested_stack(self, stack: _Stack, logical_id: str, props: dict[str, Any], _: Any) -> ProvisionedResource:
        url = props.get("TemplateURL")
        if not isinstance(url, str) or url.startswith(("http://", "https://", "s3://")):
            raise ProvisionError(
                f"{stack.qualified(logical_id)}: only a local template file is supported (Location/TemplateURL)"
            )
        given = stack.resolve(props.get("Parameters") or {})
        child = self._provision_stack(
            f"{stack.name}-{logical_id}",
            stack.qualified(logical_id),
            (stack.template_file.parent / url).resolve(),
            given,
        )
        outputs = self._outputs(child)
        return ProvisionedResource(
            logical_id,
            "AWS::CloudFormation::Stack",
            child.stack_id,
            {f"Outputs.{name}": value for name, value in outputs.items()},
            {"TemplateURL": url, "Parameters": given},
        )

    # --- resources ------------------------------------------------------------------------------------

    def _recorded_only(
        self, stack: _Stack, logical_id: str, props: dict[str, Any], resource: Any
    ) -> ProvisionedResource:
        """IAM roles, permissions, stages, schedules…: nothing to create locally; their Ref and Arn still resolve."""
        type_ = str(resource["Type"])
        name = physical_name(stack.name, logical_id)
        service = type_.split("::")[1].lower() if type_.count("::") >= 2 else "unknown"
        arn = (
            f"arn:aws:iam::{self.account_id}:role/{name}"
            if type_ == "AWS::IAM::Role"
            else f"arn:aws:{service}:{self.region}:{self.account_id}:{name}"
        )
        try:
            resolved = stack.resolve(props)
        except ProvisionError as unresolved:
            log.debug("%s: properties left unresolved (%s)", stack.qualified(logical_id), unresolved)
            resolved = props
        return ProvisionedResource(logical_id, type_, name, {"Arn": arn}, resolved)

    def _dynamodb_table(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        props = stack.resolve(raw)
        name = props.get("TableName") or physical_name(stack.name, logical_id, 255)
        billing = props.get("BillingMode", "PROVISIONED")
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            request["ProvisionedThroughput"] = props.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                request[key] = [
                    {
                        k: v
                        for k, v in index.items()
                        if k in ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
                    }
                    for index in props[key]
                ]
        stream = props.get("StreamSpecification")
        if stream and stream.get("StreamViewType"):
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        sse = props.get("SSESpecification")
        if sse:
            request["SSESpecification"] = {
                target: sse[source]
                for source, target in (
                    ("SSEEnabled", "Enabled"),
                    ("SSEType", "SSEType"),
                    ("KMSMasterKeyId", "KMSMasterKeyId"),
                )
                if source in sse
            }
        for key in ("TableClass", "DeletionProtectionEnabled"):
            if key in props:
                request[key] = props[key]
        if props.get("Tags"):
            request["Tags"] = _tags(props["Tags"])
        dynamodb = self.client("dynamodb")
        description = dynamodb.create_table(**request)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
            )
        recovery = props.get("PointInTimeRecoverySpecification")
        if recovery and recovery.get("PointInTimeRecoveryEnabled"):
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        attributes = {"Arn": description["TableArn"]}
        if description.get("LatestStreamArn"):
            attributes["StreamArn"] = description["LatestStreamArn"]
        log.debug("table %s", name)
        return ProvisionedResource(logical_id, "AWS::DynamoDB::Table", name, attributes, props)

    def _sns_topic(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        props = stack.resolve(raw)
        fifo = cfn_string(props.get("FifoTopic", False)) == "true"
        name = props.get("TopicName") or physical_name(stack.name, logical_id, 256, ".fifo" if fifo else "")
        attributes = {
            key: cfn_string(props[key])
            for key in (
                "DisplayName",
                "KmsMasterKeyId",
                "FifoTopic",
                "ContentBasedDeduplication",
                "SignatureVersion",
                "TracingConfig",
                "DeliveryPolicy",
                "ArchivePolicy",
            )
            if key in props
        }
        request: dict[str, Any] = {"Name": name, "Attributes": attributes}
        if props.get("Tags"):
            request["Tags"] = _tags(props["Tags"])
        arn = self.client("sns").create_topic(**request)["TopicArn"]
        for subscription in props.get("Subscription") or []:
            self.client("sns").subscribe(
                TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"]
            )
        return ProvisionedResource(logical_id, "AWS::SNS::Topic", arn, {"TopicArn": arn, "TopicName": name}, props)

    def _sns_subscription(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        props = stack.resolve(raw)
        attributes = {
            key: cfn_string(props[key])
            for key in (
                "RawMessageDelivery",
                "FilterPolicy",
                "FilterPolicyScope",
                "RedrivePolicy",
                "DeliveryPolicy",
                "SubscriptionRoleArn",
                "ReplayPolicy",
            )
            if key in props
        }
        arn = self.client("sns").subscribe(
            TopicArn=props["TopicArn"],
            Protocol=props["Protocol"],
            Endpoint=props["Endpoint"],
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return ProvisionedResource(logical_id, "AWS::SNS::Subscription", arn, {"Arn": arn}, props)

    def _sns_topic_policy(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        props = stack.resolve(raw)
        for topic in props.get("Topics") or []:
            self.client("sns").set_topic_attributes(
                TopicArn=topic, AttributeName="Policy", AttributeValue=cfn_string(props["PolicyDocument"])
            )
        return ProvisionedResource(
            logical_id, "AWS::SNS::TopicPolicy", physical_name(stack.name, logical_id), {}, props
        )

    def _sqs_queue(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        props = stack.resolve(raw)
        fifo = cfn_string(props.get("FifoQueue", False)) == "true"
        name = props.get("QueueName") or physical_name(stack.name, logical_id, 80, ".fifo" if fifo else "")
        attributes = {
            key: cfn_string(props[key])
            for key in (
                "ContentBasedDeduplication",
                "DeduplicationScope",
                "DelaySeconds",
                "FifoQueue",
                "FifoThroughputLimit",
                "KmsDataKeyReusePeriodSeconds",
                "KmsMasterKeyId",
                "MaximumMessageSize",
                "MessageRetentionPeriod",
                "ReceiveMessageWaitTimeSeconds",
                "RedriveAllowPolicy",
                "RedrivePolicy",
                "SqsManagedSseEnabled",
                "VisibilityTimeout",
            )
            if key in props
        }
        request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if props.get("Tags"):
            request["tags"] = {tag["Key"]: tag["Value"] for tag in _tags(props["Tags"])}
        sqs = self.client("sqs")
        url = sqs.create_queue(**request)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self._queues[arn] = url
        log.debug("queue %s", name)
        return ProvisionedResource(
            logical_id, "AWS::SQS::Queue", url, {"Arn": arn, "QueueName": name, "QueueUrl": url}, props
        )

    def _sqs_queue_policy(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        props = stack.resolve(raw)
        for queue_url in props.get("Queues") or []:
            self.client("sqs").set_queue_attributes(
                QueueUrl=queue_url, Attributes={"Policy": cfn_string(props["PolicyDocument"])}
            )
        return ProvisionedResource(
            logical_id, "AWS::SQS::QueuePolicy", physical_name(stack.name, logical_id), {}, props
        )

    def _kms_key(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        props = stack.resolve(raw)
        request: dict[str, Any] = {
            key: props[key] for key in ("Description", "KeyUsage", "KeySpec", "MultiRegion") if key in props
        }
        if "KeyPolicy" in props:
            request["Policy"] = cfn_string(props["KeyPolicy"])
        if props.get("Tags"):
            request["Tags"] = _tags(props["Tags"], "TagKey", "TagValue")
        kms = self.client("kms")
        metadata = kms.create_key(**request)["KeyMetadata"]
        key_id = metadata["KeyId"]
        if props.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=key_id)
        if props.get("Enabled") is False:
            kms.disable_key(KeyId=key_id)
        return ProvisionedResource(
            logical_id, "AWS::KMS::Key", key_id, {"Arn": metadata["Arn"], "KeyId": key_id}, props
        )

    def _kms_alias(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        props = stack.resolve(raw)
        self.client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
        return ProvisionedResource(logical_id, "AWS::KMS::Alias", props["AliasName"], {}, props)

    def _s3_bucket(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        """Created in moto, private; encryption and public-access settings are only recorded."""
        props = stack.resolve(raw)
        name = props.get("BucketName") or physical_name(stack.name, logical_id, 63).lower()
        s3 = self.client("s3")
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):  # provisioned again into the same moto
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        arn = f"arn:aws:s3:::{name}"
        attributes = {"Arn": arn, "DomainName": f"{name}.s3.amazonaws.com"}
        return ProvisionedResource(logical_id, "AWS::S3::Bucket", name, attributes, props)

    def _schedule_group(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        """Created in moto (which stores schedules but never fires them: the local clock does)."""
        props = stack.resolve(raw)
        name = props.get("Name") or physical_name(stack.name, logical_id)
        arn = self.client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"]
        return ProvisionedResource(logical_id, "AWS::Scheduler::ScheduleGroup", name, {"Arn": arn}, props)

    def _schedule(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        """A recurring schedule (e.g. the weather poller's rate()), stored in moto for the local clock to fire."""
        props = stack.resolve(raw)
        name = props.get("Name") or physical_name(stack.name, logical_id)
        request = {
            key: props[key]
            for key in ("GroupName", "ScheduleExpression", "ScheduleExpressionTimezone", "State", "Description")
            if key in props
        }
        target = {
            key: props["Target"][key] for key in ("Arn", "RoleArn", "Input", "RetryPolicy") if key in props["Target"]
        }
        arn = self.client("scheduler").create_schedule(
            Name=name,
            FlexibleTimeWindow=props.get("FlexibleTimeWindow") or {"Mode": "OFF"},
            Target=target,
            **request,
        )["ScheduleArn"]
        return ProvisionedResource(logical_id, "AWS::Scheduler::Schedule", name, {"Arn": arn}, props)

    def _code_dir(self, stack: _Stack, location: Any, where: str) -> Path:
        if isinstance(location, dict) and location.get("S3Bucket") == CODE_BUCKET:
            folder = stack.code.get(str(location.get("S3Key")))
            if folder is not None:
                if not folder.is_dir():
                    raise ProvisionError(f"{where}: code folder {folder} does not exist")
                return folder
        raise ProvisionError(f"{where}: code must be a local folder (CodeUri/ContentUri), got {location!r}")

    def _lambda_layer(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        props = stack.resolve(raw)
        folder = self._code_dir(stack, props.get("Content"), stack.qualified(logical_id))
        # Layers built with BuildMethod put the folder's content under python/; a prebuilt one already has it.
        name = props.get("LayerName") or physical_name(stack.name, logical_id, 140)
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{name}:1"
        self._layers[arn] = folder
        return ProvisionedResource(logical_id, "AWS::Lambda::LayerVersion", arn, {"LayerVersionArn": arn}, props)

    def _lambda_function(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        props = stack.resolve(raw)
        where = stack.qualified(logical_id)
        name = props.get("FunctionName") or physical_name(stack.name, logical_id, 64)
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        layers: list[Path] = []
        for layer_arn in props.get("Layers") or []:
            if layer_arn not in self._layers:
                log.warning("%s: layer %s is not declared in the templates: ignored locally", where, layer_arn)
                continue
            layers.append(self._layers[layer_arn])
        variables = (props.get("Environment") or {}).get("Variables") or {}
        function = LocalFunction(
            name=name,
            logical_id=where,
            arn=arn,
            code_dir=self._code_dir(stack, props.get("Code"), where),
            handler=str(props.get("Handler", "")),
            runtime=str(props.get("Runtime", "")),
            layers=tuple(layers),
            environment={str(k): cfn_string(v) for k, v in variables.items()},
            timeout=int(props.get("Timeout", 3)),
            memory_size=int(props.get("MemorySize", 128)),
        )
        if not function.runtime.startswith("python"):
            raise ProvisionError(f"{where}: runtime {function.runtime!r} cannot run locally (Python only)")
        self.deployment.functions[name] = function
        return ProvisionedResource(logical_id, "AWS::Lambda::Function", name, {"Arn": arn}, props)

    def _event_source_mapping(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        props = stack.resolve(raw)
        where = stack.qualified(logical_id)
        mapping_id = str(uuid.UUID(_suffix(stack.name, logical_id, length=32).lower()))
        source = str(props.get("EventSourceArn", ""))
        if ":sqs:" not in source:
            log.warning("%s: event source %s is not an SQS queue: not polled locally", where, source)
            return ProvisionedResource(
                logical_id, "AWS::Lambda::EventSourceMapping", mapping_id, {"Id": mapping_id}, props
            )
        queue_url = self._queues.get(source)
        if queue_url is None:
            *_, account, queue_name = source.split(":")
            queue_url = self.client("sqs").get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
        scaling = props.get("ScalingConfig") or {}
        mapping = EventSourceMapping(
            logical_id=where,
            function=_function_name_of(str(props["FunctionName"])),
            queue_arn=source,
            queue_url=str(queue_url),
            batch_size=int(props.get("BatchSize", 10)),
            batching_window_seconds=int(props.get("MaximumBatchingWindowInSeconds", 0)),
            report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
            enabled=cfn_string(props.get("Enabled", True)) == "true",
            maximum_concurrency=int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None,
        )
        self.deployment.event_source_mappings.append(mapping)
        return ProvisionedResource(logical_id, "AWS::Lambda::EventSourceMapping", mapping_id, {"Id": mapping_id}, props)

    def _http_api(self, stack: _Stack, logical_id: str, raw: dict[str, Any], _: Any) -> ProvisionedResource:
        props = stack.resolve(raw)
        where = stack.qualified(logical_id)
        api_id = _suffix(stack.name, logical_id, length=10).lower()
        endpoint = f"https://{api_id}.execute-api.{self.region}.amazonaws.com"
        attributes = {"ApiId": api_id, "ApiEndpoint": endpoint}
        body = props.get("Body")
        if props.get("ProtocolType", "HTTP") != "HTTP" or not isinstance(body, dict):
            log.warning("%s: only HTTP APIs defined by an OpenAPI Body are served locally", where)
            return ProvisionedResource(logical_id, "AWS::ApiGatewayV2::Api", api_id, attributes, props)
        authorizers = self._authorizers(body, where)
        routes: list[Route] = []
        default_security = body.get("security")
        for path, item in (body.get("paths") or {}).items():
            for key, operation in item.items():
                method = "ANY" if key == "x-amazon-apigateway-any-method" else key.upper()
                if method not in ("ANY", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
                    continue
                integration = operation.get("x-amazon-apigateway-integration") or {}
                match = _INVOCATION_URI.search(cfn_string(integration.get("uri", "")))
                if integration.get("type", "").lower() != "aws_proxy" or not match:
                    log.warning("%s: %s %s has no Lambda proxy integration: not served locally", where, method, path)
                    continue
                version = str(integration.get("payloadFormatVersion", "2.0"))
                if version != "2.0":
                    raise ProvisionError(f"{where}: {method} {path}: payload format {version} is not supported locally")
                security = operation.get("security", default_security) or []
                names = [name for requirement in security for name in requirement if name != "NONE"]
                unknown = [name for name in names if name not in authorizers]
                if unknown:
                    raise ProvisionError(
                        f"{where}: {method} {path}: authorizer {unknown[0]} is not a Lambda authorizer"
                    )
                routes.append(
                    Route(
                        method=method,
                        path=path,
                        function=_function_name_of(match.group(1)),
                        authorizer=names[0] if names else None,
                        payload_version=version,
                    )
                )
        cors_config = body.get("x-amazon-apigateway-cors") or props.get("CorsConfiguration")
        self.deployment.apis.append(
            HttpApi(where, api_id, tuple(routes), authorizers, _cors(cors_config) if cors_config else None)
        )
        return ProvisionedResource(logical_id, "AWS::ApiGatewayV2::Api", api_id, attributes, props)

    @staticmethod
    def _authorizers(body: dict[str, Any], where: str) -> dict[str, Authorizer]:
        found: dict[str, Authorizer] = {}
        for name, scheme in ((body.get("components") or {}).get("securitySchemes") or {}).items():
            spec = scheme.get("x-amazon-apigateway-authorizer")
            if not spec:
                continue
            if str(spec.get("type", "")).lower() != "request":
                log.warning("%s: authorizer %s (%s) is not supported locally", where, name, spec.get("type"))
                continue
            match = _INVOCATION_URI.search(cfn_string(spec.get("authorizerUri", "")))
            if not match:
                raise ProvisionError(f"{where}: authorizer {name} has no Lambda function")
            sources = spec.get("identitySource") or []
            found[name] = Authorizer(
                name=name,
                function=_function_name_of(match.group(1)),
                identity_sources=tuple([sources] if isinstance(sources, str) else sources),
                ttl_seconds=int(spec.get("authorizerResultTtlInSeconds", 0)),
                payload_version=str(spec.get("authorizerPayloadFormatVersion", "2.0")),
                simple_responses=bool(spec.get("enableSimpleResponses", False)),
            )
        return found


def _cors(config: dict[str, Any]) -> Cors:
    def strings(*keys: str) -> tuple[str, ...]:
        for key in keys:
            if key in config:
                return tuple(str(item) for item in config[key])
        return ()

    max_age = config.get("maxAge", config.get("MaxAge"))
    return Cors(
        allow_origins=strings("allowOrigins", "AllowOrigins"),
        allow_headers=strings("allowHeaders", "AllowHeaders"),
        allow_methods=strings("allowMethods", "AllowMethods"),
        expose_headers=strings("exposeHeaders", "ExposeHeaders"),
        max_age=int(max_age) if max_age is not None else None,
        allow_credentials=bool(config.get("allowCredentials", config.get("AllowCredentials", False))),
    )


def provision(
    endpoint_url: str,
    template_file: Path = TEMPLATE,
    *,
    region: str = DEFAULT_REGION,
    stack_name: str = DEFAULT_STACK_NAME,
    api_url: str | None = None,
) -> Deployment:
    """Creates the template's resources in the moto server at `endpoint_url` and describes the rest."""
    return Provisioner(endpoint_url, region, stack_name, api_url).provision(template_file)
