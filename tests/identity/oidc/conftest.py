"""A session-wide OIDC provider on loopback, with two relying parties and two users."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import ProviderHandle, running_provider
from .parties import ANNA, BASIC_CLIENT, BRUNO, POST_CLIENT


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[ProviderHandle]:
    with running_provider(clients=[BASIC_CLIENT, POST_CLIENT], users=[ANNA, BRUNO]) as provider:
        yield provider
