import pytest

from crieur.render.sms import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_SMS_PARTS,
    count_parts,
    encoding_of,
    shape_gsm7,
    shape_sms,
    sms_length,
    split_parts,
)

# 3GPP TS 23.038 §6.2.1, by code: the default alphabet (0x1B is the escape) and the extension table.
DEFAULT_ALPHABET = {
    0x00: "@", 0x01: "£", 0x02: "$", 0x03: "¥", 0x04: "è", 0x05: "é", 0x06: "ù", 0x07: "ì",
    0x08: "ò", 0x09: "Ç", 0x0A: "\n", 0x0B: "Ø", 0x0C: "ø", 0x0D: "\r", 0x0E: "Å", 0x0F: "å",
    0x10: "Δ", 0x11: "_", 0x12: "Φ", 0x13: "Γ", 0x14: "Λ", 0x15: "Ω", 0x16: "Π", 0x17: "Ψ",
    0x18: "Σ", 0x19: "Θ", 0x1A: "Ξ", 0x1C: "Æ", 0x1D: "æ", 0x1E: "ß", 0x1F: "É",
    0x20: " ", 0x21: "!", 0x22: '"', 0x23: "#", 0x24: "¤", 0x25: "%", 0x26: "&", 0x27: "'",
    0x28: "(", 0x29: ")", 0x2A: "*", 0x2B: "+", 0x2C: ",", 0x2D: "-", 0x2E: ".", 0x2F: "/",
    0x40: "¡", 0x5B: "Ä", 0x5C: "Ö", 0x5D: "Ñ", 0x5E: "Ü", 0x5F: "§",
    0x60: "¿", 0x7B: "ä", 0x7C: "ö", 0x7D: "ñ", 0x7E: "ü", 0x7F: "à",
    **{0x30 + digit: str(digit) for digit in range(10)},
    0x3A: ":", 0x3B: ";", 0x3C: "<", 0x3D: "=", 0x3E: ">", 0x3F: "?",
    **{0x41 + offset: chr(ord("A") + offset) for offset in range(26)},
    **{0x61 + offset: chr(ord("a") + offset) for offset in range(26)},
}  # fmt: skip
EXTENSION_TABLE = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|"}
EXTENSION_TABLE[0x65] = "€"


def test_default_alphabet_is_exactly_the_gsm_table() -> None:
    assert len(DEFAULT_ALPHABET) == 127
    assert set(DEFAULT_ALPHABET.values()) == GSM7_BASIC


def test_extension_table_is_exactly_the_gsm_table() -> None:
    assert set(EXTENSION_TABLE.values()) == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize("char", list("éèàùìòÉÇÄÖÜäöüñ"))
def test_french_letters_of_gsm7_are_kept(char: str) -> None:
    assert encoding_of(char) == "GSM-7"
    assert shape_gsm7(char) == char


@pytest.mark.parametrize(
    ("written", "shaped"),
    [
        ("l’école", "l'école"),
        ("‘oui’", "'oui'"),
        ("« Alerte »", '" Alerte "'),
        ("“rouge”", '"rouge"'),
        ("Attention…", "Attention..."),
        ("10\u00a0h", "10 h"),
        ("Alerte\u202f!", "Alerte !"),
        ("5\u2009000", "5 000"),
        ("Crue – évacuation — vite", "Crue - évacuation - vite"),
        ("fenêtre château île côte sûr Noël maïs L'Haÿ", "fenetre chateau ile cote sur Noel mais L'Hay"),
        ("cœur Œuvre", "coeur OEuvre"),
        ("garçon", "garcon"),
        ("ÂÊÎÔÛËÏŸ ÀÈÙ", "AEIOUEIY AEU"),
        ("e\u0301cole", "école"),  # decomposed é is composed, then kept
    ],
)
def test_french_typography_is_shaped_to_gsm7(written: str, shaped: str) -> None:
    assert shape_gsm7(written) == shaped
    assert encoding_of(shaped) == "GSM-7"


