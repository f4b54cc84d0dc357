"""Unsubscriptions the providers ask for, through SNS: SES bounces and complaints (the email channel's
configuration set), and STOP replies to the communes' SMS (End User Messaging two-way messaging)."""

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
    removals = [removal for record in event.records for removal in optouts.removals_in(record.sns.message)]
    removed = optouts.apply(config.subscribers(), removals)
    metrics.add_metric(name="SubscriptionsRemoved", unit=MetricUnit.Count, value=removed)
    # Counts only: the notifications carry addresses and numbers, never logged.
    logger.info("opt-outs", extra={"asked": len(removals), "subscriptions_removed": removed})
    return {"removed": removed}
