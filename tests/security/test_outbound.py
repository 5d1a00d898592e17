"""Server-side request forgery: every URL an organization names is the attacker's.

Anyone may sign up, create an organization and name its SSO issuer, so these tests point KAI at
real servers on loopback standing in for the inside of the network (a database's admin page, a
cloud metadata service) and check that nothing reaches them, while the trusted provider an
operator lists still works (tests/identity/test_sso.py signs in through one).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from kai.config import OutboundSettings
from kai.identity import sso
from kai.identity.models import SsoProvider
from kai.kit.db import act_for
from kai.kit.outbound import (
    OutboundClient,
    OutboundPolicy,
    OutboundRefused,
    OutboundUnavailable,
    Resolver,
    ThreadedResolver,
    address_refusal,
)
from kai.runtime import Runtime
from tests.identity.factories import Member, member
from tests.security.peers import (
    Peer,
    PeerHandler,
    Route,
    certificates_for,
    endless,
    free_port,
    json_answer,
    redirect_to,
    running_peer,
    trickle,
)

SECRET = b'{"banner": "INTERNAL-ONLY admin console v9.1", "password": "hunter2"}'
PROBLEMS = "https://kai.dev/problems/"


@pytest.fixture
def internal() -> Iterator[Peer]:
    """A service inside the network: nothing a user names may ever reach it."""
    routes = {path: json_answer(SECRET) for path in ("/", "/secret", sso.DISCOVERY_PATH)}
    with running_peer(routes) as peer:
        yield peer


def _told(response: httpx.Response) -> str:
    """What an answer tells the caller, but its request id (random hex: "500" or "302" may
    appear in it by chance)."""
    return str({key: value for key, value in response.json().items() if key != "request_id"})


def _loopback_resolver(answers: list[list[str]]) -> tuple[list[str], Resolver]:
    """A resolver answering each call with the next of `answers` (the last one repeats)."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    return asked, resolve


# --- through the API: the attack of issue 13 -------------------------------------------------


@pytest.fixture
async def owner(runtime: Runtime, client: httpx.AsyncClient) -> Member:
    return await member(runtime, client)


async def configure_issuer(client: httpx.AsyncClient, owner: Member, issuer: str) -> httpx.Response:
    return await client.put(
        "/api/v1/organization/sso",
        json={"issuer": issuer, "client_id": "kai", "client_secret": "s3cret-of-the-client"},
        headers=owner.headers,
    )


def _problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    kind: str = response.json()["type"]
    return kind.removeprefix(PROBLEMS)


@pytest.mark.database
@pytest.mark.parametrize(
    "issuer",
    [
        "http://127.0.0.1:{port}",
        "https://127.0.0.1:{port}",
        # Names and spellings that lead to loopback: judged by the address, not the text.
        "https://localhost:{port}",
        "https://localhost.:{port}",
        "https://127.1:{port}",
        "https://2130706433:{port}",
        "https://0x7f.1:{port}",
        "https://[::ffff:127.0.0.1]:{port}",
        "https://[::ffff:7f00:1]:{port}",
        "https://trusted.example@127.0.0.1:{port}",
    ],
)
async def test_an_sso_issuer_inside_the_network_is_refused_and_never_fetched(
    client: httpx.AsyncClient, owner: Member, internal: Peer, issuer: str
) -> None:
    response = await configure_issuer(client, owner, issuer.format(port=internal.port))

    assert _problem(response, 422) == "sso-issuer-invalid"
    assert internal.record.connections == 0
    assert internal.record.requests == []
    # The answer says nothing of why: no address, no range, no exception.
    detail = response.json()["detail"]
    assert detail in (sso.PROVIDER_UNAVAILABLE, sso.client.ISSUER_UNUSABLE)
    for telltale in ("127.", "loopback", "internal", "refused", "Error", "INTERNAL-ONLY"):
        assert telltale not in _told(response)
    # The server goes on serving everyone.
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.database
async def test_why_is_in_the_log_under_the_request_id(
    client: httpx.AsyncClient,
    owner: Member,
    internal: Peer,
    logged: Callable[[], list[dict[str, Any]]],
) -> None:
    response = await client.put(
        "/api/v1/organization/sso",
        json={"issuer": f"https://localhost:{internal.port}", "client_id": "kai"},
        headers={**owner.headers, "X-Request-ID": "ssrf-attempt-1"},
    )

    assert _problem(response, 422) == "sso-issuer-invalid"
    assert response.json()["request_id"] == "ssrf-attempt-1"
    refused = [entry for entry in logged() if entry["event"] == "outbound.refused"]
    assert len(refused) == 1
    assert refused[0]["request_id"] == "ssrf-attempt-1"
    assert "loopback" in refused[0]["reason"]


