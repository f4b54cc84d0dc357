"""The console's files as the API serves them: only its own kinds of file, locked down, revalidated."""

from __future__ import annotations

import pytest

from crieur.console import Asset, content_type, headers, read_asset

ASSET = Asset(body="", content_type="text/html; charset=utf-8", etag='"abc"')


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("APP.JS", "text/javascript; charset=utf-8"),
        ("app.py", None),
        ("index", None),
    ],
)
def test_only_the_consoles_kinds_of_file(name: str, expected: str | None) -> None:
    assert content_type(name) == expected


@pytest.mark.parametrize("name", ["../index.html", "sub/app.js", ".hidden.js", "secret.txt"])
def test_no_other_file_is_read(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRIEUR_CONSOLE_BUCKET", "console-bucket")  # never reached: refused before S3
    assert read_asset(name) is None


def test_without_a_bucket_nothing_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRIEUR_CONSOLE_BUCKET", raising=False)
    assert read_asset("index.html") is None


def test_strict_policy_and_revalidation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRIEUR_ALLOW_PRIVATE_TARGETS", raising=False)
    sent = headers(ASSET)
    assert sent["Cache-Control"] == "no-cache"
    assert sent["ETag"] == '"abc"'
    policy = dict(part.strip().split(" ", 1) for part in sent["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["img-src"] == "'self' https: data:"
    assert policy["frame-ancestors"] == "'none'"


def test_loopback_images_only_in_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRIEUR_ALLOW_PRIVATE_TARGETS", "1")
    assert "http://127.0.0.1:*" in headers(ASSET)["Content-Security-Policy"]
