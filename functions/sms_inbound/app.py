"""Replies to the commune's SMS (End User Messaging two-way → SNS → here): STOP unsubscribes the number."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import SNSEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from crieur import config, optouts

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
@event_source(data_class=SNSEvent)
def lambda_handler(event: SNSEvent, context: LambdaContext) -> dict[str, Any]:
    removals = [removal for record in event.records for removal in optouts.sms_removals(record.sns.message)]
    removed = optouts.apply(config.subscribers(), removals)
    metrics.add_metric(name="PhoneNumbersUnsubscribed", unit=MetricUnit.Count, value=removed)
    logger.info("sms replies", extra={"stops": len(removals), "subscriptions_removed": removed})
    return {"removed": removed}
