"""Every dependency of every route runs on the event loop.

FastAPI runs a plain `def` dependency in a worker thread: a thread hop on every request that
cost more than the rest of a health probe (measured: benchmarks/README.md).
"""

from __future__ import annotations

import inspect

from fastapi.routing import APIRoute, iter_route_contexts

from kai.app import create_app
from kai.config import Settings


def test_no_route_depends_on_a_blocking_function() -> None:
    app = create_app(Settings(_env_file=None), database_url="postgresql://unused/kai")  # type: ignore[call-arg]
    blocking = set()
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        pending = list(context.dependant.dependencies)
        while pending:
            dependant = pending.pop()
            call = dependant.call
            if call is not None and not (
                inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
            ):
                blocking.add(f"{context.path_format}: {getattr(call, '__qualname__', call)}")
            pending.extend(dependant.dependencies)
    assert blocking == set()
