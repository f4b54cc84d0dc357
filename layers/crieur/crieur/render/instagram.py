"""Instagram's caption rules: 2,200 characters (code points) and at most 30 hashtags.

A hashtag is `#` followed by a word, not inside a URL (a `#fragment` of a link is not one).
"""

from __future__ import annotations

import re

from crieur.render.text import url_spans

CAPTION_LIMIT = 2200
MAX_HASHTAGS = 30

_HASHTAG = re.compile(r"(?<![\w#&])#(?=\w)")


def hashtag_positions(text: str) -> list[int]:
    """Where each hashtag's `#` stands, URLs excluded."""
    urls = url_spans(text)
    return [
        match.start()
        for match in _HASHTAG.finditer(text)
        if not any(start <= match.start() < end for start, end in urls)
    ]


def cap_hashtags(text: str, maximum: int = MAX_HASHTAGS) -> tuple[str, int]:
    """The text with the `#` of every hashtag past the `maximum`-th removed (the word stays), and how many."""
    extra = hashtag_positions(text)[maximum:]
    for position in reversed(extra):
        text = text[:position] + text[position + 1 :]
    return text, len(extra)
