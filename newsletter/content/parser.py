"""Issue source (Markdown with YAML front matter) → :class:`~newsletter.content.model.Issue`.

The dialect is described in ``docs/authoring.md``. The front matter is read by
:mod:`.frontmatter`, the body by :mod:`.walker`. Guarantees:

* Parsing is done by markdown-it-py (CommonMark + tables, raw HTML disabled)
  with the front_matter and container plugins; the walker only walks the
  token stream.  Every ``Block.html`` is therefore sanitised: raw HTML in the
  source is escaped and unsafe link schemes (``javascript:`` …) are refused.
* Anchors are ASCII and positional: ``s<k>`` for the k-th section and
  ``s<k>-i<m>`` for its m-th item, so they are unique even when the written
  numbering is wrong (the linter reports that, the parser does not).
* Every external link occurrence (Markdown links, autolinks and URLs in meta
  blocks) gets its own :class:`Link` with position 1..n in document order;
  identical URLs are *not* merged.  In ``Block.html`` the ``<a>`` carries
  ``data-link="n"`` and ``Block.links`` lists the positions.  In-page
  ``#fragment``, ``mailto:`` and ``tel:`` links are not collected.
* Every image occurrence is listed in :attr:`Issue.images` in document order,
  with the SHA-256 of the file when it exists relative to ``base_dir``.
* Malformed input raises :class:`~newsletter.core.errors.IssueFormatError` with a
  1-based line number; nothing is silently dropped.
* :func:`load_issue` accepts UTF-8 (with or without BOM) silently and falls
  back to GB18030 or Big5 with a warning naming the encoding.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from newsletter.content.decode import decode_source
from newsletter.content.frontmatter import front_matter, issue_header
from newsletter.content.model import Issue
from newsletter.content.walker import Walker, markdown
from newsletter.core.errors import IssueFormatError

__all__ = ["load_issue", "load_issue_source", "parse_issue"]


def _script_of(issue: Issue) -> str:
    """``"Hant"`` or ``"Hans"``: the script the visible text is written in."""
    from newsletter.content.script import detect_script

    parts = [issue.title]
    for s in issue.sections:
        parts.append(s.title)
        for it in s.items:
            parts.append(it.title)
            parts += [b.text for b in it.body[:2]] + [b.text for b in it.analysis[:1]]
    return detect_script("".join(parts))


def _check_text(text: str, path: str | None) -> None:
    m = re.search(r"[\ud800-\udfff]", text)
    if m is not None:
        line = text.count("\n", 0, m.start()) + 1
        msg = "content is not valid UTF-8 (undecodable bytes)"
        raise IssueFormatError(msg, line=line, path=path)


def parse_issue(
    text: str,
    *,
    path: str | None = None,
    base_dir: Path | None = None,
    sealed_images: Mapping[str, str] | None = None,
) -> Issue:
    """Parse issue source text into an :class:`Issue`.

    ``base_dir`` is where relative image paths are resolved (to hash them).
    ``sealed_images`` (path as written → SHA-256, from an approved version's seal)
    gives the images' hashes instead: no file is read, ``base_dir`` is ignored.
    ``Issue.source_hash`` is the SHA-256 of ``text`` encoded as UTF-8
    (:func:`load_issue` replaces it with the hash of the file's bytes).
    Raises :class:`IssueFormatError` with a 1-based line on malformed input.
    """
    text = text.removeprefix("\ufeff")
    _check_text(text, path)
    tokens = markdown().parse(text)
    issue = issue_header(front_matter(tokens, text, path), text, path)
    issue.source_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    issue.source_script = _script_of(issue)
    Walker(issue, path, base_dir, sealed=sealed_images).walk(tokens)
    return issue


def load_issue(path: str | Path) -> tuple[Issue, list[str]]:
    """Read, decode and parse an issue file; returns ``(issue, warnings)``.

    Images are resolved relative to the file's directory and
    ``source_hash`` is the SHA-256 of the file's bytes.
    """
    issue, _text, warnings = load_issue_source(path)
    return issue, warnings


def load_issue_source(path: str | Path) -> tuple[Issue, str, list[str]]:
    """Like :func:`load_issue`, also returning the decoded text that was parsed."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise IssueFormatError(f"cannot read issue file: {exc.strerror}", path=str(p)) from exc
    text, warnings = decode_source(data, path=str(p))
    issue = parse_issue(text, path=str(p), base_dir=p.parent)
    issue.source_hash = hashlib.sha256(data).hexdigest()
    return issue, text, warnings
