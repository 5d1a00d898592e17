"""A router that tells at once when a path cannot be one of its routes.

FastAPI finds a request's route by asking each included router in turn, and each router asks
each of its routes (a regular expression and some bookkeeping per route), then asks the
chosen router's routes again to pick one: a request to a route near the end of the app's
hundred-odd paid for every route before it, about a sixth of a small authenticated read's
CPU (benchmarks/README.md). An `IndexedRouter` knows the first path segment of each of its
routes and answers "no match" when none of them is in the path, before any route is asked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

# Scope key of the request path's segments (with the path they were split from).
_SEGMENTS = "kai.path_segments"


def _first_segment(route: BaseRoute) -> str | None:
    """The route's first path segment when it is literal (`/materials/{id}`: `materials`);
    None when it may be anything (a parameter, or no path)."""
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    segment = path.lstrip("/").split("/", 1)[0]
    if not segment or "{" in segment:
        return None
    return segment


class IndexedRouter(APIRouter):
    """An APIRouter that skips itself for a path none of its routes could match."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._indexed: tuple[int, frozenset[str] | None] = (-1, None)

    def _segments(self) -> frozenset[str] | None:
        count, segments = self._indexed
        if count != len(self.routes):
            firsts = {_first_segment(route) for route in self.routes}
            segments = None if None in firsts else frozenset(str(first) for first in firsts)
            self._indexed = (len(self.routes), segments)
        return segments

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        segments = self._segments()
        # Whatever prefix the router is included under, its route's first segment is one of
        # the path's segments: a path holding none of them matches none of its routes.
        if segments is not None and segments.isdisjoint(_path_segments(scope)):
            return Match.NONE, {}
        return super().matches(scope)


def _path_segments(scope: Scope) -> list[str]:
    """The request path's segments, split once for all the routers that ask."""
    path = str(scope.get("path", ""))
    cached = scope.get(_SEGMENTS)
    if cached is None or cached[0] != path:
        cached = (path, path.split("/"))
        scope[_SEGMENTS] = cached
    segments: list[str] = cached[1]
    return segments
