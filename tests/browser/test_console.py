"""Issue 8: the mairie's console in a real Chromium against the local stack: the key typed once, a publication
with an image written, previewed per channel, published and followed until every channel is `sent`, one
scheduled then cancelled, bad input shown next to its field, the draft kept across a reload, and an axe-core
audit (WCAG 2.1 A/AA) with no serious or critical violation on every page. Screenshots of each step."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from crieur.models import PARIS, utc_now
from infra.local.stack import LocalStack

Audit = Callable[..., list[dict[str, Any]]]
Shoot = Callable[[Page, str], Path]
PHOTO_ALT = "La mairie vue depuis la place, sous le soleil"


@pytest.fixture
def console(page: Page, stack: LocalStack) -> Page:
    """The console, signed in with the demo commune's key (typed into the page, as a secretary does)."""
    page.goto(f"{stack.api_url}/console/")
    page.get_by_label("Clé d'API de la commune").fill(stack.demo_api_key)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Écrire une publication")
    return page


def write(page: Page, title: str, body: str) -> None:
    page.get_by_label("Titre", exact=True).fill(title)
    page.get_by_label("Texte", exact=True).fill(body)


def add_image(page: Page, url: str, alt: str) -> None:
    page.get_by_role("button", name="Ajouter une image ou une vidéo").click()
    page.get_by_label("Adresse de l'image ou de la vidéo 1").fill(url)
    page.get_by_label("Texte alternatif 1 (obligatoire)").fill(alt)


def deliveries(page: Page) -> dict[str, str]:
    rows = page.locator("tbody tr[data-channel]")
    return {
        rows.nth(i).get_attribute("data-channel") or "": rows.nth(i).get_attribute("data-status") or ""
        for i in range(rows.count())
    }


