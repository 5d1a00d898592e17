"""Single sign-on in the browser, through a real OpenID Connect provider on loopback.

The provider is Node's oidc-provider (`tests/identity/oidc/`), and people log in on its own
page. KAI reaches it as an operator lets it reach a provider inside the company network:
this module's server trusts the provider's loopback address, over plain http. The browser
reaches KAI as `localhost` and the provider as `127.0.0.1`: two sites, as a company's
provider is to KAI, so the way back from the provider is a navigation from another site that
must still carry the cookie of the login the app started.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pytest_playwright.pytest_playwright import CreateContextCallback

from tests.identity.oidc.harness import OidcClient, OidcUser, ProviderHandle, running_provider
from web.e2e.people import Person, api_client, new_person, owner_of_new_organization
from web.e2e.serving import serving
from web.e2e.support import Server, assert_accessible, screenshot

CLIENT_ID = "kai-e2e"
CLIENT_SECRET = "kai-e2e-secret-for-the-loopback-provider"
SENT = (
    "We emailed you a link to finish signing in for the first time. "
    "Open it, then sign in through your provider again."
)
FAILED = (
    "Signing in through your organization's provider did not work. "
    "Try again, or ask your administrator."
)

_subjects = itertools.count()


@pytest.fixture(scope="module")
def sso_server(
    tmp_path_factory: pytest.TempPathFactory, server_url: str, worker_name: str, model_dir: Path
) -> Iterator[Server]:
    """A server that trusts identity providers on this machine's loopback address."""
    with serving(
        data_dir=tmp_path_factory.mktemp("e2e-sso-data"),
        server_url=server_url,
        database=f"kai_e2e_sso_{worker_name}",
        model_dir=model_dir,
        host_name="localhost",
        settings={
            "KAI_OUTBOUND__ALLOWED_HOSTS": '["127.0.0.1"]',
            "KAI_OUTBOUND__ALLOW_HTTP": "true",
        },
    ) as server:
        yield server


@pytest.fixture
def app_server(sso_server: Server) -> Server:
    """This module's pages open on its own server."""
    return sso_server


def _slug(server: Server, owner: Person) -> str:
    """The short name of the owner's organization, which its members sign in with."""
    with api_client(server, owner) as api:
        slug: str = api.get("/api/v1/me").json()["organization"]["slug"]
    return slug


def _callback(server: Server, slug: str) -> str:
    return f"{server.url}/api/v1/auth/sso/{slug}/callback"


@contextlib.contextmanager
def _provider(server: Server, slug: str, *people: Person) -> Iterator[ProviderHandle]:
    """The organization's provider, which knows `people` and has KAI as a client."""
    kai = OidcClient(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=(_callback(server, slug),),
    )
    users = [
        OidcUser(sub=f"account-{next(_subjects)}", email=person.email, name=person.name)
        for person in people
    ]
    with running_provider(clients=[kai], users=users) as provider:
        yield provider


def _account_of(provider: ProviderHandle, person: Person) -> str:
    """What `person` types into the provider's login page."""
    return next(user.sub for user in provider.users if user.email == person.email)


def _stranger(new_context: CreateContextCallback) -> Page:
    """A browser of someone logged in neither to KAI nor to the provider."""
    page = new_context().new_page()
    page.set_default_timeout(20_000)
    page.set_default_navigation_timeout(30_000)
    return page


def _to_the_provider(
    page: Page, slug: str, provider: ProviderHandle, *, shown_as: str | None = None
) -> None:
    """From KAI's login screen to the provider's own login page."""
    page.goto("/login")
    page.get_by_role("button", name="Sign in with your organization's provider").click()
    page.get_by_label("Organization's short name").fill(slug)
    if shown_as:
        assert_accessible(page, shown_as)
        screenshot(page, shown_as)
    page.get_by_role("button", name="Continue to your provider").click()
    expect(page).to_have_url(re.compile(re.escape(provider.issuer) + r"/interaction/[\w-]+$"))


def _log_in_at_the_provider(page: Page, account: str) -> None:
    page.get_by_label("Login (sub)").fill(account)
    page.get_by_role("button", name="Sign in").click()


def _in_the_app(page: Page, server: Server, person: Person) -> None:
    expect(page).to_have_url(f"{server.url}/")
    expect(page.get_by_role("navigation", name="Menu")).to_be_visible()
    expect(page.get_by_role("banner").get_by_role("link", name=person.name)).to_be_visible()


