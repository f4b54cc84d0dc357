"""Issue 4: the website channel's widget, as a citizen's browser shows it on the commune's own site (the one
`<script>` line pasted into any page) and as the hosted widget.html: WCAG 2.1 AA by axe-core, `lang="fr"`,
alt texts, every link reachable with the keyboard and visibly focused, and no layout shift."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from crieur.models import PARIS, utc_now
from infra.local.stack import LocalStack

HOST_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Mairie de démonstration</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><header><h1>Mairie de démonstration</h1><a href="/horaires">Horaires d'ouverture</a></header>
<main><p>Bienvenue sur le site de la commune.</p>
<script src="{widget}"></script>
<p id="after">Le contenu de la page qui suit le bloc ne doit pas bouger.</p></main></body></html>"""
# Recorded before any page script runs: layout shifts (buffered) and the block's height once parsed.
OBSERVE_LAYOUT = """
window.__shifts = [];
new PerformanceObserver((list) => { for (const entry of list.getEntries()) {
  if (!entry.hadRecentInput) window.__shifts.push(entry.value); } }).observe({type: 'layout-shift', buffered: true});
document.addEventListener('DOMContentLoaded', () => {
  const block = document.querySelector('.crieur-widget');
  window.__parsedHeight = block ? block.getBoundingClientRect().height : null;
});
"""
PHOTO_ALT = "La place de la mairie illuminée pour le marché de Noël"


def _settled(api: httpx.Client, publication_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        shown: dict[str, Any] = api.get(f"/v1/publications/{publication_id}").json()
        if shown["deliveries"]["website"]["status"] in {"sent", "failed"} or time.monotonic() > deadline:
            return shown
        time.sleep(0.3)


@pytest.fixture(scope="module")
def published(stack: LocalStack, api: httpx.Client) -> dict[str, dict[str, Any]]:
    """An event with an image and a link, then a critical alert with a link, on the website channel."""
    starts = (utc_now() + timedelta(days=10)).astimezone(PARIS).replace(hour=10, minute=0, second=0, microsecond=0)
    bodies = {
        "event": {
            "title": "Marché de Noël",
            "body": "Chalets, vin chaud et chorale de l'école, place de la Mairie.",
            "category": "event",
            "event": {"starts_at": starts.isoformat(), "location": "Place de la Mairie"},
            "media": [{"url": stack.sandbox.demo_photo_url(), "alt": PHOTO_ALT}],
            "links": [{"url": "https://www.example.fr/marche-de-noel", "label": "Le programme du marché"}],
            "channels": ["website"],
        },
        "alert": {
            "title": "Coupure d'eau",
            "body": "L'eau sera coupée rue des Lilas de 8 h à 12 h pour une réparation urgente.",
            "category": "alert",
            "urgency": "critical",
            "links": [{"url": "https://www.example.fr/eau", "label": "Les rues concernées"}],
            "channels": ["website"],
        },
    }
    shown = {}
    for name, body in bodies.items():
        created = api.post("/v1/publications", json=body)
        assert created.status_code == 201, created.text
        shown[name] = _settled(api, created.json()["id"])
        assert shown[name]["deliveries"]["website"]["status"] == "sent", shown[name]["deliveries"]["website"]
    return shown


def _widget_url(stack: LocalStack, name: str) -> str:
    return f"{stack.api_url}/public/{stack.demo_insee}/{name}"


@pytest.fixture(scope="module")
def commune_site(stack: LocalStack) -> Iterator[str]:
    """The commune's own site on another origin, with the one `<script>` line pasted into its page.

    On loopback like the local API: Chromium refuses a public page's requests to a loopback address."""
    html = HOST_PAGE.format(widget=_widget_url(stack, "widget.js")).encode()

    class Site(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def _open_host_page(page: Page, site: str) -> None:
    page.add_init_script(OBSERVE_LAYOUT)
    page.goto(site, wait_until="load")
    page.wait_for_function("Array.from(document.images).every((image) => image.complete)")


def _check_content(page: Page) -> None:
    block = page.locator(".crieur-widget")
    assert block.get_attribute("lang") == "fr"
    assert page.locator("html").get_attribute("lang") == "fr"
    # Alerts first, labelled with their urgency, then the news.
    headings = block.locator("h2, h3").all_inner_texts()
    assert headings.index("Coupure d'eau") < headings.index("Marché de Noël")
    assert "Alerte critique" in block.locator(".crieur-alert").first.inner_text()
    images = block.locator("img")
    assert images.count() >= 1
    assert PHOTO_ALT in [images.nth(i).get_attribute("alt") for i in range(images.count())]
    for i in range(images.count()):
        assert (images.nth(i).get_attribute("alt") or "").strip(), "every image has an alternative text"
        assert page.evaluate("(image) => image.naturalWidth > 0", images.nth(i).element_handle())


def _tab_through_links(page: Page) -> None:
    """Tab from the top of the page: every link of the block gets the focus, in order, with a visible outline."""
    links = page.locator(".crieur-widget a")
    expected = links.evaluate_all("(links) => links.map((link) => link.href)")
    assert expected, "the block has links"
    reached: list[str] = []
    page.locator("body").focus()
    for _ in range(len(expected) + 10):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const element = document.activeElement;
                if (!element || !element.closest('.crieur-widget')) return null;
                const style = getComputedStyle(element);
                return {href: element.href, outline: style.outlineStyle, width: parseFloat(style.outlineWidth)}; }"""
        )
        if focused is None:
            if reached:  # past the block
                break
            continue
        assert focused["outline"] != "none", f"focus is visible on {focused['href']}"
        assert focused["width"] >= 2, f"focus is visible on {focused['href']}"
        reached.append(focused["href"])
    assert reached == expected


def test_the_pasted_script_line_shows_an_accessible_block_without_layout_shift(
    page: Page,
    commune_site: str,
    published: dict[str, dict[str, Any]],
    axe_violations: Callable[..., list[dict[str, Any]]],
    screenshot: Callable[[Page, str], Path],
) -> None:
    _open_host_page(page, commune_site)
    screenshot(page, "host-page")
    _check_content(page)
    assert axe_violations(page) == []
    _tab_through_links(page)
    # The block is in the page when it is parsed (a synchronous script) and its images have reserved room.
    final_height = page.evaluate("document.querySelector('.crieur-widget').getBoundingClientRect().height")
    assert page.evaluate("window.__parsedHeight") == pytest.approx(final_height, abs=1)
    assert sum(page.evaluate("window.__shifts")) < 0.01


def test_the_hosted_widget_page_is_accessible(
    page: Page,
    stack: LocalStack,
    published: dict[str, dict[str, Any]],
    axe_violations: Callable[..., list[dict[str, Any]]],
    screenshot: Callable[[Page, str], Path],
) -> None:
    response = page.goto(_widget_url(stack, "widget.html"), wait_until="load")
    assert response is not None
    assert response.ok
    page.wait_for_function("Array.from(document.images).every((image) => image.complete)")
    screenshot(page, "widget-html")
    assert page.title()
    _check_content(page)
    assert axe_violations(page) == []
    _tab_through_links(page)


def test_the_block_fits_a_phone_screen(
    page: Page,
    commune_site: str,
    published: dict[str, dict[str, Any]],
    axe_violations: Callable[..., list[dict[str, Any]]],
    screenshot: Callable[[Page, str], Path],
) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    _open_host_page(page, commune_site)
    screenshot(page, "phone")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert axe_violations(page) == []
