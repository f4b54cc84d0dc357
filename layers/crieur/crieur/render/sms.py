"""How an SMS is counted and billed: GSM-7 or UCS-2, and how many parts (the operator bills each part).

A text made only of characters of the GSM 03.38 default alphabet (and its extension table, whose characters
€ ^ { } [ ] ~ | \\ and form feed are sent as an escape pair and so count 2 septets) is sent in GSM-7: 160
septets in a single SMS, 153 per part once split. Any other character turns the whole text into UCS-2:
70 UTF-16 code units in a single SMS, 67 per part (an emoji outside the BMP is a surrogate pair: 2 units).
A part never ends between the two septets of an escape pair or the two units of a surrogate pair: the
phone would show garbage, so the pair moves to the next part (which may make one more part).

French typography (’ « » … no-break spaces, ê â î ô û ë ï ç œ) is not GSM-7: one apostrophe copied from
a word processor makes a 150-character alert cost 3 parts instead of 1. `shape_sms` maps it to its closest
GSM-7 form when the commune allows it, and keeps the text as written when shaping cannot make it GSM-7
anyway (an emoji), since it would then spoil the typography without saving a part.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

from pydantic import BaseModel, Field

Encoding = Literal["GSM-7", "UCS-2"]

MAX_SMS_PARTS = 6
"""The most parts a publication may need: beyond, the body must be shortened (or an override written)."""

GSM7_SINGLE = 160
GSM7_PER_PART = 153
UCS2_SINGLE = 70
UCS2_PER_PART = 67

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"  # 0x1B is the escape to the extension table, never a character of a text
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
) - {"\x1b"}
"""The GSM 03.38 default alphabet (3GPP TS 23.038 §6.2.1), row by row: one septet each."""

GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
"""The extension table reached through the escape septet: two septets each."""

_TYPOGRAPHY = {
    "’": "'",
    "‘": "'",
    "‚": "'",
    "‛": "'",
    "′": "'",
    "‹": '"',
    "›": '"',
    "“": '"',
    "”": '"',
    "„": '"',
    "«": '"',
    "»": '"',
    "″": '"',
    "…": "...",
    "\u00a0": " ",  # no-break space (before « : ; ! ? in French)
    "\u202f": " ",  # narrow no-break space
    "\u2009": " ",  # thin space
    "\u2007": " ",  # figure space
    "\u2002": " ",
    "\u2003": " ",
    "\u2004": " ",
    "\u2005": " ",
    "\u2006": " ",
    "\u2008": " ",
    "\u200a": " ",
    "\t": " ",
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",
    "\u2212": "-",  # minus sign
    "\u00ad": "",  # soft hyphen: invisible
    "\u200b": "",  # zero-width space: invisible
    "\u2060": "",  # word joiner: invisible
    "\ufeff": "",  # byte-order mark pasted from a document
    "œ": "oe",
    "Œ": "OE",
    "•": "-",
}
"""French typography and its closest GSM-7 form; accented letters are handled by `_closest_letter`."""


class SmsText(BaseModel):
    """An SMS body as it will be sent, with what it costs in parts."""

    text: str = Field(description="Le texte tel qu'il sera envoyé.")
    encoding: Encoding = Field(description="GSM-7 (160 caractères, 153 par partie) ou UCS-2 (70, 67 par partie).")
    parts: int = Field(description="Nombre de SMS facturés.")
    length: int = Field(description="Septets en GSM-7 (€ ^ { } [ ] ~ | \\ comptent 2), unités UTF-16 en UCS-2.")
    parts_without_shaping: int | None = Field(
        default=None, description="Nombre de SMS sans l'adaptation typographique, quand elle a changé le texte."
    )
    ucs2_characters: list[str] = Field(
        default=[], description="Les caractères qui imposent l'UCS-2 (vide en GSM-7), dans l'ordre du texte."
    )


def is_gsm7(text: str) -> bool:
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def encoding_of(text: str) -> Encoding:
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def _units(text: str, encoding: Encoding) -> list[int]:
    """The weight of each code point: septets in GSM-7, UTF-16 code units in UCS-2."""
    if encoding == "GSM-7":
        return [2 if char in GSM7_EXTENSION else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def sms_length(text: str) -> int:
    """Septets when the text is GSM-7, UTF-16 code units when it is UCS-2."""
    return sum(_units(text, encoding_of(text)))


def split_parts(text: str) -> list[str]:
    """The parts the phone receives, in order; one part when the text fits in a single SMS, none when empty.

    Parts are filled greedily and a two-unit character (escape pair, surrogate pair) never straddles two.
    """
    encoding = encoding_of(text)
    weights = _units(text, encoding)
    single, per_part = (GSM7_SINGLE, GSM7_PER_PART) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_PER_PART)
    if not text:
        return []
    if sum(weights) <= single:
        return [text]
    parts: list[str] = []
    start, used = 0, 0
    for index, weight in enumerate(weights):
        if used + weight > per_part:
            parts.append(text[start:index])
            start, used = index, 0
        used += weight
    parts.append(text[start:])
    return parts


def count_parts(text: str) -> int:
    return len(split_parts(text))


def _closest_letter(char: str) -> str:
    """A letter GSM-7 lacks (ê, Â, ç, ÿ, á…) as its base letter, when that base is GSM-7; else unchanged."""
    decomposed = unicodedata.normalize("NFD", char)
    base = decomposed[0]
    if len(decomposed) > 1 and base in GSM7_BASIC and all(unicodedata.combining(mark) for mark in decomposed[1:]):
        return base
    return char


def shape_gsm7(text: str) -> str:
    """Maps French typography and the accented letters GSM-7 lacks to their closest GSM-7 form.

    Letters GSM-7 has (é è à ù ì ò É Ç Ä Ö Ü ä ö ü ñ Å å Æ æ Ø ø) are kept; what has no GSM-7 form (an
    emoji, a Greek lowercase letter) stays as it is.
    """
    shaped = []
    for char in unicodedata.normalize("NFC", text):
        if char in GSM7_BASIC or char in GSM7_EXTENSION:
            shaped.append(char)
        elif char in _TYPOGRAPHY:
            shaped.append(_TYPOGRAPHY[char])
        else:
            shaped.append(_closest_letter(char))
    return "".join(shaped)


def _measure(text: str, parts_without_shaping: int | None = None) -> SmsText:
    encoding = encoding_of(text)
    ucs2 = [] if encoding == "GSM-7" else list(dict.fromkeys(char for char in text if not is_gsm7(char)))
    return SmsText(
        text=text,
        encoding=encoding,
        parts=count_parts(text),
        length=sum(_units(text, encoding)),
        parts_without_shaping=parts_without_shaping,
        ucs2_characters=ucs2,
    )


def shape_sms(text: str, allow_shaping: bool = True) -> SmsText:
    """The SMS body as it will be sent, shaped to GSM-7 when allowed and when that makes it GSM-7.

    `parts_without_shaping` is set when shaping changed the text, so a preview can say what it saves.
    """
    if allow_shaping and not is_gsm7(text):
        shaped = shape_gsm7(text)
        if is_gsm7(shaped):
            return _measure(shaped, parts_without_shaping=count_parts(text))
    return _measure(text)
