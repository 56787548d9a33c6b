"""Per-process cache of compiled messages, keyed by (issue, variant, content hash).

The rendered email is stored once in the ``rendition`` table; every worker
compiles it once and reuses the result for all recipients of that variant.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from newsletter.core.caches import process_cache
from newsletter.core.config import get_settings
from newsletter.core.db import session_scope
from newsletter.core.errors import NotFound
from newsletter.delivery.assemble import CompiledMessage, compile_message
from newsletter.models import Issue, Publication, Rendition

__all__ = ["clear_cache", "compiled_for", "preload"]

_cache: dict[tuple[int, str, str | None], tuple[str, CompiledMessage]] = process_cache({})


_signers: list[Any] = []


def _signer() -> Any:
    """The DKIM signer from NEWSLETTER_DKIM_* (None when no key is configured), loaded once."""
    if not _signers:
        from newsletter.delivery.dkim import load_signer

        _signers.append(load_signer())
    return _signers[0]


def preload() -> None:
    """Load the DKIM key now (a worker calls this before its pool forks, so the children
    share it instead of each parsing and checking the key on its first batch). A key
    that cannot be loaded is left for the send to report, as without this call."""
    try:
        _signer()
    except Exception:
        _signers.clear()


def clear_cache() -> None:
    _cache.clear()
    _signers.clear()


def _subject_text(subject: str | None, variant: str, pub: Publication) -> str | None:
    if not subject:
        return None
    if variant == "zh-Hant":
        from newsletter.content.variants import convert_text

        return convert_text(subject, pub.zh_hant_table or "s2t")
    return subject


def compiled_for(issue_id: int, variant: str, *, subject: str | None = None) -> CompiledMessage:
    """The compiled message of ``issue_id`` in ``variant``; ``subject`` (a subject test's
    variant, written in Simplified Chinese) replaces the rendered subject, converted for
    zh-Hant like the rest of the issue."""
    which = (
        Rendition.issue_id == issue_id,
        Rendition.variant == variant,
        Rendition.output.in_(("email_html", "email_text")),
    )
    with session_scope() as s:
        # The hashes first: a batch asks once per variant, and the bodies (a whole issue
        # each) are read only when this process has not compiled them yet.
        hashes = {
            o: (h, subj)
            for o, h, subj in s.execute(
                select(Rendition.output, Rendition.content_hash, Rendition.subject).where(*which)
            )
        }
        if len(hashes) != 2:
            raise NotFound(f"issue {issue_id} has no rendered email for {variant}; render it first")
        issue = s.get(Issue, issue_id)
        assert issue is not None
        pub = s.get(Publication, issue.publication_id)
        assert pub is not None
        # Everything the compiled message is made of: the two renditions, and the
        # publication's sender identity and names (changed in the console, they apply to
        # the next batch, not after the workers restart).
        sender = (issue.title, pub.from_name, pub.from_address, pub.reply_to)
        names = (pub.list_id_domain, pub.name, pub.slug, pub.zh_hant_table)

        def key_of(parts: dict[str, tuple[str, str | None]]) -> str:
            return repr((parts["email_html"], parts["email_text"], sender, names))

        key = key_of(hashes)
        hit = _cache.get((issue_id, variant, subject))
        if hit and hit[0] == key:
            return hit[1]
        rows = {r.output: r for r in s.scalars(select(Rendition).where(*which))}
        if len(rows) != 2:
            raise NotFound(f"issue {issue_id} has no rendered email for {variant}; render it first")
        # (re-rendered since the hashes were read: the key is what is compiled)
        key = key_of({o: (r.content_hash, r.subject) for o, r in rows.items()})
        cfg = get_settings()
        html_r, text_r = rows["email_html"], rows["email_text"]
        base = cfg.base_url.rstrip("/")
        bounce_domain = cfg.bounce_domain
        compiled = compile_message(
            html_body=html_r.body,
            text_body=text_r.body,
            subject=_subject_text(subject, variant, pub) or html_r.subject or issue.title,
            from_name=pub.from_name,
            from_address=pub.from_address,
            reply_to=pub.reply_to,
            list_id=pub.list_id_domain,
            list_name=pub.name,
            feedback_id=f"i{issue.id}:{pub.slug}:newsletter:{bounce_domain}",
            unsub_base=f"{base}/u/",
            unsub_mailto=f"unsubscribe@{bounce_domain}",
        )
        compiled.signer = _signer()
        _cache[(issue_id, variant, subject)] = (key, compiled)
        return compiled
