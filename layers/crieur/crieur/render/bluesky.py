"""Bluesky's text rules: 300 graphemes and 3,000 UTF-8 bytes, links and hashtags as rich-text facets.

Bluesky counts extended grapheme clusters (Unicode UAX #29), what a reader sees as one character: "é"
written with a combining accent, a flag or a family emoji each count 1. The standard library has no
segmenter and the Lambda layer carries no `regex`, so `grapheme_count` applies UAX #29's rules to the
properties `unicodedata` gives (Unicode 15.1 in Python 3.13) plus three small tables. One rule is left
out: GB9c, which joins Indic consonants around a virama (Devanagari, Bengali, Gujarati, Oriya, Telugu,
Malayalam), so such a conjunct counts 2 or more here where Bluesky counts 1. Leaving a joining rule out
only ever counts more, never less: a text that fits here fits on Bluesky.

Facets locate links and hashtags by UTF-8 byte offsets (`byteStart` inclusive, `byteEnd` exclusive).
URLs end where Mastodon and X end them (`render.text.url_spans`); hashtags are found as the Bluesky app
finds them (`#` after a space or at the start, trailing punctuation left out, at most 64 graphemes).
"""

from __future__ import annotations

import bisect
import functools
import unicodedata
from typing import Any

from crieur.render.text import ELLIPSIS, url_spans

MAX_GRAPHEMES = 300
MAX_TEXT_BYTES = 3000
MAX_TAG_GRAPHEMES = 64
MAX_TAG_BYTES = 640
LINK = "app.bsky.richtext.facet#link"
TAG = "app.bsky.richtext.facet#tag"

