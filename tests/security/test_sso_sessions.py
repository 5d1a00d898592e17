"""An organization's identity provider must not take over its members' whole accounts.

The admins of an organization run its identity provider. Before it signs anyone in, that
person links their account to it from their own mailbox (tests/security/test_sso_provisioning.py);
from then on the provider can sign in as that subject whenever its admins like. Here Vera, a
member who also owns another organization, has linked her account, and the provider signs in
as her. The session it gets acts for that organization, as it should; everything beyond it
(her password, two-factor settings, recovery codes, sessions, her other organizations and
their keys) is refused until her own password is confirmed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from kai.identity.models import Organization
from kai.kit import totp
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
    unique_email,
)
from tests.identity.oidc.harness import OidcUser, ProviderHandle, running_provider
from tests.identity.outbox import latest_token
from tests.identity.test_mfa import _enrol, _secret
from tests.identity.test_sso import (
    KAI_CLIENT,
    SLUG,
    _served_at_public_url,
    configure,
    first_sso_login,
    owner_of,
    problem,
)

pytestmark = pytest.mark.database

VERA_EMAIL = "vera@tiles.example"
# Vera at the organization's provider: once linked, its admins sign in as this subject at will.
IMPOSTOR = OidcUser(sub="vera-at-the-provider", email=VERA_EMAIL, name="Vera Steiner")
# Someone the provider brings in, who never had a password.
NICO = OidcUser(sub="nico-3e1f", email="nico@tiles.example", name="Nico Brandt")
NEW_PASSWORD = "basalt staircase lantern 7"


@pytest.fixture(scope="module")
def provider() -> Iterator[ProviderHandle]:
    with running_provider(clients=[KAI_CLIENT], users=[IMPOSTOR, NICO]) as handle:
        yield handle


@pytest.fixture
def runtime(runtime: Runtime) -> Runtime:
    return _served_at_public_url(runtime)


@pytest.fixture
def clock(runtime: Runtime) -> Clock:
    clock = Clock()
    runtime.clock = clock
    return clock


@dataclass
class Scene:
    admin: Member  # owner of the organization whose provider this is
    vera: Member  # password and TOTP; owns another organization; logged in there
    vera_totp: bytes
    other: Organization  # Vera's own organization
    other_key_id: str  # an API key of it
    impostor: dict[str, Any]  # the tokens the provider's sign-in got

    @property
    def impostor_headers(self) -> dict[str, str]:
        return _bearer(self.impostor["access_token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def scene(
    runtime: Runtime, client: httpx.AsyncClient, provider: ProviderHandle, clock: Clock
) -> Scene:
    admin = await owner_of(runtime, client, SLUG)
    assert admin.organization is not None
    vera_user = await create_user(runtime, email=VERA_EMAIL, name="Vera Steiner")
    other = await create_organization(runtime, owner=vera_user, name="Steiner Stone")
    await add_member(runtime, admin.organization, vera_user, "admin")
    tokens = await login(client, VERA_EMAIL)
    # Her own session works in her own organization.
    switched = await client.post(
        "/api/v1/auth/switch-organization",
        json={"organization_id": str(other.id)},
        headers=_bearer(tokens["access_token"]),
    )
    assert switched.status_code == 200, switched.text
    vera = Member(
        user=vera_user,
        organization=other,
        password=PASSWORD,
        access_token=switched.json()["access_token"],
        refresh_token=tokens["refresh_token"],
    )
    secret, _ = await _enrol(client, vera, clock)
    key = await client.post(
        "/api/v1/api-keys",
        json={"name": "ERP", "permissions": ["materials:read"]},
        headers=vera.headers,
    )
    assert key.status_code == 201, key.text
    assert (await configure(client, admin, provider)).status_code == 200

    # Vera links her account from her mailbox (she wanted to sign in through it); then the
    # provider signs in as her without her.
    signed_in = await first_sso_login(client, runtime, IMPOSTOR)

    assert signed_in.status_code == 200, signed_in.text
    return Scene(
        admin=admin,
        vera=vera,
        vera_totp=secret,
        other=other,
        other_key_id=key.json()["id"],
        impostor=signed_in.json(),
    )


def _session_id(access_token: str) -> str:
    """The session a token belongs to (its `sid` claim)."""
    claims = jwt.decode(access_token, options={"verify_signature": False})
    return str(claims["sid"])


def _code(secret: bytes, clock: Clock) -> str:
    """A fresh one-time code: each time step's code works once."""
    clock.advance(seconds=30)
    return totp.totp(secret, clock.now.timestamp())


