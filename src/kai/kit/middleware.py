"""The one ASGI middleware every request passes: request id, body limit, metrics, access log.

Written as plain ASGI rather than Starlette's BaseHTTPMiddleware: it streams bodies untouched
and costs a few microseconds a request.
"""

from __future__ import annotations

import re
import time
import weakref
from typing import Any

import structlog
from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kai.kit.db import new_id
from kai.kit.errors import (
    InvalidValue,
    PayloadTooLarge,
    problem_response,
    unexpected_error_response,
)
from kai.kit.metrics import HTTP_LATENCY, HTTP_REQUESTS
from kai.kit.ratelimit import declared_rate_class

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED_ROUTE = "<unmatched>"

access_log = structlog.get_logger("kai.access")
log = structlog.get_logger(__name__)


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, access_log: bool = True) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.log_requests = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        response_started = False
        refused = False  # a 413 went out mid-body; what the app sends afterwards is dropped
        received = 0
        header_value = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, header_value),
                ]
            await send(message)

        async def app_send(message: Message) -> None:
            if not refused:
                await send_with_id(message)

        async def limited_receive() -> Message:
            # A body without Content-Length (chunked) is counted as it arrives. Past the limit
            # the client gets its 413 at once and the app sees the client leave. Raising here
            # instead would reach the app's body parser, which reports any failure as bad JSON.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    if not response_started:
                        await self._too_large(scope, receive, send_with_id)
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        # Nothing declared yet: the route's access dependency says which class it pays.
        rate_class = declared_rate_class.set("")
        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                await self._too_large(scope, receive, send_with_id)
            elif _has_nul(scope):
                await self._nul_in_url(scope, receive, send_with_id)
            else:
                await self.app(scope, limited_receive, app_send)
        except Exception as exc:
            # The last line of defence, for whatever the app's handlers let through. Answered
            # here rather than by Starlette's outermost error middleware so that this answer,
            # too, carries the request id.
            log.exception("request.unhandled_error", exc_info=exc)
            if not response_started:
                await unexpected_error_response(scope)(scope, receive, send_with_id)
            status = 500
        finally:
            declared_rate_class.reset(rate_class)
            self._record(scope, status, time.perf_counter() - started)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            Request(scope),
            status=PayloadTooLarge.status,
            type_=PayloadTooLarge.type,
            title=PayloadTooLarge.title,
            detail=f"The body exceeds the limit of {self.max_body_bytes} bytes.",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    async def _nul_in_url(self, scope: Scope, receive: Receive, send: Send) -> None:
        # No text KAI keeps may hold NUL (PostgreSQL refuses it); say so before any route runs.
        response = problem_response(
            Request(scope),
            status=InvalidValue.status,
            type_=InvalidValue.type,
            title=InvalidValue.title,
            detail="The URL contains a NUL character.",
        )
        await response(scope, receive, send)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        template = route_template(scope)
        method = scope["method"]
        HTTP_REQUESTS.labels(method, template, str(status)).inc()
        HTTP_LATENCY.labels(method, template).observe(seconds)
        if self.log_requests:
            access_log.info(
                "request",
                method=method,
                path=scope["path"],
                route=template,
                status=status,
                duration_ms=round(seconds * 1000, 2),
                client=_client(scope),
            )


def route_template(scope: Scope) -> str:
    """The matched route's full path template (`/api/v1/jobs/{job_id}`): metric labels stay
    few whatever paths clients ask for."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED_ROUTE
    app = scope.get("app")
    templates = _templates(app) if app is not None else {}
    return templates.get(id(route)) or getattr(route, "path", None) or UNMATCHED_ROUTE


_TEMPLATES: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()


def _templates(app: Any) -> dict[int, str]:
    # An included router's routes keep their own short paths; FastAPI's route contexts hold
    # each one's full path, prefixes applied.
    templates = _TEMPLATES.get(app)
    if templates is None:
        templates = {
            id(context.original_route): context.path_format
            for context in iter_route_contexts(getattr(app, "routes", []))
            if context.path_format
        }
        _TEMPLATES[app] = templates
    return templates


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _VALID_REQUEST_ID.match(value):
            return str(value.decode())
    return new_id().hex


def _has_nul(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _client(scope: Scope) -> Any:
    client = scope.get("client")
    return client[0] if client else None
