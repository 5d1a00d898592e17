"""Write KAI's OpenAPI document where the web app's client is generated from.

Run by `make client`, which then regenerates `web/src/api/schema.d.ts` from it; a test fails
while either is older than the API.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kai.app import create_app
from kai.config import Settings

TARGET = Path(__file__).resolve().parent.parent / "web" / "src" / "api" / "openapi.json"


def document() -> str:
    """The API's OpenAPI document as the committed file holds it."""
    # No server starts: the document needs the routes only, not a database.
    app = create_app(Settings(environment="test"), database_url="postgresql://unused/kai")
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    TARGET.write_text(document(), encoding="utf-8")
    print(
        f"wrote {TARGET.relative_to(Path.cwd()) if TARGET.is_relative_to(Path.cwd()) else TARGET}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
