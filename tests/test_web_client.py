"""The web app's API client is generated from the API as it is now."""

from __future__ import annotations

from tools.export_openapi import TARGET, document


def test_the_committed_openapi_document_is_the_apis() -> None:
    # The web app's types (web/src/api/schema.d.ts) are generated from this file, and
    # `npm run check-client` (in `make test`) fails when they are older than it.
    assert TARGET.read_text(encoding="utf-8") == document(), (
        "web/src/api/openapi.json is stale: run `make client` and commit the result."
    )
