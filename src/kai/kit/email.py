"""Sending email: SMTP in production, an outbox folder in the embedded run and in tests."""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Protocol

import structlog

from kai.config import EmailSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str


class EmailUnavailable(Exception):
    """The message could not be handed to the mail system."""


class EmailSender(Protocol):
    async def send(self, email: Email) -> None: ...


def _message(email: Email, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    message["Message-ID"] = make_msgid(domain="kai.local")
    message.set_content(email.text)
    return message


class OutboxEmailSender:
    """Writes each message as an `.eml` file, where a developer or a test can read it."""

    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    async def send(self, email: Email) -> None:
        message = _message(email, self.sender)
        await asyncio.to_thread(self._write, message)
        log.info("email.written_to_outbox", to=email.to, subject=email.subject)

    def _write(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{os.urandom(4).hex()}.eml"
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(message.as_bytes())
        temporary.rename(self.directory / name)


# smtplib blocks: its calls run on threads of their own, not on the default executor, so a
# mail server that stalls ties up these threads only, never the ones password hashing and
# image decoding share (the embedded run's worker lives in the API's process).
_SMTP_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kai-smtp")


class SmtpEmailSender:
    def __init__(self, settings: EmailSettings) -> None:
        self.settings = settings

    async def send(self, email: Email) -> None:
        message = _message(email, self.settings.sender)
        try:
            await asyncio.get_running_loop().run_in_executor(_SMTP_THREADS, self._send, message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("email.send_failed", to=email.to, error=str(exc))
            # The server's own words stay in the log: a job's error is shown to its tenant.
            raise EmailUnavailable("the mail server did not take the message") from exc
        log.info("email.sent", to=email.to, subject=email.subject)

    def _send(self, message: EmailMessage) -> None:
        settings = self.settings
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                password = (
                    settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                )
                smtp.login(settings.smtp_username, password)
            smtp.send_message(message)


def create_email_sender(settings: EmailSettings, outbox_dir: Path) -> EmailSender:
    if settings.backend == "smtp":
        return SmtpEmailSender(settings)
    return OutboxEmailSender(outbox_dir, settings.sender)
