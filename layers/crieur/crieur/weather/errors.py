"""What can go wrong reading a vigilance source. The poller logs it, counts it and tries the fallback."""

from __future__ import annotations


class WeatherSourceError(Exception):
    """A vigilance source gave no usable answer this time. Nothing is broadcast from it."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


class VigilanceDocumentError(WeatherSourceError):
    """The document is malformed, truncated or not the expected product: it is refused whole, never half-read."""


class SourceUnavailable(WeatherSourceError):
    """Timeout, connection failure, 429 or 5xx: transient, try the other source and retry at the next tick."""


class SourceAuthError(WeatherSourceError):
    """The credentials are refused (after the one token refresh allowed): an operator must act."""


class SourceNotConfigured(WeatherSourceError):
    """No credentials for the source: the poller goes straight to the fallback."""
