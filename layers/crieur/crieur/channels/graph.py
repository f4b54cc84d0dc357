"""What the Meta adapters (Facebook, Instagram) share about the Graph API.

The pinned version, the error body, the wait Meta announces when it throttles, and the error code families
both APIs use. Each adapter keeps its own French messages and the codes only its API sends.

A Graph failure comes as an HTTP 4xx/5xx whose body is
`{"error": {"message", "type", "code", "error_subcode", "is_transient", "fbtrace_id"}}`: the code says more
than the HTTP status, so the adapters classify on it (`call_graph` hands them the failed answer).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from crieur.channels.base import ChannelError, call_provider

GRAPH_API_VERSION = "v25.0"
"""The one Graph API version every call uses (supported until 2028-07, reference/channels.md)."""

TOKEN_CODE = 190
"""The access token has expired or was revoked (its subcode says why)."""
PERMISSION_CODES = frozenset({10, *range(200, 300)})
"""The token lacks a permission the call needs."""
TRANSIENT_CODES = frozenset({1, 2})
"""Unknown error, service temporarily unavailable: worth retrying."""
THROTTLE_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
"""Application, user, page, custom and business use case rate limits."""


@dataclass(frozen=True)
class GraphError:
    """The `error` object of a Graph API answer."""

    code: int | None
    subcode: int | None
    message: str
    user_message: str
    """`error_user_msg`, which some errors add to `message`."""
    transient: bool

    @classmethod
    def of(cls, response: httpx.Response) -> GraphError | None:
        """The answer's Graph error; None when its body holds no `error` object."""
        try:
            body: Any = response.json()
        except ValueError:
            return None
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return None
        code, subcode = error.get("code"), error.get("error_subcode")
        return cls(
            code=code if isinstance(code, int) else None,
            subcode=subcode if isinstance(subcode, int) else None,
            message=str(error.get("message") or ""),
            user_message=str(error.get("error_user_msg") or ""),
            transient=error.get("is_transient") is True,
        )

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLE_CODES

    @property
    def retryable(self) -> bool:
        """A transient code, or Graph's own `is_transient` flag."""
        return self.code in TRANSIENT_CODES or self.transient

    def describe(self) -> str:
        subcode = f"/{self.subcode}" if self.subcode is not None else ""
        return f"Graph #{self.code}{subcode} : {self.message}"[:500]


def regain_access_seconds(response: httpx.Response) -> float | None:
    """The longest `estimated_time_to_regain_access` (minutes) of X-Business-Use-Case-Usage, in seconds."""
    try:
        usage: Any = json.loads(response.headers.get("x-business-use-case-usage") or "{}")
    except ValueError:
        return None
    if not isinstance(usage, dict):
        return None
    minutes = [
        entry.get("estimated_time_to_regain_access")
        for entries in usage.values()
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict)
    ]
    longest = max((float(value) for value in minutes if isinstance(value, int | float)), default=0.0)
    return longest * 60 if longest > 0 else None


Refine = Callable[[ChannelError, httpx.Response], ChannelError]
"""Turns the failure `call_provider` classified on the HTTP status into the one the Graph error calls for."""


def call_graph(http: httpx.Client, provider: str, request: httpx.Request, refine: Refine) -> httpx.Response:
    """`call_provider`, with a failed answer's classification refined from its Graph error by `refine`.

    A failure without an answer (timeout, unreachable host) is raised as `call_provider` classified it.
    """
    try:
        return call_provider(http, provider, request)
    except ChannelError as failure:
        if failure.response is None:
            raise
        refined = refine(failure, failure.response)
        if refined is failure:
            raise
        raise refined from failure
