"""A real OpenID Connect provider on loopback (Node's oidc-provider), and a browserless login.

`running_provider` installs the provider's npm packages when they are missing, starts
`provider.mjs` with the given clients and users, and stops it on exit. The provider lives as
long as its stdin is open, so a test run that dies takes it along.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

PROVIDER_DIR = Path(__file__).resolve().parent
PROVIDER_SCRIPT = PROVIDER_DIR / "provider.mjs"
NPM_CI = ("npm", "ci", "--no-audit", "--no-fund")
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
# Authorization request, interaction page, login, resume, consent, resume, relying party.
MAX_LOGIN_STEPS = 12


class ProviderError(RuntimeError):
    """The test provider could not be installed, started or logged in through."""


@dataclass(frozen=True)
class OidcClient:
    """A relying party registered with the provider (authorization code flow, PKCE S256)."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post"] = (
        "client_secret_basic"
    )


@dataclass(frozen=True)
class OidcUser:
    """An account that can log in; its claims go into the ID token by scope."""

    sub: str
    email: str
    name: str
    email_verified: bool = True


@dataclass(frozen=True)
class ProviderHandle:
    """A running provider: where it is and whom it knows."""

    issuer: str
    port: int
    clients: tuple[OidcClient, ...]
    users: tuple[OidcUser, ...]

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"


def _npm_ci_command() -> str:
    return f"cd {PROVIDER_DIR} && {' '.join(NPM_CI)}"


def _is_installed() -> bool:
    # npm writes node_modules/.package-lock.json on install; a lock file changed since (a pull)
    # makes it older, and the packages are installed again.
    installed = PROVIDER_DIR / "node_modules" / ".package-lock.json"
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return False
    if not installed.exists():
        return False
    return installed.stat().st_mtime >= (PROVIDER_DIR / "package-lock.json").stat().st_mtime


def ensure_node_modules() -> None:
    """Install the provider's npm packages from the lock file unless they are there already."""
    # Test workers start together; one installs while the others wait on the lock.
    digest = hashlib.sha256(str(PROVIDER_DIR).encode()).hexdigest()[:10]
    lock_path = Path(tempfile.gettempdir()) / f"kai-test-oidc-npm-{digest}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_installed():
            return
        npm = shutil.which("npm")
        if npm is None:
            raise ProviderError(
                f"npm is not on PATH: the OIDC test provider needs Node.js >= 20.19 with npm, "
                f"then `{_npm_ci_command()}`"
            )
        try:
            result = subprocess.run(
                [npm, *NPM_CI[1:]],
                cwd=PROVIDER_DIR,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise ProviderError(f"`{_npm_ci_command()}` took over 300 s") from error
        if result.returncode != 0:
            raise ProviderError(
                f"`{_npm_ci_command()}` failed with exit code {result.returncode}:\n"
                f"{result.stderr[-4000:]}"
            )


def _read_stderr(stderr: IO[bytes]) -> str:
    stderr.flush()
    stderr.seek(0)
    return stderr.read().decode(errors="replace")[-4000:]


def _wait_until_ready(process: subprocess.Popen[bytes], stderr: IO[bytes]) -> dict[str, object]:
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    received = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProviderError(
                    f"OIDC test provider not ready after {READY_TIMEOUT_S:.0f} s; "
                    f"stderr:\n{_read_stderr(stderr)}"
                )
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                process.wait(STOP_TIMEOUT_S)
                raise ProviderError(
                    f"OIDC test provider exited with code {process.returncode} before it was "
                    f"ready; stderr:\n{_read_stderr(stderr)}"
                )
            received += chunk
    line = received.split(b"\n", 1)[0]
    try:
        ready: dict[str, object] = json.loads(line)
    except json.JSONDecodeError as error:
        raise ProviderError(f"OIDC test provider printed {line!r}, not its ready line") from error
    return ready


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


@contextlib.contextmanager
def running_provider(
    *, clients: Sequence[OidcClient], users: Sequence[OidcUser], port: int = 0
) -> Iterator[ProviderHandle]:
    """Run the provider on 127.0.0.1 (a free port by default) for the duration of the block."""
    ensure_node_modules()
    node = shutil.which("node")
    if node is None:
        raise ProviderError("node is not on PATH: the OIDC test provider needs Node.js >= 20.19")
    config = {
        "port": port,
        "clients": [dataclasses.asdict(client) for client in clients],
        "users": [dataclasses.asdict(user) for user in users],
    }
    environment = {key: value for key, value in os.environ.items() if key != "OIDC_PROVIDER_PORT"}
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [node, str(PROVIDER_SCRIPT), json.dumps(config)],
            cwd=PROVIDER_DIR,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            ready = _wait_until_ready(process, stderr)
            yield ProviderHandle(
                issuer=str(ready["issuer"]),
                port=int(str(ready["port"])),
                clients=tuple(clients),
                users=tuple(users),
            )
        finally:
            _stop(process)


def _reaches(location: str, redirect_uri: str) -> bool:
    if location == redirect_uri:
        return True
    return location.startswith(redirect_uri) and location[len(redirect_uri)] in "?&#"


async def login_through_browserless_flow(authorization_url: str, login: str) -> str:
    """Log in as `login` from an authorization URL; return the redirect to the relying party.

    The relying party itself is not requested: the returned URL carries `code` and `state`
    (or `error`) in its query for the test to hand to it.
    """
    redirect_uris = parse_qs(urlsplit(authorization_url).query).get("redirect_uri")
    if not redirect_uris:
        raise ValueError(f"authorization URL has no redirect_uri: {authorization_url}")
    redirect_uri = redirect_uris[0]
    async with httpx.AsyncClient(timeout=10.0) as browser:
        response = await browser.get(authorization_url)
        for _ in range(MAX_LOGIN_STEPS):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if _reaches(location, redirect_uri):
                    return location
                response = await browser.get(location)
            elif response.status_code == 200 and response.url.path.startswith("/interaction/"):
                response = await browser.post(response.url, data={"login": login})
            else:
                raise ProviderError(
                    f"login stopped at {response.request.method} {response.url}: "
                    f"{response.status_code} {response.text[:500]}"
                )
        raise ProviderError(f"login did not reach {redirect_uri} in {MAX_LOGIN_STEPS} steps")
