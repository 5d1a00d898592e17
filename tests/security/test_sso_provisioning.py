"""An organization's identity provider cannot claim addresses, nor learn which have accounts.

Anyone may create an organization and point it at an identity provider of their own, which
then asserts whatever subject and address it likes, `email_verified: true` included. Here the
attacker owns such an organization and signs in as addresses that are not theirs: one with a
KAI account elsewhere, one with none. Both answers are the same, nothing the organization can
see changes, and nothing is created or joined until the mailbox's owner follows the emailed
link. Once they have, their provider's sign-in goes straight through; another organization
naming the same issuer gets nothing from that link; and the role newcomers get stops being
granted once whoever chose it could no longer grant it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kai.identity.models import Organization
from kai.runtime import Runtime
from tests.identity.conftest import Clock
from tests.identity.factories import (
    Member,
    create_organization,
    create_user,
    login,
    member,
)
from tests.identity.oidc.harness import OidcUser, ProviderHandle, running_provider
from tests.identity.outbox import latest_token
from tests.identity.test_sso import (
    KAI_CLIENT,
    OTHER_SLUG,
    SLUG,
    _served_at_public_url,
    configure,
    confirm_by_mailbox,
    first_sso_login,
    identities,
    mail_count,
    new_mail,
    owner_of,
    problem,
    sso_login,
    users_with_email,
)

pytestmark = pytest.mark.database

# Someone with a KAI account (and an organization of their own), who never heard of the
# attacker's organization.
VICTIM = OidcUser(sub="made-up-for-the-victim", email="vic@granite.example", name="Vic Tam")
# An address with no account yet.
NEWCOMER = OidcUser(sub="made-up-for-the-newcomer", email="new@granite.example", name="Ned Ow")
# Someone who really signs in through the provider.
COLLEAGUE = OidcUser(sub="colleague-4410", email="col@granite.example", name="Cole League")
NEW_PASSWORD = "porphyry quarry ledger 42"


@pytest.fixture(scope="module")
def provider() -> Iterator[ProviderHandle]:
    with running_provider(clients=[KAI_CLIENT], users=[VICTIM, NEWCOMER, COLLEAGUE]) as handle:
        yield handle


@pytest.fixture
def runtime(runtime: Runtime) -> Runtime:
    return _served_at_public_url(runtime)


@pytest.fixture
def clock(runtime: Runtime) -> Clock:
    clock = Clock()
    runtime.clock = clock
    return clock


@pytest.fixture
async def attacker(runtime: Runtime, client: httpx.AsyncClient, provider: ProviderHandle) -> Member:
    """The owner of an organization whose provider vouches for any address, any domain."""
    owner = await owner_of(runtime, client, SLUG)
    configured = await configure(client, owner, provider, allowed_email_domains=[])
    assert configured.status_code == 200, configured.text
    return owner


async def _items(client: httpx.AsyncClient, path: str, owner: Member) -> list[dict[str, Any]]:
    response = await client.get(path, params={"limit": 100}, headers=owner.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def seen_by(client: httpx.AsyncClient, owner: Member) -> dict[str, Any]:
    """Everything the organization's owner can read that a sign-in could change."""
    return {
        "members": [item["user_id"] for item in await _items(client, "/api/v1/members", owner)],
        "audit": [
            (item["action"], item["target_id"])
            for item in await _items(client, "/api/v1/audit-events", owner)
        ],
        "jobs": [item["id"] for item in await _items(client, "/api/v1/jobs", owner)],
    }


def answer(response: httpx.Response, address: str) -> tuple[Any, ...]:
    """A response as the browser sees it, with the address it names taken out."""
    return (
        response.status_code,
        response.headers["content-type"],
        response.headers["cache-control"],
        response.text.replace(address, "<address>"),
    )


async def organizations_of(client: httpx.AsyncClient, tokens: dict[str, Any]) -> list[str]:
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    listed = await client.get("/api/v1/me/organizations", headers=headers)
    assert listed.status_code == 200, listed.text
    return sorted(item["organization"]["id"] for item in listed.json()["items"])


async def victim_with_an_organization(runtime: Runtime) -> Organization:
    victim = await create_user(runtime, email=VICTIM.email, name=VICTIM.name)
    return await create_organization(runtime, owner=victim, name="Granite Works")


