"""The one HTTP client for requests the server makes to URLs that users name.

SSO issuers today, webhook targets and connector endpoints later: whoever names the URL is
untrusted, so a request goes only to a public address, over https, answers no redirect, and
reads at most so many bytes in so many seconds. The address is checked where the connection
is made: the name is resolved here, every address it resolves to is judged, and the socket
connects to an address that was judged, so a name that answers a public address to a check
and an internal one to the connection (DNS rebinding) gains nothing. TLS still verifies the
certificate against the name, and the Host header still carries it. Names are looked up on a
few threads of their own, so names whose DNS stalls hold none of the process's shared ones.

Hosts and networks the operator lists (`KAI_OUTBOUND__*`) are trusted whatever their address.
What went wrong is logged with the request id; callers and their users learn only that the
remote side could not be used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx
import orjson
import structlog

from kai import __version__
from kai.config import OutboundSettings
from kai.kit.errors import KaiError

log = structlog.get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Addresses of a host name for a port, in the order to try them.
Resolver = Callable[[str, int], Awaitable[list[str]]]

USER_AGENT = f"KAI/{__version__}"


def _networks(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# IANA's special-purpose registries, and then some: what no request on a user's behalf may
# reach. Listed rather than left to `ipaddress.is_global`, whose answers changed between
# Python releases (and which calls multicast global).
BLOCKED_NETWORKS: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("unspecified", _networks("0.0.0.0/8", "::/128")),
    ("loopback", _networks("127.0.0.0/8", "::1/128")),
    ("private", _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")),
    ("shared address space (CGNAT)", _networks("100.64.0.0/10")),
    ("link-local", _networks("169.254.0.0/16", "fe80::/10")),
    ("site-local", _networks("fec0::/10")),
    ("multicast", _networks("224.0.0.0/4", "ff00::/8")),
    ("reserved", _networks("240.0.0.0/4", "5f00::/16")),
    ("protocol assignments", _networks("192.0.0.0/24", "2001::/23")),
    (
        "documentation",
        _networks(
            "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"
        ),
    ),
    ("benchmarking", _networks("198.18.0.0/15")),
    ("6to4 relay", _networks("192.88.99.0/24")),
    ("discard", _networks("100::/64")),
    ("local-use NAT64", _networks("64:ff9b:1::/48")),
    # Deprecated IPv4-compatible addresses (::a.b.c.d), which some stacks still route.
    ("IPv4-compatible", _networks("::/96")),
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: mapped, well-known NAT64, or 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_refusal(address: IPAddress) -> str | None:
    """Why no request on a user's behalf may go to `address`; None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            # Reaching it reaches that IPv4 address, which decides.
            reason = address_refusal(embedded)
            return None if reason is None else f"{reason} (as {address})"
        address = ipaddress.IPv6Address(int(address))  # without a scope id
    for reason, networks in BLOCKED_NETWORKS:
        if any(address in network for network in networks):
            return reason
    if not address.is_global or address.is_multicast or address.is_reserved:
        return "not a public address"
    return None


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


# --- refusals ---------------------------------------------------------------------------------


class OutboundError(KaiError):
    """A request to a URL a user named did not succeed. `reason` is for the log only."""

    status, type, title = 502, "outbound-request-failed", "A remote service could not be used"

    def __init__(self, reason: str) -> None:
        super().__init__(None)
        self.reason = reason


class OutboundRefused(OutboundError):
    """KAI may not send this request at all: its URL or address is not allowed."""


class OutboundUnavailable(OutboundError):
    """The remote side was unreachable, too slow, or answered too much."""


class OutboundBusy(OutboundUnavailable):
    """KAI has too much of this in flight to start another now; no fault of the remote side."""


# --- resolving names -------------------------------------------------------------------------

# A blocking lookup: the addresses of a host name for a port, in the order to try them.
BlockingLookup = Callable[[str, int], list[str]]

# Every lookup of a name users gave runs on these few threads, so names whose DNS stalls can
# fill them and nothing else; past this many lookups running or queued, the next is refused.
RESOLVER_THREADS = 4
RESOLVER_MAX_LOOKUPS = 32