async def store_provider(runtime: Runtime, owner: Member, issuer: str) -> str:
    """Store the owner's organization's provider as it is, unchecked; its login path."""
    async with runtime.session_factory.begin() as session:
        await act_for(session, organization_id=owner.organization_id)
        session.add(
            SsoProvider(
                organization_id=owner.organization_id,
                issuer=issuer,
                client_id="kai",
                sealed_client_secret=runtime.secret_box("sso").seal(
                    b"secret", context=f"sso:{owner.organization_id}"
                ),
            )
        )
    slug = owner.organization.slug if owner.organization else ""
    return f"/api/v1/auth/sso/{slug}/login"


@pytest.mark.database
async def test_a_stored_issuer_inside_the_network_is_not_fetched_at_login(
    client: httpx.AsyncClient, owner: Member, runtime: Runtime, internal: Peer
) -> None:
    # Saved before the checks existed (or straight into the table): the login fetches through
    # the same client and is refused just the same.
    login = await store_provider(runtime, owner, f"https://localhost:{internal.port}")

    response = await client.get(login)

    assert _problem(response, 502) == "sso-provider-unavailable"
    assert response.json()["detail"] == sso.PROVIDER_UNAVAILABLE
    assert "location" not in response.headers
    assert internal.record.connections == 0


def _trusting(runtime: Runtime, *hosts: str) -> None:
    """The operator lists `hosts` (over plain http), standing in for a public provider."""
    outbound = OutboundSettings(allowed_hosts=list(hosts), allow_http=True)
    runtime.settings = runtime.settings.model_copy(update={"outbound": outbound})


def discovery(issuer: str, **changes: str) -> bytes:
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    return orjson.dumps(document | changes)


@pytest.mark.database
async def test_a_provider_redirecting_inside_is_not_followed(
    client: httpx.AsyncClient, owner: Member, runtime: Runtime, internal: Peer
) -> None:
    _trusting(runtime, "127.0.0.2")
    routes = {sso.DISCOVERY_PATH: redirect_to(internal.url("/secret"))}
    with running_peer(routes, host="127.0.0.2") as hostile:
        response = await configure_issuer(client, owner, hostile.origin)

    assert _problem(response, 422) == "sso-issuer-invalid"
    assert [seen.path for seen in hostile.record.requests] == [sso.DISCOVERY_PATH]
    assert internal.record.connections == 0
    assert "302" not in _told(response)


def discovery_of_itself(**changes: str) -> Route:
    """A discovery document naming the URL it was fetched from as the issuer."""

    def route(handler: PeerHandler) -> None:
        handler.answer(200, discovery(f"http://{handler.headers['Host']}", **changes))

    return route


@pytest.mark.database
async def test_a_discovery_document_sending_logins_elsewhere_is_refused(
    client: httpx.AsyncClient, owner: Member, runtime: Runtime
) -> None:
    _trusting(runtime, "127.0.0.2")
    phishing = discovery_of_itself(authorization_endpoint="https://phish.example/authorize")
    with running_peer({sso.DISCOVERY_PATH: phishing}, host="127.0.0.2") as hostile:
        response = await configure_issuer(client, owner, hostile.origin)

    assert _problem(response, 422) == "sso-issuer-invalid"
    assert response.json()["detail"] == sso.PROVIDER_UNAVAILABLE
    assert "phish" not in _told(response)


