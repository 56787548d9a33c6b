"""A faithful fake of the WeChat Official Account API, for tests and the demo.

It follows ``wechat-api.md``: the same paths, JSON shapes, errcodes and limits.

* tokens: the plain ``/cgi-bin/token`` issues a new token on every call and cuts
  the previous one to 5 more minutes; ``stable_token`` returns the same token
  while it is valid, and ``force_refresh`` replaces it and drops the old one at once
  (no overlap: a process still holding it gets 40001);
  expired → 42001, superseded → 40001, unknown → 40014, missing → 41001;
* images: ``uploadimg`` (jpg/png, ≤ 1 MB) → ``http://mmbiz.qpic.cn/…`` URLs;
  ``add_material`` → permanent ``media_id``;
* drafts: ≤ 8 articles, content < 20,000 characters counting markup and < 1 MB,
  title ≤ 64, digest ≤ 120, author ≤ 8, ``thumb_media_id`` must exist (40007);
  image URLs not on mmbiz.qpic.cn are stripped from content, as WeChat does;
* freepublish is asynchronous: ``get`` answers status 1 for ``publish_polls``
  polls, then ``publish_final`` (0…6) with ``fail_idx``;
* mass send: ``clientmsgid`` idempotency (45066 within a minute, then 45065
  with the existing ``msg_id``), 45067 over 64 characters, 45028 without quota,
  45011 beyond 60 requests a minute; ``preview`` and ``get``;
* datacube: spans enforced (61501), data only up to yesterday, deterministic
  made-up numbers.

Misbehaviour switches (set them from a test): ``delay``, ``busy(n)``,
``expire_tokens()`` (42001), ``revoke_tokens()`` (40001), ``ip_blocked``, ``mass_quota``, ``exhaust_api_quota(path)``.
Every request is appended to :attr:`FakeWeChat.requests`; :meth:`violations`
lists those the fake refused for breaking a limit.
"""

from __future__ import annotations

from newsletter.devtools.wechat_fake.server import FakeWeChat, run_fake
from newsletter.devtools.wechat_fake.state import (
    CST,
    GRACE,
    LIMIT_CODES,
    PREVIEW_OPENIDS,
    SPANS,
    Recorded,
    decode_body,
)

__all__ = [
    "CST",
    "GRACE",
    "LIMIT_CODES",
    "PREVIEW_OPENIDS",
    "SPANS",
    "FakeWeChat",
    "Recorded",
    "decode_body",
    "run_fake",
]
