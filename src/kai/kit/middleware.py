"""The one ASGI middleware every request passes: request id, body limit, metrics, access log.

Written as plain ASGI rather than Starlette's BaseHTTPMiddleware: it streams bodies untouched
and costs a few microseconds a request.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kai.kit.errors import PayloadTooLarge, problem_response
from kai.kit.metrics import HTTP_LATENCY, HTTP_REQUESTS

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED_ROUTE = "<unmatched>"

access_log = structlog.get_logger("kai.access")


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
        header_value = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, header_value)]
            await send(message)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                await self._too_large(scope, receive, send_with_id)
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"The body exceeds the limit of {limit} bytes.")
            return message

        return limited_receive

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.requests import Request

        response = problem_response(
            Request(scope),
            status=PayloadTooLarge.status,
            type_=PayloadTooLarge.type,
            title=PayloadTooLarge.title,
            detail=f"The body exceeds the limit of {self.max_body_bytes} bytes.",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED_ROUTE
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


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _VALID_REQUEST_ID.match(value):
            return str(value.decode())
    return uuid.uuid4().hex


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
