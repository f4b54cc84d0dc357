"""The SNS message carries its publication when it fits (its deliveries then do not read it: ARCHITECTURE.md
§8), and goes without it when it does not (SNS takes 256 KB): the deliveries read it then."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crieur import aws, fanout
from crieur.models import ChannelOverride, Delivery, FanoutMessage, Publication, utc_now

SIX_CHANNELS = ("mastodon", "facebook", "x", "bluesky", "webhook", "wordpress")


class Sns:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **call: Any) -> None:
        self.published.append(call)


def publication(overrides: dict[str, str]) -> Publication:
    now = utc_now()
    return Publication(
        title="Inondations",
        body="Évacuation du quartier des Prés : rendez-vous au gymnase.",
        id="pub_1",
        commune="35238",
        status="publishing",
        created_at=now,
        channels=list(overrides) or ["mastodon"],  # type: ignore[arg-type]
        overrides={channel: ChannelOverride(text=text) for channel, text in overrides.items()},  # type: ignore[misc]
        deliveries={channel: Delivery(status="pending", updated_at=now) for channel in overrides or ["mastodon"]},
    )


@pytest.mark.parametrize(
    ("overrides", "carried"),
    [
        ({}, True),
        # Overrides of 10,000 characters of four bytes each for six channels (up to twelve may have one).
        ({channel: "🌊" * 10_000 for channel in SIX_CHANNELS}, False),
    ],
    ids=["a publication", "one too long for SNS"],
)
def test_the_message_carries_its_publication_when_it_fits(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str], carried: bool
) -> None:
    sns = Sns()
    monkeypatch.setattr(aws, "sns", lambda: sns)
    sent = publication(overrides)
    fanout.SnsFanout("arn:aws:sns:eu-west-3:123456789012:crieur").send(
        FanoutMessage(commune="35238", publication_id="pub_1", publication=sent), ["mastodon"]
    )
    [call] = sns.published
    assert len(call["Message"].encode()) < 256 * 1024
    body = FanoutMessage.model_validate(json.loads(call["Message"]))
    assert (body.commune, body.publication_id) == ("35238", "pub_1")
    assert body.publication == (sent if carried else None)


def test_a_carried_publication_this_version_cannot_read_is_dropped_not_fatal() -> None:
    """During a deployment, a newer API may send a field this worker does not know: the message still reads,
    without its copy (the delivery reads the publication)."""
    carried = json.loads(publication({}).model_dump_json()) | {"a_field_of_a_newer_version": 1}
    message = FanoutMessage.model_validate({"commune": "35238", "publication_id": "pub_1", "publication": carried})
    assert (message.publication_id, message.publication) == ("pub_1", None)