def test_a_member_signs_in_through_the_organizations_provider(
    page: Page, new_context: CreateContextCallback, sso_server: Server
) -> None:
    owner = owner_of_new_organization(page, sso_server, "sso")
    slug = _slug(sso_server, owner)
    member = new_person("member")
    with _provider(sso_server, slug, member) as provider:
        # The owner sets the provider up in the admin screen, which names the redirect URI to
        # register there: the one the provider has.
        page.goto("/admin/sso")
        expect(page.get_by_text("Not set up.")).to_be_visible()
        page.get_by_label("Issuer").fill(provider.issuer)
        page.get_by_label("Client ID").fill(CLIENT_ID)
        page.get_by_label("Client secret").fill(CLIENT_SECRET)
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()
        expect(page.get_by_text("Members can sign in through your OpenID Connect")).to_be_visible()
        expect(page.get_by_text(_callback(sso_server, slug), exact=True)).to_be_visible()
        assert_accessible(page, "admin-sso-configured")
        screenshot(page, "admin-sso-configured")

        # The first time, the provider's word is not enough: the mailbox confirms.
        visitor = _stranger(new_context)
        _to_the_provider(visitor, slug, provider, shown_as="login-sso")
        screenshot(visitor, "sso-provider-login")
        _log_in_at_the_provider(visitor, _account_of(provider, member))
        expect(visitor).to_have_url(f"{sso_server.url}/login?sso=sent")
        expect(visitor.get_by_role("status")).to_have_text(SENT)
        assert_accessible(visitor, "login-sso-sent")
        screenshot(visitor, "login-sso-sent")

        visitor.goto(sso_server.link(member.email, "/sso/confirm"))
        visitor.get_by_role("button", name="Link my account").click()
        expect(visitor.get_by_role("status")).to_have_text(
            "Your account is linked. Sign in through your provider from now on."
        )
        assert_accessible(visitor, "sso-confirmed")
        screenshot(visitor, "sso-confirmed")
        # The provider still knows this browser, and answers at once.
        visitor.get_by_role("link", name="Continue to your provider").click()
        _in_the_app(visitor, sso_server, member)
        visitor.get_by_role("banner").get_by_role("link", name=member.name).click()
        expect(visitor.get_by_role("heading", name="Your account", level=1)).to_be_visible()
        expect(visitor.get_by_text(member.email)).to_be_visible()
        assert_accessible(visitor, "account-after-sso")
        screenshot(visitor, "account-after-sso")

        # From then on, in any browser: the provider's page, then straight into the app.
        mails = len(sso_server.outbox(member.email))
        elsewhere = _stranger(new_context)
        _to_the_provider(elsewhere, slug, provider)
        _log_in_at_the_provider(elsewhere, _account_of(provider, member))
        _in_the_app(elsewhere, sso_server, member)
        assert len(sso_server.outbox(member.email)) == mails


def test_a_login_the_provider_refuses_is_said_plainly_on_the_login_screen(
    page: Page, new_context: CreateContextCallback, sso_server: Server
) -> None:
    owner = owner_of_new_organization(page, sso_server, "refusal")
    slug = _slug(sso_server, owner)
    with _provider(sso_server, slug, new_person("member")) as provider:
        # The admin screen's own test is the one above.
        with api_client(sso_server, owner) as api:
            configured = api.put(
                "/api/v1/organization/sso",
                json={
                    "issuer": provider.issuer,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                },
            )
            assert configured.status_code == 200, configured.text

        visitor = _stranger(new_context)
        _to_the_provider(visitor, slug, provider)
        # An account the provider does not know: it sends the browser back to KAI with
        # access_denied and a description of its own.
        _log_in_at_the_provider(visitor, "no-such-account")

        expect(visitor).to_have_url(f"{sso_server.url}/login?sso=failed")
        expect(visitor.get_by_role("alert")).to_have_text(FAILED)
        shown = visitor.locator("body").inner_text()
        for providers_words in ("access_denied", "unknown login", "no-such-account"):
            assert providers_words not in shown
        expect(visitor.get_by_role("navigation", name="Menu")).not_to_be_attached()
        assert_accessible(visitor, "login-sso-failed")
        screenshot(visitor, "login-sso-failed")