async def test_a_squat_answers_the_same_with_or_without_an_account_and_changes_nothing(
    client: httpx.AsyncClient, runtime: Runtime, attacker: Member
) -> None:
    own = await victim_with_an_organization(runtime)
    before = await seen_by(client, attacker)
    seen = {
        address: await mail_count(runtime, address) for address in (VICTIM.email, NEWCOMER.email)
    }

    existing = await sso_login(client, VICTIM)
    new = await sso_login(client, NEWCOMER)

    # Not a 409 for the one, an account for the other: one answer, naming the address only.
    assert existing.status_code == 202, existing.text
    assert answer(existing, VICTIM.email) == answer(new, NEWCOMER.email)
    # Nothing the organization can see moved: no member, no audit event, no job.
    assert await seen_by(client, attacker) == before
    assert await users_with_email(runtime, NEWCOMER.email) == 0
    assert await identities(runtime, VICTIM.sub) == []
    assert await identities(runtime, NEWCOMER.sub) == []
    # The victim's account is as it was: their organization only, and it is where they land.
    tokens = await login(client, VICTIM.email)
    assert tokens["organization_id"] == str(own.id)
    assert await organizations_of(client, tokens) == [str(own.id)]
    # Only the mailboxes heard which address has an account.
    [to_victim] = await new_mail(runtime, VICTIM.email, seen[VICTIM.email])
    [to_newcomer] = await new_mail(runtime, NEWCOMER.email, seen[NEWCOMER.email])
    assert "link your existing KAI account" in to_victim.get_content()
    assert "create your KAI account" in to_newcomer.get_content()


async def test_the_owner_of_a_squatted_address_signs_up_into_no_organization_of_the_attacker(
    client: httpx.AsyncClient, runtime: Runtime, attacker: Member
) -> None:
    assert (await sso_login(client, NEWCOMER)).status_code == 202

    # Later the address's owner signs up on their own: a fresh account, nobody's member.
    signed_up = await client.post(
        "/api/v1/auth/signup",
        json={"email": NEWCOMER.email, "password": NEW_PASSWORD, "name": NEWCOMER.name},
    )
    assert signed_up.status_code == 202, signed_up.text
    verify = await latest_token(runtime, NEWCOMER.email, "verify-email")
    assert (await client.post("/api/v1/auth/verify-email", json={"token": verify})).is_success
    tokens = await login(client, NEWCOMER.email, NEW_PASSWORD)

    assert tokens["organization_id"] is None
    assert await organizations_of(client, tokens) == []
    members = await _items(client, "/api/v1/members", attacker)
    assert [item["user_id"] for item in members] == [str(attacker.user.id)]
    assert await identities(runtime, NEWCOMER.sub) == []


async def test_once_the_mailbox_confirms_the_provider_signs_the_person_in_directly(
    client: httpx.AsyncClient, runtime: Runtime, attacker: Member
) -> None:
    seen = await mail_count(runtime, COLLEAGUE.email)
    assert (await sso_login(client, COLLEAGUE)).status_code == 202
    token = await latest_token(runtime, COLLEAGUE.email, "sso/confirm")

    confirmed = await client.post("/api/v1/auth/sso/confirm", json={"token": token})

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["organization_id"] == str(attacker.organization_id)
    members = {
        item["user_id"]: item["role"] for item in await _items(client, "/api/v1/members", attacker)
    }
    assert sorted(members.values()) == ["editor", "owner"]
    for _ in range(2):
        signed_in = await sso_login(client, COLLEAGUE)
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["organization_id"] == str(attacker.organization_id)
    # Straight through: no further email, and the link worked once.
    assert len(await new_mail(runtime, COLLEAGUE.email, seen)) == 1
    replayed = await client.post("/api/v1/auth/sso/confirm", json={"token": token})
    assert problem(replayed, 400) == "invalid-token"


async def test_another_organization_naming_the_same_issuer_does_not_inherit_the_link(
    client: httpx.AsyncClient, runtime: Runtime, attacker: Member, provider: ProviderHandle
) -> None:
    assert (await first_sso_login(client, runtime, COLLEAGUE)).status_code == 200
    # A second organization (another tenant, or the same admin's second one) names the same
    # issuer and client, so its provider vouches for the very same subject.
    other = await owner_of(runtime, client, OTHER_SLUG)
    assert (await configure(client, other, provider, default_role="admin")).status_code == 200
    before = await seen_by(client, other)

    elsewhere = await sso_login(client, COLLEAGUE, slug=OTHER_SLUG)

    assert elsewhere.status_code == 202, elsewhere.text
    assert await seen_by(client, other) == before
    [link] = await identities(runtime, COLLEAGUE.sub)
    assert link.organization_id == attacker.organization_id


