"""People of the end-to-end tests: signed up, verified and logged in through the app itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import struct
import time
from dataclasses import dataclass
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from web.e2e.support import PASSWORD, Server

_numbers = itertools.count()


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    password: str = PASSWORD


def new_person(label: str) -> Person:
    number = next(_numbers)
    return Person(
        name=f"{label.title()} Tester", email=f"{label}-{os.getpid()}-{number}@example.com"
    )


def sign_up(page: Page, server: Server, person: Person, *, organization: str | None = None) -> None:
    """Sign up in the app and confirm the address through the emailed link."""
    page.goto("/signup")
    page.get_by_label("Your name").fill(person.name)
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    if organization:
        page.get_by_label("Organization (optional)").fill(organization)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    page.goto(server.link(person.email, "/verify-email"))
    page.get_by_role("button", name="Confirm my address").click()
    expect(page.get_by_text("Your address is confirmed")).to_be_visible()


def log_in(page: Page, person: Person) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name=person.name)).to_be_visible()


def owner_of_new_organization(page: Page, server: Server, label: str = "owner") -> Person:
    """A person who signed up with an organization of their own, logged in."""
    person = new_person(label)
    sign_up(page, server, person, organization=f"{label.title()} Stone {next(_numbers)}")
    log_in(page, person)
    return person


def totp(secret: str, *, at: float | None = None) -> str:
    """The RFC 6238 code (SHA-1, 30 s, 6 digits) an authenticator app shows for `secret`."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // 30)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    (number,) = struct.unpack(">I", mac[offset : offset + 4])
    return f"{(number & 0x7FFFFFFF) % 1_000_000:06d}"


def api_login(server: Server, person: Person, *, user_agent: str | None = None) -> dict[str, Any]:
    """A login of `person` through the API (another device, when it names its `user_agent`):
    its tokens."""
    answer = httpx.post(
        f"{server.url}/api/v1/auth/login",
        json={"email": person.email, "password": person.password},
        headers={"User-Agent": user_agent} if user_agent else None,
        timeout=30,
    )
    answer.raise_for_status()
    tokens: dict[str, Any] = answer.json()
    return tokens


def api_client(server: Server, person: Person) -> httpx.Client:
    """The API as `person`, for a test's set-up and checks (what the app does is the test)."""
    token = api_login(server, person)["access_token"]
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
