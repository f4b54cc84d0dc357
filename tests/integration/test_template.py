"""The SAM topology: what cfn-lint does not check (it validates AWS::Serverless::* against schemas only).

No network: templates are read with PyYAML (a small loader for the CloudFormation short tags) and
translated to plain CloudFormation with aws-sam-translator, the way the local stack does it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "template.yaml"
CHANNEL = ROOT / "infra" / "channel.yaml"

EXPECTED_CHANNELS = {
    "WebhookChannel": "webhook",
    "MastodonChannel": "mastodon",
    "FacebookChannel": "facebook",
    "InstagramChannel": "instagram",
    "XChannel": "x",
    "BlueskyChannel": "bluesky",
    "WordpressChannel": "wordpress",
    "PushChannel": "push",
    "WebpushChannel": "webpush",
    "WebsiteChannel": "website",
    "SmsChannel": "sms",
    "EmailChannel": "email",
}
PACED_CHANNELS = {"SmsChannel": "SmsPartsPerSecond", "EmailChannel": "SesSendsPerSecond"}
"""Channels that send one message per subscriber at the account's rate: one chunk per invocation."""


# ---------------------------------------------------------------- loading


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref x` into {"Ref": x}, `!GetAtt a.b` into {"Fn::GetAtt": [a, b]}, etc."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    loader = _CfnLoader(path.read_text(encoding="utf-8"))
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def main() -> dict[str, Any]:
    return load_template(MAIN)


@pytest.fixture(scope="module")
def channel() -> dict[str, Any]:
    return load_template(CHANNEL)


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


# ---------------------------------------------------------------- main template


def test_globals_runtime_and_environment(main: dict[str, Any]) -> None:
    fn = main["Globals"]["Function"]
    assert main["Transform"] == "AWS::Serverless-2016-10-31"
    assert "Crieur" in main["Description"]
    assert fn["Runtime"] == "python3.13"
    assert fn["Architectures"] == ["arm64"]
    assert fn["MemorySize"] == 512
    assert fn["Timeout"] == 30
    assert fn["LoggingConfig"]["LogFormat"] == "JSON"
    assert fn["Environment"]["Variables"] == {
        "POWERTOOLS_SERVICE_NAME": "crieur",
        "POWERTOOLS_METRICS_NAMESPACE": "Crieur",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "CRIEUR_TABLE_NAME": {"Ref": "Table"},
        "CRIEUR_PRICE_LIST_PARAMETER": {"Ref": "PriceListParameterName"},
    }


def test_single_table(main: dict[str, Any]) -> None:
    table = main["Resources"]["Table"]
    props = table["Properties"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]} == {
        "pk": "S",
        "sk": "S",
        "gsi1pk": "S",
        "gsi1sk": "S",
    }
    (gsi,) = props["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "gsi1"
    assert gsi["KeySchema"] == [
        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
    ]
    assert gsi["Projection"] == {"ProjectionType": "ALL"}


def test_idempotency_table(main: dict[str, Any]) -> None:
    props = main["Resources"]["IdempotencyTable"]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_credentials_key(main: dict[str, Any]) -> None:
    key = main["Resources"]["CredentialsKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["Properties"].get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    alias = main["Resources"]["CredentialsKeyAlias"]["Properties"]
    assert alias == {
        "AliasName": {"Fn::Sub": "alias/${AWS::StackName}-credentials"},
        "TargetKeyId": {"Ref": "CredentialsKey"},
    }


def test_subscriber_lookup_key_is_an_hmac_key(main: dict[str, Any]) -> None:
    key = main["Resources"]["SubscriberLookupKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["DeletionPolicy"] == "Retain"
    assert key["Properties"]["KeySpec"] == "HMAC_256"
    assert key["Properties"]["KeyUsage"] == "GENERATE_VERIFY_MAC"


def test_layer_builds_python313_arm64(main: dict[str, Any]) -> None:
    layer = main["Resources"]["CrieurLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/crieur"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    # The build method adds python/ itself: a python/ source folder would end up python/python/.
    assert (ROOT / "layers/crieur/requirements.txt").is_file()
    assert not (ROOT / "layers/crieur/python").exists()


def test_http_api_authorizer_and_cors(main: dict[str, Any]) -> None:
    props = main["Resources"]["HttpApi"]["Properties"]
    assert props["Auth"]["DefaultAuthorizer"] == "CommuneKey"
    authorizer = props["Auth"]["Authorizers"]["CommuneKey"]
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    assert authorizer["AuthorizerPayloadFormatVersion"] == "2.0"
    assert authorizer["EnableSimpleResponses"] is True
    assert authorizer["Identity"] == {"Headers": ["Authorization"], "ReauthorizeEvery": 0}  # revocation is immediate
    cors = props["CorsConfiguration"]
    assert cors["AllowOrigins"] == ["*"]
    assert {h.lower() for h in cors["AllowHeaders"]} == {"authorization", "content-type", "idempotency-key"}
    assert set(cors["AllowMethods"]) == {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def test_routes_and_their_auth(main: dict[str, Any]) -> None:
    events = main["Resources"]["ApiFunction"]["Properties"]["Events"]
    routes = {
        name: (
            e["Properties"]["Method"],
            e["Properties"]["Path"],
            e["Properties"].get("Auth", {}).get("Authorizer", "default"),
        )
        for name, e in events.items()
    }
    assert routes == {
        "Health": ("GET", "/v1/health", "NONE"),
        "OpenApi": ("GET", "/v1/openapi.json", "NONE"),
        "Docs": ("GET", "/v1/docs", "NONE"),
        "Inbound": ("POST", "/v1/inbound/{commune}/{source}", "NONE"),  # the signature is the auth
        "V1": ("ANY", "/v1/{proxy+}", "default"),
        "PublicFiles": ("GET", "/public/{commune}/{file}", "NONE"),  # feeds and widget, public
        "WebpushKey": ("GET", "/public/{commune}/webpush/key", "NONE"),  # browsers, no API key
        "WebpushSubscribe": ("POST", "/public/{commune}/webpush/subscriptions", "NONE"),
        "WebpushUnsubscribe": ("DELETE", "/public/{commune}/webpush/subscriptions", "NONE"),
        # residents' SMS and e-mail subscriptions: no API key (double opt-in, one-click unsubscribe)
        "Subscribe": ("POST", "/public/{commune}/subscriptions", "NONE"),
        "Unsubscribe": ("DELETE", "/public/{commune}/subscriptions", "NONE"),
        "ConfirmCode": ("POST", "/public/{commune}/subscriptions/confirm", "NONE"),
        "ConfirmLink": ("GET", "/public/{commune}/subscriptions/confirm", "NONE"),
        "UnsubscribePage": ("GET", "/public/{commune}/subscriptions/unsubscribe", "NONE"),
        "UnsubscribeOneClick": ("POST", "/public/{commune}/subscriptions/unsubscribe", "NONE"),
        # the mairie's web console: static files; the page asks for the key
        "ConsoleHome": ("GET", "/console", "NONE"),
        "ConsoleFiles": ("GET", "/console/{file}", "NONE"),
    }
    for event in events.values():
        assert event["Type"] == "HttpApi"
        assert event["Properties"]["ApiId"] == {"Ref": "HttpApi"}


def test_functions(main: dict[str, Any]) -> None:
    for name, code_uri in (
        ("AuthorizerFunction", "functions/authorizer/"),
        ("ApiFunction", "functions/api/"),
        ("ReleaseFunction", "functions/release/"),
        ("WeatherFunction", "functions/weather/"),
        ("EventsFunction", "functions/events/"),
    ):
        props = main["Resources"][name]["Properties"]
        assert props["CodeUri"] == code_uri
        assert props["Handler"] == "app.lambda_handler"
        assert props["Layers"] == [{"Ref": "CrieurLayer"}]
    env = main["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert env == {
        "CRIEUR_IDEMPOTENCY_TABLE_NAME": {"Ref": "IdempotencyTable"},
        "CRIEUR_TOPIC_ARN": {"Ref": "PublicationTopic"},
        "CRIEUR_KMS_KEY_ID": {"Fn::GetAtt": ["CredentialsKey", "Arn"]},
        "CRIEUR_LOOKUP_KEY_ID": {"Fn::GetAtt": ["SubscriberLookupKey", "Arn"]},
        "CRIEUR_SCHEDULE_GROUP": {"Ref": "ScheduleGroup"},
        "CRIEUR_RELEASE_FUNCTION_ARN": {"Fn::GetAtt": ["ReleaseFunction", "Arn"]},
        "CRIEUR_SCHEDULER_ROLE_ARN": {"Fn::GetAtt": ["SchedulerRole", "Arn"]},
        "CRIEUR_SCHEDULE_DLQ_ARN": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]},
        "CRIEUR_EVENTS_QUEUE_URL": {"Ref": "EventsQueue"},
        "CRIEUR_PUBLIC_BUCKET": {"Ref": "PublicBucket"},
        "CRIEUR_CONSOLE_BUCKET": {"Ref": "ConsoleBucket"},
    }
    for name in ("PublicBucket", "ConsoleBucket"):
        bucket = main["Resources"][name]["Properties"]
        assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert all(bucket["PublicAccessBlockConfiguration"].values())  # private: served only through the API


def test_channels_are_nested_applications(main: dict[str, Any], channel: dict[str, Any]) -> None:
    apps = resources_of_type(main, "AWS::Serverless::Application")
    assert {k: v["Properties"]["Parameters"]["Channel"] for k, v in apps.items()} == EXPECTED_CHANNELS
    required = {k for k, v in channel["Parameters"].items() if "Default" not in v}
    known = set(channel["Parameters"])
    for app in apps.values():
        props = app["Properties"]
        assert props["Location"] == "infra/channel.yaml"
        params = props["Parameters"]
        assert required <= set(params) <= known
        assert params["TopicArn"] == {"Ref": "PublicationTopic"}
        assert params["LayerArn"] == {"Ref": "CrieurLayer"}
        assert params["TableName"] == {"Ref": "Table"}
        assert params["TableArn"] == {"Fn::GetAtt": ["Table", "Arn"]}
        assert params["CredentialsKeyArn"] == {"Fn::GetAtt": ["CredentialsKey", "Arn"]}
        assert params["EventsQueueUrl"] == {"Ref": "EventsQueue"}
        assert params["EventsQueueArn"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}


def test_outputs(main: dict[str, Any]) -> None:
    outputs = main["Outputs"]
    assert set(outputs) >= {"ApiUrl", "TableName", "IdempotencyTableName", "TopicArn", "CredentialsKeyArn"}
    assert outputs["ApiUrl"]["Value"] == {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"}


# ---------------------------------------------------------------- channel template


def test_channel_queue_and_dead_letter_queue(channel: dict[str, Any]) -> None:
    assert channel["Transform"] == "AWS::Serverless-2016-10-31"
    assert channel["Parameters"]["Channel"]["AllowedPattern"] == "^[a-z]+$"
    dlq = channel["Resources"]["DeadLetterQueue"]["Properties"]
    queue = channel["Resources"]["Queue"]["Properties"]
    fn = channel["Resources"]["DeliverFunction"]["Properties"]
    assert dlq["MessageRetentionPeriod"] == queue["MessageRetentionPeriod"] == 1209600
    assert dlq["SqsManagedSseEnabled"] is queue["SqsManagedSseEnabled"] is True
    assert queue["VisibilityTimeout"] >= 6 * fn["Timeout"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    # The function decides "failed, not retrying" on the last receive: both numbers must agree.
    assert int(fn["Environment"]["Variables"]["CRIEUR_MAX_RECEIVE_COUNT"]) == queue["RedrivePolicy"]["maxReceiveCount"]


def test_each_channel_reads_its_own_dead_letter_queue(channel: dict[str, Any]) -> None:
    """A dead letter is settled by the channel's deliver function (crieur.delivery, dead_letter), which may only
    receive and delete there: no send (nothing goes back to the DLQ) and no visibility change."""
    resources = channel["Resources"]
    fn = resources["DeliverFunction"]["Properties"]
    assert fn["Environment"]["Variables"]["CRIEUR_DEAD_LETTER_QUEUE_ARN"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert resources["DeadLetters"]["Properties"] == {
        "EventSourceArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "FunctionName": {"Ref": "DeliverFunction"},
        "BatchSize": {"Ref": "BatchSize"},
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": 2},
    }
    mappings = [name for name, r in resources.items() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mappings == ["Deliveries", "DeadLetters"]  # in this order: the queue's is a function's first mapping
    assert resources["DeadLetterQueue"]["Properties"]["VisibilityTimeout"] >= 6 * fn["Timeout"]
    dead_letter_arn = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    statements = fn["Policies"][0]["Statement"]
    on_dead_letters = [s for s in statements if "Fn::If" not in s and s["Resource"] == dead_letter_arn]
    assert [(s["Sid"], sorted(s["Action"])) for s in on_dead_letters] == [
        ("PollOwnDeadLetters", ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"])
    ]


def test_channel_subscription_exact_filter(channel: dict[str, Any]) -> None:
    sub = channel["Resources"]["Subscription"]["Properties"]
    assert sub["Protocol"] == "sqs"
    assert sub["Endpoint"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert sub["TopicArn"] == {"Ref": "TopicArn"}
    assert sub["RawMessageDelivery"] is True
    assert sub["FilterPolicyScope"] == "MessageAttributes"
    # Exact match only (moto gets prefix/suffix/anything-but wrong on String.Array attributes).
    assert sub["FilterPolicy"] == {"channels": [{"Ref": "Channel"}]}

    (statement,) = channel["Resources"]["QueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "TopicArn"}}}


def test_deliver_function(channel: dict[str, Any]) -> None:
    fn = channel["Resources"]["DeliverFunction"]["Properties"]
    assert fn["CodeUri"] == "../functions/deliver/"
    assert (CHANNEL.parent / fn["CodeUri"]).resolve() == (ROOT / "functions/deliver").resolve()
    assert fn["Handler"] == "app.lambda_handler"
    assert fn["Runtime"] == "python3.13"
    assert fn["Architectures"] == ["arm64"]
    assert fn["LoggingConfig"]["LogFormat"] == "JSON"
    assert fn["Layers"] == [{"Ref": "LayerArn"}]
    env = fn["Environment"]["Variables"]
    assert env["CHANNEL"] == {"Ref": "Channel"}
    assert env["CRIEUR_TABLE_NAME"] == {"Ref": "TableName"}
    assert env["POWERTOOLS_SERVICE_NAME"] == {"Fn::Sub": "crieur-deliver-${Channel}"}
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Crieur"
    assert "Events" not in fn  # polled by an explicit mapping: no SAM SQS event and its account-wide policy
    assert channel["Resources"]["Deliveries"]["Properties"] == {
        "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
        "FunctionName": {"Ref": "DeliverFunction"},
        "BatchSize": {"Ref": "BatchSize"},
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": {"Ref": "MaxConcurrency"}},
    }
    assert channel["Parameters"]["BatchSize"]["Default"] == 10
    # The account's sending rate is shared by the invocations that may run at once (crieur/channels/pacing.py).
    assert env["CRIEUR_DELIVER_CONCURRENCY"] == {"Ref": "MaxConcurrency"}
    assert env["CRIEUR_SMS_PARTS_PER_SECOND"] == {
        "Fn::If": ["IsSms", {"Ref": "SendsPerSecond"}, {"Ref": "AWS::NoValue"}]
    }
    assert env["CRIEUR_SES_SENDS_PER_SECOND"] == {
        "Fn::If": ["IsEmail", {"Ref": "SendsPerSecond"}, {"Ref": "AWS::NoValue"}]
    }


def test_paced_channels_send_one_chunk_per_invocation(main: dict[str, Any]) -> None:
    """A chunk paced to the account's rate takes seconds: one per invocation keeps within the timeout."""
    from crieur.channels.email import DEFAULT_SENDS_PER_SECOND, EmailChannel
    from crieur.channels.sms import DEFAULT_PARTS_PER_SECOND, SmsChannel
    from crieur.render.sms import MAX_SMS_PARTS

    for name, rate in PACED_CHANNELS.items():
        params = main["Resources"][name]["Properties"]["Parameters"]
        assert params["BatchSize"] == 1, name
        assert params["MaxConcurrency"] == 2, name
        assert params["SendsPerSecond"] == {"Ref": rate}, name
    timeout = main["Globals"]["Function"]["Timeout"]
    sms_share = main["Parameters"]["SmsPartsPerSecond"]["Default"] / 2
    assert main["Parameters"]["SmsPartsPerSecond"]["Default"] == DEFAULT_PARTS_PER_SECOND
    assert SmsChannel.chunk_size * MAX_SMS_PARTS / sms_share < timeout  # even with six parts each
    email_share = main["Parameters"]["SesSendsPerSecond"]["Default"] / 2
    assert main["Parameters"]["SesSendsPerSecond"]["Default"] == DEFAULT_SENDS_PER_SECOND
    assert EmailChannel.chunk_size / email_share < timeout
    email = main["Resources"]["EmailChannel"]["Properties"]["Parameters"]
    assert email["ConfigurationSetName"] == {"Ref": "EmailConfigurationSet"}
    assert email["PublicBaseUrl"] == {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}


def test_bounces_complaints_and_stop_replies_reach_their_functions(main: dict[str, Any]) -> None:
    resources = main["Resources"]
    destination = resources["EmailEventDestination"]["Properties"]
    assert destination["ConfigurationSetName"] == {"Ref": "EmailConfigurationSet"}
    assert destination["EventDestination"]["Enabled"] is True
    assert sorted(destination["EventDestination"]["MatchingEventTypes"]) == ["bounce", "complaint"]
    assert destination["EventDestination"]["SnsDestination"] == {"TopicARN": {"Ref": "EmailEventsTopic"}}
    props = resources["OptOutsFunction"]["Properties"]
    assert props["CodeUri"] == "functions/optouts/"
    assert props["Environment"]["Variables"] == {"CRIEUR_LOOKUP_KEY_ID": {"Fn::GetAtt": ["SubscriberLookupKey", "Arn"]}}
    topics = {event["Properties"]["Topic"]["Ref"] for event in props["Events"].values()}
    assert {event["Type"] for event in props["Events"].values()} == {"SNS"}
    assert topics == {"EmailEventsTopic", "SmsInboundTopic"}
    for topic, service in (("EmailEventsTopic", "ses.amazonaws.com"), ("SmsInboundTopic", "sms-voice.amazonaws.com")):
        (statement,) = resources[f"{topic}Policy"]["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": service}
        assert statement["Action"] == "sns:Publish"
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


# ---------------------------------------------------------------- least privilege


def _function_statements(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every IAM statement a function declares, by function logical id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, res in resources_of_type(template, "AWS::Serverless::Function").items():
        policies = res["Properties"].get("Policies", [])
        # Inline documents only: no managed policy names nor SAM policy templates (too broad).
        assert all(isinstance(p, dict) and set(p) <= {"Version", "Statement"} for p in policies), name
        out[name] = [_unconditional(s) for p in policies for s in p["Statement"]]
    return out


def _unconditional(statement: dict[str, Any]) -> dict[str, Any]:
    """A statement granted only under a condition (`Fn::If` [condition, statement, AWS::NoValue])."""
    if "Fn::If" in statement:
        _, granted, otherwise = statement["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}
        return dict(granted)
    return statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard_ok(resource: Any) -> bool:
    """No `*` in a Resource, except the `/index/*` suffix after a table ARN (the table's own indexes),
    the `pub-*` schedules of the stack's own schedule group (one per scheduled publication), and the
    account's SMS sender ids and SES identities (one per commune, registered outside the stack)."""
    text = resource.get("Fn::Sub") if isinstance(resource, dict) else resource
    if not isinstance(text, str) or "*" not in text:
        return True
    if text.count("*") != 1:
        return False
    return (
        (text.endswith("/index/*") and "Arn}" in text)
        or text.endswith(":schedule/${ScheduleGroup}/pub-*")
        or text in ("${PublicBucket.Arn}/*", "arn:${AWS::Partition}:s3:::${PublicBucketName}/*")  # its objects
        or text == "${ConsoleBucket.Arn}/console/*"  # the console's files
        or text.endswith((":${AWS::AccountId}:sender-id/*", ":${AWS::AccountId}:identity/*"))
    )


@pytest.mark.parametrize("which", ["main", "channel"])
def test_no_wildcard_in_function_policies(which: str, main: dict[str, Any], channel: dict[str, Any]) -> None:
    template = main if which == "main" else channel
    statements = _function_statements(template)
    assert statements
    for name, stmts in statements.items():
        for stmt in stmts:
            assert stmt["Effect"] == "Allow"
            for action in _as_list(stmt["Action"]):
                assert "*" not in action, (name, action)
            for resource in _as_list(stmt["Resource"]):
                assert resource != "*", (name, stmt)
                assert _wildcard_ok(resource), (name, resource)


def _actions(stmts: list[dict[str, Any]]) -> set[str]:
    return {a for s in stmts for a in _as_list(s["Action"])}


def test_each_function_gets_only_what_it_needs(main: dict[str, Any], channel: dict[str, Any]) -> None:
    main_stmts = _function_statements(main)
    assert set(main_stmts) == {
        "AuthorizerFunction",
        "ApiFunction",
        "ReleaseFunction",
        "WeatherFunction",
        "EventsFunction",
        "OptOutsFunction",
    }
    assert _actions(main_stmts["AuthorizerFunction"]) == {"dynamodb:GetItem"}
    # Finds an address's subscriptions by its keyed hash, and erases them.
    assert _actions(main_stmts["OptOutsFunction"]) == {"dynamodb:Query", "dynamodb:DeleteItem", "kms:GenerateMac"}
    api = _actions(main_stmts["ApiFunction"])
    assert api == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:Query",
        "sns:Publish",
        "sqs:SendMessage",  # status events
        "ssm:GetParameter",
        "scheduler:CreateSchedule",
        "scheduler:UpdateSchedule",
        "scheduler:DeleteSchedule",
        "iam:PassRole",
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:GenerateDataKey",  # a commune's data key for its subscribers' addresses
        "kms:GenerateMac",  # the keyed hash of a subscriber's address
        "sms-voice:SendTextMessage",  # confirmation codes
        "ses:SendEmail",  # confirmation links
        "ses:GetEmailIdentity",  # the email channel's test: is the sender verified?
        "sms-voice:DescribeSenderIds",  # the sms channel's test: does the sender id exist?
        "s3:GetObject",  # GET /public/{commune}/{file}, GET /console/{file}
        "s3:ListBucket",  # a missing file is a 404, not a 403
    }
    public_reads = [s for s in main_stmts["ApiFunction"] if str(s["Action"]).startswith("s3:")]
    assert {json.dumps(s["Resource"]) for s in public_reads} == {
        json.dumps({"Fn::Sub": "${PublicBucket.Arn}/*"}),
        json.dumps({"Fn::GetAtt": ["PublicBucket", "Arn"]}),
        json.dumps({"Fn::Sub": "${ConsoleBucket.Arn}/console/*"}),  # GET /console/{file}
        json.dumps({"Fn::GetAtt": ["ConsoleBucket", "Arn"]}),
    }
    # The API decrypts only to test a channel's credentials, and never without the encryption context.
    (sealing,) = [s for s in main_stmts["ApiFunction"] if "kms:Encrypt" in _as_list(s["Action"])]
    assert sealing["Condition"] == {
        "Null": {"kms:EncryptionContext:commune": "false", "kms:EncryptionContext:channel": "false"}
    }
    (data_keys,) = [s for s in main_stmts["ApiFunction"] if "kms:GenerateDataKey" in _as_list(s["Action"])]
    assert data_keys["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:channel": "subscribers"},
        "Null": {"kms:EncryptionContext:commune": "false"},
    }
    (lookups,) = [s for s in main_stmts["ApiFunction"] if "kms:GenerateMac" in _as_list(s["Action"])]
    assert lookups["Resource"] == {"Fn::GetAtt": ["SubscriberLookupKey", "Arn"]}
    assert _actions(main_stmts["ReleaseFunction"]) == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "sns:Publish",
        "sqs:SendMessage",
        "ssm:GetParameter",
    }
    assert _actions(main_stmts["WeatherFunction"]) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:Query",
        "sns:Publish",
        "sqs:SendMessage",
        "ssm:GetParameter",
    }
    events = main_stmts["EventsFunction"]
    assert _actions(events) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "kms:Decrypt",
        "sqs:ChangeMessageVisibility",
        "sqs:ReceiveMessage",  # its own queue only (PollOwnQueue), for its event source mapping
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    }
    (polling,) = [s for s in events if s.get("Sid") == "PollOwnQueue"]
    assert polling["Resource"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    # The events worker opens the endpoints' secrets only: never a channel's credentials nor an inbound secret.
    (opening,) = [s for s in events if s["Action"] == "kms:Decrypt"]
    assert opening["Resource"] == {"Fn::GetAtt": ["CredentialsKey", "Arn"]}
    assert opening["Condition"] == {
        "StringLike": {"kms:EncryptionContext:channel": "events:*"},
        "Null": {"kms:EncryptionContext:commune": "false"},
    }
    (backoff,) = [s for s in events if s["Action"] == "sqs:ChangeMessageVisibility"]
    assert backoff["Resource"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    # Every function that emits status events may send to the events queue, and to it only.
    for name in ("ApiFunction", "ReleaseFunction", "WeatherFunction"):
        (send,) = [s for s in main_stmts[name] if s["Action"] == "sqs:SendMessage"]
        assert send["Resource"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}, name

    deliver = _function_statements(channel)["DeliverFunction"]
    assert _actions(deliver) == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",  # Web Push subscriptions that are gone
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",  # the chunks of a delivery to many recipients, their recipients' markers
        "dynamodb:BatchGetItem",  # a chunk's Web Push subscriptions
        "kms:Decrypt",
        "sqs:ChangeMessageVisibility",
        "sqs:ReceiveMessage",  # its own queue only (PollOwnQueue), for its event source mapping
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",  # status events, and the chunks of a delivery to many recipients
        "ssm:GetParameter",  # the price list, when the deployment has its own
        "s3:GetObject",  # the website channel only (below)
        "s3:PutObject",
        "s3:ListBucket",
        "sms-voice:SendTextMessage",  # the sms channel only
        "ses:SendBulkEmail",  # the email channel only
        "ses:CreateEmailTemplate",
        "ses:UpdateEmailTemplate",
    }
    # Only a stack given PublicBucketName (the website channel) gets S3 rights, on that bucket only; only the sms
    # and email stacks open subscribers' addresses and send through End User Messaging or SES.
    raw = channel["Resources"]["DeliverFunction"]["Properties"]["Policies"][0]["Statement"]
    conditional = [s for s in raw if "Fn::If" in s]
    by_condition: dict[str, set[str]] = {}
    for statement in conditional:
        by_condition.setdefault(statement["Fn::If"][0], set()).update(_as_list(statement["Fn::If"][1]["Action"]))
    assert by_condition == {
        "HasPublicBucket": {"s3:GetObject", "s3:PutObject", "s3:ListBucket"},
        "ReachesSubscribers": {"kms:Decrypt"},
        "IsSms": {"sms-voice:SendTextMessage"},
        "IsEmail": {"ses:SendBulkEmail", "ses:CreateEmailTemplate", "ses:UpdateEmailTemplate"},
        "HasConfigurationSet": {"ses:SendBulkEmail"},
    }
    assert channel["Conditions"]["IsSms"] == {"Fn::Equals": [{"Ref": "Channel"}, "sms"]}
    assert channel["Conditions"]["IsEmail"] == {"Fn::Equals": [{"Ref": "Channel"}, "email"]}
    (addresses,) = [s["Fn::If"][1] for s in conditional if s["Fn::If"][0] == "ReachesSubscribers"]
    assert addresses["Condition"] == {"StringEquals": {"kms:EncryptionContext:channel": "subscribers"}}
    from crieur.channels.email import TEMPLATE_NAME

    for template in [s["Fn::If"][1] for s in conditional if s["Fn::If"][0] == "IsEmail"]:
        resources = [str(resource["Fn::Sub"]) for resource in _as_list(template["Resource"])]
        assert any(resource.endswith(f":template/{TEMPLATE_NAME}") for resource in resources)
    assert channel["Conditions"]["HasPublicBucket"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "PublicBucketName"}, ""]}]}
    assert channel["Parameters"]["PublicBucketName"]["Default"] == ""
    (decrypt, _) = [s for s in deliver if s["Action"] == "kms:Decrypt"]  # its credentials; subscribers (above)
    assert decrypt["Resource"] == {"Ref": "CredentialsKeyArn"}
    assert decrypt["Condition"] == {"StringEquals": {"kms:EncryptionContext:channel": {"Ref": "Channel"}}}
    sends = [s["Resource"] for s in deliver if s["Action"] == "sqs:SendMessage"]
    assert sorted(sends, key=str) == [{"Fn::GetAtt": ["Queue", "Arn"]}, {"Ref": "EventsQueueArn"}]


def test_every_emitting_function_knows_the_events_queue(main: dict[str, Any], channel: dict[str, Any]) -> None:
    for name in ("ApiFunction", "ReleaseFunction", "WeatherFunction", "EventsFunction"):
        env = main["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert env["CRIEUR_EVENTS_QUEUE_URL"] == {"Ref": "EventsQueue"}, name
    deliver_env = channel["Resources"]["DeliverFunction"]["Properties"]["Environment"]["Variables"]
    assert deliver_env["CRIEUR_EVENTS_QUEUE_URL"] == {"Ref": "EventsQueueUrl"}
    assert "CRIEUR_EVENTS_QUEUE_URL" not in main["Resources"]["AuthorizerFunction"]["Properties"].get(
        "Environment", {}
    ).get("Variables", {})


def test_events_queue_dead_letter_queue_and_worker(main: dict[str, Any]) -> None:
    from crieur.eventhooks.worker import MAX_VISIBILITY_SECONDS, retry_schedule

    resources = main["Resources"]
    dlq = resources["EventsDeadLetterQueue"]["Properties"]
    queue = resources["EventsQueue"]["Properties"]
    fn = resources["EventsFunction"]["Properties"]
    assert dlq["MessageRetentionPeriod"] == queue["MessageRetentionPeriod"] == 1209600
    assert dlq["SqsManagedSseEnabled"] is queue["SqsManagedSseEnabled"] is True
    assert queue["VisibilityTimeout"] >= 6 * fn["Timeout"]
    receives = queue["RedrivePolicy"]["maxReceiveCount"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
    env = fn["Environment"]["Variables"]
    # The worker gives up on an endpoint on the last receive: both numbers must agree.
    assert int(env["CRIEUR_EVENTS_MAX_RECEIVE_COUNT"]) == receives
    # Exponential backoff over about 24 hours, within SQS's 12-hour visibility ceiling and the retention.
    waits = retry_schedule(receives, int(env["CRIEUR_EVENTS_RETRY_BASE_SECONDS"]))
    assert waits == sorted(waits)
    assert max(waits) <= MAX_VISIBILITY_SECONDS
    assert 20 * 3600 <= sum(waits) <= 30 * 3600
    assert sum(waits) < queue["MessageRetentionPeriod"]
    assert "Events" not in fn  # polled by an explicit mapping: no SAM SQS event and its account-wide policy
    assert main["Resources"]["StatusEvents"]["Properties"] == {
        "EventSourceArn": {"Fn::GetAtt": ["EventsQueue", "Arn"]},
        "FunctionName": {"Ref": "EventsFunction"},
        "BatchSize": 10,
        "MaximumBatchingWindowInSeconds": 1,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": 5},
    }


# ---------------------------------------------------------------- SAM translation


class _NoManagedPolicies:
    """Stands in for ManagedPolicyLoader (which calls IAM): the templates use no managed policy names."""

    def load(self) -> dict[str, str]:
        return {}


def _with_s3_code(node: Any) -> Any:
    """Local CodeUri/ContentUri -> s3:// placeholders, as `sam validate` does: the translator wants S3."""
    if isinstance(node, dict):
        return {
            k: (
                f"s3://crieur-placeholder/{v.strip('/')}"
                if k in ("CodeUri", "ContentUri") and isinstance(v, str)
                else _with_s3_code(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_with_s3_code(v) for v in node]
    return node


def translate(template: dict[str, Any]) -> dict[str, Any]:
    loader = cast("ManagedPolicyLoader", _NoManagedPolicies())
    cfn: dict[str, Any] = transform(_with_s3_code(copy.deepcopy(template)), {}, loader)
    return cfn


@pytest.fixture
def region(monkeypatch: pytest.MonkeyPatch) -> None:
    # The translator resolves AWS::Region/AWS::Partition from a boto3 session: it needs a region.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")


def _of_type(cfn: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in cfn["Resources"].values() if r["Type"] == type_]


@pytest.mark.usefixtures("region")
def test_main_template_translates(main: dict[str, Any]) -> None:
    cfn = translate(main)
    assert not [r for r in cfn["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]

    functions = _of_type(cfn, "AWS::Lambda::Function")
    # authorizer, api, release, weather, events, opt-outs (deliver: in the channel stacks)
    assert len(functions) == 6
    for fn in functions:
        assert fn["Properties"]["Runtime"] == "python3.13"
        assert fn["Properties"]["Architectures"] == ["arm64"]
        assert fn["Properties"]["LoggingConfig"] == {"LogFormat": "JSON"}

    stacks = _of_type(cfn, "AWS::CloudFormation::Stack")
    assert sorted(s["Properties"]["Parameters"]["Channel"] for s in stacks) == sorted(EXPECTED_CHANNELS.values())
    assert {s["Properties"]["TemplateURL"] for s in stacks} == {"infra/channel.yaml"}

    # API Gateway may invoke the authorizer (HTTP API authorizers get no permission by default).
    permissions = _of_type(cfn, "AWS::Lambda::Permission")
    assert any(p["Properties"]["FunctionName"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]} for p in permissions)

    (api,) = _of_type(cfn, "AWS::ApiGatewayV2::Api")
    body = api["Properties"]["Body"]
    scheme = body["components"]["securitySchemes"]["CommuneKey"]["x-amazon-apigateway-authorizer"]
    assert scheme["authorizerPayloadFormatVersion"] == "2.0"
    assert scheme["enableSimpleResponses"] is True
    assert scheme["authorizerResultTtlInSeconds"] == 0
    assert scheme["identitySource"] == ["$request.header.Authorization"]
    paths = body["paths"]
    # SAM writes `Authorizer: NONE` as the pseudo-scheme NONE, which API Gateway imports as "no auth".
    for public in ("/v1/health", "/v1/openapi.json", "/v1/docs"):
        assert paths[public]["get"]["security"] == [{"NONE": []}], public
    assert paths["/v1/inbound/{commune}/{source}"]["post"]["security"] == [{"NONE": []}]
    assert paths["/public/{commune}/{file}"]["get"]["security"] == [{"NONE": []}]
    assert paths["/v1/{proxy+}"]["x-amazon-apigateway-any-method"]["security"] == [{"CommuneKey": []}]


@pytest.mark.usefixtures("region")
def test_channel_template_translates(channel: dict[str, Any]) -> None:
    cfn = translate(channel)
    (fn,) = _of_type(cfn, "AWS::Lambda::Function")
    assert fn["Properties"]["Runtime"] == "python3.13"
    assert fn["Properties"]["Architectures"] == ["arm64"]
    mapping, dead_letters = _of_type(cfn, "AWS::Lambda::EventSourceMapping")  # the queue's first (translated too)
    assert dead_letters["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] == {"Ref": "BatchSize"}
    assert props["MaximumBatchingWindowInSeconds"] == 1
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "MaxConcurrency"}}


def test_every_channel_adapter_has_its_template_block_and_no_block_lacks_an_adapter() -> None:
    from crieur.channels import ADAPTERS

    assert set(EXPECTED_CHANNELS.values()) == set(ADAPTERS)


@pytest.mark.usefixtures("region")
def test_the_weather_poller_runs_every_ten_minutes(main: dict[str, Any]) -> None:
    cfn = translate(main)
    (schedule,) = _of_type(cfn, "AWS::Scheduler::Schedule")
    assert schedule["Properties"]["ScheduleExpression"] == "rate(10 minutes)"
    assert schedule["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": ["WeatherFunction", "Arn"]}


@pytest.mark.usefixtures("region")
def test_the_events_worker_reads_its_queue_with_partial_batch_failures(main: dict[str, Any]) -> None:
    cfn = translate(main)
    (mapping,) = [
        m
        for m in _of_type(cfn, "AWS::Lambda::EventSourceMapping")
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    ]
    assert mapping["Properties"]["FunctionName"] == {"Ref": "EventsFunction"}
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
