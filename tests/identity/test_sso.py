"""Single sign-on end to end, against a real OpenID Connect provider on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select, update

from kai.config import OutboundSettings, RatePolicy
from kai.identity import accounts, sso
from kai.identity.actor import Origin
from kai.identity.models import SsoLoginAttempt, SsoProvider, User, UserIdentity
from kai.kit.db import act_for
from kai.kit.outbound import OutboundClient, OutboundPolicy
from kai.runtime import Runtime
from tests.identity.conftest import Clock
from tests.identity.factories import (
    PASSWORD,
    Member,
    add_member,
    create_organization,
    create_user,
    login,
    member,
)
from tests.identity.oidc.harness import (
    OidcClient,
    OidcUser,
    ProviderHandle,
    login_through_browserless_flow,
    running_provider,
)
from tests.identity.outbox import latest_token, outbox_messages
from tests.security.peers import PeerHandler, Route, running_peer

pytestmark = pytest.mark.database

PUBLIC_URL = "http://kai.test"
SLUG = "mosaic-sso"
OTHER_SLUG = "terrazzo-sso"
PROBLEMS = "https://kai.dev/problems/"


def callback_url(slug: str) -> str:
    return f"{PUBLIC_URL}/api/v1/auth/sso/{slug}/callback"


KAI_CLIENT = OidcClient(
    client_id="kai",
    client_secret="kai-client-secret-for-the-loopback-provider",
    redirect_uris=(callback_url(SLUG), callback_url(OTHER_SLUG)),
)
OTHER_CLIENT = OidcClient(
    client_id="another-app",
    client_secret="another-app-secret-for-the-loopback-provider",
    redirect_uris=(callback_url(SLUG),),
)
ANNA = OidcUser(sub="anna-7f3c", email="anna@tiles.example", name="Anna Rossi")
BRUNO = OidcUser(
    sub="bruno-21aa", email="bruno@tiles.example", name="Bruno Keller", email_verified=False
)
CARLA = OidcUser(sub="carla-90be", email="carla@elsewhere.example", name="Carla Diaz")
DORA = OidcUser(sub="dora-5d1e", email="dora@tiles.example", name="Dora Petit")


@pytest.fixture(scope="module")
def provider() -> Iterator[ProviderHandle]:
    with running_provider(
        clients=[KAI_CLIENT, OTHER_CLIENT], users=[ANNA, BRUNO, CARLA, DORA]
    ) as handle:
        yield handle


# The provider runs on loopback over plain http: the operator's allowlist says so, as a
# developer's would (the default refuses both; tests/security/test_outbound.py).
LOOPBACK_PROVIDER = OutboundSettings(allowed_hosts=["127.0.0.1"], allow_http=True)
OUTBOUND = OutboundClient(OutboundPolicy.from_settings(LOOPBACK_PROVIDER))


def _served_at_public_url(runtime: Runtime) -> Runtime:
    # KAI builds its callback URL from the public URL: make it the test client's own.
    auth = runtime.settings.auth.model_copy(update={"public_url": PUBLIC_URL})
    # A first sign-in takes five `auth` requests (start, callback, confirm, start, callback),
    # and one test makes several at once from one address: more than the class's burst lets a
    # person make (tests/identity/test_rate_limits.py holds the limits themselves).
    limits = runtime.settings.rate_limits.model_copy(
        update={"auth": RatePolicy(limit=600, period_seconds=60, burst=100)}
    )
    runtime.settings = runtime.settings.model_copy(
        update={"auth": auth, "outbound": LOOPBACK_PROVIDER, "rate_limits": limits}
    )
    return runtime


@pytest.fixture
def runtime(runtime: Runtime) -> Runtime:
    return _served_at_public_url(runtime)


@pytest.fixture
def committed_runtime(committed_runtime: Runtime) -> Runtime:
    return _served_at_public_url(committed_runtime)


async def owner_of(runtime: Runtime, client: httpx.AsyncClient, slug: str) -> Member:
    """A logged-in owner of a new organization with a known slug (the provider knows it)."""
    user = await create_user(runtime)
    async with runtime.session_factory.begin() as session:
        organization = await accounts.create_organization(
            session, owner=user, name=f"Tiles {slug}", slug=slug, origin=Origin()
        )
    tokens = await login(client, user.email)
    return Member(
        user=user,
        organization=organization,
        password=PASSWORD,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


@pytest.fixture
async def owner(runtime: Runtime, client: httpx.AsyncClient) -> Member:
    return await owner_of(runtime, client, SLUG)


async def configure(
    client: httpx.AsyncClient, owner: Member, provider: ProviderHandle, **changes: Any
) -> httpx.Response:
    body = {
        "issuer": provider.issuer,
        "client_id": KAI_CLIENT.client_id,
        "client_secret": KAI_CLIENT.client_secret,
        "default_role": "editor",
        "allowed_email_domains": [],
    }
    return await client.put("/api/v1/organization/sso", json=body | changes, headers=owner.headers)


@pytest.fixture
async def configured(client: httpx.AsyncClient, owner: Member, provider: ProviderHandle) -> Member:
    """The owner, once their organization signs in through the provider."""
    response = await configure(client, owner, provider)
    assert response.status_code == 200, response.text
    return owner


async def provider_redirect(client: httpx.AsyncClient, slug: str, login_as: str) -> str:
    """Start a login at KAI, sign in at the provider; the URL it sends the browser back to."""
    start = await client.get(f"/api/v1/auth/sso/{slug}/login")
    assert start.status_code == 302, start.text
    redirect = await login_through_browserless_flow(start.headers["location"], login_as)
    assert redirect.startswith(callback_url(slug) + "?")
    return redirect


async def sso_login(client: httpx.AsyncClient, user: OidcUser, slug: str = SLUG) -> httpx.Response:
    return await client.get(await provider_redirect(client, slug, user.sub))


async def new_mail(runtime: Runtime, address: str, seen: int) -> list[EmailMessage]:
    """Messages to `address` after the first `seen` (the outbox outlives each test)."""
    return (await outbox_messages(runtime, address))[seen:]


async def mail_count(runtime: Runtime, address: str) -> int:
    return len(await outbox_messages(runtime, address))


async def confirm_by_mailbox(
    client: httpx.AsyncClient, runtime: Runtime, address: str
) -> httpx.Response:
    """Follow the newest link that finishes a first sign-in, as the mailbox's owner."""
    token = await latest_token(runtime, address, "sso/confirm")
    return await client.post("/api/v1/auth/sso/confirm", json={"token": token})


