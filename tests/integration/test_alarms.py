"""The alarms the runbook (README) explains: one SNS topic with an optional e-mail subscription, API 5xx, the
weather poller's errors and silence, scheduled releases, and per channel its dead-letter queue and deliver
errors. Each alarm notifies the topic when it fires and when it is over."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.local.provision import Deployment
from tests.integration.test_template import load_template

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def main() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(scope="module")
def channel() -> dict[str, Any]:
    return load_template(ROOT / "infra" / "channel.yaml")


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def test_one_topic_with_an_optional_email(main: dict[str, Any]) -> None:
    assert main["Resources"]["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    assert main["Parameters"]["AlarmEmail"]["Default"] == ""
    subscription = main["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    assert main["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert main["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}


def test_every_alarm_notifies_the_topic_both_ways(main: dict[str, Any], channel: dict[str, Any]) -> None:
    for template, topic in ((main, {"Ref": "AlarmTopic"}), (channel, {"Ref": "AlarmTopicArn"})):
        found = alarms(template)
        assert found
        for name, alarm in found.items():
            assert alarm["AlarmActions"] == [topic], name
            assert alarm["OKActions"] == [topic], name
            assert "Runbook: README" in str(alarm["AlarmDescription"]), name


def test_the_stack_alarms(main: dict[str, Any]) -> None:
    found = alarms(main)
    api = found["ApiServerErrorsAlarm"]
    assert (api["Namespace"], api["MetricName"], api["Dimensions"]) == (
        "AWS/ApiGateway",
        "5xx",
        [{"Name": "ApiId", "Value": {"Ref": "HttpApi"}}],
    )
    assert (api["Statistic"], api["Threshold"], api["ComparisonOperator"]) == ("Sum", 0, "GreaterThanThreshold")
    weather = found["WeatherErrorsAlarm"]
    assert weather["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "WeatherFunction"}}]
    silent = found["WeatherSilentAlarm"]
    expression = next(metric for metric in silent["Metrics"] if metric.get("ReturnData"))
    assert expression["Expression"] == "FILL(runs, 0) - FILL(errors, 0)"
    assert (silent["Threshold"], silent["ComparisonOperator"], silent["TreatMissingData"]) == (
        1,
        "LessThanThreshold",
        "breaching",
    )
    # Three runs of rate(10 minutes) without one success.
    assert all(metric["MetricStat"]["Period"] == 1800 for metric in silent["Metrics"] if "MetricStat" in metric)
    assert found["ReleaseErrorsAlarm"]["Dimensions"][0]["Value"] == {"Ref": "ReleaseFunction"}
    for name, queue in (
        ("ScheduleDeadLetterAlarm", "ScheduleDeadLetterQueue"),
        ("EventsDeadLetterAlarm", "EventsDeadLetterQueue"),
    ):
        assert found[name]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]


def test_each_channel_alarms_on_its_dead_letter_queue_and_deliver_errors(
    main: dict[str, Any], channel: dict[str, Any]
) -> None:
    found = alarms(channel)
    assert set(found) == {"DeadLetterAlarm", "DeliverErrorsAlarm"}
    assert all(channel["Resources"][name]["Condition"] == "HasAlarmTopic" for name in found)
    dlq = found["DeadLetterAlarm"]
    # Received, not visible: the DeadLetters mapping takes each dead letter at once (infra/channel.yaml).
    assert (dlq["Namespace"], dlq["MetricName"], dlq["Statistic"]) == ("AWS/SQS", "NumberOfMessagesReceived", "Sum")
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]
    assert found["DeliverErrorsAlarm"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "DeliverFunction"}}]
    apps = [r for r in main["Resources"].values() if r["Type"] == "AWS::Serverless::Application"]
    assert len(apps) >= 10
    assert all(app["Properties"]["Parameters"]["AlarmTopicArn"] == {"Ref": "AlarmTopic"} for app in apps)


def test_the_local_stack_provisions_the_alarm_topic(deployment: Deployment) -> None:
    assert deployment.outputs["AlarmTopicArn"].startswith("arn:aws:sns:")
