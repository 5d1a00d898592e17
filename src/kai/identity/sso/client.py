"""The OpenID Connect client: a provider's metadata and keys, the token endpoint, ID tokens."""

from __future__ import annotations

import hmac
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import jwt
import structlog

from kai.identity.sso.errors import (
    SsoCodeInvalid,
    SsoIdTokenInvalid,
    SsoProviderUnavailable,
)
from kai.kit.outbound import OutboundBusy, OutboundClient, OutboundError, OutboundRefused

log = structlog.get_logger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
SCOPES = "openid email profile"
ATTEMPT_LIFETIME = timedelta(minutes=10)
# Asymmetric only: `none` proves nothing, and an HMAC key would be the client secret, which
# every holder of it could sign with.
ALLOWED_ALGORITHMS = frozenset({"RS256", "PS256", "ES256", "EdDSA"})
KEY_TYPES = {"RS256": "RSA", "PS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
CLOCK_LEEWAY_SECONDS = 60
METADATA_TTL_SECONDS = 3600.0
# Anyone may start a login, as often as they like: an issuer whose discovery failed is not
# asked again for this long, except by an administrator setting the provider up.
FAILED_DISCOVERY_TTL_SECONDS = 60.0
# An OAuth error code from the browser's redirect is safe to repeat to the caller.
OAUTH_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
OWNER = "owner"
# What the caller learns when the provider fails, whatever failed: its status, its words and
# which of our checks it broke go to the log under the request id. Telling "refused" from
# "unreachable" apart would map the inside of the network for whoever names issuers.
PROVIDER_UNAVAILABLE = (
    "The identity provider could not be used: check that the issuer is its exact https URL, "
    "reachable from the internet, and that it answers OpenID Connect discovery. Quote the "
    "request id to support for the details."
)
# Judged from the issuer as given, before anything is sent.
ISSUER_UNUSABLE = (
    "The issuer must be an https URL with a host, without credentials, query or fragment."
)

# --- the provider's metadata, keys and token endpoint ----------------------------------------

T = TypeVar("T")


class TtlCache(Generic[T]):
    """Values by URL for a while, in this process only (each replica fetches its own).

    Bounded, the least recently used going first: whoever names many URLs (one organization
    cycling through issuers) pushes out the entries nobody has used for longest, not the
    providers that other organizations are signing in through.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 1000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.entries: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def get(self, key: str) -> T | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if time.monotonic() - entry[0] > self.ttl_seconds:
            del self.entries[key]
            return None
        self.entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: T) -> None:
        self.entries[key] = (time.monotonic(), value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def discard(self, key: str) -> None:
        self.entries.pop(key, None)


@dataclass(frozen=True)
class ProviderMetadata:
    """What KAI uses of a provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    # The allowed algorithms the provider says it signs ID tokens with.
    algorithms: frozenset[str]


metadata_cache: TtlCache[ProviderMetadata] = TtlCache(METADATA_TTL_SECONDS)
keys_cache: TtlCache[list[dict[str, Any]]] = TtlCache(METADATA_TTL_SECONDS)
# Issuers whose discovery failed lately.
failed_discoveries: TtlCache[bool] = TtlCache(FAILED_DISCOVERY_TTL_SECONDS)


def _unavailable(reason: str, **context: object) -> SsoProviderUnavailable:
    """The fixed refusal, once `reason` is in the log with the request id."""
    log.warning("sso.provider_unavailable", reason=reason, **context)
    return SsoProviderUnavailable(PROVIDER_UNAVAILABLE)


async def _fetch_json(
    outbound: OutboundClient, method: str, url: str, **options: Any
) -> tuple[int, Any]:
    """Status and JSON body (None when not JSON) of one call through the outbound client."""
    try:
        response = await outbound.request(method, url, **options)
    except OutboundError as error:
        raise _unavailable(error.reason, url=url.split("?", 1)[0]) from error
    return response.status_code, response.json()


def _checked_issuer(issuer: str, outbound: OutboundClient) -> httpx.URL:
    try:
        parsed = outbound.check_url(issuer)
    except OutboundRefused as error:
        log.info("sso.issuer_unusable", reason=error.reason)
        raise SsoProviderUnavailable(ISSUER_UNUSABLE) from error
    if parsed.query or parsed.fragment:
        raise SsoProviderUnavailable(ISSUER_UNUSABLE)
    return parsed


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    # httpx leaves the default port out, so `https://a:443` and `https://a` are one origin.
    return url.scheme, url.host.lower(), url.port


async def discover(
    issuer: str, *, outbound: OutboundClient, fresh: bool = False
) -> ProviderMetadata:
    """The provider's metadata from its discovery document, checked; cached for an hour.

    A failure is remembered for a minute, and only a `fresh` discovery asks again sooner.
    """
    issuer_url = _checked_issuer(issuer, outbound)
    if not fresh:
        cached = metadata_cache.get(issuer)
        if cached is not None:
            return cached
        if failed_discoveries.get(issuer):
            raise _unavailable("discovery failed within the last minute", issuer=issuer)
    try:
        metadata = await _fetch_metadata(issuer, issuer_url, outbound)
    except SsoProviderUnavailable as error:
        # A resolver too busy to try says nothing of the issuer: that is no reason to leave
        # its organization without logins for a minute.
        if not isinstance(error.__cause__, OutboundBusy):
            failed_discoveries.put(issuer, True)
        raise
    failed_discoveries.discard(issuer)
    metadata_cache.put(issuer, metadata)
    return metadata


async def _fetch_metadata(
    issuer: str, issuer_url: httpx.URL, outbound: OutboundClient
) -> ProviderMetadata:
    url = issuer.rstrip("/") + DISCOVERY_PATH
    status, document = await _fetch_json(
        outbound, "GET", url, headers={"Accept": "application/json"}
    )
    if status != 200 or not isinstance(document, dict):
        raise _unavailable(f"no discovery document (HTTP {status})", url=url)
    # OpenID Connect Discovery 1.0, section 4.3: the document speaks for this exact issuer.
    if document.get("issuer") != issuer:
        raise _unavailable("the discovery document names another issuer", url=url)
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        if not isinstance(value, str):
            raise _unavailable(f"the discovery document has no {name}", url=url)
        try:
            endpoint = outbound.check_url(value)
        except OutboundRefused as error:
            raise _unavailable(f"{name} unusable: {error.reason}", url=url) from error
        # Browsers are sent to the authorization endpoint: on another origin, a document an
        # organization controls would make KAI's login link an open redirect.
        if name == "authorization_endpoint" and _origin(endpoint) != _origin(issuer_url):
            raise _unavailable("the authorization endpoint is not on the issuer's origin", url=url)
        # As parsed and checked, so browsers and this client read the same URL.
        endpoints[name] = str(endpoint)
    response_types = document.get("response_types_supported")
    if isinstance(response_types, list) and "code" not in response_types:
        raise _unavailable("no authorization code flow", url=url)
    challenge_methods = document.get("code_challenge_methods_supported")
    if isinstance(challenge_methods, list) and "S256" not in challenge_methods:
        raise _unavailable("no PKCE with S256", url=url)
    advertised = document.get("id_token_signing_alg_values_supported")
    algorithms = ALLOWED_ALGORITHMS & set(advertised if isinstance(advertised, list) else ())
    if not algorithms:
        raise _unavailable(
            f"ID tokens signed with none of {', '.join(sorted(ALLOWED_ALGORITHMS))}", url=url
        )
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        jwks_uri=endpoints["jwks_uri"],
        algorithms=frozenset(algorithms),
    )


