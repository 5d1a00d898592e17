"""Property-based HTTP tests generated from the app's own OpenAPI document (schemathesis).

Every documented operation is called with generated valid and invalid input, in-process. The
run fails on any 5xx, any status the document does not declare, and any response that does
not match its declared schema or content type.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from kai.app import create_app
from kai.config import Settings

pytestmark = pytest.mark.database


@pytest.fixture(scope="module")
def api_schema(settings: Settings, database_url: str) -> schemathesis.BaseSchema:
    # The app builds its own runtime inside schemathesis' event loop (its lifespan).
    app = create_app(settings, database_url=database_url)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate()
