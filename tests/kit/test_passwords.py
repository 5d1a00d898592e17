"""Password hashing at OWASP's argon2id cost, rehashing, and the strength rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kai.config import AuthSettings, PasswordHashSettings, Settings
from kai.kit.passwords import Passwords


def test_the_default_cost_is_owasps_argon2id_minimum() -> None:
    stored = Passwords(AuthSettings()).hash("lapis lazuli mosaic 1987")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_settings_below_the_minimum_are_refused_outside_tests() -> None:
    cheap = {"password_hash": {"memory_kib": 4096, "iterations": 1}}
    with pytest.raises(ValidationError, match="OWASP"):
        Settings(_env_file=None, auth=cheap)  # type: ignore[call-arg]
    assert Settings(_env_file=None, environment="test", auth=cheap)  # type: ignore[call-arg]


def test_verifying_says_when_the_stored_hash_is_outdated() -> None:
    cheap = AuthSettings(password_hash=PasswordHashSettings(memory_kib=1024, iterations=1))
    stored = Passwords(cheap).hash("lapis lazuli mosaic 1987")
    current = Passwords(AuthSettings())
    check = current.verify(stored, "lapis lazuli mosaic 1987")
    assert check.verified
    assert check.needs_rehash
    assert not current.verify(current.hash("x" * 12), "x" * 12).needs_rehash


def test_a_wrong_password_or_no_account_does_not_verify() -> None:
    passwords = Passwords(
        AuthSettings(password_hash=PasswordHashSettings(memory_kib=1024, iterations=1))
    )
    stored = passwords.hash("lapis lazuli mosaic 1987")
    assert not passwords.verify(stored, "lapis lazuli mosaic 1988").verified
    assert not passwords.verify(None, "lapis lazuli mosaic 1987").verified
    assert not passwords.verify("not a hash", "anything").verified


@pytest.mark.parametrize(
    "password",
    ["short", "password", "password123", "qwertyuiop", "iloveyou1", "ada.tiler2024"],
)
def test_common_and_weak_passwords_are_refused(password: str) -> None:
    problems = Passwords(AuthSettings()).weaknesses(
        password, user_inputs=["ada.tiler@tiles.example", "ada.tiler", "Ada", "Tiler"]
    )
    assert problems


@pytest.mark.parametrize(
    "password",
    ["lapis lazuli mosaic 1987", "Terrazzo-under-the-Oak-Stair", "x7#Gq!v2Lm9$wPz"],
)
def test_strong_passwords_pass(password: str) -> None:
    assert Passwords(AuthSettings()).weaknesses(password, user_inputs=["ada"]) == []


def test_length_limits_go_to_at_least_64_characters() -> None:
    passwords = Passwords(AuthSettings())
    long_passphrase = "granite " * 8 + "basalt quartzite slate"  # 86 characters
    assert passwords.weaknesses(long_passphrase, user_inputs=[]) == []
    assert passwords.weaknesses("g" * 129, user_inputs=[]) == ["Use at most 128 characters."]
