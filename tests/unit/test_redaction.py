"""Credentials are masked in the provider errors that echo them back."""

import json

import pytest

from crieur.channels.base import PermanentChannelError
from crieur.redaction import MASK, secret_values, secrets_hidden


def test_every_credential_string_is_a_secret_json_documents_included() -> None:
    account = json.dumps({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEabc\n"})
    found = secret_values({"access_token": "tok_123456", "service_account_json": account, "port": "443"})
    assert "tok_123456" in found
    assert account in found
    assert "-----BEGIN PRIVATE KEY-----\nMIIEabc\n" in found
    assert "443" not in found
    assert found == sorted(found, key=len, reverse=True)


def test_a_channel_error_leaving_the_block_is_masked() -> None:
    def refused() -> None:
        with secrets_hidden(secret_values({"access_token": "tok_123456"})):
            raise PermanentChannelError("rejected", "refus : token tok_123456 invalide", "token tok_123456 invalide")

    with pytest.raises(PermanentChannelError) as raised:
        refused()
    assert raised.value.message == f"refus : token {MASK} invalide"
    assert raised.value.provider_message == f"token {MASK} invalide"
    assert "tok_123456" not in str(raised.value)


def test_other_errors_pass_through_untouched() -> None:
    with pytest.raises(KeyError), secrets_hidden(["tok_123456"]):
        raise KeyError("x")
