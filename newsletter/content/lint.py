"""Editorial checks on an issue source, with line numbers.

Guarantees:

* :func:`lint_source` never raises for bad input: a parse failure becomes a
  single ``error`` message (code ``parse``) and no other check runs.
* Messages come back sorted by line (messages without a line last), each with
  a stable ``code`` that tools and tests can match on.
* Channel-specific checks (size budgets of the render module) plug in through
  ``extra_checks``: callables taking the parsed :class:`Issue` and returning
  :class:`LintMessage` objects.

Codes: ``parse``, ``section-number``, ``item-number``, ``meta-missing``,
``meta-url``, ``link-insecure``, ``link-malformed``, ``image-alt``,
``image-missing``, ``image-path`` (a file outside the issue's folder and the
media folder), ``image-url`` (an image URL that is not http(s)),
``section-empty``, ``item-empty``, ``number-missing`` (a warning: the front
matter has no issue number).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from newsletter.content.model import Issue, Item, Section
from newsletter.content.numerals import format_numeral
from newsletter.content.parser import parse_issue
from newsletter.core.errors import IssueFormatError
from newsletter.core.safety.safepath import contained_file, reference_problem
from newsletter.core.safety.urlpolicy import is_allowed

__all__ = ["POLICY_ROLES", "LintCheck", "LintMessage", "lint_issue", "lint_source"]

Level = Literal["error", "warning"]

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
#: Where a path is resolved when the issue has no folder (it never exists).
_NO_FOLDER = Path("/nonexistent-issue-folder")

#: Roles every item of a policy section should have, with the key to suggest.
POLICY_ROLES: dict[str, str] = {
    "issuer": "发布机构",
    "doc_number": "文号",
    "date": "发布日期",
    "url": "原文链接",
}


@dataclass(slots=True)
class LintMessage:
    level: Level
    line: int | None
    code: str
    message: str

    def __str__(self) -> str:
        where = f"{self.line}: " if self.line is not None else ""
        return f"{where}{self.level}: {self.message} [{self.code}]"


LintCheck = Callable[[Issue], Iterable[LintMessage]]


def _numbering(
    numbers: Sequence[tuple[int, int]],
    code: str,
    what: tuple[str, str],
    fmt: Callable[[int], str],
) -> list[LintMessage]:
    """``numbers`` is ``[(number, line)]``; expect 1, 2, 3 … with no repeats or gaps."""
    out: list[LintMessage] = []
    seen: dict[int, int] = {}
    expected = 1
    for number, line in numbers:
        if number in seen:
            msg = (
                f"{what[0]}编号 {fmt(number)} 重复（第 {seen[number]} 行已用过） / "
                f"{what[1]} {fmt(number)} repeats (first used on line {seen[number]})"
            )
            out.append(LintMessage("error", line, code, msg))
        elif number != expected:
            msg = (
                f"{what[0]}编号跳号：应为 {fmt(expected)}，实为 {fmt(number)} / "
                f"{what[1]} numbering skips: expected {fmt(expected)}, found {fmt(number)}"
            )
            out.append(LintMessage("error", line, code, msg))
        seen.setdefault(number, line)
        expected = number + 1
    return out


def _check_numbering(issue: Issue) -> list[LintMessage]:
    def numeral(n: int) -> str:
        return f"{format_numeral(n)}、" if 1 <= n <= 99 else str(n)

    out = _numbering(
        [(s.number, s.line) for s in issue.sections],
        "section-number",
        ("章节", "section"),
        numeral,
    )
    for s in issue.sections:
        out += _numbering(
            [(i.number, i.line) for i in s.items],
            "item-number",
            (f"第 {s.numeral}、节的条目", f"item in section {s.numeral}、"),
            lambda n: f"{n}.",
        )
    return out


def _check_issue_number(issue: Issue) -> list[LintMessage]:
    if issue.number > 0:
        return []
    return [
        LintMessage(
            "warning",
            1,
            "number-missing",
            "未设置期数（在 front matter 中写 number: N） / "
            "the issue has no number (add 'number: N' to the front matter)",
        )
    ]


def _is_policy_section(section: Section) -> bool:
    roles = {m.role for it in section.items for m in it.meta}
    return bool(roles & {"issuer", "doc_number"})


def _check_meta(issue: Issue) -> list[LintMessage]:
    out: list[LintMessage] = []
    for s in issue.sections:
        if not _is_policy_section(s):
            continue
        for it in s.items:
            missing = [key for role, key in POLICY_ROLES.items() if not it.meta_value(role)]
            if missing:
                out.append(
                    LintMessage(
                        "warning",
                        it.line,
                        "meta-missing",
                        f"政策条目 {it.number}「{it.title}」缺少{'、'.join(missing)} / "
                        f"policy item {it.number}「{it.title}」has no {'、'.join(missing)}",
                    )
                )
    return out


def _url_problem(url: str) -> tuple[str, tuple[str, str]] | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "link-malformed", ("不是有效的网址", "is not a valid URL")
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return "link-malformed", ("不是完整的 http(s) 网址", "is not an absolute http(s) URL")
    host = parts.hostname or ""
    if "." not in host or " " in url:
        return "link-malformed", ("没有有效的主机名", "has no valid host name")
    if parts.scheme.lower() != "https":
        return "link-insecure", ("不是 HTTPS", "is not HTTPS")
    return None


def _check_links(issue: Issue) -> list[LintMessage]:
    out: list[LintMessage] = []
    for link in issue.links:
        problem = _url_problem(link.url)
        if problem is not None:
            level: Level = "error" if problem[0] == "link-malformed" else "warning"
            out.append(
                LintMessage(
                    level,
                    link.line or None,
                    problem[0],
                    f"链接 {link.position} {link.url!r} {problem[1][0]} / "
                    f"link {link.position} {link.url!r} {problem[1][1]}",
                )
            )
    for _, it in issue.iter_items():
        for m in it.meta:
            if m.role == "url" and m.link is None:
                out.append(
                    LintMessage(
                        "error",
                        m.line or None,
                        "meta-url",
                        f"{m.key}的值 {m.value!r} 不是网址 / {m.key} value {m.value!r} is not a URL",
                    )
                )
    return out


def _check_images(issue: Issue, base_dir: Path | None) -> list[LintMessage]:
    out: list[LintMessage] = []
    for img in issue.images:
        if not img.alt.strip():
            out.append(
                LintMessage(
                    "warning",
                    img.line or None,
                    "image-alt",
                    f"图片 {img.src!r} 没有替代文字 / image {img.src!r} has no alt text",
                )
            )
        out.extend(
            _image_ref_problems(img.src, img.line or None, img.sha256, base_dir, ("图片", "image"))
        )
    if issue.cover:
        out.extend(
            _image_ref_problems(
                issue.cover, 1, None, base_dir, ("封面图片", "cover image"), cover=True
            )
        )
    return out


def _path_said(what: tuple[str, str], src: str, problem: str) -> str:
    """``problem`` is ``English / 中文``: the message, Chinese first."""
    en, _, zh = problem.partition(" / ")
    return f"{what[0]} {src!r}：{zh or en} / {what[1]} {src!r} {en}"


def _image_ref_problems(
    src: str,
    line: int | None,
    sha256: str | None,
    base_dir: Path | None,
    what: tuple[str, str],
    *,
    cover: bool = False,
) -> list[LintMessage]:
    """An image is either an http(s) URL or a file inside the issue's folder / the media folder."""
    if "://" in src or src.startswith("//") or _SCHEME_RE.match(src):
        if not is_allowed(src):
            return [
                LintMessage(
                    "error",
                    line,
                    "image-url",
                    f"{what[0]}地址 {src!r} 不是 http(s) 链接 / {what[1]} {src!r} is not an http(s) URL",
                )
            ]
        return []
    if base_dir is None:
        # No folder to look in: still refuse what no folder could contain.
        problem = reference_problem(_NO_FOLDER, src)
        if problem is not None:
            return [LintMessage("error", line, "image-path", _path_said(what, src, problem))]
        return []
    problem = reference_problem(base_dir, src)
    if problem is not None:
        return [LintMessage("error", line, "image-path", _path_said(what, src, problem))]
    found = contained_file(base_dir, src) if cover else None
    if (cover and found is None) or (not cover and sha256 is None):
        return [
            LintMessage(
                "error",
                line,
                "image-missing",
                f"{what[0]}文件 {src!r} 不在期刊旁边 / {what[1]} file {src!r} not found next to the issue",
            )
        ]
    return []


