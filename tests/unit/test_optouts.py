"""SES bounce/complaint notifications and inbound SMS, in the shapes AWS publishes them to SNS."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from crieur.optouts import Removal, apply, removals_in, ses_removals, sms_removals

MAIL = {
    "timestamp": "2026-11-27T08:00:00.000Z",
    "source": "Mairie de Rennes <info@rennes.example>",
    "sourceArn": "arn:aws:ses:eu-west-3:123456789012:identity/rennes.example",
    "sendingAccountId": "123456789012",
    "messageId": "0107018c0d1e2f3a-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-000000",
    "destination": ["habitant@example.org"],
    "headersTruncated": False,
    "tags": {"ses:configuration-set": ["crieur-email"]},
}


def bounce(kind: str, *addresses: str) -> str:
    return json.dumps(
        {
            "eventType": "Bounce",
            "bounce": {
                "bounceType": kind,
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {"emailAddress": address, "action": "failed", "status": "5.1.1", "diagnosticCode": "smtp; 550"}
                    for address in addresses
                ],
                "timestamp": "2026-11-27T08:00:02.669Z",
                "feedbackId": "0107018c-feedback-000000",
                "reportingMTA": "dsn; a1-2.smtp-out.eu-west-3.amazonses.com",
            },
            "mail": MAIL,
        }
    )


def test_a_permanent_bounce_unsubscribes_each_address() -> None:
    assert ses_removals(bounce("Permanent", "a@example.org", "b@example.org")) == [
        Removal("email", "a@example.org", "bounce"),
        Removal("email", "b@example.org", "bounce"),
    ]


@pytest.mark.parametrize("kind", ["Transient", "Undetermined"])
def test_a_full_mailbox_changes_nothing(kind: str) -> None:
    assert ses_removals(bounce(kind, "a@example.org")) == []


def test_a_complaint_unsubscribes() -> None:
    complaint = {
        "eventType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "habitant@example.org"}],
            "timestamp": "2026-11-27T09:00:00.000Z",
            "feedbackId": "0107018c-complaint-000000",
            "userAgent": "Mozilla/5.0",
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2026-11-27T08:59:00.000Z",
        },
        "mail": MAIL,
    }
    assert ses_removals(json.dumps(complaint)) == [Removal("email", "habitant@example.org", "complaint")]


def test_identity_notifications_are_read_too() -> None:
    notification = json.loads(bounce("Permanent", "a@example.org"))
    notification["notificationType"] = notification.pop("eventType")
    assert ses_removals(json.dumps(notification)) == [Removal("email", "a@example.org", "bounce")]


@pytest.mark.parametrize(
    "message",
    [
        json.dumps({"eventType": "Delivery", "delivery": {"recipients": ["a@example.org"]}, "mail": MAIL}),
        json.dumps({"eventType": "Send", "mail": MAIL}),
        "not json",
        "[]",
        json.dumps({"eventType": "Complaint", "complaint": {}}),
    ],
)
def test_other_notifications_change_nothing(message: str) -> None:
    assert ses_removals(message) == []


def inbound(body: str, keyword: str | None = None, number: str = "+33612345678") -> str:
    """The two-way messaging notification End User Messaging publishes to SNS."""
    return json.dumps(
        {
            "originationNumber": number,
            "destinationNumber": "+33756000000",
            "messageKeyword": keyword if keyword is not None else body.split(maxsplit=1)[0].upper(),
            "messageBody": body,
            "inboundMessageId": "cae173d2-66b9-564c-8309-21f858e9fb84",
            "previousPublishedMessageId": "wJ0ZLpmSMd9O6PNb8CnY6zrG7S9x8n3mvtdcH7d4eDcb",
        }
    )


@pytest.mark.parametrize("body", ["STOP", "stop", "Stop.", "ARRET", "Arrêt", "STOP SMS", "Désabonner"])
def test_stop_replies_unsubscribe_the_number(body: str) -> None:
    assert sms_removals(inbound(body)) == [Removal("sms", "+33612345678", "stop")]


def test_the_body_counts_when_the_keyword_is_not_one() -> None:
    assert sms_removals(inbound("stop", keyword="KEYWORD_DEFAULT")) == [Removal("sms", "+33612345678", "stop")]


@pytest.mark.parametrize("body", ["Merci", "Où est la salle ?", "Non stop", ""])
def test_other_replies_change_nothing(body: str) -> None:
    assert sms_removals(inbound(body, keyword="")) == []


def test_a_reply_without_a_number_changes_nothing() -> None:
    assert sms_removals(inbound("STOP", number="")) == []
    assert sms_removals("{}") == []
    assert sms_removals("STOP") == []


class FakeSubscribers:
    def __init__(self) -> None:
        self.removed: list[tuple[str, str, str]] = []

    def remove_address(self, medium: str, address: str, reason: str) -> int:
        self.removed.append((medium, address, reason))
        return 2  # subscribed in two communes


def test_apply_counts_the_subscriptions_removed() -> None:
    fake = FakeSubscribers()
    removals = ses_removals(bounce("Permanent", "a@example.org")) + sms_removals(inbound("STOP"))
    assert apply(cast("Any", fake), removals) == 4
    assert fake.removed == [("email", "a@example.org", "bounce"), ("sms", "+33612345678", "stop")]


def test_one_reader_for_both_topics() -> None:
    assert removals_in(bounce("Permanent", "a@example.org")) == [Removal("email", "a@example.org", "bounce")]
    assert removals_in(inbound("STOP")) == [Removal("sms", "+33612345678", "stop")]
    assert removals_in(inbound("Merci", keyword="")) == []