@pytest.mark.database
@pytest.mark.parametrize(
    "answer",
    [
        json_answer(SECRET, status=500),
        json_answer(b"<html>nginx/1.2.3: upstream db-primary.internal:5432 down</html>", 200),
        endless(),
    ],
    ids=["error-page", "not-json", "endless"],
)
async def test_what_a_failing_provider_says_stays_out_of_the_answer(
    client: httpx.AsyncClient, owner: Member, runtime: Runtime, answer: object
) -> None:
    _trusting(runtime, "127.0.0.2")
    with running_peer({sso.DISCOVERY_PATH: answer}, host="127.0.0.2") as hostile:
        started = time.monotonic()
        response = await configure_issuer(client, owner, hostile.origin)

    assert _problem(response, 422) == "sso-issuer-invalid"
    assert time.monotonic() - started < 5
    assert response.json()["detail"] == sso.PROVIDER_UNAVAILABLE
    for remote in ("INTERNAL-ONLY", "hunter2", "nginx", "db-primary", "500", "xxxx"):
        assert remote not in _told(response)
    # An endless answer was cut off near the limit, not read to its end.
    assert hostile.record.bytes_sent < 16 * 1024 * 1024


@pytest.mark.database
async def test_logins_do_not_ask_a_failing_provider_again_and_again(
    client: httpx.AsyncClient, owner: Member, runtime: Runtime
) -> None:
    # Anyone may start a login as often as they like: each one must not be a new request to
    # (or a new name lookup of) an issuer that has just failed.
    _trusting(runtime, "127.0.0.2")
    routes: dict[str, Route] = {sso.DISCOVERY_PATH: json_answer(SECRET, status=503)}
    with running_peer(routes, host="127.0.0.2") as failing:
        login = await store_provider(runtime, owner, failing.origin)
        refused = [await client.get(login) for _ in range(5)]
        asked_at_login = len(failing.record.requests)
        # Its administrator mends the provider and sets it up again: that asks at once, and
        # logins work from then on.
        routes[sso.DISCOVERY_PATH] = discovery_of_itself()
        configured = await configure_issuer(client, owner, failing.origin)
        working = await client.get(login)

    for response in refused:
        assert _problem(response, 502) == "sso-provider-unavailable"
        assert response.json()["detail"] == sso.PROVIDER_UNAVAILABLE
    assert asked_at_login == 1
    assert configured.status_code == 200, configured.text
    assert working.status_code == 302, working.text
    assert working.headers["location"].startswith(f"{failing.origin}/auth?")


# An A-label (`xn--...`) that decodes to no valid name: `xn--localhost` is punycode for
# characters no host name may hold.
BAD_IDN_HOSTS = ["xn--localhost", "xn--", "xn--zz-.example"]


@pytest.mark.database
@pytest.mark.parametrize("host", BAD_IDN_HOSTS)
async def test_an_issuer_with_an_undecodable_host_is_refused_not_a_crash(
    client: httpx.AsyncClient, owner: Member, host: str
) -> None:
    response = await configure_issuer(client, owner, f"https://{host}")

    assert _problem(response, 422) == "sso-issuer-invalid"
    assert response.json()["detail"] == sso.client.ISSUER_UNUSABLE
    assert "Codepoint" not in _told(response)


