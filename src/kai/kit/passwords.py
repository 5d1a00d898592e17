"""Password hashing (argon2id) and the strength rules a new password must meet."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import zxcvbn
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from kai.config import AuthSettings

ZXCVBN_MAX_LENGTH = 72


@dataclass(frozen=True)
class PasswordCheck:
    verified: bool
    # The stored hash was made with other parameters: store `verified`'s new hash.
    needs_rehash: bool


class Passwords:
    """argon2id hashing, with hashing work the same whether or not an account exists."""

    def __init__(self, settings: AuthSettings) -> None:
        cost = settings.password_hash
        self._hasher = PasswordHasher(
            time_cost=cost.iterations,
            memory_cost=cost.memory_kib,
            parallelism=cost.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._settings = settings
        # Verified against when the account does not exist, so that an unknown email costs
        # the same work as a wrong password.
        self._decoy = self._hasher.hash("decoy password, never matches anything real")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> PasswordCheck:
        """Blocking (tens of milliseconds by design): call through `verify_async` in a server."""
        try:
            self._hasher.verify(stored_hash or self._decoy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return PasswordCheck(verified=False, needs_rehash=False)
        if stored_hash is None:
            return PasswordCheck(verified=False, needs_rehash=False)
        return PasswordCheck(
            verified=True, needs_rehash=self._hasher.check_needs_rehash(stored_hash)
        )

    async def verify_async(self, stored_hash: str | None, password: str) -> PasswordCheck:
        return await asyncio.to_thread(self.verify, stored_hash, password)

    async def hash_async(self, password: str) -> str:
        return await asyncio.to_thread(self.hash, password)

    def weaknesses(self, password: str, *, user_inputs: list[str]) -> list[str]:
        """Why `password` may not be chosen; empty when it may."""
        problems: list[str] = []
        length = len(password)
        if length < self._settings.password_min_length:
            problems.append(f"Use at least {self._settings.password_min_length} characters.")
        if length > self._settings.password_max_length:
            problems.append(f"Use at most {self._settings.password_max_length} characters.")
        if problems:
            return problems
        # zxcvbn knows the most common passwords, names, words and keyboard patterns; it is
        # given the user's own details too, so that "jane.doe2024" fails for Jane Doe. It reads
        # at most 72 characters; a longer password is judged by its start.
        estimate = zxcvbn.zxcvbn(
            password[:ZXCVBN_MAX_LENGTH],
            user_inputs=[i[:ZXCVBN_MAX_LENGTH].lower() for i in user_inputs if i],
        )
        if estimate["score"] < self._settings.password_min_score:
            feedback = estimate.get("feedback") or {}
            warning = feedback.get("warning") or "This password is too easy to guess."
            problems.append(warning if warning.endswith(".") else f"{warning}.")
            problems.extend(feedback.get("suggestions") or [])
        return problems
