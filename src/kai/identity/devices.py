"""What a person recognises a login by: its browser and system, read from the user agent.

The rules are uap-core's (the `ua-parser` package), kept up to date by its maintainers; here
only the names they give are shortened to what people call them: a phone's Chrome is Chrome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ua_parser
from ua_parser import Domain

# uap-core tells apart the mobile builds and the old names of the same products.
_BROWSERS = {
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Android WebView",
    "Edge Mobile": "Edge",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari",
    "Opera Mobile": "Opera",
}
_SYSTEMS = {
    "Mac OS X": "macOS",
    "Chrome OS": "ChromeOS",
}


@dataclass(frozen=True)
class Device:
    browser: str | None
    os: str | None

    @property
    def description(self) -> str | None:
        """`Chrome on macOS`, or whichever of the two is known."""
        if self.browser and self.os:
            return f"{self.browser} on {self.os}"
        return self.browser or self.os


def describe(user_agent: str | None) -> Device:
    """The browser and operating system a user agent names; None for what it does not say.

    Pure Python regular expressions, a few milliseconds for a string not seen before (the
    first call also loads the rules): call it off the event loop for more than one.
    """
    if not user_agent:
        return Device(browser=None, os=None)
    result = ua_parser.parser(user_agent, Domain.USER_AGENT | Domain.OS)
    browser = result.user_agent.family if result.user_agent else None
    system = result.os.family if result.os else None
    return Device(
        browser=_BROWSERS.get(browser, browser) if browser else None,
        os=_SYSTEMS.get(system, system) if system else None,
    )


def describe_all(user_agents: Sequence[str | None]) -> list[Device]:
    return [describe(user_agent) for user_agent in user_agents]