async def _published_keys(
    jwks_uri: str, *, outbound: OutboundClient, fresh: bool
) -> list[dict[str, Any]]:
    cached = None if fresh else keys_cache.get(jwks_uri)
    if cached is not None:
        return cached
    status, document = await _fetch_json(
        outbound, "GET", jwks_uri, headers={"Accept": "application/json"}
    )
    if (
        status != 200
        or not isinstance(document, dict)
        or not isinstance(document.get("keys"), list)
    ):
        raise _unavailable(f"no key set (HTTP {status})", url=jwks_uri)
    keys = [key for key in document["keys"] if isinstance(key, dict)]
    keys_cache.put(jwks_uri, keys)
    return keys


def _matching_key(keys: list[dict[str, Any]], algorithm: str, kid: object) -> dict[str, Any] | None:
    candidates = [
        key
        for key in keys
        if key.get("kty") == KEY_TYPES[algorithm]
        and key.get("use", "sig") == "sig"
        and key.get("alg", algorithm) == algorithm
        and (algorithm != "ES256" or key.get("crv") == "P-256")
        and (kid is None or key.get("kid") == kid)
    ]
    # Without a `kid`, only a provider with a single suitable key is unambiguous.
    return candidates[0] if len(candidates) == 1 else None


def _seconds(value: object) -> float | None:
    """A NumericDate claim as a number; None when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _check_claims(claims: dict[str, Any], *, client_id: str, nonce: str, now: datetime) -> None:
    moment = now.timestamp()
    expires, issued = _seconds(claims.get("exp")), _seconds(claims.get("iat"))
    if expires is None or issued is None:
        raise SsoIdTokenInvalid("The ID token has no valid `exp` or `iat`.")
    if expires + CLOCK_LEEWAY_SECONDS <= moment:
        raise SsoIdTokenInvalid("The ID token has expired.")
    if issued - CLOCK_LEEWAY_SECONDS > moment:
        raise SsoIdTokenInvalid("The ID token was issued in the future: check the clocks.")
    not_before = _seconds(claims.get("nbf", moment))
    if not_before is None or not_before - CLOCK_LEEWAY_SECONDS > moment:
        raise SsoIdTokenInvalid("The ID token is not valid yet.")
    audience = claims["aud"]
    audiences = [audience] if isinstance(audience, str) else list(audience)
    party = claims.get("azp")
    if party is not None and party != client_id:
        raise SsoIdTokenInvalid("The ID token was issued to another client (`azp`).")
    if len(audiences) > 1 and party is None:
        raise SsoIdTokenInvalid("The ID token has several audiences but no `azp`.")
    claimed_nonce = claims.get("nonce")
    if not isinstance(claimed_nonce, str) or not hmac.compare_digest(
        claimed_nonce.encode(), nonce.encode()
    ):
        raise SsoIdTokenInvalid("The ID token's nonce does not match this login attempt.")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= 255:
        raise SsoIdTokenInvalid("The ID token's `sub` is missing or too long.")


def _refusal_of(error: Exception) -> str:
    if isinstance(error, jwt.InvalidAudienceError):
        return "The ID token was issued for another audience."
    if isinstance(error, jwt.InvalidIssuerError):
        return "The ID token names another issuer."
    if isinstance(error, jwt.MissingRequiredClaimError):
        return "The ID token lacks a required claim (iss, aud, sub, exp, iat)."
    return "The ID token's signature or format does not check out."


async def verify_id_token(
    id_token: str,
    *,
    metadata: ProviderMetadata,
    outbound: OutboundClient,
    client_id: str,
    nonce: str,
    now: datetime,
) -> dict[str, Any]:
    """The ID token's claims once signature, issuer, audience, lifetime and nonce check out."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as error:
        raise SsoIdTokenInvalid("The ID token is not a well-formed JWT.") from error
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in metadata.algorithms:
        log.info("sso.id_token_algorithm_refused", algorithm=str(algorithm)[:20])
        raise SsoIdTokenInvalid(
            f"ID tokens must be signed with one of {', '.join(sorted(metadata.algorithms))}."
        )
    kid = header.get("kid")
    keys = await _published_keys(metadata.jwks_uri, outbound=outbound, fresh=False)
    key = _matching_key(keys, algorithm, kid)
    if key is None:
        # The provider may have rotated its keys since they were cached.
        keys = await _published_keys(metadata.jwks_uri, outbound=outbound, fresh=True)
        key = _matching_key(keys, algorithm, kid)
    if key is None:
        raise SsoIdTokenInvalid("No key the provider publishes matches the ID token.")
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key=jwt.PyJWK(key, algorithm=algorithm),
            algorithms=[algorithm],
            audience=client_id,
            issuer=metadata.issuer,
            # Times are checked against the runtime's clock below, which tests can move.
            options={
                "require": ["iss", "aud", "sub", "exp", "iat"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        # Our words, not the library's: its messages may quote what the token holds.
        log.info("sso.id_token_refused", reason=repr(error)[:300])
        raise SsoIdTokenInvalid(_refusal_of(error)) from error
    _check_claims(claims, client_id=client_id, nonce=nonce, now=now)
    return claims


async def _exchange_code(
    metadata: ProviderMetadata,
    *,
    outbound: OutboundClient,
    client_id: str,
    client_secret: str,
    code: str,
    code_verifier: str,
    redirect_uri: str,
) -> str:
    """The ID token the token endpoint gives for the code (client_secret_basic)."""
    # RFC 6749, section 2.3.1: both halves of the Basic credential are form-encoded first.
    credentials = (quote(client_id, safe=""), quote(client_secret, safe=""))
    status, document = await _fetch_json(
        outbound,
        "POST",
        metadata.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        },
        auth=credentials,
        headers={"Accept": "application/json"},
    )
    body = document if isinstance(document, dict) else {}
    id_token = body.get("id_token")
    if status == 200 and isinstance(id_token, str):
        return id_token
    error = body.get("error")
    if status in (400, 401) and error == "invalid_grant":
        raise SsoCodeInvalid("The code was used, has expired or is not this login's: log in again.")
    reason = error if isinstance(error, str) and OAUTH_ERROR_CODE.fullmatch(error) else None
    raise _unavailable(
        f"the token endpoint answered HTTP {status} ({reason or 'no ID token'})",
        url=metadata.token_endpoint,
    )