def test_the_key_is_asked_once_and_never_put_in_the_address(
    page: Page, stack: LocalStack, axe_violations: Audit, screenshot: Shoot
) -> None:
    page.goto(f"{stack.api_url}/console")  # without the slash: redirected
    expect(page).to_have_url(f"{stack.api_url}/console/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Se connecter")
    assert axe_violations(page) == []
    # Keyboard only: Tab goes to the skip link, then to the field; type, Enter.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Aller au contenu")).to_be_focused()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "key"
    page.keyboard.type("crieur_pas_la_bonne_cle")
    page.keyboard.press("Enter")
    key = page.get_by_label("Clé d'API de la commune")
    expect(key).to_have_attribute("aria-invalid", "true")
    error = page.locator("#f-key-error")
    expect(error).to_be_visible()
    assert "f-key-error" in (key.get_attribute("aria-describedby") or "")
    screenshot(page, "wrong-key")
    key.fill(stack.demo_api_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Écrire une publication")
    assert stack.demo_api_key not in page.url
    assert page.evaluate("sessionStorage.getItem('crieur.key')") == stack.demo_api_key
    assert stack.demo_api_key not in (page.evaluate("JSON.stringify(localStorage)") or "")
    page.reload()  # the tab keeps it
    expect(page.get_by_role("heading", level=1)).to_have_text("Écrire une publication")
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Se connecter")
    assert page.evaluate("sessionStorage.getItem('crieur.key')") is None


@pytest.fixture(scope="module")
def residents(stack: LocalStack) -> None:
    """One browser subscribed to the website's notifications and one resident confirmed by SMS and by e-mail:
    with nobody, the channels that go to residents are skipped."""
    public = httpx.Client(base_url=f"{stack.api_url}/public/{stack.demo_insee}", timeout=30)
    browser = stack.sandbox.imitations["/webpush"].new_subscription()  # type: ignore[attr-defined]
    assert public.post("/webpush/subscriptions", json=browser).status_code == 201
    resident = {"phone": "06 98 76 54 32", "email": "habitant@example.fr", "consent_version": "2026-11"}
    answer = public.post("/subscriptions", json=resident)
    assert answer.status_code == 202, answer.text
    texts = stack.sandbox.imitations["/sms"].messages  # type: ignore[attr-defined]
    mails = stack.sandbox.imitations["/ses"].emails  # type: ignore[attr-defined]

    def to_resident() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return (
            [m for m in texts() if m["destination"] == "+33698765432"],
            [m for m in mails() if "habitant@example.fr" in m["to"]],
        )

    deadline = time.monotonic() + 30
    while not all(to_resident()):
        assert time.monotonic() < deadline, "no confirmation message"
        time.sleep(0.2)
    (text, *_), (mail, *_) = to_resident()
    code = re.search(r"\b(\d{6})\b", text["body"])
    assert code is not None
    confirmed = public.post("/subscriptions/confirm", json={"phone": resident["phone"], "code": code.group(1)})
    assert confirmed.status_code == 200, confirmed.text
    link = re.search(r"https?://\S+/subscriptions/confirm\?token=\S+", mail["text"])
    assert link is not None
    assert httpx.get(link.group(0), timeout=30).status_code == 200


@pytest.mark.usefixtures("residents")
def test_write_preview_publish_and_watch_every_channel_turn_sent(
    console: Page, stack: LocalStack, api: httpx.Client, axe_violations: Audit, screenshot: Shoot
) -> None:
    page = console
    write(
        page, "Travaux rue de l'Église", "La rue de l'Église sera fermée lundi de 8 h à 12 h. Déviation par la place."
    )
    page.get_by_label("Catégorie").select_option("works")
    # Important: an SMS goes out at any hour (one that is not waits for the legal hours, 8 h-22 h, not Sundays).
    page.get_by_label("Urgence").select_option("high")
    add_image(page, stack.sandbox.demo_photo_url(), PHOTO_ALT)
    page.get_by_role("button", name="Ajouter un lien").click()
    page.get_by_label("Adresse du lien 1").fill("https://www.example.fr/travaux")
    page.get_by_label("Texte du lien 1 (facultatif)").fill("Le plan de la déviation")

    # The preview, side by side, one card per channel, with the counted length and the image kept.
    mastodon = page.locator('.preview article[data-channel="mastodon"]')
    expect(mastodon).to_contain_text("Travaux rue de l'Église")
    expect(mastodon.locator(".count")).to_contain_text(re.compile(r"\d+ / 500 caractères"))
    expect(mastodon.locator(".media")).to_contain_text(f"Média joint : {PHOTO_ALT}")
    expect(page.locator(".preview [role=status]")).to_contain_text("Coût estimé")
    channels = [box.get_attribute("value") for box in page.locator('input[name="channels"]').all()]
    assert {"mastodon", "website", "instagram"} <= set(channels)
    expect(page.locator(".preview article[data-channel]")).to_have_count(len(channels))
    assert {"sms", "email", "webpush"} <= set(channels)  # residents subscribed (see `residents`)
    for name in channels:
        assert "Aucun abonné" not in page.locator(f'.preview article[data-channel="{name}"]').inner_text()
    # A per-channel text.
    page.get_by_role("button", name="Personnaliser pour Mastodon").click()
    override = page.get_by_label("Texte pour Mastodon")
    expect(override).to_be_focused()
    override.fill("Travaux rue de l'Église lundi matin : déviation par la place. #travaux")
    expect(mastodon.locator(".text")).to_have_text(
        "Travaux rue de l'Église lundi matin : déviation par la place. #travaux"
    )
    screenshot(page, "preview")
    assert axe_violations(page) == []

    before = len(api.get("/v1/publications", params={"limit": 100}).json()["items"])
    page.get_by_role("button", name="Publier maintenant").dblclick()  # a double click publishes once
    expect(page.get_by_role("heading", level=1)).to_have_text("Travaux rue de l'Église")
    screenshot(page, "publishing")
    expect(page.locator(".facts .badge")).to_have_text("Publiée", timeout=40_000)
    statuses = deliveries(page)
    assert set(statuses) == set(channels)
    assert statuses == dict.fromkeys(channels, "sent"), statuses  # every channel turns `sent`
    expect(page.get_by_role("link", name="Voir sur Mastodon")).to_be_visible()
    screenshot(page, "sent")
    assert axe_violations(page) == []
    assert len(api.get("/v1/publications", params={"limit": 100}).json()["items"]) == before + 1
    publication_id = page.url.rsplit("/", 1)[1]
    sent = api.get(f"/v1/publications/{publication_id}").json()
    assert sent["overrides"]["mastodon"]["text"].endswith("#travaux")
    assert sent["media"] == [{"url": stack.sandbox.demo_photo_url(), "alt": PHOTO_ALT, "kind": "image"}]
    # Retracted everywhere the network allows it, after a confirmation.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Retirer partout").click()
    expect(page.locator(".facts .badge")).to_have_text("Retirée")
    expect(page.locator('tr[data-channel="mastodon"]')).to_have_attribute("data-status", "retracted", timeout=30_000)
    expect(page.locator('tr[data-channel="instagram"]')).to_have_attribute("data-status", "retract_unsupported")
    screenshot(page, "retracted")
    # The draft is gone once published.
    page.get_by_role("link", name="Écrire une autre publication").click()
    expect(page.get_by_label("Titre", exact=True)).to_have_value("")


def test_schedule_then_cancel(console: Page, axe_violations: Audit, screenshot: Shoot) -> None:
    page = console
    write(page, "Conseil municipal", "Le conseil municipal se réunit jeudi à 20 h en mairie.")
    page.get_by_label("Catégorie").select_option("council")
    page.get_by_label("À une date et une heure").check()
    when = (utc_now() + timedelta(days=2)).astimezone(PARIS).replace(hour=18, minute=30, second=0, microsecond=0)
    page.get_by_label("Date et heure de publication (heure de Paris)").fill(when.strftime("%Y-%m-%dT%H:%M"))
    screenshot(page, "schedule")
    page.get_by_role("button", name="Programmer").click()
    expect(page.locator(".facts .badge")).to_have_text("Programmée")
    expect(page.locator(".facts")).to_contain_text(f"programmée pour le {when.strftime('%d/%m/%Y %H:%M')}")
    assert axe_violations(page) == []
    screenshot(page, "scheduled")
    page.get_by_role("button", name="Annuler la programmation").click()
    expect(page.locator(".facts .badge")).to_have_text("Annulée")
    expect(page.get_by_role("status").first).to_contain_text("Programmation annulée")
    assert set(deliveries(page).values()) == {"cancelled"}
    screenshot(page, "cancelled")

    page.get_by_role("link", name="Agenda et historique").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Agenda et historique")
    page.get_by_label("Catégorie").select_option("council")
    expect(page.get_by_role("link", name="Conseil municipal").first).to_be_visible()
    page.get_by_label("État").select_option("cancelled")
    expect(page.locator("tbody tr[data-id] .badge").first).to_have_text("Annulée")
    screenshot(page, "history")
    assert axe_violations(page) == []


def test_bad_input_is_shown_next_to_its_field_and_the_draft_survives(
    console: Page, stack: LocalStack, axe_violations: Audit, screenshot: Shoot
) -> None:
    page = console
    write(page, "Fête de la musique", "Concerts place de la Mairie à partir de 18 h.")
    add_image(page, stack.sandbox.demo_photo_url(), "")
    page.get_by_role("button", name="Publier maintenant").click()
    alt = page.get_by_label("Texte alternatif 1 (obligatoire)")
    expect(alt).to_have_attribute("aria-invalid", "true")
    error = page.locator("#f-media-0-alt-error")
    expect(error).to_be_visible()
    assert "f-media-0-alt-error" in (alt.get_attribute("aria-describedby") or "")
    expect(page.locator(".summary")).to_be_focused()
    screenshot(page, "field-error")
    assert axe_violations(page) == []
    # The summary links to the field.
    page.locator(".summary a").first.click()
    expect(alt).to_be_focused()
    # An event without its start: shown next to the start.
    page.get_by_label("Catégorie").select_option("event")
    page.get_by_role("button", name="Publier maintenant").click()
    starts = page.get_by_label("Début (heure de Paris)")
    expect(starts).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-event-starts_at-error")).to_contain_text("obligatoire")
    page.get_by_label("Catégorie").select_option("news")

    # A lost connection or a reload loses nothing: the draft is kept in this browser.
    page.reload()
    expect(page.get_by_label("Titre", exact=True)).to_have_value("Fête de la musique")
    expect(page.get_by_label("Adresse de l'image ou de la vidéo 1")).to_have_value(stack.sandbox.demo_photo_url())
    expect(page.get_by_text("Brouillon retrouvé")).to_be_visible()
    page.context.set_offline(True)
    page.get_by_role("button", name="Publier maintenant").click()
    expect(page.locator(".summary")).to_contain_text("Connexion perdue")
    page.context.set_offline(False)
    expect(page.get_by_label("Texte", exact=True)).to_have_value("Concerts place de la Mairie à partir de 18 h.")
    # Nor does a 5xx: the message says so, and the draft stays in this browser.
    page.route(
        "**/v1/publications", lambda route: route.fulfill(status=503, content_type="application/json", body="{}")
    )
    page.get_by_role("button", name="Publier maintenant").click()
    expect(page.locator(".summary")).to_contain_text("Service indisponible")
    page.unroute("**/v1/publications")
    assert "Fête de la musique" in page.evaluate("localStorage.getItem('crieur.draft')")
    screenshot(page, "offline")


@pytest.mark.parametrize("page_name", ["Canaux", "Alertes météo", "Consommation"])
def test_settings_pages_are_accessible(console: Page, axe_violations: Audit, screenshot: Shoot, page_name: str) -> None:
    page = console
    page.get_by_role("navigation", name="Menu principal").get_by_role("link", name=page_name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(page_name)
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    screenshot(page, page_name)
    assert axe_violations(page) == []


def test_a_channel_is_tested_and_bad_settings_are_refused_next_to_the_field(console: Page, screenshot: Shoot) -> None:
    page = console
    page.get_by_role("link", name="Canaux").click()
    card = page.locator('form[data-channel="bluesky"]')
    card.get_by_role("button", name="Tester Bluesky").click()
    expect(card.get_by_role("status").last).to_contain_text("Fonctionne : Connecté")
    # Credentials are write-only: never shown back.
    expect(card.get_by_label("Mot de passe d'application")).to_have_value("")
    card.get_by_label("Serveur (PDS)").fill("pas une adresse")
    card.get_by_role("button", name="Enregistrer").click()
    server = card.get_by_label("Serveur (PDS)")
    expect(server).to_have_attribute("aria-invalid", "true")
    expect(card.locator("#f-bluesky-settings-pds_url-error")).to_be_visible()
    assert "f-bluesky-settings-pds_url-error" in (server.get_attribute("aria-describedby") or "")
    screenshot(page, "channel-error")


def test_the_console_works_on_a_phone(console: Page, axe_violations: Audit, screenshot: Shoot) -> None:
    page = console
    page.set_viewport_size({"width": 375, "height": 812})
    write(page, "Marché de Noël", "Samedi place de la Mairie.")
    expect(page.locator('.preview article[data-channel="mastodon"]')).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "phone")
    assert axe_violations(page) == []


def test_the_console_files_are_served_locked_down_and_revalidated(stack: LocalStack) -> None:
    index = httpx.get(f"{stack.api_url}/console/")
    assert index.status_code == 200
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    policy = index.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    script = httpx.get(f"{stack.api_url}/console/app.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["cache-control"] == "no-cache"
    assert script.text == (Path(__file__).parents[2] / "console" / "app.js").read_text(encoding="utf-8")
    again = httpx.get(f"{stack.api_url}/console/app.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    for missing in ("nothing.js", "index.json", ".hidden.js", "app.py"):
        assert httpx.get(f"{stack.api_url}/console/{missing}").status_code == 404, missing


def test_the_form_is_usable_with_the_keyboard_alone(console: Page) -> None:
    """From the heading, Tab visits every control in reading order, each with a visible focus ring, up to
    the publish button; the skip link leads to the content."""
    page = console
    seen: list[str] = []
    for _ in range(80):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const element = document.activeElement; const style = getComputedStyle(element);
                return {name: element.textContent.trim() || element.name || element.id,
                        visible: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2}; }"""
        )
        assert focused["visible"], f"no visible focus on {focused['name']}"
        seen.append(focused["name"])
        if focused["name"] == "Publier maintenant":
            break
    assert seen[:2] == ["title", "body"]
    assert "Publier maintenant" in seen
    page.reload()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Aller au contenu")).to_be_focused()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.url.endswith("#/ecrire")
