from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from crieur.models import PublicationRequest, as_utc, departement_of
from crieur.problems import field_path, french_message


def errors_of(**fields: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        PublicationRequest.model_validate(fields)
    return {field_path(item["loc"]): french_message(item) for item in caught.value.errors()}


def test_minimal_request_gets_defaults() -> None:
    request = PublicationRequest(title="  Marché de Noël ", body="Samedi sur la place.")
    assert request.title == "Marché de Noël"
    assert (request.category, request.urgency, request.channels) == ("news", "normal", None)


def test_unknown_field_is_refused_and_named() -> None:
    assert errors_of(title="t", body="b", colour="red") == {"colour": "Champ inconnu : il n'est pas accepté."}


def test_plain_http_link_is_refused() -> None:
    errors = errors_of(title="t", body="b", links=[{"url": "http://mairie.example.fr"}])
    assert "https://" in errors["links[0].url"]


def test_media_needs_alt_text() -> None:
    errors = errors_of(title="t", body="b", media=[{"url": "https://mairie.example.fr/a.jpg"}])
    assert errors == {"media[0].alt": "Ce champ est obligatoire."}


def test_lengths_are_bounded_with_french_messages() -> None:
    errors = errors_of(title="x" * 141, body="")
    assert errors["title"] == "Trop long : au plus 140 caractères."
    assert errors["body"] == "Trop court : au moins 1 caractère(s)."


def test_unknown_channel_and_category_are_refused() -> None:
    errors = errors_of(title="t", body="b", channels=["myspace"], category="gossip")
    assert "webhook" in errors["channels[0]"]
    assert errors["category"].startswith("Valeur non permise")


def test_event_category_requires_event() -> None:
    errors = errors_of(title="t", body="b", category="event")
    assert errors == {"event": "Une publication de catégorie « event » doit préciser l'événement (event)."}


def test_override_for_a_channel_not_targeted_is_refused() -> None:
    errors = errors_of(title="t", body="b", channels=["webhook"], overrides={"mastodon": {"text": "x"}})
    assert "mastodon" in errors["overrides"]


def test_duplicate_channels_are_refused() -> None:
    assert errors_of(title="t", body="b", channels=["webhook", "webhook"]) == {
        "channels": "Un canal est cité deux fois."
    }


def test_naive_times_are_paris_wall_time_stored_in_utc() -> None:
    assert as_utc(datetime(2026, 1, 15, 8, 0)) == datetime(2026, 1, 15, 7, 0, tzinfo=UTC)
    assert as_utc(datetime(2026, 7, 15, 8, 0)) == datetime(2026, 7, 15, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("insee", "departement"), [("35238", "35"), ("2A004", "2A"), ("97411", "974"), ("01001", "01")]
)
def test_departement_follows_from_insee(insee: str, departement: str) -> None:
    assert departement_of(insee) == departement


@pytest.mark.parametrize("insee", ["3523", "352388", "2C004", "abcde"])
def test_invalid_insee_is_refused(insee: str) -> None:
    with pytest.raises(ValueError, match="INSEE"):
        departement_of(insee)


def test_plain_http_is_only_for_the_local_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    local = {"title": "t", "body": "b", "media": [{"url": "http://127.0.0.1:3001/a.jpg", "alt": "a"}]}
    assert "https://" in errors_of(**local)["media[0].url"]
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    assert PublicationRequest.model_validate(local).media[0].url.host == "127.0.0.1"
    assert "https://" in errors_of(title="t", body="b", links=[{"url": "http://mairie.example.fr"}])["links[0].url"]


@pytest.mark.parametrize(
    ("wall_time", "why"),
    [
        ("2027-03-28T02:30:00", "n'existe pas à Paris"),  # last Sunday of March: 02:00 → 03:00
        ("2027-10-31T02:30:00", "a lieu deux fois à Paris"),  # last Sunday of October: 03:00 → 02:00
    ],
)
def test_a_publish_time_that_daylight_saving_skips_or_repeats_is_refused(wall_time: str, why: str) -> None:
    assert why in errors_of(title="t", body="b", publish_at=wall_time)["publish_at"]


def test_around_daylight_saving_an_offset_or_another_hour_is_exact() -> None:
    assert PublicationRequest(title="t", body="b", publish_at="2027-03-28T03:30:00").publish_at == datetime(
        2027, 3, 28, 1, 30, tzinfo=UTC
    )
    assert PublicationRequest(title="t", body="b", publish_at="2027-10-31T02:30:00+01:00").publish_at == datetime(
        2027, 10, 31, 1, 30, tzinfo=UTC
    )
    assert PublicationRequest(title="t", body="b", publish_at="2027-10-31T02:30:00+02:00").publish_at == datetime(
        2027, 10, 31, 0, 30, tzinfo=UTC
    )


def test_a_publish_time_in_the_past_or_too_far_is_refused() -> None:
    assert "déjà passée" in errors_of(title="t", body="b", publish_at="2020-01-01T08:00:00")["publish_at"]
    assert "un an" in errors_of(title="t", body="b", publish_at="2099-01-01T08:00:00")["publish_at"]