@pytest.mark.database
@pytest.mark.parametrize("endpoint", ["authorization_endpoint", "token_endpoint", "jwks_uri"])
async def test_a_discovery_document_naming_an_undecodable_host_is_the_providers_failure(
    client: httpx.AsyncClient, owner: Member, runtime: Runtime, endpoint: str
) -> None:
    _trusting(runtime, "127.0.0.2")
    document = discovery_of_itself(**{endpoint: "https://xn--localhost/oidc"})
    with running_peer({sso.DISCOVERY_PATH: document}, host="127.0.0.2") as hostile:
        # Met at login, for a provider stored while its document still answered well...
        login = await client.get(await store_provider(runtime, owner, hostile.origin))
        # ...and when an administrator sets it up again.
        configured = await configure_issuer(client, owner, hostile.origin)

    assert _problem(login, 502) == "sso-provider-unavailable"
    assert login.json()["detail"] == sso.PROVIDER_UNAVAILABLE
    assert "location" not in login.headers
    assert _problem(configured, 422) == "sso-issuer-invalid"
    assert configured.json()["detail"] == sso.PROVIDER_UNAVAILABLE
    assert [seen.path for seen in hostile.record.requests] == [sso.DISCOVERY_PATH] * 2


# --- the client itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "0.0.0.0",  # noqa: S104 - an address refused, not one bound
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "169.254.169.254",  # cloud metadata
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "::",
        "::1",
        "fe80::1",
        "fe80::1%1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "fec0::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "::127.0.0.1",  # IPv4-compatible
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::1",
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2001::1",  # Teredo
        "2001:db8::1",
        "100::1",
    ],
)
def test_internal_and_special_addresses_are_refused(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


STAND_IN_FOR_THE_INTERNET = OutboundPolicy(
    allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),), timeout_seconds=5
)


async def test_dns_rebinding_cannot_reach_what_the_check_let_through() -> None:
    # The name answers a "public" address first (127.0.0.2, trusted here as a stand-in for the
    # internet) and loopback afterwards. Both listen on one port: a client that checks one
    # answer and connects by the name again lands on the second.
    certificates = certificates_for("rebind.test")
    server_names: list[str | None] = []
    port = free_port("127.0.0.2")
    asked, resolve = _loopback_resolver([["127.0.0.2"], ["127.0.0.1"]])
    routes = {"/": json_answer(b'{"public": true}')}
    public_tls = certificates.server_context(server_names)
    with (
        running_peer(routes, host="127.0.0.2", port=port, tls=public_tls) as public,
        running_peer(routes, port=port, tls=certificates.server_context()) as inside,
    ):
        outbound = OutboundClient(
            STAND_IN_FOR_THE_INTERNET,
            resolver=resolve,
            ssl_context=certificates.client_context(),
        )
        first = await outbound.request("GET", f"https://rebind.test:{port}/")
        with pytest.raises(OutboundRefused):
            await outbound.request("GET", f"https://rebind.test:{port}/")

    assert first.status_code == 200
    assert first.json() == {"public": True}
    # One resolution per request, and the connection went to the address it judged...
    assert asked == ["rebind.test", "rebind.test"]
    assert inside.record.connections == 0
    assert public.record.connections == 1
    # ...while TLS and HTTP still speak to the name: the certificate was checked against it.
    assert server_names == ["rebind.test"]
    assert public.record.requests[0].host == f"rebind.test:{port}"


async def test_a_name_with_any_internal_address_is_refused_before_connecting(
    internal: Peer,
) -> None:
    asked, resolve = _loopback_resolver([["127.0.0.2", "127.0.0.1"]])
    outbound = OutboundClient(STAND_IN_FOR_THE_INTERNET, resolver=resolve)

    with pytest.raises(OutboundRefused) as refused:
        await outbound.request("GET", f"https://public-looking.example:{internal.port}/")

    assert "127.0.0.1" in refused.value.reason
    assert asked == ["public-looking.example"]
    assert internal.record.connections == 0


async def test_a_public_looking_name_resolving_to_loopback_is_refused(internal: Peer) -> None:
    _, resolve = _loopback_resolver([["127.0.0.1"]])
    outbound = OutboundClient(OutboundPolicy(), resolver=resolve)

    with pytest.raises(OutboundRefused):
        await outbound.request("GET", f"https://idp.example.com:{internal.port}/")

    assert internal.record.connections == 0


