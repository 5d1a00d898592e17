"""One error hierarchy, rendered as RFC 9457 problem details (`application/problem+json`)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope

from kai.kit.json import dumps

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://kai.dev/problems/"

log = structlog.get_logger(__name__)


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="A URI naming the class of error; stable across releases.")
    title: str = Field(description="A short summary of the class of error.")
    status: int = Field(description="The HTTP status code.")
    detail: str | None = Field(default=None, description="What went wrong in this occurrence.")
    instance: str | None = Field(default=None, description="The request path.")
    request_id: str | None = Field(default=None, description="Quote this when reporting it.")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Field-level problems, for validation errors."
    )


class KaiError(Exception):
    """Base of every error a client may see. Subclasses set status, type and title."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ):
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = headers or {}
        # Field-level problems (`loc`, `msg`, `type`), as validation errors carry them.
        self.errors = errors


class BadRequest(KaiError):
    status, type, title = 400, "bad-request", "Bad request"


class MalformedJSON(KaiError):
    status, type, title = 400, "malformed-json", "The request body is not valid JSON"


class InvalidValue(KaiError):
    status, type, title = 400, "invalid-value", "A value in the request cannot be accepted"


class NotFound(KaiError):
    status, type, title = 404, "not-found", "Not found"


# Unique constraints and indexes by name, and the conflict that breaking one means.
_CONFLICTS: dict[str, type[Conflict]] = {}
# PostgreSQL's unique_violation and exclusion_violation: a row that another row excludes.
_EXCLUDED_ROW_STATES = frozenset({"23505", "23P01"})


class Conflict(KaiError):
    """The request collides with the current state of a resource.

    A subclass names in `constraints` the unique constraints (or indexes) of the database
    that state its rule: a write that breaks one answers that subclass, so the database
    decides (a check before the write races with a concurrent one, and may compare text
    differently). A violated constraint nobody registered still answers a plain 409.
    """

    status, type, title = 409, "conflict", "Conflict"
    constraints: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for constraint in cls.__dict__.get("constraints", ()):
            claimed = _CONFLICTS.get(constraint)
            # The same class defined again (its module reloaded) takes its own place.
            if claimed is not None and claimed.__qualname__ != cls.__qualname__:
                raise TypeError(f"{constraint} already means {claimed.__qualname__}")
            _CONFLICTS[constraint] = cls


class PreconditionFailed(KaiError):
    status, type, title = 412, "precondition-failed", "The resource has changed"


class Unprocessable(KaiError):
    """Input of the right shape that breaks a rule of the domain (field-level `errors`)."""

    status, type, title = 422, "validation-error", "The request is not valid"


class PayloadTooLarge(KaiError):
    status, type, title = 413, "payload-too-large", "The request body is too large"


class ServiceUnavailable(KaiError):
    status, type, title = 503, "service-unavailable", "A part the platform needs is unavailable"


class DatabaseBusy(ServiceUnavailable):
    type, title = "database-busy", "The database took too long to answer"


# PostgreSQL's query_canceled: the statement timeout (KAI_DATABASE__STATEMENT_TIMEOUT_MS) or
# a cancel stopped the statement. Not the caller's fault, nor a bug to hide behind a 500.
_QUERY_CANCELED = "57014"
_BUSY_RETRY_SECONDS = 30


_HTTP_TYPES = {
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


def problem_response(
    request: Request | None,
    *,
    status: int,
    type_: str,
    title: str,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"type": TYPE_BASE + type_, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    if request is not None:
        body["instance"] = request.url.path
        request_id = request.scope.get("state", {}).get("request_id")
        if request_id:
            body["request_id"] = request_id
    if errors is not None:
        body["errors"] = errors
    return Response(
        dumps(body), status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]


async def _kai_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KaiError)
    if exc.status >= 500:
        log.error("request.failed", error_type=exc.type, detail=exc.detail)
    return problem_response(
        request,
        status=exc.status,
        type_=exc.type,
        title=exc.title,
        detail=exc.detail,
        errors=exc.errors,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    if any(error["type"] == "json_invalid" for error in errors):
        return problem_response(
            request,
            status=400,
            type_=MalformedJSON.type,
            title=MalformedJSON.title,
            detail="; ".join(str(error["msg"]) for error in errors),
        )
    return problem_response(
        request,
        status=422,
        type_="validation-error",
        title="The request is not valid",
        detail="See `errors` for each field that failed validation.",
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    return problem_response(
        request,
        status=status,
        type_=_HTTP_TYPES.get(status, f"http-{status}"),
        title=phrase,
        detail=detail,
        headers=dict(exc.headers or {}),
    )


def unexpected_error_response(scope: Scope) -> Response:
    """The 500 answer to an error nothing handled: no detail, nothing internal."""
    return problem_response(
        Request(scope), status=500, type_=KaiError.type, title=KaiError.title, detail=None
    )


async def _data_error(request: Request, exc: Exception) -> Response:
    # PostgreSQL's "data exception" class: a value the database cannot hold (a NUL character
    # in text, a number out of range). Input the validation let through, so the client's.
    log.warning("request.data_error", error=str(getattr(exc, "orig", exc)).splitlines()[0])
    return problem_response(
        request,
        status=InvalidValue.status,
        type_=InvalidValue.type,
        title=InvalidValue.title,
        detail="A value cannot be stored as given (for example, text with a NUL character).",
    )


async def _operational_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OperationalError)
    if getattr(exc.orig, "sqlstate", None) != _QUERY_CANCELED:
        # A lost connection or the like: the server's trouble, answered as a 500.
        raise exc
    log.warning("request.statement_timeout", error=str(exc.orig).splitlines()[0])
    return problem_response(
        request,
        status=DatabaseBusy.status,
        type_=DatabaseBusy.type,
        title=DatabaseBusy.title,
        detail="The request ran longer than the database allows a statement; try again later.",
        headers={"Retry-After": str(_BUSY_RETRY_SECONDS)},
    )


def conflict_for(exc: IntegrityError) -> Conflict | None:
    """The conflict a write refused by a unique constraint means; None for other refusals."""
    if getattr(exc.orig, "sqlstate", None) not in _EXCLUDED_ROW_STATES:
        return None
    diagnostic = getattr(exc.orig, "diag", None)
    constraint = getattr(diagnostic, "constraint_name", None) or ""
    registered = _CONFLICTS.get(constraint)
    if registered is not None:
        return registered()
    # The constraint's name is the server's business, not the caller's.
    log.warning("request.unregistered_conflict", constraint=constraint)
    return Conflict(
        "The request collides with a resource that exists already "
        "(or with another request made at the same moment)."
    )


async def _integrity_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IntegrityError)
    conflict = conflict_for(exc)
    if conflict is None:
        # A foreign key or a check the code should have caught: a bug, answered as one.
        raise exc
    return await _kai_error(request, conflict)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(OperationalError, _operational_error)
    app.add_exception_handler(KaiError, _kai_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries declaring problem+json answers for `statuses`."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
