"""A deployment without a price list parameter asks SSM once per cache period, not once per delivery."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities import parameters

from crieur import aws, billing


class MissingParameters:
    """SSM without the parameter: every read is recorded, then refused as powertools refuses it."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get(self, name: str, **_: object) -> str:
        self.asked.append(name)
        raise parameters.GetParameterError("ParameterNotFound")


def test_a_missing_price_list_parameter_is_cached_like_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    ssm = MissingParameters()
    asked = ssm.asked
    monkeypatch.setattr(aws, "parameters", lambda: ssm)
    monkeypatch.setenv("CRIEUR_PRICE_LIST_PARAMETER", "/crieur/test-missing-prices")
    monkeypatch.setattr(billing, "_price_list_missing_until", {})
    first, second = billing.price_list(), billing.price_list()
    assert first == second == billing.default_prices()
    assert asked == ["/crieur/test-missing-prices"]

    clock = billing.time.monotonic() + billing.PRICE_CACHE_SECONDS + 1
    monkeypatch.setattr(billing.time, "monotonic", lambda: clock)
    billing.price_list()
    assert len(asked) == 2  # asked again once the period is over
