"""The open pixel's ASGI fast path (what `newsletter web` serves): same answers, events kept."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from newsletter.core.config import reset_settings
from newsletter.core.db import session_scope
from newsletter.core.safety.signing import delivery_token
from newsletter.delivery.run import drive_inline
from newsletter.models import Delivery, Event
from newsletter.tracking.ingester import consume
from newsletter.web.app import create_asgi
from newsletter.web.public import PIXEL
from tests.factories import seed

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15"


def _events() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


def test_fast_path_streams_to_redis_and_answers_the_gif(pg_settings, redis_url) -> None:  # type: ignore[no-untyped-def]
    reset_settings(
        pg_settings.model_copy(
            update={"redis_url": redis_url, "redis_prefix": f"nltest:{uuid.uuid4().hex[:8]}:"}
        )
    )
    ids = seed(3)
    drive_inline(ids["send"])
    with session_scope() as s:
        dids = list(s.scalars(select(Delivery.id)))
    with TestClient(create_asgi()) as client:
        for did in dids:
            r = client.get(f"/o/{delivery_token(did)}.gif", headers={"User-Agent": UA})
            assert r.status_code == 200 and r.content == PIXEL
            assert "no-store" in r.headers["cache-control"]
        forged = client.get("/o/d1.AAAAAAAAAAAAAAAAAAAAAA.gif")
        assert forged.status_code == 200 and forged.content == PIXEL
        assert client.get("/healthz").json() == {"status": "ok"}  # everything else passes through
    assert _events() == 0  # nothing touched the database: the events are in the stream
    assert consume(block_ms=100, max_batches=3) == 3
    assert _events() == 3


def test_fast_path_without_redis_still_records(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    ids = seed(1)
    drive_inline(ids["send"])
    with session_scope() as s:
        did = s.scalar(select(Delivery.id))
    assert did is not None
    with TestClient(create_asgi()) as client:
        assert (
            client.get(f"/o/{delivery_token(did)}.gif", headers={"User-Agent": UA}).content == PIXEL
        )
    assert _events() == 1


def test_web_archive_views_are_counted(sqlite_settings) -> None:  # type: ignore[no-untyped-def]
    from newsletter.issues.review import approve
    from newsletter.issues.store import create_issue, render_issue
    from newsletter.models import Issue, Publication, Send
    from newsletter.reports.stats import send_stats
    from tests.conftest import EXAMPLES

    with session_scope() as s:
        issue, _ = create_issue(s, EXAMPLES / "issue-sample.md")
        # the archive of a draft is for console users only; approval seals the version
        approve(s, issue, "editor@example.org")
        render_issue(s, issue.id)
        pub = s.get(Publication, issue.publication_id)
        assert pub is not None
        slug, number = pub.slug, issue.number
        send = Send(publication_id=pub.id, issue_id=issue.id, state="draft")
        s.add(send)
        s.flush()
        send_id = send.id
    with TestClient(create_asgi()) as client:
        for v in ("zh-Hans", "zh-Hant", "zh-Hans"):
            r = client.get(f"/archive/{slug}/{number}?v={v}")
            assert r.status_code == 200 and "<html" in r.text
        assert client.get(f"/archive/{slug}/999").status_code == 404
    with session_scope() as s:
        assert send_stats(s, send_id)["archive_views"] == 3
        assert s.get(Issue, 1) is not None
