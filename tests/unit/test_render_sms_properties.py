"""Properties of SMS counting that must hold for any text, not only the examples."""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from crieur.render.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    GSM7_PER_PART,
    GSM7_SINGLE,
    UCS2_PER_PART,
    UCS2_SINGLE,
    is_gsm7,
    shape_gsm7,
    shape_sms,
    sms_length,
    split_parts,
)

gsm7_text = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=1200)
french_text = st.text(
    alphabet=st.sampled_from(sorted(GSM7_BASIC) + list("’«»…\u00a0\u202fêâîôûëïçœÊ–—🌧€")), max_size=900
)
any_text = st.text(max_size=900)


def septets(text: str) -> int:
    return len(text) + sum(char in GSM7_EXTENSION for char in text)


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@given(any_text)
def test_parts_join_back_into_the_text_and_each_fits(text: str) -> None:
    parts = split_parts(text)
    assert "".join(parts) == text
    if is_gsm7(text):
        single, per_part, measure = GSM7_SINGLE, GSM7_PER_PART, septets
    else:
        single, per_part, measure = UCS2_SINGLE, UCS2_PER_PART, utf16_units
    assert sms_length(text) == measure(text)
    if len(parts) <= 1:
        assert len(parts) == (1 if text else 0)
        assert measure(text) <= single
    else:
        assert all(measure(part) <= per_part for part in parts)
        assert measure(text) > single
    # a part is only closed when the next character would not fit: greedy, so no part count is wasted
    for part, following in itertools.pairwise(parts):
        assert measure(part + following[0]) > per_part


@given(gsm7_text)
def test_gsm7_text_is_never_changed(text: str) -> None:
    sms = shape_sms(text)
    assert sms.text == text
    assert sms.encoding == "GSM-7"
    assert sms.parts_without_shaping is None
    assert sms.parts == len(split_parts(text))


@given(french_text)
def test_shaping_never_costs_more_parts(text: str) -> None:
    shaped = shape_sms(text)
    plain = shape_sms(text, allow_shaping=False)
    assert shaped.parts <= plain.parts
    if shaped.text != text:
        assert shaped.encoding == "GSM-7"
        assert shaped.parts_without_shaping == plain.parts
    else:
        assert shaped.parts_without_shaping is None


@given(any_text)
def test_shaping_is_idempotent_and_only_keeps_or_maps(text: str) -> None:
    once = shape_gsm7(text)
    assert shape_gsm7(once) == once
    assert all(char in GSM7_BASIC or char in GSM7_EXTENSION or not is_gsm7(char) for char in once)
