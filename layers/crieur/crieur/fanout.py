"""SNS publisher: one message per publication action, routed to channel queues by its `channels` attribute;
and a channel's own queue, where a delivery to many recipients queues its chunk messages."""

from __future__ import annotations

import json
from typing import Protocol

from crieur import aws
from crieur.models import FanoutMessage


class Fanout(Protocol):
    def send(self, message: FanoutMessage, channels: list[str]) -> None: ...


CARRIED_BYTES = 200_000
"""A message carries its publication up to this size (SNS takes 256 KB with the attributes; a publication with
long overrides for every channel may not fit)."""


class SnsFanout:
    def __init__(self, topic_arn: str) -> None:
        self.topic_arn = topic_arn

    def send(self, message: FanoutMessage, channels: list[str]) -> None:
        body = message.model_dump_json(exclude_none=True)
        if len(body.encode()) > CARRIED_BYTES:  # the deliveries read the publication instead
            body = message.model_copy(update={"publication": None}).model_dump_json(exclude_none=True)
        aws.sns().publish(
            TopicArn=self.topic_arn,
            Message=body,
            MessageAttributes={
                # Exact-match filter policies on this String.Array pick each channel's queue.
                "channels": {"DataType": "String.Array", "StringValue": json.dumps(sorted(channels))},
                "action": {"DataType": "String", "StringValue": message.action},
            },
        )


class ChunkQueue(Protocol):
    def send(self, messages: list[FanoutMessage]) -> None: ...


SQS_BATCH = 10
"""SendMessageBatch takes at most ten messages."""


class SqsChunkQueue:
    """The deliver function's own queue (CRIEUR_QUEUE_URL)."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, messages: list[FanoutMessage]) -> None:
        """Queues every message, ten to a call; raises when SQS refused any (the caller retries them all)."""
        for start in range(0, len(messages), SQS_BATCH):
            entries = [
                {"Id": str(index), "MessageBody": message.model_dump_json(exclude_none=True)}
                for index, message in enumerate(messages[start : start + SQS_BATCH])
            ]
            refused = aws.sqs().send_message_batch(QueueUrl=self.queue_url, Entries=entries).get("Failed", [])  # type: ignore[arg-type]
            if refused:
                codes = ", ".join(sorted({str(entry.get("Code")) for entry in refused}))
                raise RuntimeError(f"SQS refused {len(refused)} chunk message(s): {codes}")
