"""Credentials never travel further than the call that needs them.

Some providers echo the token they were given in their error messages ("The access token abc… is invalid").
A provider's error becomes a delivery's error (stored, shown by the API), a log line, a channel's reconnect
reason and an event sent to the commune's endpoints: `secrets_hidden` masks every credential value in a
ChannelError as it leaves the block where the credentials were opened, before any of those sees it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

from crieur.channels.base import ChannelError

MASK = "[secret masqué]"
MIN_SECRET_LENGTH = 6
"""Shorter values (a port, "true") would mask ordinary words and are no secret anyway."""


def secret_values(credentials: Mapping[str, Any] | None) -> list[str]:
    """Every string in the credentials, JSON documents (a service account) included, longest first."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            found.append(value)
            found.extend(part for part in value.split() if len(part) >= MIN_SECRET_LENGTH and part != value)
            if value.lstrip().startswith("{"):
                with suppress(ValueError):
                    walk(json.loads(value))

    walk(credentials or {})
    return sorted(set(found), key=len, reverse=True)


def scrub(text: str | None, secrets: list[str]) -> str | None:
    if not text:
        return text
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


@contextmanager
def secrets_hidden(secrets: list[str] | None = None) -> Iterator[list[str]]:
    """Yields a list the block fills with the secrets it opens; a ChannelError leaving it is masked."""
    opened: list[str] = [] if secrets is None else secrets
    try:
        yield opened
    except ChannelError as error:
        if opened:
            error.message = scrub(error.message, opened) or ""
            error.provider_message = scrub(error.provider_message, opened)
            error.args = (f"{error.code}: {error.message}",)
        raise