async def test_the_provider_cannot_take_over_a_members_account(
    client: httpx.AsyncClient, scene: Scene, clock: Clock
) -> None:
    headers = scene.impostor_headers
    me = (await client.get("/api/v1/me", headers=headers)).json()
    assert me["user"]["id"] == str(scene.vera.user.id)
    assert me["authentication_methods"] == ["sso"]

    guess = "the admin's best guess"
    attempts = {
        "enrol TOTP": await client.post("/api/v1/auth/mfa/totp/enrol", headers=headers),
        "confirm TOTP": await client.post(
            "/api/v1/auth/mfa/totp/confirm", json={"code": "123456"}, headers=headers
        ),
        "remove TOTP": await client.post(
            "/api/v1/auth/mfa/totp/disable",
            json={"password": guess, "code": "123456"},
            headers=headers,
        ),
        "new recovery codes": await client.post(
            "/api/v1/auth/mfa/recovery-codes",
            json={"password": guess, "code": "123456"},
            headers=headers,
        ),
        "change password": await client.post(
            "/api/v1/me/password",
            json={"current_password": guess, "new_password": NEW_PASSWORD},
            headers=headers,
        ),
        "end every session": await client.post("/api/v1/auth/logout-everywhere", headers=headers),
        "switch organization": await client.post(
            "/api/v1/auth/switch-organization",
            json={"organization_id": str(scene.other.id)},
            headers=headers,
        ),
        # One she does not belong to gets the same answer: no 404 tells where she does.
        "switch to a stranger's": await client.post(
            "/api/v1/auth/switch-organization",
            json={"organization_id": str(uuid.uuid4())},
            headers=headers,
        ),
        "create an organization": await client.post(
            "/api/v1/organizations", json={"name": "Vera's Front"}, headers=headers
        ),
        "rename her": await client.patch(
            "/api/v1/me", json={"name": "Vera (please wire me money)"}, headers=headers
        ),
        "silence her security alerts": await client.patch(
            "/api/v1/me",
            json={"notification_settings": {"security_alerts": False}},
            headers=headers,
        ),
        "read her two-factor status": await client.get("/api/v1/auth/mfa", headers=headers),
        "list where she is signed in": await client.get("/api/v1/me/sessions", headers=headers),
        "end her session elsewhere": await client.delete(
            f"/api/v1/me/sessions/{_session_id(scene.vera.access_token)}", headers=headers
        ),
        "revoke her other key": await client.delete(
            f"/api/v1/api-keys/{scene.other_key_id}", headers=headers
        ),
        "step up with a guess": await client.post(
            "/api/v1/auth/step-up", json={"password": guess}, headers=headers
        ),
    }

    answered = {what: (a.status_code, problem(a, a.status_code)) for what, a in attempts.items()}
    assert answered == {
        "enrol TOTP": (403, "step-up-required"),
        "confirm TOTP": (403, "step-up-required"),
        "remove TOTP": (401, "invalid-credentials"),
        "new recovery codes": (401, "invalid-credentials"),
        "change password": (403, "step-up-required"),
        "end every session": (403, "step-up-required"),
        "switch organization": (403, "step-up-required"),
        "switch to a stranger's": (403, "step-up-required"),
        "create an organization": (403, "step-up-required"),
        "rename her": (403, "step-up-required"),
        "silence her security alerts": (403, "step-up-required"),
        "read her two-factor status": (403, "step-up-required"),
        "list where she is signed in": (403, "step-up-required"),
        "end her session elsewhere": (403, "step-up-required"),
        "revoke her other key": (404, "api-key-not-found"),
        "step up with a guess": (401, "invalid-credentials"),
    }
    assert "/api/v1/auth/step-up" in attempts["enrol TOTP"].json()["detail"]
    # Nor does it learn where else she belongs.
    listed = await client.get("/api/v1/me/organizations", headers=headers)
    assert [item["organization"]["slug"] for item in listed.json()["items"]] == [SLUG]
    # Preferences of her own that nobody else sees stay hers to set from any session.
    units = await client.patch("/api/v1/me", json={"units": "imperial"}, headers=headers)
    assert units.status_code == 200
    quieter = await client.patch(
        "/api/v1/me",
        json={"locale": "de", "notification_settings": {"weekly_summary": True}},
        headers=headers,
    )
    assert quieter.status_code == 200, quieter.text
    assert quieter.json()["notification_settings"]["security_alerts"] is True

    # Vera's account is as it was: her session elsewhere, her password, her second factor,
    # her recovery codes, her other organization's key.
    assert (await client.get("/api/v1/me", headers=scene.vera.headers)).status_code == 200
    relogin = await client.post(
        "/api/v1/auth/login",
        json={
            "email": VERA_EMAIL,
            "password": PASSWORD,
            "totp_code": _code(scene.vera_totp, clock),
        },
    )
    assert relogin.status_code == 200, relogin.text
    mine = _bearer(relogin.json()["access_token"])
    assert (await client.get("/api/v1/auth/mfa", headers=mine)).json() == {
        "totp_enabled": True,
        "recovery_codes_left": 10,
        "required_by_organization": False,
    }
    key = await client.get(f"/api/v1/api-keys/{scene.other_key_id}", headers=mine)
    assert key.json()["revoked_at"] is None
    assert (await client.get("/api/v1/me", headers=mine)).json()["user"]["name"] == "Vera Steiner"


