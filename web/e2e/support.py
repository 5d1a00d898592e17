"""What the end-to-end tests share: the server they drive, screenshots, accessibility scans."""

from __future__ import annotations

import email
import email.message
import email.policy
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page

REPO_ROOT = Path(__file__).resolve().parents[2]
WEB_BUILD = REPO_ROOT / "web" / "dist"
SCREENSHOTS = REPO_ROOT / "web" / "screenshots"
AXE_SCRIPT = REPO_ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("KAI_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "granite-slab-42-Terrazzo"


@dataclass(frozen=True)
class Server:
    url: str
    data_dir: Path
    log: Path

    def outbox(self, to: str) -> list[email.message.EmailMessage]:
        """The messages sent to `to`, oldest first."""
        found = []
        for path in sorted(
            (self.data_dir / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime
        ):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"] == to:
                assert isinstance(message, email.message.EmailMessage)
                found.append(message)
        return found

    def link(self, to: str, path: str, *, timeout: float = 60) -> str:
        """The newest emailed link to `path` (e.g. `/verify-email`), waiting for the worker."""
        deadline = time.monotonic() + timeout
        pattern = re.compile(re.escape(self.url) + re.escape(path) + r"\?token=[\w.~-]+")
        while time.monotonic() < deadline:
            for message in reversed(self.outbox(to)):
                body = message.get_body(("plain",))
                assert body is not None
                match = pattern.search(body.get_content())
                if match:
                    return match.group(0)
            time.sleep(0.2)
        raise AssertionError(f"no email to {to} with a link to {path}")


def screenshot(page: Page, name: str) -> None:
    """Save what the page shows now as `web/screenshots/<name>.png`, for reviewers."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def assert_accessible(page: Page, name: str) -> None:
    """axe-core finds no serious or critical violation on what the page shows now."""
    # Evaluated through the browser's debugging protocol, which the app's policy (no scripts
    # but its own) rightly does not cover.
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => {
            const result = await axe.run(document, { resultTypes: ["violations"] });
            return result.violations
              .filter((v) => v.impact === "serious" || v.impact === "critical")
              .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                             targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")) }));
        }"""
    )
    assert result == [], f"accessibility violations on {name}: {result}"
