"""What every route takes from a client meets the same rules, routes added later included: a
body names only fields it declares, and a date and time is an instant with its offset."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, get_args, get_origin

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from kai.app import create_app
from kai.config import Settings
from kai.kit.schemas import Instant

INSTANT_VALIDATOR = get_args(Instant)[1]


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


def _unmarked_datetimes(annotation: Any, marks: tuple[Any, ...], seen: set[type]) -> Iterator[str]:
    if get_origin(annotation) is Annotated:
        inner, *more = get_args(annotation)
        yield from _unmarked_datetimes(inner, (*marks, *more), seen)
    elif annotation is datetime:
        yield "instant" if INSTANT_VALIDATOR in marks else "bare"
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return
        seen.add(annotation)
        for name, field in annotation.model_fields.items():
            for kind in _unmarked_datetimes(field.annotation, tuple(field.metadata), seen):
                yield f"{kind}:{annotation.__name__}.{name}"
    else:
        for argument in get_args(annotation):
            yield from _unmarked_datetimes(argument, (), seen)


def test_every_datetime_a_client_sends_is_an_instant() -> None:
    found: set[str] = set()
    for context in iter_route_contexts(_app().routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        pending = [context.dependant]
        while pending:
            dependant = pending.pop()
            pending.extend(dependant.dependencies)
            for param in (
                *dependant.path_params,
                *dependant.query_params,
                *dependant.header_params,
                *dependant.cookie_params,
                *dependant.body_params,
            ):
                info = param.field_info
                for kind in _unmarked_datetimes(info.annotation, tuple(info.metadata), set()):
                    found.add(f"{context.path_format} {param.name} {kind}")

    assert {entry for entry in found if " bare" in entry} == set()
    # The walk met the datetimes of bodies and of queries.
    assert {
        "/api/v1/api-keys body instant:ApiKeyCreate.expires_at",
        "/api/v1/audit-events since instant",
        "/api/v1/recognitions until instant",
    } <= found
