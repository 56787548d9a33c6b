"""The data behind classification and grouping: edit here, not in code.

Every entry names its source; docs/tracking.md repeats them.  Networks are
matched at the endpoint, before the IP is hashed, and only the *tag* travels
with the event (never the address).
"""

from __future__ import annotations

#: Mailbox-provider groups for per-domain statistics (address domain → group).
#: Anything not listed is "other".
DOMAIN_GROUPS: dict[str, tuple[str, ...]] = {
    "qq": ("qq.com", "vip.qq.com", "foxmail.com"),
    "netease": ("163.com", "126.com", "yeah.net", "vip.163.com", "vip.126.com", "188.com"),
    "gmail": ("gmail.com", "googlemail.com"),
    "microsoft": ("outlook.com", "hotmail.com", "live.com", "msn.com", "live.cn", "outlook.cn"),
    "icloud": ("icloud.com", "me.com", "mac.com"),
}
OTHER_GROUP = "other"
GROUP_ORDER = (*DOMAIN_GROUPS, OTHER_GROUP)

#: Known networks of image proxies and link scanners: tag → (CIDRs, source).
#: A tag is what rules test (``networks=``); an empty tag means "no known network".
NETWORKS: dict[str, tuple[tuple[str, ...], str]] = {
    # Apple owns 17.0.0.0/8 (ARIN, AS714); Mail Privacy Protection prefetches from there.
    "apple": (("17.0.0.0/8",), "ARIN whois NET-17-0-0-0-1 (Apple Inc., AS714)"),
    # Gmail's image proxy (GoogleImageProxy) fetches from Google's 66.249.80.0/20.
    "google_proxy": (
        ("66.249.80.0/20",),
        "ARIN whois NET-66-249-64-0-1 (Google LLC); observed GoogleImageProxy",
    ),
    # Exchange Online Protection / Defender for Office 365 (Safe Links detonation).
    "microsoft_eop": (
        ("40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17"),
        "Microsoft 365 URLs and IP address ranges, Exchange Online (endpoint set 9/10)",
    ),
    "mimecast": (
        (
            "205.139.110.0/24",
            "207.211.30.0/24",
            "216.205.24.0/24",
            "91.220.42.0/24",
            "146.101.78.0/24",
            "195.130.217.0/24",
        ),
        "Mimecast: IP ranges per hosting region (community.mimecast.com)",
    ),
    "proofpoint": (
        ("148.163.128.0/19", "67.231.144.0/20"),
        "ARIN whois PROOFPOINT (NET-148-163-128-0-1, NET-67-231-144-0-1)",
    ),
    "barracuda": (
        ("64.235.144.0/20", "209.222.80.0/21"),
        "Barracuda Email Security Service outbound ranges (campus.barracuda.com)",
    ),
}

#: Tags whose traffic is a machine, whatever the user agent says.
SCANNER_NETWORKS = ("microsoft_eop", "mimecast", "proofpoint", "barracuda")

#: User-agent fragments of security scanners, link checkers and HTTP libraries.
SCANNER_UA = (
    r"Barracuda|Mimecast|Proofpoint|ms-office|Microsoft Office|Defender|SafeLinks|FireEye|"
    r"Trend ?Micro|Symantec|Forcepoint|bot\b|bot/|crawler|spider|python-requests|python-httpx|"
    r"curl/|Wget/|Go-http-client|HeadlessChrome|okhttp|Java/|libwww"
)
#: User-agent fragments of real browsers and mail clients.
BROWSER_UA = r"AppleWebKit|Gecko/|Chrome/|Safari/|Firefox/|MicroMessenger|Thunderbird|Outlook"

#: Click pattern: every link of a message (at least this many) clicked within this window.
BURST_SECONDS = 5.0
BURST_MIN_LINKS = 2
#: A click this soon after the message was sent is a scanner.
CLICK_MIN_AGE_SECONDS = 10.0