# Grapheme_Cluster_Break values (Unicode 15.1) that the general category does not give.
_FIXED: dict[int, str] = {
    0x000D: "CR",
    0x000A: "LF",
    0x200D: "ZWJ",
    0x0E33: "SpacingMark",  # Thai and Lao AM
    0x0EB3: "SpacingMark",
    0x200C: "Extend",  # Other_Grapheme_Extend outside Mn and Me
    0xFF9E: "Extend",
    0xFF9F: "Extend",
    # Prepend: prepended concatenation marks and a few Brahmic letters.
    **dict.fromkeys(
        (0x0600, 0x0601, 0x0602, 0x0603, 0x0604, 0x0605, 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x0D4E,
         0x110BD, 0x110CD, 0x111C2, 0x111C3, 0x1193F, 0x11941, 0x11A84, 0x11A85, 0x11A86, 0x11A87,
         0x11A88, 0x11A89, 0x11D46, 0x11F02),
        "Prepend",
    ),
    # Spacing marks (category Mc) that UAX #29 leaves out of SpacingMark: they start a new grapheme.
    **dict.fromkeys(
        (0x102B, 0x102C, 0x1038, 0x1062, 0x1063, 0x1064, 0x1067, 0x1068, 0x1069, 0x106A, 0x106B, 0x106C,
         0x106D, 0x1083, 0x1087, 0x1088, 0x1089, 0x108A, 0x108B, 0x108C, 0x108F, 0x109A, 0x109B, 0x109C,
         0x1A61, 0x1A63, 0x1A64, 0xAA7B, 0xAA7D, 0x11720, 0x11721),
        "Other",
    ),
}  # fmt: skip
_RANGES = (
    (0x1F1E6, 0x1F1FF, "RI"),  # regional indicators (flags)
    (0x1100, 0x115F, "L"),  # Hangul jamo
    (0xA960, 0xA97C, "L"),
    (0x1160, 0x11A7, "V"),
    (0xD7B0, 0xD7C6, "V"),
    (0x11A8, 0x11FF, "T"),
    (0xD7CB, 0xD7FB, "T"),
    (0xE0020, 0xE007F, "Extend"),  # tags (subdivision flags)
    (0x1F3FB, 0x1F3FF, "Extend"),  # skin tones
)
# Extended_Pictographic (emoji-data.txt): the emoji that a zero-width joiner glues into one grapheme.
_PICTOGRAPHIC = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA), (0x231A, 0x231B), (0x2328, 0x2328),
    (0x23CF, 0x23CF), (0x23E9, 0x23F3), (0x23F8, 0x23FA), (0x24C2, 0x24C2), (0x25AA, 0x25AB),
    (0x25B6, 0x25B6), (0x25C0, 0x25C0), (0x25FB, 0x25FE), (0x2600, 0x2604), (0x260E, 0x260E),
    (0x2611, 0x2611), (0x2614, 0x2615), (0x2618, 0x2618), (0x261D, 0x261D), (0x2620, 0x2620),
    (0x2622, 0x2623), (0x2626, 0x2626), (0x262A, 0x262A), (0x262E, 0x262F), (0x2638, 0x263A),
    (0x2640, 0x2640), (0x2642, 0x2642), (0x2648, 0x2653), (0x265F, 0x2660), (0x2663, 0x2663),
    (0x2665, 0x2666), (0x2668, 0x2668), (0x267B, 0x267B), (0x267E, 0x267F), (0x2692, 0x2697),
    (0x2699, 0x2699), (0x269B, 0x269C), (0x26A0, 0x26A1), (0x26A7, 0x26A7), (0x26AA, 0x26AB),
    (0x26B0, 0x26B1), (0x26BD, 0x26BE), (0x26C4, 0x26C5), (0x26C8, 0x26C8), (0x26CE, 0x26CF),
    (0x26D1, 0x26D1), (0x26D3, 0x26D4), (0x26E9, 0x26EA), (0x26F0, 0x26F5), (0x26F7, 0x26FA),
    (0x26FD, 0x26FD), (0x2702, 0x2702), (0x2705, 0x2705), (0x2708, 0x270D), (0x270F, 0x270F),
    (0x2712, 0x2712), (0x2714, 0x2714), (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721),
    (0x2728, 0x2728), (0x2733, 0x2734), (0x2744, 0x2744), (0x2747, 0x2747), (0x274C, 0x274C),
    (0x274E, 0x274E), (0x2753, 0x2755), (0x2757, 0x2757), (0x2763, 0x2764), (0x2795, 0x2797),
    (0x27A1, 0x27A1), (0x27B0, 0x27B0), (0x27BF, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B07),
    (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D),
    (0x3297, 0x3297), (0x3299, 0x3299), (0x1F004, 0x1F004), (0x1F02C, 0x1F02F), (0x1F094, 0x1F09F),
    (0x1F0AF, 0x1F0B0), (0x1F0C0, 0x1F0C0), (0x1F0CF, 0x1F0D0), (0x1F0F6, 0x1F0FF), (0x1F170, 0x1F171),
    (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E), (0x1F191, 0x1F19A), (0x1F1AF, 0x1F1E5), (0x1F201, 0x1F20F),
    (0x1F21A, 0x1F21A), (0x1F22F, 0x1F22F), (0x1F232, 0x1F23A), (0x1F23C, 0x1F23F), (0x1F249, 0x1F25F),
    (0x1F266, 0x1F321), (0x1F324, 0x1F393), (0x1F396, 0x1F397), (0x1F399, 0x1F39B), (0x1F39E, 0x1F3F0),
    (0x1F3F3, 0x1F3F5), (0x1F3F7, 0x1F3FA), (0x1F400, 0x1F4FD), (0x1F4FF, 0x1F53D), (0x1F549, 0x1F54E),
    (0x1F550, 0x1F567), (0x1F56F, 0x1F570), (0x1F573, 0x1F57A), (0x1F587, 0x1F587), (0x1F58A, 0x1F58D),
    (0x1F590, 0x1F590), (0x1F595, 0x1F596), (0x1F5A4, 0x1F5A5), (0x1F5A8, 0x1F5A8), (0x1F5B1, 0x1F5B2),
    (0x1F5BC, 0x1F5BC), (0x1F5C2, 0x1F5C4), (0x1F5D1, 0x1F5D3), (0x1F5DC, 0x1F5DE), (0x1F5E1, 0x1F5E1),
    (0x1F5E3, 0x1F5E3), (0x1F5E8, 0x1F5E8), (0x1F5EF, 0x1F5EF), (0x1F5F3, 0x1F5F3), (0x1F5FA, 0x1F64F),
    (0x1F680, 0x1F6C5), (0x1F6CB, 0x1F6D2), (0x1F6D5, 0x1F6E5), (0x1F6E9, 0x1F6E9), (0x1F6EB, 0x1F6F0),
    (0x1F6F3, 0x1F6FF), (0x1F7DC, 0x1F7F0), (0x1F80C, 0x1F80F), (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F),
    (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8AF), (0x1F8BC, 0x1F8BF), (0x1F8C2, 0x1F8CF), (0x1F8D9, 0x1F8FF),
    (0x1F90C, 0x1F93A), (0x1F93C, 0x1F945), (0x1F947, 0x1F9FF), (0x1FA58, 0x1FA5F), (0x1FA6E, 0x1FAFF),
    (0x1FC00, 0x1FFFD),
)  # fmt: skip
_BY_CATEGORY = {
    "Mn": "Extend",
    "Me": "Extend",
    "Mc": "SpacingMark",
    "Cc": "Control",
    "Cf": "Control",
    "Zl": "Control",
    "Zp": "Control",
}
_PICTOGRAPHIC_STARTS = [start for start, _ in _PICTOGRAPHIC]
# What the Bluesky app does not let a hashtag contain besides white space (its TAG_REGEX).
_TAG_BREAKERS = frozenset("\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2")


