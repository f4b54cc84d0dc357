"""Département ↔ NUTS 3 (2021 and 2013) and EMMA_ID tables."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from crieur.weather.departments import (
    DEPARTEMENT_NAMES,
    EMMA_IDS,
    METROPOLITAN_DEPARTEMENTS,
    NUTS3_2013,
    NUTS3_2021,
    departement_from_emma_id,
    departement_from_nuts3,
    departement_name,
    departement_with_article,
)
from crieur.weather.meteoalarm import parse_atom

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "weather"

EXPECTED_CODES = {f"{n:02d}" for n in range(1, 96) if n != 20} | {"2A", "2B"}


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if c.isalnum())


def test_there_are_96_metropolitan_departements() -> None:
    assert METROPOLITAN_DEPARTEMENTS == EXPECTED_CODES
    assert len(METROPOLITAN_DEPARTEMENTS) == 96
    assert set(DEPARTEMENT_NAMES) == EXPECTED_CODES


@pytest.mark.parametrize("table", [NUTS3_2021, NUTS3_2013], ids=["NUTS2021", "NUTS2013"])
def test_each_nuts_table_covers_96_departements_one_to_one_and_round_trips(table: dict[str, str]) -> None:
    assert set(table) == EXPECTED_CODES
    assert len(set(table.values())) == 96
    for departement, code in table.items():
        assert code.startswith("FR")
        assert len(code) == 5
        assert departement_from_nuts3(code) == departement
        assert departement_from_nuts3(code.lower()) == departement


def test_the_two_vintages_never_disagree() -> None:
    # Only Île-de-France kept its codes (FR101-FR108); no other code exists in both vintages.
    shared = set(NUTS3_2021.values()) & set(NUTS3_2013.values())
    assert shared == {f"FR10{n}" for n in range(1, 9)}
    for departement in METROPOLITAN_DEPARTEMENTS:
        if NUTS3_2013[departement] in shared:
            assert NUTS3_2013[departement] == NUTS3_2021[departement]


def test_nuts_codes_follow_departement_order_inside_each_region() -> None:
    # Eurostat numbers NUTS 3 regions in département order within their NUTS 2 region; a swapped pair
    # (for instance Savoie and Haute-Savoie) breaks this.
    for table in (NUTS3_2021, NUTS3_2013):
        by_region: dict[str, list[tuple[str, str]]] = {}
        for departement, code in table.items():
            by_region.setdefault(code[:4], []).append((code, departement))
        for members in by_region.values():
            members.sort()
            departements = [dep for _, dep in members]
            assert departements == sorted(departements)
            assert [int(code[4]) for code, _ in members] == list(range(1, len(members) + 1))


def test_old_regions_nest_in_the_new_ones() -> None:
    # 2016 merged regions: every NUTS 2013 region lies inside exactly one NUTS 2021 region.
    parents: dict[str, set[str]] = {}
    for departement in METROPOLITAN_DEPARTEMENTS:
        parents.setdefault(NUTS3_2013[departement][:4], set()).add(NUTS3_2021[departement][:4])
    assert all(len(new) == 1 for new in parents.values())


@pytest.mark.parametrize(
    ("code", "departement"),
    [
        ("FR101", "75"),
        ("FRK28", "74"),
        ("FR718", "74"),
        ("FRK27", "73"),
        ("FR717", "73"),
        ("FRK24", "38"),
        ("FR714", "38"),
        ("FRL01", "04"),
        ("FR821", "04"),
        ("FRL04", "13"),
        ("FR824", "13"),
        ("FRM01", "2A"),
        ("FR832", "2B"),
        ("FRJ23", "31"),
        ("FRE11", "59"),
        ("FRF11", "67"),
        ("FRI12", "33"),
        ("FRH02", "29"),
        ("FRB06", "45"),
        ("FRC24", "90"),
    ],
)
def test_known_codes(code: str, departement: str) -> None:
    assert departement_from_nuts3(code) == departement


@pytest.mark.parametrize("code", ["FRY10", "FRY50", "FRA10", "FR1", "FRK", "FRZZZ", "DE111", ""])
def test_overseas_and_foreign_codes_map_to_nothing(code: str) -> None:
    assert departement_from_nuts3(code) is None


def test_names_and_articles() -> None:
    assert departement_name("2A") == "Corse-du-Sud"
    assert departement_with_article("13") == "les Bouches-du-Rhône"
    assert departement_with_article("01") == "l'Ain"
    assert departement_with_article("75") == "Paris"
    assert departement_with_article("45") == "le Loiret"
    for code in METROPOLITAN_DEPARTEMENTS:
        assert departement_with_article(code).endswith(departement_name(code))


def test_real_feed_geocodes_emma_ids_and_area_names_agree() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(f"weather fixtures folder absent: {FIXTURES}")
    feed = parse_atom((FIXTURES / "meteoalarm-france-atom-feed.xml").read_bytes())
    assert feed.entries
    for entry in feed.entries:
        nuts = dict(entry.geocodes)["NUTS3"]
        assert entry.emma_id is not None
        from_nuts = departement_from_nuts3(nuts)
        assert from_nuts is not None
        assert departement_from_emma_id(entry.emma_id) == from_nuts
        assert entry.area is not None
        assert _plain(entry.area) == _plain(departement_name(from_nuts))
    assert {departement_from_nuts3(dict(e.geocodes)["NUTS3"]) for e in feed.entries} == set(EMMA_IDS.values())
