"""A deliver function imports its own channel's adapter only (ARCHITECTURE.md §8: no work at import that a
request does not need); `make bench` measures what that saves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_adapter_registry_imports_an_adapter_on_first_use() -> None:
    script = (
        "import json, sys\n"
        "from crieur.channels import ADAPTERS\n"
        "before = sorted(m for m in sys.modules if m.startswith('crieur.channels.'))\n"
        "adapter = ADAPTERS['webhook']\n"
        "after = sorted(m for m in sys.modules if m.startswith('crieur.channels.'))\n"
        "print(json.dumps([before, after, adapter.__name__, sorted(ADAPTERS), 'website' in ADAPTERS]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT / "layers" / "crieur", capture_output=True, text=True, check=True
    )
    before, after, name, channels, website = json.loads(done.stdout.splitlines()[-1])
    assert "crieur.channels.website" not in before
    assert "crieur.channels.webhook" not in before
    assert "crieur.channels.webhook" in after
    assert "crieur.channels.website" not in after
    assert name == "WebhookChannel"
    assert {"webhook", "website", "mastodon"} <= set(channels)
    assert website


def test_every_registered_adapter_resolves() -> None:
    from crieur.channels import ADAPTERS
    from crieur.channels.base import Channel

    for channel in ADAPTERS:
        assert issubclass(ADAPTERS[channel], Channel), channel
