"""Reads take turns: at most a few API reads at work in a process at once, the others waiting
in the order they came.

Without it, every request that arrives starts at once and they share the event loop by turns
at each await: a search that needs three times the usual work also waits three times as many
turns, and under a burst the slowest tenth of requests took twice the median (64 clients,
benchmarks/README.md). In a queue served in order, each waits for those ahead of it and then
runs nearly alone, so the slowest are close to the median, and the database pool is not
contended.

Only GET and HEAD under `/api/` queue: a write's body may come slowly from its client and would
hold a turn meanwhile (writes are few and rate-limited). Sign-in's redirects (`/api/v1/auth/`)
do not queue either: they wait on identity providers elsewhere. A read gives its turn back when
its response starts: a download that streams for minutes does not hold one. A read that waits
longer than the database pool's own timeout is answered 503 with Retry-After, as one that
waited that long for a connection is.
"""

from __future__ import annotations

import asyncio
from collections import deque

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kai.kit.errors import ServiceUnavailable, problem_response

QUEUED_METHODS = frozenset({"GET", "HEAD"})
UNQUEUED_PATHS = ("/api/v1/auth/",)
RETRY_AFTER_SECONDS = 5


class Busy(ServiceUnavailable):
    type, title = "busy", "The server is busy"


class Turns:
    """`limit` turns; a turn given back goes straight to the longest waiting, so one that
    arrives later cannot take it first."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self.waiting: deque[asyncio.Future[None]] = deque()

    async def take(self) -> None:
        """A turn, once every earlier caller has had theirs. Cancelled while waiting (a
        timeout's too), it leaves the queue, and a turn handed over meanwhile is passed on."""
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        try:
            # Shielded: a cancellation ends the wait, never the turn handed over.
            await asyncio.shield(turn)
        except asyncio.CancelledError:
            if turn.done():
                # Handed over just as the wait ended: passed on, not lost.
                self.give_back()
            else:
                self.waiting.remove(turn)
            raise

    def give_back(self) -> None:
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.free += 1


class TakingTurns:
    """ASGI middleware queueing the API's reads for `limit` turns."""

    def __init__(self, app: ASGIApp, *, limit: int, most_wait_seconds: float) -> None:
        self.app = app
        self.turns = Turns(limit)
        self.most_wait_seconds = most_wait_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in QUEUED_METHODS
            or not scope["path"].startswith("/api/")
            or scope["path"].startswith(UNQUEUED_PATHS)
        ):
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.most_wait_seconds):
                await self.turns.take()
        except TimeoutError:
            response = problem_response(
                Request(scope),
                status=Busy.status,
                type_=Busy.type,
                title=Busy.title,
                detail=f"Every turn stayed taken for {self.most_wait_seconds:g} s; try again.",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await response(scope, receive, send)
            return
        holding = True

        async def starting(message: Message) -> None:
            nonlocal holding
            if holding and message["type"] == "http.response.start":
                holding = False
                self.turns.give_back()
            await send(message)

        try:
            await self.app(scope, receive, starting)
        finally:
            if holding:
                self.turns.give_back()
