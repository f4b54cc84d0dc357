import pytest

from crieur.outbound import check_public_host
from crieur.security import (
    ForbiddenTarget,
    InvalidSignature,
    hash_api_key,
    new_api_key,
    new_webhook_secret,
    verify_webhook,
    webhook_headers,
    webhook_signature,
)


def test_standard_webhooks_reference_vector() -> None:
    # The example of the Standard Webhooks specification.
    signature = webhook_signature(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signed_message_verifies_and_tampering_does_not() -> None:
    secret = new_webhook_secret()
    headers = webhook_headers(secret, "msg_1", b'{"a":1}', timestamp=1_000_000)
    verify_webhook([secret], headers, b'{"a":1}', now=1_000_100)
    with pytest.raises(InvalidSignature, match="signature"):
        verify_webhook([secret], headers, b'{"a":2}', now=1_000_100)
    with pytest.raises(InvalidSignature, match="5 minutes"):
        verify_webhook([secret], headers, b'{"a":1}', now=1_000_000 + 301)


def test_rotation_accepts_either_secret() -> None:
    old, new = new_webhook_secret(), new_webhook_secret()
    headers = webhook_headers(old, "msg_2", b"{}", timestamp=50)
    verify_webhook([new, old], headers, b"{}", now=60)
    with pytest.raises(InvalidSignature):
        verify_webhook([new], headers, b"{}", now=60)


def test_api_keys_are_random_and_stored_hashed() -> None:
    first, second = new_api_key(), new_api_key()
    assert first.key != second.key
    assert first.key_hash == hash_api_key(first.key)
    assert first.key not in first.key_hash
    assert new_api_key("chosen-key").key == "chosen-key"


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "10.1.2.3", "192.168.0.10", "169.254.169.254", "::1", "::ffff:127.0.0.1"]
)
def test_private_and_local_addresses_are_refused(host: str) -> None:
    with pytest.raises(ForbiddenTarget):
        check_public_host(host, 443)


def test_public_address_is_allowed() -> None:
    check_public_host("93.184.215.14", 443)