def getaddrinfo_lookup(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host`, in its order (blocks its thread)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class ThreadedResolver:
    """The system resolver on threads of its own, with a bound on the lookups in flight.

    `getaddrinfo` holds its thread until the name's DNS servers answer or it gives up, and how
    slowly they answer is the name owner's choice. On asyncio's default executor those threads
    are the whole process's (`to_thread`: files, images, password hashes), and a timeout
    abandons the wait, not the thread. Here stalled lookups hold only this resolver's threads.
    A lookup counts until its thread is done with it (or it leaves the queue unstarted), not
    until its caller stops waiting; at `max_lookups` the next is refused at once.
    """

    def __init__(
        self,
        *,
        threads: int = RESOLVER_THREADS,
        max_lookups: int = RESOLVER_MAX_LOOKUPS,
        lookup: BlockingLookup = getaddrinfo_lookup,
    ) -> None:
        if not 1 <= threads <= max_lookups:
            raise ValueError("a resolver needs 1 to max_lookups threads")
        self._lookup = lookup
        self._max_lookups = max_lookups
        # Threads start on first use: a process that never names a URL never has them.
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kai-resolve")
        self._lock = threading.Lock()
        self._in_flight = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        with self._lock:
            if self._in_flight >= self._max_lookups:
                raise OutboundBusy(
                    f"{self._in_flight} name lookups in flight already; {host} not looked up"
                )
            self._in_flight += 1
        try:
            future = self._executor.submit(self._lookup, host, port)
        except BaseException:
            self._done(None)
            raise
        # Before `wrap_future` adds its own: the count is down before an awaiting caller
        # resumes. Called from the thread that ran the lookup, or here when it is cancelled
        # unstarted (a caller that gave up on a queued lookup).
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)

    def _done(self, _: Future[list[str]] | None) -> None:
        with self._lock:
            self._in_flight -= 1


# Every client's unless it is given another: the bound is the process's.
system_resolver = ThreadedResolver()


# --- the policy and the connection ----------------------------------------------------------


@dataclass(frozen=True)
class OutboundPolicy:
    """What requests on a user's behalf may do (`KAI_OUTBOUND__*`)."""

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    allow_http: bool = False
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0
    max_response_bytes: int = 1024 * 1024

    @classmethod
    def from_settings(cls, settings: OutboundSettings) -> OutboundPolicy:
        return cls(
            allowed_hosts=frozenset(settings.allowed_hosts),
            allowed_networks=tuple(settings.allowed_networks),
            allow_http=settings.allow_http,
            timeout_seconds=settings.timeout_seconds,
            connect_timeout_seconds=settings.connect_timeout_seconds,
            max_response_bytes=settings.max_response_bytes,
        )

    def trusts_host(self, host: str) -> bool:
        """Whether the operator lists `host` by name or address."""
        host = host.strip("[]").rstrip(".").lower()
        if host in self.allowed_hosts:
            return True
        literal = _literal_address(host)
        return literal is not None and self.trusts_address(literal)

    def trusts_address(self, address: IPAddress) -> bool:
        return any(
            address.version == network.version and address in network
            for network in self.allowed_networks
        )


class _CheckedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Connects to addresses it resolved and judged itself, never to a name."""

    def __init__(self, policy: OutboundPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._sockets = httpcore.AnyIOBackend()

    async def _addresses(self, host: str, port: int) -> list[str]:
        literal = _literal_address(host)
        if literal is not None:
            resolved = [str(literal)]
        else:
            try:
                async with asyncio.timeout(self._policy.connect_timeout_seconds):
                    resolved = await self._resolver(host, port)
            except (OSError, UnicodeError, TimeoutError) as error:
                raise OutboundUnavailable(f"{host} could not be resolved: {error!r}") from error
        if not resolved:
            raise OutboundUnavailable(f"{host} resolved to no address")
        if self._policy.trusts_host(host):
            return resolved
        addresses = []
        for text in resolved:
            address = _literal_address(text)
            if address is None:
                raise OutboundRefused(f"{host} resolved to {text!r}, not an address")
            reason = None if self._policy.trusts_address(address) else address_refusal(address)
            # One internal answer refuses the name: which answer a connection would get is
            # the resolver's (and so the name owner's) choice, not ours.
            if reason is not None:
                raise OutboundRefused(f"{host} resolved to {address}: {reason}")
            addresses.append(str(address))
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self._addresses(host, port):
            try:
                return await self._sockets.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("a unix socket is never a request's target")

    async def sleep(self, seconds: float) -> None:
        await self._sockets.sleep(seconds)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class _CheckedTransport(httpx.AsyncBaseTransport):
    """httpx over an httpcore pool whose every connection goes through the checked backend."""

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        self._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        answer = await self._pool.handle_async_request(
            httpcore.Request(
                method=request.method,
                url=httpcore.URL(
                    scheme=request.url.raw_scheme,
                    host=request.url.raw_host,
                    port=request.url.port,
                    target=request.url.raw_path,
                ),
                headers=request.headers.raw,
                content=request.stream,
                extensions=request.extensions,
            )
        )
        assert isinstance(answer.stream, AsyncIterable)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_ResponseStream(answer.stream),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


# What a remote side can make a request fail with; anything else is a bug of ours.
_REMOTE_FAILURES: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    OSError,
    TimeoutError,
    UnicodeError,
)


@dataclass(frozen=True)
class OutboundResponse:
    """A whole answer, read within the limits."""

    status_code: int
    headers: httpx.Headers
    content: bytes = field(repr=False)

    def json(self) -> Any | None:
        """The body as JSON; None when it is not JSON."""
        try:
            return orjson.loads(self.content)
        except orjson.JSONDecodeError:
            return None


def _loggable(url: httpx.URL) -> str:
    # Queries and credentials may hold secrets (webhook tokens): the log gets the rest.
    return str(url.copy_with(query=None, fragment=None, username=None, password=None))


class OutboundClient:
    """Sends requests to URLs users name; see the module's docstring for the rules."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self._resolver = resolver
        # Loading the trust store costs milliseconds: once per client, not per request. The
        # operator's SSL_CERT_FILE / SSL_CERT_DIR count (a company CA for an internal provider).
        self._ssl_context = ssl_context or httpx.create_ssl_context(trust_env=True)

    def check_url(self, url: str) -> httpx.URL:
        """`url` parsed, when KAI may send a request to it at all (scheme, host, no userinfo).

        Addresses are judged later, when connecting.
        """
        try:
            parsed = httpx.URL(url)
            # httpx decodes an internationalised name (`xn--...`) only here, and the `idna`
            # errors of one that decodes to nothing valid are ValueErrors: inside the `try`.
            host = parsed.host
        except (httpx.InvalidURL, ValueError, TypeError) as error:
            raise OutboundRefused(f"not a URL: {error}") from error
        if parsed.scheme not in ("https", "http") or not host:
            raise OutboundRefused("not an http(s) URL with a host")
        if parsed.userinfo:
            # `https://trusted.example@elsewhere.example` reads as one host and goes to another.
            raise OutboundRefused("credentials in the URL")
        if parsed.scheme == "http" and not (
            self.policy.allow_http and self.policy.trusts_host(host)
        ):
            raise OutboundRefused("plain http to a host the operator does not list")
        return parsed

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        content: bytes | None = None,
        auth: tuple[str, str] | None = None,
    ) -> OutboundResponse:
        """Send one request and read its whole answer; redirects are answers, not followed.

        Raises OutboundRefused before anything is sent to a URL or address KAI may not reach,
        and OutboundUnavailable when the remote side fails, is too slow or answers too much.
        """
        target = self.check_url(url)
        try:
            async with asyncio.timeout(self.policy.timeout_seconds):
                return await self._send(method, target, headers, data, content, auth)
        except OutboundError as error:
            log.warning(
                "outbound.refused" if isinstance(error, OutboundRefused) else "outbound.failed",
                method=method,
                url=_loggable(target),
                reason=error.reason,
            )
            raise
        except _REMOTE_FAILURES as error:
            reason = "timed out" if isinstance(error, TimeoutError) else repr(error)
            log.warning("outbound.failed", method=method, url=_loggable(target), reason=reason)
            raise OutboundUnavailable(reason) from error

    async def _send(
        self,
        method: str,
        target: httpx.URL,
        headers: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        content: bytes | None,
        auth: tuple[str, str] | None,
    ) -> OutboundResponse:
        limit = self.policy.max_response_bytes
        pool = httpcore.AsyncConnectionPool(
            ssl_context=self._ssl_context,
            max_connections=1,
            retries=0,
            network_backend=_CheckedNetworkBackend(self.policy, self._resolver),
        )
        async with (
            httpx.AsyncClient(
                transport=_CheckedTransport(pool),
                # No proxies or .netrc from the environment: a proxy would connect for us,
                # past the address check.
                trust_env=False,
                follow_redirects=False,
                timeout=httpx.Timeout(
                    self.policy.timeout_seconds, connect=self.policy.connect_timeout_seconds
                ),
            ) as client,
            client.stream(
                method,
                target,
                # Compressed answers would make the size limit a limit on the compressed size.
                headers={
                    **(headers or {}),
                    "User-Agent": USER_AGENT,
                    "Accept-Encoding": "identity",
                },
                data=data,
                content=content,
                auth=auth,
            ) as response,
        ):
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding != "identity":
                raise OutboundUnavailable(f"answered with content encoding {encoding!r}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise OutboundUnavailable(f"announced {declared} bytes, over {limit}")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > limit:
                    raise OutboundUnavailable(f"answered more than {limit} bytes")
            return OutboundResponse(
                status_code=response.status_code, headers=response.headers, content=bytes(body)
            )