def test_what_gsm7_cannot_say_stays_and_makes_ucs2() -> None:
    sms = shape_sms("Orages 🌩 l’après-midi")
    assert sms.text == "Orages 🌩 l’après-midi"  # shaping cannot make it GSM-7: the typography is kept
    assert sms.encoding == "UCS-2"
    assert sms.parts_without_shaping is None
    assert sms.ucs2_characters == ["🌩", "’"]
    assert sms.length == len("Orages  l’après-midi") + 2  # the emoji is a surrogate pair


def test_extension_characters_count_two_septets() -> None:
    assert sms_length("Prix : 5 €") == 11
    assert sms_length("[a]{b}~|\\^") == 16 + 2
    assert encoding_of("€") == "GSM-7"


def test_gsm7_boundaries() -> None:
    assert count_parts("a" * 160) == 1
    assert count_parts("a" * 161) == 2
    for parts in range(2, MAX_SMS_PARTS + 2):
        assert count_parts("a" * (153 * parts)) == parts
        assert count_parts("a" * (153 * parts + 1)) == parts + 1
    assert count_parts("") == 0


def test_ucs2_boundaries() -> None:
    assert count_parts("ê" * 70) == 1
    assert count_parts("ê" * 71) == 2
    for parts in range(2, MAX_SMS_PARTS + 2):
        assert count_parts("ê" * (67 * parts)) == parts
        assert count_parts("ê" * (67 * parts + 1)) == parts + 1


def test_single_sms_may_end_with_an_extension_character() -> None:
    assert count_parts("a" * 158 + "€") == 1
    assert sms_length("a" * 158 + "€") == 160


def test_escape_pair_never_straddles_two_parts() -> None:
    text = "a" * 152 + "€" + "b" * 10  # the € would take septets 153 and 154
    parts = split_parts(text)
    assert parts == ["a" * 152, "€" + "b" * 10]
    assert count_parts("a" * 152 + "€" + "b" * 152) == 3  # 305 septets would fit in 2 parts otherwise


def test_surrogate_pair_never_straddles_two_parts() -> None:
    text = "ê" * 66 + "🌧" + "ê" * 10
    assert split_parts(text) == ["ê" * 66, "🌧" + "ê" * 10]
    assert count_parts("ê" * 66 + "🌧" + "ê" * 66) == 3


def test_parts_join_back_into_the_text() -> None:
    text = "Alerte orange " * 40
    assert "".join(split_parts(text)) == text
    assert all(sms_length(part) <= 153 for part in split_parts(text))


ALERT = (
    "Vigilance rouge « orages » : la préfecture d’Ille-et-Vilaine demande de ne pas sortir ce soir. "
    "Évitez les déplacements, mettez-vous à l’abri et suivez les consignes des autorités… "
    "Les écoles resteront fermées demain\u00a0; la salle des fêtes est ouverte pour l’accueil d’urgence. "
    "Renseignements à la mairie."
)


def test_french_alert_of_300_characters_is_cheaper_shaped() -> None:
    assert 295 <= len(ALERT) <= 305
    plain = shape_sms(ALERT, allow_shaping=False)
    assert plain.encoding == "UCS-2"
    assert plain.text == ALERT
    assert plain.parts == 5  # 300 units / 67
    assert plain.parts_without_shaping is None
    assert set(plain.ucs2_characters) == {"«", "»", "’", "…", "\u00a0", "ê"}

    shaped = shape_sms(ALERT)
    assert shaped.encoding == "GSM-7"
    assert shaped.parts == 2
    assert shaped.parts_without_shaping == 5
    assert shaped.length == len(shaped.text)
    assert '"orages"' not in shaped.text
    assert '" orages "' in shaped.text
    assert "l'abri" in shaped.text
    assert "fetes" in shaped.text
    assert "autorités..." in shaped.text
    assert shaped.ucs2_characters == []


def test_gsm7_text_is_left_alone() -> None:
    sms = shape_sms("Route fermée lundi.")
    assert sms.text == "Route fermée lundi."
    assert sms.encoding == "GSM-7"
    assert sms.parts == 1
    assert sms.length == 19
    assert sms.parts_without_shaping is None
