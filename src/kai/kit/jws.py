"""Signed tokens (JWS/JWT, RFC 7515/7519) on PyJWT: keys with ids, rotation, an allowlist.

A token names its key (`kid`); the key fixes the one algorithm it may be verified with, so a
token cannot pick its own algorithm (`none`, or HMAC keyed with a public key).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from kai.config import AuthSettings
from kai.kit.crypto import derive_key

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
DEFAULT_KID = "derived-1"
VERIFIED_CACHE_SIZE = 10_000


class InvalidToken(Exception):
    """The token is not acceptable; `reason` says why, for logs (never for the client)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    verifying_key: Any
    signing_key: Any | None = None

    @classmethod
    def hmac(cls, kid: str, secret: bytes, algorithm: str = "HS256") -> SigningKey:
        if algorithm not in HMAC_ALGORITHMS:
            raise ValueError(f"{algorithm} is not an HMAC algorithm")
        if len(secret) < 32:
            raise ValueError("an HMAC signing secret needs at least 256 bits")
        return cls(kid=kid, algorithm=algorithm, verifying_key=secret, signing_key=secret)

    @classmethod
    def asymmetric(
        cls, kid: str, algorithm: str, *, public_pem: str | None, private_pem: str | None
    ) -> SigningKey:
        private = load_pem_private_key(private_pem.encode(), None) if private_pem else None
        if public_pem:
            public = load_pem_public_key(public_pem.encode())
        elif private is not None:
            public = private.public_key()
        else:
            raise ValueError(f"key {kid} has neither a public nor a private key")
        return cls(kid=kid, algorithm=algorithm, verifying_key=public, signing_key=private)


class KeySet:
    """The keys tokens are signed and verified with; the first that can sign, signs."""

    def __init__(self, keys: Iterable[SigningKey], *, allowed_algorithms: Iterable[str]) -> None:
        self._keys = {key.kid: key for key in keys}
        allowed = {algorithm for algorithm in allowed_algorithms if algorithm.lower() != "none"}
        self._allowed = frozenset(allowed)
        signers = [key for key in self._keys.values() if key.signing_key is not None]
        if not signers:
            raise ValueError("no signing key: at least one key needs its secret or private key")
        self._signer = signers[0]
        # Tokens already verified, with their claims: a client sends the same token on every
        # request for minutes, and verifying it again each time was most of the JWT's cost.
        self._verified: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        for key in self._keys.values():
            if key.algorithm not in self._allowed:
                raise ValueError(f"key {key.kid} uses {key.algorithm}, which is not allowed")

    @classmethod
    def from_settings(cls, settings: AuthSettings, master_key: bytes) -> KeySet:
        keys: list[SigningKey] = []
        for configured in settings.jwt_keys:
            if configured.algorithm in HMAC_ALGORITHMS:
                if configured.secret is None:
                    raise ValueError(f"HMAC key {configured.kid} needs a secret")
                keys.append(
                    SigningKey.hmac(
                        configured.kid,
                        configured.secret.get_secret_value().encode(),
                        configured.algorithm,
                    )
                )
            else:
                keys.append(
                    SigningKey.asymmetric(
                        configured.kid,
                        configured.algorithm,
                        public_pem=configured.public_key,
                        private_pem=(
                            configured.private_key.get_secret_value()
                            if configured.private_key
                            else None
                        ),
                    )
                )
        if not keys:
            keys.append(SigningKey.hmac(DEFAULT_KID, derive_key(master_key, "kai access tokens")))
        return cls(keys, allowed_algorithms=settings.jwt_algorithms)

    @property
    def signing_kid(self) -> str:
        return self._signer.kid

    def sign(self, claims: Mapping[str, Any], *, typ: str) -> str:
        key = self._signer
        signing_key: Any = key.signing_key
        return jwt.encode(
            dict(claims), signing_key, algorithm=key.algorithm, headers={"kid": key.kid, "typ": typ}
        )

    def verify(
        self,
        token: str,
        *,
        typ: str,
        audience: str,
        issuer: str,
        required: Iterable[str] = ("exp", "iat", "sub", "jti"),
        leeway_seconds: float = 5.0,
    ) -> dict[str, Any]:
        """The token's claims once its header, signature, type and claims all check out."""
        required = tuple(required)
        memo = (token, typ, audience, issuer, required)
        known = self._verified.get(memo)
        if known is not None:
            if float(known["exp"]) + leeway_seconds > time.time():
                self._verified.move_to_end(memo)
                return dict(known)
            del self._verified[memo]
        claims = self._verify(
            token,
            typ=typ,
            audience=audience,
            issuer=issuer,
            required=required,
            leeway_seconds=leeway_seconds,
        )
        if "exp" in claims:
            self._verified[memo] = claims
            if len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return dict(claims)

    def _verify(
        self,
        token: str,
        *,
        typ: str,
        audience: str,
        issuer: str,
        required: Iterable[str],
        leeway_seconds: float,
    ) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed: {exc}") from exc
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._allowed:
            raise InvalidToken(f"algorithm {algorithm!r} is not allowed")
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise InvalidToken(f"unknown key id {header.get('kid')!r}")
        if algorithm != key.algorithm:
            raise InvalidToken(f"key {key.kid} is for {key.algorithm}, the token says {algorithm}")
        if not _same_type(header.get("typ"), typ):
            raise InvalidToken(f"type {header.get('typ')!r} where {typ!r} was expected")
        try:
            return jwt.decode(
                token,
                key.verifying_key,
                algorithms=[key.algorithm],
                audience=audience,
                issuer=issuer,
                leeway=leeway_seconds,
                # `iat` must be there, but `exp` decides: a clock running ahead of this one
                # must not lock its tokens out.
                options={"require": list(required), "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc


def verify_signature(token: str, key: SigningKey) -> dict[str, Any]:
    """The claims of a token signed by `key`, checking the signature and nothing else."""
    try:
        return jwt.decode(
            token,
            key.verifying_key,
            algorithms=[key.algorithm],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc


def _same_type(actual: object, expected: str) -> bool:
    # RFC 8725 3.11: `typ` compares case-insensitively, with or without `application/`.
    if not isinstance(actual, str):
        return False
    return _normalised_type(actual) == _normalised_type(expected)


def _normalised_type(value: str) -> str:
    return value.lower().removeprefix("application/")


def new_jti() -> str:
    return uuid.uuid4().hex


def now() -> int:
    return int(time.time())
