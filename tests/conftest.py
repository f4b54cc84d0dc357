"""Process-wide caches of the channel adapters are emptied between tests, so no test sees another's."""

from collections.abc import Iterator

import pytest

from crieur.channels import mastodon


@pytest.fixture(autouse=True)
def fresh_instance_documents() -> Iterator[None]:
    mastodon._instance_limits.clear()
    yield
    mastodon._instance_limits.clear()
