"""The pasted widget leaves out an alert that expired after the block was generated (until the next
regeneration rewrites it), so a stale "vigilance rouge" never lingers on the commune's site."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from playwright.sync_api import Page

from crieur.channels.website import widget_fragment, widget_script
from crieur.models import utc_now


def _alert(identifier: str, title: str, expires_in: timedelta) -> dict[str, Any]:
    now = utc_now()
    return {
        "id": identifier,
        "title": title,
        "body": "Restez chez vous.",
        "category": "alert",
        "urgency": "critical",
        "links": [],
        "media": [],
        "event": None,
        "published_at": (now - timedelta(hours=2)).isoformat(),
        "created_at": (now - timedelta(hours=2)).isoformat(),
        "expires_at": (now + expires_in).isoformat(),
    }


def _show(page: Page, alerts: list[dict[str, Any]]) -> None:
    script = widget_script(widget_fragment("Mairie de Test", alerts, alerts)).decode()
    page.set_content(f'<!doctype html><html lang="fr"><body><main><script>{script}</script></main></body></html>')


def test_an_expired_alert_is_left_out_and_a_current_one_kept(page: Page) -> None:
    _show(
        page,
        [_alert("gone", "Crue terminée", -timedelta(minutes=5)), _alert("now", "Crue en cours", timedelta(hours=3))],
    )
    assert page.locator(".crieur-alert h3").all_inner_texts() == ["Crue en cours"]
    assert page.get_by_role("heading", name="Alertes en cours").count() == 1


def test_when_every_alert_expired_the_alert_heading_goes_too(page: Page) -> None:
    _show(page, [_alert("gone", "Crue terminée", -timedelta(minutes=5))])
    assert page.locator(".crieur-alert").count() == 0
    assert page.get_by_role("heading", name="Alertes en cours").count() == 0
    assert page.get_by_role("heading", name="Mairie de Test").count() == 1
