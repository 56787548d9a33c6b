"""Small stdlib-only HTML inspection helpers for the render tests."""

from __future__ import annotations

from html.parser import HTMLParser


class Inspect(HTMLParser):
    """Collects ids/names, in-page hrefs, all hrefs, tags and heading texts."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.names: set[str] = set()
        self.fragments: list[str] = []
        self.hrefs: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str]] = []
        self.h3: list[str] = []
        self._in_h3 = False
        self._buf: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for k, v in attrs:
            self.attrs.append((k, v or ""))
            if k == "id" and v:
                self.ids.add(v)
            if k == "name" and v and tag == "a":
                self.names.add(v)
            if k == "href" and v is not None:
                self.hrefs.append(v)
                if v.startswith("#"):
                    self.fragments.append(v[1:])
        if tag == "h3":
            self._in_h3 = True
            self._buf = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "h3" and self._in_h3:
            self._in_h3 = False
            self.h3.append("".join(self._buf).strip())

    def handle_data(self, data: str) -> None:
        if self._in_h3:
            self._buf.append(data)


def visible_text(html: str) -> str:
    """Concatenated text nodes of ``html`` (no tags), as a browser's parser sees them."""
    out: list[str] = []

    class P(HTMLParser):
        def handle_data(self, data: str) -> None:
            out.append(data)

    p = P(convert_charrefs=True)
    p.feed(html)
    p.close()
    return "".join(out)
