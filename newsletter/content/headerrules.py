"""The header of a plain-text brief as the classifier (:mod:`.classify`) reads it: the title
line, the masthead above it, the number, period and date wherever they sit, ``key：value``
header fields, and the header written out in a fixed order; with the builder's accessors
(the section and item being filled, where text goes next) that both share."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from newsletter.content.header import header_tokens, read_tokens
from newsletter.content.lines import _KV_RE, _Item, _Line, _Section, _slice
from newsletter.content.pairs import (
    ANY_KV,
    DATE,
    FIELD_NAMES,
    as_written,
    fields_by_shape,
    role_in,
    split_pairs,
)
from newsletter.content.patterns import normalise, numeral_value
from newsletter.content.prepass import Prepass, _undecorated
from newsletter.core.catalogue import message

__all__ = ["UNTITLED_SECTION", "HeaderRules"]

_TRAILING_BRACKET = re.compile(r"[（(](?P<inner>[^（）()]{3,160})[)）]\s*$")

#: the section that takes items met before any section heading
UNTITLED_SECTION = "本期内容"

_DATED_TITLE = re.compile(rf"^(?P<title>.+?)\s*[(（]\s*(?P<date>{DATE})\s*[)）]$")


def _item(number: int, title: str) -> _Item:
    """An item; a date in brackets at the end of its title (…的通知（2026年11月20日）) is
    the item's date field."""
    m = _DATED_TITLE.match(title)
    if m is None:
        return _Item(number, title)
    item = _Item(number, m.group("title"))
    item.meta.append(("日期", m.group("date"), "date"))
    return item


