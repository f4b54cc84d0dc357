"""Composes a publication into one text that fits a channel's length limit.

The title and the links always survive; the body is cut at a word boundary with an ellipsis.
Lengths are counted in code points (never fewer than the graphemes providers count), with every URL
weighted as the provider weighs it (Mastodon and X count any link as 23).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from crieur.models import Publication

URL_PATTERN = re.compile(r"https?://[^\s<>\"']+")
ELLIPSIS = "…"


TRAILING_PUNCTUATION = ".,;:!?'\""


def _url_end(text: str, start: int, end: int) -> int:
    """Where a URL really ends: like Mastodon and X, not on trailing punctuation or an unbalanced ')'."""
    while end > start:
        last = text[end - 1]
        if last in TRAILING_PUNCTUATION or (last == ")" and text.count("(", start, end) < text.count(")", start, end)):
            end -= 1
        else:
            break
    return end


def weighted_length(text: str, url_weight: int | None = None) -> int:
    if url_weight is None:
        return len(text)
    total, last = 0, 0
    for match in URL_PATTERN.finditer(text):
        end = _url_end(text, match.start(), match.end())
        total += len(text[last : match.start()]) + url_weight
        last = end
    return total + len(text[last:])


def truncate(text: str, budget: int, measure: Callable[[str], int]) -> str:
    """The longest prefix of `text`, cut between words and closed by an ellipsis, that fits `budget`."""
    if measure(text) <= budget:
        return text
    words = re.split(r"(\s+)", text)
    kept = ""
    for word in words:
        candidate = kept + word
        if measure(candidate.rstrip() + ELLIPSIS) > budget:
            break
        kept = candidate
    if not kept.strip():
        # One word longer than the budget (never a URL: those weigh a constant), cut inside it.
        kept = text
        while kept and measure(kept + ELLIPSIS) > budget:
            kept = kept[:-1]
    return kept.rstrip() + ELLIPSIS


def compose(publication: Publication, limit: int, url_weight: int | None = None, override: str | None = None) -> str:
    """Title, body, then links, fitting `limit`; an override replaces the composition but is still fitted."""

    def measure(text: str) -> int:
        return weighted_length(text, url_weight)

    if override is not None:
        return truncate(override.strip(), limit, measure)
    links = "\n".join(f"{link.label} : {link.url}" if link.label else str(link.url) for link in publication.links)
    tail = f"\n\n{links}" if links else ""
    head = f"{publication.title}\n\n"
    budget = limit - measure(head) - measure(tail)
    if budget < 20:
        # Links crowd out the body: keep the title and as many links as fit.
        return truncate(head + links, limit, measure)
    return head + truncate(publication.body, budget, measure) + tail