def _item_is_empty(it: Item) -> bool:
    return not (it.body or it.analysis or it.meta)


def _check_empty(issue: Issue) -> list[LintMessage]:
    out: list[LintMessage] = []
    for s in issue.sections:
        if not s.items and not s.intro:
            out.append(
                LintMessage(
                    "warning",
                    s.line,
                    "section-empty",
                    f"章节 {s.numeral}、{s.title} 是空的 / section {s.numeral}、{s.title} is empty",
                )
            )
        for it in s.items:
            if _item_is_empty(it):
                out.append(
                    LintMessage(
                        "warning",
                        it.line,
                        "item-empty",
                        f"条目 {it.number}「{it.title}」没有内容 / "
                        f"item {it.number}「{it.title}」has no content",
                    )
                )
    return out


def lint_issue(
    issue: Issue, *, base_dir: Path | None = None, extra_checks: Sequence[LintCheck] = ()
) -> list[LintMessage]:
    """Run every check on an already parsed issue."""
    out = (
        _check_issue_number(issue)
        + _check_numbering(issue)
        + _check_meta(issue)
        + _check_links(issue)
        + _check_images(issue, base_dir)
        + _check_empty(issue)
    )
    for check in extra_checks:
        out.extend(check(issue))
    return sorted(out, key=lambda m: (m.line is None, m.line or 0))


def lint_source(
    text: str, path: str | Path | None = None, *, extra_checks: Sequence[LintCheck] = ()
) -> list[LintMessage]:
    """Parse ``text`` and return every problem found.

    ``path`` (optional) names the file in messages and is where image files
    are looked for; without it the image-existence checks are skipped.
    """
    base_dir = Path(path).parent if path is not None else None
    try:
        issue = parse_issue(text, path=str(path) if path else None, base_dir=base_dir)
    except IssueFormatError as exc:
        return [LintMessage("error", exc.line, "parse", exc.message)]
    return lint_issue(issue, base_dir=base_dir, extra_checks=extra_checks)
