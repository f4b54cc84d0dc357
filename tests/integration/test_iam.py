"""Least privilege: no IAM statement of the stack (template.yaml and infra/*.yaml, SAM policy templates expanded
by the translator) grants `*` actions or a bare `*` resource, except the ones listed below with their reason;
no AWS managed policy other than the one listed (queues are polled through explicit event source mappings and
a statement on the function's own queue, never SAM's AWSLambdaSQSQueueExecutionRole, which is on every queue).
A new statement with a wildcard fails here until it is narrowed or its reason is written down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.provision import translate
from tests.integration.test_template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = [ROOT / "template.yaml", *sorted((ROOT / "infra").glob("*.yaml"))]

JUSTIFIED: dict[tuple[str, str], str] = {
    ("AWS::KMS::Key", "kms:*"): (
        "a key policy's administration statement for the account root (AWS's default key policy): without it "
        "the key could no longer be managed; `Resource: *` in a key policy means this very key"
    ),
}
"""(resource type, action) → why its wildcard cannot be narrowed."""

MANAGED: dict[str, str] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": (
        "CloudWatch Logs for the function's own log group (logs:CreateLogGroup/CreateLogStream/PutLogEvents); "
        "SAM's default execution policy"
    ),
}
"""AWS managed policies a role may carry, and why."""


def statements(document: Any) -> Iterator[dict[str, Any]]:
    found = (document or {}).get("Statement", [])
    yield from [found] if isinstance(found, dict) else found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policies_of(resource: dict[str, Any]) -> Iterator[Any]:
    props = resource.get("Properties") or {}
    kind = resource["Type"]
    if kind == "AWS::IAM::Role":
        for policy in props.get("Policies", []):
            yield policy["PolicyDocument"]
    elif kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        yield props["PolicyDocument"]
    elif kind == "AWS::KMS::Key":
        yield props.get("KeyPolicy")
    elif kind in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy"):
        yield props["PolicyDocument"]


@pytest.fixture(scope="module")
def stacks() -> dict[str, dict[str, Any]]:
    translated = {}
    for path in TEMPLATES:
        template = load_template(path)
        parameters = {name: spec.get("Default", "x") for name, spec in template.get("Parameters", {}).items()}
        translated[path.name], _ = translate(template, path.parent, parameters, "eu-west-3")
    return translated


def wildcards(name: str, stack: dict[str, Any]) -> tuple[list[str], int]:
    """The statements granting a wildcard not in JUSTIFIED, and how many statements were read."""
    offending, seen = [], 0
    for logical_id, resource in stack["Resources"].items():
        for document in policies_of(resource):
            for statement in statements(document):
                seen += 1
                if statement.get("Effect") == "Deny":
                    continue
                actions = [str(action) for action in as_list(statement.get("Action", []))]
                resources = as_list(statement.get("Resource", []))
                where = f"{name} {logical_id} {json.dumps(actions)}"
                if "NotAction" in statement or "NotResource" in statement:
                    offending.append(f"{where}: NotAction/NotResource grant everything else")
                for action in actions:
                    if "*" in action and (resource["Type"], action) not in JUSTIFIED:
                        offending.append(f"{where}: wildcard action {action}")
                if "*" in resources and not all((resource["Type"], action) in JUSTIFIED for action in actions):
                    offending.append(f"{where}: Resource *")
    return offending, seen


def test_no_wildcard_where_a_narrower_grant_exists(stacks: dict[str, dict[str, Any]]) -> None:
    total = 0
    for name, stack in stacks.items():
        offending, seen = wildcards(name, stack)
        assert offending == []
        total += seen
    assert total > 10, "no statement found: the walk is broken"


def test_only_the_listed_managed_policies(stacks: dict[str, dict[str, Any]]) -> None:
    for name, stack in stacks.items():
        for logical_id, resource in stack["Resources"].items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            for arn in (resource.get("Properties") or {}).get("ManagedPolicyArns", []):
                assert arn in MANAGED, f"{name} {logical_id}: managed policy {arn} (say why, or grant less)"


def test_the_check_catches_wildcards() -> None:
    def role(statement: dict[str, Any]) -> dict[str, Any]:
        return {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyDocument": {"Statement": [statement]}}]}}

    stack = {
        "Resources": {
            "Everything": role({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}),
            "Anywhere": role({"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "*"}),
            "Inverted": role({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"}),
            "Narrow": role({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:eu-west-3:1:q"}),
        }
    }
    offending, seen = wildcards("test", stack)
    assert seen == 4
    assert [line.split()[1] for line in offending] == ["Everything", "Anywhere", "Inverted"]
