"""SNS publisher: one message per publication action, routed to channel queues by its `channels` attribute."""

from __future__ import annotations

import json
from typing import Protocol

from crieur import aws
from crieur.models import FanoutMessage


class Fanout(Protocol):
    def send(self, message: FanoutMessage, channels: list[str]) -> None: ...


class SnsFanout:
    def __init__(self, topic_arn: str) -> None:
        self.topic_arn = topic_arn

    def send(self, message: FanoutMessage, channels: list[str]) -> None:
        aws.sns().publish(
            TopicArn=self.topic_arn,
            Message=message.model_dump_json(),
            MessageAttributes={
                # Exact-match filter policies on this String.Array pick each channel's queue.
                "channels": {"DataType": "String.Array", "StringValue": json.dumps(sorted(channels))},
                "action": {"DataType": "String", "StringValue": message.action},
            },
        )