async def first_sso_login(
    client: httpx.AsyncClient, runtime: Runtime, user: OidcUser, slug: str = SLUG
) -> httpx.Response:
    """A first sign-in through the provider, finished from the mailbox, then signing in."""
    sent = await sso_login(client, user, slug)
    assert sent.status_code == 202, sent.text
    confirmed = await confirm_by_mailbox(client, runtime, user.email)
    assert confirmed.status_code == 200, confirmed.text
    return await sso_login(client, user, slug)


async def me(client: httpx.AsyncClient, tokens: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def problem(response: httpx.Response, status: int) -> str:
    """The problem type's name, once the response is a problem with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    kind: str = response.json()["type"]
    assert kind.startswith(PROBLEMS)
    return kind.removeprefix(PROBLEMS)


async def identities(runtime: Runtime, subject: str) -> list[UserIdentity]:
    async with runtime.session_factory.begin() as session:
        return list(
            await session.scalars(select(UserIdentity).where(UserIdentity.subject == subject))
        )


async def users_with_email(runtime: Runtime, email: str) -> int:
    async with runtime.session_factory.begin() as session:
        statement = select(func.count()).select_from(User).where(User.email == email)
        return int((await session.execute(statement)).scalar_one())


async def audit_actions(client: httpx.AsyncClient, owner: Member, prefix: str) -> list[str]:
    response = await client.get(
        "/api/v1/audit-events", params={"action": prefix}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    return [event["action"] for event in response.json()["items"]]


# --- signing in -------------------------------------------------------------------------------


async def test_a_first_sign_in_is_finished_from_the_mailbox(
    client: httpx.AsyncClient, configured: Member, runtime: Runtime
) -> None:
    seen = await mail_count(runtime, ANNA.email)
    sent = await sso_login(client, ANNA)

    assert sent.status_code == 202, sent.text
    assert sent.headers["cache-control"] == "no-store"
    assert sent.json()["email"] == ANNA.email
    assert ANNA.email in sent.json()["detail"]
    # Nothing yet: no account, no link, no member, nothing in the organization's log.
    assert await users_with_email(runtime, ANNA.email) == 0
    assert await identities(runtime, ANNA.sub) == []
    assert await audit_actions(client, configured, "sso") == ["sso.provider.configured"]
    [message] = await new_mail(runtime, ANNA.email, seen)
    assert (
        message["Subject"] == f"Confirm your address to join {configured_name(configured)} on KAI"
    )
    assert "create your KAI account" in message.get_content()

    confirmed = await confirm_by_mailbox(client, runtime, ANNA.email)

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() == {
        "organization_id": str(configured.organization_id),
        "login_url": f"{PUBLIC_URL}/api/v1/auth/sso/{SLUG}/login",
    }
    assert await users_with_email(runtime, ANNA.email) == 1


def configured_name(owner: Member) -> str:
    assert owner.organization is not None
    return owner.organization.name


async def test_once_confirmed_sign_in_makes_a_member_with_the_default_role(
    client: httpx.AsyncClient, configured: Member, runtime: Runtime
) -> None:
    response = await first_sso_login(client, runtime, ANNA)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["organization_id"] == str(configured.organization_id)
    assert tokens["refresh_token"]
    caller = await me(client, tokens)
    assert caller["organization"]["id"] == str(configured.organization_id)
    assert caller["role"] == "editor"
    assert caller["authentication_methods"] == ["sso"]
    assert caller["user"]["email"] == ANNA.email
    assert caller["user"]["name"] == ANNA.name
    assert await audit_actions(client, configured, "sso.user_provisioned") == [
        "sso.user_provisioned"
    ]
    assert await audit_actions(client, configured, "sso.identity_linked") == ["sso.identity_linked"]


async def test_signing_in_again_is_the_same_account(
    client: httpx.AsyncClient, configured: Member, runtime: Runtime, provider: ProviderHandle
) -> None:
    first = await first_sso_login(client, runtime, ANNA)
    assert first.status_code == 200, first.text

    second = await sso_login(client, ANNA)

    assert second.status_code == 200, second.text
    assert (await me(client, second.json()))["user"]["id"] == (await me(client, first.json()))[
        "user"
    ]["id"]
    [identity] = await identities(runtime, ANNA.sub)
    assert identity.issuer == provider.issuer
    assert identity.organization_id == configured.organization_id
    assert str(identity.user_id) == (await me(client, second.json()))["user"]["id"]
    assert await users_with_email(runtime, ANNA.email) == 1
    assert len(await audit_actions(client, configured, "sso.user_provisioned")) == 1
    assert len(await audit_actions(client, configured, "auth.login.succeeded")) == 3


async def test_a_member_with_a_password_links_from_the_mailbox(
    client: httpx.AsyncClient, configured: Member, runtime: Runtime
) -> None:
    dora = await create_user(runtime, email=DORA.email)
    assert configured.organization is not None
    await add_member(runtime, configured.organization, dora, "analyst")

    seen = await mail_count(runtime, DORA.email)
    sent = await sso_login(client, DORA)
    assert sent.status_code == 202, sent.text
    assert await identities(runtime, DORA.sub) == []
    [message] = await new_mail(runtime, DORA.email, seen)
    assert "link your existing KAI account" in message.get_content()
    response = await first_sso_login(client, runtime, DORA)

    assert response.status_code == 200, response.text
    caller = await me(client, response.json())
    assert caller["user"]["id"] == str(dora.id)
    assert caller["role"] == "analyst"
    [identity] = await identities(runtime, DORA.sub)
    assert identity.user_id == dora.id
    assert await audit_actions(client, configured, "sso.identity_linked") == ["sso.identity_linked"]
    assert await audit_actions(client, configured, "sso.user_provisioned") == []


async def test_an_account_outside_the_organization_is_not_taken_over(
    client: httpx.AsyncClient, configured: Member, runtime: Runtime
) -> None:
    # Whoever runs an organization's provider could otherwise sign in as anyone by address
    # (tests/security/test_sso_provisioning.py carries the attack further).
    await create_user(runtime, email=ANNA.email)

    response = await sso_login(client, ANNA)

    assert response.status_code == 202, response.text
    assert await identities(runtime, ANNA.sub) == []


async def test_an_address_outside_the_allowed_domains_is_refused(
    client: httpx.AsyncClient, owner: Member, provider: ProviderHandle, runtime: Runtime
) -> None:
    configured = await configure(client, owner, provider, allowed_email_domains=["Tiles.Example"])
    assert configured.json()["allowed_email_domains"] == ["tiles.example"]

    seen = await mail_count(runtime, CARLA.email)
    refused = await sso_login(client, CARLA)
    allowed = await sso_login(client, ANNA)

    assert problem(refused, 403) == "sso-email-domain-not-allowed"
    assert await users_with_email(runtime, CARLA.email) == 0
    assert await new_mail(runtime, CARLA.email, seen) == []
    assert allowed.status_code == 202, allowed.text


async def test_the_organizations_own_domain_policy_applies_too(
    client: httpx.AsyncClient, configured: Member
) -> None:
    changed = await client.patch(
        "/api/v1/organization",
        json={"signup_policy": "email_domain", "allowed_email_domains": ["stone.example"]},
        headers=configured.headers,
    )
    assert changed.status_code == 200, changed.text

    response = await sso_login(client, ANNA)

    assert problem(response, 403) == "sso-email-domain-not-allowed"


async def test_an_unverified_address_is_refused(
    client: httpx.AsyncClient, configured: Member, runtime: Runtime
) -> None:
    response = await sso_login(client, BRUNO)

    assert problem(response, 403) == "sso-email-not-verified"
    assert await users_with_email(runtime, BRUNO.email) == 0


async def test_a_replayed_state_is_refused(client: httpx.AsyncClient, configured: Member) -> None:
    redirect = await provider_redirect(client, SLUG, ANNA.sub)
    first = await client.get(redirect)
    assert first.status_code == 202, first.text

    replayed = await client.get(redirect)

    assert problem(replayed, 400) == "sso-state-invalid"


async def test_an_answer_naming_another_issuer_is_refused(
    client: httpx.AsyncClient, configured: Member, provider: ProviderHandle
) -> None:
    # RFC 9207: the provider names itself in the redirect, against mix-up attacks.
    redirect = await provider_redirect(client, SLUG, ANNA.sub)
    assert f"iss={quote(provider.issuer, safe='')}" in redirect

    response = await client.get(
        redirect.replace(quote(provider.issuer, safe=""), quote("https://idp.example.com"))
    )

    assert problem(response, 400) == "sso-state-invalid"


async def test_a_state_kai_never_issued_is_refused(
    client: httpx.AsyncClient, configured: Member
) -> None:
    response = await client.get(
        f"/api/v1/auth/sso/{SLUG}/callback",
        params={"code": "made-up", "state": secrets.token_urlsafe(32)},
    )

    assert problem(response, 400) == "sso-state-invalid"


async def test_an_expired_attempt_is_refused(
    client: httpx.AsyncClient, configured: Member, clock: Clock
) -> None:
    redirect = await provider_redirect(client, SLUG, ANNA.sub)
    clock.advance(minutes=11)

    response = await client.get(redirect)

    assert problem(response, 400) == "sso-state-invalid"


async def tamper_nonce(runtime: Runtime, organization_id: uuid.UUID) -> None:
    """Change the nonce KAI expects, as if the ID token were minted for another attempt."""
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=organization_id)
        await session.execute(
            update(SsoLoginAttempt)
            .where(SsoLoginAttempt.organization_id == organization_id)
            .values(nonce="not-the-nonce-the-provider-signed")
        )


async def test_a_wrong_nonce_is_refused(
    client: httpx.AsyncClient, configured: Member, runtime: Runtime
) -> None:
    redirect = await provider_redirect(client, SLUG, ANNA.sub)
    await tamper_nonce(runtime, configured.organization_id)

    response = await client.get(redirect)

    assert problem(response, 401) == "sso-id-token-invalid"
    assert "nonce" in response.json()["detail"]
    assert await users_with_email(runtime, ANNA.email) == 0


async def test_a_refusal_is_audited_and_uses_up_its_attempt(
    committed_runtime: Runtime, committed_client: httpx.AsyncClient, provider: ProviderHandle
) -> None:
    # Committed, as in production: what outlives the refused request's rollback shows.
    owner = await owner_of(committed_runtime, committed_client, SLUG)
    assert (await configure(committed_client, owner, provider)).status_code == 200
    redirect = await provider_redirect(committed_client, SLUG, ANNA.sub)
    await tamper_nonce(committed_runtime, owner.organization_id)

    refused = await committed_client.get(redirect)
    replayed = await committed_client.get(redirect)

    assert problem(refused, 401) == "sso-id-token-invalid"
    assert problem(replayed, 400) == "sso-state-invalid"
    events = await committed_client.get(
        "/api/v1/audit-events", params={"action": "sso.login.failed"}, headers=owner.headers
    )
    reasons = [event["details"]["reason"] for event in events.json()["items"]]
    assert reasons == ["sso-state-invalid", "sso-id-token-invalid"]
    assert await users_with_email(committed_runtime, ANNA.email) == 0


async def test_a_login_the_provider_refused_is_refused(
    client: httpx.AsyncClient, configured: Member
) -> None:
    redirect = await provider_redirect(client, SLUG, "nobody")
    assert parse_qs(urlsplit(redirect).query)["error"] == ["access_denied"]

    response = await client.get(redirect)

    assert problem(response, 401) == "sso-login-denied"
    assert "access_denied" in response.json()["detail"]
    # The attempt was used up by the refusal too.
    assert problem(await client.get(redirect), 400) == "sso-state-invalid"


async def test_a_wrong_client_secret_is_the_providers_refusal_not_a_crash(
    client: httpx.AsyncClient, owner: Member, provider: ProviderHandle
) -> None:
    configured = await configure(client, owner, provider, client_secret="not-the-secret")
    assert configured.status_code == 200, configured.text

    response = await sso_login(client, ANNA)

    assert problem(response, 502) == "sso-provider-unavailable"
    # The provider's own words stay in the log: the caller gets the fixed message.
    assert response.json()["detail"] == sso.PROVIDER_UNAVAILABLE
    assert "invalid_client" not in response.text


async def test_an_unreachable_provider_is_a_502(
    client: httpx.AsyncClient, owner: Member, runtime: Runtime
) -> None:
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        session.add(
            SsoProvider(
                organization_id=owner.organization_id,
                # Nothing listens on the discard port.
                issuer="http://127.0.0.1:9",
                client_id="kai",
                sealed_client_secret=runtime.secret_box("sso").seal(
                    b"secret", context=f"sso:{owner.organization_id}"
                ),
            )
        )

    response = await client.get(f"/api/v1/auth/sso/{SLUG}/login")

    assert problem(response, 502) == "sso-provider-unavailable"


async def test_the_login_url_is_also_answered_as_json(
    client: httpx.AsyncClient, configured: Member, provider: ProviderHandle
) -> None:
    response = await client.post(f"/api/v1/auth/sso/{SLUG}/login")

    assert response.status_code == 200, response.text
    url = urlsplit(response.json()["authorization_url"])
    assert f"{url.scheme}://{url.netloc}".startswith(provider.issuer)
    query = parse_qs(url.query)
    assert query["redirect_uri"] == [callback_url(SLUG)]
    assert query["client_id"] == [KAI_CLIENT.client_id]
    assert query["code_challenge_method"] == ["S256"]
    assert query["response_type"] == ["code"]
    assert set(query["scope"][0].split()) == {"openid", "email", "profile"}
    assert len(query["state"][0]) >= 43
    assert len(query["nonce"][0]) >= 43


async def test_an_organization_without_sso_answers_404(
    client: httpx.AsyncClient, owner: Member
) -> None:
    not_set_up = await client.get(f"/api/v1/auth/sso/{SLUG}/login")
    unknown = await client.get("/api/v1/auth/sso/no-such-organization/login")
    callback = await client.get(
        "/api/v1/auth/sso/no-such-organization/callback", params={"code": "c", "state": "s"}
    )

    assert problem(not_set_up, 404) == "sso-not-configured"
    assert problem(unknown, 404) == "sso-not-configured"
    assert problem(callback, 404) == "sso-not-configured"


async def test_a_disabled_provider_answers_404(
    client: httpx.AsyncClient, owner: Member, provider: ProviderHandle
) -> None:
    configured = await configure(client, owner, provider, enabled=False)
    assert configured.status_code == 200, configured.text

    response = await client.get(f"/api/v1/auth/sso/{SLUG}/login")

    assert problem(response, 404) == "sso-not-configured"


async def test_each_organization_signs_in_to_itself(
    client: httpx.AsyncClient, configured: Member, provider: ProviderHandle, runtime: Runtime
) -> None:
    other_owner = await owner_of(runtime, client, OTHER_SLUG)
    assert (await configure(client, other_owner, provider, default_role="analyst")).is_success
    first = await first_sso_login(client, runtime, ANNA)

    # The first organization's link is not the second's, though the issuer is the same.
    other = await first_sso_login(client, runtime, ANNA, slug=OTHER_SLUG)

    assert other.status_code == 200, other.text
    assert {identity.organization_id for identity in await identities(runtime, ANNA.sub)} == {
        configured.organization_id,
        other_owner.organization_id,
    }
    caller = await me(client, other.json())
    assert caller["organization"]["id"] == str(other_owner.organization_id)
    assert caller["role"] == "analyst"
    assert caller["user"]["id"] == (await me(client, first.json()))["user"]["id"]


# --- the ID token ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def metadata(provider: ProviderHandle) -> sso.ProviderMetadata:
    return await sso.discover(provider.issuer, outbound=OUTBOUND)


async def real_id_token(
    metadata: sso.ProviderMetadata, client: OidcClient, nonce: str, user: OidcUser = ANNA
) -> str:
    """An ID token the provider issues to `client` through the code flow."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": callback_url(SLUG),
        "scope": "openid email profile",
        "state": secrets.token_urlsafe(16),
        "nonce": nonce,
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    redirect = await login_through_browserless_flow(
        f"{metadata.authorization_endpoint}?{urlencode(params)}", user.sub
    )
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(
            metadata.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": parse_qs(urlsplit(redirect).query)["code"][0],
                "redirect_uri": callback_url(SLUG),
                "code_verifier": verifier,
            },
            auth=(client.client_id, client.client_secret),
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["id_token"]
    return token


NONCE = "the-nonce-of-this-login-attempt-0123456789"


@pytest.fixture(scope="module")
async def id_token(metadata: sso.ProviderMetadata) -> str:
    return await real_id_token(metadata, KAI_CLIENT, NONCE)


async def verify(
    token: str,
    metadata: sso.ProviderMetadata,
    *,
    client_id: str = KAI_CLIENT.client_id,
    nonce: str = NONCE,
    now: datetime | None = None,
) -> dict[str, Any]:
    return await sso.verify_id_token(
        token,
        metadata=metadata,
        outbound=OUTBOUND,
        client_id=client_id,
        nonce=nonce,
        now=now or datetime.now(UTC),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decoded(part: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return _decoded(header), _decoded(payload), signature


def _flip(text: str, index: int) -> str:
    return text[:index] + ("B" if text[index] == "A" else "A") + text[index + 1 :]


def edited_payload(token: str) -> str:
    header, _, signature = token.split(".")
    claims = _parts(token)[1] | {"sub": "mallory", "email": "mallory@tiles.example"}
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def flipped_in_payload(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{_flip(payload, len(payload) // 2)}.{signature}"


def flipped_in_signature(token: str) -> str:
    # Not the last character: its low bits are padding, and changing them changes nothing.
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{_flip(signature, len(signature) // 2)}"


def unsigned(token: str) -> str:
    header, claims, _ = _parts(token)
    fake = _b64(json.dumps(header | {"alg": "none"}).encode())
    return f"{fake}.{_b64(json.dumps(claims).encode())}."


def signed_with_client_secret(token: str) -> str:
    # The classic confusion: HS256 keyed with something the attacker knows.
    header, claims, _ = _parts(token)
    signing_input = ".".join(
        _b64(json.dumps(part).encode()) for part in (header | {"alg": "HS256"}, claims)
    )
    mac = hmac.new(KAI_CLIENT.client_secret.encode(), signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{_b64(mac.digest())}"


def signed_by_another_key(token: str) -> str:
    header, claims, _ = _parts(token)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": header["kid"]})


async def test_a_genuine_id_token_is_believed(
    id_token: str, metadata: sso.ProviderMetadata
) -> None:
    claims = await verify(id_token, metadata)

    assert (claims["sub"], claims["email"], claims["nonce"]) == (ANNA.sub, ANNA.email, NONCE)


@pytest.mark.parametrize(
    "tamper",
    [
        edited_payload,
        flipped_in_payload,
        flipped_in_signature,
        unsigned,
        signed_with_client_secret,
        signed_by_another_key,
    ],
    ids=lambda tamper: tamper.__name__,
)
async def test_a_tampered_id_token_is_refused(
    id_token: str, metadata: sso.ProviderMetadata, tamper: Callable[[str], str]
) -> None:
    with pytest.raises(sso.SsoIdTokenInvalid):
        await verify(tamper(id_token), metadata)


async def test_an_id_token_for_another_client_is_refused(metadata: sso.ProviderMetadata) -> None:
    token = await real_id_token(metadata, OTHER_CLIENT, NONCE)

    with pytest.raises(sso.SsoIdTokenInvalid, match=r"(?i)audience"):
        await verify(token, metadata)


async def test_an_id_token_with_another_nonce_is_refused(
    id_token: str, metadata: sso.ProviderMetadata
) -> None:
    with pytest.raises(sso.SsoIdTokenInvalid, match="nonce"):
        await verify(id_token, metadata, nonce="the-nonce-of-another-login")


async def test_an_id_token_from_another_issuer_is_refused(
    id_token: str, metadata: sso.ProviderMetadata
) -> None:
    elsewhere = sso.ProviderMetadata(
        issuer="https://idp.elsewhere.example",
        authorization_endpoint=metadata.authorization_endpoint,
        token_endpoint=metadata.token_endpoint,
        jwks_uri=metadata.jwks_uri,
        algorithms=metadata.algorithms,
    )

    with pytest.raises(sso.SsoIdTokenInvalid, match="issuer"):
        await verify(id_token, elsewhere)


async def test_an_expired_id_token_is_refused(
    id_token: str, metadata: sso.ProviderMetadata
) -> None:
    expires = datetime.fromtimestamp(_parts(id_token)[1]["exp"], UTC)

    assert await verify(id_token, metadata, now=expires + timedelta(seconds=30))
    with pytest.raises(sso.SsoIdTokenInvalid, match="expired"):
        await verify(id_token, metadata, now=expires + timedelta(minutes=2))


async def test_keys_are_fetched_again_when_the_provider_rotated_them(
    id_token: str, metadata: sso.ProviderMetadata
) -> None:
    sso.keys_cache.put(metadata.jwks_uri, [])

    assert (await verify(id_token, metadata))["sub"] == ANNA.sub
    assert sso.keys_cache.get(metadata.jwks_uri)


def discovery_at(path: str) -> Route:
    """A minimal discovery document for the issuer `http://<host>{path}`."""

    def route(handler: PeerHandler) -> None:
        issuer = f"http://{handler.headers['Host']}{path}"
        document = {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/auth",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        handler.answer(200, json.dumps(document).encode())

    return route


async def test_cycling_through_issuers_evicts_only_the_least_recently_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One organization names issuer after issuer (each setup is discovered and cached) while
    # people of another keep signing in through theirs: a small cache shows the bound.
    cache = sso.TtlCache[sso.ProviderMetadata](sso.METADATA_TTL_SECONDS, max_entries=4)
    monkeypatch.setattr(sso.client, "metadata_cache", cache)
    cycled = [f"/cycled-{number}" for number in range(12)]
    routes = {f"{path}{sso.DISCOVERY_PATH}": discovery_at(path) for path in ["/ours", *cycled]}
    with running_peer(routes) as peer:
        ours = peer.url("/ours")
        await sso.discover(ours, outbound=OUTBOUND)
        for number, path in enumerate(cycled):
            await sso.discover(peer.url(path), outbound=OUTBOUND, fresh=True)
            if number % 2:
                assert (await sso.discover(ours, outbound=OUTBOUND)).issuer == ours
        fetched = [seen.path for seen in peer.record.requests]

    # Ours was fetched once, however many issuers came and went around it...
    assert fetched.count(f"/ours{sso.DISCOVERY_PATH}") == 1
    # ...and the cache stayed within its bound by letting the oldest cycled ones go.
    assert len(cache.entries) == 4
    assert peer.url(cycled[0]) not in cache.entries
    assert peer.url(cycled[-1]) in cache.entries


# --- setting the provider up ----------------------------------------------------------------


async def test_the_provider_is_set_up_read_and_removed_by_its_owner(
    client: httpx.AsyncClient, owner: Member, provider: ProviderHandle, runtime: Runtime
) -> None:
    put = await configure(client, owner, provider)
    assert put.status_code == 200, put.text

    read = await client.get("/api/v1/organization/sso", headers=owner.headers)

    assert read.status_code == 200, read.text
    body = read.json()
    assert "client_secret" not in body
    assert KAI_CLIENT.client_secret not in read.text
    assert body["has_client_secret"] is True
    assert body["issuer"] == provider.issuer
    assert body["redirect_uri"] == callback_url(SLUG)
    assert body["login_url"] == f"{PUBLIC_URL}/api/v1/auth/sso/{SLUG}/login"
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        stored = (await session.scalars(select(SsoProvider))).one()
        assert stored.sealed_client_secret is not None
        assert KAI_CLIENT.client_secret.encode() not in stored.sealed_client_secret
    assert await audit_actions(client, owner, "sso.provider") == ["sso.provider.configured"]

    removed = await client.delete("/api/v1/organization/sso", headers=owner.headers)
    gone = await client.get("/api/v1/organization/sso", headers=owner.headers)

    assert removed.status_code == 204, removed.text
    assert problem(gone, 404) == "sso-not-configured"


async def test_the_secret_is_kept_when_left_out(
    client: httpx.AsyncClient, configured: Member, provider: ProviderHandle
) -> None:
    body = {"issuer": provider.issuer, "client_id": KAI_CLIENT.client_id, "enabled": True}

    changed = await client.put("/api/v1/organization/sso", json=body, headers=configured.headers)
    signed_in = await sso_login(client, ANNA)

    assert changed.status_code == 200, changed.text
    assert changed.json()["default_role"] == "member"
    # The code was exchanged with the kept secret, and the ID token believed.
    assert signed_in.status_code == 202, signed_in.text


async def test_a_first_setup_needs_a_secret(
    client: httpx.AsyncClient, owner: Member, provider: ProviderHandle
) -> None:
    response = await configure(client, owner, provider, client_secret=None)

    assert problem(response, 422) == "sso-client-secret-required"


@pytest.mark.parametrize(
    "issuer",
    ["{issuer}/not-here", "http://127.0.0.1:9", "http://idp.example.com"],
    ids=["wrong-path", "nothing-listening", "plain-http"],
)
async def test_an_issuer_that_is_no_provider_is_refused(
    client: httpx.AsyncClient, owner: Member, provider: ProviderHandle, issuer: str
) -> None:
    response = await configure(
        client, owner, provider, issuer=issuer.format(issuer=provider.issuer)
    )

    assert problem(response, 422) == "sso-issuer-invalid"
    assert response.json()["detail"]


async def test_the_default_role_must_exist_and_be_grantable(
    client: httpx.AsyncClient, owner: Member, provider: ProviderHandle, runtime: Runtime
) -> None:
    role = await client.post(
        "/api/v1/roles",
        json={"key": "sso-keeper", "name": "SSO keeper", "permissions": ["sso:manage"]},
        headers=owner.headers,
    )
    assert role.status_code == 201, role.text
    keeper = await member(runtime, client, role="sso-keeper", organization=owner.organization)

    as_owner = await configure(client, owner, provider, default_role="owner")
    unknown = await configure(client, owner, provider, default_role="no-such-role")
    beyond = await configure(client, keeper, provider, default_role="editor")
    within = await configure(client, keeper, provider, default_role="sso-keeper")

    assert problem(as_owner, 422) == "sso-default-role-not-allowed"
    assert problem(unknown, 404) == "role-not-found"
    assert problem(beyond, 403) == "permission-denied"
    assert within.status_code == 200, within.text


async def test_setting_up_sso_needs_sso_manage(
    client: httpx.AsyncClient, configured: Member, provider: ProviderHandle, runtime: Runtime
) -> None:
    plain = await member(runtime, client, role="member", organization=configured.organization)

    read = await client.get("/api/v1/organization/sso", headers=plain.headers)
    put = await configure(client, plain, provider)
    delete = await client.delete("/api/v1/organization/sso", headers=plain.headers)

    for response in (read, put, delete):
        assert problem(response, 403) == "permission-denied"
    assert (await client.get("/api/v1/organization/sso", headers=configured.headers)).is_success


async def test_a_single_sign_on_session_stays_in_its_organization(
    client: httpx.AsyncClient, configured: Member, runtime: Runtime
) -> None:
    tokens = (await first_sso_login(client, runtime, ANNA)).json()
    anna = await me(client, tokens)
    # Anna also belongs to another organization; the provider of the first cannot reach it.
    other_owner = await create_user(runtime)
    other = await create_organization(runtime, owner=other_owner, name="Elsewhere")
    async with runtime.session_factory() as session:
        user = await session.get(User, uuid.UUID(anna["user"]["id"]))
    assert user is not None
    await add_member(runtime, other, user, "admin")
    refused = await client.post(
        "/api/v1/auth/switch-organization",
        json={"organization_id": str(other.id)},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert refused.status_code == 403


async def test_the_default_role_of_single_sign_on_cannot_be_deleted(
    client: httpx.AsyncClient, owner: Member, provider: ProviderHandle
) -> None:
    created = await client.post(
        "/api/v1/roles",
        json={"key": "sso-guest", "name": "Guest", "permissions": ["materials:read"]},
        headers=owner.headers,
    )
    await configure(client, owner, provider, default_role="sso-guest")
    refused = await client.delete(f"/api/v1/roles/{created.json()['id']}", headers=owner.headers)
    assert refused.status_code == 409


async def test_a_password_reset_drops_the_links_to_identity_providers(
    client: httpx.AsyncClient, configured: Member, runtime: Runtime
) -> None:
    assert (await first_sso_login(client, runtime, ANNA)).status_code == 200
    assert len(await identities(runtime, ANNA.sub)) == 1
    await client.post("/api/v1/auth/password-reset", json={"email": ANNA.email})
    token = await latest_token(runtime, ANNA.email, "reset-password")
    reset = await client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "password": "verde antico slab 1999"},
    )
    assert reset.status_code == 204
    assert await identities(runtime, ANNA.sub) == []
    # Still a member: the next single sign-on links the account again, from the mailbox.
    assert (await first_sso_login(client, runtime, ANNA)).status_code == 200
    assert len(await identities(runtime, ANNA.sub)) == 1


# --- the web app's sign-in ----------------------------------------------------------------------


async def web_sso_login(client: httpx.AsyncClient, user: OidcUser) -> httpx.Response:
    """A sign-in the web app starts: the browser carries the login's cookie to the callback."""
    start = await client.get(f"/api/v1/auth/sso/{SLUG}/login", params={"client": "web"})
    assert start.status_code == 302, start.text
    marker = start.cookies.get("kai_sso_web") or _cookie_value(start, "kai_sso_web")
    assert marker == "1"
    assert "samesite=lax" in start.headers["set-cookie"].lower()
    redirect = await login_through_browserless_flow(start.headers["location"], user.sub)
    return await client.get(redirect, headers={"Cookie": "kai_sso_web=1"})


def _cookie_value(response: httpx.Response, name: str) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        key, _, rest = header.partition("=")
        if key == name:
            return rest.split(";", 1)[0]
    return None


async def test_the_web_apps_sign_in_lands_in_the_app_with_a_session_cookie(
    client: httpx.AsyncClient, configured: Member, runtime: Runtime
) -> None:
    sent = await web_sso_login(client, ANNA)
    assert sent.status_code == 303
    assert sent.headers["location"] == "/login?sso=sent"
    confirmed = await confirm_by_mailbox(client, runtime, ANNA.email)
    assert confirmed.status_code == 200, confirmed.text

    signed_in = await web_sso_login(client, ANNA)

    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/"
    assert signed_in.headers["cache-control"] == "no-store"
    refresh_token = _cookie_value(signed_in, "kai_refresh")
    assert refresh_token
    assert refresh_token.startswith("kai_rt_")
    # The login's own cookie is spent, and no token is in the body or the address.
    assert _cookie_value(signed_in, "kai_sso_web") in ("", '""')
    assert "kai_rt_" not in signed_in.text
    refreshed = await client.post(
        "/api/v1/auth/refresh",
        headers={"X-Requested-With": "kai", "Cookie": f"kai_refresh={refresh_token}"},
    )
    assert refreshed.status_code == 200, refreshed.text
    assert (await me(client, refreshed.json()))["user"]["email"] == ANNA.email


async def test_a_refused_web_sign_in_goes_back_to_the_login_with_no_provider_text(
    client: httpx.AsyncClient, configured: Member
) -> None:
    answer = await client.get(
        f"/api/v1/auth/sso/{SLUG}/callback",
        params={"state": "never-issued", "code": "x"},
        headers={"Cookie": "kai_sso_web=1"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?sso=failed"
    assert _cookie_value(answer, "kai_refresh") is None
