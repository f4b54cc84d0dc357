"""Events worker: an SQS batch of status events → signed POSTs to the communes' endpoints, partial batch
failures reported (an event still owed to an endpoint comes back after its backoff)."""

from __future__ import annotations

import math
import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from crieur import aws, config
from crieur.eventhooks.worker import EventDispatcher
from crieur.events import EventBatch

logger = Logger()
metrics = Metrics()
# Every failure is reported per record (with its own visibility), never as a failed invocation.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class RetryLater(Exception):
    """Leaves the record on the queue; its visibility was set to the backoff the worker chose."""


@cache
def dispatcher() -> EventDispatcher:
    return EventDispatcher(
        store=config.store(),
        vault=config.vault(),
        http=config.http,
        max_receive_count=int(os.environ.get("CRIEUR_EVENTS_MAX_RECEIVE_COUNT", "8")),
        retry_base_seconds=int(os.environ.get("CRIEUR_EVENTS_RETRY_BASE_SECONDS", "30")),
    )


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    batch = EventBatch.model_validate_json(record.body)
    receive_count = int(record.attributes.approximate_receive_count)

    def time_left() -> float:
        return lambda_context.get_remaining_time_in_millis() / 1000 if lambda_context else math.inf

    retry = dispatcher().handle(batch, receive_count, time_left)
    if retry is None:
        metrics.add_metric(name="EventsSettled", unit=MetricUnit.Count, value=len(batch.events))
        return
    metrics.add_metric(name="EventsRetried", unit=MetricUnit.Count, value=1)
    # Its own queue's URL comes from the environment: no GetQueueUrl call (nor its permission) needed.
    aws.sqs().change_message_visibility(
        QueueUrl=config.required("CRIEUR_EVENTS_QUEUE_URL"),
        ReceiptHandle=record.receipt_handle,
        VisibilityTimeout=retry.after_seconds,
    )
    raise RetryLater(f"{[event.id for event in batch.events]}: {retry.reason}, back in {retry.after_seconds}s")


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(  # type: ignore[return-value]
        event=event, record_handler=record_handler, processor=processor, context=context
    )
