"""Signed tokens: the RFC 7515 example, key ids and rotation, and what must be refused."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kai.config import AuthSettings
from kai.kit.jws import InvalidToken, KeySet, SigningKey, verify_signature

# RFC 7515 appendix A.1: the HS256 example, byte for byte.
RFC_7515_A1_TOKEN = (
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
RFC_7515_A1_KEY = (
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
)


def _b64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def test_the_rfc_7515_hs256_example_verifies() -> None:
    key = SigningKey.hmac("rfc7515", _b64url(RFC_7515_A1_KEY))
    claims = verify_signature(RFC_7515_A1_TOKEN, key)
    assert claims == {"iss": "joe", "exp": 1300819380, "http://example.com/is_root": True}


def test_the_rfc_7515_example_with_one_bit_changed_does_not() -> None:
    key = SigningKey.hmac("rfc7515", _b64url(RFC_7515_A1_KEY))
    header, payload, signature = RFC_7515_A1_TOKEN.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    with pytest.raises(InvalidToken):
        verify_signature(f"{header}.{payload}.{flipped}", key)


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "kai",
        "aud": "kai-api",
        "sub": "user-1",
        "iat": now,
        "exp": now + 300,
        "jti": "j-1",
    }
    claims.update(overrides)
    return claims


def _verify(keys: KeySet, token: str, typ: str = "at+jwt") -> dict[str, object]:
    return keys.verify(token, typ=typ, audience="kai-api", issuer="kai")


def test_tokens_name_their_key_and_verify_after_rotation() -> None:
    old = SigningKey.hmac("k1", b"o" * 32)
    new = SigningKey.hmac("k2", b"n" * 32)
    before = KeySet([old], allowed_algorithms=["HS256"])
    token = before.sign(_claims(), typ="at+jwt")
    assert jwt.get_unverified_header(token)["kid"] == "k1"

    # The new key signs; the old one still verifies tokens it signed until they expire.
    after = KeySet(
        [new, SigningKey("k1", "HS256", verifying_key=b"o" * 32)], allowed_algorithms=["HS256"]
    )
    assert after.signing_kid == "k2"
    assert _verify(after, token)["sub"] == "user-1"
    # Once the old key is dropped, its tokens are refused.
    with pytest.raises(InvalidToken, match="unknown key"):
        _verify(KeySet([new], allowed_algorithms=["HS256"]), token)


def test_asymmetric_keys_sign_and_verify() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    keys = KeySet(
        [SigningKey.asymmetric("ec-1", "ES256", public_pem=None, private_pem=pem)],
        allowed_algorithms=["ES256"],
    )
    assert _verify(keys, keys.sign(_claims(), typ="at+jwt"))["aud"] == "kai-api"


def test_the_default_key_is_derived_from_the_platform_secret() -> None:
    a = KeySet.from_settings(AuthSettings(), b"m" * 32)
    b = KeySet.from_settings(AuthSettings(), b"m" * 32)
    c = KeySet.from_settings(AuthSettings(), b"x" * 32)
    token = a.sign(_claims(), typ="at+jwt")
    assert _verify(b, token)["sub"] == "user-1"
    with pytest.raises(InvalidToken):
        _verify(c, token)


# Made when the test runs, not when it is collected: a long run would otherwise see every
# token expired, and refuse it for that rather than for the reason tested.
@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (lambda: _claims(exp=int(time.time()) - 60), "expired"),
        (lambda: _claims(aud="someone-else"), "(?i)audience"),
        (lambda: _claims(iss="mallory"), "(?i)issuer"),
        (lambda: {k: v for k, v in _claims().items() if k != "jti"}, "jti"),
    ],
)
def test_claims_that_do_not_check_out_are_refused(
    claims: Callable[[], dict[str, object]], reason: str
) -> None:
    keys = KeySet([SigningKey.hmac("k1", b"s" * 32)], allowed_algorithms=["HS256"])
    with pytest.raises(InvalidToken, match=reason):
        _verify(keys, keys.sign(claims(), typ="at+jwt"))


def test_a_token_of_another_type_is_refused() -> None:
    keys = KeySet([SigningKey.hmac("k1", b"s" * 32)], allowed_algorithms=["HS256"])
    with pytest.raises(InvalidToken, match="type"):
        _verify(keys, keys.sign(_claims(), typ="JWT"))
    # RFC 8725: the comparison ignores case and the `application/` prefix.
    assert _verify(keys, keys.sign(_claims(), typ="application/AT+JWT"))


def test_unsigned_tokens_are_refused_even_when_none_is_listed() -> None:
    keys = KeySet([SigningKey.hmac("k1", b"s" * 32)], allowed_algorithms=["HS256", "none"])
    unsigned = jwt.encode(_claims(), None, algorithm="none", headers={"kid": "k1", "typ": "at+jwt"})
    with pytest.raises(InvalidToken, match="not allowed"):
        _verify(keys, unsigned)


def test_a_keyset_refuses_keys_of_algorithms_not_allowed() -> None:
    with pytest.raises(ValueError, match="not allowed"):
        KeySet([SigningKey.hmac("k1", b"s" * 32)], allowed_algorithms=["ES256"])
