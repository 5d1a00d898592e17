"""Fixtures of the attack tests: a real SMTP server on loopback that can stall or refuse."""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from kai.app import create_app
from kai.config import EmailSettings, Settings
from kai.runtime import Runtime
from tests.conftest import committing_runtime


class MailServer:
    """What the SMTP server on loopback received, and how it behaves: open, stalled (it holds
    each message's DATA until `recover`), or refusing the next few messages with a 451."""

    def __init__(self) -> None:
        self.port = 0
        self._open = threading.Event()
        self._open.set()
        self.reached = threading.Event()  # a message's DATA arrived (perhaps to be held)
        self.refusals_left = 0
        self.refused = 0
        self.received: list[email.message.EmailMessage] = []

    def stall(self) -> None:
        self._open.clear()

    def recover(self) -> None:
        self._open.set()

    @property
    def stalled(self) -> bool:
        return not self._open.is_set()

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [message for message in self.received if message["To"] == address]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.reached.set()
        if self.refusals_left > 0:
            self.refusals_left -= 1
            self.refused += 1
            return "451 4.3.0 Try again later"
        # Waited for on a thread: the server's own loop keeps serving others meanwhile.
        await asyncio.to_thread(self._open.wait)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.received.append(message)
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    server.port = _free_port()
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    try:
        yield server
    finally:
        server.recover()
        controller.stop()


@pytest.fixture
async def smtp_runtime(
    settings: Settings, engine: AsyncEngine, owner_engine: AsyncEngine, mail_server: MailServer
) -> AsyncIterator[Runtime]:
    """A committing runtime whose email goes to `mail_server` by SMTP."""
    assert settings.database_url is not None
    smtp_settings = settings.model_copy(
        update={
            "email": EmailSettings(
                backend="smtp",
                smtp_host="127.0.0.1",
                smtp_port=mail_server.port,
                smtp_starttls=False,
                # Longer than any stall of these tests: a held message is delivered by the
                # attempt that is waiting, not timed out and sent again.
                smtp_timeout_seconds=60,
            )
        }
    )
    async with committing_runtime(smtp_settings, engine, owner_engine) as runtime:
        yield runtime


@pytest.fixture
async def smtp_client(smtp_runtime: Runtime) -> AsyncIterator[AsyncClient]:
    app = create_app(smtp_runtime.settings, runtime=smtp_runtime)
    async with AsyncClient(
        transport=ASGITransport(app=app, raise_app_exceptions=False), base_url="http://kai.test"
    ) as client:
        yield client
