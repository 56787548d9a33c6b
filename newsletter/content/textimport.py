"""Plain text copied from a web page or a Word file → the issue Markdown dialect.

A line classifier driven by the pattern families of
``newsletter/resources/data/import-patterns.yaml`` (see :mod:`newsletter.content.patterns`).
Each line is normalised for matching (script folded to Simplified, width
folded, spaces between single characters removed) and put in one class:

``chrome``    page furniture (breadcrumbs, counters, share/print controls,
              上一篇/下一篇, copyright and ICP lines, trailing tracker words);
``contents``  a hand-written contents list: a run of numbered headings that
              repeats later in the text (and its heading line, 目录 …);
``title`` / ``header``  the title and header fields (period, number, source …);
``section`` / ``item``  headings of the two outermost numbering families found;
``meta``      an item's ``key：value`` lines (the value may be on the next line);
``analysis``  an analysis marker (丨…丨, 【…】, ▍…, 点评：…) and the text after it;
``summary``, ``body``, ``blank``.

Guarantees:

* The returned ``markdown`` is accepted by
  :func:`newsletter.content.parser.parse_issue` as it is, whatever the input:
  prose is escaped so that it can never turn into Markdown structure.
* :attr:`TextImportResult.outline` gives every input line (1-based) with its
  class.  Only ``chrome`` and ``contents`` lines are dropped, and both are
  reported; everything else is placed in the output.
* Numbered lines are taken as headings only when their number continues the
  current sequence (or jumps forward with a short title, with a warning), so
  numbered lists inside an item's text stay in the text.
* ``hints`` (``{line: class}``, e.g. kept in the issue's ``import_hints``
  front matter) override the classifier for those lines.
* Input with nothing to import (empty, or only chrome) raises
  :class:`TextImportError`, one line in Chinese and English.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from newsletter.content.classify import _Importer
from newsletter.content.importrules import _learnt, rule_for
from newsletter.content.lines import (
    CLASS_LABELS,
    CLASSES,
    TextImportError,
    TextImportResult,
    _Line,
)
from newsletter.content.patterns import (
    clean,
    normalise,
    normalise_lines,
    patterns,
)
from newsletter.content.source import Image, SourceText
from newsletter.content.unwrap import colophon, cover_notes, unquote, unwrap
from newsletter.core.catalogue import coded

__all__ = [
    "CLASSES",
    "CLASS_LABELS",
    "rule_for",
    "TextImportError",
    "TextImportResult",
    "default_target",
    "import_issue_text",
    "import_text",
    "parse_hints",
]


def parse_hints(values: Mapping[Any, Any] | list[str] | None) -> dict[int, str]:
    """``{42: "item"}`` or ``["42=item"]`` → ``{42: "item"}``; raises ``ValueError`` when invalid."""
    out: dict[int, str] = {}
    if not values:
        return out
    pairs = (
        list(values.items())
        if isinstance(values, Mapping)
        else [tuple(v.split("=", 1)) if "=" in v else (v, "") for v in values]
    )
    for line, cls in pairs:
        try:
            n = int(str(line).strip())
        except ValueError:
            raise ValueError(f"hint {line}={cls}: the line must be a number") from None
        name = str(cls).strip()
        if name not in CLASSES or n < 1:
            raise ValueError(
                f"hint {line}={cls}: expected LINE=CLASS with CLASS one of {', '.join(CLASSES)}"
            )
        out[n] = name
    return out


def import_text(
    text: str,
    *,
    front_matter: Mapping[str, Any] | None = None,
    hints: Mapping[int, str] | None = None,
    source: SourceText | None = None,
    rules: Sequence[tuple[str, str, str]] = (),
) -> TextImportResult:
    """Convert a plain-text brief into issue Markdown (see the module docstring).

    ``front_matter`` values override or complete what was read from the
    header lines (e.g. ``{"number": 48}`` when the text has no 期数 line).
    ``hints`` maps 1-based line numbers to a class of :data:`CLASSES`.
    ``source`` (a Word or HTML document read into lines) replaces ``text`` and
    brings the structure its author marked, link addresses and images.
    ``rules`` are the publication's learnt house style, ``(kind, pattern, class)``
    from :func:`rule_for`; they outrank the document, and ``hints`` outrank them.
    """
    from newsletter.content.script import detect_script

    hints = dict(hints or {})
    if source is not None:
        text = source.text
    # split on newlines only, so line numbers match what an editor shows
    # direction overrides (U+202A–E, U+2066–9) can disguise a title or a subject; the
    # Unicode line and paragraph separators are spaces here, so line numbers stay an editor's
    text = re.sub("[\u202a-\u202e\u2066-\u2069]", "", text).translate(_SEPARATORS)
    raws = re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff"))
    furniture: set[int] = set()
    plain = source is None or source.kind == "text"
    if plain:  # a mail's quoted copy; a PDF's lines
        raws, furniture = unwrap(unquote(raws))
        furniture |= colophon(raws, lambda s: patterns().is_chrome(normalise(s)) is not None)
    shown, norm = normalise_lines(raws)
    if plain:  # the notes of a forwarding chain
        furniture |= cover_notes(norm, lambda s: patterns().is_chrome(s) == "mail-header")
    lines = [
        _Line(n, raw, clean(raw), s, m)
        for n, (raw, s, m) in enumerate(zip(raws, shown, norm, strict=True), 1)
    ]
    if source is not None:
        for ln in lines:
            ln.links = source.links.get(ln.n, [])
            ln.image = source.images.get(ln.n)
    structure = source.structure if source is not None else {}
    learnt = _learnt(norm, rules) if rules else {}
    weak = (source.weak - set(hints) - set(learnt)) if source is not None else set()
    paged = {k + 1: "chrome" for k in furniture}  # page numbers and running headers
    imp = _Importer(lines, patterns(), paged | structure | learnt | hints, weak)
    imp.user_hints = set(hints)
    imp.learnt = set(learnt) - set(hints)
    imp.prepass()
    imp.run()
    kept = [ln for ln in lines if ln.cls not in ("blank", "chrome", "contents")]
    if not kept:
        what = "只有网页框架 / only page chrome" if imp.result.chrome else "为空 / is empty"
        zh_what, en_what = what.split(" / ")
        raise coded(
            TextImportError, "import.nothing", where={"line": 1}, what_zh=zh_what, what_en=en_what
        )
    imp.result.script = detect_script(text)
    fm = dict(front_matter or {})
    if hints:
        fm["import_hints"] = dict(sorted(hints.items()))
    imp.result.markdown = imp.render(fm)
    return imp.result


_SEPARATORS = {0x2028: " ", 0x2029: " ", 0x85: " "}


def _why_unreadable(exc: OSError) -> tuple[str, str]:
    """Why a file could not be read, in Chinese and in English."""
    import errno

    text = exc.strerror or type(exc).__name__
    if " / " in text:  # our own reasons are written in both languages
        zh, en = text.split(" / ", 1)
        return zh, en
    known = {
        errno.ENOENT: "文件不存在",
        errno.EACCES: "没有读取权限",
        errno.EPERM: "没有读取权限",
        errno.EISDIR: "这是目录，不是文件",
        errno.ENAMETOOLONG: "文件名过长",
        errno.ELOOP: "符号链接层数过多",
    }
    return known.get(exc.errno or 0, f"系统错误（{text}）"), text


def _kept_hints(target: Path) -> dict[int, str]:
    """``import_hints`` of an earlier import written to ``target`` (empty when none)."""
    try:
        head = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    m = re.match(r"---\n(.*?)\n---\n", head, re.S)
    if m is None:
        return {}
    try:
        data = yaml.safe_load(m.group(1))
        return parse_hints(data.get("import_hints") if isinstance(data, dict) else None)
    except (yaml.YAMLError, ValueError):
        return {}


def default_target(source: Path) -> Path:
    """``brief.txt`` → ``brief.md``; an ``.md`` input gets ``brief.import.md``."""
    target = source.with_suffix(".md")
    return source.with_suffix(".import.md") if target == source else target


def import_issue_text(
    source: Path,
    out: Path | None = None,
    *,
    number: int | None = None,
    hints: list[str] | None = None,
    rules: Sequence[tuple[str, str, str]] = (),
    write: bool = True,
) -> tuple[dict[str, Any], list[tuple[int, str, str]]]:
    """Import the file ``source`` and write the issue Markdown (temp file, then rename);
    with ``write=False`` (an outline only) nothing is written.

    Returns ``(report, outline)``.  Never writes over ``source``; hints kept in
    an earlier output's ``import_hints`` are applied again, with ``hints``
    (``"LINE=CLASS"``) on top.  Raises :class:`TextImportError` for input that
    cannot be imported, with one bilingual line and no server path.
    """
    from newsletter.content.documents import read_document
    from newsletter.content.mdimport import is_issue_markdown

    target = out or default_target(source)
    try:
        same = target.resolve() == source.resolve()
    except OSError:
        same = False
    if same:
        raise coded(TextImportError, "import.same_file", name=source.name)
    try:
        info = source.stat()
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "不是普通文件 / not a regular file")
        if info.st_size > SOURCE_MAX_BYTES:
            raise OSError(0, "文件超过 64 MB / larger than 64 MB")
        data = source.read_bytes()
    except OSError as exc:
        zh, en = _why_unreadable(exc)
        raise coded(
            TextImportError, "import.unreadable", name=source.name, reason_zh=zh, reason_en=en
        ) from None
    text, doc, decode_warnings = read_document(data, name=source.name)
    try:
        chosen = _kept_hints(target) | parse_hints(hints or [])
    except ValueError as exc:
        raise TextImportError(f"提示无效 / {exc}") from None
    try:
        if doc is None and not chosen and number is None and is_issue_markdown(text):
            # already an issue in the product's own format: it comes back as it is
            from newsletter.content.script import detect_script

            result = TextImportResult(text, script=detect_script(text))
        else:
            result = import_text(
                text, front_matter={"number": number}, hints=chosen, source=doc, rules=rules
            )
    except TextImportError as exc:
        raise TextImportError(exc.message, line=exc.line, path=source.name) from None
    written_images: list[str] = []
    if write:
        written_images = _write_images(target.parent / "images", result.images)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            if target.is_symlink():
                raise OSError(0, "目标是符号链接 / the target is a symbolic link")
            _write_new(tmp, result.markdown.encode("utf-8"))
            tmp.replace(target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            reason = exc.strerror or type(exc).__name__
            raise coded(
                TextImportError, "import.unwritable", name=target.name, reason=reason
            ) from None
    report: dict[str, Any] = {
        "written": str(target) if write else None,
        "script": result.script,
        "chrome": result.chrome,
        "contents": result.contents,
        "unplaced": result.unplaced,
        "hints": chosen,
        "images": written_images,
        "reasons": result.reasons,
        "warnings": decode_warnings + result.warnings,
    }
    return report, result.outline


def _write_images(folder: Path, images: list[Image]) -> list[str]:
    """Write extracted images (content-named, so an existing file is never changed).

    Only real pictures are written (PNG, JPEG, GIF, WebP or BMP by their first bytes),
    at most :data:`IMAGES_MAX_BYTES` in all, and never through a symbolic link."""
    names: list[str] = []
    total = 0
    for image in images:
        path = folder / image.name
        if image.name in names or not _is_picture(image.data):
            continue
        total += len(image.data)
        if total > IMAGES_MAX_BYTES:
            break
        try:
            if folder.is_symlink():
                raise OSError(0, "images/ 是符号链接 / images/ is a symbolic link")
            folder.mkdir(exist_ok=True)
            if not os.path.lexists(path):
                tmp = folder / f".{image.name}.tmp"
                _write_new(tmp, image.data)
                tmp.replace(path)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise coded(
                TextImportError, "import.unwritable", name=f"images/{image.name}", reason=reason
            ) from None
        names.append(image.name)
    return names


#: What the images of one brief may take on disk in all.
IMAGES_MAX_BYTES = 64 * 1024 * 1024
#: The largest brief file read (a 30,000-character brief with pictures is far smaller).
SOURCE_MAX_BYTES = 64 * 1024 * 1024


def _is_picture(data: bytes) -> bool:
    from newsletter.content.sniff import magic_kind

    return magic_kind(data) in ("png", "jpeg", "gif", "webp") or data.startswith(b"BM")


def _write_new(path: Path, data: bytes) -> None:
    """Write ``data`` to a file created here and now: a leftover of that name (or a link
    planted there) is removed first, and the file is opened without following links."""
    if os.path.lexists(path):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
