"""Weather poller (rate(10 minutes)): official vigilance → alert publications for the communes that opted in."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from crieur import config
from crieur.weather.broadcast import WeatherAlerts

if TYPE_CHECKING:
    from crieur.service import PublicationService

logger = Logger()
metrics = Metrics()


@cache
def publications() -> PublicationService:
    """The publishing use case, loaded by the first tick that publishes or retracts an alert (most ticks do not)."""
    from crieur.service import PublicationService

    return PublicationService(
        store=config.store(), fanout=config.fanout(), vault=config.vault(), http=config.http, events=config.events()
    )


@cache
def alerts() -> WeatherAlerts:
    return WeatherAlerts(store=config.store(), publications=publications, sources=config.vigilance_sources)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = alerts().tick()
    metrics.add_metric(name="VigilanceSourceErrors", unit=MetricUnit.Count, value=len(report.errors))
    metrics.add_metric(name="WeatherAlertsPublished", unit=MetricUnit.Count, value=len(report.published))
    if report.source is None:
        metrics.add_metric(name="VigilanceUnavailable", unit=MetricUnit.Count, value=1)
    return {"source": report.source, "events": report.events, "published": report.published, "errors": report.errors}
