"""Every place a commune (or a visitor) gives Crieur an address to call, through the API: a private, loopback or
link-local target is refused, at input or when Crieur would call it, as a French answer and never a request.
(Media URLs and Web Push endpoints: tests/unit/test_ssrf.py and tests/integration/test_webpush.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Gateway

TARGETS = ["https://169.254.169.254", "https://[::1]", "https://10.0.0.1", "https://[::ffff:127.0.0.1]"]
CHANNELS: dict[str, Any] = {
    "webhook": lambda url: {"settings": {"url": f"{url}/hook"}, "credentials": {"secret": "whsec_" + "A" * 44}},
    "mastodon": lambda url: {"settings": {"instance_url": url}, "credentials": {"access_token": "tok"}},
    "wordpress": lambda url: {
        "settings": {"site_url": url, "username": "mairie"},
        "credentials": {"application_password": "abcd efgh ijkl mnop qrst uvwx"},
    },
    "bluesky": lambda url: {
        "settings": {"handle": "mairie.bsky.social", "pds_url": url},
        "credentials": {"app_password": "abcd-efgh-ijkl-mnop"},
    },
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_a_channel_aimed_at_a_private_address_never_calls_it(gateway: Gateway, channel: str, target: str) -> None:
    insee = gateway.new_commune()
    put = gateway.call("PUT", f"/v1/channels/{channel}", insee, CHANNELS[channel](target))
    if put.status == 422:  # refused at input: fine, and said in French on the field
        assert put.json["errors"], put.body
        return
    assert put.status == 200, put.body
    check = gateway.call("POST", f"/v1/channels/{channel}/test", insee)
    assert check.status == 200, check.body
    assert check.json["ok"] is False
    assert "refusée" in check.json["message"], check.json


@pytest.mark.parametrize("target", TARGETS)
def test_an_event_endpoint_on_a_private_address_is_refused(gateway: Gateway, target: str) -> None:
    insee = gateway.new_commune()
    answer = gateway.call(
        "POST", "/v1/event-endpoints", insee, {"url": f"{target}/events", "events": ["delivery.failed"]}
    )
    assert answer.status == 422
    assert answer.json["errors"][0]["field"] == "url"
