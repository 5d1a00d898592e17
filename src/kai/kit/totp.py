"""Time-based one-time passwords (RFC 6238 on RFC 4226's HOTP)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Literal
from urllib.parse import quote, urlencode

Algorithm = Literal["SHA1", "SHA256", "SHA512"]
_DIGESTS: dict[str, Callable[[], hashlib._Hash]] = {
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
}

STEP_SECONDS = 30
DIGITS = 6


def hotp(
    secret: bytes, counter: int, *, digits: int = DIGITS, algorithm: Algorithm = "SHA1"
) -> str:
    """RFC 4226: HMAC of the counter, dynamically truncated to `digits` decimal digits."""
    mac = hmac.new(secret, counter.to_bytes(8, "big"), _DIGESTS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    code = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


def time_step(unix_time: float, *, step_seconds: int = STEP_SECONDS) -> int:
    return int(unix_time // step_seconds)


def totp(
    secret: bytes,
    unix_time: float,
    *,
    digits: int = DIGITS,
    algorithm: Algorithm = "SHA1",
    step_seconds: int = STEP_SECONDS,
) -> str:
    return hotp(
        secret, time_step(unix_time, step_seconds=step_seconds), digits=digits, algorithm=algorithm
    )


def matching_step(
    secret: bytes,
    code: str,
    unix_time: float,
    *,
    window: int = 1,
    algorithm: Algorithm = "SHA1",
    digits: int = DIGITS,
) -> int | None:
    """The time step within +/- `window` steps whose code is `code`, or None.

    The caller refuses a step at or before the last one used, so no code works twice.
    """
    if len(code) != digits or not code.isdigit():
        return None
    current = time_step(unix_time)
    found: int | None = None
    # Every candidate is computed and compared in constant time, matched or not.
    for step in range(current - window, current + window + 1):
        candidate = hotp(secret, step, digits=digits, algorithm=algorithm)
        if hmac.compare_digest(candidate.encode(), code.encode()) and found is None:
            found = step
    return found


def new_secret() -> bytes:
    """160 random bits, the length RFC 4226 recommends."""
    return os.urandom(20)


def base32_secret(secret: bytes) -> str:
    return base64.b32encode(secret).decode().rstrip("=")


def provisioning_uri(secret: bytes, *, account: str, issuer: str) -> str:
    """The `otpauth://` URI authenticator apps read (usually from a QR code)."""
    label = quote(f"{issuer}:{account}", safe="")
    query = urlencode(
        {
            "secret": base32_secret(secret),
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": STEP_SECONDS,
        }
    )
    return f"otpauth://totp/{label}?{query}"
