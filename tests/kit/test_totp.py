"""One-time passwords against the test vectors of RFC 6238 (appendix B) and RFC 4226."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from kai.kit import totp

# RFC 6238 appendix B: the seed is "12345678901234567890" repeated to the digest's size.
SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("unix_time", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc_6238_vectors(unix_time: int, sha1: str, sha256: str, sha512: str) -> None:
    for algorithm, expected in (("SHA1", sha1), ("SHA256", sha256), ("SHA512", sha512)):
        code = totp.totp(SEEDS[algorithm], unix_time, digits=8, algorithm=algorithm)  # type: ignore[arg-type]
        assert code == expected, algorithm


def test_rfc_4226_hotp_vectors() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583"]
    assert [totp.hotp(SEEDS["SHA1"], counter) for counter in range(8)] == expected


def test_a_code_is_accepted_one_step_either_side_and_no_further() -> None:
    secret = totp.new_secret()
    now = 1_700_000_015.0
    step = totp.time_step(now)
    for offset in (-1, 0, 1):
        code = totp.hotp(secret, step + offset)
        assert totp.matching_step(secret, code, now) == step + offset
    for offset in (-2, 2):
        assert totp.matching_step(secret, totp.hotp(secret, step + offset), now) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 456"])
def test_malformed_codes_match_nothing(code: str) -> None:
    assert totp.matching_step(totp.new_secret(), code, 1_700_000_000.0) is None


def test_the_provisioning_uri_is_what_authenticator_apps_read() -> None:
    secret = bytes(range(20))
    uri = totp.provisioning_uri(secret, account="ada@tiles.example", issuer="KAI")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/KAI%3Aada%40tiles.example"
    query = parse_qs(parts.query)
    assert query["secret"] == [totp.base32_secret(secret)]
    assert query["issuer"] == ["KAI"]
    assert query["period"] == ["30"]
    assert query["digits"] == ["6"]