async def test_a_pending_link_cannot_be_followed_by_anyone_without_the_mailbox(
    client: httpx.AsyncClient, runtime: Runtime, attacker: Member
) -> None:
    assert (await sso_login(client, NEWCOMER)).status_code == 202

    guessed = await client.post("/api/v1/auth/sso/confirm", json={"token": "A" * 43})

    assert problem(guessed, 400) == "invalid-token"
    assert await users_with_email(runtime, NEWCOMER.email) == 0


async def test_a_provider_signing_in_again_and_again_sends_one_email(
    client: httpx.AsyncClient, runtime: Runtime, attacker: Member, clock: Clock
) -> None:
    seen = await mail_count(runtime, NEWCOMER.email)
    answers = [await sso_login(client, NEWCOMER) for _ in range(3)]

    assert {answer(response, NEWCOMER.email) for response in answers} == {
        answer(answers[0], NEWCOMER.email)
    }
    assert len(await new_mail(runtime, NEWCOMER.email, seen)) == 1
    clock.advance(minutes=3)
    assert (await sso_login(client, NEWCOMER)).status_code == 202
    assert len(await new_mail(runtime, NEWCOMER.email, seen)) == 2


async def test_a_password_someone_else_set_on_an_unconfirmed_account_stops_working(
    client: httpx.AsyncClient, runtime: Runtime, attacker: Member
) -> None:
    # Someone signed up with the victim's address first, and could never confirm it.
    squatted = await client.post(
        "/api/v1/auth/signup",
        json={"email": VICTIM.email, "password": NEW_PASSWORD, "name": "Not Vic"},
    )
    assert squatted.status_code == 202, squatted.text

    signed_in = await first_sso_login(client, runtime, VICTIM)

    assert signed_in.status_code == 200, signed_in.text
    refused = await client.post(
        "/api/v1/auth/login", json={"email": VICTIM.email, "password": NEW_PASSWORD}
    )
    assert problem(refused, 401) == "invalid-credentials"


@pytest.mark.parametrize("fall", ["demoted", "removed"])
async def test_the_role_for_newcomers_stops_once_its_chooser_could_not_grant_it(
    client: httpx.AsyncClient,
    runtime: Runtime,
    provider: ProviderHandle,
    attacker: Member,
    fall: str,
) -> None:
    owner = attacker
    deputy = await member(runtime, client, role="admin", organization=owner.organization)
    chosen = await configure(client, deputy, provider, default_role="admin")
    assert chosen.status_code == 200, chosen.text
    assert (await first_sso_login(client, runtime, COLLEAGUE)).status_code == 200
    # Asked for before the fall, confirmed after it.
    assert (await sso_login(client, VICTIM)).status_code == 202
    path = f"/api/v1/members/{deputy.user.id}"
    if fall == "demoted":
        changed = await client.patch(path, json={"role": "member"}, headers=owner.headers)
    else:
        changed = await client.delete(path, headers=owner.headers)
    assert changed.is_success, changed.text
    members_before = await _items(client, "/api/v1/members", owner)
    seen = await mail_count(runtime, NEWCOMER.email)

    newcomer = await sso_login(client, NEWCOMER)
    late = await confirm_by_mailbox(client, runtime, VICTIM.email)

    assert problem(newcomer, 409) == "sso-misconfigured"
    assert problem(late, 409) == "sso-misconfigured"
    assert "save the single sign-on settings again" in newcomer.json()["detail"]
    assert await new_mail(runtime, NEWCOMER.email, seen) == []
    assert await _items(client, "/api/v1/members", owner) == members_before
    # People already in sign in as before.
    assert (await sso_login(client, COLLEAGUE)).status_code == 200

    # Someone who may grant the role saves the settings again: newcomers come in with it.
    assert (await configure(client, owner, provider, default_role="admin")).status_code == 200
    joined = await confirm_by_mailbox(client, runtime, VICTIM.email)
    assert joined.status_code == 200, joined.text
    roles = {item["email"]: item["role"] for item in await _items(client, "/api/v1/members", owner)}
    assert roles[VICTIM.email] == "admin"
