"""Pay-per-use: estimates, exactly-once metering, the monthly usage report and budgets."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
import respx

from crieur import config
from crieur.billing import billing_month, default_prices
from crieur.models import utc_now
from tests.integration.conftest import Gateway, Stack
from tests.integration.test_lifecycle import providers
from tests.integration.test_pipeline import HOOK, INSTANCE, PUBLICATION, commune, publish

__all__ = ["commune", "providers"]
MONTH = billing_month(utc_now())


def usage(gateway: Gateway, insee: str, **params: str) -> Any:
    query = "&".join(f"{key}={value}" for key, value in {"month": MONTH, **params}.items())
    answer = gateway.call("GET", f"/v1/usage?{query}", insee)
    assert answer.status == 200, answer.body
    return answer.json if params.get("format") != "csv" else answer.body


def test_the_preview_estimate_is_what_the_month_then_bills(
    gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter
) -> None:
    providers.post(HOOK).respond(204)
    providers.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "1", "url": None})
    body = {"title": "Marché", "body": "Samedi matin."}
    estimate = gateway.call("POST", "/v1/previews", commune, {**PUBLICATION, **body}).json["cost_estimate_eur"]
    prices = default_prices()
    expected = prices.with_vat(prices.publication + prices.deliveries["webhook"] + prices.deliveries["mastodon"])
    assert Decimal(str(estimate)) == expected

    created = publish(gateway, commune, **body)
    assert created["cost_estimate_eur"] == estimate
    assert stack.deliver("webhook") == []
    assert stack.deliver("mastodon") == []
    report = usage(gateway, commune)
    assert report["total_ttc_eur"] == estimate
    assert {(line["unit"], line["channel"], line["quantity"]) for line in report["lines"]} == {
        ("publication", None, 1),
        ("delivery", "webhook", 1),
        ("delivery", "mastodon", 1),
    }
    shown = gateway.call("GET", f"/v1/publications/{created['id']}", commune).json
    assert (
        Decimal(str(shown["billed_ht_eur"]))
        == prices.publication + prices.deliveries["webhook"] + prices.deliveries["mastodon"]
    )


def test_a_redelivered_or_failed_delivery_is_not_billed_twice(
    gateway: Gateway, stack: Stack, commune: str, providers: respx.MockRouter
) -> None:
    providers.post(f"{INSTANCE}/api/v1/statuses").respond(json={"id": "2", "url": None})
    providers.post(HOOK).respond(400, json={"error": "refusé"})
    publish(gateway, commune)
    message = stack.receive("mastodon")
    stack.run_deliver("mastodon", [message])
    stack.run_deliver("mastodon", [message])  # SQS at-least-once
    stack.deliver("webhook")  # a permanent failure
    lines = usage(gateway, commune)["lines"]
    assert [(line["unit"], line["channel"], line["quantity"]) for line in lines if line["unit"] != "publication"] == [
        ("delivery", "mastodon", 1)
    ]


def test_concurrent_workers_bill_a_unit_exactly_once(commune: str, gateway: Gateway, stack: Stack) -> None:
    store = config.store()
    results: list[bool] = []

    def meter() -> None:
        results.append(
            store.meter(commune, "pub_concurrent", MONTH, unit="delivery", channel="x", unit_price=Decimal("0.02"))
        )

    threads = [threading.Thread(target=meter) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    # One usage line: the month is re-computed from the lines (moto's in-process counters are not atomic
    # under concurrent transactions, so the counter itself is checked by the serial tests).
    lines = [line for line in store.usage_lines(commune, MONTH) if line["publication_id"] == "pub_concurrent"]
    assert len(lines) == 1


def test_the_accountants_csv(gateway: Gateway, commune: str) -> None:
    config.store().meter(commune, "pub_csv", MONTH, unit="publication", channel=None, unit_price=Decimal("0.02"))
    text = usage(gateway, commune, format="csv")
    rows = [row.split(";") for row in text.strip().split("\r\n")]
    assert rows[0][:3] == ["Commune", "Mois", "Unité"]
    assert rows[1][2:] == ["Publication", "", "1", "0,0200", "0,0200"]
    assert rows[-1][2] == "Total TTC"
    assert rows[-1][-1] == "0,02"


def test_over_budget_news_is_refused_but_alerts_are_sent_and_flagged(gateway: Gateway, commune: str) -> None:
    store = config.store()
    store.set_budget(commune, Decimal("0.03"))
    store.meter(commune, "pub_earlier", MONTH, unit="publication", channel=None, unit_price=Decimal("0.02"))
    refused = gateway.call("POST", "/v1/publications", commune, PUBLICATION)
    assert refused.status == 402
    assert refused.json["cost_estimate_eur"] > 0
    assert refused.json["remaining_budget_eur"] == pytest.approx(0.01, abs=1e-9)
    assert "budget" in refused.json["detail"]
    alert = publish(gateway, commune, category="weather", urgency="high")
    assert alert["over_budget"] is True
    critical = publish(gateway, commune, urgency="critical")
    assert critical["over_budget"] is True
    assert usage(gateway, commune)["budget_eur"] == 0.03


def test_an_x_post_with_a_link_costs_what_x_charges_for_it() -> None:
    prices = default_prices()
    assert prices.delivery("x", "Conseil municipal jeudi") == ("delivery", prices.deliveries["x"])
    assert prices.delivery("x", "Le plan : https://mairie.example.fr/plan") == (
        "x_post_with_url",
        prices.x_post_with_url,
    )
    assert prices.delivery("mastodon", "https://mairie.example.fr") == ("delivery", prices.deliveries["mastodon"])
