"""What one test changes in the process (environment, adapters' caches) never reaches the next one."""

import os
from collections.abc import Iterator

import pytest

from crieur.channels import mastodon


@pytest.fixture(autouse=True)
def fresh_instance_documents() -> Iterator[None]:
    mastodon._instance_limits.clear()
    yield
    mastodon._instance_limits.clear()


@pytest.fixture(autouse=True)
def restored_environment() -> Iterator[None]:
    """The operator CLI sets AWS and sandbox variables for its process, as a CLI may: tests run it in-process."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
