"""Composes a publication into one text that fits a channel's length limit.

The title and the links always survive; the body is cut at a word boundary with an ellipsis. Each
channel passes its own `measure` (Mastodon and X weigh every URL 23, X weighs code points, Bluesky counts
graphemes), so the same composition fits every channel as that channel counts.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from crieur.models import Category, Publication

URL_PATTERN = re.compile(r"https?://[^\s<>\"']+")
ELLIPSIS = "…"
TRAILING_PUNCTUATION = ".,;:!?'\"…"
MIN_BODY_BUDGET = 20

Measure = Callable[[str], int]

HASHTAGS: dict[Category, str] = {
    "news": "#actualité",
    "event": "#agenda",
    "works": "#travaux",
    "alert": "#alerte",
    "weather": "#météo",
    "council": "#conseilmunicipal",
    "other": "",
}


def url_spans(text: str) -> list[tuple[int, int]]:
    """Where the URLs are, ending like Mastodon and X end them: not on trailing punctuation or an unbalanced ')'."""
    spans = []
    for match in URL_PATTERN.finditer(text):
        start, end = match.start(), match.end()
        while end > start:
            last = text[end - 1]
            if last in TRAILING_PUNCTUATION or (
                last == ")" and text.count("(", start, end) < text.count(")", start, end)
            ):
                end -= 1
            else:
                break
        spans.append((start, end))
    return spans


def weighted_length(text: str, url_weight: int | None = None) -> int:
    """Code points, with each URL weighing `url_weight` when given."""
    if url_weight is None:
        return len(text)
    total, last = 0, 0
    for start, end in url_spans(text):
        total += len(text[last:start]) + url_weight
        last = end
    return total + len(text[last:])


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def truncate(text: str, budget: int, measure: Measure) -> str:
    """The longest prefix of `text`, cut between words and closed by an ellipsis, that fits `budget`."""
    if measure(text) <= budget:
        return text
    kept = ""
    for word in re.split(r"(\s+)", text):
        candidate = kept + word
        if measure(candidate.rstrip() + ELLIPSIS) > budget:
            break
        kept = candidate
    if not kept.strip():
        # One word longer than the budget, cut inside it; never inside a link (where a URL does not weigh a
        # constant, as on Bluesky), since a cut link leads nowhere: the link goes whole or not at all.
        kept = text
        while kept and measure(kept + ELLIPSIS) > budget:
            kept = kept[:-1]
        for start, end in url_spans(text):
            if start < len(kept) < end:
                kept = kept[:start]
    return kept.rstrip() + ELLIPSIS


def links_block(publication: Publication) -> str:
    return "\n".join(f"{link.label} : {link.url}" if link.label else str(link.url) for link in publication.links)


def compose(
    publication: Publication,
    limit: int,
    measure: Measure = len,
    *,
    override: str | None = None,
    hashtag: bool = False,
    links: bool = True,
) -> str:
    """Title, body, links (and the category's hashtag when asked and it fits), within `limit`.

    An override replaces the composition as written; the API refuses one that does not fit, so here it
    is only cut as a last resort.
    """
    if override is not None:
        return truncate(nfc(override.strip()), limit, measure)
    head = f"{nfc(publication.title)}\n\n"
    tail = f"\n\n{nfc(links_block(publication))}" if links and publication.links else ""
    tag = HASHTAGS[publication.category] if hashtag else ""
    tagged = tail + (f"\n{tag}" if tail else f"\n\n{tag}")
    if tag and limit - measure(head) - measure(tagged) >= MIN_BODY_BUDGET:  # never at the body's expense
        tail = tagged
    budget = limit - measure(head) - measure(tail)
    if budget < MIN_BODY_BUDGET:
        # Links crowd out the body: keep the title and as many links as fit.
        return truncate(head + tail.strip(), limit, measure)
    return head + truncate(nfc(publication.body), budget, measure) + tail
