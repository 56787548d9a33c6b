"""Human or machine? Data-driven rules for opens and clicks.

Each rule is data: a name, the kinds it applies to, the class it assigns, and
conditions on the user agent, the network tag of the client IP (matched at the
endpoint against :data:`~newsletter.tracking.data.NETWORKS`, before the IP is
hashed) and the seconds since the message was sent.  The first rule that
matches decides; otherwise the event is ``unknown``.  The click-pattern rule
(every link of a message clicked within seconds) needs several events and is
applied by the ingester (:data:`BURST_RULE`).  docs/tracking.md lists every
rule with its source.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import lru_cache

from newsletter.tracking import data

__all__ = ["BURST_RULE", "RULES", "Rule", "classify", "network_tag"]

BURST_RULE = "all_links_burst"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kinds: tuple[str, ...]
    cls: str  # "human" | "machine"
    ua_regex: str | None = None  # matches when the regex is found in the user agent
    ua_exact: str | None = None  # matches when the stripped user agent equals this
    ua_empty: bool = False
    networks: tuple[str, ...] = ()  # matches when the client's network tag is one of these
    max_age: float | None = None  # matches when sent less than this many seconds ago
    source: str = ""

    def matches(self, ua: str, age: float | None, net: str) -> bool:
        if self.ua_regex is not None and not _rx(self.ua_regex).search(ua):
            return False
        if self.ua_exact is not None and ua.strip() != self.ua_exact:
            return False
        if self.ua_empty and ua.strip():
            return False
        if self.networks and net not in self.networks:
            return False
        return not (self.max_age is not None and (age is None or age >= self.max_age))


@lru_cache(maxsize=64)
def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


RULES: list[Rule] = [
    Rule("apple_mpp_bare_ua", ("open",), "machine", ua_exact="Mozilla/5.0",
         source="Apple MPP fetches through Apple's proxy with a bare Mozilla/5.0"),
    Rule("apple_mpp_network", ("open",), "machine", networks=("apple",),
         source="Apple MPP proxies fetch from Apple's 17.0.0.0/8"),
    Rule("scanner_ua", ("open", "click"), "machine", ua_regex=data.SCANNER_UA,
         source="scanners and HTTP libraries name themselves"),
    Rule("empty_ua", ("open", "click"), "machine", ua_empty=True,
         source="browsers and mail clients always send a user agent"),
    Rule("scanner_network", ("open", "click"), "machine", networks=data.SCANNER_NETWORKS,
         source="published ranges of mail security gateways"),
    Rule("click_within_10s", ("click",), "machine", max_age=data.CLICK_MIN_AGE_SECONDS,
         source="scanners fetch every link within seconds of delivery"),
    Rule("gmail_image_proxy", ("open",), "human", ua_regex="GoogleImageProxy",
         source="Gmail fetches images when the person opens the message"),
    Rule("browser_ua", ("open", "click"), "human", ua_regex=data.BROWSER_UA,
         source="a full browser or mail-client user agent"),
]  # fmt: skip


def classify(
    kind: str, user_agent: str | None, seconds_since_sent: float | None, net: str = ""
) -> tuple[str, str]:
    """Return (class, rule name)."""
    ua = user_agent or ""
    for rule in RULES:
        if kind in rule.kinds and rule.matches(ua, seconds_since_sent, net):
            return rule.cls, rule.name
    return "unknown", "no_rule"


# -- networks -------------------------------------------------------------------


def _build() -> dict[int, tuple[list[int], list[int], list[str]]]:
    """version → (sorted starts, ends, tags) for a bisect lookup."""
    out: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
    for tag, (cidrs, _src) in data.NETWORKS.items():
        for c in cidrs:
            n = ipaddress.ip_network(c)
            out[n.version].append((int(n.network_address), int(n.broadcast_address), tag))
    res = {}
    for v, items in out.items():
        items.sort()
        res[v] = ([a for a, _, _ in items], [b for _, b, _ in items], [t for _, _, t in items])
    return res


_TABLE = _build()


def network_tag(ip: str) -> str:
    """The tag of the known network ``ip`` belongs to, or "" (also for garbage)."""
    if "." in ip and ":" not in ip:
        try:  # the common case, without building an ipaddress object
            return _tag(4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip)))
        except (OSError, ValueError):
            pass  # not a plain dotted quad: let ipaddress decide
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    return _tag(addr.version, int(addr))


def _tag(version: int, x: int) -> str:
    starts, ends, tags = _TABLE[version]
    i = bisect.bisect_right(starts, x) - 1
    if i >= 0 and x <= ends[i]:
        return tags[i]
    return ""
