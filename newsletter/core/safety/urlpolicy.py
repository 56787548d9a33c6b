"""One URL policy for every link we emit or follow.

Links come from issue text, meta lines (``原文链接：…``), front matter and
the link table that the click redirect reads.  Whatever the source, a URL
becomes an ``href``, a ``src``, a WeChat footnote or a ``Location`` only if
:func:`safe_url` accepts it:

* schemes ``http`` and ``https`` with a host; ``mailto`` only where the
  caller says it fits (``mailto=True``); in-page fragments (``#…``) only
  where the caller says so (``fragment=True``);
* the check runs on what a browser would see: HTML entities decoded
  (``&#106;avascript:``), leading and trailing spaces and C0 controls
  stripped, tabs and line breaks inside removed (browsers drop them),
  and the scheme compared case-insensitively (``JaVaScRiPt:``);
* anything else (``javascript:``, ``data:``, ``vbscript:``, ``file:``,
  protocol-relative ``//host``, relative paths, a URL with other control
  characters) is refused.

:func:`safe_url` returns the cleaned URL or None; renderers show the text
without a link when it is None.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

__all__ = ["ALLOWED_SCHEMES", "is_allowed", "resolves_public", "safe_url"]

ALLOWED_SCHEMES = frozenset({"http", "https"})

_EDGE = "".join(chr(c) for c in range(0x21)) + "\x7f\u00a0\u2028\u2029\ufeff\u200b"
_INSIDE_DROPPED = re.compile(r"[\t\n\r]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def _as_browser_sees(url: str) -> str:
    u = url
    for _ in range(3):  # doubly encoded entities (&amp;#106;) decode once per HTML parse
        decoded = html.unescape(u)
        if decoded == u:
            break
        u = decoded
    u = u.strip(_EDGE)
    return _INSIDE_DROPPED.sub("", u)


def _check(u: str, *, mailto: bool, fragment: bool) -> bool:
    if not u or _CONTROL.search(u):
        return False
    if u.startswith("#"):
        return fragment
    m = _SCHEME.match(u)
    if m is None:
        return False  # relative or protocol-relative (//host): no meaning in an email
    scheme = m.group(1).lower()
    if scheme == "mailto":
        return mailto and len(u) > len("mailto:")
    if scheme not in ALLOWED_SCHEMES:
        return False
    try:
        parts = urlsplit(u)
        host = parts.hostname
    except ValueError:
        return False
    return bool(parts.netloc and host and "\\" not in parts.netloc)


def safe_url(url: str | None, *, mailto: bool = False, fragment: bool = False) -> str | None:
    """``url`` cleaned, if the policy allows it here; otherwise None.

    Both the URL as written and the URL with HTML entities decoded must pass,
    so the answer does not depend on whether the caller escapes it later.
    The returned URL is the one as written (edges stripped, tabs and line
    breaks removed); entities are not decoded, so a query like ``?a=1&copy=2``
    stays intact.
    """
    if not url or not isinstance(url, str) or len(url) > 8192:
        return None
    raw = _INSIDE_DROPPED.sub("", url.strip(_EDGE))
    if not _check(raw, mailto=mailto, fragment=fragment):
        return None
    if not _check(_as_browser_sees(url), mailto=mailto, fragment=fragment):
        return None
    return raw


def is_allowed(url: str | None, *, mailto: bool = False, fragment: bool = False) -> bool:
    return safe_url(url, mailto=mailto, fragment=fragment) is not None


def resolves_public(host: str, port: int = 443) -> bool | None:
    """Whether every address ``host`` resolves to is a public one (None: it does not
    resolve). What we fetch on someone else's say (an image in an issue, a feed's
    redirect) must not reach loopback, private or link-local addresses such as a
    cloud's metadata service. A check alone is not enough: connect with
    :class:`~newsletter.core.safety.pinned.PinnedTransport`, which connects to the
    address it checked."""
    from newsletter.core.safety.pinned import is_public_address, resolve

    addresses = resolve(host, port)
    if not addresses:
        return None
    return all(is_public_address(a) for a in addresses)
