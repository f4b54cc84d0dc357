"""One channel's worker: an SQS batch of publication actions, partial batch failures reported."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from crieur import aws, config
from crieur.channels import ADAPTERS
from crieur.delivery import DeliveryWorker
from crieur.fanout import SqsChunkQueue
from crieur.models import FanoutMessage

logger = Logger()
metrics = Metrics()
# Every failure is reported per record (with its own visibility), never as a failed invocation.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class RetryLater(Exception):
    """Leaves the record on the queue; its visibility was set to the wait the worker chose."""


@cache
def worker() -> DeliveryWorker:
    channel = os.environ["CHANNEL"]
    if channel not in ADAPTERS:
        raise RuntimeError(f"CHANNEL={channel!r} has no adapter")
    metrics.set_default_dimensions(channel=channel)
    return DeliveryWorker(
        store=config.store(),
        vault=config.vault(),
        channel=channel,
        http=config.http,
        chunks=SqsChunkQueue(os.environ["CRIEUR_QUEUE_URL"]),
        max_receive_count=int(os.environ.get("CRIEUR_MAX_RECEIVE_COUNT", "5")),
        retry_base_seconds=int(os.environ.get("CRIEUR_RETRY_BASE_SECONDS", "10")),
        lease_seconds=int(os.environ.get("CRIEUR_LEASE_SECONDS", "60")),
        events=config.events(),
    )


def record_handler(record: SQSRecord) -> None:
    message = FanoutMessage.model_validate_json(record.body)
    receive_count = int(record.attributes.approximate_receive_count)
    # The channel's DLQ is mapped to this function too: there the delivery ends (failed, or sent when found).
    dead = record.event_source_arn == os.environ.get("CRIEUR_DEAD_LETTER_QUEUE_ARN")
    retry = worker().dead_letter(message, receive_count) if dead else worker().handle(message, receive_count)
    if retry is None:
        metrics.add_metric(name="DeliveriesSettled", unit=MetricUnit.Count, value=1)
        return
    metrics.add_metric(name="DeliveriesRetried", unit=MetricUnit.Count, value=1)
    if dead:  # no visibility change on the DLQ (receive and delete only): back after its visibility timeout
        raise RetryLater(f"{message.publication_id}: dead letter, {retry.reason}")
    aws.sqs().change_message_visibility(
        QueueUrl=os.environ["CRIEUR_QUEUE_URL"],
        ReceiptHandle=record.receipt_handle,
        VisibilityTimeout=retry.after_seconds,
    )
    raise RetryLater(f"{message.publication_id}: {retry.reason}, back in {retry.after_seconds}s")


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(  # type: ignore[return-value]
        event=event, record_handler=record_handler, processor=processor, context=context
    )
