"""Dead-letter queues: find a channel's queue and its DLQ from the publication topic, and move the DLQ's
messages back to the queue (`crieur dlq redrive --channel X`).

Nothing waits there for an operator: each channel's deliver function reads its own DLQ (the DeadLetters mapping
of infra/channel.yaml) and settles every dead letter by itself (crieur.delivery, `DeliveryWorker.dead_letter`).
Redrive is the operator's tool to give messages five new tries instead: with that mapping disabled during an
incident (the dead letters then stay), once the cause is fixed.

A channel's queue is the one subscribed to the topic with the filter policy naming that channel (the template
writes exactly one); its DLQ is the target of the queue's redrive policy. Both are found the same way on AWS
and on the local stack. Messages are moved by receive, send, delete in batches of 10, body and attributes
kept: each comes back with a fresh receive count, so it gets its five tries again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from crieur import aws

BATCH = 10


@dataclass(frozen=True)
class ChannelQueues:
    queue_url: str
    dead_letter_url: str


def _url_of(arn: str) -> str:
    *_, account, name = arn.split(":")
    return str(aws.sqs().get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


def channel_queues(topic_arn: str, channel: str) -> ChannelQueues:
    """The channel's queue and dead-letter queue. Raises LookupError when the channel has no queue."""
    sns, sqs = aws.sns(), aws.sqs()
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
    for subscription in (item for page in pages for item in page["Subscriptions"]):
        if subscription["Protocol"] != "sqs":
            continue
        attributes = sns.get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])["Attributes"]
        if json.loads(attributes.get("FilterPolicy") or "{}").get("channels") != [channel]:
            continue
        queue_url = _url_of(subscription["Endpoint"])
        queue = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])["Attributes"]
        target = json.loads(queue["RedrivePolicy"])["deadLetterTargetArn"]
        return ChannelQueues(queue_url, _url_of(target))
    raise LookupError(channel)


def redrive(source_url: str, destination_url: str) -> int:
    """Moves every message of `source_url` to `destination_url`; how many were moved."""
    sqs = aws.sqs()
    moved = 0
    while True:
        received = sqs.receive_message(
            QueueUrl=source_url,
            MaxNumberOfMessages=BATCH,
            MessageAttributeNames=["All"],
            VisibilityTimeout=60,
            WaitTimeSeconds=1,
        ).get("Messages", [])
        if not received:
            return moved
        entries: list[Any] = [
            {
                "Id": str(index),
                "MessageBody": message["Body"],
                **({"MessageAttributes": message["MessageAttributes"]} if message.get("MessageAttributes") else {}),
            }
            for index, message in enumerate(received)
        ]
        sent = sqs.send_message_batch(QueueUrl=destination_url, Entries=entries)
        delivered = {int(entry["Id"]) for entry in sent.get("Successful", [])}
        done: list[Any] = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(received)
            if index in delivered
        ]
        if done:
            sqs.delete_message_batch(QueueUrl=source_url, Entries=done)
        moved += len(done)
        if len(done) < len(received):
            failed = [entry.get("Message", entry.get("Code", "")) for entry in sent.get("Failed", [])]
            raise RuntimeError(f"{len(received) - len(done)} message(s) not moved: {failed}")
