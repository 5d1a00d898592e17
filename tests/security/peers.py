"""Real servers on loopback that an attack points KAI at, recording whatever reaches them."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import socket
import socketserver
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Route = Callable[["PeerHandler"], None]


@dataclass(frozen=True)
class Seen:
    """One request as the peer received it."""

    method: str
    path: str
    host: str | None


@dataclass
class Record:
    connections: int = 0
    requests: list[Seen] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    bytes_sent: int = 0


class PeerHandler(http.server.BaseHTTPRequestHandler):
    server: _PeerServer
    # Bodies without a length end when the connection closes.
    protocol_version = "HTTP/1.0"

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        record = self.server.record
        record.requests.append(Seen(self.command, self.path, self.headers.get("Host")))
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.answer(404, b'{"error": "not here"}')
            return
        route(self)

    # http.server's names for the methods it serves.
    do_GET = do_POST = do_PUT = _dispatch  # noqa: N815

    def answer(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.write(body)

    def write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        self.server.record.bytes_sent += len(data)


class _PeerServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], routes: dict[str, Route], tls: ssl.SSLContext | None
    ) -> None:
        self.routes = routes
        self.tls = tls
        self.record = Record()
        super().__init__(address, PeerHandler)

    def get_request(self) -> tuple[Any, Any]:
        connection, address = self.socket.accept()
        self.record.connections += 1
        if self.tls is not None:
            connection = self.tls.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-answer are what several tests are about.
        pass


@dataclass
class Peer:
    """A running server: where it listens and what it saw."""

    host: str
    port: int
    scheme: str
    record: Record

    def url(self, path: str = "", *, host: str | None = None) -> str:
        name = host or self.host
        if ":" in name:
            name = f"[{name}]"
        return f"{self.scheme}://{name}:{self.port}{path}"

    @property
    def origin(self) -> str:
        return self.url()


@contextmanager
def running_peer(
    routes: dict[str, Route] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ssl.SSLContext | None = None,
) -> Iterator[Peer]:
    server = _PeerServer((host, port), routes or {}, tls)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Peer(
            host=host,
            port=server.server_address[1],
            scheme="https" if tls else "http",
            record=server.record,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


# --- answers ---------------------------------------------------------------------------------


def json_answer(body: bytes, status: int = 200) -> Route:
    def route(handler: PeerHandler) -> None:
        handler.answer(status, body)

    return route


def redirect_to(location: str) -> Route:
    def route(handler: PeerHandler) -> None:
        handler.answer(302, b"", headers={"Location": location})

    return route


def endless(chunk: bytes = b"x" * 65536, *, total: int = 64 * 1024 * 1024) -> Route:
    """An answer without a length that goes on until `total` bytes or the client leaves."""

    def route(handler: PeerHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        sent = 0
        while sent < total:
            handler.write(chunk)
            sent += len(chunk)

    return route


def trickle(interval: float = 0.2, *, for_seconds: float = 30.0) -> Route:
    """Headers at once, then a byte every `interval`: no single read ever times out."""

    def route(handler: PeerHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        handler.wfile.flush()
        deadline = time.monotonic() + for_seconds
        while time.monotonic() < deadline:
            handler.write(b" ")
            time.sleep(interval)

    return route


# --- TLS -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """A private CA and a server certificate it signed for some names."""

    ca_pem: bytes
    chain_pem: bytes
    key_pem: bytes

    def server_context(self, record_names: list[str | None] | None = None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.NamedTemporaryFile() as chain, tempfile.NamedTemporaryFile() as key:
            chain.write(self.chain_pem)
            chain.flush()
            key.write(self.key_pem)
            key.flush()
            context.load_cert_chain(chain.name, key.name)
        if record_names is not None:

            def remember(_: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
                record_names.append(name)

            context.sni_callback = remember  # type: ignore[assignment]
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        return context


def certificates_for(*names: str) -> Certificates:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "KAI test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alternative_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative_names.append(x509.DNSName(name))
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Certificates(
        ca_pem=ca.public_bytes(pem),
        chain_pem=leaf.public_bytes(pem) + ca.public_bytes(pem),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
