"""Properties of the text shaping that must hold for any publication, not only the examples: each channel's
limit as that channel counts, links never cut, hashtags whole, SMS text that a GSM 03.38 encoder accepts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crieur.models import Publication
from crieur.render import bluesky, x
from crieur.render.instagram import CAPTION_LIMIT, MAX_HASHTAGS, cap_hashtags, hashtag_positions
from crieur.render.sms import shape_sms
from crieur.render.text import ELLIPSIS, HASHTAGS, compose, nfc, url_spans, weighted_length

PROPERTIES = settings(max_examples=60, derandomize=True, database=None, deadline=None)

CHANNELS: dict[str, tuple[Callable[[str], int], int]] = {
    "mastodon (500, URL = 23)": (lambda text: weighted_length(text, 23), 500),
    "x (280, URL = 23, emoji = 2)": (x.weighted_length, x.MAX_LENGTH),
    "bluesky (300 graphemes)": (bluesky.bluesky_length, bluesky.MAX_GRAPHEMES),
    "facebook / instagram": (len, CAPTION_LIMIT),
    "a tight custom limit": (lambda text: weighted_length(text, 23), 120),
}

URLS = st.builds(
    lambda host, path: f"https://{host}/{path}",
    st.sampled_from(["mairie.example.fr", "www.exemple-commune.fr", "agenda.example.org"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_/", min_size=0, max_size=90),
)
WORDS = st.one_of(
    st.sampled_from(
        ["Coupure", "d'eau", "rue", "de", "l'Église", "mardi", "9", "h", "à", "12", "h.", "déviation", "Noël", "«", "»"]
    ),
    st.sampled_from(["🌧️", "👨‍👩‍👧", "🇫🇷", "œuvre", "ÉTÉ", "naïve", "#travaux", "#Fête", "(voir", "plan)"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Zs", "Zl", "Zp"]), max_size=12),
    URLS,
)
SEPARATORS = st.sampled_from([" ", " ", " ", "\n", "\n\n", "  "])


@st.composite
def texts(draw: st.DrawFn, min_words: int, max_words: int) -> str:
    words = draw(st.lists(WORDS.filter(bool), min_size=min_words, max_size=max_words))
    out = ""
    for word in words:
        out += (draw(SEPARATORS) if out else "") + word
    return out


@st.composite
def publications(draw: st.DrawFn) -> Publication:
    title = draw(texts(1, 8)).strip()[:140].strip() or "Info"
    body = draw(texts(1, 150)).strip() or "Texte"
    links = draw(st.lists(st.builds(lambda url, label: {"url": url, "label": label}, URLS, texts(0, 3)), max_size=3))
    return Publication(
        title=title,
        body=body[:10_000],
        links=[{"url": link["url"], "label": link["label"][:100].strip() or None} for link in links],
        category=draw(st.sampled_from(sorted(HASHTAGS))),
        id="pub_01",
        commune="35238",
        status="publishing",
        created_at=datetime(2026, 11, 27, tzinfo=UTC),
    )


def source_urls(publication: Publication) -> set[str]:
    texts_in = [nfc(publication.title), nfc(publication.body), *(nfc(link.label or "") for link in publication.links)]
    found = {text[start:end] for text in texts_in for start, end in url_spans(text)}
    return found | {str(link.url) for link in publication.links}


def source_tokens(publication: Publication) -> set[str]:
    texts_in = [publication.title, publication.body, *(link.label or "" for link in publication.links)]
    return {token for text in texts_in for token in nfc(text).split()} | {tag for tag in HASHTAGS.values() if tag}


@PROPERTIES
@given(publications(), st.sampled_from(sorted(CHANNELS)), st.booleans())
def test_a_composed_text_fits_keeps_links_whole_and_hashtags_intact(
    publication: Publication, channel: str, hashtag: bool
) -> None:
    measure, limit = CHANNELS[channel]
    text = compose(publication, limit, measure, hashtag=hashtag)
    assert measure(text) <= limit
    assert text.startswith(publication.title[:1])
    whole = source_urls(publication)
    for start, end in url_spans(text):
        shown = text[start:end]
        assert shown in whole, shown
    tokens = source_tokens(publication)
    for token in text.split():
        if token.startswith("#"):
            assert token.rstrip(ELLIPSIS) in tokens, token


@PROPERTIES
@given(publications())
def test_links_survive_when_there_is_room_for_the_body(publication: Publication) -> None:
    text = compose(publication, 500, lambda text: weighted_length(text, 23))
    links_weight = sum(len(link.label or "") + 26 for link in publication.links)
    if len(publication.links) <= 3 and links_weight + len(publication.title) + 40 < 500:
        for link in publication.links:
            assert str(link.url) in text


@PROPERTIES
@given(texts(0, 80))
def test_instagram_keeps_at_most_30_hashtags_and_every_word(text: str) -> None:
    capped, removed = cap_hashtags(text)
    assert len(hashtag_positions(capped)) <= MAX_HASHTAGS
    assert removed == max(0, len(hashtag_positions(text)) - MAX_HASHTAGS)
    assert capped.replace("#", "") == text.replace("#", "")


@PROPERTIES
@given(publications())
def test_bluesky_facets_point_inside_the_text_on_whole_links(publication: Publication) -> None:
    text = compose(publication, bluesky.MAX_GRAPHEMES, bluesky.bluesky_length, hashtag=True)
    encoded = text.encode()
    for facet in bluesky.facets(text):
        start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
        assert 0 <= start < end <= len(encoded)
        feature: dict[str, Any] = facet["features"][0]
        if feature["$type"] == bluesky.LINK:
            assert encoded[start:end].decode() == feature["uri"]
            assert feature["uri"] in source_urls(publication)


# --- SMS: an independent GSM 03.38 encoder (3GPP TS 23.038 §6.2.1, table by code) ------------------------

GSM_DEFAULT = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40}
GSM_EXTENSION["€"] = 0x65


def gsm7_septets(text: str) -> list[int] | None:
    """The septets of `text` in the GSM 7-bit default alphabet, or None when a character has none."""
    assert len(GSM_DEFAULT) == 128
    septets: list[int] = []
    for char in text:
        if char in GSM_EXTENSION:
            septets += [0x1B, GSM_EXTENSION[char]]
        elif char in GSM_DEFAULT and char != "\x1b":
            septets.append(GSM_DEFAULT.index(char))
        else:
            return None
    return septets


FRENCH = st.text(
    alphabet=st.sampled_from(list(GSM_DEFAULT.replace("\x1b", "")) + list("’‘«»“”…\u00a0\u202f–—êâîôûëïçœŒÊÂÎÔÛ€[]")),
    max_size=600,
)


@PROPERTIES
@given(st.one_of(FRENCH, st.text(max_size=300)))
def test_the_gsm7_decision_matches_an_encoder_and_shaped_text_encodes(text: str) -> None:
    plain = shape_sms(text, allow_shaping=False)
    assert (plain.encoding == "GSM-7") == (gsm7_septets(text) is not None)
    if plain.encoding == "GSM-7":
        assert plain.length == len(gsm7_septets(text) or [])
    shaped = shape_sms(text)
    if shaped.encoding == "GSM-7":
        assert gsm7_septets(shaped.text) is not None
    elif all(char in GSM_DEFAULT or char in GSM_EXTENSION or char in "’‘«»“”…\u00a0\u202f–—œŒ" for char in text):
        raise AssertionError(f"nothing unmappable, yet not GSM-7: {shaped.ucs2_characters}")


@PROPERTIES
@given(FRENCH)
def test_french_text_made_of_mappable_characters_always_shapes_to_gsm7(text: str) -> None:
    shaped = shape_sms(text)
    assert shaped.encoding == "GSM-7"
    assert shaped.ucs2_characters == []
    assert shaped.parts <= shape_sms(text, allow_shaping=False).parts


def test_regression_a_link_longer_than_the_body_budget_is_dropped_not_cut() -> None:
    """Found by the properties above: on Bluesky (graphemes, no fixed URL weight) a body made of one link
    and crowded by the title was cut to "https://mairie.example.f…", a link leading nowhere."""
    publication = Publication(
        title="Coupure Coupure Coupure Coupure Coupure Coupure https://mairie.example.fr/ https://mairie.example.fr/0",
        body="https://mairie.example.fr/",
        links=[{"url": "https://mairie.example.fr/" + "0" * 11}, {"url": "https://mairie.example.fr/" + "0" * 20}],
        category="alert",
        id="pub_01",
        commune="35238",
        status="publishing",
        created_at=datetime(2026, 11, 27, tzinfo=UTC),
    )
    text = compose(publication, bluesky.MAX_GRAPHEMES, bluesky.bluesky_length, hashtag=True)
    assert "https://mairie.example.f…" not in text
    links = [
        facet["features"][0]["uri"] for facet in bluesky.facets(text) if facet["features"][0]["$type"] == bluesky.LINK
    ]
    assert links
    assert set(links) <= source_urls(publication)


# --- SMS as the channel composes it (crieur.channels.sms) ---------------------------------------------------


@PROPERTIES
@given(publications(), st.booleans())
def test_a_composed_sms_keeps_to_its_parts_and_its_encoding_says_the_truth(
    publication: Publication, allow_shaping: bool
) -> None:
    from crieur.channels.sms import COMPOSED_PARTS, compose_sms, parts_problem
    from crieur.render.sms import MAX_SMS_PARTS

    sms, _ = compose_sms(publication, allow_shaping)
    title_alone = shape_sms(nfc(publication.title).strip(), allow_shaping).parts
    assert sms.parts <= max(COMPOSED_PARTS, title_alone)
    assert (sms.encoding == "GSM-7") == (gsm7_septets(sms.text) is not None)
    if allow_shaping and all(char in GSM_DEFAULT or char in GSM_EXTENSION for char in shape_sms(sms.text).text):
        assert sms.encoding == "GSM-7"
    assert (parts_problem(sms) is None) == (sms.parts <= MAX_SMS_PARTS)


@PROPERTIES
@given(st.one_of(FRENCH, st.text(max_size=1200)), st.booleans())
def test_an_sms_override_is_accepted_only_within_six_parts(text: str, allow_shaping: bool) -> None:
    from crieur.channels.sms import parts_problem
    from crieur.render.sms import MAX_SMS_PARTS

    sms = shape_sms(text, allow_shaping)
    problem = parts_problem(sms)
    assert (problem is None) == (sms.parts <= MAX_SMS_PARTS)
    if problem is not None:
        assert str(sms.parts) in problem