async def test_plain_http_is_refused_before_the_name_is_even_resolved(internal: Peer) -> None:
    asked, resolve = _loopback_resolver([["93.184.215.14"]])
    outbound = OutboundClient(OutboundPolicy(allow_http=True), resolver=resolve)

    with pytest.raises(OutboundRefused):
        await outbound.request("GET", f"http://idp.example.com:{internal.port}/")

    assert asked == []


TRUSTED_LOOPBACK = OutboundPolicy(
    allowed_hosts=frozenset({"127.0.0.1"}), allow_http=True, timeout_seconds=1.0
)


async def test_an_allowlisted_host_is_reached(internal: Peer) -> None:
    response = await OutboundClient(TRUSTED_LOOPBACK).request("GET", internal.url("/secret"))

    assert response.status_code == 200
    assert response.content == SECRET


async def test_redirects_are_answers_not_followed(internal: Peer) -> None:
    with running_peer({"/": redirect_to(internal.url("/secret"))}) as redirecting:
        response = await OutboundClient(TRUSTED_LOOPBACK).request("GET", redirecting.url("/"))

    assert response.status_code == 302
    assert internal.record.connections == 0


async def test_proxies_from_the_environment_are_not_used(
    internal: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy connects on KAI's behalf, past the address check: the client ignores them.
    with running_peer({"/secret": json_answer(b"{}")}) as proxy:
        for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(variable, proxy.url())
        await OutboundClient(TRUSTED_LOOPBACK).request("GET", internal.url("/secret"))

    assert proxy.record.connections == 0
    assert len(internal.record.requests) == 1


async def test_an_oversized_answer_is_cut_off_while_reading() -> None:
    small = OutboundPolicy(
        allowed_hosts=frozenset({"127.0.0.1"}), allow_http=True, max_response_bytes=64 * 1024
    )
    with running_peer({"/": endless(), "/announced": json_answer(b"x" * 200_000)}) as peer:
        started = time.monotonic()
        with pytest.raises(OutboundUnavailable) as streamed:
            await OutboundClient(small).request("GET", peer.url("/"))
        with pytest.raises(OutboundUnavailable) as announced:
            await OutboundClient(small).request("GET", peer.url("/announced"))

    assert time.monotonic() - started < 5
    assert "more than 65536 bytes" in streamed.value.reason
    assert "announced 200000 bytes" in announced.value.reason
    # The endless one was cut off near the limit, not read to its end.
    assert peer.record.bytes_sent < 16 * 1024 * 1024


async def test_a_compressed_answer_is_refused() -> None:
    # Its size limit would otherwise be a limit on the compressed size (a gzip bomb).
    def gzip_bomb(handler: PeerHandler) -> None:
        handler.answer(200, b"\x1f\x8b" + b"\0" * 100, headers={"Content-Encoding": "gzip"})

    with running_peer({"/": gzip_bomb}) as peer, pytest.raises(OutboundUnavailable) as refused:
        await OutboundClient(TRUSTED_LOOPBACK).request("GET", peer.url("/"))

    assert "content encoding 'gzip'" in refused.value.reason


async def test_a_slow_answer_is_cut_off_at_the_total_deadline() -> None:
    # A byte every 0.2 s never trips a read timeout; the total deadline (1 s) still holds.
    with running_peer({"/": trickle()}) as peer:
        started = time.monotonic()
        with pytest.raises(OutboundUnavailable) as failed:
            await OutboundClient(TRUSTED_LOOPBACK).request("GET", peer.url("/"))

    assert failed.value.reason == "timed out"
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "https://user:pass@idp.example.com/",
        "https:///no-host",
        "not a url",
        *(f"https://{host}/" for host in BAD_IDN_HOSTS),
    ],
)
async def test_urls_kai_never_requests(url: str) -> None:
    with pytest.raises(OutboundRefused):
        OutboundClient(TRUSTED_LOOPBACK).check_url(url)


# --- names whose DNS stalls -------------------------------------------------------------------

