"""The fake's state: its accounts and tokens, its clock and misbehaviour switches, the
requests it saw, and the token endpoints every other endpoint checks first."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from newsletter.core import clock

__all__ = [
    "CST",
    "GRACE",
    "LIMIT_CODES",
    "PREVIEW_OPENIDS",
    "Recorded",
    "SPANS",
    "decode_body",
    "FakeState",
]

CST = dt.timezone(dt.timedelta(hours=8))
GRACE = 300  # seconds a token replaced by the plain endpoint keeps working
LIMIT_CODES = frozenset(
    {45002, 45003, 45004, 45008, 45110, 40005, 40009, 45067, 45011, 61500, 61501}
)
SPANS = {"getarticlesummary": 1, "getarticletotal": 1, "getuserread": 3, "getusershare": 7}
PREVIEW_OPENIDS = ("oPreviewOpenId00000000000001", "oPreviewOpenId00000000000002")
_ESCAPE_RE = re.compile(r"\\\\|\\u")
_IMG_RE = re.compile(r"""<img\b[^>]*?\ssrc\s*=\s*["']([^"']*)["'][^>]*>""", re.I)
_SCRIPT_RE = re.compile(r"<script\b.*?</script\s*>", re.I | re.S)


@dataclass
class Recorded:
    """One request as the fake saw it, and the errcode it answered (0 = success)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any = None
    upload: tuple[str, int] | None = None  # (filename, bytes)
    upload_type: str = ""  # the Content-Type the upload's part was labelled with
    errcode: int = 0
    at: float = 0.0
    raw: bytes = b""  # the body exactly as it arrived (JSON calls)
    content_type: str = ""


@dataclass
class _Token:
    expires_at: float
    kind: str
    superseded: bool = False


@dataclass
class _Publish:
    media_id: str
    msg_data_id: int
    polls_left: int
    final: int
    fail_idx: list[int]
    article_id: str = ""
    status: int = 1
    urls: list[str] = field(default_factory=list)
    at: float = 0.0


def decode_body(raw: bytes) -> Any:
    """Parse a JSON body the way WeChat does: UTF-8, and ``\\uXXXX`` kept literally.

    WeChat does not decode JSON's unicode escapes inside article content; a client
    that sends ``"\\u4e2d"`` gets the six characters ``\\u4e2d`` shown to readers.
    Raises ValueError for anything that is not UTF-8 JSON.
    """
    text = raw.decode("utf-8")
    return json.loads(
        _ESCAPE_RE.sub(lambda m: m.group(0) if m.group(0) == "\\\\" else "\\\\u", text)
    )


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return ""


_SOURCES = (("session", 2), ("hist_msg", 8), ("feed", 4), ("friends", 8))


