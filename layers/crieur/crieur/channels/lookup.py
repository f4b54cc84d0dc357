"""What the adapters share to look up, on the provider, the post an attempt of unknown outcome made
(`PostChannel.find_sent`).

A lookup that fails must pass neither for "nothing was posted" (the worker would post again) nor for
"posted": whatever keeps the provider from answering with its list is raised as a TransientChannelError,
so that the worker asks again later.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from crieur.channels.base import ChannelError, TransientChannelError

LOOKUP_PAGES = 3
"""Pages of the account's recent posts read at most by one lookup (each bounded to posts newer than the
publication): enough for an account shared by several communes that post every few seconds."""
CLOCK_MARGIN_SECONDS = 60
"""Clock skew allowed between Crieur and a provider when only posts newer than the publication are read."""


@contextmanager
def lookup_failures(provider: str) -> Iterator[None]:
    """Raises any channel error of the block as a TransientChannelError (a transient one as it is)."""
    try:
        yield
    except TransientChannelError:
        raise
    except ChannelError as failed:
        raise TransientChannelError(
            "lookup_failed",
            f"{provider} n'a pas permis de vérifier si la publication a déjà été faite : nouvel essai automatique.",
            failed.provider_message or failed.message,
            http_status=failed.http_status,
            response=failed.response,
        ) from failed


def comparable(text: str) -> str:
    """A text with its runs of white space made one space: providers trim and re-space what they store."""
    return " ".join(text.split())
