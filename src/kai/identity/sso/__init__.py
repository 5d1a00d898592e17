"""Single sign-on with OpenID Connect, one identity provider per organization.

A login is the authorization code flow with PKCE (S256), a state that works once and a nonce
bound into the ID token. The ID token is believed only once its signature checks out against
the provider's published keys and its issuer, audience, lifetime and nonce match. What it says
proves who someone is in the provider's organization, never that they own an address: a
subject that organization's provider linked before signs in; any other is sent, by email to
the address, a link that creates or links the account and joins it with the provider's
default role (`provisioning`).
"""

from __future__ import annotations

from kai.identity.sso.client import (
    ALLOWED_ALGORITHMS,
    ATTEMPT_LIFETIME,
    CLOCK_LEEWAY_SECONDS,
    DISCOVERY_PATH,
    FAILED_DISCOVERY_TTL_SECONDS,
    KEY_TYPES,
    METADATA_TTL_SECONDS,
    OAUTH_ERROR_CODE,
    OWNER,
    PROVIDER_UNAVAILABLE,
    SCOPES,
    ProviderMetadata,
    TtlCache,
    discover,
    failed_discoveries,
    keys_cache,
    metadata_cache,
    verify_id_token,
)
from kai.identity.sso.errors import (
    SsoAccountDisabled,
    SsoClientSecretRequired,
    SsoCodeInvalid,
    SsoDefaultRoleNotAllowed,
    SsoEmailDomainNotAllowed,
    SsoEmailNotVerified,
    SsoIdTokenInvalid,
    SsoIssuerInvalid,
    SsoLoginDenied,
    SsoMisconfigured,
    SsoNotConfigured,
    SsoProviderUnavailable,
    SsoStateInvalid,
)
from kai.identity.sso.provisioning import LinkSent, confirm_link
from kai.identity.sso.repository import SsoRepository
from kai.identity.sso.service import (
    configure_provider,
    delete_provider,
    finish_login,
    get_provider,
    start_login,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "ATTEMPT_LIFETIME",
    "CLOCK_LEEWAY_SECONDS",
    "DISCOVERY_PATH",
    "FAILED_DISCOVERY_TTL_SECONDS",
    "KEY_TYPES",
    "METADATA_TTL_SECONDS",
    "OAUTH_ERROR_CODE",
    "OWNER",
    "PROVIDER_UNAVAILABLE",
    "SCOPES",
    "LinkSent",
    "ProviderMetadata",
    "SsoAccountDisabled",
    "SsoClientSecretRequired",
    "SsoCodeInvalid",
    "SsoDefaultRoleNotAllowed",
    "SsoEmailDomainNotAllowed",
    "SsoEmailNotVerified",
    "SsoIdTokenInvalid",
    "SsoIssuerInvalid",
    "SsoLoginDenied",
    "SsoMisconfigured",
    "SsoNotConfigured",
    "SsoProviderUnavailable",
    "SsoRepository",
    "SsoStateInvalid",
    "TtlCache",
    "configure_provider",
    "confirm_link",
    "delete_provider",
    "discover",
    "failed_discoveries",
    "finish_login",
    "get_provider",
    "keys_cache",
    "metadata_cache",
    "start_login",
    "verify_id_token",
]
