"""Pay-per-use: the price list, what each unit costs, and the estimates shown before publishing.

Prices are excluding VAT (HT), in euros, with four decimals; the VAT is applied to a total, rounded to
the cent. The list is one JSON document: the one in this package, or the deployment's own in SSM
(`CRIEUR_PRICE_LIST_PARAMETER`), read with powertools parameters and cached for five minutes.
A delivery to X costs more when the post carries a URL (X's own per-post pricing, reference/channels.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict

from crieur.models import PARIS, ChannelName
from crieur.render.text import url_spans

Unit = Literal["publication", "delivery", "x_post_with_url", "sms_part", "email", "push_message", "webpush_message"]
CENT = Decimal("0.01")
RECIPIENT_UNITS: dict[str, Unit] = {"webpush": "webpush_message", "sms": "sms_part", "email": "email"}
"""What one recipient costs on the channels that reach many (an SMS costs one unit per part)."""
PRICE_CACHE_SECONDS = 300


class PriceList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: Literal["EUR"] = "EUR"
    vat_rate: Decimal
    publication: Decimal
    deliveries: dict[ChannelName, Decimal]
    x_post_with_url: Decimal
    sms_part: Decimal
    email: Decimal
    push_message: Decimal
    webpush_message: Decimal

    def delivery(self, channel: str, text: str | None) -> tuple[Unit, Decimal]:
        """The unit and price of one post on a channel (an X post carrying a URL is its own unit)."""
        if channel == "x" and text and url_spans(text):
            return "x_post_with_url", self.x_post_with_url
        return "delivery", self.deliveries.get(channel, Decimal(0))  # type: ignore[call-overload]

    def per_recipient(self, channel: str) -> tuple[Unit, Decimal]:
        """The unit and price of what a channel reaching many recipients bills per recipient."""
        unit = RECIPIENT_UNITS[channel]
        prices = {"webpush_message": self.webpush_message, "sms_part": self.sms_part, "email": self.email}
        return unit, prices[unit]

    def with_vat(self, amount_ht: Decimal) -> Decimal:
        return (amount_ht * (1 + self.vat_rate)).quantize(CENT, rounding=ROUND_HALF_UP)


def default_prices() -> PriceList:
    return PriceList.model_validate_json(resources.files("crieur").joinpath("prices.json").read_text())


_price_list_missing_until: dict[str, float] = {}
"""Parameter name → until when (monotonic) its absence is cached, like a value: without it, every delivery
of a deployment without a price list parameter would ask SSM again (one more AWS call per delivery)."""


def price_list() -> PriceList:
    """The deployment's price list (SSM, cached five minutes), else the one shipped with Crieur."""
    name = os.environ.get("CRIEUR_PRICE_LIST_PARAMETER")
    if not name or _price_list_missing_until.get(name, 0.0) > time.monotonic():
        return default_prices()
    from aws_lambda_powertools.utilities.parameters import GetParameterError

    from crieur import aws

    try:
        return PriceList.model_validate_json(str(aws.parameters().get(name, max_age=PRICE_CACHE_SECONDS)))
    except GetParameterError:
        _price_list_missing_until[name] = time.monotonic() + PRICE_CACHE_SECONDS
        return default_prices()


def billing_month(moment: datetime) -> str:
    """The month a unit is billed in, as the mairie's calendar says (Paris time)."""
    return f"{moment.astimezone(PARIS):%Y-%m}"


def estimate(
    prices: PriceList, texts: Mapping[ChannelName, str | None], units: Mapping[ChannelName, int] | None = None
) -> Decimal:
    """TTC estimate for one publication reaching these channels (channel → the text it will carry); a channel
    reaching many recipients is priced by `units` (channel → its billable units: SMS parts × subscribers…)."""
    units = units or {}
    total = prices.publication + sum(
        (
            prices.per_recipient(channel)[1] * units[channel] if channel in units else prices.delivery(channel, text)[1]
            for channel, text in texts.items()
        ),
        start=Decimal(0),
    )
    return prices.with_vat(total)
