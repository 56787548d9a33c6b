"""A small typed client for the WeChat Official Account API (httpx).

Guarantees:

* the access token is shared (see :mod:`.tokens`), refreshed early, and refreshed
  once more when a call answers 40001, 40014 or 42001;
* ``-1`` (busy), HTTP 5xx and network errors are retried with exponential back-off
  up to ``max_attempts``; calls that are not idempotent on WeChat's side
  (``draft/add``, ``freepublish/submit``) are retried only when the request
  surely never reached WeChat (connection refused / connect timeout);
* every other errcode raises the :mod:`.errors` class for its remedy;
* the AppSecret and tokens never reach a log record or an exception message
  (httpx's request log lines are redacted by a filter installed here).
"""

from __future__ import annotations

import json as _json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from newsletter.core.config import get_settings
from newsletter.core.wechat_settings import WeChatSettings, get_wechat_settings
from newsletter.wechat.access_token import TokenStore
from newsletter.wechat.errors import WeChatAuthError, WeChatBusyError, WeChatError, error_for
from newsletter.wechat.imagetype import MIME, sniff_image

__all__ = ["JSON_HEADERS", "TOKEN_ERRORS", "WeChatClient", "encode_json"]

log = logging.getLogger("newsletter.wechat")
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
_OPENID_RE = re.compile(r"o[\w-]{27}")
_SECRET_RE = re.compile(r"((?:secret|access_token)=)[^&\s\"']+")


JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def encode_json(body: Any) -> bytes:
    """A request body as WeChat needs it: UTF-8 text, never ``\\uXXXX`` escapes.

    WeChat does not decode JSON escapes in article content (it stores them
    literally), so the client serialises bodies itself instead of trusting the
    installed httpx's ``json=`` (which escaped non-ASCII before 0.28).
    """
    return _json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _Redact(logging.Filter):
    """Mask ``secret=`` and ``access_token=`` values in httpx's log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if "secret=" in msg or "access_token=" in msg:
            record.msg, record.args = _SECRET_RE.sub(r"\1***", msg), None
        return True


for _name in ("httpx", "httpcore"):
    _lg = logging.getLogger(_name)
    if not any(isinstance(f, _Redact) for f in _lg.filters):
        _lg.addFilter(_Redact())


def _count_call(path: str, data: dict[str, Any]) -> None:
    from newsletter.core.telemetry import WECHAT_CALLS

    try:
        code = str(int(data.get("errcode", 0) or 0))
    except (TypeError, ValueError):
        code = "invalid"
    endpoint = path.split("?", 1)[0].removeprefix("/cgi-bin/")[:60]
    WECHAT_CALLS.labels(endpoint=endpoint, errcode=code).inc()


class WeChatClient:
    """One account's API. Thread-safe; share one per process or create one per task."""

    def __init__(
        self,
        settings: WeChatSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings or get_wechat_settings()
        if not self.settings.configured:
            raise WeChatAuthError(
                "not configured: set NEWSLETTER_WECHAT_APPID and NEWSLETTER_WECHAT_SECRET",
                zh="未配置：请设置 NEWSLETTER_WECHAT_APPID 和 NEWSLETTER_WECHAT_SECRET",
            )
        cfg = get_settings()
        self.appid = self.settings.appid
        self.sleep = sleep
        self.tokens = TokenStore(
            self.settings.base_url,
            self.appid,
            redis_url=cfg.redis_url,
            prefix=cfg.redis_prefix,
            margin=self.settings.refresh_margin,
        )
        self.http = httpx.Client(
            base_url=self.settings.base_url.rstrip("/"),
            timeout=self.settings.timeout,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> WeChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------
    def _raw(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        files: Any = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """One call with busy/network retries; returns the JSON body, errcode untouched."""
        attempt = 0
        while True:
            attempt += 1
            try:
                content = headers = None
                if json is not None:
                    content, headers = encode_json(json), JSON_HEADERS
                resp = self.http.request(
                    method, path, params=params, content=content, headers=headers, files=files
                )
                if resp.status_code >= 500:
                    raise httpx.RemoteProtocolError(f"HTTP {resp.status_code}")
                data: dict[str, Any] = resp.json()
            except (httpx.TransportError, ValueError) as exc:
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if (not idempotent and not unsent) or attempt >= self.settings.max_attempts:
                    maybe = not (idempotent or unsent)
                    hint = " The request may have been applied; re-running resumes safely."
                    zh_hint = "请求可能已生效，重新运行会安全续做。"
                    raise WeChatBusyError(
                        f"unreachable after {attempt} attempt(s): {type(exc).__name__}."
                        + (hint if maybe else ""),
                        api=path,
                        zh=f"尝试 {attempt} 次后仍无法连接（{type(exc).__name__}）。"
                        + (zh_hint if maybe else ""),
                    ) from None
                # retries are not news: the error, if it comes, is reported once by the caller
                log.info("wechat %s: %s, retrying (%d)", path, type(exc).__name__, attempt)
                self.sleep(self.settings.backoff * 2 ** (attempt - 1))
                continue
            _count_call(path, data)
            if data.get("errcode") == -1 and attempt < self.settings.max_attempts:
                log.info("wechat %s: busy (-1), retrying (%d)", path, attempt)
                self.sleep(self.settings.backoff * 2 ** (attempt - 1))
                continue
            return data

    def _fetch_token(self, force: bool) -> tuple[str, int]:
        secret = self.settings.secret.get_secret_value()
        if self.settings.token_endpoint == "stable":
            path = "/cgi-bin/stable_token"
            data = self._raw(
                "POST",
                path,
                json={
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": secret,
                    "force_refresh": force,
                },
            )
        else:
            path = "/cgi-bin/token"
            data = self._raw(
                "GET",
                path,
                params={"grant_type": "client_credential", "appid": self.appid, "secret": secret},
            )
        if data.get("errcode"):
            raise error_for(int(data["errcode"]), str(data.get("errmsg", "")), path)
        log.info(
            "wechat: new access token for %s (expires in %ss)", self.appid, data.get("expires_in")
        )
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    def call(
        self,
        path: str,
        *,
        json: Any = None,
        files: Any = None,
        method: str = "POST",
        params: dict[str, str] | None = None,
        idempotent: bool = True,
        accept: frozenset[int] = frozenset(),
    ) -> dict[str, Any]:
        """Call ``path`` with the shared token; the JSON answer, or a :class:`WeChatError`.

        errcodes in ``accept`` are returned instead of raised.
        """
        refreshed = False
        token = self.tokens.get(self._fetch_token)
        while True:
            q = {**(params or {}), "access_token": token}
            data = self._raw(method, path, params=q, json=json, files=files, idempotent=idempotent)
            code = int(data.get("errcode", 0) or 0)
            if code == 0 or code in accept:
                return data
            if code in TOKEN_ERRORS and not refreshed:
                log.info("wechat %s: token rejected (%d), refreshing once", path, code)
                token = self.tokens.invalidate(token, self._fetch_token)
                refreshed = True
                continue
            log.debug("wechat %s: errcode %d", path, code)  # raised; reported once by the caller
            raise error_for(code, str(data.get("errmsg", "")), path)

    # -- token / account -----------------------------------------------------
    def token(self) -> str:
        """The shared access token (fetching it if needed)."""
        return self.tokens.get(self._fetch_token)

    def quota(self, cgi_path: str) -> dict[str, Any]:
        """``openapi/quota/get``: daily_limit, used, remain for one API."""
        data = self.call("/cgi-bin/openapi/quota/get", json={"cgi_path": cgi_path})
        return dict(data.get("quota", {}))

    # -- media -----------------------------------------------------------------
    def upload_image(self, data: bytes, filename: str) -> str:
        """``media/uploadimg``: an mmbiz.qpic.cn URL usable inside article content."""
        out = self.call(
            "/cgi-bin/media/uploadimg", files={"media": (filename, data, _mime(data, filename))}
        )
        return str(out["url"])

    def add_material(self, data: bytes, filename: str) -> tuple[str, str]:
        """``material/add_material?type=image``: (media_id, url) of a permanent image."""
        out = self.call(
            "/cgi-bin/material/add_material",
            params={"type": "image"},
            files={"media": (filename, data, _mime(data, filename))},
        )
        return str(out["media_id"]), str(out.get("url", ""))

    # -- drafts and publishing ----------------------------------------------------
    def draft_add(self, articles: list[dict[str, Any]]) -> str:
        return str(
            self.call("/cgi-bin/draft/add", json={"articles": articles}, idempotent=False)[
                "media_id"
            ]
        )

    def draft_batchget(self, offset: int = 0, count: int = 20) -> dict[str, Any]:
        return self.call(
            "/cgi-bin/draft/batchget", json={"offset": offset, "count": count, "no_content": 0}
        )

    def draft_delete(self, media_id: str) -> None:
        self.call("/cgi-bin/draft/delete", json={"media_id": media_id})

    def draft_get(self, media_id: str) -> dict[str, Any] | None:
        """``draft/get``: the draft's ``news_item`` list answer, or None when it is gone."""
        out = self.call(
            "/cgi-bin/draft/get", json={"media_id": media_id}, accept=frozenset({40007})
        )
        return None if int(out.get("errcode", 0) or 0) == 40007 else out

    def draft_count(self) -> int:
        return int(self.call("/cgi-bin/draft/count", method="GET")["total_count"])

    def freepublish_batchget(self, offset: int = 0, count: int = 20) -> dict[str, Any]:
        """``freepublish/batchget``: the account's successful publishes, newest first."""
        return self.call(
            "/cgi-bin/freepublish/batchget",
            json={"offset": offset, "count": count, "no_content": 0},
        )

    def freepublish_getarticle(self, article_id: str) -> dict[str, Any]:
        return self.call("/cgi-bin/freepublish/getarticle", json={"article_id": article_id})

    def freepublish_submit(self, media_id: str) -> tuple[str, str]:
        out = self.call(
            "/cgi-bin/freepublish/submit", json={"media_id": media_id}, idempotent=False
        )
        return str(out["publish_id"]), str(out.get("msg_data_id", ""))

    def freepublish_get(self, publish_id: str) -> dict[str, Any]:
        return self.call("/cgi-bin/freepublish/get", json={"publish_id": publish_id})

    # -- mass sending ------------------------------------------------------------------
    def mass_sendall(self, media_id: str, clientmsgid: str) -> dict[str, Any]:
        """Push ``media_id`` to all followers; idempotent per ``clientmsgid``.

        45065 (already sent with this clientmsgid) is a success with
        ``duplicate=True``; 45066 waits ``too_fast_wait`` seconds and asks again.
        """
        if len(clientmsgid) > 64:
            raise error_for(45067, "clientmsgid too long", "/cgi-bin/message/mass/sendall")
        body = {
            "filter": {"is_to_all": True},
            "mpnews": {"media_id": media_id},
            "msgtype": "mpnews",
            "send_ignore_reprint": 0,
            "clientmsgid": clientmsgid,
        }
        for _ in range(3):
            out = self.call(
                "/cgi-bin/message/mass/sendall", json=body, accept=frozenset({45065, 45066})
            )
            code = int(out.get("errcode", 0) or 0)
            if code == 45066:
                self.sleep(self.settings.too_fast_wait)
                continue
            return {
                "msg_id": str(out.get("msg_id", "")),
                "msg_data_id": str(out.get("msg_data_id", "") or ""),
                "duplicate": code == 45065,
            }
        raise error_for(45066, "retry too fast", "/cgi-bin/message/mass/sendall")

    def mass_preview(self, media_id: str, openid: str) -> None:
        """Send a draft to one follower: by OpenID, or by WeChat id (``towxname``)."""
        who = "touser" if _OPENID_RE.fullmatch(openid) else "towxname"
        self.call(
            "/cgi-bin/message/mass/preview",
            json={who: openid, "mpnews": {"media_id": media_id}, "msgtype": "mpnews"},
        )

    def mass_get(self, msg_id: str) -> str:
        return str(self.call("/cgi-bin/message/mass/get", json={"msg_id": msg_id})["msg_status"])

    # -- statistics -------------------------------------------------------------------
    def datacube(self, name: str, begin: str, end: str) -> list[dict[str, Any]]:
        """``/datacube/{name}`` for ``begin``…``end`` (YYYY-MM-DD): the ``list`` items."""
        out = self.call(f"/datacube/{name}", json={"begin_date": begin, "end_date": end})
        return list(out.get("list", []))


def _mime(data: bytes, filename: str) -> str:
    """The Content-Type of an upload: from the bytes, so a GIF is never sent as image/jpeg."""
    fmt = sniff_image(data)
    if fmt is not None:
        return MIME[fmt]
    return "image/png" if filename.lower().endswith(".png") else "image/jpeg"


def describe(exc: WeChatError) -> dict[str, Any]:
    """A JSON-able description of an error (for status views)."""
    return {
        "type": type(exc).__name__,
        "errcode": exc.errcode,
        "message": str(exc),
        "retryable": exc.retryable,
    }
