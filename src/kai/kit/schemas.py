"""What every domain's request schemas build on: the rules a client's input meets everywhere."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestModel(BaseModel):
    """A request body (JSON or a multipart form): a field it does not declare is refused with a
    422 naming it, never dropped, so a misspelt `prise` cannot pass for a price left out."""

    model_config = ConfigDict(extra="forbid")