class HeaderRules(Prepass):
    @property
    def section(self) -> _Section | None:
        return self.sections[-1] if self.sections else None

    @property
    def item(self) -> _Item | None:
        s = self.section
        return s.items[-1] if s is not None and s.items else None

    #: the group heading (第一部分 …) the next sections fall under, and how many sections
    #: came before it (three-level briefs, ``Prepass.part_family``)
    part: tuple[str, int] = ("", 0)
    #: text between a group heading and its first section: that section's intro
    part_intro: list[str] | None = None

    def target(self) -> list[str]:
        if self.part_intro is not None:
            return self.part_intro
        it = self.item
        if it is not None:
            it.meta_open = False
            return it.analysis if it.analysis_label is not None else it.body
        s = self.section
        return s.intro if s is not None else self.intro

    def mark(self, ln: _Line, cls: str) -> None:
        ln.cls = cls

    def header_line(self, ln: _Line) -> bool:
        """Title, period, issue number and ``key：value`` fields before the first section."""
        if self.sections:
            return False
        p = self.p
        bare = _undecorated(ln.norm)
        off = len(ln.norm) - len(bare)
        m = _KV_RE.match(bare) or ANY_KV.match(bare)
        if m is not None:
            key = re.sub(r"\s", "", m.group("key"))
            role = role_in(p.header_keys, m.group("key"))
            if role is not None:
                value = _slice(ln, off + m.start("value"))
                if value and not self.header_field(key, value, role):
                    return False
                if not value:
                    self.pending, self.pending_line = (None, key, role), ln
                self.mark(ln, "header")
                return True
        fields, rest = header_tokens(ln.norm, p)
        if fields and not rest and ln is not self.title_line:
            if all(self._set(k, v) for k, v in fields.items()):
                self.mark(ln, "header")
                return True
            return False  # a second, different value: the line stays text
        if "number" in fields and "title" in self.header and "number" not in self.header:
            short = len(ln.norm) <= p.heading_max and not p.sentence_end.search(ln.norm)
            if short:  # 第19期 2026年11月 经济研究部编: the number is read, the words stay
                for k, v in fields.items():
                    self.header.setdefault(k, v)
                return False
        if ln is self.title_line and "title" not in self.header and ln.heading is None:
            self.take_title(ln)  # (after a covering note: 各位领导：现将本期…发送如下)
            return True
        if "title" in self.header or self.intro or ln.heading is not None:
            return False
        title_below = self.title_line is not None and self.title_line.n > ln.n
        short = len(ln.norm) <= p.heading_max and not p.sentence_end.search(ln.norm)
        if title_below and short:  # the masthead above the title: who publishes it
            if "source" in self.header:
                self.header["source"] += " · " + ln.shown.strip()
            else:
                self.header["source"] = ln.shown.strip()
            self.mark(ln, "header")
            return True
        if short and self.title_line is None:
            self.take_title(ln)
            return True
        return False

    def footer_number(self) -> None:
        """A brief that gives its number only at its foot (``编印：研究室　2026年第14期（总第
        203期）　2026年4月7日``): when no line above the first heading carries a number, the
        last lines are read for a colophon, a line that dates the issue as well as numbering
        it (a sentence citing ``本刊第12期`` does not). Its number and date go to the header;
        the line stays where it is, so nothing of it is lost."""
        content = [ln for ln in self.lines if ln.cls not in ("blank", "chrome", "contents")]
        first = next((k for k, ln in enumerate(content) if ln.heading is not None), None)
        if first is None or any(
            "number" in header_tokens(ln.norm, self.p)[0] for ln in content[:first]
        ):
            return
        start = content[first].n
        foot = [ln for ln in self.lines if ln.n > start and ln.text and ln.cls != "contents"]
        for ln in reversed(foot[-4:]):  # (a colophon under a closing rule is chrome by now)
            hint = self.hints.get(ln.n)
            if ln.heading is not None or hint not in (None, "chrome") or len(ln.norm) > 80:
                continue
            fields, rest = header_tokens(ln.norm, self.p)
            if "number" in fields and ("date" in fields or "period" in fields or not rest):
                for k in ("number", "date", "period"):
                    if k in fields:
                        self.header.setdefault(k, fields[k])
                return

    def meta_role(self, key: str) -> str | None:
        """The role of an item field's key, Chinese or Latin (``Ref No.`` → doc_number)."""
        return role_in(self.p.meta_keys, key)

    def new_item(self, number: int, title: str, ln: _Line) -> _Item:
        """The item headed by ``ln``. A title that closes with its fields in brackets
        (…的通知（国发〔2026〕8号，2026年3月1日）) gives them to the item and keeps the words
        before them; a title that is a link (an e-mail's ``<a>`` around it) gives the item
        its link."""
        it = _item(number, title)
        rest = self.trailing_fields(it, it.title)
        if rest.strip():
            it.title = rest
        bare = re.sub(r"\s", "", it.title)
        for words, url in ln.links:
            linked = re.sub(r"\s", "", words)
            if len(bare) >= 4 and len(linked) >= 0.8 * len(bare) and linked[:4] in bare:
                it.meta.append(("原文链接", url, "url"))
                break
        return it

    def trailing_fields(self, it: _Item, text: str) -> str:
        """``…正文。（来源：国务院；文号：国发〔2026〕30号）``: known fields in brackets at
        the end of a paragraph are the item's fields; the paragraph keeps the rest."""
        m = _TRAILING_BRACKET.search(text)
        if m is None:
            return text
        inner = m.group("inner")
        norm = normalise(inner)
        if len(norm) != len(inner):
            return text
        pairs = split_pairs(norm, self.meta_role)
        if not pairs:
            one = ANY_KV.match(norm)
            # （财政部，财预〔2026〕167号，2026年12月2日）: values told apart by their shape
            shaped = fields_by_shape(norm, "，,；;", shaped_min=2) if one is None else []
            if one is None and not shaped:  # （深府规〔2026〕3号 2026-03-03）: a space between
                shaped = fields_by_shape(norm, "，,；; ", shaped_min=2)
            if shaped:
                pairs = [(FIELD_NAMES[role], a, b) for role, a, b in shaped]
            elif one is None or self.meta_role(one.group("key")) is None:
                return text
            else:
                key, at = one.group("key").strip(), one.start("value")
                # （来源：科技部、财政部，国科发资〔2026〕58号，2026年5月9日）: the source, then
                # values told apart by their shape
                shaped = fields_by_shape(norm[at:], "，,；;")
                if len(shaped) >= 2 and shaped[0][0] == "issuer":
                    pairs = [(key, at + shaped[0][1], at + shaped[0][2])]
                    pairs += [(FIELD_NAMES[r], at + a, at + b) for r, a, b in shaped[1:]]
                else:
                    pairs = [(key, at, len(norm))]
        for key, a, b in pairs:
            shown = as_written(key, norm, inner, a)
            it.meta.append((shown, inner[a:b].strip(" ；;，,"), self.meta_role(key)))
        return text[: m.start()].rstrip()

    def take_title(self, ln: _Line) -> None:
        """The title line, with the number, period or date it carries moved to their
        fields, its decoration dropped, and the words after the number (the issue's
        theme: ``数字治理观察｜第8期：数据跨境``) kept as the preheader."""
        fields, _, spans = read_tokens(ln.norm, self.p)
        for k, v in fields.items():
            self.header.setdefault(k, v)
        text = ln.shown if len(ln.shown) == len(ln.norm) else ln.norm
        title, theme = text, ""
        if spans:
            first, last = min(a for a, _ in spans), max(b for _, b in spans)
            title, theme = text[:first], text[last:]
            for a, b in sorted(spans, reverse=True):  # tokens between the two ends
                if first < a:
                    title = title[:a] + title[b:]
        seps = " -–—_|｜丨·•・()[]（）【】:：,，;；/"
        theme = theme.strip(seps)
        if not title.strip(seps) and theme:  # 第8期｜数字治理观察: the words come after
            title, theme = theme, ""
        title = re.sub(r"[(\[（【〔]\s*[)\]）】〕]", "", title)
        title = text[len(text) - len(_undecorated(text)) :] if title == text else title
        title = _undecorated(title.rstrip(seps).lstrip(" -–—_|｜丨·•・:：")) or title
        # a leading 【label】 or [label] names the series, not this issue
        series = re.match(
            r"^\s*[【\[〔［]\s*([^【】\[\]〔〕［］]{1,16}?)\s*[】\]〕］]\s*(?=\S)", title
        )
        if series is not None:
            self.header.setdefault("series", series.group(1))
            title = title[series.end() :]
        title = title.strip(seps)
        if theme and len(theme) >= 2:
            self.header.setdefault("preheader", theme)
        self.header["title"] = title.strip() or ln.shown
        self.mark(ln, "title")

    def header_field(self, key: str, value: str, role: str) -> bool:
        """Set a header field; ``False`` (the line stays text) when it cannot be read or
        when the field already holds another value, so that nothing is lost."""
        if role == "number":
            m = self.p.issue_number(value) or re.search(r"(?P<num>\d+)", value)
            number = numeral_value(m.group("num")) if m else None
            if number is None:
                self.result.warnings.append(
                    message("import.bad_number", key=key, value=value).line()
                )
                return False
            return self._set("number", number)
        return self._set(role, value)

    def _set(self, name: str, value: Any) -> bool:
        if self.header.get(name, value) != value:
            return False
        self.header[name] = value
        return True

    def finish_header(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        fm = dict(self.header)
        fm.update({k: v for k, v in overrides.items() if v is not None})
        if not fm.get("title"):
            fm["title"] = "未命名"
            self.result.warnings.append(message("import.no_title").line())
        if not fm.get("number"):
            fm.pop("number", None)
            self.result.warnings.append(message("import.no_number").line())
        order = ["title", "number", "period", "date", "source", "author", "publication"]
        order += ["preheader"]
        return {k: fm[k] for k in order if k in fm} | {
            k: v for k, v in fm.items() if k not in order
        }
