"""An issue's YAML front matter → the :class:`~newsletter.content.model.Issue` header
(title, number, period, cover …), every refusal with the file line it is about."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import yaml
from markdown_it.token import Token

from newsletter.content.model import Issue
from newsletter.core.errors import IssueFormatError

__all__ = ["front_matter", "issue_header"]


def front_matter(tokens: Sequence[Token], text: str, path: str | None) -> dict[str, Any]:
    fm = tokens[0] if tokens and tokens[0].type == "front_matter" else None
    if fm is None:
        msg = "missing YAML front matter (a '---' block with title and number)"
        if text.startswith("---"):
            msg = "front matter is not valid (it must be closed by a '---' line)"
        raise IssueFormatError(msg, line=1, path=path)
    lines = text.split("\n")
    end = fm.map[1] if fm.map else 0
    if end > len(lines) or lines[end - 1].strip() != "---":
        raise IssueFormatError("front matter is not closed by a '---' line", line=1, path=path)
    try:
        data = yaml.safe_load(fm.content) if fm.content.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise IssueFormatError(
            f"front matter is not valid YAML: {problem}", line=line, path=path
        ) from exc
    except (ValueError, OverflowError) as exc:  # e.g. "date: 2026-02-30" (YAML builds a date)
        raise IssueFormatError(
            f"front matter has an impossible value: {exc} / 前置信息中的值无效（如日期）",
            line=_bad_value_line(fm.content),
            path=path,
        ) from exc
    if not isinstance(data, dict):
        raise IssueFormatError("front matter must be key: value pairs", line=2, path=path)
    return data


def _bad_value_line(content: str) -> int:
    """The file line of the first front-matter value YAML cannot turn into a date."""
    for n, raw in enumerate(content.split("\n"), 2):
        if re.match(r"^[\w-]+:\s*\d{4}-\d{1,2}-\d{1,2}", raw):
            try:
                date.fromisoformat(raw.split(":", 1)[1].strip()[:10])
            except ValueError:
                return n
    return 2


def _fm_line(text: str, key: str) -> int:
    for n, raw in enumerate(text.split("\n")[:200], 1):
        if raw.startswith(f"{key}:"):
            return n
    return 1


def _fm_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def issue_header(data: dict[str, Any], text: str, path: str | None) -> Issue:
    title = _fm_str(data.get("title"))
    if not title:
        raise IssueFormatError("front matter: missing title", line=1, path=path)
    raw_number = data.get("number")
    if raw_number is None or raw_number == "":
        raw_number = 0  # not numbered yet: lint warns, renderers say no 第N期
    if isinstance(raw_number, bool) or not re.fullmatch(r"\d+", str(raw_number).strip()):
        raise IssueFormatError(
            f"front matter: number must be a whole number, not {raw_number!r}",
            line=_fm_line(text, "number"),
            path=path,
        )
    cover = _fm_str(data.get("cover")) or None
    hant_table = _fm_str(data.get("zh_hant"))
    if hant_table not in ("", "s2t", "s2hk", "s2tw"):
        raise IssueFormatError(
            f"front matter: zh_hant must be s2t, s2hk or s2tw, not {hant_table!r}",
            line=_fm_line(text, "zh_hant"),
            path=path,
        )
    return Issue(
        hant_table=hant_table,
        title=title,
        number=int(str(raw_number).strip()),
        period=_fm_str(data.get("period")),
        source=_fm_str(data.get("source")),
        author=_fm_str(data.get("author")),
        publication=_fm_str(data.get("publication")) or title,
        preheader=_fm_str(data.get("preheader")),
        cover=cover,
        date=_fm_str(data.get("date")) or None,
    )
