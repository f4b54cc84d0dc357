"""Browser tests: Debian's Chromium driven by Playwright through its executable (a browser build is never
downloaded), axe-core (pinned in package.json, installed by `make test` with npm ci) for the accessibility
audits, and one local stack and one browser for the whole session so the tests stay fast.

Screenshots of each step go to tests/browser/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from infra.local.stack import LocalStack

HERE = Path(__file__).resolve().parent
AXE_SCRIPT = HERE / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = HERE / "screenshots"
# Headless Chromium as root on a machine without a GPU, a sandbox or outside network; Playwright adds
# --headless and a fresh --user-data-dir of its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING_IMPACTS = {"serious", "critical"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/browser is a browser test (`-m browser` selects them, `-m "not browser"` skips)."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    found = shutil.which(os.environ.get("CRIEUR_CHROMIUM", "chromium"))
    if found is None:
        pytest.fail("Chromium is missing: `make test` (or `make chromium`) installs Debian's chromium package")
    return found


@pytest.fixture(scope="session")
def browser(chromium_executable: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context per test (storage, cookies), in French and on Paris time, with a phone-or-desktop size."""
    context = browser.new_context(locale="fr-FR", timezone_id="Europe/Paris", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE_SCRIPT.exists():
        pytest.fail("axe-core is missing: `make test` runs `npm ci` in tests/browser")
    return AXE_SCRIPT.read_text(encoding="utf-8")


Violations = list[dict[str, Any]]


@pytest.fixture(scope="session")
def axe_violations(axe_source: str) -> Callable[..., Violations]:
    """`axe_violations(page)`: the serious and critical WCAG 2.1 A/AA violations axe-core finds on the page.

    The engine is evaluated through the DevTools protocol, which a Content-Security-Policy does not block."""

    def audit(page: Page, *, include: str | None = None) -> Violations:
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(axe_source)
        found: Violations = page.evaluate(
            """async ([include, tags]) => (await axe.run(include ? {include: [include]} : document,
                {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})).violations""",
            [include, WCAG_21_AA],
        )
        return [
            {
                "id": violation["id"],
                "impact": violation["impact"],
                "help": violation["help"],
                "nodes": [node["target"] for node in violation["nodes"]],
            }
            for violation in found
            if violation["impact"] in BLOCKING_IMPACTS
        ]

    return audit


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """This run's screenshots only: the folder is emptied once per session."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir()
    return SCREENSHOTS


def _slug(text: str) -> str:
    return re.sub(
        r"[^a-z0-9]+", "-", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    ).strip("-")


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, screenshots: Path) -> Callable[[Page, str], Path]:
    """`screenshot(page, "step")` saves tests/browser/screenshots/<test>-<n>-<step>.png (full page)."""
    test = _slug(request.node.name.removeprefix("test_"))
    taken: list[Path] = []

    def take(page: Page, step: str) -> Path:
        path = screenshots / f"{test}-{len(taken) + 1:02d}-{_slug(step)}.png"
        page.screenshot(path=str(path), full_page=True)
        taken.append(path)
        return path

    return take


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local stack in-process (as `make run` starts it), shared by every browser test."""
    state = tmp_path_factory.mktemp("crieur") / "local.json"
    with LocalStack(
        api_port=0,
        aws_port=0,
        sandbox_port=0,
        state_file=state,
        stack_name="crieur-browser",
    ) as running:
        yield running


@pytest.fixture(scope="session")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {stack.demo_api_key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        yield client
