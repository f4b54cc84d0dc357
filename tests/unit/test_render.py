from datetime import UTC, datetime

import pytest

from crieur.models import Publication
from crieur.render.text import HASHTAGS, compose, weighted_length


def url23(text: str) -> int:
    return weighted_length(text, 23)


def publication(body: str, links: list[dict[str, str]] | None = None, title: str = "Route fermée") -> Publication:
    return Publication(
        title=title,
        body=body,
        links=links or [],
        id="pub_01",
        commune="35238",
        status="publishing",
        created_at=datetime(2026, 11, 27, tzinfo=UTC),
    )


def test_short_publication_is_kept_whole() -> None:
    text = compose(publication("La rue de l'Église est fermée lundi."), 500, url23)
    assert text == "Route fermée\n\nLa rue de l'Église est fermée lundi."


def test_urls_weigh_23() -> None:
    assert weighted_length("voir https://example.fr/" + "a" * 200, 23) == len("voir ") + 23


@pytest.mark.parametrize("size", [1, 100, 480, 499, 500, 501, 2_000, 10_000])
def test_long_bodies_are_cut_between_words_and_keep_title_and_links(size: int) -> None:
    body = ("déviation " * (size // 10 + 1))[:size]
    links = [{"url": "https://mairie.example.fr/travaux/" + "x" * 80, "label": "Plan"}]
    text = compose(publication(body, links), 500, url23)
    assert weighted_length(text, 23) <= 500
    assert text.startswith("Route fermée\n\n")
    assert text.endswith("Plan : https://mairie.example.fr/travaux/" + "x" * 80)
    if size > 400:
        assert "…" in text
        assert "déviatio…" not in text


def test_override_replaces_composition_but_still_fits() -> None:
    text = compose(publication("ignored"), 50, url23, override="Texte choisi pour Mastodon " * 5)
    assert text.startswith("Texte choisi")
    assert weighted_length(text, 23) <= 50


def test_many_links_crowd_out_the_body_but_never_overflow() -> None:
    links = [{"url": f"https://example.fr/{index}", "label": "lien " * 10} for index in range(10)]
    text = compose(publication("corps " * 100, links), 300, url23)
    assert weighted_length(text, 23) <= 300
    assert text.startswith("Route fermée")


def test_hashtag_of_the_category_is_added_when_asked_and_it_fits() -> None:
    short = compose(publication("Fermeture exceptionnelle."), 500, url23, hashtag=True)
    assert short.endswith("\n\n#actualité")
    assert HASHTAGS["works"] == "#travaux"
    tight = compose(publication("mot " * 50), 40, url23, hashtag=True)
    assert "#" not in tight
    assert url23(tight) <= 40


def test_text_is_nfc_normalised_before_it_is_counted() -> None:
    decomposed = "Cafe\u0301 de l'e\u0301glise"
    text = compose(publication(decomposed, title="Re\u0301union"), 500)
    assert text == "Réunion\n\nCafé de l'église"
