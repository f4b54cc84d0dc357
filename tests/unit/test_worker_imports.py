"""The worker functions load at init what every request needs, and the rest on first use (ARCHITECTURE.md §8;
`make bench` measures it): no HTTP stack before a request calls someone, no publishing use case in the weather
poller before a tick publishes, an adapter's HTTP client made by its first request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from crieur.channels import build_adapter

ROOT = Path(__file__).resolve().parents[2]
LOADED_LATER = ("httpx", "httpcore", "h2", "crieur.outbound", "crieur.service")


def loaded_at_init(function: str) -> list[str]:
    """Which of LOADED_LATER importing the function's handler loads, in a fresh interpreter."""
    script = f"import json, sys, app\nprint(json.dumps([m for m in {LOADED_LATER!r} if m in sys.modules]))\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT / "functions" / function,
        env={"PYTHONPATH": f"{ROOT / 'functions' / function}:{ROOT / 'layers' / 'crieur'}", "CHANNEL": "website"},
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(done.stdout.splitlines()[-1]))


def test_the_deliver_release_and_weather_functions_load_no_http_stack_at_init() -> None:
    assert loaded_at_init("deliver") == []
    assert loaded_at_init("release") == ["crieur.service"]  # its request is the publishing use case
    assert loaded_at_init("weather") == []


def test_an_adapter_makes_its_http_client_on_first_use_only() -> None:
    made: list[httpx.Client] = []

    def client() -> httpx.Client:
        made.append(httpx.Client())
        return made[-1]

    adapter = build_adapter("website", {"title": "Mairie"}, {}, client)
    assert made == []  # the website writes to S3: nothing asked for a client
    assert adapter.http is adapter.http is made[0]
    assert adapter.media.http is made[0]
    assert len(made) == 1
    made[0].close()