def _split(total: int) -> dict[str, int]:
    """Share ``total`` out over the read sources; ``other`` takes the rest, so they add up."""
    parts = {name: total // div for name, div in _SOURCES}
    parts["other"] = total - sum(parts.values())
    return parts


def _breakdown(acc: dict[str, int]) -> dict[str, int]:
    """getarticletotal's per-source fields: reads by source, and shares to 看一看 (feed)."""
    out: dict[str, int] = {}
    for unit, key in (("user", "int_page_read_user"), ("count", "int_page_read_count")):
        for source, n in _split(acc[key]).items():
            out[f"int_page_from_{source}_read_{unit}"] = n
    for unit, key in (("user", "share_user"), ("cnt", "share_count")):
        share = acc[key]
        out[f"feed_share_from_session_{unit}"] = share // 2
        out[f"feed_share_from_feed_{unit}"] = share // 4
        out[f"feed_share_from_other_{unit}"] = share - share // 2 - share // 4
    return out


def _err(code: int, msg: str) -> dict[str, Any]:
    return {"errcode": code, "errmsg": f"{msg} rid: {secrets.token_hex(4)}"}


class FakeState:
    """The state and behaviour of one fake Official Account."""

    def __init__(
        self,
        appid: str = "wx0123456789abcdef",
        secret: str = "fake-app-secret-0001",
        *,
        token_ttl: int = 7200,
    ) -> None:
        self.appid, self.secret, self.token_ttl = appid, secret, token_ttl
        self.lock = threading.RLock()
        self.offset = 0.0
        self.requests: list[Recorded] = []
        self.tokens: dict[str, _Token] = {}
        self.current: dict[str, str] = {}
        self.token_calls = 0
        self.images: dict[str, bytes] = {}
        self.materials: dict[str, str] = {}
        self.drafts: dict[str, dict[str, Any]] = {}
        #: drafts taken out of the draft box by a submit (media_id → draft); a
        #: final failure puts them back, success moves them to ``published``.
        self.submitted: dict[str, dict[str, Any]] = {}
        self.published: dict[str, dict[str, Any]] = {}  # article_id → {articles, time}
        self.publishes: dict[str, _Publish] = {}
        self.mass: dict[str, dict[str, Any]] = {}  # clientmsgid -> record
        self.mass_by_id: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[str, Any]] = {}  # msg_data_id -> {n, titles, date}
        self.previews: list[tuple[str, str]] = []
        #: real OpenIDs are 28 characters ("o" + 27); wxnames are WeChat ids.
        self.followers = set(PREVIEW_OPENIDS)
        self.wxnames = {"nl-editor-wx"}
        self.dedupe_window = 86400.0  # seconds a clientmsgid is remembered
        self._ids = itertools.count(2_247_483_000)
        # misbehaviour and behaviour switches
        self.delay = 0.0
        self.busy_left = 0
        self.busy_paths: set[str] | None = None
        self.ip_blocked = False
        self.exhausted: set[str] = set()
        self.mass_quota = 1  # subscription account: one mass send a day
        self.too_fast_seconds = 60.0
        self.publish_polls = 1
        #: a publish also finishes on its own this many (fake) seconds after the submit
        self.publish_seconds = 2.0
        #: paths whose answer is held back after the request was applied (a lost
        #: answer, for kill -9 tests); remove a path to let its answers go
        self.hold: set[str] = set()
        #: seconds the answer of a path is delayed after the request was applied
        self.slow: dict[str, float] = {}
        self.publish_final = 0
        self.publish_fail_idx: list[int] = []
        self.mass_status = "SEND_SUCCESS"
        #: path -> errcode answered once, or a list of errcodes answered one per call
        self.fail_next: dict[str, int | list[int]] = {}

    # -- clock and switches ---------------------------------------------------
    def now(self) -> float:
        return clock.timestamp() + self.offset

    def today(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.now(), CST).date()

    def advance(self, seconds: float = 0.0, *, days: int = 0) -> None:
        """Move the fake's clock forward (tokens expire, days pass)."""
        with self.lock:
            self.offset += seconds + days * 86400

    def busy(self, n: int, paths: set[str] | None = None) -> None:
        """Answer -1 to the next ``n`` calls (to ``paths`` only, if given)."""
        with self.lock:
            self.busy_left, self.busy_paths = n, paths

    def expire_tokens(self) -> None:
        """Every issued token expires now (the next call answers 42001)."""
        with self.lock:
            for t in self.tokens.values():
                t.expires_at = min(t.expires_at, self.now() - 1)

    def revoke_tokens(self) -> None:
        """Every issued token is replaced elsewhere now (the next call answers 40001)."""
        with self.lock:
            for t in self.tokens.values():
                t.expires_at = min(t.expires_at, self.now() - 1)
                t.superseded = True

    def forced_token_calls(self) -> int:
        """``stable_token`` calls that asked for ``force_refresh``."""
        return sum(
            1
            for r in self.calls("/cgi-bin/stable_token")
            if isinstance(r.body, dict) and r.body.get("force_refresh")
        )

    def exhaust_api_quota(self, path: str) -> None:
        """``path`` answers 45009 (daily API quota used up) from now on."""
        with self.lock:
            self.exhausted.add(path)

    # -- inspection -------------------------------------------------------------
    def calls(self, path: str, *, ok: bool | None = None) -> list[Recorded]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r.path == path and (ok is None or (r.errcode == 0) == ok)
            ]

    def violations(self) -> list[Recorded]:
        """Requests refused because they broke a documented limit."""
        with self.lock:
            return [r for r in self.requests if r.errcode in LIMIT_CODES]

    def sends_for(self, clientmsgid: str) -> int:
        """How many times a mass send with ``clientmsgid`` was actually pushed (0 or 1)."""
        return 1 if clientmsgid in self.mass else 0

    # -- tokens -------------------------------------------------------------------
    def _issue(self, kind: str, *, grace: float = GRACE) -> dict[str, Any]:
        """A new token of ``kind``; the previous one keeps working ``grace`` more seconds."""
        old = self.current.get(kind)
        if old and old in self.tokens:
            t = self.tokens[old]
            t.expires_at = min(t.expires_at, self.now() + grace)
            t.superseded = True
        tok = secrets.token_urlsafe(96)
        self.tokens[tok] = _Token(self.now() + self.token_ttl, kind)
        self.current[kind] = tok
        return {"access_token": tok, "expires_in": self.token_ttl}

    def _credentials(self, appid: Any, secret: Any) -> dict[str, Any] | None:
        if appid != self.appid:
            return _err(40013, "invalid appid")
        if secret != self.secret:
            return _err(40125, "invalid appsecret")
        self.token_calls += 1
        if self.token_calls > 2000:
            return _err(45009, "reach max api daily quota limit")
        return None

    def token(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        if q.get("grant_type") != "client_credential":
            return _err(40002, "invalid grant_type")
        return self._credentials(q.get("appid"), q.get("secret")) or self._issue("plain")

    def stable_token(self, q: dict[str, str], body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("grant_type") != "client_credential":
            return _err(40002, "invalid grant_type")
        bad = self._credentials(body.get("appid"), body.get("secret"))
        if bad:
            return bad
        cur = self.current.get("stable")
        t = self.tokens.get(cur or "")
        if (
            cur
            and t
            and not t.superseded
            and t.expires_at > self.now()
            and not body.get("force_refresh")
        ):
            return {"access_token": cur, "expires_in": int(t.expires_at - self.now())}
        # A forced refresh drops the previous stable token at once, as WeChat does: a
        # process still holding it gets 40001 on its next call.
        return self._issue("stable", grace=0 if body.get("force_refresh") else GRACE)

    def _check_token(self, q: dict[str, str]) -> dict[str, Any] | None:
        tok = q.get("access_token")
        if not tok:
            return _err(41001, "access_token missing")
        t = self.tokens.get(tok)
        if t is None:
            return _err(40014, "invalid access_token")
        if t.expires_at <= self.now():
            if t.superseded:
                return _err(40001, "invalid credential, access_token is invalid or not latest")
            return _err(42001, "access_token expired")
        return None
