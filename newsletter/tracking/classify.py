"""Human or machine? Data-driven rules for opens and clicks.

Each rule has a name, a kind it applies to and a predicate.  The first rule
that matches decides the class; otherwise the event is ``unknown``.
docs/tracking.md lists every rule with its source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RULES", "Rule", "classify"]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kinds: tuple[str, ...]
    cls: str  # "human" | "machine"
    test: Callable[[str, float | None], bool]  # (user agent, seconds since sent)


_SCANNERS = re.compile(
    r"(Barracuda|Mimecast|Proofpoint|ms-office|Microsoft Office|Defender|"
    r"SafeLinks|FireEye|Trend ?Micro|Symantec|Forcepoint|bot|crawler|spider|"
    r"python-requests|curl/|Go-http-client|HeadlessChrome)",
    re.IGNORECASE,
)
_BROWSER = re.compile(r"(AppleWebKit|Gecko/|Chrome/|Safari/|Firefox/|MicroMessenger|Thunderbird)")

RULES: list[Rule] = [
    # Apple Mail Privacy Protection fetches through Apple's proxy with a bare UA.
    Rule("apple_mpp_bare_ua", ("open",), "machine", lambda ua, _age: ua.strip() == "Mozilla/5.0"),
    Rule("scanner_ua", ("open", "click"), "machine", lambda ua, _age: bool(_SCANNERS.search(ua))),
    Rule("empty_ua", ("open", "click"), "machine", lambda ua, _age: not ua.strip()),
    # A click within 10 s of delivery is what link scanners do; people take longer.
    Rule("click_within_10s", ("click",), "machine", lambda _ua, age: age is not None and age < 10),
    # Gmail's image proxy fetches when the person opens the message: a real open.
    Rule("gmail_image_proxy", ("open",), "human", lambda ua, _age: "GoogleImageProxy" in ua),
    Rule("browser_ua", ("open", "click"), "human", lambda ua, _age: bool(_BROWSER.search(ua))),
]


def classify(
    kind: str, user_agent: str | None, seconds_since_sent: float | None
) -> tuple[str, str]:
    """Return (class, rule name)."""
    ua = user_agent or ""
    for rule in RULES:
        if kind in rule.kinds and rule.test(ua, seconds_since_sent):
            return rule.cls, rule.name
    return "unknown", "no_rule"
