"""The line-by-line classifier of a plain-text brief (after :mod:`.prepass`): headings,
header fields, metadata, analysis blocks, tables and prose, each placed in the issue being
built, and the issue written out as Markdown."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from newsletter.content.headerrules import UNTITLED_SECTION, HeaderRules
from newsletter.content.importrules import _unenclosed
from newsletter.content.lines import (
    _CHROME_REASONS,
    _CLASS_REASONS,
    _KEY_TIGHT,
    _KV_BRACKET_RE,
    _KV_RE,
    _URL_LINE_RE,
    _escape,
    _Item,
    _Line,
    _prose,
    _render_item,
    _Section,
    _shape_label,
    _slice,
    _table,
)
from newsletter.content.numerals import format_numeral
from newsletter.content.pairs import (
    ANY_KV,
    FIELD_NAMES,
    LATIN_KV,
    as_written,
    fields_by_shape,
    key_text,
    split_pairs,
)
from newsletter.content.prepass import _undecorated, lead_in
from newsletter.content.walker import DEFAULT_ANALYSIS_LABEL
from newsletter.core.catalogue import message


class _Importer(HeaderRules):
    def flush_table(self) -> None:
        if self.table_rows:
            self.target().append(_table(self.table_rows))
            self.table_rows = []

    # -- classification ----------------------------------------------------------
    def run(self) -> None:
        self.by_n = {ln.n: ln for ln in self.lines}
        numbering = {id(ln): n for n, ln in self.number_lines.items()}
        #: title lines whose number line was held back, to be classed with them
        self.held_titles: set[int] = set()
        self.footer_number()
        families = (self.part_family, self.section_family, self.item_family)
        for ln in self.lines:
            title = numbering.get(id(ln))
            heading = self.by_n[title].heading if title is not None else None
            if title is not None and heading is not None and heading[0] in families:
                self.held_titles.add(title)
                continue  # the number of the heading below: classed with it
            self.feed(ln)
        self.flush_table()
        self.drop_pending()
        if self.part_intro:  # a group with text and no section under it: kept at the end
            left, self.part_intro = self.part_intro, None
            self.target().extend(left)
        self.lead_section()
        for n in self.held_titles:
            self.number_lines[n].cls = self.by_n[n].cls
        for ln in self.lines:
            self.result.outline.append((ln.n, ln.cls or "body", ln.text))
            if ln.cls != "blank":
                self.result.reasons[ln.n] = self.reason(ln)
            if ln.cls == "chrome":
                self.result.chrome.append((ln.n, ln.text))
            elif ln.cls == "contents":
                self.result.contents.append((ln.n, ln.text))

    def lead_section(self) -> None:
        """▍本周看点 with a paragraph, then sections that all hold items: the first is the
        issue's lead in the shape of a section; it becomes the opening text (its heading
        kept in bold), and the sections are numbered from one again."""
        secs = self.sections
        if len(secs) < 2 or secs[0].items or not all(x.items for x in secs[1:]):
            return
        lead = secs.pop(0)
        self.intro += [f"**{_escape(lead.title)}**", *lead.intro]
        for k, sec in enumerate(secs, 1):
            if sec.number == k + 1:
                sec.number, sec.numeral = k, format_numeral(k)
        first = next(ln for ln in self.lines if ln.cls == "section")
        first.cls = "body"

    def reason(self, ln: _Line) -> str:
        """Why the line got its class, in Chinese, for the outline."""
        cls = ln.cls or "body"
        if ln.n in self.user_hints:
            return "编辑更正"
        if ln.n in self.learnt:
            return "刊物的导入规则（以前的更正）"
        if ln.n in self.hints and ln.n not in self.weak:
            return "文档标题样式" if cls in ("title", "section", "item") else "文档结构"
        if ln.n in self.weak and ln.n in self.hints:
            return "字号或加粗"
        if cls == "chrome":
            family = self.p.is_chrome(ln.norm)
            return _CHROME_REASONS.get(family or "", "结尾标记之后的页面杂项")
        if cls in ("section", "item") and ln.heading is not None:
            level = "第一层" if cls == "section" else "第二层"
            return f"行首标记“{_shape_label(ln.heading[0].name)}”重复出现（{level}）"
        return _CLASS_REASONS.get(cls, "正文")

    def feed(self, ln: _Line) -> None:
        if ln.image is not None:
            self.flush_table()
            self.drop_pending()
            ref = f"![{_escape(ln.image.alt)}](images/{ln.image.name})"
            self.target().append(ref)
            self.result.images.append(ln.image)
            self.mark(ln, "image")
            return
        if ln.n in self.table_rules:  # | --- |: the table goes on
            self.mark(ln, "table")
            return
        if ln.cls in ("blank", "chrome", "contents"):
            if ln.cls == "blank":
                self.flush_table()
            return
        hint = self.hints.get(ln.n)
        if hint is not None:
            self.flush_table()
            self.drop_pending()
            self.hinted(ln, hint)
            return
        if self.pending is not None and self.pending_value(ln):
            return
        self.drop_pending()
        cells = self.aligned.get(ln.n) or ln.raw.strip().split("\t")
        if len(cells) >= 2 and self.sections:
            self.table_rows.append(cells)
            self.mark(ln, "table")
            return
        self.flush_table()
        for handler in (
            self.section_heading,
            self.item_heading,
            self.header_line,
            self.marker,
            self.key_value,
            self.url_line,
        ):
            if handler(ln):
                return
        self.prose(ln)

    def hinted(self, ln: _Line, hint: str) -> None:
        if hint in ("section", "item"):
            # the heading's words, or the line's without its brackets and the emoji before them
            words = _unenclosed(ln)
            title = ln.heading[2] if ln.heading else _undecorated(words) or words
        if hint == "section":
            number = len(self.sections) + 1
            self.sections.append(_Section(format_numeral(min(number, 99)), number, title))
            self.mark(ln, "section")
        elif hint == "item":
            if self.section is None:
                self.sections.append(_Section("一", 1, ""))
            s = self.section
            assert s is not None
            s.items.append(self.new_item(len(s.items) + 1, title, ln))
            self.mark(ln, "item")
        elif hint == "title":
            self.take_title(ln)
        elif hint == "analysis":
            it = self.item
            if it is not None and it.analysis_label is None:
                label = self.analysis_label(ln)
                it.analysis_label = (label[0] if label else ln.text.strip("丨|【】[]▍ ")) or (
                    DEFAULT_ANALYSIS_LABEL
                )
                it.meta_open = False
                self.mark(ln, "analysis")
            else:
                self.prose(ln)
        elif hint in ("meta", "header") and (self.key_value(ln) or self.header_line(ln)):
            return
        else:
            self.prose(ln)

    def drop_pending(self) -> None:
        """A key whose value never came is text after all: nothing is lost."""
        line, self.pending_line = self.pending_line, None
        if self.pending is not None and line is not None:
            self.pending = None
            self.prose(line)
        self.pending = None

    def pending_value(self, ln: _Line) -> bool:
        """A header or meta key with an empty value takes the next line as its value."""
        assert self.pending is not None
        it, key, role = self.pending
        is_url = _URL_LINE_RE.match(ln.text) is not None
        if (
            ln.heading is not None
            or "\t" in ln.raw.strip()
            or (not is_url and (len(ln.text) > self.p.meta_value_max or role == "url"))
        ):
            return False
        self.pending = None
        self.pending_line = None
        if it is None:
            if not self.header_field(key, ln.text, role or ""):
                return False
        else:
            it.meta.append((key, ln.text.strip("<>") if is_url else ln.text, role))
        self.mark(ln, "header" if it is None else "meta")
        return True

    def section_heading(self, ln: _Line) -> bool:
        if ln.heading is not None and ln.heading[0] == self.part_family and self.part_family:
            self.part = (ln.heading[2], len(self.sections))  # sections count again under it
            self.part_intro = []  # its text before its first section goes with that section
            self.mark(ln, "part")
            return True
        if ln.heading is None or ln.heading[0] != self.section_family:
            return False
        _, number, title = ln.heading
        part, before = self.part
        # under a group, sections are numbered again from 一 or on through the issue
        expected = len(self.sections) + 1
        if part and number != expected:
            expected = len(self.sections) - before + 1
        number = number or expected  # a glyph counts by position
        if number < expected:
            return False
        if number > expected:
            if len(title) > 16:
                return False
            self.result.warnings.append(
                message(
                    "import.section_skips", line=ln.n, number=number, previous=expected - 1
                ).line()
            )
        if part:  # numbered through the whole issue, titled with the group
            number, title = len(self.sections) + 1, f"{part}｜{title}"
        numeral = format_numeral(number) if 1 <= number <= 99 else str(number)
        self.sections.append(_Section(numeral, number, title))
        if self.part_intro is not None:
            self.sections[-1].intro += self.part_intro
            self.part_intro = None
        self.list_next = 0
        self.mark(ln, "section")
        if self.tails.get(ln.n):
            self.sections[-1].intro.append(_prose(self.tails[ln.n]))
        return True

    def item_heading(self, ln: _Line) -> bool:
        if ln.heading is None or ln.heading[0] != self.item_family:
            return False
        _, number, title = ln.heading
        s = self.section
        if s is None:
            return False
        number = number or len(s.items) + 1
        if not self.is_item_heading(ln.n, s, number, title):
            # a numbered line inside an item's text: keep counting that list
            self.list_next = number + 1 if number in (1, self.list_next) else self.list_next
            return False
        s.items.append(self.new_item(number, title, ln))
        if ln.links:  # a linked title: its address is the item's link
            s.items[-1].meta.append(("原文链接", ln.links[0][1], "url"))
        self.list_next = 0
        self.mark(ln, "item")
        if self.tails.get(ln.n):  # 【title】 and its paragraph on one line
            s.items[-1].body.append(_prose(self.tails[ln.n]))
        return True

    def is_item_heading(self, n: int, s: _Section, number: int, title: str) -> bool:
        expected = len(s.items) + 1
        if number == expected:
            # "2." right after an in-text "1." is a list unless it looks like a title
            return number != self.list_next or len(title) <= 40
        if number < expected or number == self.list_next:
            return False
        so_far = sum(len(x.items) for x in self.sections)
        previous = s.items[-1].number if s.items else 0
        if (not s.items and number == so_far + 1) or (s.items and number == previous + 1):
            return True  # numbered on through the whole issue (1–3, then 4–6): no gap
        self.result.warnings.append(
            message("import.item_skips", line=n, number=number, previous=previous).line()
        )
        return True

    def analysis_label(self, ln: _Line) -> tuple[str, str] | None:
        """``(label, text after it)`` when the line is an analysis marker."""
        a = self.p.analysis
        words = self.p.analysis_words
        for kind in ("enclosed", "bracketed", "bar", "lead"):
            m = a[kind].match(ln.norm)
            if m is None:
                continue
            label_norm = m.group("label").strip()
            if kind in ("bracketed", "bar") and not any(w in label_norm for w in words):
                continue
            label = _slice(ln, m.start("label"))
            rest = ""
            if kind == "lead":
                rest = _slice(ln, m.start("rest")) if m.group("rest") else ""
                label = label[: len(label) - len(rest)] if rest else label
            label = label.strip(" :：丨|】]")
            return label or DEFAULT_ANALYSIS_LABEL, rest
        if ln.norm in self.labels:
            return ln.shown.strip(" :：丨|【】[]▍"), ""
        lead = lead_in(ln.norm)
        key = lead.group("key").strip() if lead is not None else ""
        if lead is not None and (key in self.lead_labels or any(w in key for w in words)):
            rest = lead.group("rest")
            same = len(ln.shown) == len(ln.norm)
            return lead.group("key").strip(), (
                ln.shown[len(ln.shown) - len(rest) :] if same else rest
            )
        if ln.norm[:1] in self.glyph_leads:
            return DEFAULT_ANALYSIS_LABEL, ln.shown.strip()[1:].strip()
        return None

    def marker(self, ln: _Line) -> bool:
        found = self.analysis_label(ln)
        if found is None:
            return False
        label, rest = found
        it = self.item
        if it is None or it.analysis_label is not None:
            return False  # kept as text
        it.analysis_label = label
        it.meta_open = False
        if rest:
            it.analysis.append(_prose(rest))
        self.mark(ln, "analysis")
        return True

    def key_value(self, ln: _Line) -> bool:
        it = self.item
        if it is None or it.analysis_label is not None:
            return False
        p = self.p
        if self.meta_pairs(ln, it):
            return True
        bare = _undecorated(ln.norm)  # 📄 文号：… : the emoji decorates the key
        off = len(ln.norm) - len(bare)
        m = _KV_RE.match(bare) or _KV_BRACKET_RE.match(bare)
        if m is None:
            m = _KEY_TIGHT.match(bare)
            if m is None or m.group("key") not in p.meta_keys:
                m = LATIN_KV.match(bare) or ANY_KV.match(bare)
                if m is None or self.meta_role(m.group("key")) is None:
                    return False
        key_norm = re.sub(r"\s", "", m.group("key"))
        if len(key_norm) > p.meta_key_max and self.meta_role(m.group("key")) is None:
            return False
        value = _slice(ln, off + m.start("value"))
        for label, url in ln.links:  # 原文链接：点击查看 (a link) → the address
            if p.meta_keys.get(key_norm) == "url" or value.strip() == label:
                value = url
                break
        same = len(ln.shown) == len(ln.norm)
        key_span = ln.shown[off + m.start("key") : off + m.end("key")]
        key = key_text(key_span) if same else key_norm
        if key_norm in p.summary_keys:
            it.summary = value
            self.mark(ln, "summary")
            return True
        role = self.meta_role(m.group("key"))
        if role is None and not (it.meta_open and len(value) <= p.meta_value_max):
            return False
        if not value:
            if role is None and len(key_norm) > 6:
                return False  # "情况如下：" introduces what follows; it is not a key
            self.pending, self.pending_line = (it, key, role), ln
        else:
            it.meta.append((key, value, role))
        self.mark(ln, "meta")
        return True

    def meta_pairs(self, ln: _Line, it: _Item) -> bool:
        """Several known fields on one line (:func:`.pairs.split_pairs`), or a row of
        bare values right under the heading (:func:`.pairs.fields_by_shape`), each kept."""
        text = ln.shown if len(ln.shown) == len(ln.norm) else ln.norm
        pairs = split_pairs(ln.norm, self.meta_role)
        if pairs:
            for key, a, b in pairs:
                shown = as_written(key, ln.norm, text, a)
                it.meta.append((shown, text[a:b].strip(), self.meta_role(key)))
        elif (
            it.meta_open
            and not it.body
            and self.meta_role(re.split(r"[|｜]", ln.norm)[0].strip()) is None  # key｜value
            and (shaped := fields_by_shape(ln.norm, "|｜·•"))
        ):
            for role, a, b in shaped:
                it.meta.append((FIELD_NAMES[role], text[a:b].strip(), role))
        else:
            return False
        self.mark(ln, "meta")
        return True

    def url_line(self, ln: _Line) -> bool:
        m = _URL_LINE_RE.match(ln.text)
        whole = [u for t, u in ln.links if t == ln.text.strip()]
        if m is None and not whole:
            return False
        url = m.group(1) if m is not None else whole[0]
        it = self.item
        if it is not None and it.analysis_label is None and not it.has_role("url"):
            policy = it.has_role("issuer") or it.has_role("doc_number")
            it.meta.append(("原文链接" if policy else "链接", url, "url"))
            self.mark(ln, "meta")
        else:
            self.target().append(f"<{url}>")
            self.mark(ln, "body")
        return True

    def prose(self, ln: _Line) -> None:
        it = self.item
        in_analysis = it is not None and it.analysis_label is not None
        text = ln.text
        if ln.n in self.held_titles:  # its number was held back: it stays with the text
            text = f"{self.number_lines[ln.n].text.strip()} {text}"
        if it is not None and not in_analysis:
            text = self.trailing_fields(it, text)
        self.target().append(_prose(text, ln.links))  # (the intro before any section)
        self.mark(ln, "analysis" if in_analysis else "body")

    # -- output ----------------------------------------------------------------
    def render(self, overrides: Mapping[str, Any]) -> str:
        fm = self.finish_header(overrides)
        out = ["---", yaml.safe_dump(fm, allow_unicode=True, sort_keys=False, width=10**6).strip()]
        out += ["---", ""]
        out += [p + "\n" for p in self.intro]
        for s in self.sections:
            if not s.title.strip():  # items before the first section: never a bare "## 一、"
                s.title = UNTITLED_SECTION
                self.result.warnings.append(
                    message("import.untitled_section", title=UNTITLED_SECTION).line()
                )
            out += [f"## {s.numeral}、{_escape(s.title)}", ""]
            out += [p + "\n" for p in s.intro]
            for it in s.items:
                out += _render_item(it)
        return "\n".join(out).rstrip() + "\n"
