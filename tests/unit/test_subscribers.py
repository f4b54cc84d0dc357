import pytest
from pydantic import ValidationError

from crieur.errors import InvalidInput
from crieur.subscribers import (
    SubscriberRecord,
    SubscriptionRequest,
    UnsubscribeRequest,
    confirmation_page,
    disposable_domains,
    normalise_email,
    normalise_phone,
    subscriber_id,
    unsubscribe_form_page,
)


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("06.12.34.56.78", "+33612345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("0033612345678", "+33612345678"),
        ("07 81 23 45 67", "+33781234567"),
        ("0692 12 34 56", "+262692123456"),  # La Réunion
        ("+590 690 12 34 56", "+590690123456"),  # Guadeloupe
    ],
)
def test_french_mobiles_are_normalised_to_e164(written: str, e164: str) -> None:
    assert normalise_phone(written, allow_foreign=False) == e164


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("01 23 45 67 89", "mobile"),  # a landline
        ("06 12 34", "n'existe pas"),
        ("bonjour", "illisible"),
        ("+44 7400 123456", "numéros français"),
        ("+33 6 12", "n'existe pas"),
    ],
)
def test_bad_numbers_are_refused_naming_the_field(written: str, words: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise_phone(written, allow_foreign=False)
    [(field, message)] = refused.value.errors
    assert field == "phone"
    assert words in message
    assert written not in message


def test_foreign_mobiles_when_allowed() -> None:
    assert normalise_phone("+44 7400 123456", allow_foreign=True) == "+447400123456"
    assert normalise_phone("+49 1512 3456789", allow_foreign=True) == "+4915123456789"


def test_emails_are_lower_cased_and_disposable_domains_refused() -> None:
    assert normalise_email("Jeanne.Martin@Example.FR") == "jeanne.martin@example.fr"
    for disposable in ("x@yopmail.com", "x@YOPMAIL.FR", "x@inbox.mailinator.com", "x@jetable.org"):
        with pytest.raises(InvalidInput) as refused:
            normalise_email(disposable)
        [(field, message)] = refused.value.errors
        assert field == "email"
        assert "jetables" in message
    with pytest.raises(InvalidInput):
        normalise_email("jeanne@")
    assert "gmail.com" not in disposable_domains()
    assert "mailinator.com" in disposable_domains()


def test_a_request_needs_an_address_and_a_consent_version() -> None:
    with pytest.raises(ValidationError, match="numéro de mobile"):
        SubscriptionRequest(consent_version="2026-11")
    with pytest.raises(ValidationError):
        SubscriptionRequest.model_validate({"phone": "0612345678"})
    with pytest.raises(ValidationError):
        SubscriptionRequest.model_validate({"phone": "0612345678", "consent_version": "v1", "nom": "x"})
    with pytest.raises(ValidationError, match="désinscrire"):
        UnsubscribeRequest()


def test_validation_errors_do_not_echo_the_address() -> None:
    with pytest.raises(ValidationError) as refused:
        SubscriptionRequest.model_validate({"email": "secret-personne@", "consent_version": "v1"})
    assert "secret-personne" not in str(refused.value)


def test_subscriber_ids_are_stable_per_commune() -> None:
    assert subscriber_id("35238", "ab" * 32) == subscriber_id("35238", "ab" * 32)
    assert subscriber_id("35238", "ab" * 32) != subscriber_id("35047", "ab" * 32)
    assert subscriber_id("35238", "ab" * 32).startswith("sub_")


def record(**fields: object) -> SubscriberRecord:
    base: dict[str, object] = {
        "id": "sub_x",
        "medium": "sms",
        "status": "pending",
        "lookup": "00",
        "sealed": b"",
        "unsubscribe_hash": "h",
        "categories": ("alert",),
        "consent_version": "v1",
        "consent_at": "2026-11-27T00:00:00+00:00",
        "created_at": "2026-11-27T00:00:00+00:00",
    }
    return SubscriberRecord(**{**base, **fields})  # type: ignore[arg-type]


def test_only_unconfirmed_subscriptions_expire() -> None:
    assert record(pending_until=100, secret_hash="s").ttl == 100
    assert record(status="confirmed", pending_until=100, secret_hash="s").ttl is None
    assert record(pending_until=100, secret_hash="s").pending_valid(99)
    assert not record(pending_until=100, secret_hash="s").pending_valid(100)
    assert not record(pending_until=100).pending_valid(0)


def test_pages_are_french_and_the_unsubscribe_link_only_shows_a_button() -> None:
    assert '<html lang="fr">' in confirmation_page(True)
    assert "Inscription confirmée" in confirmation_page(True)
    assert "expiré" in confirmation_page(False)
    page = unsubscribe_form_page('sms.sub_x.<script>"')
    assert '<form method="post"' in page
    assert "<script>" not in page