async def test_after_a_step_up_with_her_password_the_same_changes_work(
    client: httpx.AsyncClient, scene: Scene, clock: Clock, runtime: Runtime
) -> None:
    headers = scene.impostor_headers
    without_code = await client.post(
        "/api/v1/auth/step-up", json={"password": PASSWORD}, headers=headers
    )
    assert problem(without_code, 401) == "mfa-required"

    stepped_up = await client.post(
        "/api/v1/auth/step-up",
        json={"password": PASSWORD, "totp_code": _code(scene.vera_totp, clock)},
        headers=headers,
    )

    assert stepped_up.status_code == 200, stepped_up.text
    body = stepped_up.json()
    minutes = runtime.settings.auth.step_up_minutes
    until = datetime.fromisoformat(body["step_up_expires_at"])
    assert until == clock.now + timedelta(minutes=minutes)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["sso", "pwd", "otp"]
    headers = _bearer(body["access_token"])

    codes = await client.post(
        "/api/v1/auth/mfa/recovery-codes",
        json={"password": PASSWORD, "code": _code(scene.vera_totp, clock)},
        headers=headers,
    )
    assert codes.status_code == 200, codes.text
    off = await client.post(
        "/api/v1/auth/mfa/totp/disable",
        json={"password": PASSWORD, "code": _code(scene.vera_totp, clock)},
        headers=headers,
    )
    assert off.status_code == 204, off.text
    enrolment = await client.post("/api/v1/auth/mfa/totp/enrol", headers=headers)
    assert enrolment.status_code == 200, enrolment.text
    new_secret = _secret(enrolment.json()["otpauth_uri"])
    confirmed = await client.post(
        "/api/v1/auth/mfa/totp/confirm",
        json={"code": _code(new_secret, clock)},
        headers=headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    renamed = await client.patch("/api/v1/me", json={"name": "Vera S."}, headers=headers)
    assert renamed.status_code == 200
    listed = await client.get("/api/v1/me/organizations", headers=headers)
    assert {item["organization"]["id"] for item in listed.json()["items"]} == {
        str(scene.admin.organization_id),
        str(scene.other.id),
    }
    switched = await client.post(
        "/api/v1/auth/switch-organization",
        json={"organization_id": str(scene.other.id)},
        headers=headers,
    )
    assert switched.status_code == 200, switched.text
    headers = _bearer(switched.json()["access_token"])
    changed = await client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert changed.status_code == 204, changed.text
    # Her other sessions ended with the new password.
    assert (await client.get("/api/v1/me", headers=scene.vera.headers)).status_code == 401

    # The proof holds for a few minutes only: then the password (and code) again.
    clock.advance(minutes=minutes, seconds=1)
    stale = await client.post("/api/v1/auth/logout-everywhere", headers=headers)
    assert problem(stale, 403) == "step-up-required"
    again = await client.post(
        "/api/v1/auth/step-up",
        json={"password": NEW_PASSWORD, "totp_code": _code(new_secret, clock)},
        headers=headers,
    )
    assert again.status_code == 200, again.text
    everywhere = await client.post("/api/v1/auth/logout-everywhere", headers=headers)
    assert everywhere.status_code == 200, everywhere.text


async def test_someone_without_a_password_sets_one_by_email_first(
    client: httpx.AsyncClient, provider: ProviderHandle, runtime: Runtime
) -> None:
    admin = await owner_of(runtime, client, SLUG)
    assert (await configure(client, admin, provider)).status_code == 200
    signed_in = await first_sso_login(client, runtime, NICO)
    assert signed_in.status_code == 200, signed_in.text
    headers = _bearer(signed_in.json()["access_token"])

    refused = [
        await client.post("/api/v1/auth/step-up", json={"password": "anything"}, headers=headers),
        await client.post("/api/v1/auth/mfa/totp/enrol", headers=headers),
        await client.post("/api/v1/auth/logout-everywhere", headers=headers),
        await client.post(
            "/api/v1/me/password",
            json={"current_password": "anything", "new_password": NEW_PASSWORD},
            headers=headers,
        ),
    ]

    for answer in refused:
        assert problem(answer, 403) == "password-not-set"
        assert "/api/v1/auth/password-reset" in answer.json()["detail"]
    # What the answer advises: a reset by email, which the mailbox's owner alone can finish.
    await client.post("/api/v1/auth/password-reset", json={"email": NICO.email})
    reset = await client.post(
        "/api/v1/auth/password-reset/confirm",
        json={
            "token": await latest_token(runtime, NICO.email, "reset-password"),
            "password": NEW_PASSWORD,
        },
    )
    assert reset.status_code == 204
    own = await login(client, NICO.email, NEW_PASSWORD)
    enrolment = await client.post(
        "/api/v1/auth/mfa/totp/enrol", headers=_bearer(own["access_token"])
    )
    assert enrolment.status_code == 200, enrolment.text


async def test_a_stolen_access_token_cannot_change_credentials_once_the_login_is_old(
    client: httpx.AsyncClient, runtime: Runtime, clock: Clock
) -> None:
    # Password sessions too: the proof is their login, and it grows old.
    person = await create_user(runtime)
    organization = await create_organization(runtime, owner=person)
    tokens = await login(client, person.email)
    headers = _bearer(tokens["access_token"])
    assert organization.id

    clock.advance(minutes=runtime.settings.auth.step_up_minutes, seconds=1)
    refused = await client.post("/api/v1/auth/mfa/totp/enrol", headers=headers)
    assert problem(refused, 403) == "step-up-required"
    # Reading and working in the organization goes on as before.
    assert (await client.get("/api/v1/members", headers=headers)).status_code == 200

    stepped_up = await client.post(
        "/api/v1/auth/step-up", json={"password": PASSWORD}, headers=headers
    )
    assert stepped_up.status_code == 200, stepped_up.text
    assert (await client.post("/api/v1/auth/mfa/totp/enrol", headers=headers)).status_code == 200


async def test_an_organization_requiring_two_factor_leaves_it_to_its_provider(
    client: httpx.AsyncClient, provider: ProviderHandle, runtime: Runtime
) -> None:
    # A single sign-on member could not enrol TOTP from the provider's session (it is not
    # theirs to set), so the organization's own provider answers for the second factor.
    admin = await owner_of(runtime, client, SLUG)
    assert (await configure(client, admin, provider)).status_code == 200
    required = await client.patch(
        "/api/v1/organization", json={"mfa_required": True}, headers=admin.headers
    )
    assert required.status_code == 200, required.text
    signed_in = await first_sso_login(client, runtime, NICO)

    works = await client.get("/api/v1/members", headers=_bearer(signed_in.json()["access_token"]))

    assert works.status_code == 200, works.text
    # Password sessions still enrol first.
    blocked = await client.get("/api/v1/members", headers=admin.headers)
    assert problem(blocked, 403) == "mfa-enrolment-required"


async def test_one_step_up_does_not_open_her_other_organizations_for_the_whole_session(
    client: httpx.AsyncClient, scene: Scene, clock: Clock, runtime: Runtime
) -> None:
    # A third organization invites her; the provider's session must not be able to accept it,
    # nor switch or found organizations, on the strength of a step-up made long ago.
    inviter = await member(runtime, client, email=unique_email("inviter"))
    invited = await client.post(
        "/api/v1/invitations",
        json={"email": VERA_EMAIL, "role": "admin"},
        headers=inviter.headers,
    )
    assert invited.status_code == 201, invited.text
    invitation = await latest_token(
        runtime, VERA_EMAIL, "invitations/accept", organization_id=inviter.organization_id
    )
    stepped_up = await client.post(
        "/api/v1/auth/step-up",
        json={"password": PASSWORD, "totp_code": _code(scene.vera_totp, clock)},
        headers=scene.impostor_headers,
    )
    assert stepped_up.status_code == 200, stepped_up.text
    headers = _bearer(stepped_up.json()["access_token"])

    clock.advance(minutes=runtime.settings.auth.step_up_minutes, seconds=1)
    attempts = {
        "switch": await client.post(
            "/api/v1/auth/switch-organization",
            json={"organization_id": str(scene.other.id)},
            headers=headers,
        ),
        "create": await client.post(
            "/api/v1/organizations", json={"name": "Vera's Front"}, headers=headers
        ),
        "join": await client.post(
            "/api/v1/invitations/accept", json={"token": invitation}, headers=headers
        ),
    }
    assert {what: problem(answer, 403) for what, answer in attempts.items()} == {
        "switch": "step-up-required",
        "create": "step-up-required",
        "join": "step-up-required",
    }
    assert "/api/v1/auth/step-up" in attempts["join"].json()["detail"]

    # A fresh proof opens them again, for a few minutes.
    again = await client.post(
        "/api/v1/auth/step-up",
        json={"password": PASSWORD, "totp_code": _code(scene.vera_totp, clock)},
        headers=headers,
    )
    assert again.status_code == 200, again.text
    headers = _bearer(again.json()["access_token"])
    joined = await client.post(
        "/api/v1/invitations/accept", json={"token": invitation}, headers=headers
    )
    assert joined.status_code == 200, joined.text
    assert joined.json()["role"] == "admin"
    # Joining moved the session to the organization joined; it carries on from there.
    headers = _bearer(joined.json()["tokens"]["access_token"])
    switched = await client.post(
        "/api/v1/auth/switch-organization",
        json={"organization_id": str(scene.other.id)},
        headers=headers,
    )
    assert switched.status_code == 200, switched.text
