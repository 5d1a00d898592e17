"""Refusals of single sign-on, each with a stable problem type."""

from __future__ import annotations

from kai.kit.errors import Conflict, KaiError, NotFound


class SsoNotConfigured(NotFound):
    type, title = "sso-not-configured", "Single sign-on is not set up for this organization"


class SsoIssuerInvalid(KaiError):
    status, type, title = 422, "sso-issuer-invalid", "Not a usable OpenID Connect issuer"


class SsoClientSecretRequired(KaiError):
    status, type, title = 422, "sso-client-secret-required", "A client secret is required"


class SsoDefaultRoleNotAllowed(KaiError):
    status, type, title = 422, "sso-default-role-not-allowed", "SSO cannot make anyone an owner"


class SsoStateInvalid(KaiError):
    status, type, title = 400, "sso-state-invalid", "Unknown, expired or used login attempt"


class SsoCodeInvalid(KaiError):
    status, type, title = 400, "sso-code-invalid", "The provider refused the authorization code"


class SsoLoginDenied(KaiError):
    status, type, title = 401, "sso-login-denied", "The identity provider did not log you in"


class SsoIdTokenInvalid(KaiError):
    status, type, title = 401, "sso-id-token-invalid", "The identity provider's ID token is invalid"


class SsoEmailNotVerified(KaiError):
    status, type, title = 403, "sso-email-not-verified", "The provider vouched for no address"


class SsoEmailDomainNotAllowed(KaiError):
    status, type, title = 403, "sso-email-domain-not-allowed", "This email domain is not allowed"


class SsoAccountDisabled(KaiError):
    status, type, title = 403, "sso-account-disabled", "This account is disabled"


class SsoMisconfigured(Conflict):
    type, title = "sso-misconfigured", "Single sign-on is misconfigured for this organization"


class SsoProviderUnavailable(KaiError):
    status, type, title = 502, "sso-provider-unavailable", "The identity provider could not be used"