# asyncio's default executor, which `loop.getaddrinfo` and `asyncio.to_thread` share, has this
# many threads (ThreadPoolExecutor's default size on Python 3.11).
DEFAULT_EXECUTOR_THREADS = min(32, (os.cpu_count() or 1) + 4)
# Only so that a broken resolver fails the test rather than hanging it: with the fix, nothing
# waits for this.
HANG_GUARD_SECONDS = 60


class StalledDns:
    """A blocking lookup that stalls, as a name's DNS servers that never answer would, until
    released; then it answers loopback, so no request ever leaves the machine."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self._loop = asyncio.get_running_loop()
        self.started: asyncio.Queue[str] = asyncio.Queue()

    def __call__(self, host: str, port: int) -> list[str]:
        self._loop.call_soon_threadsafe(self.started.put_nowait, host)
        self.release.wait()
        return ["127.0.0.1"]

    async def stalled(self) -> str:
        """The next name whose lookup has begun (and stalls)."""
        async with asyncio.timeout(HANG_GUARD_SECONDS):
            return await self.started.get()

    @contextlib.contextmanager
    def released_at_the_end(self) -> Iterator[None]:
        guard = self._loop.call_later(HANG_GUARD_SECONDS, self.release.set)
        try:
            yield
        finally:
            self.release.set()
            guard.cancel()


async def test_stalled_lookups_leave_the_shared_thread_pool_free() -> None:
    dns = StalledDns()
    outbound = OutboundClient(
        # Long deadlines: the stalled requests stay pending for the whole test.
        OutboundPolicy(timeout_seconds=300, connect_timeout_seconds=60),
        resolver=ThreadedResolver(threads=2, max_lookups=DEFAULT_EXECUTOR_THREADS, lookup=dns),
    )
    # As many requests to stalling names as the default executor has threads: were they
    # resolved there, they would hold every one of them.
    stalled = [
        asyncio.create_task(outbound.request("GET", f"https://stalls-{number}.example/"))
        for number in range(DEFAULT_EXECUTOR_THREADS)
    ]
    with dns.released_at_the_end():
        # The resolver's own two threads are both stuck; the other lookups wait their turn.
        assert {await dns.stalled(), await dns.stalled()} <= {
            f"stalls-{number}.example" for number in range(DEFAULT_EXECUTOR_THREADS)
        }

        # Unrelated work on the shared pool runs at once, while every lookup still stalls...
        ran_while_stalled = await asyncio.to_thread(lambda: not dns.release.is_set())
        # ...and one request more than the resolver takes is refused without waiting, with
        # the same failure as any other.
        with pytest.raises(OutboundUnavailable) as refused:
            await outbound.request("GET", "https://one-too-many.example/")

    assert ran_while_stalled
    assert "lookups in flight" in refused.value.reason
    # Released, the stalled names answered loopback: refused, and nothing was connected to.
    for request in stalled:
        with pytest.raises(OutboundRefused):
            await request


async def test_a_lookup_given_up_on_still_counts_until_its_thread_returns() -> None:
    # `asyncio.timeout` cancels the wait for a lookup; its thread goes on. Counting only the
    # waits would let stalled lookups pile up behind the bound.
    dns = StalledDns()
    resolver = ThreadedResolver(threads=1, max_lookups=2, lookup=dns)
    with dns.released_at_the_end():
        given_up = asyncio.create_task(resolver("stalls.example", 443))
        assert await dns.stalled() == "stalls.example"
        given_up.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await given_up
        queued = asyncio.create_task(resolver("queued.example", 443))
        await asyncio.sleep(0)  # its first step: it takes its place in the queue
        with pytest.raises(OutboundUnavailable):
            await resolver("refused.example", 443)

    # Once the stalled thread returns, the queued lookup runs and the bound frees up.
    assert await queued == ["127.0.0.1"]
    assert await resolver("later.example", 443) == ["127.0.0.1"]


async def test_a_resolver_too_busy_to_try_is_not_held_against_an_issuer() -> None:
    # Someone else's stalled names fill the resolver: the login that finds it full fails, but
    # the next one, once there is room, asks the issuer again.
    dns = StalledDns()
    outbound = OutboundClient(
        OutboundPolicy(), resolver=ThreadedResolver(threads=1, max_lookups=1, lookup=dns)
    )
    with dns.released_at_the_end():
        holding = asyncio.create_task(outbound.request("GET", "https://busy-stalls.example/"))
        assert await dns.stalled() == "busy-stalls.example"
        with pytest.raises(sso.SsoProviderUnavailable):
            await sso.discover("https://bystander.example", outbound=outbound)
    with pytest.raises(OutboundRefused):
        await holding

    with pytest.raises(sso.SsoProviderUnavailable):
        await sso.discover("https://bystander.example", outbound=outbound)
    assert await dns.stalled() == "bystander.example"


async def connections_held_while_stalled(
    engine: AsyncEngine, dns: StalledDns, request: Awaitable[httpx.Response], name: str
) -> tuple[int, httpx.Response]:
    """How many more pooled connections were out while `request` waited on `name`'s stalled
    lookup than before it; and its answer, once the name answered loopback."""
    idle = engine.pool.checkedout()  # type: ignore[attr-defined]
    with dns.released_at_the_end():
        answer = asyncio.create_task(request)
        assert await dns.stalled() == name
        held = engine.pool.checkedout()  # type: ignore[attr-defined]
    return held - idle, await answer


def stalling_outbound(runtime: Runtime, *trusted: str) -> StalledDns:
    """Make every name `runtime` requests (but `trusted` ones, over http) stall."""
    dns = StalledDns()
    runtime.outbound = OutboundClient(  # type: ignore[misc]
        OutboundPolicy(allowed_hosts=frozenset(trusted), allow_http=bool(trusted)),
        resolver=ThreadedResolver(threads=1, max_lookups=1, lookup=dns),
    )
    return dns


# A pooled connection held by each request that waits on a provider would let one
# organization (or anyone, at its login routes) take the pool from every other.


@pytest.mark.database
@pytest.mark.parametrize("route", ["setup", "login"])
async def test_no_database_connection_waits_on_a_stalled_discovery(
    committed_client: httpx.AsyncClient,
    committed_runtime: Runtime,
    engine: AsyncEngine,
    route: str,
) -> None:
    owner = await member(committed_runtime, committed_client)
    dns = stalling_outbound(committed_runtime)
    issuer = f"https://{route}-stalls.example"
    if route == "setup":
        request = configure_issuer(committed_client, owner, issuer)
    else:
        request = committed_client.get(await store_provider(committed_runtime, owner, issuer))

    held, response = await connections_held_while_stalled(
        engine, dns, request, f"{route}-stalls.example"
    )

    assert held == 0
    # The name answered loopback in the end: refused as ever.
    if route == "setup":
        assert _problem(response, 422) == "sso-issuer-invalid"
    else:
        assert _problem(response, 502) == "sso-provider-unavailable"


@pytest.mark.database
async def test_no_database_connection_waits_on_a_stalled_token_endpoint(
    committed_client: httpx.AsyncClient, committed_runtime: Runtime, engine: AsyncEngine
) -> None:
    owner = await member(committed_runtime, committed_client)
    dns = stalling_outbound(committed_runtime, "127.0.0.2")
    stalled = discovery_of_itself(token_endpoint="https://token-stalls.example/token")
    with running_peer({sso.DISCOVERY_PATH: stalled}, host="127.0.0.2") as provider:
        login = await store_provider(committed_runtime, owner, provider.origin)
        started = await committed_client.get(login)
        assert started.status_code == 302, started.text
        state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
        callback = login.removesuffix("/login") + "/callback"

        held, response = await connections_held_while_stalled(
            engine,
            dns,
            committed_client.get(callback, params={"state": state, "code": "a-code"}),
            "token-stalls.example",
        )

    assert held == 0
    assert _problem(response, 502) == "sso-provider-unavailable"
