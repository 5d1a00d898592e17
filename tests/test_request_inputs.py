"""What every route takes from a client meets the same rules, routes added later included: a
body names only fields it declares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from kai.app import create_app
from kai.config import Settings


def _app() -> FastAPI:
    return create_app(Settings(_env_file=None), database_url="postgresql://unused/kai")  # type: ignore[call-arg]


def _objects(
    schema: dict[str, Any], components: dict[str, Any], seen: set[str], name: str | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each object schema with declared properties within `schema`, and its name."""
    if "$ref" in schema:
        target = schema["$ref"].rsplit("/", 1)[-1]
        if target not in seen:
            seen.add(target)
            yield from _objects(components[target], components, seen, target)
        return
    if "properties" in schema:
        yield name or schema.get("title", "?"), schema
    for value in schema.get("properties", {}).values():
        yield from _objects(value, components, seen)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for branch in schema.get(key, []):
            yield from _objects(branch, components, seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _objects(schema[key], components, seen)


def test_every_request_body_refuses_fields_it_does_not_declare() -> None:
    document = _app().openapi()
    components = document["components"]["schemas"]
    checked, lenient = set(), set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                for name, schema in _objects(media["schema"], components, set()):
                    checked.add(name)
                    if schema.get("additionalProperties") is not False:
                        lenient.add(f"{method.upper()} {path}: {name}")

    assert lenient == set()
    # The walk reached JSON bodies, what they nest, and multipart forms.
    assert {"MaterialCreate", "PropertyDefinition", "RecognitionForm", "BatchForm"} <= checked
