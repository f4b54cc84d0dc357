"""Cost per publication on AWS, and a typical commune's month, from measured calls and a unit-price table.

Calls, transaction sizes and handler durations come from bench_aws_calls (measured in the same run); prices
from benchmarks/unit_prices.json (sources and date there). Assumptions, stated because they move the result:

- a typical commune publishes PUBLICATIONS_PER_MONTH times a month on CHANNELS_PER_PUBLICATION channels;
- publications are days apart, so every invocation starts cold: the cold figures (import included, KMS
  decrypt, SSM read) are used;
- durations are those measured here against moto (x86, local); Lambda bills them at 512 MB (template.yaml);
- a delivery message costs three SQS requests (SNS's send, the poller's receive and delete); a DynamoDB query
  of a publication reads 2 units, a get 1, a plain write 1 unit, a transaction item 2 (small items);
- the weather poller runs every 10 minutes (4,320 ticks a month) once per deployment, shared by COMMUNES
  communes, as are the KMS key and the queues' idle polling (Lambda's pollers: ~5 long polls every 20 s).
Free tiers are ignored (a deployment for many communes is past them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from benchmarks import Row, row
from benchmarks.bench_aws_calls import Phase, measure

NAME = "cost"
PRICES = Path(__file__).resolve().parent / "unit_prices.json"
MEMORY_GB = 0.5
PUBLICATIONS_PER_MONTH = 30
CHANNELS_PER_PUBLICATION = 8
WEATHER_TICKS_PER_MONTH = 6 * 24 * 30
COMMUNES = 100
QUEUES = 13
IDLE_RECEIVES_PER_QUEUE_MONTH = 5 * 3 * 60 * 24 * 30
SQS_REQUESTS_PER_DELIVERY = 3


class Prices:
    def __init__(self, path: Path = PRICES) -> None:
        table = json.loads(path.read_text(encoding="utf-8"))
        self.factor = float(table["region_factor"])
        self.eur = float(table["usd_to_eur"])
        self.usd = {name: float(entry["usd"]) for name, entry in table["prices"].items()}

    def __getitem__(self, name: str) -> float:
        return self.usd[name] * self.factor


def invocation_cost(prices: Prices, phase: Phase) -> dict[str, float]:
    """USD by service for what one invocation of `phase` did (averaged over its invocations)."""
    each = max(1, phase.invocations)
    calls = phase.calls
    writes = sum(n for op, n in calls.items() if op.split(".")[1] in ("PutItem", "UpdateItem", "DeleteItem"))
    reads = calls["dynamodb.GetItem"] + 2 * calls["dynamodb.Query"]
    return {
        "lambda": prices["lambda_request"] + phase.seconds / each * MEMORY_GB * prices["lambda_arm64_gb_second"],
        "dynamodb": (
            (writes + 2 * phase.transact_items) * prices["dynamodb_write_request_unit"]
            + reads * prices["dynamodb_read_request_unit"]
        )
        / each,
        "sns": calls["sns.Publish"] / each * prices["sns_publish"],
        "sqs": (calls["sqs.SendMessage"] + calls["sqs.ChangeMessageVisibility"]) / each * prices["sqs_request"],
        "kms": (calls["kms.Decrypt"] + calls["kms.Encrypt"]) / each * prices["kms_request"],
        "s3": (
            (calls["s3.PutObject"] + calls["s3.ListObjectsV2"]) * prices["s3_put"]
            + (calls["s3.GetObject"] + calls["s3.HeadObject"]) * prices["s3_get"]
        )
        / each,
    }


def total(costs: Iterable[dict[str, float]]) -> dict[str, float]:
    summed: dict[str, float] = {}
    for cost in costs:
        for service, usd in cost.items():
            summed[service] = summed.get(service, 0.0) + usd
    return summed


def publication_cost(prices: Prices, phases: dict[str, Phase]) -> dict[str, float]:
    """One publication on CHANNELS_PER_PUBLICATION channels, cold containers: API request, authorizer, api,
    and the average channel's delivery times the channel count."""
    delivers = [phase for label, phase in phases.items() if label.startswith("cold deliver ")]
    average = total(invocation_cost(prices, phase) for phase in delivers)
    per_channel = {service: usd / len(delivers) for service, usd in average.items()}
    per_channel["sqs"] = per_channel.get("sqs", 0.0) + SQS_REQUESTS_PER_DELIVERY * prices["sqs_request"]
    parts = [
        {"apigateway": prices["apigateway_http_request"]},
        invocation_cost(prices, phases["cold authorizer"]),
        invocation_cost(prices, phases["cold api"]),
        {service: usd * CHANNELS_PER_PUBLICATION for service, usd in per_channel.items()},
    ]
    return total(parts)


def weather_month(prices: Prices, phases: dict[str, Phase]) -> float:
    tick = total([invocation_cost(prices, phases["warm weather"]), {"scheduler": prices["scheduler_invocation"]}])
    return sum(tick.values()) * WEATHER_TICKS_PER_MONTH


def fixed_month(prices: Prices) -> float:
    return prices["kms_key_month"] + QUEUES * IDLE_RECEIVES_PER_QUEUE_MONTH * prices["sqs_request"]


def run() -> list[Row]:
    prices = Prices()
    phases = measure()
    publication = publication_cost(prices, phases)
    per_publication = sum(publication.values())
    weather = weather_month(prices, phases)
    fixed = fixed_month(prices)
    month = PUBLICATIONS_PER_MONTH * per_publication + (weather + fixed) / COMMUNES

    def eur(usd: float) -> float:
        return usd * prices.eur

    return [
        row(NAME, f"per publication ({CHANNELS_PER_PUBLICATION} channels, cold)", eur(per_publication) * 1000, "m€"),
        *(
            row(NAME, f"per publication: {service}", eur(usd) * 1000, "m€")
            for service, usd in sorted(publication.items(), key=lambda item: -item[1])
        ),
        row(NAME, "weather poller, per deployment", eur(weather), "€/month"),
        row(NAME, "fixed (KMS key, queues' idle polling), per deployment", eur(fixed), "€/month"),
        row(
            NAME,
            f"typical commune month ({PUBLICATIONS_PER_MONTH} publications, 1/{COMMUNES} of weather and fixed)",
            eur(month),
            "€",
        ),
    ]
