"""B1i: import accuracy over the corpus, and the time to import + render a 30,000-character Word brief.

    .venv/bin/python benchmarks/import_accuracy.py

Prints, per brief: exact structure, metadata kept, chrome removed, links kept;
then the median of 5 runs of read + import + render of a generated .docx of
about 30,000 characters.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.content import wordfiles
from tests.content.corpus import CASES, OUTLINED, check, outline_exact, run


def big_docx(chars: int = 38_000) -> bytes:
    b = wordfiles.Brief()
    b.numbering("section", "chineseCounting", "%1、")
    b.numbering("item", "decimal", "%1.")
    b.para("大型周报", bold=True, size=18)
    b.para("第99期")
    size, k = 0, 0
    while size < chars:
        k += 1
        if k % 10 == 1:
            b.numbered("section", f"第{k // 10 + 1}组政策", bold=True, size=14)
        b.numbered("item", f"关于第{k}项工作的通知", bold=True)
        b.table([["发文机关", "某部"], ["发布日期", "2026-11-20"]])
        body = "本条政策对相关企业的经营安排提出了具体要求，值得持续关注。" * 8
        b.para(body)
        b.para("点评")
        b.para(body[:120])
        size += len(body) * 2 + 40
    return b.bytes()


def main() -> int:
    from newsletter.content.documents import read_document
    from newsletter.content.parser import parse_issue
    from newsletter.content.textimport import import_text
    from newsletter.render import render_all
    from newsletter.render.context import RenderContext

    ok = 0
    print(f"{'brief':<16} {'structure':>9} {'metadata':>9} {'chrome':>7} {'links':>6}  style")
    for case in CASES:
        r = check(case, run(case))
        exact = all(r.values())
        ok += exact
        flags = [
            r["header"] and r["structure"] and r["tables"],
            r["metadata"],
            r["chrome"],
            r["links"],
        ]
        cells = " ".join(
            f"{'yes' if f else 'NO':>{w}}" for f, w in zip(flags, (9, 9, 7, 6), strict=True)
        )
        print(f"{case.name:<16} {cells}  {case.style}")
    for name in OUTLINED:
        exact = outline_exact(name)
        ok += exact
        print(f"{name:<16} {'yes' if exact else 'NO':>9} (line-by-line outline)")
    total = len(CASES) + len(OUTLINED)
    print(f"exact with no hints: {ok}/{total} ({100 * ok / total:.0f}%)")

    data = big_docx()
    ctx = RenderContext(
        base_url="https://news.example.org",
        publication_name="周报",
        publication_slug="weekly",
        postal_address="示例路 1 号",
        sender_name="周报",
    )
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        text, source, _ = read_document(data, name="big.docx")
        issue = parse_issue(import_text(text, source=source).markdown)
        render_all(issue, ctx)
        times.append(time.perf_counter() - t0)
    chars = len(text)
    print(
        f"import + render of a {chars:,}-character .docx: median {statistics.median(times) * 1000:.0f} ms"
    )
    return 0 if ok == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
