"""A Word (.docx) brief → :class:`~newsletter.content.source.SourceText`.

python-docx opens the package and gives styles, relationships and parts; this
module walks the body in order and keeps what the analyst wrote:

* **structure**, in order of trust: heading styles (a style named or based on
  Heading N / Title, or with an outline level); then Word's automatic numbering,
  whose numbers are not in the text: each paragraph gets the marker Word would
  draw (``一、``, ``（1）``, ``3.``) from the numbering definition, so the
  document's own markers reach the plain-text inference; then run formatting:
  a short paragraph set apart by size or bold, as its size ranks among them;
* **tables** stay tables (tab-separated rows); a two-column table of short keys
  becomes ``key：value`` lines, which next to an item are its metadata;
* **links** keep their addresses (``点击查看原文`` → the URL), also field-code
  HYPERLINKs;
* **images** are taken out of the package and referenced;
* tracked insertions count, deletions do not; headers, footers, comments and
  footnotes are separate parts and never read.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from newsletter.content.sniff import damaged_word
from newsletter.content.source import SENTENCE_END, Image, SourceText, add_table, infer_structure

__all__ = ["read_docx"]

_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_V = "urn:schemas-microsoft-com:vml"


def _q(tag: str) -> str:
    prefix, _, name = tag.partition(":")
    namespace = {"w": _W, "r": _R, "a": _A, "v": _V}[prefix]
    return f"{{{namespace}}}{name}"


_CN = "零一二三四五六七八九"
_CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"
_SAFE_LINK = re.compile(r"^(?:https?://|mailto:)[^\s<>\"]+$", re.I)


def _cn_number(n: int) -> str:
    if n < 10:
        return _CN[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return ("" if tens == 1 else _CN[tens]) + "十" + (_CN[ones] if ones else "")
    return str(n)


def _roman(n: int) -> str:
    out = ""
    for value, letters in ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")):
        while n >= value:
            out += letters
            n -= value
    return out


def _format(fmt: str, n: int) -> str:
    if not 0 <= n <= 9999:  # a hostile start value: drawn as a plain number
        return str(n)
    if fmt in ("decimal", "decimalHalfWidth", "decimalFullWidth", "decimalFullWidth2"):
        return str(n)
    if fmt == "decimalZero":
        return f"{n:02d}"
    if fmt.startswith(("chinese", "ideograph", "taiwanese", "japanese")):
        return _cn_number(n)
    if fmt == "decimalEnclosedCircle" or fmt == "decimalEnclosedCircleChinese":
        return _CIRCLED[n - 1] if 1 <= n <= 20 else str(n)
    if fmt == "decimalEnclosedParen":
        return f"({n})"
    if fmt in ("upperLetter", "lowerLetter"):
        letter = chr(ord("A") + (n - 1) % 26)
        return letter if fmt == "upperLetter" else letter.lower()
    if fmt in ("upperRoman", "lowerRoman"):
        return _roman(n) if fmt == "upperRoman" else _roman(n).lower()
    return str(n)


@dataclass
class _Level:
    fmt: str = "decimal"
    text: str = "%1."
    start: int = 1
    suffix: str = "tab"


@dataclass
class _Numbering:
    """Word's automatic numbering: the marker each numbered paragraph shows."""

    levels: dict[str, dict[int, _Level]] = field(default_factory=dict)  # numId → ilvl → level
    counters: dict[str, dict[int, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, document: Any) -> _Numbering:
        out = cls()
        try:
            root = document.part.numbering_part.element
        except (KeyError, NotImplementedError, AttributeError):
            return out
        abstract: dict[str, dict[int, _Level]] = {}
        for an in root.iterchildren(_q("w:abstractNum")):
            levels: dict[int, _Level] = {}
            for lvl in an.iterchildren(_q("w:lvl")):
                ilvl = lvl.get(_q("w:ilvl"), "0")
                if ilvl.isdigit() and int(ilvl) <= 8:  # Word has nine levels, 0–8
                    levels[int(ilvl)] = _read_level(lvl)
            abstract[an.get(_q("w:abstractNumId"), "")] = levels
        for num in root.iterchildren(_q("w:num")):
            ref = num.find(_q("w:abstractNumId"))
            levels = dict(abstract.get(ref.get(_q("w:val"), "") if ref is not None else "", {}))
            for override in num.iterchildren(_q("w:lvlOverride")):
                ilvl = int(override.get(_q("w:ilvl"), "0"))
                lvl = override.find(_q("w:lvl"))
                if lvl is not None:
                    levels[ilvl] = _read_level(lvl)
                start = override.find(_q("w:startOverride"))
                if start is not None and ilvl in levels:
                    base = levels[ilvl]
                    levels[ilvl] = _Level(
                        base.fmt, base.text, int(start.get(_q("w:val"))), base.suffix
                    )
            out.levels[num.get(_q("w:numId"), "")] = levels
        return out

    def marker(self, num_id: str, ilvl: int) -> str:
        levels = self.levels.get(num_id)
        if not levels or ilvl not in levels or num_id == "0":
            return ""
        counts = self.counters.setdefault(num_id, {})
        level = levels[ilvl]
        counts[ilvl] = counts.get(ilvl, level.start - 1) + 1
        for deeper in [k for k in counts if k > ilvl]:
            del counts[deeper]
        if level.fmt == "none":
            return ""
        if level.fmt == "bullet":
            glyph = level.text.strip()
            # bullets drawn from a symbol font are private-use code points
            text = "•" if not glyph or any("\ue000" <= ch <= "\uf8ff" for ch in glyph) else glyph
        else:

            def number(m: re.Match[str]) -> str:
                k = int(m.group(1)) - 1
                lv = levels.get(k, level)
                return _format(lv.fmt, counts.get(k, lv.start))

            text = re.sub(r"%(\d)", number, level.text)
        return text + (" " if level.suffix != "nothing" else "")


def _read_level(lvl: Any) -> _Level:
    def val(tag: str, default: str) -> str:
        el = lvl.find(_q(tag))
        return el.get(_q("w:val"), default) if el is not None else default

    start = val("w:start", "1")
    return _Level(
        fmt=val("w:numFmt", "decimal"),
        text=val("w:lvlText", "%1."),
        start=int(start) if start.isdigit() else 1,
        suffix=val("w:suff", "tab"),
    )


@dataclass
class _Para:
    text: str
    links: list[tuple[str, str]]
    images: list[Image]
    level: int | None  # heading level from the style (0 = title)
    size: float  # the largest run size, in points (0 when unknown)
    bold: bool  # every run with text is bold


class _Reader:
    def __init__(self, document: Any) -> None:
        self.doc = document
        self.part = document.part
        self.numbering = _Numbering.of(document)
        self.images: dict[str, Image] = {}
        self.style_cache: dict[str, tuple[int | None, tuple[str, int] | None, float, bool]] = {}
        self.default_size = 0.0

    # -- styles ----------------------------------------------------------------
    def style_info(
        self, style_id: str | None
    ) -> tuple[int | None, tuple[str, int] | None, float, bool]:
        """``(heading level, (numId, ilvl) from the style, size, bold)`` of a paragraph style."""
        key = style_id or ""
        if key in self.style_cache:
            return self.style_cache[key]
        level: int | None = None
        num: tuple[str, int] | None = None
        size = 0.0
        bold = False
        try:
            style = (
                self.doc.styles.get_by_id(style_id, 1) if style_id else self.doc.styles.default(1)
            )
        except (KeyError, ValueError):
            style = None
        seen = 0
        while style is not None and seen < 10:
            seen += 1
            name = (style.name or "").lower()
            el = style.element
            if level is None:
                m = re.fullmatch(r"heading\s*(\d)", name)
                if m:
                    level = int(m.group(1))
                elif name in ("title",):
                    level = 0
                else:
                    outline = el.find(f"{_q('w:pPr')}/{_q('w:outlineLvl')}")
                    if outline is not None and outline.get(_q("w:val"), "9").isdigit():
                        value = int(outline.get(_q("w:val"), "9"))
                        level = value + 1 if value < 9 else None
            if num is None:
                num_pr = el.find(f"{_q('w:pPr')}/{_q('w:numPr')}")
                if num_pr is not None:
                    num = _num_of(num_pr, default_ilvl=0)
            rpr = el.find(_q("w:rPr"))
            if rpr is not None:
                if not size:
                    sz = rpr.find(_q("w:sz"))
                    if sz is not None and sz.get(_q("w:val"), "").isdigit():
                        size = int(sz.get(_q("w:val"))) / 2
                if rpr.find(_q("w:b")) is not None and rpr.find(_q("w:b")).get(
                    _q("w:val"), "1"
                ) not in ("0", "false"):
                    bold = True
            style = style.base_style
        self.style_cache[key] = (level, num, size, bold)
        return level, num, size, bold

    # -- paragraphs ------------------------------------------------------------
    def paragraph(self, p: Any) -> _Para:
        ppr = p.find(_q("w:pPr"))
        style_el = ppr.find(_q("w:pStyle")) if ppr is not None else None
        style_id = style_el.get(_q("w:val")) if style_el is not None else None
        level, style_num, style_size, style_bold = self.style_info(style_id)
        num = style_num
        num_pr = ppr.find(_q("w:numPr")) if ppr is not None else None
        if num_pr is not None:
            num = _num_of(num_pr, default_ilvl=style_num[1] if style_num else 0)
        outline = ppr.find(_q("w:outlineLvl")) if ppr is not None else None
        if outline is not None and outline.get(_q("w:val"), "9").isdigit():
            value = int(outline.get(_q("w:val"), "9"))
            level = value + 1 if value < 9 else level
        parts: list[str] = []
        links: list[tuple[str, str]] = []
        images: list[Image] = []
        sizes: list[float] = []
        bolds: list[bool] = []
        field_url: list[str | None] = []  # a HYPERLINK field being read
        field_text: list[str] = []
        for run, link in self.runs(p):
            instr = run.find(_q("w:instrText"))
            if instr is not None and instr.text:
                m = re.search(r'HYPERLINK\s+"([^"]+)"', instr.text)
                if m and field_url:
                    field_url[-1] = m.group(1)
                continue
            char = run.find(_q("w:fldChar"))
            if char is not None:
                kind = char.get(_q("w:fldCharType"))
                if kind == "begin":
                    field_url.append(None)
                    field_text.append("")
                elif kind == "end" and field_url:
                    url, label = field_url.pop(), field_text.pop()
                    if url and label.strip():
                        links.append((label.strip(), url))
                continue
            text = self.run_text(run)
            images += self.run_images(run)
            if not text:
                continue
            parts.append(text)
            if field_text:
                field_text[-1] += text
            if link:
                if links and links[-1][1] == link and "".join(parts).endswith(links[-1][0] + text):
                    links[-1] = (links[-1][0] + text, link)
                else:
                    links.append((text, link))
            if text.strip():
                rpr = run.find(_q("w:rPr"))
                size = style_size or self.default_size
                bold = style_bold
                if rpr is not None:
                    sz = rpr.find(_q("w:sz"))
                    if sz is not None and sz.get(_q("w:val"), "").isdigit():
                        size = int(sz.get(_q("w:val"))) / 2
                    b = rpr.find(_q("w:b"))
                    if b is not None:
                        bold = b.get(_q("w:val"), "1") not in ("0", "false")
                sizes.append(size)
                bolds.append(bold)
        text = "".join(parts)
        if num is not None and text.strip():
            text = self.numbering.marker(*num) + text
        safe = [
            (label.strip(), url) for label, url in links if _SAFE_LINK.match(url) and label.strip()
        ]
        return _Para(
            text=text,
            links=safe,
            images=images,
            level=level,
            size=max(sizes) if sizes else 0.0,
            bold=bool(bolds) and all(bolds),
        )

    def runs(self, container: Any, link: str | None = None) -> Iterator[tuple[Any, str | None]]:
        """Runs in reading order with the link around them; insertions count, deletions don't."""
        for child in container.iterchildren():
            tag = child.tag
            if tag == _q("w:r"):
                yield child, link
            elif tag == _q("w:hyperlink"):
                rid = child.get(_q("r:id"))
                target = link
                if rid and rid in self.part.rels:
                    rel = self.part.rels[rid]
                    target = rel.target_ref if rel.is_external else link
                yield from self.runs(child, target)
            elif tag in (
                _q("w:ins"),
                _q("w:moveTo"),
                _q("w:smartTag"),
                _q("w:fldSimple"),
                _q("w:customXml"),
                _q("w:sdt"),
                _q("w:sdtContent"),
            ):
                if tag == _q("w:fldSimple"):
                    m = re.search(r'HYPERLINK\s+"([^"]+)"', child.get(_q("w:instr"), ""))
                    yield from self.runs(child, m.group(1) if m else link)
                else:
                    yield from self.runs(child, link)

    @staticmethod
    def run_text(run: Any) -> str:
        out: list[str] = []
        for el in run.iterchildren():
            if el.tag == _q("w:t"):
                out.append(el.text or "")
            elif el.tag == _q("w:tab"):
                out.append("\t")
            elif el.tag in (_q("w:br"), _q("w:cr")):
                out.append("\n")
            elif el.tag == _q("w:noBreakHyphen"):
                out.append("-")
        return "".join(out)

    def run_images(self, run: Any) -> list[Image]:
        found: list[Image] = []
        rids = [b.get(_q("r:embed")) for b in run.iter(_q("a:blip"))]
        rids += [v.get(_q("r:id")) for v in run.iter(_q("v:imagedata"))]
        for rid in rids:
            if not rid or rid not in self.part.rels:
                continue
            rel = self.part.rels[rid]
            if rel.is_external:
                continue
            target = rel.target_part
            if rid not in self.images:
                ext = target.partname.ext.lower() if hasattr(target.partname, "ext") else "png"
                if ext not in ("png", "jpg", "jpeg", "gif", "webp"):
                    continue
                digest = hashlib.sha256(target.blob).hexdigest()[:12]
                self.images[rid] = Image(f"word-{digest}.{ext}", target.blob)
            found.append(self.images[rid])
        return found

    # -- the body ----------------------------------------------------------------
    def read(self) -> SourceText:
        src = SourceText(kind="docx")
        paras: list[tuple[int, _Para]] = []
        self.default_size = self.style_info(None)[2] or 10.5
        for el in self.blocks(self.doc.element.body):
            if el.tag == _q("w:p"):
                para = self.paragraph(el)
                for k, line in enumerate(para.text.split("\n")):
                    n = src.add(line, links=[(t, u) for t, u in para.links if t in line])
                    if k == 0:
                        paras.append((n, para))
                for image in para.images:
                    src.add_image(image)
            elif el.tag == _q("w:tbl"):
                banner = self.banner(el)
                if banner is not None:  # a heading drawn as a one-cell shaded table
                    paras.append((src.add(banner.text, links=banner.links), banner))
                    continue
                self.table(el, src)
                src.add("")
        self.structure(src, paras)
        return src

    def blocks(self, container: Any) -> Iterator[Any]:
        for child in container.iterchildren():
            if child.tag in (_q("w:p"), _q("w:tbl")):
                yield child
            elif child.tag in (_q("w:sdt"), _q("w:sdtContent"), _q("w:customXml"), _q("w:ins")):
                yield from self.blocks(child)

    def banner(self, tbl: Any) -> _Para | None:
        """A table of one cell holding one short line (「一、宏观政策」 on a shaded band):
        a heading set apart by its frame, ranked with the formatted lines as bold."""
        cells = [tc for tr in tbl.iterchildren(_q("w:tr")) for tc in tr.iterchildren(_q("w:tc"))]
        if len(cells) != 1:
            return None
        paras = [self.paragraph(p) for p in self.blocks(cells[0]) if p.tag == _q("w:p")]
        paras = [p for p in paras if p.text.strip()]
        if len(paras) != 1 or paras[0].images:
            return None
        para = paras[0]
        text = para.text.strip()
        if "\n" in text or len(text) > 40 or SENTENCE_END.search(text):
            return None
        return _Para(text, para.links, [], para.level, para.size, True)

    def table(self, tbl: Any, src: SourceText) -> None:
        rows: list[list[tuple[str, list[tuple[str, str]]]]] = []
        for tr in tbl.iterchildren(_q("w:tr")):
            cells: list[tuple[str, list[tuple[str, str]]]] = []
            for tc in tr.iterchildren(_q("w:tc")):
                texts: list[str] = []
                links: list[tuple[str, str]] = []
                for p in self.blocks(tc):
                    if p.tag == _q("w:p"):
                        para = self.paragraph(p)
                        texts.append(para.text)
                        links += para.links
                cells.append((" ".join(t for t in texts if t), links))
            rows.append(cells)
        add_table(src, rows)

    def structure(self, src: SourceText, paras: list[tuple[int, _Para]]) -> None:
        infer_structure(
            src, [(n, p.text, p.level, p.size, p.bold) for n, p in paras], self.default_size
        )


def _num_of(num_pr: Any, *, default_ilvl: int) -> tuple[str, int] | None:
    num_id = num_pr.find(_q("w:numId"))
    ilvl = num_pr.find(_q("w:ilvl"))
    if num_id is None:
        return None
    level = ilvl.get(_q("w:val"), "0") if ilvl is not None else str(default_ilvl)
    return num_id.get(_q("w:val"), "0"), int(level) if level.isdigit() else 0


def read_docx(data: bytes, *, path: str | None = None) -> SourceText:
    """Read a .docx; a damaged one raises one catalogue line (callers check the ZIP's
    limits first: ``sniff.check_word_zip``)."""
    import docx  # python-docx: only needed here

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception:  # python-docx and lxml raise many kinds for a broken package
        raise damaged_word("unparsable", path or "") from None
    try:
        return _Reader(document).read()
    except (ValueError, KeyError, AttributeError, TypeError, IndexError, zipfile.BadZipFile):
        # a well-formed package whose parts say impossible things (a numbering level "x")
        raise damaged_word("unparsable", path or "") from None
