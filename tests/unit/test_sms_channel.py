"""The SMS channel's rendering: what is sent, how it is counted, what the preview warns about."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from crieur.channels.base import PermanentChannelError
from crieur.channels.sms import (
    COMPOSED_PARTS,
    QuietHours,
    SmsChannel,
    SmsSettings,
    compose_sms,
    is_french_number,
    short_url,
)
from crieur.models import Publication
from crieur.quiet_hours import is_alert
from crieur.render.sms import MAX_SMS_PARTS, shape_sms

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

ALERT_300 = (
    "Vigilance rouge « orages » : la préfecture d’Ille-et-Vilaine demande à chacun de rester chez soi "
    "jusqu’à demain matin… Ne vous engagez pas sur les routes inondées, éloignez-vous des cours d’eau "
    "et des arbres, mettez à l’abri vos véhicules. Écoles fermées ; la salle des fêtes accueille les sinistrés."
)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def publication(body: str = "Coupure d'eau mardi de 8 h à 12 h.", **fields: Any) -> Publication:
    return Publication.model_validate(
        {
            "title": "Coupure d'eau",
            "body": body,
            "id": "pub_01",
            "commune": "35238",
            "status": "publishing",
            "created_at": NOW,
            **fields,
        }
    )


def channel(http: httpx.Client, **settings: Any) -> SmsChannel:
    adapter = SmsChannel(SmsSettings.model_validate({"sender_id": "MAIRIE35", **settings}), None, http)
    adapter.clock = lambda: NOW
    return adapter


@pytest.mark.parametrize("sender_id", ["MAIRIE35", "Rennes", "ABC", "A1234567890"])
def test_sender_ids_that_operators_accept(sender_id: str) -> None:
    assert SmsSettings(sender_id=sender_id).sender_id == sender_id


@pytest.mark.parametrize("sender_id", ["AB", "A12345678901", "12345", "MAIRIE 35", "MAIRIE-35", "Crèche"])
def test_sender_ids_refused_in_french(sender_id: str) -> None:
    with pytest.raises(ValidationError) as refused:
        SmsSettings(sender_id=sender_id)
    assert "au moins une lettre" in str(refused.value)


def test_defaults() -> None:
    settings = SmsSettings(sender_id="MAIRIE35")
    assert settings.allow_gsm7_shaping is True
    assert settings.allow_foreign_numbers is False
    assert settings.max_price_per_part is None


def test_a_short_text_is_title_then_body(http: httpx.Client) -> None:
    rendered = channel(http).render(publication())
    assert rendered.text == "Coupure d'eau\nCoupure d'eau mardi de 8 h à 12 h."
    assert (rendered.encoding, rendered.parts, rendered.parts_without_shaping) == ("GSM-7", 1, None)
    assert rendered.length == len(rendered.text)
    assert rendered.limit == 6 * 153
    assert rendered.warnings == ["1 SMS facturé par destinataire (GSM-7, 48 caractères comptés)."]


def test_the_first_link_without_its_scheme(http: httpx.Client) -> None:
    links = [{"url": "https://www.rennes.fr/travaux", "label": "Plan"}, {"url": "https://example.fr/autre"}]
    rendered = channel(http).render(publication(links=links))
    assert rendered.text is not None
    assert rendered.text.endswith("\nwww.rennes.fr/travaux")
    assert "example.fr" not in rendered.text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://vigilance.meteofrance.fr/", "vigilance.meteofrance.fr"),
        ("https://rennes.fr/a/", "rennes.fr/a/"),
        ("http://127.0.0.1:3000/x", "http://127.0.0.1:3000/x"),
    ],
)
def test_short_url(url: str, shown: str) -> None:
    assert short_url(url) == shown


def test_typography_is_shaped_and_the_saving_said(http: httpx.Client) -> None:
    pub = publication(ALERT_300, title="Alerte orages", category="weather", urgency="critical")
    rendered = channel(http).render(pub)
    assert rendered.text is not None
    assert "’" not in rendered.text
    assert "«" not in rendered.text
    assert "…" not in rendered.text
    assert rendered.encoding == "GSM-7"
    assert rendered.parts == COMPOSED_PARTS
    assert rendered.parts_without_shaping is not None
    assert rendered.parts_without_shaping > rendered.parts
    assert (
        f"{rendered.parts} parties au lieu de {rendered.parts_without_shaping} grâce à l'adaptation des caractères."
        in rendered.warnings
    )


def test_a_300_character_override_is_five_ucs2_parts_or_two_gsm7_parts(http: httpx.Client) -> None:
    assert len(ALERT_300) == 300
    pub = publication(overrides={"sms": {"text": ALERT_300}}, channels=["sms"])
    shaped = channel(http).render(pub)
    assert (shaped.encoding, shaped.parts, shaped.parts_without_shaping) == ("GSM-7", 2, 5)
    assert "2 parties au lieu de 5 grâce à l'adaptation des caractères." in shaped.warnings
    as_written = channel(http, allow_gsm7_shaping=False).render(pub)
    assert as_written.text == ALERT_300
    assert (as_written.encoding, as_written.parts, as_written.parts_without_shaping) == ("UCS-2", 5, None)
    assert as_written.limit == 6 * 67
    (ucs2,) = [warning for warning in as_written.warnings if warning.startswith("Caractères hors GSM-7")]
    assert "’" in ucs2
    assert "«" in ucs2
    assert "(allow_gsm7_shaping) le ferait tenir en 2." in ucs2


def test_a_body_that_fits_once_shaped_is_kept_whole(http: httpx.Client) -> None:
    body = ("Réunion publique à la salle des fêtes sur le plan d’urbanisme. " * 4)[:200]
    shaped = channel(http).render(publication(body))
    assert shaped.parts == 2
    assert not any("raccourci" in warning for warning in shaped.warnings)
    as_written = channel(http, allow_gsm7_shaping=False).render(publication(body))
    assert as_written.encoding == "UCS-2"
    assert any("raccourci" in warning for warning in as_written.warnings)


@pytest.mark.parametrize("allow_shaping", [True, False])
@pytest.mark.parametrize("size", [400, 1_000, 10_000])
def test_a_long_body_is_condensed_to_the_composed_parts(http: httpx.Client, allow_shaping: bool, size: int) -> None:
    body = ("Réunion publique à la salle des fêtes sur le plan d’urbanisme. " * 200)[:size]
    links = [{"url": "https://www.rennes.fr/plu"}]
    rendered = channel(http, allow_gsm7_shaping=allow_shaping).render(publication(body, links=links))
    assert rendered.text is not None
    assert rendered.parts is not None
    assert rendered.parts <= COMPOSED_PARTS
    assert rendered.text.startswith("Coupure d'eau\nRéunion publique")
    assert rendered.text.endswith("...\nwww.rennes.fr/plu")
    assert shape_sms(rendered.text, allow_shaping).text == rendered.text  # what is sent is what was counted
    assert any("raccourci pour tenir en 2 SMS" in warning for warning in rendered.warnings)


def test_an_ellipsis_of_crieur_never_makes_a_gsm7_text_ucs2(http: httpx.Client) -> None:
    body = "Les travaux de voirie continuent rue de la Gare. " * 20  # GSM-7 only
    rendered = channel(http, allow_gsm7_shaping=False).render(publication(body))
    assert rendered.encoding == "GSM-7"
    assert rendered.parts == 2


def test_an_override_is_sent_as_written(http: httpx.Client) -> None:
    pub = publication(overrides={"sms": {"text": "  Eau coupée mardi 8h-12h.  "}}, channels=["sms"])
    assert channel(http).render(pub).text == "Eau coupée mardi 8h-12h."


@pytest.mark.parametrize(
    ("text", "parts"),
    [("a" * 918, 6), ("a" * 919, 7), ("é" * 918, 6), ("ê" * 402, 6), ("€" * 460, 7)],
)
def test_override_problem_over_six_parts(http: httpx.Client, text: str, parts: int) -> None:
    problem = channel(http, allow_gsm7_shaping=False).override_problem(text)
    if parts <= MAX_SMS_PARTS:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(f"Ce SMS ferait {parts} parties (")
        assert "au plus 6" in problem


def test_shaping_counts_for_the_override_problem(http: httpx.Client) -> None:
    text = "’" * 500  # 8 UCS-2 parts as written, 4 GSM-7 parts once shaped
    assert channel(http).override_problem(text) is None
    problem = channel(http, allow_gsm7_shaping=False).override_problem(text)
    assert problem is not None
    assert problem.startswith("Ce SMS ferait 8 parties (UCS-2, 500 caractères comptés)")


@pytest.mark.parametrize(
    ("fields", "alert"),
    [
        ({}, False),
        ({"category": "works"}, False),
        ({"category": "alert"}, True),
        ({"category": "weather"}, True),
        ({"urgency": "high"}, True),
        ({"urgency": "critical", "category": "news"}, True),
    ],
)
def test_alerts_are_transactional(http: httpx.Client, fields: dict[str, Any], alert: bool) -> None:
    pub = publication(**fields)
    assert is_alert(pub) is alert
    assert channel(http).render(pub).payload["transactional"] is alert


def test_time_to_live_follows_the_expiry(http: httpx.Client) -> None:
    assert channel(http).render(publication()).payload["ttl"] == 24 * 3600
    soon = publication(expires_at=NOW + timedelta(hours=2))
    assert channel(http).render(soon).payload["ttl"] == 2 * 3600
    late = publication(expires_at=NOW + timedelta(days=30))
    assert channel(http).render(late).payload["ttl"] == 259_200


@pytest.mark.parametrize(
    ("number", "french"),
    [
        ("+33612345678", True),
        ("+262692123456", True),  # La Réunion
        ("+262639012345", True),  # Mayotte
        ("+590690123456", True),  # Guadeloupe
        ("+687751234", True),  # Nouvelle-Calédonie
        ("+2693212345", False),  # Comores
        ("+32470123456", False),
        ("+33", False),
    ],
)
def test_french_numbers(number: str, french: bool) -> None:
    assert is_french_number(number) is french


def test_compose_keeps_the_title_when_nothing_else_fits() -> None:
    pub = publication(title="Î" * 140, links=[{"url": "https://example.fr/" + "x" * 300}])
    sms, condensed = compose_sms(pub, allow_shaping=False)
    assert sms.text == "Î" * 140
    assert condensed


def test_when_not_even_an_ellipsis_of_the_body_fits_the_title_and_link_go_alone() -> None:
    # Title and link fill two UCS-2 parts (134 units) to the last unit; the body is one link, never cut.
    link = "https://www.exemple-commune.fr/"
    title = "Coupure 👨\u200d👩\u200d👧 " + "x" * (
        134 - len("Coupure 👨\u200d👩\u200d👧 ") - 1 - len(short_url(link)) - 3
    )
    pub = publication(body="https://agenda.exemple-commune.fr/" + "evenement" * 20, title=title, links=[{"url": link}])

    sms, condensed = compose_sms(pub, allow_shaping=False)

    assert (sms.text, sms.parts, condensed) == (f"{title}\n{short_url(link)}", 2, True)


def test_the_preview_says_when_a_non_urgent_sms_will_go_out(http: httpx.Client) -> None:
    adapter = channel(http)
    adapter.clock = lambda: datetime(2026, 11, 28, 22, 30, tzinfo=UTC)  # Saturday 23:30 in Paris
    quiet = (
        "Heures légales de silence : ces SMS partiront le lundi 30 novembre à 8 h (une alerte partirait à toute heure)."
    )
    assert quiet in adapter.render(publication()).warnings
    assert not any("silence" in warning for warning in adapter.render(publication(category="alert")).warnings)
    assert not any("silence" in warning for warning in channel(http).render(publication()).warnings)  # Friday noon


def test_a_publication_that_expired_while_waiting_is_not_sent(http: httpx.Client) -> None:
    adapter = channel(http)
    rendered = adapter.render(publication(expires_at=NOW + timedelta(hours=1)))
    adapter.clock = lambda: NOW + timedelta(hours=2)
    with pytest.raises(PermanentChannelError, match="expiré"):
        adapter.send_chunk(rendered, ["sub_1"])


def test_a_non_urgent_chunk_waits_for_the_legal_hours(http: httpx.Client) -> None:
    adapter = channel(http)
    adapter.clock = lambda: datetime(2026, 11, 28, 22, 30, tzinfo=UTC)  # Saturday 23:30 in Paris
    with pytest.raises(QuietHours) as waiting:
        adapter.send_chunk(adapter.render(publication()), ["sub_1"])
    assert waiting.value.at == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # Monday 8:00 in Paris
    assert waiting.value.retry_after == 32.5 * 3600
    assert "envoi le lundi 30 novembre à 8 h" in waiting.value.message