def _is_pictographic(code: int) -> bool:
    index = bisect.bisect_right(_PICTOGRAPHIC_STARTS, code) - 1
    return index >= 0 and code <= _PICTOGRAPHIC[index][1]


@functools.lru_cache(maxsize=4096)
def _break_property(char: str) -> str:
    """The character's Grapheme_Cluster_Break value (UAX #29), "Pict" for Extended_Pictographic."""
    code = ord(char)
    if code in _FIXED:
        return _FIXED[code]
    if 0xAC00 <= code <= 0xD7A3:  # precomposed Hangul syllables, LV every 28th
        return "LV" if (code - 0xAC00) % 28 == 0 else "LVT"
    for start, end, value in _RANGES:
        if start <= code <= end:
            return value
    by_category = _BY_CATEGORY.get(unicodedata.category(char))
    return by_category or ("Pict" if _is_pictographic(code) else "Other")


_CONTROLS = frozenset({"Control", "CR", "LF"})
_HANGUL = frozenset(
    {("L", "L"), ("L", "V"), ("L", "LV"), ("L", "LVT"), ("LV", "V"), ("LV", "T"), ("V", "V"), ("V", "T")}
    | {("LVT", "T"), ("T", "T")}
)


def _joined(before: str, after: str, pictographic_zwj: bool, regional_run: int) -> bool:
    """Whether UAX #29 keeps `before` and `after` in one grapheme (rules GB3-GB13, without GB9c)."""
    if before == "CR" and after == "LF":
        return True
    if before in _CONTROLS or after in _CONTROLS:
        return False
    return (
        (before, after) in _HANGUL
        or after in ("Extend", "ZWJ", "SpacingMark")
        or before == "Prepend"
        or (after == "Pict" and pictographic_zwj)
        or (before == after == "RI" and regional_run % 2 == 1)
    )


def grapheme_count(text: str) -> int:
    """Extended grapheme clusters, as Bluesky counts them (never fewer; see the module docstring)."""
    count = 0
    before: str | None = None
    pictographic = False  # the text so far ends with Pict Extend*
    pictographic_zwj = False  # ... Pict Extend* ZWJ
    regional_run = 0  # regional indicators in a row at the end
    for char in text:
        after = _break_property(char)
        if before is None or not _joined(before, after, pictographic_zwj, regional_run):
            count += 1
        pictographic_zwj = after == "ZWJ" and pictographic
        pictographic = after == "Pict" or (after == "Extend" and pictographic)
        regional_run = regional_run + 1 if after == "RI" else 0
        before = after
    return count


def bluesky_length(text: str) -> int:
    """Graphemes, or a tenth of the UTF-8 bytes when that is more: within 300, a text keeps both limits."""
    return max(grapheme_count(text), -(-len(text.encode()) * MAX_GRAPHEMES // MAX_TEXT_BYTES))


def byte_offset(text: str, index: int) -> int:
    """The UTF-8 byte offset of the character at `index`."""
    return len(text[:index].encode())


def hashtag_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, tag) of each hashtag as the Bluesky app detects it; `tag` is without its `#`."""
    spans = []
    for start, char in enumerate(text):
        if char not in "#＃" or (start and not text[start - 1].isspace()):
            continue
        end = start + 1
        while end < len(text) and not text[end].isspace() and text[end] not in _TAG_BREAKERS:
            end += 1
        while end > start + 1 and unicodedata.category(text[end - 1]).startswith("P"):
            end -= 1
        tag = text[start + 1 : end]
        wordy = any(not ("0" <= letter <= "9" or unicodedata.category(letter).startswith("P")) for letter in tag)
        if (
            wordy
            and not tag.startswith("\ufe0f")
            and grapheme_count(tag) <= MAX_TAG_GRAPHEMES
            and len(tag.encode()) <= MAX_TAG_BYTES
        ):
            spans.append((start, end, tag))
    return spans


def facets(text: str) -> list[dict[str, Any]]:
    """The link and hashtag facets of `text`, in reading order."""
    found: list[tuple[int, int, dict[str, str]]] = []
    for start, end in url_spans(text):
        uri = text[start:end].rstrip(ELLIPSIS)  # `truncate` may have glued its ellipsis to a URL
        found.append((start, start + len(uri), {"$type": LINK, "uri": uri}))
    links = list(found)
    for start, end, tag in hashtag_spans(text):
        if not any(start < link_end and link_start < end for link_start, link_end, _ in links):
            found.append((start, end, {"$type": TAG, "tag": tag}))
    return [
        {"index": {"byteStart": byte_offset(text, start), "byteEnd": byte_offset(text, end)}, "features": [feature]}
        for start, end, feature in sorted(found, key=lambda item: item[0])
    ]
