"""The sockets `kai serve` listens on: the public one, and the metrics one when configured."""

from __future__ import annotations

import socket
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI

from kai.config import MetricsSettings
from kai.ops.endpoints import MetricsAccess

log = structlog.get_logger(__name__)


def server_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """How `kai serve` runs uvicorn, one process or several: uvloop, httptools, our own
    logging, no access log of uvicorn's, no Server header."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="on",
        server_header=False,
        **options,
    )


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening socket's address bound (not yet listening), to be handed to uvicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def bind_listeners(
    app: FastAPI, config: uvicorn.Config, metrics: MetricsSettings
) -> list[socket.socket] | None:
    """Both listeners bound, the app told which is the metrics one; None without a metrics
    port, for uvicorn to bind the public listener as it always does."""
    if metrics.port is None:
        return None
    public = config.bind_socket()
    try:
        scrape = bound_socket(metrics.host, metrics.port)
    except OSError:
        public.close()
        raise
    port = int(scrape.getsockname()[1])
    access: MetricsAccess = app.state.metrics_access
    access.listener_port = port
    log.info("metrics.listening", url=f"http://{metrics.host}:{port}/metrics")
    return [public, scrape]
