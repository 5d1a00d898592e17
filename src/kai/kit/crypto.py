"""Secrets: random tokens, their stored digests, and authenticated encryption of stored secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_KEY_FILE = "secret_key"  # noqa: S105 - a file name
_NONCE_BYTES = 12


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random string carrying `nbytes` bytes (>= 16, i.e. 128 bits) of randomness."""
    if nbytes < 16:
        raise ValueError("a token needs at least 128 bits of randomness")
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> bytes:
    """What is stored of a high-entropy token: its SHA-256. Slow hashing buys nothing there."""
    return hashlib.sha256(token.encode()).digest()


def equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def derive_key(master: bytes, purpose: str, length: int = 32) -> bytes:
    """A key for one purpose, derived from the master secret (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()).derive(
        master
    )


class SecretBox:
    """AES-256-GCM for secrets the platform must read back (TOTP seeds, SSO client secrets).

    `context` binds a ciphertext to its owner (a user id, say): moved to another row, it fails
    to decrypt.
    """

    def __init__(self, master: bytes, purpose: str) -> None:
        self._aead = AESGCM(derive_key(master, f"kai secret box: {purpose}"))

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, *, context: str) -> bytes:
        """Raises `cryptography.exceptions.InvalidTag` when tampered with or misplaced."""
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        return self._aead.decrypt(nonce, ciphertext, context.encode())


def load_or_create_secret_key(data_dir: Path) -> bytes:
    """The embedded run's master secret: made once, kept in the data dir, readable by us only."""
    path = data_dir / SECRET_KEY_FILE
    if path.exists():
        return base64.urlsafe_b64decode(path.read_text().strip())
    data_dir.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(base64.urlsafe_b64encode(key).decode())
    try:
        # Another process may have won the race: keep the first key written.
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    return base64.urlsafe_b64decode(path.read_text().strip())


def master_key(configured: str | None, data_dir: Path) -> bytes:
    if configured:
        if len(configured) < 32:
            raise ValueError("KAI_SECRET_KEY must be at least 32 characters")
        return hashlib.sha256(configured.encode()).digest()
    return load_or_create_secret_key(data_dir)
